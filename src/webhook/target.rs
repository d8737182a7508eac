//! Where pushes may go. Link-local and cloud-metadata addresses are never reached (an intent's
//! webhook must not read the host's instance credentials); with `--push-deny-private`, every
//! other IANA special-purpose range (loopback, private, shared, documentation, benchmarking,
//! reserved, ...) is refused too. IPv6 forms that embed an IPv4 address (v4-mapped,
//! v4-translated, v4-compatible, NAT64, 6to4) are judged by that IPv4 address. The check runs inside name resolution, on every address
//! a name resolves to, so a DNS answer that changes between check and connect cannot slip by.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The marker of a refusal in the error ureq reports, so the attempt can say what happened.
pub const REFUSED: &str = crate::model::PUSH_REFUSED;

/// A ureq resolver that drops forbidden addresses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub deny_private: bool,
}

impl ureq::Resolver for GuardedResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        let allowed: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| refusal(a.ip(), self.deny_private).is_none())
            .collect();
        match (allowed.is_empty(), all.first()) {
            (false, _) => Ok(allowed),
            (true, Some(first)) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{REFUSED}: {netloc} resolves to {} ({})",
                    first.ip(),
                    refusal(first.ip(), self.deny_private).unwrap_or("forbidden")
                ),
            )),
            (true, None) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{netloc} resolves to no address"),
            )),
        }
    }
}

/// When a range is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    DenyPrivate,
}

use When::{Always, DenyPrivate};

/// IPv4 ranges pushes may not reach: the IANA IPv4 special-purpose address registry, multicast
/// and broadcast. The more specific ranges come first.
#[rustfmt::skip]
const V4: &[(Ipv4Addr, u8, When, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0),         8,   Always,      "unspecified address"),
    (Ipv4Addr::new(169, 254, 0, 0),     16,  Always,      "link-local / cloud metadata"),
    (Ipv4Addr::new(224, 0, 0, 0),       4,   Always,      "broadcast or multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32,  Always,      "broadcast or multicast"),
    (Ipv4Addr::new(127, 0, 0, 0),       8,   DenyPrivate, "loopback (--push-deny-private)"),
    (Ipv4Addr::new(10, 0, 0, 0),        8,   DenyPrivate, "private range (--push-deny-private)"),
    (Ipv4Addr::new(172, 16, 0, 0),      12,  DenyPrivate, "private range (--push-deny-private)"),
    (Ipv4Addr::new(192, 168, 0, 0),     16,  DenyPrivate, "private range (--push-deny-private)"),
    (Ipv4Addr::new(100, 64, 0, 0),      10,  DenyPrivate, "private range (shared, CGNAT) (--push-deny-private)"),
    (Ipv4Addr::new(192, 0, 0, 0),       24,  DenyPrivate, "IETF protocol assignments (--push-deny-private)"),
    (Ipv4Addr::new(192, 0, 2, 0),       24,  DenyPrivate, "documentation range (--push-deny-private)"),
    (Ipv4Addr::new(198, 51, 100, 0),    24,  DenyPrivate, "documentation range (--push-deny-private)"),
    (Ipv4Addr::new(203, 0, 113, 0),     24,  DenyPrivate, "documentation range (--push-deny-private)"),
    (Ipv4Addr::new(192, 31, 196, 0),    24,  DenyPrivate, "AS112 (--push-deny-private)"),
    (Ipv4Addr::new(192, 175, 48, 0),    24,  DenyPrivate, "AS112 (--push-deny-private)"),
    (Ipv4Addr::new(192, 52, 193, 0),    24,  DenyPrivate, "AMT (--push-deny-private)"),
    (Ipv4Addr::new(192, 88, 99, 0),     24,  DenyPrivate, "6to4 relay anycast (--push-deny-private)"),
    (Ipv4Addr::new(198, 18, 0, 0),      15,  DenyPrivate, "benchmarking range (--push-deny-private)"),
    (Ipv4Addr::new(240, 0, 0, 0),       4,   DenyPrivate, "reserved range (--push-deny-private)"),
];

