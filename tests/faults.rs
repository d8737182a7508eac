//! Storage faults while the server runs: the database's filesystem fills up, and the storage
//! starts refusing writes with `EROFS` (what a filesystem that the kernel remounted read-only
//! answers). Writes must be refused with a clear 503 and change nothing, reads must go on, and
//! once space (or write access) returns the server must take writes again without a restart,
//! having lost nothing it acknowledged and with an intact database.
//!
//! The full disk is a small tmpfs mounted for the test; the refused writes come from libfiu's
//! POSIX fault injector (Debian `fiu-utils`, installed by tests/deps.sh), switched on and off in
//! the running server with `fiu-ctrl` (a filesystem cannot be remounted read-only under a process
//! that holds files open for writing). Both need root, as CI runs; elsewhere the tests say so and
//! pass without checking anything.

#[allow(dead_code)] // shared with the integration binary; this one uses part of it
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{intent_body, Server};
use serde_json::json;

/// Says why a test did not run; under `AXME_REQUIRE_FAULT_TOOLS` (tests/run-all.sh as root)
/// that is a failure instead.
fn not_run(why: &str) {
    assert!(
        std::env::var_os("AXME_REQUIRE_FAULT_TOOLS").is_none(),
        "{why}, and AXME_REQUIRE_FAULT_TOOLS is set"
    );
    eprintln!("{why}: storage fault test not run");
}

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
            not_run("cannot mount a tmpfs here (needs root)");
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

/// The running server's libfiu control: turns failure points on and off through `fiu-ctrl`.
struct Faults {
    prefix: PathBuf,
    pid: u32,
}

impl Faults {
    fn run(&self, command: &str) {
        let ok = Command::new("fiu-ctrl")
            .arg("-f")
            .arg(&self.prefix)
            .args(["-c", command])
            .arg(self.pid.to_string())
            .status()
            .expect("fiu-ctrl")
            .success();
        assert!(ok, "fiu-ctrl -c {command:?} failed");
    }

    /// Every positioned write of a file (how SQLite writes its database and log) fails with
    /// `EROFS`, or works again.
    fn refuse_writes(&self, on: bool) {
        for point in ["pwrite", "pwrite64", "pwritev", "pwritev64"] {
            let name = format!("posix/io/rw/{point}");
            if on {
                // failinfo is the errno the call fails with: 30 is EROFS.
                self.run(&format!("enable name={name},failinfo=30"));
            } else {
                self.run(&format!("disable name={name}"));
            }
        }
    }
}

fn fiu_available() -> bool {
    let found = Command::new("fiu-run")
        .arg("-h")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        not_run("fiu-run not found (Debian fiu-utils; tests/deps.sh installs it)");
    }
    found
}

fn intent_count(s: &Server) -> usize {
    let r = s.get("/v1/intents?limit=200");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"].as_array().unwrap().len()
}

#[test]
fn a_storage_that_refuses_writes_gets_503_and_recovers_without_a_restart() {
    if !fiu_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let prefix = dir.path().join("fiu");
    let prefix_arg = prefix.to_str().unwrap();
    let mut fiu = Command::new("fiu-run");
    fiu.args(["-x", "-f", prefix_arg]).arg(common::bin());
    let mut s = Server::spawn(fiu, &db, &[], None);
    let faults = Faults {
        prefix: prefix.clone(),
        pid: s.pid(),
    };

    let mut acknowledged: Vec<String> = (0..20)
        .map(|_| s.create_intent("agent://fault/worker"))
        .collect();
    let open = acknowledged[0].clone();
    let before = intent_count(&s);

    faults.refuse_writes(true);
    for _ in 0..5 {
        let r = s.post("/v1/intents", &intent_body("agent://fault/worker"));
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(r.has_error_shape(), "{}", r.text);
        assert_eq!(r.code(), "unavailable", "{}", r.text);
        assert!(
            r.text.contains("storage failed") && r.text.contains("write error"),
            "the error should say the storage refused a write: {}",
            r.text
        );
    }
    let r = s.post(
        &format!("/v1/intents/{open}/resolve"),
        &json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    // Reads go on, and nothing refused was stored.
    assert_eq!(s.get("/health").status, 200);
    assert_eq!(intent_count(&s), before);
    assert_eq!(
        s.get(&format!("/v1/intents/{open}")).json["intent"]["status"],
        "SUBMITTED"
    );

    // Write access returns: writes work again, no restart.
    faults.refuse_writes(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.post(
            &format!("/v1/intents/{open}/resolve"),
            &json!({"status": "COMPLETED", "result": {"ok": 1}}),
        );
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover once the storage took them again: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    acknowledged.push(s.create_intent("agent://fault/worker"));
    assert_eq!(intent_count(&s), before + 1);

    s.terminate();
    integrity_check(&db);
    let s = Server::start_on(&db, &[]);
    assert_eq!(intent_count(&s), before + 1);
    for id in &acknowledged {
        let r = s.get(&format!("/v1/intents/{id}/events"));
        assert_eq!(r.status, 200, "{}", r.text);
        let events = r.json["events"].as_array().unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
    let r = s.get(&format!("/v1/intents/{open}"));
    assert_eq!(r.json["intent"]["status"], "COMPLETED", "{}", r.text);
}
