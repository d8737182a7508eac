//! TLS for `smtps://` relays: rustls (already in the build, under ureq) with the Mozilla roots
//! of webpki-roots, the relay's host name checked against its certificate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::ServerName;

/// A connection to the relay, plain or in TLS.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Wraps a connected socket in a TLS client session with `host`.
pub fn wrap(host: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("tls name: {e}"))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("tls: {e}"))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}
