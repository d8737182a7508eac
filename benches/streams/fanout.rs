//! Fan-out: many SSE subscribers on one stream, commits at a fixed rate from the committer
//! thread, and the moment every subscriber received every commit's message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::client::{open_all, quantile_ms, runtime, signed_us, Committer, SseConn};
use super::{rss_kib, Cpu, CpuMark, Errors, Params};

/// One fan-out measurement.
pub struct FanOut {
    pub commits: usize,
    /// Receipt minus the moment the commit was written / its 200 was read, in µs, sorted, one
    /// per (commit, subscriber) pair.
    pub from_send: Vec<i64>,
    pub from_ok: Vec<i64>,
    /// Each commit's round trip (written to 200 read), µs, sorted.
    pub round_trips: Vec<i64>,
    pub errors: Errors,
    pub cpu: Cpu,
    /// The first message a subscriber received, without its blank line.
    pub sample: String,
    /// How long opening every subscriber took.
    pub opened_in: Duration,
    /// The server's threads at the end (tokio's blocking pool runs its SQLite reads).
    pub server_threads: Option<u64>,
}

impl FanOut {
    pub fn progress(&self, name: &str) {
        let q = |v: &[i64], q| quantile_ms(v, q).unwrap_or(f64::NAN);
        eprintln!(
            "[bench] {name}: p50/p99 {:.2}/{:.2} ms from send, {:.2}/{:.2} ms from 200; {} errors; cores: server {:.2}, other {:.2}",
            q(&self.from_send, 0.5),
            q(&self.from_send, 0.99),
            q(&self.from_ok, 0.5),
            q(&self.from_ok, 0.99),
            self.errors.count(),
            self.cpu.server.unwrap_or(f64::NAN),
            self.cpu.other().unwrap_or(f64::NAN),
        );
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Followed {
    /// `id:` of each message and when the read that brought it returned.
    frames: Vec<(i64, Instant)>,
    error: Option<String>,
    sample: Option<String>,
}

/// Reads a subscriber's messages until `stop` flips.
async fn follow(
    mut conn: SseConn,
    mut stop: watch::Receiver<bool>,
    received: Arc<AtomicUsize>,
) -> Followed {
    let mut out = Followed::default();
    loop {
        tokio::select! {
            biased;
            read = conn.stream.read_buf(&mut conn.raw) => {
                let at = Instant::now();
                match read {
                    Ok(0) => out.error = Some("the server closed the stream".into()),
                    Err(e) => out.error = Some(format!("read: {e}")),
                    Ok(_) => {}
                }
                let mut n = 0;
                let open = conn.messages(|id, msg| {
                    if let Some(id) = id {
                        out.frames.push((id, at));
                        n += 1;
                        if out.sample.is_none() {
                            out.sample = Some(String::from_utf8_lossy(msg).into_owned());
                        }
                    }
                });
                received.fetch_add(n, Ordering::Relaxed);
                match open {
                    Ok(true) => {}
                    Ok(false) => out.error = Some("the stream ended".into()),
                    Err(e) => out.error = Some(format!("framing: {e}")),
                }
                if out.error.is_some() {
                    return out;
                }
            }
            _ = stop.changed() => return out,
        }
    }
}

/// Opens `params.subscribers` streams on `path`, lets them settle, then sends `commits` at
/// `params.rate` from the committer thread and times every message at every subscriber.
pub fn fan_out(
    addr: SocketAddr,
    server_pid: u32,
    path: &str,
    commits: Vec<Vec<u8>>,
    params: &Params,
) -> Result<FanOut, String> {
    runtime()?.block_on(async {
        let t = Instant::now();
        let conns = open_all(addr, vec![path.to_string(); params.subscribers]).await?;
        let opened_in = t.elapsed();
        // Every stream has done its first reads and waits for a commit.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (stop, stopped) = watch::channel(false);
        let received = Arc::new(AtomicUsize::new(0));
        let followers: Vec<_> = conns
            .into_iter()
            .map(|c| tokio::spawn(follow(c, stopped.clone(), received.clone())))
            .collect();
        let n = commits.len();
        let interval = Duration::from_secs_f64(1.0 / params.rate);
        let committer = Committer::connect(addr)?;
        let cpu0 = CpuMark::now(server_pid);
        let done = tokio::task::spawn_blocking(move || committer.paced(commits, interval))
            .await
            .map_err(|e| format!("committer thread: {e}"))?;
        let expected = n * params.subscribers;
        let deadline = Instant::now() + Duration::from_secs(3);
        while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let cpu = cpu0.until(&CpuMark::now(server_pid));
        let server_threads = rss_kib(server_pid).map(|(_, threads)| threads);
        let _ = stop.send(true);

        let mut errors = Errors::default();
        let mut sent = Vec::with_capacity(n);
        for c in &done {
            match c {
                Ok(c) => sent.push(*c),
                Err(e) => errors.add("commit failed", e),
            }
        }
        let mut round_trips: Vec<i64> =
            sent.iter().map(|c| signed_us(c.answered, c.sent)).collect();
        let (mut from_send, mut from_ok) =
            (Vec::with_capacity(expected), Vec::with_capacity(expected));
        let mut sample = None;
        for follower in followers {
            let seen = follower
                .await
                .map_err(|e| format!("subscriber task: {e}"))?;
            if let Some(e) = &seen.error {
                errors.add("subscriber stream broke", e);
            }
            sample = sample.or(seen.sample);
            if seen.frames.len() != sent.len() || sent.len() != n {
                let detail = format!("{} messages for {} commits", seen.frames.len(), sent.len());
                errors.add(
                    "a subscriber saw a different number of messages than commits",
                    &detail,
                );
                continue;
            }
            if seen.frames.windows(2).any(|w| w[1].0 <= w[0].0) {
                errors.add("a subscriber saw ids out of order", "");
                continue;
            }
            // The k-th message of a subscriber is the k-th commit's: one event per commit.
            for ((_, at), c) in seen.frames.iter().zip(&sent) {
                from_send.push(signed_us(*at, c.sent));
                from_ok.push(signed_us(*at, c.answered));
            }
        }
        from_send.sort_unstable();
        from_ok.sort_unstable();
        round_trips.sort_unstable();
        Ok(FanOut {
            commits: n,
            from_send,
            from_ok,
            round_trips,
            errors,
            cpu,
            sample: sample.unwrap_or_default(),
            opened_in,
            server_threads,
        })
    })
}
