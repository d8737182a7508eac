//! Success shapes against the AXP JSON schemas (`shared/axp-spec/schemas/public_api`), read from
//! the spec checkout beside the repository (or `AXME_AXP_SPEC`), validated with the same JSON
//! Schema crate the server uses.

use std::path::PathBuf;

use serde_json::Value;

/// The folder of the AXP public API schemas.
fn spec_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("AXME_AXP_SPEC") {
        return PathBuf::from(p).join("schemas/public_api");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [root.join("../shared/axp-spec"), root.join("../../shared/axp-spec")]
        .into_iter()
        .map(|p| p.join("schemas/public_api"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!("the AXP spec is missing: put shared/axp-spec beside the repository or set AXME_AXP_SPEC")
        })
}

/// Asserts that `value` matches the AXP schema `name` (e.g. `api.users.check_nick.response.v1`).
pub fn assert_axp(name: &str, value: &Value) {
    let path = spec_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("a schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the AXP schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{value:#}");
}
