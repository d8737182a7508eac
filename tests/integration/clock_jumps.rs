//! Steps of the system clock against the real binary: it runs under libfaketime, whose offset the
//! test rewrites in a file the library reads on every call, while the monotonic clock stays real.
//! Relative timers (leases, push retries, reminders, nack delays) keep their remaining time across
//! a jump either way and fire exactly once; an absolute `deadline_at` stays a wall-clock instant,
//! so a forward jump past it times the intent out and a backward jump puts it off. Every "when"
//! is checked on the server's own timestamps (a timer that fired at the jump would be an hour
//! off), with seconds of slack, never as a speed.
//!
//! Needs Debian's `faketime` package (`apt-get install -y faketime`); tests/deps.sh installs
//! it. AXME_FAKETIME_LIB points at another libfaketime.so.1.

use crate::claims_support;
use crate::common;
use crate::receiver;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use claims_support::*;
use common::*;
use receiver::{address, closed_port, deliveries_of, register_http};
use serde_json::{json, Value};

const HOUR: f64 = 3600.0;
/// How late a timer may fire after its time (the scheduler is within milliseconds; this is
/// for a loaded machine).
const LATE: f64 = 15.0;
/// How early it may look: jumps are measured to the millisecond, timestamps rounded.
const EARLY: f64 = 1.0;

/// Where libfaketime lives, or a panic that says how to install it.
fn libfaketime() -> PathBuf {
    if let Some(p) = std::env::var_os("AXME_FAKETIME_LIB") {
        return PathBuf::from(p);
    }
    let found = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!(
            "libfaketime is missing: tests/clock_jumps.rs steps the server's wall clock with it. \
             Install Debian's package as root: `apt-get install -y faketime` (tests/deps.sh \
             does), or set AXME_FAKETIME_LIB to a libfaketime.so.1"
        )
    })
}

/// The real wall clock (the test itself is not under libfaketime), Unix seconds.
fn real_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A server timestamp as Unix seconds.
fn secs(v: &Value) -> f64 {
    parse_time(v).unix_timestamp_nanos() as f64 / 1e9
}

