//! Media uploads (`/v1/media/...`): AXP shapes through create, PUT, finalize, status and
//! download; size, MIME type, sha256 and quota enforced with errors naming their field; bytes
//! never served to a key that may not see them (unless an intent it can read attaches them);
//! a SIGKILL during an upload leaves no `ready` record of a partial file.

use crate::axp_support;
use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use axp_support::assert_axp;
use common::*;
use serde_json::{json, Value};

const OWNER: &str = "agent://team/docs";

fn declare(s: &Server, key: &str, owner: &str, size: usize) -> Resp {
    let body = json!({"owner_agent": owner, "filename": "contract.pdf", "mime_type": "application/pdf", "size_bytes": size});
    send(
        s.req_anon("POST", "/v1/media/create-upload")
            .set("x-api-key", key),
        Some(body.to_string()),
    )
}

fn put(s: &Server, key: &str, id: &str, mime: &str, bytes: &[u8]) -> Resp {
    let req = s
        .req_anon("PUT", &format!("/v1/media/{id}/content"))
        .set("x-api-key", key)
        .set("content-type", mime);
    let resp = match req.send_bytes(bytes) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    Resp {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        headers: vec![],
    }
}

fn finalize(s: &Server, key: &str, id: &str, size: usize, sha: Option<&str>) -> Resp {
    let mut body = json!({"upload_id": id, "size_bytes": size});
    if let Some(h) = sha {
        body["sha256"] = json!(h);
    }
    send(
        s.req_anon("POST", "/v1/media/finalize-upload")
            .set("x-api-key", key),
        Some(body.to_string()),
    )
}

fn get(s: &Server, key: &str, path: &str) -> Resp {
    send(s.req_anon("GET", path).set("x-api-key", key), None)
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn agent_key(s: &Server, name: &str, agents: &[&str]) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": name, "role": "agent", "agents": agents}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().unwrap().to_string()
}

fn ready_upload(s: &Server, key: &str, owner: &str, bytes: &[u8]) -> String {
    let r = declare(s, key, owner, bytes.len());
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["upload_id"].as_str().unwrap().to_string();
    assert_eq!(put(s, key, &id, "application/pdf", bytes).status, 200);
    assert_eq!(finalize(s, key, &id, bytes.len(), None).status, 200);
    id
}

#[test]
fn an_upload_goes_from_declared_to_ready_and_downloads_in_the_axp_shapes() {
    let s = Server::start();
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let r = declare(&s, ADMIN_KEY, OWNER, bytes.len());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.media.create_upload.response.v1", &r.json);
    let id = r.json["upload_id"].as_str().unwrap().to_string();
    let url = r.json["upload_url"].as_str().unwrap().to_string();
    assert_eq!(url, s.url(&format!("/v1/media/{id}/content")));

    let r = get(&s, ADMIN_KEY, &format!("/v1/media/{id}"));
    assert_axp("api.media.get.response.v1", &r.json);
    assert_eq!(
        (
            &r.json["upload"]["status"],
            &r.json["upload"]["download_url"]
        ),
        (&json!("pending"), &Value::Null)
    );

    let r = put(&s, ADMIN_KEY, &id, "application/pdf", &bytes);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["sha256"], json!(sha256_hex(&bytes)));
    assert!(
        media_dir(&s).join(&id).exists(),
        "the bytes live beside the database"
    );

    let r = finalize(&s, ADMIN_KEY, &id, bytes.len(), Some(&sha256_hex(&bytes)));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.media.finalize_upload.response.v1", &r.json);
    assert_eq!(r.json["status"], "ready");
    // Finalizing again answers the same.
    assert_eq!(
        finalize(&s, ADMIN_KEY, &id, bytes.len(), None).json["status"],
        "ready"
    );

    let r = get(&s, ADMIN_KEY, &format!("/v1/media/{id}"));
    assert_axp("api.media.get.response.v1", &r.json);
    assert_eq!(r.json["upload"]["download_url"], json!(url));
    let resp = s
        .req("GET", &format!("/v1/media/{id}/content"))
        .call()
        .expect("download");
    assert_eq!(resp.header("content-type"), Some("application/pdf"));
    assert_eq!(resp.header("content-security-policy"), Some("sandbox"));
    assert!(resp
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    let mut got = Vec::new();
    resp.into_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, bytes);
    // Its bytes are fixed now.
    assert_error(
        &put(&s, ADMIN_KEY, &id, "application/pdf", &bytes),
        409,
        "upload_finalized",
    );
}

