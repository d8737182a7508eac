//! The routing table on arbitrary request lines: `METHOD PATH` (a query after `?` is cut off, as
//! hyper hands the router only the path). The router never panics, and what it answers is
//! consistent:
//! - a match has the method asked for (HEAD as GET), one non-empty parameter per wildcard of
//!   its pattern, and is found again from its parameters re-encoded into the pattern (the
//!   canonical spelling of the same request);
//! - a 405 lists methods, each of which is then a match on the same path, and not the one asked;
//! - a 404 is a 404 for every method;
//! - the percent-decoder agrees with a strict one written out here (`%` and two hex digits).
#![no_main]

use axme::http::router::{self, Matched, Route};
use libfuzzer_sys::fuzz_target;

mod oracle;
use oracle::strict_decode;

/// Every byte as `%XX`: no literal of the table contains `%`, so an encoded parameter can only
/// ever fill a wildcard.
fn encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn pattern_of(method: &str, route: Route) -> &'static str {
    router::table()
        .zip(router::routes())
        .find(|((m, _), r)| *r == route && *m == method)
        .map(|((_, p), _)| p)
        .expect("a found route has a line of its method in the table")
}

const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for plus in [false, true] {
        assert_eq!(
            router::percent_decode_with(&text, plus),
            strict_decode(&text, plus),
            "percent-decoding of {text:?} (plus_is_space {plus})"
        );
    }
    let (method, target) = text.split_once(' ').unwrap_or(("GET", &text));
    let path = target.split('?').next().unwrap_or("");
    let asked = if method == "HEAD" { "GET" } else { method };
    match router::route(method, path) {
        Matched::Found(route, params) => {
            let pattern = pattern_of(asked, route);
            let wildcards = pattern
                .split('/')
                .filter(|s| *s == "*" || *s == "**")
                .count();
            assert_eq!(
                params.len(),
                wildcards,
                "{pattern} from {path:?}: {params:?}"
            );
            assert!(
                params.iter().all(|p| !p.is_empty()),
                "an empty parameter from {path:?}: {params:?}"
            );
            let mut given = params.iter();
            let rebuilt: Vec<String> = pattern
                .split('/')
                .map(|s| match s {
                    "*" | "**" => encode_all(given.next().expect("counted")),
                    literal => literal.to_string(),
                })
                .collect();
            let rebuilt = rebuilt.join("/");
            assert_eq!(
                router::route(method, &rebuilt),
                Matched::Found(route, params.clone()),
                "{path:?} re-encoded as {rebuilt:?}"
            );
        }
        Matched::MethodNotAllowed(allow) => {
            assert!(!allow.is_empty(), "405 without Allow for {path:?}");
            assert!(!allow.contains(&asked), "405 allows {asked} for {path:?}");
            for (i, m) in allow.iter().enumerate() {
                assert!(!allow[..i].contains(m), "Allow repeats {m} for {path:?}");
                assert!(
                    matches!(router::route(m, path), Matched::Found(..)),
                    "405 allows {m} but {m} {path:?} is not found"
                );
            }
        }
        Matched::NotFound => {
            for m in METHODS {
                assert_eq!(router::route(m, path), Matched::NotFound, "{m} {path:?}");
            }
        }
    }
});
