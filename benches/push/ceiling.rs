//! The ceiling: bare ureq 2 POSTs to the receiver from as many threads as axme may use for one
//! endpoint (`--push-endpoint-concurrency`), each repeating the webhook axme sent in the
//! preflight (same body, same headers, the signature copied, not recomputed) on one shared
//! agent built with the settings `src/delivery/mod.rs` gives axme's, reading each answer to the
//! end as axme's attempt does. No scheduler, no database, no signing: what ureq and the receiver
//! manage on this machine.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::receiver::{control, Sample};
use super::{now_ns, CpuMark, Errors, Params, Phase, Servers, PUSH_TIMEOUT_SECS};

/// What one sending thread saw.
#[derive(Default)]
struct Tally {
    round_trips_us: Vec<u32>,
    errors: Errors,
}

pub fn run(s: &Servers, sample: &Sample, p: &Params) -> Result<Phase, String> {
    let receiver = s.receiver.addr;
    control::arrivals(receiver)?;
    // The agent as `delivery::run` builds it.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(PUSH_TIMEOUT_SECS))
        .redirects(0)
        .user_agent(&sample.user_agent)
        .max_idle_connections_per_host(p.per_endpoint.max(1) * 2)
        .resolver(axme::webhook::target::GuardedResolver {
            deny_private: false,
        })
        .build();
    let url = format!("http://{receiver}/hook");
    let sample = Arc::new(sample.clone());
    let begin = Instant::now();
    let (start, end) = (begin + p.warmup, begin + p.warmup + p.measure);
    let threads: Vec<JoinHandle<Tally>> = (0..p.per_endpoint)
        .map(|_| {
            let (agent, url, sample) = (agent.clone(), url.clone(), sample.clone());
            std::thread::spawn(move || send_until(&agent, &url, &sample, start..end))
        })
        .collect();

    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let (mark0, rt0) = (CpuMark::now(s.pids()), now_ns());
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let (mark1, rt1) = (CpuMark::now(s.pids()), now_ns());
    let mut total = Tally::default();
    for t in threads {
        let tally = t.join().map_err(|_| "a ceiling thread panicked")?;
        total.round_trips_us.extend(tally.round_trips_us);
        total.errors.merge(tally.errors);
    }
    total.round_trips_us.sort_unstable();
    let period = rt0..rt1;
    let received = control::arrivals(receiver)?
        .iter()
        .filter(|a| period.contains(&a.at_ns))
        .count() as u64;
    Ok(Phase {
        name: "bare ureq (ceiling)".into(),
        secs: (rt1 - rt0) as f64 / 1e9,
        received,
        created: None,
        offered: None,
        late: (0, 0),
        latencies_us: Vec::new(),
        lost: 0,
        duplicates: 0,
        service_us: total.round_trips_us,
        errors: total.errors,
        cpu: mark0.until(&mark1),
        dead: None,
    })
}

/// POSTs the sample until the period ends; keeps the round trips of those that ended in it.
fn send_until(
    agent: &ureq::Agent,
    url: &str,
    sample: &Sample,
    period: std::ops::Range<Instant>,
) -> Tally {
    use std::io::Read;
    let mut tally = Tally::default();
    let mut sink = Vec::with_capacity(1024);
    while Instant::now() < period.end {
        let began = Instant::now();
        let result = agent
            .post(url)
            .set("content-type", "application/json")
            .set("webhook-id", &sample.id)
            .set("webhook-timestamp", &sample.timestamp)
            .set("webhook-signature", &sample.signature)
            .send_bytes(sample.body.as_bytes());
        match result {
            Ok(resp) => {
                sink.clear();
                let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut sink);
                let done = Instant::now();
                if period.contains(&done) {
                    let us = done.duration_since(began).as_micros();
                    tally
                        .round_trips_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Err(e) => tally.errors.add("ceiling POST", &e.to_string()),
        }
    }
    tally
}
