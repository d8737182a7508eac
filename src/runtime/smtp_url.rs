//! A parsed `--smtp-url` (`smtp://` or `smtps://`, an optional percent-encoded login, a host
//! and a port): what the mail task connects to. Its `Debug` and its parse errors never show
//! the password.

use std::fmt;

/// A parsed `--smtp-url`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `(user, password)`, percent-decoded.
    pub login: Option<(String, String)>,
}

impl SmtpUrl {
    pub fn parse(s: &str) -> Result<SmtpUrl, String> {
        let (tls, rest) = match s.split_once("://") {
            Some(("smtp", r)) => (false, r),
            Some(("smtps", r)) => (true, r),
            _ => {
                return Err(format!(
                    "{}: must start with smtp:// or smtps://",
                    redact(s)
                ))
            }
        };
        let rest = rest.trim_end_matches('/');
        let (login, hostport) = match rest.rsplit_once('@') {
            Some((cred, hp)) => {
                let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
                (Some((decode(u)?, decode(p)?)), hp)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().map_err(|_| "the port must be a number")?,
            ),
            None => (hostport, if tls { 465 } else { 25 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
            return Err(format!("{}: must name a host", redact(s)));
        }
        Ok(SmtpUrl {
            tls,
            host: host.to_string(),
            port,
            login,
        })
    }
}

/// `%XX` escapes of a URL's user or password.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("a % escape is cut short")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a % escape is not hex")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a % escape is not UTF-8".into())
}

/// The URL without its password, for messages.
fn redact(s: &str) -> String {
    match s
        .split_once("://")
        .and_then(|(sc, r)| r.rsplit_once('@').map(|(_, h)| (sc, h)))
    {
        Some((scheme, host)) => format!("{scheme}://<login>@{host}"),
        None => s.to_string(),
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "smtps" } else { "smtp" };
        let login = self.login.as_ref().map_or("", |_| "<redacted>@");
        write!(f, "{scheme}://{login}{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_url_gives_its_scheme_host_port_and_login_and_hides_the_password() {
        let u = SmtpUrl::parse("smtps://me%40x.org:p%3Ass@mail.example.com").expect("parses");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "mail.example.com", 465)
        );
        assert_eq!(u.login, Some(("me@x.org".into(), "p:ss".into())));
        assert!(!format!("{u:?}").contains("p:ss"), "{u:?}");
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").expect("parses");
        assert_eq!((u.tls, u.port, u.login), (false, 2525, None));
        assert!(SmtpUrl::parse("http://x").is_err());
        assert!(SmtpUrl::parse("smtp://:25").is_err());
        let e = SmtpUrl::parse("ftp://u:secret@h").expect_err("scheme");
        assert!(!e.contains("secret"), "{e}");
    }
}
