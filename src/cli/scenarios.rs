//! `axme scenarios validate|apply FILE [--watch]`: a scenario bundle sent to
//! `/v1/scenarios/validate` or `/v1/scenarios/apply`, the problems or the applied intent
//! printed, and with `--watch` the intent's timeline followed like `axme watch`.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::client::Client;
use super::term;
use super::{intents, Failure, ScenarioAction, ScenariosArgs, WatchArgs};

pub fn run(a: ScenariosArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    match a.action {
        ScenarioAction::Validate { file } => {
            let report = client.post("/v1/scenarios/validate", &read_bundle(&file)?)?;
            if a.conn.json {
                term::print_json(&report);
            } else {
                print_lines("warning", &report["warnings"]);
                print_lines("error", &report["errors"]);
            }
            if report["valid"] == Value::Bool(true) {
                if !a.conn.json {
                    println!("the bundle is valid");
                }
                Ok(())
            } else {
                Err(Failure::new("the bundle has errors"))
            }
        }
        ScenarioAction::Apply {
            file,
            watch,
            idempotency_key,
        } => {
            let bundle = read_bundle(&file)?;
            let mut req = client.request("POST", "/v1/scenarios/apply");
            if let Some(k) = &idempotency_key {
                req = req.set("idempotency-key", k);
            }
            let applied = client.call(req, Some(&bundle))?;
            let id = term::field(&applied, "intent_id");
            if a.conn.json {
                term::print_json(&applied);
            } else {
                print_applied(&applied);
            }
            if !watch {
                return Ok(());
            }
            intents::watch(WatchArgs {
                conn: a.conn,
                intent_id: id,
            })
        }
    }
}

fn read_bundle(file: &Path) -> Result<Value, Failure> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|e| Failure::new(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::new(format!("{} is not JSON: {e}", file.display())))
}

fn print_lines(kind: &str, list: &Value) {
    for line in list.as_array().into_iter().flatten() {
        println!("{kind}: {}", line.as_str().unwrap_or_default());
    }
}

fn print_applied(a: &Value) {
    println!(
        "intent {} {} (scenario {}, compile {})",
        term::field(a, "intent_id"),
        term::field(a, "status"),
        term::field(a, "scenario_id"),
        term::field(a, "compile_id"),
    );
    for agent in a["agents"].as_array().into_iter().flatten() {
        let how = if agent["created"] == Value::Bool(true) {
            "registered"
        } else {
            "existing"
        };
        println!(
            "  {:<16} {} ({how})",
            term::field(agent, "role"),
            term::field(agent, "address")
        );
    }
    if let Some(p) = a["pending_with"].as_str() {
        println!("  waiting for {p}");
    }
}
