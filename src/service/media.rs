//! Media uploads (`/v1/media/...`): declare an upload (owner, file name, MIME type, size), PUT
//! its bytes to the `upload_url` this server hands out, finalize it. The bytes live as one file
//! per upload in the media directory beside the database (`<data>.media/<upload_id>`).
//!
//! Durability: a PUT writes `<upload_id>.part`, fsyncs it, renames it to `<upload_id>` and
//! fsyncs the directory, and only then records what arrived; finalize marks an upload `ready`
//! only once that record exists and matches the declared size (and sha256, when one was
//! given). So a crash during an upload leaves a `.part` file and a `pending` row, never a
//! `ready` row of a partial file; stray files are removed by [`collect`].
//!
//! Access: the owner address's keys (and admin keys) write an upload; it is read (status,
//! download) by them and by every key that may see an intent attaching it (`payload.
//! attachments[].upload_id`); to any other key it does not exist (404). The server-wide quota
//! counts ready uploads and pending ones that have not expired.

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::OffsetDateTime;

use super::access::Access;
use super::validate::{self, Fields};
use crate::clock;
use crate::store::intents::IntentRow;
use crate::store::media::{self, MediaRow};
use crate::store::{Store, Tx};
use crate::Error;

pub mod files;

pub use files::{collect, commit_file, paths, Writing};

/// Default and bounds of `ttl_seconds` of a pending upload (the AXP schema's).
pub const TTL_DEFAULT: i64 = 86_400;
pub const TTL_MIN: i64 = 60;
pub const TTL_MAX: i64 = 7 * 86_400;

/// The media settings of a server.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// Where the bytes live.
    pub dir: PathBuf,
    /// The largest upload, in bytes.
    pub max_bytes: i64,
    /// What all uploads together may hold, in bytes.
    pub quota_bytes: i64,
}

impl MediaSettings {
    /// The settings of the flags: the directory given, else the database file's (see
    /// [`default_dir`]); a size of at least one byte; a quota of at least none.
    pub fn new(dir: Option<&Path>, data: &Path, max_bytes: i64, quota_bytes: i64) -> Self {
        MediaSettings {
            dir: dir.map_or_else(|| default_dir(data), Path::to_path_buf),
            max_bytes: max_bytes.max(1),
            quota_bytes: quota_bytes.max(0),
        }
    }
}

/// The media directory of a database file: `axme.db` keeps its uploads in `axme.db.media/`.
pub fn default_dir(data: &Path) -> PathBuf {
    let mut name = data
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".media");
    data.with_file_name(name)
}

/// A checked `POST /v1/media/create-upload` body.
#[derive(Debug, Clone)]
pub struct CreateUpload {
    pub owner_agent: String,
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub ttl_seconds: i64,
}

fn sha256_field(f: &Fields<'_>) -> Result<Option<String>, Error> {
    match f.str_opt("sha256", 64, 64)? {
        Some(s)
            if s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(Error::invalid("sha256", "must be 64 lower-case hex digits")),
        None => Ok(None),
    }
}

/// Whether `s` is a MIME type: `type/subtype` of token characters, without parameters.
fn is_mime(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    matches!(s.split_once('/'), Some((a, b)) if token(a) && token(b))
}

pub fn create_request(body: &Value, settings: &MediaSettings) -> Result<CreateUpload, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "owner_agent",
        "filename",
        "mime_type",
        "size_bytes",
        "sha256",
        "ttl_seconds",
    ])?;
    let owner_agent = validate::owner_address("owner_agent", &f.address_req("owner_agent")?)?;
    let filename = f.str_req("filename", 1, 255)?;
    if filename
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(Error::invalid(
            "filename",
            "must be a file name without slashes or control characters",
        ));
    }
    let mime_type = f.str_req("mime_type", 3, 255)?;
    if !is_mime(mime_type) {
        return Err(Error::invalid(
            "mime_type",
            "must be a MIME type such as application/pdf",
        ));
    }
    let size_bytes = f
        .int_opt("size_bytes", 1, 2_147_483_648)?
        .ok_or_else(|| Error::invalid("size_bytes", "is required"))?;
    if size_bytes > settings.max_bytes {
        return Err(Error::TooLarge {
            field: "size_bytes".into(),
            limit: settings.max_bytes as usize,
        });
    }
    Ok(CreateUpload {
        owner_agent,
        filename: filename.to_string(),
        mime_type: mime_type.to_ascii_lowercase(),
        size_bytes,
        sha256: sha256_field(&f)?,
        ttl_seconds: f
            .int_opt("ttl_seconds", TTL_MIN, TTL_MAX)?
            .unwrap_or(TTL_DEFAULT),
    })
}

/// A checked `POST /v1/media/finalize-upload` body.
#[derive(Debug, Clone)]
pub struct Finalize {
    pub upload_id: String,
    pub size_bytes: i64,
    pub sha256: Option<String>,
}

