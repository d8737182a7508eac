//! The invariants of ARCHITECTURE.md that the source text can show, checked on every `cargo test`:
//! the direction of imports between modules (and no cycle among the domain's modules), SQL and
//! `rusqlite` only under `src/store/`, `Serialize` derived only by the HTTP and webhook layers, no
//! `unwrap`/`expect` in server code, no file past 500 lines but the tables, a `//!` paragraph at
//! the top of every file, no transaction assembled by the HTTP layer (`Store::read`/`write`), and
//! no `#[ignore]` or `#[should_panic]` in tests. A failure names the
//! file and line and the rule it breaks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import (`crate::X`). Modules not listed may import anything
/// (the composition roots: `server`, `config`, `fuzzing`, `lib`, `main`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("clock", &[]),
    ("error", &[]),
    ("metrics", &[]),
    ("webhook", &["clock", "error", "model", "metrics"]),
    ("store", &["clock", "error", "model", "metrics"]),
    ("service", &["store", "clock", "error", "model", "metrics"]),
    (
        "http",
        &["service", "store", "clock", "error", "model", "metrics"],
    ),
    (
        "delivery",
        &[
            "service", "store", "http", "webhook", "clock", "error", "model", "metrics",
        ],
    ),
    (
        "runtime",
        &[
            "service", "store", "webhook", "clock", "error", "model", "metrics",
        ],
    ),
    ("cli", &["clock", "error", "model", "store"]),
];

/// The client checks a downloaded backup file with the store's one check, and uses nothing
/// else of the server.
const CLI_MAY_USE_OF_STORE: &[&str] = &["backup"];

/// `delivery` borrows only the webhook body shapes of `http`.
const DELIVERY_MAY_USE_OF_HTTP: &[&str] = &["wire"];

/// The domain's modules in layers: a module imports only modules of lower layers. Reactions
/// (`effects`) sit between the one place that appends events (`history`) and the operations
/// that change intents; nothing below `effects` calls up into it.
const SERVICE_LAYERS: &[&[&str]] = &[
    &[
        "lifecycle",
        "validate",
        "auth",
        "idempotency",
        "operator",
        "retry",
    ],
    &["requests", "access", "keys", "history"],
    &[
        "agents",
        "outbox",
        "email",
        "schedule",
        "service_accounts",
        "users",
        "schemas",
        "media",
        "scenario_fields",
    ],
    &["thread_hooks", "push_targets", "invites", "workflow_steps"],
    &["workflow", "workflow_view"],
    &["effects"],
    &["payloads"],
    &["intents", "feed", "timers", "retention"],
    &[
        "claims",
        "deliveries",
        "inbox_view",
        "cleanup",
        "resume",
        "controls",
        "scenarios",
    ],
    &[
        "inbox",
        "subscriptions",
        "email_links",
        "delivery_log",
        "scenario_report",
    ],
];

/// Files allowed past 500 lines, each a regular table or a list of shapes.
const LONG_FILES: &[&str] = &["src/http/wire.rs", "src/http/router.rs"];
const MAX_LINES: usize = 500;

struct Source {
    path: String,
    /// The text above the first `#[cfg(test)]` (the code that ships).
    shipped: String,
    full: String,
}

fn sources(dir: &str) -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let full = std::fs::read_to_string(&p).unwrap_or_default();
                let shipped = match full.find("#[cfg(test)]") {
                    Some(i) => full[..i].to_string(),
                    None => full.clone(),
                };
                let rel: PathBuf = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                out.push(Source {
                    path: rel.to_string_lossy().replace('\\', "/"),
                    shipped,
                    full,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The module a file of `src/` belongs to: (`service`, `intents`) for `src/service/intents.rs`,
/// (`service`, `mod`) for its `mod.rs`, (`clock`, ``) for `src/clock.rs`.
fn module_of(path: &str) -> (String, String) {
    let rest = path.trim_start_matches("src/").trim_end_matches(".rs");
    match rest.split_once('/') {
        Some((top, sub)) => (
            top.to_string(),
            sub.split('/').next().unwrap_or("").to_string(),
        ),
        None => (rest.to_string(), String::new()),
    }
}

/// Code lines: comments and string contents do not name modules.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    text.lines().enumerate().filter_map(|(i, l)| {
        let t = l.trim_start();
        if t.starts_with("//") {
            return None;
        }
        let mut out = String::with_capacity(l.len());
        let mut in_str = false;
        let mut prev = ' ';
        for c in l.chars() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        Some((i + 1, out))
    })
}

/// Every `crate::A::B` and `super::B` path a file names, with its line: `use` groups
/// (`use crate::{a, b::c}`) are expanded one level.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code_lines(text) {
        for prefix in ["crate::", "super::"] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let base = prefix.trim_end_matches("::");
                if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for item in group[..end].split(',') {
                        let item = item.trim();
                        if !item.is_empty() {
                            out.push((n, format!("{base}::{item}")));
                        }
                    }
                } else {
                    let path: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    out.push((n, format!("{base}::{path}")));
                }
            }
        }
    }
    out
}