fn rfc3339(unix: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos((unix * 1e9) as i128)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// Asserts that `later - earlier` (server timestamps) is `expected` seconds, allowing it to be
/// [`EARLY`] early or [`LATE`] late.
fn assert_gap(what: &str, earlier: &Value, later: &Value, expected: f64) {
    let gap = secs(later) - secs(earlier);
    assert!(
        gap >= expected - EARLY && gap <= expected + LATE,
        "{what}: {gap:.3}s from {earlier} to {later}, expected {expected}s"
    );
}

/// Polls `f` every 100 ms for up to `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The real binary under libfaketime, its wall clock offset by what the test writes in a file.
struct Stepped {
    server: Option<Server>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    lib: PathBuf,
}

impl Stepped {
    fn start(extra: &[&str]) -> Stepped {
        let lib = libfaketime();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Stepped {
            server: None,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            lib,
        };
        s.step(0);
        s.launch();
        assert!(
            s.offset().abs() < 5.0,
            "the server's clock is {:.1}s off before any step",
            s.offset()
        );
        s
    }

    fn offset_file(&self) -> PathBuf {
        self.dir.path().join("faketime.rc")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("axme.log")
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log file");
        let lib = self.lib.to_string_lossy().into_owned();
        let rc = self.offset_file().to_string_lossy().into_owned();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let env = [
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", rc.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            // Instant (tokio's timers, the server clock's monotonic part) stays real.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ];
        let data = self.dir.path().join("axme.db");
        self.server = Some(Server::start_with(&data, &extra, Some(log), &env));
    }

    /// Stops the server gracefully (so libfaketime removes its shared memory) and starts it
    /// again on the same database and offset file.
    fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.terminate();
        }
    }

    /// Sets the server's wall clock to the real one plus `seconds`.
    fn step(&self, seconds: i64) {
        let tmp = self.dir.path().join("faketime.rc.tmp");
        std::fs::write(&tmp, format!("{seconds:+}\n")).expect("write offset");
        std::fs::rename(&tmp, self.offset_file()).expect("replace offset");
    }

    /// How far the server's clock is from the real one now, in seconds: read from the
    /// `created_at` of a new intent.
    fn offset(&self) -> f64 {
        let before = real_now();
        let r = self.post("/v1/intents", &intent_body("agent://clock/probe"));
        assert_eq!(r.status, 200, "{}", r.text);
        secs(&r.json["created_at"]) - (before + real_now()) / 2.0
    }

    /// Steps the wall clock by `seconds` and waits until the server's clock followed.
    fn jump(&self, seconds: i64) {
        self.step(seconds);
        wait_for(
            &format!("the server's clock to be {seconds:+}s off"),
            Duration::from_secs(20),
            || ((self.offset() - seconds as f64).abs() < 3.0).then_some(()),
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl std::ops::Deref for Stepped {
    type Target = Server;
    fn deref(&self) -> &Server {
        self.server.as_ref().expect("a running server")
    }
}

impl Drop for Stepped {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The one delivery of an intent's push.
fn push_of(s: &Server, id: &str) -> Value {
    let mut d = deliveries_of(s, id);
    assert_eq!(d.len(), 1, "{d:?}");
    d.remove(0)
}

fn attempts(d: &Value) -> Vec<Value> {
    d["attempts"].as_array().expect("attempts").clone()
}

/// Waits until every intent's push has `n` attempts; returns the deliveries.
fn wait_attempts(s: &Server, ids: &[String], n: usize, limit: Duration) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            wait_for(&format!("{n} attempts of {id}'s push"), limit, || {
                let d = push_of(s, id);
                (attempts(&d).len() >= n).then_some(d)
            })
        })
        .collect()
}

/// How many `intent.delivery_failed` and `intent.reminder` events `id` has.
fn fired(s: &Server, id: &str) -> (usize, usize) {
    (
        events_of(s, id, "intent.delivery_failed").len(),
        events_of(s, id, "intent.reminder").len(),
    )
}

fn register_dead_push(s: &Server, name: &str) -> String {
    let to = address(name);
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    register_http(s, &to, &url, json!({}));
    to
}

fn schedule(first_retry: &str) -> Vec<String> {
    [
        "--push-retry-schedule",
        &format!("{first_retry},1h"),
        "--push-throttle-floor-seconds",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Regression: a forward step of the system clock (a Pi without RTC whose NTP sync lands hours
/// later) expired every lease, ran every push retry and fired every reminder at once.
#[test]
fn a_forward_jump_neither_fires_relative_timers_early_nor_spares_a_passed_deadline() {
    let flags = schedule("20s");
    let s = Stepped::start(&args(&flags));

    // 50 held leases of 30 s.
    let held_to = inbox("held");
    let held = create_n(&*s, &held_to, 50);
    let claims = claim(&*s, &held_to, json!({"max": 50, "lease_seconds": 30}));
    assert_eq!(claims.len(), 50);
    // 50 pushes to a closed port: the first attempt now, the retry 20 s later.
    let dead = register_dead_push(&s, "dead");
    let pushed = create_n(&*s, &dead, 50);
    let before = wait_attempts(&s, &pushed, 1, Duration::from_secs(20));
    // A reminder 20 s after creation; a deadline ten minutes away on the wall clock.
    let reminded = create_with(&*s, &inbox("remind"), json!({"remind_after_seconds": 20}));
    let deadline = rfc3339(real_now() + 600.0);
    let due = create_with(&*s, &inbox("due"), json!({"deadline_at": deadline}));
    let set_up = Instant::now();

    s.jump(3600);

    // The absolute deadline is an hour behind the server's time now.
    let out = wait_status(&*s, &due, "TIMED_OUT");
    assert!(secs(&out["updated_at"]) >= secs(&json!(deadline)));

    // Right after the jump, while the relative timers cannot be due yet (they are 20 s and
    // more; a machine too slow to get here in 15 s skips this part, the rest still holds).
    let early = set_up.elapsed() < Duration::from_secs(15);
    if early {
        for id in &held {
            assert_eq!(intent(&*s, id)["status"], "DELIVERED", "{id}");
        }
        for (id, d0) in pushed.iter().zip(&before) {
            let d = push_of(&s, id);
            assert_eq!(attempts(&d).len(), 1, "retried at the jump: {d}");
            assert_gap(
                "next attempt moved with the jump",
                &d0["next_attempt_at"],
                &d["next_attempt_at"],
                HOUR,
            );
        }
        assert_eq!(fired(&s, &reminded), (0, 0), "reminded at the jump");
    } else {
        eprintln!("clock_jumps: setup took over 15 s; skipping the right-after-the-jump checks");
    }
    // Half the leases are acked with their tokens: still theirs.
    for c in &claims[..25] {
        assert_ok(&ack(&*s, token(c), json!({"status": "COMPLETED"})));
    }

    // Later, each relative timer fires once, at its time.
    let limit = Duration::from_secs(60);
    for c in &claims[25..] {
        let id = claimed_id(c);
        wait_for(&format!("{id} back after its lease"), limit, || {
            (intent(&*s, id)["status"] == "SUBMITTED").then_some(())
        });
    }
    let after = wait_attempts(&s, &pushed, 2, limit);
    wait_for("the reminder", limit, || {
        (fired(&s, &reminded).1 > 0).then_some(())
    });
    // Anything fired twice would show by now. A fixed window, because a doubled push retry
    // has no readiness signal to wait for (a timer's round only covers leases and reminders);
    // two rounds of the 1 s scheduler tick.
    thread::sleep(Duration::from_secs(2));

    for c in &claims[..25] {
        let id = claimed_id(c);
        assert_eq!(intent(&*s, id)["status"], "COMPLETED");
        assert_eq!(fired(&s, id), (0, 0), "{id}");
    }
    for c in &claims[25..] {
        let id = claimed_id(c);
        let failed = events_of(&*s, id, "intent.delivery_failed");
        assert_eq!(failed.len(), 1, "{id}: {failed:?}");
        assert_eq!(failed[0]["details"]["reason"], "lease_expired");
        let delivered = events_of(&*s, id, "intent.delivered");
        assert_gap("lease", &delivered[0]["at"], &failed[0]["at"], HOUR + 30.0);
    }
    for ((id, d0), d1) in pushed.iter().zip(&before).zip(&after) {
        let d = push_of(&s, id);
        let a = attempts(&d);
        assert_eq!(a.len(), 2, "{d}");
        assert_eq!(d, *d1, "changed after its retry");
        // The schedule's 20 s carry jitter; the time set before the jump is what counts.
        assert_gap("retry", &d0["next_attempt_at"], &a[1]["at"], HOUR);
    }
    let reminders = events_of(&*s, &reminded, "intent.reminder");
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_gap(
        "reminder",
        &intent(&*s, &reminded)["created_at"],
        &reminders[0]["at"],
        HOUR + 20.0,
    );
    assert_eq!(
        events_of(&*s, &due, "intent.timed_out").len(),
        1,
        "{:?}",
        event_types(&*s, &due)
    );
    let log = s.log_text();
    assert!(log.contains("clock jumped by +1h 0m"), "{log}");
}

/// Regression: a backward step of the system clock left every lease, retry and reminder set
/// before it waiting for the size of the step.
#[test]
fn a_backward_jump_does_not_hold_relative_timers_back_and_puts_a_deadline_off() {
    let flags = schedule("3s");
    let s = Stepped::start(&args(&flags));

    let to = inbox("short");
    let leased = create_with(&*s, &to, json!({}));
    claim_one(&*s, &to, json!({"lease_seconds": 3}));
    let dead = register_dead_push(&s, "back");
    let pushed = create_with(&*s, &dead, json!({}));
    let retry = wait_attempts(
        &s,
        std::slice::from_ref(&pushed),
        1,
        Duration::from_secs(20),
    );
    let reminded = create_with(&*s, &inbox("remind"), json!({"remind_after_seconds": 3}));
    let deadline_at = real_now() + 3.0;
    let due = create_with(
        &*s,
        &inbox("due"),
        json!({"deadline_at": rfc3339(deadline_at)}),
    );

    s.jump(-3600);

    let limit = Duration::from_secs(30);
    wait_for("the lease to end", limit, || {
        (intent(&*s, &leased)["status"] == "SUBMITTED").then_some(())
    });
    wait_attempts(&s, std::slice::from_ref(&pushed), 2, limit);
    wait_for("the reminder", limit, || {
        (fired(&s, &reminded).1 > 0).then_some(())
    });
    // Past the deadline on the real clock; anything fired twice would show by now too.
    let past = deadline_at + 2.0 - real_now();
    thread::sleep(Duration::from_secs_f64(past.max(2.0)));

    let failed = events_of(&*s, &leased, "intent.delivery_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let delivered = events_of(&*s, &leased, "intent.delivered");
    assert_gap("lease", &delivered[0]["at"], &failed[0]["at"], 3.0 - HOUR);
    let a = attempts(&push_of(&s, &pushed));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_gap("retry", &retry[0]["next_attempt_at"], &a[1]["at"], -HOUR);
    let reminders = events_of(&*s, &reminded, "intent.reminder");
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_gap(
        "reminder",
        &intent(&*s, &reminded)["created_at"],
        &reminders[0]["at"],
        3.0 - HOUR,
    );
    // The absolute deadline is an hour ahead of the server's time again.
    assert_eq!(intent(&*s, &due)["status"], "SUBMITTED");
    let log = s.log_text();
    assert!(log.contains("clock jumped by -1h 0m"), "{log}");
}

/// A restart after a jump, and a jump back after the restart: every relative timer still fires
/// once, at its time measured in real seconds; a nack delay holds its intent just as long.
#[test]
fn a_restart_between_jumps_neither_loses_nor_repeats_a_timer() {
    let flags = schedule("8s");
    let mut s = Stepped::start(&args(&flags));

    let to = inbox("restart");
    let leased = create_with(&*s, &to, json!({}));
    claim_one(&*s, &to, json!({"lease_seconds": 8}));
    let nacked_to = inbox("nacked");
    let nacked = create_with(&*s, &nacked_to, json!({}));
    let c = claim_one(&*s, &nacked_to, json!({"lease_seconds": 60}));
    assert_ok(&nack(&*s, token(&c), json!({"delay_seconds": 8})));
    let dead = register_dead_push(&s, "restart");
    let pushed = create_with(&*s, &dead, json!({}));
    let retry = wait_attempts(
        &s,
        std::slice::from_ref(&pushed),
        1,
        Duration::from_secs(20),
    );
    let reminded = create_with(&*s, &inbox("remind"), json!({"remind_after_seconds": 8}));

    s.jump(3600);
    s.restart();
    assert!(
        (s.offset() - HOUR).abs() < 3.0,
        "restarted on the stepped clock"
    );
    s.jump(0);

    let limit = Duration::from_secs(30);
    let (claimed, _) = claim_when_ready(&*s, &nacked_to, json!({}));
    wait_for("the lease to end", limit, || {
        (intent(&*s, &leased)["status"] == "SUBMITTED").then_some(())
    });
    wait_attempts(&s, std::slice::from_ref(&pushed), 2, limit);
    wait_for("the reminder", limit, || {
        (fired(&s, &reminded).1 > 0).then_some(())
    });
    // Anything fired twice would show by now: two rounds of the 1 s scheduler tick, a fixed
    // window for the same reason as in the forward jump's test.
    thread::sleep(Duration::from_secs(2));

    // Up an hour and back down: the server's timestamps of set and fired are 8 s apart.
    assert_eq!(claimed_id(&claimed), nacked);
    let nack_at = &events_of(&*s, &nacked, "intent.delivery_failed")[0]["at"];
    let delivered = events_of(&*s, &nacked, "intent.delivered");
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert_gap("nack delay", nack_at, &delivered[1]["at"], 8.0);

    let failed = events_of(&*s, &leased, "intent.delivery_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let delivered = events_of(&*s, &leased, "intent.delivered");
    assert_gap("lease", &delivered[0]["at"], &failed[0]["at"], 8.0);
    let a = attempts(&push_of(&s, &pushed));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_gap("retry", &retry[0]["next_attempt_at"], &a[1]["at"], 0.0);
    let reminders = events_of(&*s, &reminded, "intent.reminder");
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_gap(
        "reminder",
        &intent(&*s, &reminded)["created_at"],
        &reminders[0]["at"],
        8.0,
    );
    let log = s.log_text();
    assert!(log.contains("clock jumped by +1h 0m"), "{log}");
    assert!(log.contains("clock jumped by -1h 0m"), "{log}");
}
