//! The client subcommands of the `axme` binary, end to end against a real server: each command
//! in its human and `--json` forms, exit codes, and the errors a person meets (server
//! unreachable, bad or missing key, 404, 422). Commands that follow a stream are started as
//! child processes and read line by line; the test acts only after the line that shows the
//! command got where it needed to be, never after a sleep.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// What a finished client command printed and how it exited.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Each stdout line parsed as JSON (streams in `--json` mode).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    /// Asserts the command exited with `code` and said `needle` on stderr.
    fn fails(&self, code: i32, needle: &str) {
        assert!(
            self.code == code && self.stderr.contains(needle),
            "{self:?}"
        );
    }
}

/// The client binary with a clean environment pointed at `server` with `key`.
fn client(server: &str, key: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("AXME_API_KEY")
        .env_remove("AXME_SERVER")
        .env("AXME_SERVER", server)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        cmd.env("AXME_API_KEY", k);
    }
    cmd
}

fn run_with(server: &str, key: Option<&str>, args: &[&str]) -> Run {
    let out = client(server, key, args).output().expect("run axme");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a client command against `s` with its admin key.
fn axme(s: &Server, args: &[&str]) -> Run {
    run_with(&s.base, Some(&s.api_key), args)
}

/// A client command left running, its stdout read line by line.
struct Running {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl Running {
    fn start(s: &Server, args: &[&str]) -> Running {
        let mut child = client(&s.base, Some(&s.api_key), args)
            .spawn()
            .expect("spawn axme");
        let stdout = child.stdout.take().expect("stdout");
        Running {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; returns it.
    fn until(&mut self, needle: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read stdout");
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "the command ended without printing {needle:?}: {:?}",
            self.seen
        )
    }

    /// Waits for the exit; returns the code, every stdout line and stderr.
    fn finish(mut self) -> Run {
        for line in self.lines.by_ref() {
            self.seen.push(line.expect("read stdout"));
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).expect("read stderr");
        }
        let status = self.child.wait().expect("wait");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.seen.join("\n"),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `send --to TO --type TYPE` followed by `rest`.
fn send_args<'a>(to: &'a str, intent_type: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["send", "--to", to, "--type", intent_type];
    args.extend_from_slice(rest);
    args
}

/// A local address with nothing listening on it.
fn dead_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

fn resolve(s: &Server, id: &str, body: Value) {
    let r = s.post(&format!("/v1/intents/{id}/resolve"), &body);
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The next intent in `address`'s feed after `since` (a long poll: returns when it exists).
fn next_in_feed(s: &Server, address: &str, since: i64) -> Value {
    let r = s.get(&format!(
        "/v1/agents/{address}/intents?since={since}&wait_seconds=60"
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"][0].clone()
}

#[test]
fn healthcheck_says_ok_or_why_not() {
    let s = Server::start();
    let r = axme(&s, &["healthcheck"]).ok();
    assert!(r.stdout.starts_with("ok: axme "), "{r:?}");
    let v = axme(&s, &["healthcheck", "--json"]).ok().json();
    assert_eq!((&v["ok"], &v["status"]), (&json!(true), &json!("ok")));

    let dead = dead_server();
    let r = run_with(&dead, None, &["healthcheck"]);
    r.fails(1, &format!("unhealthy: cannot reach the server at {dead}"));
    assert_eq!(r.stderr.lines().count(), 1, "one line: {r:?}");
    let r = run_with("ftp://x", None, &["healthcheck"]);
    r.fails(1, "--server must be an http");
}

#[test]
fn send_prints_the_intent_and_reports_errors_clearly() {
    let s = Server::start();
    let r = axme(
        &s,
        &send_args(
            "team/w",
            "demo.task.v1",
            &["--payload", r#"{"n":1}"#, "--json"],
        ),
    )
    .ok();
    let created = r.json();
    assert_eq!(
        (&created["ok"], &created["status"]),
        (&json!(true), &json!("SUBMITTED"))
    );
    let id = created["intent_id"].as_str().unwrap();
    let intent = s.get(&format!("/v1/intents/{id}")).json["intent"].clone();
    assert_eq!(
        (
            &intent["to_agent"],
            &intent["payload"],
            &intent["from_agent"]
        ),
        (
            &json!("agent://team/w"),
            &json!({"n": 1}),
            &json!("agent://admin")
        )
    );
    assert_eq!(
        intent["correlation_id"].as_str().unwrap().len(),
        36,
        "a generated UUID"
    );

    let cid = uuid();
    let r = axme(
        &s,
        &send_args(
            "team/w",
            "demo.task.v1",
            &["--from", "agent://me", "--correlation-id", &cid],
        ),
    )
    .ok();
    assert!(
        r.stdout.starts_with("intent ") && r.stdout.contains(&cid),
        "{r:?}"
    );
    let id2 = r.stdout.split_whitespace().nth(1).unwrap();
    let intent = s.get(&format!("/v1/intents/{id2}")).json["intent"].clone();
    assert_eq!(
        (&intent["from_agent"], &intent["correlation_id"]),
        (&json!("agent://me"), &json!(cid))
    );

    let r = axme(&s, &send_args("team/w", "not-a-type", &[]));
    r.fails(1, "422 schema_invalid: intent_type");
    let r = axme(
        &s,
        &send_args("team/w", "demo.task.v1", &["--payload", "[1]"]),
    );
    r.fails(1, "--payload must be a JSON object");
    let r = axme(
        &s,
        &send_args("team/w", "demo.task.v1", &["--payload", "{"]),
    );
    r.fails(1, "--payload is not valid JSON");

    let r = run_with(
        &s.base,
        Some("axme_not_a_key_of_this_server"),
        &send_args("w/x", "demo.task.v1", &[]),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("refused the API key") && r.stderr.contains("401 auth_failed"),
        "{r:?}"
    );
    let r = run_with(&s.base, None, &send_args("w/x", "demo.task.v1", &[]));
    r.fails(1, "no API key was given");
    let dead = dead_server();
    let r = run_with(&dead, Some("k"), &send_args("w/x", "demo.task.v1", &[]));
    r.fails(1, &format!("cannot reach the server at {dead}"));
    let listed = s.get("/v1/intents?to_agent=agent://w/x");
    assert_eq!(
        listed.json["intents"],
        json!([]),
        "no failed send created anything"
    );
}

#[test]
fn watch_follows_the_timeline_until_the_intent_ends() {
    let s = Server::start();
    let id = s.create_intent("agent://team/w");
    let mut w = Running::start(&s, &["watch", &id]);
    assert!(w.until("TIME (UTC)").contains("EVENT"));
    assert!(w.until("intent.submitted").contains("SUBMITTED"));
    resolve(
        &s,
        &id,
        json!({"status": "COMPLETED", "result": {"answer": 42}}),
    );
    let r = w.finish();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("intent.completed"), "{r:?}");
    assert!(
        r.stdout.contains("result: {") && r.stdout.contains("\"answer\": 42"),
        "{r:?}"
    );

    // Replayed in full once over, as one JSON event per line.
    let events = axme(&s, &["watch", &id, "--json"]).ok().json_lines();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(events[2]["status"], "COMPLETED");

    let failed = s.create_intent("agent://team/w");
    let mut w = Running::start(&s, &["watch", &failed, "--json"]);
    w.until("intent.submitted");
    resolve(
        &s,
        &failed,
        json!({"status": "FAILED", "error": {"code": "boom", "message": "it broke"}}),
    );
    let r = w.finish();
    assert_eq!(r.code, 3, "an intent that did not complete: {r:?}");
    assert!(
        r.stderr.contains(&format!("intent {failed} ended FAILED")),
        "{r:?}"
    );

    let r = axme(&s, &["watch", "8d7c3f43-5d1c-4a57-9a43-7e4f1f5a1b2c"]);
    r.fails(1, "404 intent_not_found");
    assert_eq!(r.stdout, "", "no header for an intent that does not exist");
    let r = axme(&s, &["watch", "nope"]);
    r.fails(1, "422 schema_invalid: intent_id");
}

#[test]
fn send_wait_prints_the_result_or_gives_up_at_the_timeout() {
    let s = Server::start();
    let mut w = Running::start(&s, &send_args("team/wait", "demo.task.v1", &["--wait"]));
    let first = w.until(" sent to ");
    let id = first.split_whitespace().nth(1).unwrap().to_string();
    w.until("intent.submitted");
    resolve(
        &s,
        &id,
        json!({"status": "COMPLETED", "result": {"done": true}}),
    );
    let r = w.finish();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("COMPLETED") && r.stdout.contains("\"done\": true"),
        "{r:?}"
    );

    // With --json the one document printed is the final intent.
    let w = Running::start(
        &s,
        &send_args("team/wait2", "demo.task.v1", &["--wait", "--json"]),
    );
    let item = next_in_feed(&s, "team/wait2", 0);
    let id = item["intent_id"].as_str().unwrap();
    resolve(
        &s,
        id,
        json!({"status": "CANCELED", "reason": "not needed"}),
    );
    let r = w.finish();
    assert_eq!(r.code, 3, "{r:?}");
    let v = r.json();
    assert_eq!(
        (&v["ok"], &v["intent"]["intent_id"], &v["intent"]["status"]),
        (&json!(true), &json!(id), &json!("CANCELED"))
    );

    let r = axme(
        &s,
        &send_args("team/nobody", "demo.task.v1", &["--wait", "--timeout", "1"]),
    );
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("is still") && r.stderr.contains("axme watch"),
        "{r:?}"
    );
}

#[test]
fn listen_prints_intents_as_they_arrive() {
    let s = Server::start();
    let first = s.create_intent("agent://team/l");
    let mut l = Running::start(&s, &["listen", "team/l", "--count", "2", "--json"]);
    let line = l.until(&first);
    let item: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&item["event_type"], &item["to_agent"]),
        (&json!("intent.submitted"), &json!("agent://team/l"))
    );
    // The listener is now live: what arrives next is printed, then it stops at --count.
    let second = s.create_intent("agent://team/l");
    let r = l.finish();
    assert_eq!(r.code, 0, "{r:?}");
    let items = r.json_lines();
    assert_eq!(items.len(), 2, "{r:?}");
    assert_eq!(items[1]["intent_id"], json!(second));
    assert!(items[1]["seq"].as_i64() > items[0]["seq"].as_i64());
    assert_eq!(
        s.get(&format!("/v1/intents/{first}")).json["intent"]["status"],
        "DELIVERED",
        "listening hands intents over"
    );

    let r = axme(&s, &["listen", "agent://team/l", "--once"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("SEQ") && lines[0].contains("INTENT_ID"),
        "{r:?}"
    );
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(
        lines[1].contains(&first) && lines[1].contains("demo.task.v1"),
        "{r:?}"
    );

    let since = items[0]["seq"].as_i64().unwrap().to_string();
    let r = axme(
        &s,
        &["listen", "team/l", "--since", &since, "--once", "--json"],
    )
    .ok();
    assert_eq!(r.json()["intent_id"], json!(second), "{r:?}");

    let r = axme(&s, &["listen", "team/l", "--status", "BOGUS", "--once"]);
    r.fails(1, "422 schema_invalid: status");
    let r = run_with(&dead_server(), Some("k"), &["listen", "team/l"]);
    r.fails(1, "cannot reach the server");
}

#[test]
fn agents_are_added_listed_and_removed() {
    let s = Server::start();
    let r = axme(
        &s,
        &[
            "agents",
            "add",
            "team/s",
            "--mode",
            "stream",
            "--display-name",
            "Stream one",
        ],
    )
    .ok();
    assert_eq!(r.stdout.trim(), "agent agent://team/s registered (stream)");
    let r = axme(
        &s,
        &[
            "agents",
            "add",
            "agent://team/h",
            "--mode",
            "http",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--json",
        ],
    )
    .ok();
    let secret = r.json()["agent"]["webhook_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{r:?}");
    let r = axme(&s, &["agents", "add", "team/p", "--mode", "poll"]).ok();
    assert!(
        !r.stdout.contains("whsec_"),
        "no secret for a pull agent: {r:?}"
    );

    let r = axme(&s, &["agents", "list"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("ADDRESS") && lines[0].contains("MODE"),
        "{r:?}"
    );
    let col = lines[0].find("MODE").unwrap();
    for line in &lines[1..] {
        let mode = line[col..].split_whitespace().next().unwrap();
        assert!(
            ["stream", "http", "poll", "internal"].contains(&mode),
            "columns are aligned: {r:?}"
        );
    }
    assert!(
        r.stdout.contains("Stream one") && r.stdout.contains("http://127.0.0.1:9/hook"),
        "{r:?}"
    );
    let list = axme(&s, &["agents", "list", "--json"]).ok().json();
    let ours = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["address"].as_str().unwrap().starts_with("agent://team/"))
        .count();
    assert_eq!(ours, 3, "{list}");
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown only once"
    );

    let r = axme(&s, &["agents", "rm", "team/s"]).ok();
    assert_eq!(r.stdout.trim(), "agent agent://team/s retired");
    let r = axme(&s, &["agents", "rm", "team/s"]);
    r.fails(1, "404 agent_not_found");
    let r = axme(&s, &["agents", "add", "team/x", "--mode", "http"]);
    r.fails(1, "422 schema_invalid: webhook_url");
    let r = axme(&s, &["agents", "add", "team/x", "--mode", "carrier-pigeon"]);
    assert_eq!(r.code, 2, "a usage error: {r:?}");
}

#[test]
fn keys_are_created_listed_and_revoked() {
    let s = Server::start();
    let r = axme(&s, &["keys", "create", "--name", "ops"]).ok();
    let key_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("API key"))
        .expect("key line");
    let ops_key = key_line.rsplit(' ').next().unwrap().to_string();
    assert!(ops_key.starts_with("axme_"), "{r:?}");
    let created = axme(
        &s,
        &[
            "keys", "create", "--name", "worker", "--role", "agent", "--agent", "team/a",
            "--agent", "team/b", "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(
        created["key"]["agents"],
        json!(["agent://team/a", "agent://team/b"])
    );
    let worker_key = created["api_key"].as_str().unwrap().to_string();
    let worker_id = created["key"]["key_id"].as_str().unwrap().to_string();

    let r = run_with(&s.base, Some(&ops_key), &["keys", "list"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{r:?}");
    assert!(
        lines[3].contains("worker") && lines[3].contains("agent://team/a,agent://team/b"),
        "{r:?}"
    );
    assert!(!r.stdout.contains(&worker_key), "{r:?}");
    let list = axme(&s, &["keys", "list", "--json"]).ok().json();
    assert_eq!(list["keys"].as_array().unwrap().len(), 3);

    // An agent key may not manage keys.
    let r = run_with(&s.base, Some(&worker_key), &["keys", "list"]);
    r.fails(1, "403 forbidden");

    let r = axme(&s, &["keys", "revoke", &worker_id]).ok();
    assert!(r.stdout.contains("revoked at"), "{r:?}");
    let r = run_with(&s.base, Some(&worker_key), &["agents", "list"]);
    r.fails(1, "refused the API key");

    // The last live admin key stays.
    let admin_id = list["keys"][0]["key_id"].as_str().unwrap().to_string();
    let ops_id = list["keys"][1]["key_id"].as_str().unwrap().to_string();
    axme(&s, &["keys", "revoke", &ops_id, "--json"]).ok();
    let r = axme(&s, &["keys", "revoke", &admin_id]);
    r.fails(1, "409 last_admin_key");
    let r = axme(
        &s,
        &["keys", "revoke", "8d7c3f43-5d1c-4a57-9a43-7e4f1f5a1b2c"],
    );
    r.fails(1, "404 key_not_found");
    let r = axme(&s, &["keys", "create", "--name", "w", "--role", "agent"]);
    r.fails(1, "422 schema_invalid: agents");
}

#[test]
fn backup_is_consistent_while_writes_go_on() {
    let s = Server::start();
    let before: Vec<String> = (0..50).map(|_| s.create_intent("agent://team/b")).collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.db");
    let out_str = out.to_str().unwrap();

    // A writer keeps creating intents while the backup is taken.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let base = s.base.clone();
    let writer = std::thread::spawn(move || {
        let mut made = 0u32;
        while stop_rx.try_recv().is_err() && made < 5000 {
            let req = agent()
                .post(&format!("{base}/v1/intents"))
                .set("x-api-key", ADMIN_KEY);
            let r = send(req, Some(intent_body("agent://team/busy").to_string()));
            assert_eq!(r.status, 200, "{}", r.text);
            made += 1;
            if made == 1 {
                started_tx.send(()).unwrap();
            }
        }
        made
    });
    started_rx.recv().expect("the writer is writing");
    let r = axme(&s, &["backup", out_str]).ok();
    let r2 = axme(&s, &["backup", out_str, "--json"]).ok();
    stop_tx.send(()).unwrap();
    let made = writer.join().unwrap();
    assert!(made > 0);
    assert!(r.stdout.contains("integrity ok"), "{r:?}");
    let v = r2.json();
    assert_eq!(
        (&v["ok"], &v["integrity_check"]),
        (&json!(true), &json!("ok"))
    );
    assert_eq!(
        v["bytes"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );

    let conn =
        rusqlite::Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for id in &before {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM intents WHERE intent_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "intent {id} created before the backup is in it");
    }
    // Every intent in the copy has its whole creation: a consistent snapshot.
    let torn: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM intents i WHERE (SELECT COUNT(*) FROM events e WHERE e.intent_id = i.intent_id) < 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(torn, 0);
    drop(conn);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec!["backup.db"],
        "no temporary file is left behind"
    );
    let server_dir: Vec<String> = std::fs::read_dir(s.data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(
        server_dir.is_empty(),
        "the server removed its copy: {server_dir:?}"
    );

    // The backup is a database a server can start on.
    let restored = Server::start_on(&out, &[]);
    let r = restored.get(&format!("/v1/intents/{}", before[0]));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn backup_errors_leave_nothing_behind() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.db");
    let r = run_with(
        &s.base,
        Some("axme_not_a_key_of_this_server"),
        &["backup", out.to_str().unwrap()],
    );
    r.fails(1, "401");
    let w = s.post(
        "/v1/keys",
        &json!({"name": "w", "role": "agent", "agents": ["team/w"]}),
    );
    let agent_key = w.json["api_key"].as_str().unwrap();
    let r = run_with(&s.base, Some(agent_key), &["backup", out.to_str().unwrap()]);
    r.fails(1, "403 forbidden");
    let r = axme(&s, &["backup", dir.path().to_str().unwrap()]);
    r.fails(1, "is a directory");
    let r = run_with(
        &dead_server(),
        Some("k"),
        &["backup", out.to_str().unwrap()],
    );
    r.fails(1, "cannot reach the server");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn tasks_are_listed_approved_and_rejected() {
    let s = Server::start();
    let approval = |title: &str| json!({"approver": "agent://alice", "title": title}).to_string();
    let payload = approval("Ship v2?");
    let mut sent = Running::start(
        &s,
        &send_args(
            "agent://internal/approval",
            "demo.approval.v1",
            &["--payload", &payload, "--wait"],
        ),
    );
    let id = sent
        .until(" sent to ")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    // The task is in alice's inbox in the same commit that makes the intent wait.
    sent.until("WAITING_FOR_HUMAN");

    let r = axme(&s, &["tasks", "list", "--owner", "agent://alice"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("THREAD_ID") && lines[0].contains("TITLE"),
        "{r:?}"
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("Ship v2?"),
        "{r:?}"
    );
    let v = axme(&s, &["tasks", "--owner", "agent://alice", "list", "--json"])
        .ok()
        .json();
    assert_eq!(v["tasks"][0]["intent_id"], json!(id));
    assert_eq!(v["tasks"][0]["human_task"]["title"], "Ship v2?");
    assert_eq!(v["tasks"][0]["status"], "WAITING");
    let none = axme(&s, &["tasks", "list", "--owner", "agent://bob"]).ok();
    assert_eq!(none.stdout.trim(), "no pending tasks");

    let r = axme(
        &s,
        &[
            "tasks",
            "approve",
            &id,
            "--comment",
            "go ahead",
            "--owner",
            "agent://alice",
        ],
    )
    .ok();
    assert!(r.stdout.starts_with(&format!("approved {id}")), "{r:?}");
    let r = sent.finish();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("COMPLETED") && r.stdout.contains("go ahead"),
        "{r:?}"
    );

    // A rejection fails the intent: watch exits 3.
    let rejected = {
        let r = axme(
            &s,
            &send_args(
                "agent://internal/approval",
                "demo.approval.v1",
                &["--payload", &approval("Delete prod?"), "--json"],
            ),
        )
        .ok();
        r.json()["intent_id"].as_str().unwrap().to_string()
    };
    let mut w = Running::start(&s, &["watch", &rejected]);
    w.until("WAITING_FOR_HUMAN");
    let v = axme(
        &s,
        &[
            "tasks",
            "reject",
            &rejected,
            "--comment",
            "no",
            "--owner",
            "agent://alice",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(v["ok"], json!(true), "{v}");
    let r = w.finish();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stdout.contains("intent.failed") && r.stdout.contains("rejected"),
        "{r:?}"
    );
    let r = axme(&s, &["tasks", "list"]).ok();
    assert_eq!(r.stdout.trim(), "no pending tasks");

    let r = axme(
        &s,
        &["tasks", "approve", &rejected, "--owner", "agent://alice"],
    );
    assert_eq!(r.code, 1, "a decided task cannot be decided again: {r:?}");
    assert!(r.stderr.contains("409"), "{r:?}");
    let r = axme(
        &s,
        &[
            "tasks",
            "approve",
            "8d7c3f43-5d1c-4a57-9a43-7e4f1f5a1b2c",
            "--owner",
            "agent://alice",
        ],
    );
    r.fails(1, "404");
}
