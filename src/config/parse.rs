//! The readers of the settings that are not plain numbers or words: durations and their lists
//! (`--retention`, `--push-retry-schedule`), `--durability` and `--public-url`.

use std::time::Duration;

use super::{Retention, Schedule};
use crate::store::Durability;

/// Reads `--public-url`: an `http://` or `https://` URL, kept without a trailing `/`.
pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?}: must start with http:// or https://"))?;
    let bad = |c: char| c.is_whitespace() || c == '?' || c == '#';
    if rest.is_empty() || rest.chars().any(bad) {
        return Err(format!(
            "{s:?}: must name a host, without a query or fragment"
        ));
    }
    Ok(t.to_string())
}

/// Reads `--durability`: `full` or `normal`.
pub(super) fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        other => Err(format!("{other:?}: expected full or normal")),
    }
}

/// Reads `--retention`: one duration (`30d`, `12h`), or `0` / `off`.
pub(super) fn parse_retention(s: &str) -> Result<Retention, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Retention(None));
    }
    match parse_durations(s)?[..] {
        [d] => Ok(Retention(Some(d).filter(|d| !d.is_zero()))),
        _ => Err(format!("{s:?}: expected one duration such as 30d, or off")),
    }
}

/// Parses `5s,5m,30m,2h` into durations.
pub(super) fn parse_durations(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            let (num, unit) = part.split_at(
                part.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(part.len()),
            );
            let n: u64 = num
                .parse()
                .map_err(|_| format!("{part:?}: expected a number followed by ms, s, m, h or d"))?;
            let secs = match unit {
                "ms" => return Ok(Duration::from_millis(n)),
                "s" | "" => n,
                "m" => n * 60,
                "h" => n * 3600,
                "d" => n * 86_400,
                _ => {
                    return Err(format!(
                        "{part:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            Ok(Duration::from_secs(secs))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.is_empty() {
                Err("the retry schedule is empty".into())
            } else {
                Ok(v)
            }
        })
}

/// Reads `--push-retry-schedule`.
pub(super) fn parse_schedule(s: &str) -> Result<Schedule, String> {
    parse_durations(s).map(Schedule)
}
