//! The JSON shapes of media uploads (AXP `api.media.*` responses), converted explicitly from
//! the stored row. `bucket` and `object_path` name where the bytes live on this server.

use serde::Serialize;

use crate::store::media::MediaRow;

/// The one bucket of a self-hosted server: its media directory.
const BUCKET: &str = "axme-media";

fn object_path(m: &MediaRow) -> String {
    format!("media/{}", m.upload_id)
}

/// `POST /v1/media/create-upload`.
#[derive(Serialize)]
pub struct Created<'a> {
    pub ok: bool,
    pub upload_id: &'a str,
    pub owner_agent: &'a str,
    pub bucket: &'static str,
    pub object_path: String,
    pub upload_url: String,
    pub status: &'static str,
    pub expires_at: &'a str,
    pub max_size_bytes: i64,
}

impl<'a> Created<'a> {
    pub fn new(m: &'a MediaRow, upload_url: String) -> Created<'a> {
        Created {
            ok: true,
            upload_id: &m.upload_id,
            owner_agent: &m.owner_agent,
            bucket: BUCKET,
            object_path: object_path(m),
            upload_url,
            status: "pending",
            expires_at: &m.expires_at,
            max_size_bytes: m.size_bytes,
        }
    }
}

/// `PUT /v1/media/{id}/content` (an extension: the AXP has no shape for the upload itself).
#[derive(Serialize)]
pub struct Received<'a> {
    pub ok: bool,
    pub upload_id: &'a str,
    pub received_bytes: i64,
    pub sha256: &'a str,
    pub status: &'static str,
}

/// `POST /v1/media/finalize-upload`.
#[derive(Serialize)]
pub struct Finalized<'a> {
    pub ok: bool,
    pub upload_id: &'a str,
    pub owner_agent: &'a str,
    pub bucket: &'static str,
    pub object_path: String,
    pub mime_type: &'a str,
    pub size_bytes: i64,
    pub sha256: Option<&'a str>,
    pub status: &'static str,
    pub finalized_at: &'a str,
}

impl<'a> Finalized<'a> {
    pub fn new(m: &'a MediaRow) -> Finalized<'a> {
        Finalized {
            ok: true,
            upload_id: &m.upload_id,
            owner_agent: &m.owner_agent,
            bucket: BUCKET,
            object_path: object_path(m),
            mime_type: &m.mime_type,
            size_bytes: m.size_bytes,
            sha256: m.sha256.as_deref(),
            status: "ready",
            finalized_at: m.finalized_at.as_deref().unwrap_or(&m.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct Upload<'a> {
    pub upload_id: &'a str,
    pub owner_agent: &'a str,
    pub bucket: &'static str,
    pub object_path: String,
    pub mime_type: &'a str,
    pub filename: &'a str,
    pub size_bytes: i64,
    pub sha256: Option<&'a str>,
    pub status: &'static str,
    pub created_at: &'a str,
    pub expires_at: &'a str,
    pub finalized_at: Option<&'a str>,
    pub download_url: Option<String>,
    pub preview_url: Option<String>,
}

/// `GET /v1/media/{id}`.
#[derive(Serialize)]
pub struct UploadEnvelope<'a> {
    pub ok: bool,
    pub upload: Upload<'a>,
}

impl<'a> UploadEnvelope<'a> {
    pub fn new(m: &'a MediaRow, status: &'static str, download_url: Option<String>) -> Self {
        UploadEnvelope {
            ok: true,
            upload: Upload {
                upload_id: &m.upload_id,
                owner_agent: &m.owner_agent,
                bucket: BUCKET,
                object_path: object_path(m),
                mime_type: &m.mime_type,
                filename: &m.filename,
                size_bytes: m.size_bytes,
                sha256: m.sha256.as_deref().filter(|_| m.status == "ready"),
                status,
                created_at: &m.created_at,
                expires_at: &m.expires_at,
                finalized_at: m.finalized_at.as_deref(),
                download_url,
                preview_url: None,
            },
        }
    }
}
