//! Where pushes may go. Link-local and cloud-metadata addresses are never reached (an intent's
//! webhook must not read the host's instance credentials); with `--push-deny-private`, loopback
//! and private ranges are refused too. The check runs inside name resolution, on every address
//! a name resolves to, so a DNS answer that changes between check and connect cannot slip by.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The marker of a refusal in the error ureq reports, so the attempt can say what happened.
pub const REFUSED: &str = "refused by axme";

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

/// Why an address is refused, if it is.
pub fn refusal(ip: IpAddr, deny_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, deny_private),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refusal_v4(v4, deny_private),
            None => refusal_v6(v6, deny_private),
        },
    }
}

fn refusal_v4(ip: Ipv4Addr, deny_private: bool) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_link_local() {
        return Some("link-local / cloud metadata");
    }
    if ip.is_unspecified() || o[0] == 0 {
        return Some("unspecified address");
    }
    if ip.is_broadcast() || ip.is_multicast() {
        return Some("broadcast or multicast");
    }
    if deny_private {
        if ip.is_loopback() {
            return Some("loopback (--push-deny-private)");
        }
        if ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
            return Some("private range (--push-deny-private)");
        }
    }
    None
}

fn refusal_v6(ip: Ipv6Addr, deny_private: bool) -> Option<&'static str> {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("cloud metadata");
    }
    if seg[0] & 0xffc0 == 0xfe80 {
        return Some("link-local");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("unspecified or multicast");
    }
    if deny_private {
        if ip.is_loopback() {
            return Some("loopback (--push-deny-private)");
        }
        if seg[0] & 0xfe00 == 0xfc00 {
            return Some("unique local range (--push-deny-private)");
        }
    }
    None
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