/// The (top module, submodule) a reference from `from` points at.
fn target(from: &(String, String), reference: &str) -> Option<(String, String)> {
    let mut parts = reference.split("::").filter(|p| !p.is_empty());
    match parts.next()? {
        "crate" => {
            let top = parts.next()?.to_string();
            // `crate::Error` is the error module's re-export.
            let top = if top == "Error" { "error".into() } else { top };
            Some((top, parts.next().unwrap_or("").to_string()))
        }
        "super" => {
            if from.1.is_empty() || from.1 == "mod" {
                // `super` of a top-level file or a `mod.rs` is the crate root.
                let top = parts.next()?.to_string();
                Some((top, parts.next().unwrap_or("").to_string()))
            } else {
                Some((from.0.clone(), parts.next()?.to_string()))
            }
        }
        _ => None,
    }
}

fn allowed(top: &str) -> Option<&'static [&'static str]> {
    ALLOWED.iter().find(|(m, _)| *m == top).map(|(_, a)| *a)
}

fn layer(sub: &str) -> Option<usize> {
    SERVICE_LAYERS.iter().position(|l| l.contains(&sub))
}

fn import_violations() -> Vec<String> {
    let mut bad = Vec::new();
    for s in sources("src") {
        let from = module_of(&s.path);
        for (line, r) in references(&s.shipped) {
            let Some(to) = target(&from, &r) else {
                continue;
            };
            if to.0 == from.0 {
                if from.0 == "service" && !to.1.is_empty() && to.1 != from.1 && from.1 != "mod" {
                    match (layer(&from.1), layer(&to.1)) {
                        (Some(a), Some(b)) if b < a => {}
                        (Some(_), Some(_)) => bad.push(format!(
                            "{}:{line}: service::{} imports service::{} of the same or a higher layer ({r})",
                            s.path, from.1, to.1
                        )),
                        _ => bad.push(format!(
                            "{}:{line}: service::{} or service::{} has no layer in tests/tidy.rs SERVICE_LAYERS",
                            s.path, from.1, to.1
                        )),
                    }
                }
                continue;
            }
            let Some(ok) = allowed(&from.0) else {
                continue;
            };
            let permitted = ok.contains(&to.0.as_str())
                && (from.0 != "delivery"
                    || to.0 != "http"
                    || DELIVERY_MAY_USE_OF_HTTP.contains(&to.1.as_str()))
                && (from.0 != "cli"
                    || to.0 != "store"
                    || CLI_MAY_USE_OF_STORE.contains(&to.1.as_str()));
            if !permitted {
                bad.push(format!(
                    "{}:{line}: {} imports {}::{} against the direction ({r})",
                    s.path, from.0, to.0, to.1
                ));
            }
        }
    }
    bad
}

