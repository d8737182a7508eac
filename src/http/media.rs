//! Handlers of media uploads (`/v1/media/...`): declaring, the PUT of the bytes to the
//! `upload_url`, finalizing, reading the status, downloading. Bytes are streamed to and from
//! the media directory on blocking threads, chunk by chunk; no file I/O runs on a tokio
//! worker. A download is served as an attachment in a sandbox, so an uploaded page can never
//! run as this origin.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use ring::digest;

use super::response::{self, Body};
use super::wire::media as wire;
use super::{request, Ctx};
use crate::clock;
use crate::service::access::Access;
use crate::service::media::{self, MediaSettings};
use crate::service::validate;
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

fn io(e: std::io::Error) -> Error {
    Error::Unavailable {
        reason: format!("the media directory failed: {e}"),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, Error> + Send + 'static,
) -> std::result::Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("media task: {e}")))?
}

fn upload_id(ctx: &Ctx) -> std::result::Result<String, Error> {
    validate::uuid("upload_id", ctx.param(0)).map_err(|_| Error::NotFound {
        what: "upload",
        id: ctx.param(0).to_string(),
    })
}

fn settings(ctx: &Ctx) -> &MediaSettings {
    &ctx.state.media
}

fn content_url(ctx: &Ctx, id: &str) -> String {
    format!("{}/v1/media/{id}/content", ctx.state.public_url())
}

/// `POST /v1/media/create-upload {owner_agent, filename, mime_type, size_bytes, sha256?,
/// ttl_seconds?}`.
pub async fn create(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = media::create_request(&body, settings(&ctx))?;
    let access = Access::of(&ctx.principal);
    let row = media::create(&ctx.state.store, &access, req, settings(&ctx)).await?;
    let url = content_url(&ctx, &row.upload_id);
    response::ok(&wire::Created::new(&row, url))
}

/// `PUT /v1/media/{upload_id}/content`: the bytes, exactly as many as declared, with the
/// declared `Content-Type`.
pub async fn put(ctx: Ctx, mut body: Incoming) -> Result {
    let id = upload_id(&ctx)?;
    let access = Access::of(&ctx.principal);
    // The upload, and the right to write it (one PUT at a time).
    let taken = writable_as_sent(&ctx, &access, &id)
        .await
        .and_then(|row| media::Writing::begin(&id).map(|w| (row, w)));
    let (row, _writing) = match taken {
        Ok(taken) => taken,
        Err(e) => {
            // Read what the client is sending before answering, so it sees the answer.
            request::drain(&mut body, &ctx.headers, ctx.deadline).await;
            return Err(e);
        }
    };
    let dir = settings(&ctx).dir.clone();
    let (_, part) = media::paths(&dir, &id);
    let (file, total, sha) = match receive(&ctx, &mut body, &dir, &part, row.size_bytes).await {
        Ok(received) => received,
        Err(e) => {
            // Nothing of a refused body stays behind (the sweep would find it otherwise).
            let _ = blocking(move || std::fs::remove_file(&part).map_err(io)).await;
            return Err(e);
        }
    };
    let i = id.clone();
    blocking(move || media::commit_file(&dir, &i, file)).await?;
    let row = media::received(&ctx.state.store, &access, &id, total, &sha).await?;
    response::ok(&wire::Received {
        ok: true,
        upload_id: &row.upload_id,
        received_bytes: total,
        sha256: &sha,
        status: "pending",
    })
}

/// Streams a PUT body into the `.part` file: exactly `size` bytes, hashed as they pass. Returns
/// the file (not yet synced), the byte count and the hex SHA-256.
async fn receive(
    ctx: &Ctx,
    body: &mut Incoming,
    dir: &std::path::Path,
    part: &std::path::Path,
    size: i64,
) -> std::result::Result<(std::fs::File, i64, String), Error> {
    let (d, p) = (dir.to_path_buf(), part.to_path_buf());
    let mut file = blocking(move || {
        std::fs::create_dir_all(&d).map_err(io)?;
        std::fs::File::create(&p).map_err(io)
    })
    .await?;
    let mut hash = digest::Context::new(&digest::SHA256);
    let mut total: i64 = 0;
    // The body must arrive within the request's deadline, like every body (a large upload over
    // a slow link needs a larger --request-timeout-seconds).
    loop {
        let next = tokio::time::timeout_at(ctx.deadline.at, body.frame())
            .await
            .map_err(|_| Error::RequestTimeout {
                seconds: ctx.deadline.seconds,
            })?;
        let Some(frame) = next else {
            break;
        };
        let frame = frame.map_err(|e| Error::Malformed {
            reason: format!("the body could not be read: {e}"),
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        total += chunk.len() as i64;
        if total > size {
            request::drain(body, &ctx.headers, ctx.deadline).await;
            return Err(Error::TooLarge {
                field: "body".into(),
                limit: size as usize,
            });
        }
        hash.update(&chunk);
        file = blocking(move || {
            use std::io::Write;
            file.write_all(&chunk).map_err(io)?;
            Ok(file)
        })
        .await?;
    }
    if total != size {
        return Err(Error::invalid(
            "body",
            format!("is {total} bytes; the upload was declared with {size}"),
        ));
    }
    let sha = hash
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((file, total, sha))
}

/// The upload a PUT may write, if the `Content-Type` sent is its declared MIME type.
async fn writable_as_sent(
    ctx: &Ctx,
    access: &Access,
    id: &str,
) -> std::result::Result<crate::store::media::MediaRow, Error> {
    let row = media::writable(&ctx.state.store, access, id).await?;
    let sent = ctx
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if sent.as_deref() != Some(row.mime_type.as_str()) {
        return Err(Error::Invalid {
            code: "mime_type_mismatch",
            field: "Content-Type".into(),
            reason: format!(
                "must be {}, the MIME type the upload was declared with",
                row.mime_type
            ),
        });
    }
    Ok(row)
}

/// `POST /v1/media/finalize-upload {upload_id, size_bytes, sha256?}`.
pub async fn finalize(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = media::finalize_request(&body)?;
    let access = Access::of(&ctx.principal);
    let row = media::finalize(&ctx.state.store, &access, req).await?;
    response::ok(&wire::Finalized::new(&row))
}

/// `GET /v1/media/{upload_id}`.
pub async fn get(ctx: Ctx) -> Result {
    let id = upload_id(&ctx)?;
    let access = Access::of(&ctx.principal);
    let row = media::readable(&ctx.state.store, &access, &id).await?;
    let status = media::status_at(&row, clock::now());
    let download = (status == "ready").then(|| content_url(&ctx, &row.upload_id));
    response::ok(&wire::UploadEnvelope::new(&row, status, download))
}

/// `GET /v1/media/{upload_id}/content`: the bytes of a ready upload.
pub async fn download(ctx: Ctx) -> Result {
    let id = upload_id(&ctx)?;
    let access = Access::of(&ctx.principal);
    let row = media::readable(&ctx.state.store, &access, &id).await?;
    if row.status != "ready" {
        return Err(Error::conflict(
            "upload_not_ready",
            "this upload is not finalized yet",
        ));
    }
    let (path, _) = media::paths(&settings(&ctx).dir, &row.upload_id);
    let mut file = blocking(move || std::fs::File::open(&path).map_err(io)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0
                || tx
                    .blocking_send(bytes::Bytes::copy_from_slice(&buf[..n]))
                    .is_err()
            {
                break;
            }
        }
    });
    let mut resp = Response::new(Body::Download(rx));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&row.mime_type) {
        h.insert(CONTENT_TYPE, v);
    }
    let name: String = row
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}
