//! Long polls for the streams bench: `polls` keep-alive connections each send a poll that the
//! server parks, one commit wakes them all, and every answer is timed against that commit. Each
//! round starts together (a watch channel), waits a moment so every poll is parked, then commits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::client::{quantile_ms, request, runtime, signed_us, Committer, Intent};
use super::common::http::{connect, exchange};
use super::{rss_kib, Cpu, CpuMark, Errors, Params};

/// How long a round waits after sending its polls before it commits: every poll is parked by then.
const PARK: Duration = Duration::from_millis(150);
/// An answer later than this after its commit is a failure to wake.
const WAKE_LIMIT: Duration = Duration::from_secs(5);
/// What every answer must contain: a list of events with one in it.
const EVENTS: &str = r#""events":[{"#;

/// What the polls ask for.
pub enum PollPaths<'a> {
    /// The events of this intent after its last one, waiting up to 30 s.
    Axme(&'a Intent),
    /// The bare broadcaster's parked poll.
    Bare,
}

/// One long-poll measurement.
pub struct Polls {
    pub rounds: usize,
    /// Answer minus the moment the commit was written / its 200 was read, µs, sorted, one per
    /// (round, poll) pair.
    pub from_send: Vec<i64>,
    pub from_ok: Vec<i64>,
    pub round_trips: Vec<i64>,
    pub errors: Errors,
    pub cpu: Cpu,
    /// The first answer's body.
    pub sample: String,
    /// The server's threads at the end (tokio's blocking pool runs its SQLite reads).
    pub server_threads: Option<u64>,
}

impl Polls {
    pub fn progress(&self, name: &str) {
        let q = |v: &[i64], q| quantile_ms(v, q).unwrap_or(f64::NAN);
        eprintln!(
            "[bench] {name}: p50/p99 {:.2}/{:.2} ms from send, {:.2}/{:.2} ms from 200; {} errors",
            q(&self.from_send, 0.5),
            q(&self.from_send, 0.99),
            q(&self.from_ok, 0.5),
            q(&self.from_ok, 0.99),
            self.errors.count(),
        );
    }
}

/// An answer: which round, when it was read, and its body (or what went wrong).
type Answer = (usize, Instant, Result<String, String>);

/// One connection's polls, one per round, each sent when `go` reaches its round.
async fn poller(
    mut stream: TcpStream,
    requests: Arc<Vec<Vec<u8>>>,
    mut go: watch::Receiver<usize>,
    answers: mpsc::UnboundedSender<Answer>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    for (round, req) in requests.iter().enumerate() {
        while *go.borrow_and_update() <= round {
            if go.changed().await.is_err() {
                return;
            }
        }
        let answer = exchange(&mut stream, req, &mut buf).await;
        let at = Instant::now();
        let outcome = match answer {
            Ok(f) => {
                let body = String::from_utf8_lossy(&buf[f.body_at..f.len]).into_owned();
                buf.advance(f.len);
                match f.status == 200 && body.contains(EVENTS) {
                    true => Ok(body),
                    false => Err(format!("HTTP {}: {body}", f.status)),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let broken = outcome.is_err();
        if answers.send((round, at, outcome)).is_err() || broken {
            return;
        }
    }
}

/// Parks `params.polls` polls, wakes them with one commit per round (`commits`), and times
/// every answer.
pub fn long_polls(
    addr: SocketAddr,
    server_pid: u32,
    paths: PollPaths,
    commits: Vec<Vec<u8>>,
    params: &Params,
) -> Result<Polls, String> {
    let rounds = commits.len();
    let requests: Vec<Vec<u8>> = (0..rounds)
        .map(|r| {
            let path = match &paths {
                PollPaths::Axme(i) => format!(
                    "/v1/intents/{}/events?since={}&wait_seconds=30",
                    i.id,
                    i.seq + r as i64
                ),
                PollPaths::Bare => "/poll".to_string(),
            };
            request(addr, "GET", &path, None)
        })
        .collect();
    let requests = Arc::new(requests);
    runtime()?.block_on(async {
        let (go, going) = watch::channel(0);
        let (answered, mut answers) = mpsc::unbounded_channel();
        for _ in 0..params.polls {
            let stream = connect(addr).await?;
            tokio::spawn(poller(
                stream,
                requests.clone(),
                going.clone(),
                answered.clone(),
            ));
        }
        drop(answered);
        let mut committer = Committer::connect(addr)?;
        let mut errors = Errors::default();
        let (mut from_send, mut from_ok, mut round_trips) = (Vec::new(), Vec::new(), Vec::new());
        let mut sample = None;
        let cpu0 = CpuMark::now(server_pid);
        'rounds: for (round, req) in commits.into_iter().enumerate() {
            let _ = go.send(round + 1);
            tokio::time::sleep(PARK).await;
            let (back, commit) = tokio::task::spawn_blocking(move || {
                let commit = committer.commit(&req);
                (committer, commit)
            })
            .await
            .map_err(|e| format!("committer thread: {e}"))?;
            committer = back;
            let commit = match commit {
                Ok(c) => c,
                Err(e) => {
                    errors.add("commit failed", &e);
                    break;
                }
            };
            round_trips.push(signed_us(commit.answered, commit.sent));
            let deadline = commit.answered + WAKE_LIMIT;
            for got in 0..params.polls {
                let answer = tokio::time::timeout_at(deadline.into(), answers.recv()).await;
                let Ok(Some((r, at, outcome))) = answer else {
                    let missing = (params.polls - got) as u64;
                    let kind = "no answer within 5 s of the commit";
                    errors.add(kind, &format!("round {round}: {missing} polls"));
                    *errors.by_kind.entry(kind.into()).or_default() += missing - 1;
                    break 'rounds;
                };
                match outcome {
                    Err(e) => errors.add("poll failed", &e),
                    Ok(_) if r != round => errors.add("an answer in the wrong round", ""),
                    Ok(_) if at < commit.sent => {
                        errors.add("answered before the commit (not parked)", "")
                    }
                    Ok(body) => {
                        sample.get_or_insert(body);
                        from_send.push(signed_us(at, commit.sent));
                        from_ok.push(signed_us(at, commit.answered));
                    }
                }
            }
        }
        let cpu = cpu0.until(&CpuMark::now(server_pid));
        let server_threads = rss_kib(server_pid).map(|(_, threads)| threads);
        from_send.sort_unstable();
        from_ok.sort_unstable();
        round_trips.sort_unstable();
        Ok(Polls {
            rounds,
            from_send,
            from_ok,
            round_trips,
            errors,
            cpu,
            sample: sample.unwrap_or_default(),
            server_threads,
        })
    })
}
