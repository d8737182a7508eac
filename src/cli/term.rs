//! What the client shows a person: aligned tables, one-line timeline entries, shortened JSON,
//! and a spinner on stderr while it waits (only when stderr is a terminal, so scripts and logs
//! never see it).

use std::io::{IsTerminal, Write};
use std::time::Instant;

use serde_json::Value;

/// A table with a header row; columns as wide as their widest cell, two spaces apart. The last
/// column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                out.push_str(&pad(cell, widths[i]));
                out.push_str("  ");
            } else {
                out.push_str(cell);
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// `s` padded with spaces to `width` characters.
pub fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An RFC 3339 UTC timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), or as it came if it is not one.
pub fn when(at: &str) -> String {
    match (at.get(..10), at.get(11..19)) {
        (Some(date), Some(time)) if at.as_bytes().get(10) == Some(&b'T') => {
            format!("{date} {time}")
        }
        _ => at.to_string(),
    }
}

/// A string field of a JSON object, or `-`.
pub fn field(v: &Value, name: &str) -> String {
    match &v[name] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// JSON on one line, cut to `max` characters; empty for `{}` and null.
pub fn compact(v: &Value, max: usize) -> String {
    match v {
        Value::Null => String::new(),
        Value::Object(m) if m.is_empty() => String::new(),
        other => truncate(&other.to_string(), max),
    }
}

/// Prints a JSON document for scripts (pretty, one document).
pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

/// The header of an intent timeline (see [`timeline_line`]).
pub fn timeline_header() -> String {
    format!(
        "{}  {:>4}  {}  {}  {}  DETAILS",
        pad("TIME (UTC)", 19),
        "SEQ",
        pad("EVENT", 22),
        pad("STATUS", 12),
        pad("ACTOR", 26)
    )
}

/// One event of an intent as a timeline line: time, seq, event type, status, actor, details.
pub fn timeline_line(e: &Value) -> String {
    let mut details = String::new();
    if let Some(w) = e["waiting_reason"].as_str() {
        details.push_str(w);
    }
    let d = compact(&e["details"], 80);
    if !d.is_empty() {
        if !details.is_empty() {
            details.push(' ');
        }
        details.push_str(&d);
    }
    let line = format!(
        "{}  {:>4}  {}  {}  {}  {details}",
        pad(&when(e["at"].as_str().unwrap_or("")), 19),
        e["seq"].to_string(),
        pad(&field(e, "event_type"), 22),
        pad(&field(e, "status"), 12),
        pad(&field(e, "actor"), 26),
    );
    line.trim_end().to_string()
}

/// A one-line activity indicator on stderr, redrawn on each `tick`; silent unless stderr is a
/// terminal. Clear it before printing anything else.
pub struct Spinner {
    on: bool,
    shown: bool,
    frame: usize,
    started: Instant,
}

impl Spinner {
    pub fn new() -> Spinner {
        Spinner {
            on: std::io::stderr().is_terminal(),
            shown: false,
            frame: 0,
            started: Instant::now(),
        }
    }

    pub fn tick(&mut self, label: &str) {
        if !self.on {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        self.frame = (self.frame + 1) % FRAMES.len();
        let secs = self.started.elapsed().as_secs();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{} {label} ({secs}s)", FRAMES[self.frame]);
        let _ = err.flush();
        self.shown = true;
    }

    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["ID", "NAME", "NOTE"],
            &[
                vec!["1".into(), "alpha".into(), "x".into()],
                vec!["22".into(), "b".into(), "".into()],
            ],
        );
        assert_eq!(t, "ID  NAME   NOTE\n1   alpha  x\n22  b\n");
    }

    #[test]
    fn times_and_truncation() {
        assert_eq!(when("2026-11-25T16:52:57.123456Z"), "2026-11-25 16:52:57");
        assert_eq!(when("soon"), "soon");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn timeline_lines_show_the_event() {
        let line = timeline_line(&json!({
            "seq": 5, "event_type": "intent.waiting", "status": "WAITING",
            "waiting_reason": "WAITING_FOR_HUMAN", "actor": "agent://a",
            "at": "2026-01-02T03:04:05.000000Z", "details": {"k": 1}
        }));
        assert!(
            line.starts_with("2026-01-02 03:04:05     5  intent.waiting"),
            "{line}"
        );
        assert!(line.ends_with("WAITING_FOR_HUMAN {\"k\":1}"), "{line}");
    }
}