fn media_dir(s: &Server) -> std::path::PathBuf {
    let mut name = s.data.file_name().unwrap().to_os_string();
    name.push(".media");
    s.data.with_file_name(name)
}

#[test]
fn size_mime_sha_and_order_are_enforced_naming_the_field() {
    let s = Server::start_args(&["--media-max-bytes", "1000"]);
    for (body, status, field) in [
        (
            json!({"filename": "a", "mime_type": "text/plain", "size_bytes": 1}),
            422,
            "owner_agent",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a/b", "mime_type": "text/plain", "size_bytes": 1}),
            422,
            "filename",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a", "mime_type": "pdf", "size_bytes": 1}),
            422,
            "mime_type",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a", "mime_type": "text/plain", "size_bytes": 0}),
            422,
            "size_bytes",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a", "mime_type": "text/plain"}),
            422,
            "size_bytes",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a", "mime_type": "text/plain", "size_bytes": 1001}),
            413,
            "size_bytes",
        ),
        (
            json!({"owner_agent": OWNER, "filename": "a", "mime_type": "text/plain", "size_bytes": 1, "sha256": "XYZ"}),
            422,
            "sha256",
        ),
    ] {
        let r = s.post("/v1/media/create-upload", &body);
        assert_eq!((r.status, r.field()), (status, field), "{body}: {}", r.text);
    }
    let id = declare(&s, ADMIN_KEY, OWNER, 10).json["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &finalize(&s, ADMIN_KEY, &id, 10, None),
        409,
        "upload_incomplete",
    );
    let r = put(&s, ADMIN_KEY, &id, "text/plain", b"0123456789");
    assert_eq!(
        (r.status, r.code()),
        (422, "mime_type_mismatch"),
        "{}",
        r.text
    );
    assert_error(
        &put(&s, ADMIN_KEY, &id, "application/pdf", b"0123456789ab"),
        413,
        "payload_too_large",
    );
    let r = put(&s, ADMIN_KEY, &id, "application/pdf", b"01234");
    assert_eq!((r.status, r.field()), (422, "body"), "{}", r.text);
    let part = media_dir(&s).join(format!("{id}.part"));
    assert!(!part.exists(), "a refused body leaves no partial file");
    assert_error(
        &finalize(&s, ADMIN_KEY, &id, 10, None),
        409,
        "upload_incomplete",
    );
    assert_eq!(
        put(
            &s,
            ADMIN_KEY,
            &id,
            "application/pdf; charset=binary",
            b"0123456789"
        )
        .status,
        200
    );
    let r = finalize(&s, ADMIN_KEY, &id, 9, None);
    assert_eq!((r.status, r.field()), (422, "size_bytes"), "{}", r.text);
    let r = finalize(&s, ADMIN_KEY, &id, 10, Some(&"0".repeat(64)));
    assert_eq!((r.status, r.field()), (422, "sha256"), "{}", r.text);
    assert_eq!(finalize(&s, ADMIN_KEY, &id, 10, None).status, 200);
    assert_error(
        &get(
            &s,
            ADMIN_KEY,
            "/v1/media/0f8fad5b-d9cb-469f-a165-70867728950e",
        ),
        404,
        "upload_not_found",
    );
}

#[test]
fn the_quota_counts_every_live_upload() {
    let s = Server::start_args(&["--media-quota-bytes", "100"]);
    assert_eq!(declare(&s, ADMIN_KEY, OWNER, 60).status, 200);
    let r = declare(&s, ADMIN_KEY, OWNER, 50);
    assert_error(&r, 409, "media_quota_exceeded");
    assert_eq!(declare(&s, ADMIN_KEY, OWNER, 40).status, 200);
}

