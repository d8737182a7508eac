//! Operator endpoints (`/v1/admin/...`, extensions of the AXME API). Admin keys only.
//!
//! `GET /v1/admin/backup` answers with a consistent copy of the whole database as one SQLite
//! file, taken online (see `store::backup`). The copy is made on a blocking thread before the
//! first byte goes out, then streamed from that thread in chunks through a small channel, so a
//! slow download holds neither a tokio worker nor a database snapshot.

use std::io::Read;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Response;
use tokio::sync::mpsc;

use super::response::Body;
use super::Ctx;
use crate::clock;
use crate::service::auth::require_admin;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

/// Bytes per chunk of a streamed backup.
const CHUNK: usize = 256 * 1024;

pub async fn backup(ctx: Ctx) -> Result {
    require_admin(&ctx.principal, "taking a backup")?;
    let store = ctx.state.store.clone();
    let snapshot = tokio::task::spawn_blocking(move || store.snapshot_blocking())
        .await
        .map_err(|e| Error::internal(format!("backup task: {e}")))??;
    let len = snapshot.len;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut file = snapshot.file;
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    // An error here means the client went away.
                    if tx.blocking_send(Bytes::copy_from_slice(&buf[..n])).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The response is cut short; the client sees fewer bytes than announced.
                    tracing::error!(error = %e, "reading the backup copy failed");
                    return;
                }
            }
        }
    });
    let mut resp = Response::new(Body::Download(rx));
    let stamp: String = clock::now_rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"axme-{stamp}.db\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
