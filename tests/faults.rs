//! Storage faults: the database's filesystem fills up while the server runs.
//! Writes must be refused with a clear 503 and change nothing, reads must go on, and once space
//! (or write access) returns the server must take writes again without a restart, having lost
//! nothing it acknowledged and with an intact database. (A filesystem cannot be remounted
//! read-only under a process that holds files open for writing, so the read-only case is covered
//! by the error mapping of `SQLITE_READONLY` to the same 503, not by a test here.)
//!
//! The filesystem is a small tmpfs mounted for the test, which needs root (CI runs as root);
//! elsewhere the tests say so and pass without checking anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{intent_body, Server};
use serde_json::json;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("cannot mount a tmpfs here (needs root): storage fault test not run");
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A body of about `kib` KiB of payload.
fn big_intent(kib: usize) -> serde_json::Value {
    let mut b = intent_body("agent://fault/worker");
    b["payload"] = json!({"blob": "x".repeat(kib * 1024)});
    b
}

fn integrity_check(db: &PathBuf) {
    let conn = rusqlite::Connection::open(db).expect("open for the check");
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(verdict, "ok");
}

#[test]
fn a_full_disk_refuses_writes_with_503_and_recovers_without_a_restart() {
    let Some(fs) = SmallFs::mount("12m") else {
        return;
    };
    // Room the test can give back later.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 5 * 1024 * 1024]).expect("ballast");
    let db = fs.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);

    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for _ in 0..400 {
        let r = s.post("/v1/intents", &big_intent(60));
        match r.status {
            200 => acknowledged.push(r.json["intent_id"].as_str().unwrap().to_string()),
            _ => {
                refusal = Some(r);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert_eq!(refusal.status, 503, "{}", refusal.text);
    assert!(refusal.has_error_shape(), "{}", refusal.text);
    assert_eq!(refusal.code(), "unavailable", "{}", refusal.text);
    assert!(
        refusal.text.contains("full"),
        "the error should say the disk is full: {}",
        refusal.text
    );
    assert!(!acknowledged.is_empty(), "nothing fit on the disk at all");

    // Reads go on while writes are refused, and every acknowledged intent is there.
    for id in &acknowledged {
        let r = s.get(&format!("/v1/intents/{id}"));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(s.get("/health").status, 200);

    // Space returns: writes work again, no restart.
    std::fs::remove_file(&ballast).expect("remove ballast");
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let r = s.post("/v1/intents", &intent_body("agent://fault/worker"));
        if r.status == 200 {
            break r.json["intent_id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover once space returned: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    s.terminate();
    integrity_check(&db);
    let s = Server::start_on(&db, &[]);
    for id in acknowledged.iter().chain([&id]) {
        let r = s.get(&format!("/v1/intents/{id}/events"));
        assert_eq!(r.status, 200, "{}", r.text);
        let seqs: Vec<i64> = r.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
}
