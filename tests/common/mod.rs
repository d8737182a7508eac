//! The one way integration tests start a server: the real `axme` binary on `127.0.0.1:0` with a
//! fresh database in a temporary directory. The binary prints `listening on http://ADDR` on stdout
//! once the socket is bound, so readiness is read from that line, never waited for with a sleep.
//! Every test gets its own process and database, so tests run in parallel and clean up on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The admin key every test server is started with.
pub const ADMIN_KEY: &str = "axme_test_admin_key_0123456789abcdef";

/// A running `axme serve` child process.
pub struct Server {
    child: Child,
    pub base: String,
    pub api_key: String,
    pub data: PathBuf,
    /// Lines the server printed on stdout after the listening line (drained by a thread so the
    /// pipe never fills up).
    _stdout: mpsc::Receiver<String>,
    _dir: Option<tempfile::TempDir>,
}

/// What a request returned: status, headers of interest, and the body parsed as JSON
/// (`Value::Null` when the body is empty or not JSON; the raw text is kept too).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The field an error names (`error.details.field`).
    pub fn field(&self) -> &str {
        self.json["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    /// Whether the body is the AXME error body `{"error":{"code","message","details"},"detail"}`
    /// with nothing else in it.
    pub fn has_error_shape(&self) -> bool {
        let keys = |v: &Value| {
            v.as_object().map(|o| {
                let mut k = o.keys().cloned().collect::<Vec<_>>();
                k.sort();
                k
            })
        };
        let message = self.json["error"]["message"].as_str().unwrap_or("");
        keys(&self.json) == Some(vec!["detail".into(), "error".into()])
            && keys(&self.json["error"])
                == Some(vec!["code".into(), "details".into(), "message".into()])
            && self.json["error"]["code"].is_string()
            && self.json["error"]["details"].is_object()
            && !message.is_empty()
            && self.json["detail"] == message
    }
}

/// Asserts an error response: its status, the AXME error body, and its code.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert!(r.has_error_shape(), "not the AXME error body: {}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
}

/// Polls `f` every 20 ms until it returns `Some`, or fails naming `what` after `wait`.
pub fn poll_until<T>(wait: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_axme")
}

impl Server {
    /// Runs the `axme` client against this server with `key`: its exit code, stdout, stderr.
    pub fn cli(&self, key: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin())
            .args(args)
            .env("AXME_SERVER", &self.base)
            .env("AXME_API_KEY", key)
            .stdin(Stdio::null())
            .output()
            .expect("run axme");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A server on a fresh database in a new temporary directory.
    pub fn start() -> Server {
        Self::start_args(&[])
    }

    /// A server on a fresh database with extra `serve` flags.
    pub fn start_args(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("axme.db");
        let mut s = Self::start_on(&data, extra);
        s._dir = Some(dir);
        s
    }

    /// A server on a fresh database whose stderr (its log) goes to `log`.
    pub fn start_logging_to(log: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(log).expect("log file");
        let mut s = Self::start_with(&dir.path().join("axme.db"), extra, Some(file), &[]);
        s._dir = Some(dir);
        s
    }

    /// A server on the given database file (which may already exist), keeping it afterwards.
    pub fn start_on(data: &Path, extra: &[&str]) -> Server {
        Self::start_with(data, extra, None, &[])
    }

    /// A server on the given database file with extra environment variables (e.g. libfaketime's),
    /// its log going to `log` if given.
    pub fn start_with(
        data: &Path,
        extra: &[&str],
        log: Option<std::fs::File>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(bin());
        cmd.envs(env.iter().copied());
        Self::spawn(cmd, data, extra, log)
    }

    /// A server from `cmd` (the binary, or a wrapper that runs it) on the given database file.
    pub fn spawn(
        mut cmd: Command,
        data: &Path,
        extra: &[&str],
        log: Option<std::fs::File>,
    ) -> Server {
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--api-key")
            .arg(ADMIN_KEY)
            .args(extra)
            .env_remove("AXME_API_KEY")
            .env_remove("AXME_LISTEN")
            .env_remove("AXME_DATA")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(file) = log {
            cmd.stderr(file)
                .env_remove("AXME_LOG")
                .env_remove("AXME_LOG_FORMAT");
        } else if std::env::var_os("AXME_TEST_LOG").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd.spawn().expect("spawn axme");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        break rest.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("axme did not print its listening line");
                }
            }
        };
        Server {
            child,
            base,
            api_key: ADMIN_KEY.to_string(),
            data: data.to_path_buf(),
            _stdout: rx,
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A request with the admin key in `x-api-key`.
    pub fn req(&self, method: &str, path: &str) -> ureq::Request {
        agent()
            .request(method, &self.url(path))
            .set("x-api-key", &self.api_key)
    }

    /// A request without any credential.
    pub fn req_anon(&self, method: &str, path: &str) -> ureq::Request {
        agent().request(method, &self.url(path))
    }

    pub fn get(&self, path: &str) -> Resp {
        send(self.req("GET", path), None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        send(self.req("POST", path), Some(body.to_string()))
    }

    /// Creates an intent to `to_agent` with a small payload and returns its id.
    pub fn create_intent(&self, to_agent: &str) -> String {
        let r = self.post("/v1/intents", &intent_body(to_agent));
        assert_eq!(r.status, 200, "create failed: {}", r.text);
        r.json["intent_id"].as_str().expect("intent_id").to_string()
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a graceful exit, returning the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        signal(self.child.id(), "TERM");
        self.child.wait().ok().and_then(|s| s.code())
    }
}

/// Sends a signal with `kill(1)`, which keeps the tests free of unsafe code.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// Sends a request and returns whatever came back, error statuses included.
pub fn send(req: ureq::Request, body: Option<String>) -> Resp {
    let result = match body {
        Some(b) => req.set("content-type", "application/json").send_string(&b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = resp.into_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        json,
        text,
        headers,
    }
}

/// A valid create-intent body.
pub fn intent_body(to_agent: &str) -> Value {
    serde_json::json!({
        "intent_type": "demo.task.v1",
        "correlation_id": uuid(),
        "to_agent": to_agent,
        "payload": {"n": 1},
    })
}

/// A random UUID v4 string (tests avoid a uuid dependency by reading the kernel's).
pub fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("uuid")
        .trim()
        .to_string()
}
