//! The process's metrics and their Prometheus text exposition (format 0.0.4).
//!
//! Instruments are plain atomics updated with `Relaxed` adds: recording a request, a commit or a
//! push attempt takes no lock and allocates nothing, so the hot paths (the request handler, the
//! writer thread) pay a few nanoseconds. A scrape reads the atomics one by one; a sample may be
//! a moment newer than its neighbour, as with any Prometheus client.
//!
//! This module is a leaf: it knows nothing of HTTP, SQL or the domain. Whoever owns a thing
//! records into the instrument for it (`http` for requests, `store` for commits, `delivery` for
//! push outcomes), and `http::metrics` gathers everything into one exposition per scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds of durations, in microseconds: 100 µs to 60 s (a long poll may wait 60 s).
pub const DURATION_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Bucket bounds of a count of things done together (writes per commit): powers of two.
pub const BATCH_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// A histogram with fixed buckets over integer observations (microseconds, or plain counts).
/// Counts are kept per bucket and summed into Prometheus's cumulative `le` buckets on scrape.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds (inclusive) of the buckets, ascending, in the unit of the observations.
    bounds: &'static [u64],
    /// What one unit is in the exposed unit: 1e6 exposes microseconds as seconds.
    divisor: f64,
    /// One count per bound, then the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64], divisor: f64) -> Histogram {
        Histogram {
            bounds,
            divisor,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A histogram of durations, exposed in seconds.
    pub fn seconds() -> Histogram {
        Histogram::new(DURATION_BOUNDS_US, 1e6)
    }

    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// How many observations there were.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Requests by route and status, and their latency by route. Routes are numbered by the HTTP
/// layer (`route as usize`); one more slot counts requests that matched no route.
#[derive(Debug)]
pub struct HttpMetrics {
    names: Vec<String>,
    routes: Vec<RouteMetrics>,
}

#[derive(Debug)]
struct RouteMetrics {
    /// One counter per status code 100–599.
    statuses: Box<[AtomicU64]>,
    latency: Histogram,
}

/// The label of requests that matched no route (404, 405).
pub const UNMATCHED: &str = "unmatched";

const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

impl HttpMetrics {
    /// `names[i]` is the label of route number `i`.
    pub fn new(mut names: Vec<String>) -> HttpMetrics {
        names.push(UNMATCHED.to_string());
        let routes = names
            .iter()
            .map(|_| RouteMetrics {
                statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
                latency: Histogram::seconds(),
            })
            .collect();
        HttpMetrics { names, routes }
    }

    /// Records one answered request; `route` is `None` when no route matched.
    pub fn observe(&self, route: Option<usize>, status: u16, elapsed: Duration) {
        let unmatched = self.routes.len() - 1;
        let i = route.filter(|i| *i < unmatched).unwrap_or(unmatched);
        let r = &self.routes[i];
        if let Some(c) = status
            .checked_sub(FIRST_STATUS)
            .and_then(|s| r.statuses.get(usize::from(s)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        r.latency.observe_duration(elapsed);
    }

    /// The label of route number `route` (`None`: no route matched).
    pub fn name(&self, route: Option<usize>) -> &str {
        let unmatched = self.names.len() - 1;
        &self.names[route.filter(|i| *i < unmatched).unwrap_or(unmatched)]
    }

    /// How many requests of route `name` were answered with `status`.
    pub fn requests(&self, name: &str, status: u16) -> u64 {
        let Some(i) = self.names.iter().position(|n| n == name) else {
            return 0;
        };
        status
            .checked_sub(FIRST_STATUS)
            .and_then(|s| self.routes[i].statuses.get(usize::from(s)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn write(&self, out: &mut Exposition) {
        out.family(
            "axme_http_requests_total",
            "counter",
            "HTTP requests answered, by route (the routing table's name) and status code.",
        );
        for (name, r) in self.names.iter().zip(&self.routes) {
            for (i, c) in r.statuses.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let status = (FIRST_STATUS + i as u16).to_string();
                    out.sample(
                        "axme_http_requests_total",
                        &[("route", name), ("status", &status)],
                        n as f64,
                    );
                }
            }
        }
        out.family(
            "axme_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response head, by route (for streams: until \
             the stream starts).",
        );
        for (name, r) in self.names.iter().zip(&self.routes) {
            if r.latency.count() > 0 {
                out.histogram(
                    "axme_http_request_duration_seconds",
                    &[("route", name)],
                    &r.latency,
                );
            }
        }
    }
}

/// What the writer thread records about its transactions.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Writes (jobs) per transaction.
    pub batch_size: Histogram,
    /// How long `COMMIT` took (the wait for the disk), in µs.
    pub commit: Histogram,
    /// From `BEGIN` to `COMMIT` returned: the writes and the commit, in µs.
    pub transaction: Histogram,
    /// Transactions rolled back (their writers got an error).
    pub failed_batches: Counter,
    /// Events appended by committed transactions.
    pub events_written: Counter,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            batch_size: Histogram::new(BATCH_BOUNDS, 1.0),
            commit: Histogram::seconds(),
            transaction: Histogram::seconds(),
            failed_batches: Counter::default(),
            events_written: Counter::default(),
        }
    }
}

impl StoreMetrics {
    fn write(&self, out: &mut Exposition) {
        out.counter(
            "axme_events_written_total",
            "Intent events committed to the event log.",
            self.events_written.get(),
        );
        out.family(
            "axme_store_commit_batch_size",
            "histogram",
            "Writes committed together in one SQLite transaction (group commit).",
        );
        out.histogram("axme_store_commit_batch_size", &[], &self.batch_size);
        out.family(
            "axme_store_commit_duration_seconds",
            "histogram",
            "How long SQLite's COMMIT took (the wait for the disk).",
        );
        out.histogram("axme_store_commit_duration_seconds", &[], &self.commit);
        out.family(
            "axme_store_transaction_duration_seconds",
            "histogram",
            "From BEGIN to COMMIT returned: the writes of a batch and their commit.",
        );
        out.histogram(
            "axme_store_transaction_duration_seconds",
            &[],
            &self.transaction,
        );
        out.counter(
            "axme_store_failed_batches_total",
            "Write transactions rolled back (their writers were told to retry).",
            self.failed_batches.get(),
        );
    }
}

/// Recorded push attempts by what they led to.
#[derive(Debug, Default)]
pub struct PushMetrics {
    /// The receiver took it (2xx).
    pub delivered: Counter,
    /// It failed and will be tried again.
    pub retry: Counter,
    /// It failed for the last time (attempts used up, `410 Gone`, unreachable target).
    pub dead_lettered: Counter,
    /// Not attempted, because its intent was already terminal.
    pub skipped: Counter,
}

/// The instruments of a server outside the store.
#[derive(Debug)]
pub struct Metrics {
    pub http: HttpMetrics,
    pub pushes: PushMetrics,
    /// Intents removed by the retention sweep.
    pub pruned_intents: Counter,
}

impl Metrics {
    /// Instruments for a server whose routes are named `routes` (by number).
    pub fn new(routes: Vec<String>) -> Metrics {
        Metrics {
            http: HttpMetrics::new(routes),
            pushes: PushMetrics::default(),
            pruned_intents: Counter::default(),
        }
    }

    /// Writes every counter and histogram of `self` and of `store` to `out`.
    pub fn write(&self, store: &StoreMetrics, out: &mut Exposition) {
        self.http.write(out);
        store.write(out);
        out.family(
            "axme_push_attempts_total",
            "counter",
            "Push (webhook) attempts recorded, by what they led to.",
        );
        let p = &self.pushes;
        for (outcome, c) in [
            ("delivered", &p.delivered),
            ("retry", &p.retry),
            ("dead_lettered", &p.dead_lettered),
            ("skipped", &p.skipped),
        ] {
            out.sample(
                "axme_push_attempts_total",
                &[("outcome", outcome)],
                c.get() as f64,
            );
        }
        out.counter(
            "axme_retention_pruned_intents_total",
            "Terminal intents removed by the retention sweep, with everything that belonged to them.",
            self.pruned_intents.get(),
        );
    }
}

/// A text exposition being written: `# HELP` and `# TYPE` before each family's samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its help and its type (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A family of one unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value as f64);
    }

    /// A family of one unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram (its family started already).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match h.bounds.get(i) {
                Some(b) => number(*b as f64 / h.divisor),
                None => "+Inf".to_string(),
            };
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative as f64);
        }
        let sum = h.sum.load(Ordering::Relaxed) as f64 / h.divisor;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value as the format spells it (`+Inf`, `-Inf`, `NaN`, or a decimal number).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds_and_cumulative() {
        let h = Histogram::new(&[1, 2, 4], 1.0);
        for v in [0, 1, 2, 3, 4, 5, 100] {
            h.observe(v);
        }
        let mut out = Exposition::default();
        out.histogram("x", &[("a", "b")], &h);
        assert_eq!(
            out.finish(),
            "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\n\
             x_bucket{a=\"b\",le=\"4\"} 5\nx_bucket{a=\"b\",le=\"+Inf\"} 7\n\
             x_sum{a=\"b\"} 115\nx_count{a=\"b\"} 7\n"
        );
    }

    #[test]
    fn durations_are_exposed_in_seconds() {
        let h = Histogram::seconds();
        h.observe_duration(Duration::from_micros(1500));
        let mut out = Exposition::default();
        out.histogram("d", &[], &h);
        let text = out.finish();
        assert!(text.contains("d_bucket{le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("d_bucket{le=\"0.0025\"} 1\n"), "{text}");
        assert!(text.contains("d_sum 0.0015\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("agent", "agent://a\"b\\c\nd")], 1.0);
        assert_eq!(out.finish(), "m{agent=\"agent://a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn requests_count_by_route_and_status_and_unknown_routes_share_one_label() {
        let m = HttpMetrics::new(vec!["Health".into(), "CreateIntent".into()]);
        m.observe(Some(1), 200, Duration::from_millis(2));
        m.observe(Some(1), 200, Duration::from_millis(3));
        m.observe(Some(1), 422, Duration::from_millis(1));
        m.observe(None, 404, Duration::from_millis(1));
        m.observe(Some(7), 404, Duration::from_millis(1));
        assert_eq!(m.requests("CreateIntent", 200), 2);
        assert_eq!(m.requests("CreateIntent", 422), 1);
        assert_eq!(m.requests("Health", 200), 0);
        assert_eq!(m.requests(UNMATCHED, 404), 2);
    }
}
