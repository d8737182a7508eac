//! An agent compiled into the server: `cargo run --example internal_agent -- [DATA_DIR]`.
//!
//! The program embeds axme as a library, registers an in-process handler for
//! `agent://example/greeter`, follows lifecycle events in-process, and serves the HTTP API as
//! `axme serve` does. To show the round trip it then submits one intent to its own API (as any
//! client would), prints the events of that intent as they are committed, and exits once the
//! intent is COMPLETED. Pass `--serve` to keep serving instead.

use std::time::Duration;

use axme::config::ServeConfig;
use axme::runtime::internal::{Step, Work};
use axme::runtime::observe::From;
use axme::server::Server;
use axme::store::events::FirehoseFilter;
use serde_json::json;

const KEY: &str = "axme_example_admin_key_0123456789";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let mut config = ServeConfig::new(format!("{dir}/internal-example.db"));
    config.api_key = Some(KEY.to_string());

    let mut server = Server::open(&config).await?;

    // The handler: any async function from the work to the next step.
    server.handle("agent://example/greeter", |work: Work| async move {
        let Some(name) = work.payload["name"].as_str() else {
            // Not worth retrying: the intent FAILS with this error.
            return Step::failed(
                json!({"code": "no_name", "message": "payload.name is required"}),
                false,
            );
        };
        Step::Completed(json!({"greeting": format!("Hello, {name}!"), "attempt": work.attempt}))
    })?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("serving on {base}");
    let mut events = server.events(From::Now, FirehoseFilter::default()).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(listener, async {
        let _ = stop_rx.await;
    }));
    if serve_forever {
        serving.await??;
        return Ok(());
    }

    // Submit one intent through the HTTP API, as a client would.
    let url = format!("{base}/v1/intents");
    let created: serde_json::Value = tokio::task::spawn_blocking(move || {
        let body = json!({
            "intent_type": "intent.example.greet.v1",
            "correlation_id": uuid::Uuid::new_v4().to_string(),
            "to_agent": "agent://example/greeter",
            "payload": {"name": "Ada"},
        });
        let text = ureq::post(&url)
            .set("x-api-key", KEY)
            .set("content-type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
    })
    .await??;
    let intent_id = created["intent_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    println!("submitted {intent_id}");

    // Follow it in-process until it is done.
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.next().await?;
            if e.intent_id != intent_id {
                continue;
            }
            println!(
                "  #{} {:<22} {:<12} by {} {}",
                e.seq,
                e.event_type,
                e.status.as_str(),
                e.actor,
                e.details
            );
            if e.status.is_terminal() {
                return Ok::<_, axme::Error>(e.status.as_str());
            }
        }
    })
    .await;
    let _ = stop_tx.send(());
    serving.await??;
    match outcome {
        Ok(Ok("COMPLETED")) => {
            println!("done: COMPLETED");
            Ok(())
        }
        Ok(Ok(other)) => Err(format!("the intent ended {other}").into()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("the intent did not finish within 30 s".into()),
    }
}
