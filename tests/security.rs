//! Regression tests of the security review's findings (SECURITY.md names the test of each
//! promise): what a client without a key or with an agent key must not be able to do to the
//! server's memory, connections, files and secrets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn agent_key(s: &Server, agent: &str) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": "sec", "role": "agent", "agents": [agent]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().expect("api_key").to_string()
}

/// The server's resident memory in KiB, from `/proc/PID/status`.
fn rss_kib(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A gauge or counter of `/metrics` without labels.
fn metric(s: &Server, name: &str) -> f64 {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A TCP connection whose receive buffer is tiny (4 KiB), so that a reader that never reads
/// stalls the server's writes almost at once.
fn tiny_window_connection(addr: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket
            .connect(addr.parse().expect("address"))
            .await
            .expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// F1: a stream reader that stops reading pinned every queued frame (about 32 MiB of full
/// intents per stream) for as long as it stayed connected. Now a stream holds about its byte
/// budget, and past the write deadline it is cut off and its connection closed.
#[test]
fn f1_slow_stream_readers_hold_bounded_memory() {
    let s = Server::start_args(&[
        "--stream-write-deadline-seconds",
        "3",
        "--durability",
        "normal",
    ]);
    let agent = "agent://mem/w";
    let key = agent_key(&s, agent);
    // 80 intents of 100 KiB: 8 MiB in the feed, which every stream replays from the start.
    let blob = "x".repeat(100 * 1024);
    for n in 0..80 {
        let r = s.post(
            "/v1/intents",
            &json!({"intent_type": "demo.bulk.v1", "correlation_id": uuid(),
                    "to_agent": agent, "payload": {"n": n, "blob": blob}}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let before = rss_kib(&s);
    let addr = s.base.trim_start_matches("http://").to_string();
    let streams = 40;
    let mut readers: Vec<TcpStream> = (0..streams)
        .map(|_| {
            let mut c = tiny_window_connection(&addr);
            let req = format!(
                "GET /v1/agents/mem/w/intents/stream?since=0 HTTP/1.1\r\nhost: x\r\n\
                 x-api-key: {key}\r\n\r\n"
            );
            c.write_all(req.as_bytes()).expect("request");
            c
        })
        .collect();
    // While they stall, the streams' memory stays near their budget; the peak is sampled until
    // the write deadline has cut every one of them off.
    let mut peak = before;
    poll_until(Duration::from_secs(30), "every stream open", || {
        peak = peak.max(rss_kib(&s));
        (metric(&s, "axme_streams_open") == streams as f64).then_some(())
    });
    poll_until(Duration::from_secs(30), "every stream cut off", || {
        peak = peak.max(rss_kib(&s));
        (metric(&s, "axme_streams_open") == 0.0).then_some(())
    });
    let grew_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!("RSS {} MiB -> peak {} MiB", before / 1024, peak / 1024);
    // 40 streams of 8 MiB each held 320 MiB and more before; a 1 MiB budget holds a few MiB.
    assert!(
        grew_mib < 160,
        "{streams} stalled streams grew RSS by {grew_mib} MiB"
    );
    // Their connections were closed: what is left in the socket buffers drains, then EOF.
    for r in &mut readers {
        r.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let started = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the connection of a cut-off stream stayed open: {e}"),
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no EOF");
        }
    }
    // The key may stream again: the cut freed its places under the per-key cap.
    let r = send(
        s.req_anon("GET", "/v1/agents/mem/w/intents?since=0&limit=1")
            .set("x-api-key", &key),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.get("/health").status, 200);
}