pub fn finalize_request(body: &Value) -> Result<Finalize, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["upload_id", "size_bytes", "sha256"])?;
    Ok(Finalize {
        upload_id: validate::uuid("upload_id", f.str_req("upload_id", 1, 64)?)?,
        size_bytes: f
            .int_opt("size_bytes", 1, 2_147_483_648)?
            .ok_or_else(|| Error::invalid("size_bytes", "is required"))?,
        sha256: sha256_field(&f)?,
    })
}

/// Where an upload stands at `now`: `pending`, `ready`, or `expired` (pending past its time).
pub fn status_at(m: &MediaRow, now: OffsetDateTime) -> &'static str {
    if m.status == "ready" {
        "ready"
    } else if clock::parse(&m.expires_at).is_some_and(|t| t <= now) {
        "expired"
    } else {
        "pending"
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "upload",
        id: id.to_string(),
    }
}

/// Declares an upload for `owner_agent` (which an agent key must act for), within the quota.
pub async fn create(
    store: &Store,
    access: &Access,
    req: CreateUpload,
    settings: &MediaSettings,
) -> Result<MediaRow, Error> {
    let (access, settings) = (access.clone(), settings.clone());
    store
        .write(move |c| create_in(c, &access, req, &settings, clock::now()))
        .await
}

/// The upload, if the caller may see it (see [`readable_in`]); 404 otherwise.
pub async fn readable(store: &Store, access: &Access, upload_id: &str) -> Result<MediaRow, Error> {
    let (access, id) = (access.clone(), upload_id.to_string());
    store.read(move |c| readable_in(c, &access, &id)).await
}

/// The upload, if the caller may write its bytes now (see [`writable_in`]).
pub async fn writable(store: &Store, access: &Access, upload_id: &str) -> Result<MediaRow, Error> {
    let (access, id) = (access.clone(), upload_id.to_string());
    store
        .read(move |c| writable_in(c, &access, &id, clock::now()))
        .await
}

/// Records the bytes of a PUT (after they are on disk): `bytes` of them, with their sha256.
pub async fn received(
    store: &Store,
    access: &Access,
    upload_id: &str,
    bytes: i64,
    sha256: &str,
) -> Result<MediaRow, Error> {
    let (access, id, sha) = (access.clone(), upload_id.to_string(), sha256.to_string());
    store
        .write(move |c| received_in(c, &access, &id, bytes, &sha, clock::now()))
        .await
}

/// Marks an upload ready once its bytes arrived whole (see [`finalize_in`]).
pub async fn finalize(store: &Store, access: &Access, req: Finalize) -> Result<MediaRow, Error> {
    let access = access.clone();
    store
        .write(move |c| finalize_in(c, &access, req, clock::now()))
        .await
}

fn create_in(
    conn: &Tx,
    access: &Access,
    req: CreateUpload,
    settings: &MediaSettings,
    now: OffsetDateTime,
) -> Result<MediaRow, Error> {
    access.require(&req.owner_agent, "uploading media for")?;
    let at = clock::format(now);
    let reserved = media::reserved_bytes(conn, &at)?;
    if reserved + req.size_bytes > settings.quota_bytes {
        return Err(Error::conflict(
            "media_quota_exceeded",
            format!(
                "the server's media quota of {} bytes has {} bytes left; this upload declares {}",
                settings.quota_bytes,
                (settings.quota_bytes - reserved).max(0),
                req.size_bytes
            ),
        ));
    }
    let row = MediaRow {
        upload_id: uuid::Uuid::new_v4().to_string(),
        owner_agent: req.owner_agent,
        filename: req.filename,
        mime_type: req.mime_type,
        size_bytes: req.size_bytes,
        expected_sha256: req.sha256,
        received_bytes: None,
        sha256: None,
        status: "pending".into(),
        created_at: at,
        expires_at: clock::format(now + time::Duration::seconds(req.ttl_seconds)),
        finalized_at: None,
    };
    media::insert(conn, &row)?;
    Ok(row)
}

/// The upload, if the caller may see it: its owner, an admin, or a reader of an intent that
/// attaches it. 404 otherwise, as if it did not exist.
fn readable_in(conn: &Tx, access: &Access, upload_id: &str) -> Result<MediaRow, Error> {
    let m = media::get(conn, upload_id)?.ok_or_else(|| not_found(upload_id))?;
    if access.owns(&m.owner_agent) {
        return Ok(m);
    }
    for intent_id in media::intents_of(conn, upload_id)? {
        if access.read(conn, &intent_id).is_ok() {
            return Ok(m);
        }
    }
    Err(not_found(upload_id))
}

/// The upload, if the caller may write its bytes now: readable, owned, pending, not expired.
fn writable_in(
    conn: &Tx,
    access: &Access,
    upload_id: &str,
    now: OffsetDateTime,
) -> Result<MediaRow, Error> {
    let m = readable_in(conn, access, upload_id)?;
    access.require(&m.owner_agent, "uploading media for")?;
    match status_at(&m, now) {
        "ready" => Err(Error::conflict(
            "upload_finalized",
            "this upload is finalized; its bytes cannot change",
        )),
        "expired" => Err(Error::conflict(
            "upload_expired",
            format!("this upload expired at {}", m.expires_at),
        )),
        _ => Ok(m),
    }
}

