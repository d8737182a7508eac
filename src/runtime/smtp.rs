//! One mail handed to an SMTP relay: connect (`smtps://`: TLS from the first byte), EHLO,
//! AUTH PLAIN when the URL has a login, MAIL FROM, RCPT TO, DATA (dot-stuffed, CRLF lines),
//! QUIT. Blocking, with timeouts on every read and write; run on a blocking thread. A reply
//! outside 2xx/3xx is the error, as the relay said it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;

use super::smtp_tls::{self, Stream};
use super::smtp_url::SmtpUrl;

/// How long one connect, read or write may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A mail to send.
pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

/// Sends `m` through the relay at `url`.
pub fn send(url: &SmtpUrl, m: &Message<'_>) -> Result<(), String> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))?;
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let stream: Box<dyn Stream> = if url.tls {
        smtp_tls::wrap(&url.host, tcp)?
    } else {
        Box::new(tcp)
    };
    let mut s = Session {
        r: BufReader::new(stream),
    };
    s.reply(None, 220)?;
    s.reply(Some("EHLO axme"), 250)?;
    if let Some((user, pass)) = &url.login {
        let plain = format!("\0{user}\0{pass}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        s.reply(Some(&format!("AUTH PLAIN {b64}")), 235)?;
    }
    s.reply(Some(&format!("MAIL FROM:<{}>", clean(m.from))), 250)?;
    s.reply(Some(&format!("RCPT TO:<{}>", clean(m.to))), 250)?;
    s.reply(Some("DATA"), 354)?;
    s.write(&body(m))?;
    s.reply(Some("."), 250)?;
    let _ = s.reply(Some("QUIT"), 221);
    Ok(())
}

/// An address or header value without the line breaks that would forge another line.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// The message: headers, a blank line, the text with CRLF line ends and leading dots doubled.
fn body(m: &Message<'_>) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        clean(m.from),
        clean(m.to),
        clean(m.subject),
    );
    for line in m.text.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

struct Session {
    r: BufReader<Box<dyn Stream>>,
}

impl Session {
    fn write(&mut self, s: &str) -> Result<(), String> {
        let w = self.r.get_mut();
        w.write_all(s.as_bytes())
            .and_then(|_| w.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// Sends `command` (if any) and reads the reply, which must have code `want`.
    fn reply(&mut self, command: Option<&str>, want: u16) -> Result<(), String> {
        if let Some(c) = command {
            self.write(&format!("{c}\r\n"))?;
        }
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .r
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the relay closed the connection".into());
            }
            reply.push_str(line.trim_end());
            // "250-..." continues, "250 ..." ends a reply.
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
            reply.push(' ');
        }
        let code: u16 = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if code != want {
            let what = command
                .map(|c| c.split(' ').next().unwrap_or(c))
                .unwrap_or("greeting");
            return Err(format!("{what}: {reply}"));
        }
        Ok(())
    }
}
