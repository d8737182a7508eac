//! Wall-clock time and its one wire spelling: RFC 3339 UTC with microseconds
//! (`2026-11-25T16:52:57.123456Z`). Every timestamp the server writes or returns goes through
//! here, so stored and returned times always sort as strings.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Now, spelled for the wire and the store.
pub fn now_rfc3339() -> String {
    format(now())
}

/// Formats a time as RFC 3339 UTC with microseconds.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

/// Parses an RFC 3339 date-time with any offset; `None` if it is not one.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    now().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds() {
        let t = parse("2026-11-25T18:52:57.5+02:00").expect("parses");
        assert_eq!(format(t), "2026-11-25T16:52:57.500000Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("2026-11-25 16:52:57").is_none());
        assert!(parse("tomorrow").is_none());
    }
}