/// IPv6 ranges pushes may not reach: the IANA IPv6 special-purpose address registry, multicast
/// and the deprecated site-local range. Forms that embed an IPv4 address are decoded first
/// (see [`embedded_v4`]).
#[rustfmt::skip]
const V6: &[(Ipv6Addr, u8, When, &str)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),              128, Always,      "unspecified or multicast"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),         8,   Always,      "unspecified or multicast"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),         10,  Always,      "link-local"),
    (Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128, Always,      "cloud metadata"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1),              128, DenyPrivate, "loopback (--push-deny-private)"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),         7,   DenyPrivate, "unique local range (--push-deny-private)"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),         10,  DenyPrivate, "site-local range (--push-deny-private)"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),      48,  DenyPrivate, "local-use translation range (--push-deny-private)"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),          64,  DenyPrivate, "discard-only range (--push-deny-private)"),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),     32,  DenyPrivate, "documentation range (--push-deny-private)"),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),         23,  DenyPrivate, "IETF protocol assignments (--push-deny-private)"),
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48,  DenyPrivate, "AS112 (--push-deny-private)"),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),         20,  DenyPrivate, "documentation range (--push-deny-private)"),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),         16,  DenyPrivate, "SRv6 SIDs (--push-deny-private)"),
];

/// Why an address is refused, if it is.
pub fn refusal(ip: IpAddr, deny_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, deny_private),
        IpAddr::V6(v6) => embedded_v4(v6)
            .and_then(|v4| refusal_v4(v4, deny_private))
            .or_else(|| refusal_v6(v6, deny_private)),
    }
}

/// The IPv4 address an IPv6 address stands for, which is where a connection to it may end up:
/// v4-mapped `::ffff:a.b.c.d`, v4-translated `::ffff:0:a.b.c.d`, v4-compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        // `::` and `::1` are themselves, not 0.0.0.0 and 0.0.0.1.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn refusal_v4(ip: Ipv4Addr, deny_private: bool) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4.iter()
        .find(|(net, len, when, _)| {
            (*when == Always || deny_private) && bits >> (32 - len) == u32::from(*net) >> (32 - len)
        })
        .map(|(_, _, _, why)| *why)
}

fn refusal_v6(ip: Ipv6Addr, deny_private: bool) -> Option<&'static str> {
    let bits = u128::from(ip);
    V6.iter()
        .find(|(net, len, when, _)| {
            (*when == Always || deny_private)
                && bits >> (128 - len) == u128::from(*net) >> (128 - len)
        })
        .map(|(_, _, _, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str, deny_private: bool) -> bool {
        refusal(s.parse().unwrap(), deny_private).is_some()
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(ip, false), "{ip}");
        }
    }

    #[test]
    fn private_ranges_only_with_deny_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
        ] {
            assert!(!refused(ip, false), "{ip} allowed by default");
            assert!(refused(ip, true), "{ip} refused with deny_private");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "172.32.0.1"] {
            assert!(!refused(ip, true), "{ip} is public");
        }
    }

    /// F12: `--push-deny-private` let 198.18.0.0/15, 192.0.0.0/24 and 240.0.0.0/4 through and
    /// did not decode IPv6 forms that embed an IPv4 address, nor refuse `fec0::/10`.
    #[test]
    fn f12_every_special_purpose_range_and_embedded_ipv4_is_refused() {
        for ip in [
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
            "192.88.99.1",
            "192.31.196.1",
            "192.175.48.1",
            "192.52.193.1",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "64:ff9b:1::1",
            "fec0::1",
            "100::1",
            "2001:db8::1",
            "2001:2::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(
                !refused(ip, false) || ip.starts_with("::"),
                "{ip} allowed by default"
            );
            assert!(refused(ip, true), "{ip} refused with deny_private");
        }
        // Metadata and link-local are refused in every embedding, with or without the flag.
        for ip in [
            "::ffff:0:a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "::a9fe:a9fe",
            "2002:a9fe:a9fe::",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(ip, false), "{ip}");
        }
        // Public addresses, embedded or not, stay reachable.
        for ip in [
            "8.8.8.8",
            "198.20.0.1",
            "193.0.0.1",
            "64:ff9b::808:808",
            "2002:808:808::",
            "2a00:1450:4001::1",
            "2001:4860:4860::8888",
        ] {
            assert!(!refused(ip, true), "{ip} is public");
        }
    }

    #[test]
    fn the_resolver_refuses_a_forbidden_literal_address() {
        use ureq::Resolver;
        let r = GuardedResolver {
            deny_private: false,
        };
        let err = r.resolve("169.254.169.254:80").expect_err("refused");
        assert!(err.to_string().contains(REFUSED), "{err}");
        assert!(r.resolve("127.0.0.1:80").is_ok());
    }
}
