//! `Idempotency-Key` on writes: the first request under a key runs and its response is stored
//! in the same transaction as its effects; a retry with the same body gets that response back
//! without running again; a different body under the same key is 409. Keys are scoped to the
//! caller's credential and the endpoint, and kept at least 24 hours.

use ring::digest;
use rusqlite::Connection;

use crate::store::idempotency::{self, Remembered};
use crate::store::Store;
use crate::{clock, Error};

/// How long an idempotency record is kept at least.
pub const RETENTION_SECONDS: i64 = 24 * 3600;

/// A response rendered to bytes, ready to send (and to store for replays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: Vec<u8>,
    /// True when this is a stored response replayed for a retried request.
    pub replayed: bool,
}

/// Where an `Idempotency-Key` applies.
#[derive(Debug, Clone)]
pub struct Scope {
    pub key_id: String,
    /// Method and concrete path, e.g. `POST /v1/intents/…/resolve`.
    pub endpoint: String,
    pub key: String,
    /// SHA-256 of the canonical JSON of the request body.
    pub request_hash: Vec<u8>,
}

/// Hashes a request body in canonical form (object keys sorted, no whitespace) so that the same
/// JSON sent with different spacing or key order counts as the same request.
pub fn request_hash(body: &serde_json::Value) -> Vec<u8> {
    digest::digest(&digest::SHA256, body.to_string().as_bytes())
        .as_ref()
        .to_vec()
}

/// Runs `op` in the writer and renders its result; with a scope, only once per key.
pub async fn write_once<T, Op, Render>(
    store: &Store,
    scope: Option<Scope>,
    op: Op,
    render: Render,
) -> Result<Rendered, Error>
where
    T: Send + 'static,
    Op: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    Render: FnOnce(&T) -> Result<Rendered, Error> + Send + 'static,
{
    let Some(scope) = scope else {
        let value = store.write(op).await?;
        return render(&value);
    };
    store
        .write(move |conn| {
            if let Some(prev) =
                idempotency::lookup(conn, &scope.key_id, &scope.endpoint, &scope.key)?
            {
                if prev.request_hash != scope.request_hash {
                    return Err(Error::conflict(
                        "idempotency_conflict",
                        "this Idempotency-Key was already used with a different request body",
                    ));
                }
                return Ok(Rendered {
                    status: prev.status_code,
                    body: prev.response,
                    replayed: true,
                });
            }
            let value = op(conn)?;
            let rendered = render(&value)?;
            idempotency::insert(
                conn,
                &scope.key_id,
                &scope.endpoint,
                &scope.key,
                &Remembered {
                    request_hash: scope.request_hash,
                    status_code: rendered.status,
                    response: rendered.body.clone(),
                },
                clock::unix_seconds(),
            )?;
            Ok(rendered)
        })
        .await
}

/// Deletes idempotency records older than the retention, a batch at a time.
pub async fn prune(store: &Store) -> Result<usize, Error> {
    let before = clock::unix_seconds() - RETENTION_SECONDS;
    store
        .write(move |conn| idempotency::prune(conn, before, 1000))
        .await
}