#[test]
fn imports_follow_the_documented_direction() {
    let bad = import_violations();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The service, runtime and delivery modules form no cycle of imports (a depth-first search on
/// the graph of their files).
#[test]
fn service_runtime_and_delivery_have_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources("src") {
        let from = module_of(&s.path);
        if !["service", "runtime", "delivery"].contains(&from.0.as_str()) {
            continue;
        }
        let node = format!("{}::{}", from.0, from.1);
        let edges = graph.entry(node.clone()).or_default();
        for (_, r) in references(&s.shipped) {
            if let Some(to) = target(&from, &r) {
                if ["service", "runtime", "delivery"].contains(&to.0.as_str()) && !to.1.is_empty() {
                    let t = format!("{}::{}", to.0, to.1);
                    if t != node {
                        edges.insert(t);
                    }
                }
            }
        }
    }
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let i = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[i..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut state, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn sql_and_rusqlite_live_only_in_the_store() {
    // `error` classifies SQLite's failures into the domain error; `fuzzing` hands the fuzz
    // targets an in-memory database. Neither runs a query.
    const EXEMPT: &[&str] = &["src/error.rs", "src/fuzzing.rs"];
    const SQL: &[&str] = &[
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "PRAGMA ",
        "CREATE TABLE",
        "CREATE INDEX",
        "BEGIN IMMEDIATE",
    ];
    let mut bad = Vec::new();
    for s in sources("src") {
        if s.path.starts_with("src/store/") || EXEMPT.contains(&s.path.as_str()) {
            continue;
        }
        for (i, l) in s.shipped.lines().enumerate() {
            let code = l.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.contains("rusqlite") {
                bad.push(format!("{}:{}: rusqlite outside src/store/", s.path, i + 1));
            }
            if SQL.iter().any(|k| code.contains(&format!("\"{k}"))) {
                bad.push(format!("{}:{}: SQL outside src/store/", s.path, i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Wire types are separate from stored types: only the HTTP layer and the webhook bodies of the
/// push binding derive `Serialize`; stored rows and domain types never do (they are converted
/// to wire shapes explicitly).
#[test]
fn only_the_http_and_webhook_layers_derive_serialize() {
    let mut bad = Vec::new();
    for s in sources("src") {
        if s.path.starts_with("src/http/") || s.path == "src/delivery/attempt.rs" {
            continue;
        }
        for (i, l) in s.shipped.lines().enumerate() {
            let derives = l
                .split_once("derive(")
                .map(|(_, d)| {
                    d.split([',', ')', ' '])
                        .any(|t| t.trim_start_matches("serde::") == "Serialize")
                })
                .unwrap_or(false);
            if derives {
                bad.push(format!(
                    "{}:{}: derive(Serialize) outside the HTTP and webhook layers",
                    s.path,
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Where a file of `src/http/` runs a closure on the store itself (`store.read(…)`,
/// `store.write(…)`, or a `.read(move |c| …)`-style closure on any receiver), one line each:
/// the unit of work belongs to a service operation, which owns its transaction.
fn transactions_in(text: &str) -> Vec<usize> {
    const CALLS: &[&str] = &[
        "store.read(",
        "store.write(",
        "store.write_settled(",
        "store.read_blocking(",
        ".read(move|",
        ".read(|",
        ".write(move|",
        ".write(|",
    ];
    // Whitespace taken out, so a call split over lines (`ctx.state\n.store\n.read(`) still
    // reads as one; each position remembers its line.
    let mut squeezed = String::new();
    let mut line_of = Vec::new();
    for (n, l) in code_lines(text) {
        for ch in l.chars().filter(|c| !c.is_whitespace()) {
            squeezed.push(ch);
            line_of.push(n);
        }
    }
    let mut at: BTreeSet<usize> = BTreeSet::new();
    for call in CALLS {
        for (i, _) in squeezed.match_indices(call) {
            // The line of its `(`: where the call itself is, however it was split.
            at.insert(line_of[i + call.len() - 1]);
        }
    }
    at.into_iter().collect()
}

/// Services own their transactions: `http` parses, calls one service operation (which takes
/// the store, the caller's access and the checked request) and renders; it never opens a read
/// or a write on the store itself.
#[test]
fn the_http_layer_never_opens_a_transaction() {
    let mut bad = Vec::new();
    for s in sources("src/http") {
        for n in transactions_in(&s.shipped) {
            bad.push(format!(
                "{}:{n}: a read or write on the store in the HTTP layer (make it a service operation)",
                s.path
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checker itself: a store call split over lines is caught, a file read is not.
#[test]
fn the_transaction_check_catches_a_split_call() {
    let found = transactions_in(
        "let a = 1;\nlet v = ctx\n    .state\n    .store\n    .read(move |c| get(c))\n    .await?;\n",
    );
    assert_eq!(found, vec![5]);
    assert!(
        transactions_in("file.read(&mut buf)?;\nstate.metrics.write(m, &mut out);\n").is_empty()
    );
    assert_eq!(transactions_in("x.write(|tx| f(tx))"), vec![1]);
}

#[test]
fn server_code_has_no_unwrap_or_expect() {
    let mut bad = Vec::new();
    for s in sources("src") {
        for (n, l) in code_lines(&s.shipped) {
            if l.contains(".unwrap()") || l.contains(".expect(") {
                bad.push(format!("{}:{n}: unwrap/expect in server code", s.path));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn files_stay_short_unless_they_are_tables() {
    let mut bad = Vec::new();
    for s in sources("src") {
        let n = s.full.lines().count();
        if n > MAX_LINES && !LONG_FILES.contains(&s.path.as_str()) {
            bad.push(format!("{}: {n} lines (at most {MAX_LINES})", s.path));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_source_file_says_what_it_owns() {
    let bad: Vec<String> = sources("src")
        .into_iter()
        .filter(|s| !s.full.trim_start().starts_with("//!"))
        .map(|s| format!("{}: no //! paragraph at the top", s.path))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn tests_are_never_ignored_or_expected_to_panic() {
    let mut bad = Vec::new();
    for dir in ["src", "tests"] {
        for s in sources(dir) {
            if s.path.ends_with("tests/tidy.rs") || s.path.ends_with("integration/tidy.rs") {
                continue;
            }
            for (i, l) in s.full.lines().enumerate() {
                let t = l.trim();
                if t.starts_with("#[ignore") || t.starts_with("#[should_panic") {
                    bad.push(format!("{}:{}: {t}", s.path, i + 1));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checker itself: a deliberately bad import is caught, and the layering it reads is the
/// one written above.
#[test]
fn the_import_check_catches_a_bad_edge() {
    let from = module_of("src/store/intents.rs");
    let r = references("use crate::service::intents::create;\nuse crate::{clock, Error};\n");
    let targets: Vec<_> = r.iter().filter_map(|(_, r)| target(&from, r)).collect();
    assert!(targets.contains(&("service".into(), "intents".into())));
    assert!(!allowed("store").unwrap_or(&[]).contains(&"service"));
    let from = module_of("src/service/history.rs");
    let r = references("use super::{effects, lifecycle};");
    let t: Vec<_> = r.iter().filter_map(|(_, r)| target(&from, r)).collect();
    assert_eq!(
        t,
        vec![
            ("service".to_string(), "effects".to_string()),
            ("service".to_string(), "lifecycle".to_string())
        ]
    );
    assert!(layer("effects") > layer("history"));
}
