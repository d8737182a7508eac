//! `axme scenarios validate|apply FILE [--watch]` against a real server: problems printed by
//! JSON path with exit 1, an applied bundle printed with its agents, and `--watch` following
//! the intent until its workflow ends.

use crate::common;

use common::*;
use serde_json::json;

#[test]
fn scenarios_validate_and_apply_watch_a_bundle_to_its_end() {
    let s = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.json");
    let bundle = json!({
        "scenario_id": "cli.delay.v1",
        "agents": [{"role": "r", "address": format!("cli-{}", &uuid()[..8]),
                    "delivery_mode": "poll", "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "pause", "tool_id": "tool.internal.delay",
                                "input": {"seconds": 0}}]},
        "intent": {"type": "intent.demo.cli.v1", "payload": {"x": 1}}
    });
    std::fs::write(&good, bundle.to_string()).expect("write");
    let bad = dir.path().join("bad.json");
    let mut broken = bundle.clone();
    broken["workflow"]["steps"][0]["tool_id"] = json!("tool.nope");
    std::fs::write(&bad, broken.to_string()).expect("write");

    let (code, out, _) = s.cli(
        &s.api_key,
        &["scenarios", "validate", good.to_str().unwrap()],
    );
    assert_eq!((code, out.trim()), (0, "the bundle is valid"));
    let (code, out, err) = s.cli(
        &s.api_key,
        &["scenarios", "validate", bad.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out} {err}");
    assert!(
        out.contains("error: workflow.steps[0].tool_id: must be one of"),
        "{out}"
    );
    let (code, _, err) = s.cli(&s.api_key, &["scenarios", "apply", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("workflow.steps[0].tool_id"), "{err}");

    let (code, out, err) = s.cli(
        &s.api_key,
        &["scenarios", "apply", good.to_str().unwrap(), "--watch"],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("(registered)"), "{out}");
    assert!(
        out.contains("intent.completed") || out.contains("COMPLETED"),
        "{out}"
    );
    let (code, out, _) = s.cli(
        &s.api_key,
        &["scenarios", "apply", good.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["compile_id"].is_string(), "{v}");
}