#[test]
fn uploads_are_hidden_from_other_keys_until_an_intent_they_can_read_attaches_them() {
    let s = Server::start();
    let docs = agent_key(&s, "docs", &["team/docs"]);
    let other = agent_key(&s, "other", &["team/other"]);
    assert_error(
        &declare(&s, &docs, "agent://team/other", 5),
        403,
        "forbidden",
    );
    let id = ready_upload(&s, &docs, OWNER, b"hello");
    let status = format!("/v1/media/{id}");
    let content = format!("/v1/media/{id}/content");
    assert_error(&get(&s, &other, &status), 404, "upload_not_found");
    assert_error(&get(&s, &other, &content), 404, "upload_not_found");
    assert_error(
        &put(&s, &other, &id, "application/pdf", b"hello"),
        404,
        "upload_not_found",
    );
    assert_error(&finalize(&s, &other, &id, 5, None), 404, "upload_not_found");

    // A pending upload cannot be attached; a ready one of the sender's can.
    let pending = declare(&s, &docs, OWNER, 3).json["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = intent_body("agent://team/other");
    body["payload"] = json!({"text": "please sign", "attachments": [{"upload_id": pending}]});
    let r = send(
        s.req_anon("POST", "/v1/intents").set("x-api-key", &docs),
        Some(body.to_string()),
    );
    assert_eq!(
        (r.status, r.field()),
        (422, "payload.attachments[0].upload_id"),
        "{}",
        r.text
    );
    body["payload"]["attachments"][0]["upload_id"] = json!(id);
    let r = send(
        s.req_anon("POST", "/v1/intents").set("x-api-key", &other),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 422, "another sender cannot attach it: {}", r.text);
    let r = send(
        s.req_anon("POST", "/v1/intents").set("x-api-key", &docs),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    assert_eq!(get(&s, &other, &status).status, 200);
    assert_eq!(get(&s, &other, &content).text, "hello");
    let third = agent_key(&s, "third", &["team/third"]);
    assert_error(&get(&s, &third, &content), 404, "upload_not_found");
}

/// Regression guard: a SIGKILL in the middle of a PUT must not leave a `ready` record (or a
/// finished file) of the bytes that had arrived.
#[test]
fn a_sigkill_during_an_upload_leaves_no_ready_record_of_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("axme.db");
    let mut s = Server::start_on(&data, &[]);
    let size = 1_000_000usize;
    let id = declare(&s, ADMIN_KEY, OWNER, size).json["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "PUT /v1/media/{id}/content HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {ADMIN_KEY}\r\ncontent-type: application/pdf\r\ncontent-length: {size}\r\n\r\n"
    )
    .unwrap();
    conn.write_all(&vec![7u8; size / 2]).unwrap();
    conn.flush().unwrap();
    let part = media_dir(&s).join(format!("{id}.part"));
    poll_until(Duration::from_secs(20), "the partial file", || {
        std::fs::metadata(&part).ok().filter(|m| m.len() > 0)
    });
    s.kill();
    drop(conn);

    let s = Server::start_on(&data, &[]);
    let r = get(&s, ADMIN_KEY, &format!("/v1/media/{id}"));
    assert_eq!(r.json["upload"]["status"], "pending", "{}", r.text);
    assert_error(
        &finalize(&s, ADMIN_KEY, &id, size, None),
        409,
        "upload_incomplete",
    );
    assert!(
        !media_dir(&s).join(&id).exists(),
        "no finished file of a partial upload"
    );
    assert_error(
        &get(&s, ADMIN_KEY, &format!("/v1/media/{id}/content")),
        409,
        "upload_not_ready",
    );
}

#[test]
fn retention_removes_an_upload_with_the_intent_that_attaches_it() {
    let s = Server::start_args(&["--retention", "1s"]);
    let kept = ready_upload(&s, ADMIN_KEY, "agent://admin", b"kept");
    let attached = ready_upload(&s, ADMIN_KEY, "agent://admin", b"attached");
    let mut body = intent_body("agent://team/signer");
    body["payload"] = json!({"attachments": [{"upload_id": attached}]});
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap().to_string();
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The newest intent is always kept; this one makes the first one removable.
    s.create_intent("agent://team/later");
    poll_until(Duration::from_secs(20), "the intent to be removed", || {
        (s.get(&format!("/v1/intents/{id}")).status == 404).then_some(())
    });
    assert_error(
        &s.get(&format!("/v1/media/{attached}")),
        404,
        "upload_not_found",
    );
    assert_eq!(
        s.get(&format!("/v1/media/{kept}")).status,
        200,
        "an upload no intent attaches stays"
    );
}