/// Records the bytes of a PUT (after they are on disk).
fn received_in(
    conn: &Tx,
    access: &Access,
    upload_id: &str,
    bytes: i64,
    sha256: &str,
    now: OffsetDateTime,
) -> Result<MediaRow, Error> {
    writable_in(conn, access, upload_id, now)?;
    media::set_received(conn, upload_id, bytes, sha256)?;
    media::get(conn, upload_id)?.ok_or_else(|| not_found(upload_id))
}

/// Marks an upload ready once its bytes arrived whole. Finalizing a ready upload again with the
/// same size answers it as it is.
fn finalize_in(
    conn: &Tx,
    access: &Access,
    req: Finalize,
    now: OffsetDateTime,
) -> Result<MediaRow, Error> {
    let m = readable_in(conn, access, &req.upload_id)?;
    access.require(&m.owner_agent, "finalizing media of")?;
    if req.size_bytes != m.size_bytes {
        return Err(Error::invalid(
            "size_bytes",
            format!(
                "is {}, but the upload was declared with {} bytes",
                req.size_bytes, m.size_bytes
            ),
        ));
    }
    match status_at(&m, now) {
        "ready" => return Ok(m),
        "expired" => {
            return Err(Error::conflict(
                "upload_expired",
                format!("this upload expired at {}", m.expires_at),
            ))
        }
        _ => {}
    }
    let (Some(got), Some(sha)) = (m.received_bytes, m.sha256.as_deref()) else {
        return Err(Error::conflict(
            "upload_incomplete",
            "no complete body has been PUT to this upload's upload_url yet",
        ));
    };
    if got != m.size_bytes {
        return Err(Error::conflict(
            "upload_incomplete",
            format!("{got} of {} bytes arrived", m.size_bytes),
        ));
    }
    for want in [req.sha256.as_deref(), m.expected_sha256.as_deref()]
        .into_iter()
        .flatten()
    {
        if want != sha {
            return Err(Error::invalid(
                "sha256",
                format!("the bytes that arrived have sha256 {sha}, not {want}"),
            ));
        }
    }
    media::set_ready(conn, &m.upload_id, &clock::format(now))?;
    media::get(conn, &m.upload_id)?.ok_or_else(|| not_found(&m.upload_id))
}

/// Records the uploads a new intent attaches (`payload.attachments[].upload_id`): each must be
/// ready and belong to the intent's sender.
pub fn link(conn: &Tx, intent: &IntentRow) -> Result<(), Error> {
    if !intent.payload.contains("attachments") {
        return Ok(());
    }
    let payload: Value = serde_json::from_str(&intent.payload)?;
    let Some(items) = payload.get("attachments").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, item) in items.iter().enumerate() {
        let Some(id) = item.get("upload_id").and_then(Value::as_str) else {
            continue;
        };
        let field = format!("payload.attachments[{i}].upload_id");
        let m = media::get(conn, id)?;
        match m {
            Some(m) if m.status == "ready" && m.owner_agent == intent.from_agent => {
                media::insert_ref(conn, &intent.intent_id, id)?
            }
            Some(m) if m.status == "ready" => {
                return Err(Error::invalid(
                    field,
                    format!("belongs to {}, not to the sender", m.owner_agent),
                ))
            }
            Some(_) => return Err(Error::invalid(field, "is not finalized (ready) yet")),
            None => return Err(Error::invalid(field, "names no upload")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::service::testing::{admin, db};

    fn settings() -> MediaSettings {
        MediaSettings {
            dir: PathBuf::from("unused"),
            max_bytes: 1000,
            quota_bytes: 100,
        }
    }

    #[test]
    fn a_pending_upload_expires_and_leaves_the_quota() {
        let conn = db();
        let c = Tx::sqlite(&conn);
        let t0 = clock::now();
        let body = json!({"owner_agent": "a/b", "filename": "f", "mime_type": "text/plain", "size_bytes": 80, "ttl_seconds": 60});
        let req = create_request(&body, &settings()).unwrap();
        let m = create_in(&c, &admin(), req.clone(), &settings(), t0).unwrap();
        let later = t0 + time::Duration::seconds(61);
        assert_eq!(
            (status_at(&m, t0), status_at(&m, later)),
            ("pending", "expired")
        );
        let e = writable_in(&c, &admin(), &m.upload_id, later).unwrap_err();
        assert_eq!(e.code(), "upload_expired");
        let fin = Finalize {
            upload_id: m.upload_id.clone(),
            size_bytes: 80,
            sha256: None,
        };
        assert_eq!(
            finalize_in(&c, &admin(), fin, later).unwrap_err().code(),
            "upload_expired"
        );
        // While it is live it holds its bytes of the quota; once expired, not.
        let e = create_in(&c, &admin(), req.clone(), &settings(), t0).unwrap_err();
        assert_eq!(e.code(), "media_quota_exceeded");
        assert!(create_in(&c, &admin(), req, &settings(), later).is_ok());
    }
}
