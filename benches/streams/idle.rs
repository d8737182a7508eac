//! Idle cost: many SSE connections that receive nothing, and the server's resident memory
//! before and after they opened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{open_all, runtime, OPENING};
use super::{rss_kib, Cpu, CpuMark, Params};

/// One idle-cost measurement: the server's VmRSS and thread count (KiB, threads).
pub struct Idle {
    pub n: usize,
    pub before: Option<(u64, u64)>,
    /// Once the RSS held still after the last connection opened.
    pub after: Option<(u64, u64)>,
    /// A second after the bench closed every connection.
    pub closed: Option<(u64, u64)>,
    pub opened_in: Duration,
    /// The server's CPU while every connection sat idle.
    pub cpu: Cpu,
}

impl Idle {
    /// Resident memory per connection, KiB.
    pub fn per_conn_kib(&self) -> Option<f64> {
        let (before, after) = (self.before?.0, self.after?.0);
        Some((after as f64 - before as f64) / self.n as f64)
    }

    pub fn progress(&self, name: &str) {
        eprintln!(
            "[bench] {name}: {:.1} KiB per connection ({:?} -> {:?} KiB, threads), opened in {:.1} s",
            self.per_conn_kib().unwrap_or(f64::NAN),
            self.before,
            self.after,
            self.opened_in.as_secs_f64(),
        );
    }
}

/// Opens `params.idle` streams (`path(i)` each), measures the server's memory before and after,
/// and its CPU while they sit idle.
pub fn idle(
    addr: SocketAddr,
    server_pid: u32,
    path: &dyn Fn(usize) -> String,
    params: &Params,
) -> Result<Idle, String> {
    let n = params.idle;
    // A smoke run only checks that the harness works.
    let (hold, after_close) = match params.full {
        true => (Duration::from_secs(2), Duration::from_secs(1)),
        false => (Duration::from_millis(200), Duration::from_millis(200)),
    };
    runtime()?.block_on(async {
        // One-time costs (reader connections, worker threads) belong to "before".
        let warm = open_all(addr, (n..n + OPENING).map(path).collect()).await?;
        drop(warm);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kib(server_pid);

        let t = Instant::now();
        let conns = open_all(addr, (0..n).map(path).collect()).await?;
        let opened_in = t.elapsed();
        let after = settle(server_pid).await;
        let cpu0 = CpuMark::now(server_pid);
        tokio::time::sleep(hold).await;
        let cpu = cpu0.until(&CpuMark::now(server_pid));
        let after = rss_kib(server_pid).or(after);

        drop(conns);
        tokio::time::sleep(after_close).await;
        let closed = rss_kib(server_pid);
        Ok(Idle {
            n,
            before,
            after,
            closed,
            opened_in,
            cpu,
        })
    })
}

/// Waits (up to 5 s) until the server's RSS changes by less than 1% in 250 ms.
async fn settle(pid: u32) -> Option<(u64, u64)> {
    let end = Instant::now() + Duration::from_secs(5);
    let mut last = rss_kib(pid)?;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_kib(pid)?;
        if now.0.abs_diff(last.0) * 100 < last.0 {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}
