//! The bulk cancel of stale intents (`POST /v1/intents/bulk-cancel`, what AXME's CLI sends for
//! `axme intents cleanup`): every intent in the asked statuses that has not changed for the
//! given hours is CANCELED, each through the same resolve as a single cancel, all in one
//! transaction. A dry run only names them. An agent key reaches only the intents it sent or
//! handles; it never decides a lifecycle rule of its own.

use serde_json::Value;

use super::access::Access;
use super::intents;
use super::requests::Resolve;
use super::validate::Fields;
use crate::clock;
use crate::model::Status;
use crate::store::intents as stored;
use crate::store::{Store, Tx};
use crate::Error;

/// The most intents one bulk cancel reaches (the CLI asks for 500 by default).
pub const LIMIT_MAX: i64 = 1000;

/// A checked bulk-cancel body.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkCancel {
    pub older_than_hours: f64,
    /// Without an explicit `false`, nothing is canceled: the answer only names the intents.
    pub dry_run: bool,
    pub reason: String,
    pub limit: usize,
    pub statuses: Vec<Status>,
}

/// Reads `{older_than_hours?: 24, dry_run?: true, reason?, limit?: 1–1000 (500),
/// status_filter?: [live statuses]}`.
pub fn request(body: &Value) -> Result<BulkCancel, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "older_than_hours",
        "dry_run",
        "reason",
        "limit",
        "status_filter",
    ])?;
    let older_than_hours = match body.get("older_than_hours").filter(|v| !v.is_null()) {
        None => 24.0,
        Some(v) => v
            .as_f64()
            .filter(|h| h.is_finite() && (0.0..=1_000_000.0).contains(h))
            .ok_or_else(|| {
                Error::invalid(
                    "older_than_hours",
                    "must be a number of hours, 0 to 1000000",
                )
            })?,
    };
    let statuses = match f.str_array_opt("status_filter", (0, 10), (1, 32))? {
        None => live_statuses(),
        Some(s) if s.is_empty() => live_statuses(),
        Some(s) => s
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Status::parse(name)
                    .filter(|st| !st.is_terminal() && *st != Status::Created)
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("status_filter[{i}]"),
                            "must be a live status: SUBMITTED, DELIVERED, ACKNOWLEDGED, \
                             IN_PROGRESS or WAITING",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(BulkCancel {
        older_than_hours,
        dry_run: f.bool_opt("dry_run")?.unwrap_or(true),
        reason: f
            .str_opt("reason", 0, 2000)?
            .unwrap_or("bulk cancel of inactive intents")
            .to_string(),
        limit: f.int_opt("limit", 1, LIMIT_MAX)?.unwrap_or(500) as usize,
        statuses,
    })
}

fn live_statuses() -> Vec<Status> {
    vec![
        Status::Submitted,
        Status::Delivered,
        Status::Acknowledged,
        Status::InProgress,
        Status::Waiting,
    ]
}

/// What a bulk cancel found, and canceled unless it was a dry run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dry_run: bool,
    pub intent_ids: Vec<String>,
}

/// A dry run: the stale intents the caller may cancel, read at once (nothing changes).
pub async fn dry_run(
    store: &Store,
    access: &Access,
    req: BulkCancel,
    caller: &str,
) -> Result<Outcome, Error> {
    let (access, caller) = (access.clone(), caller.to_string());
    store.read(move |c| run(c, &req, &access, &caller)).await
}

/// Finds the stale intents the caller may cancel and, unless `dry_run`, cancels them.
pub fn run(conn: &Tx, req: &BulkCancel, access: &Access, caller: &str) -> Result<Outcome, Error> {
    let cutoff = clock::now() - time::Duration::seconds_f64(req.older_than_hours * 3600.0);
    let before = clock::format(cutoff);
    let intent_ids = stored::inactive(conn, &req.statuses, &before, access.parties(), req.limit)?;
    if !req.dry_run {
        for id in &intent_ids {
            let cancel = Resolve {
                status: Status::Canceled,
                actor: None,
                result: None,
                error: None,
                reason: Some(req.reason.clone()),
            };
            intents::resolve(conn, id, cancel, caller, None)?;
        }
    }
    Ok(Outcome {
        dry_run: req.dry_run,
        intent_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_a_dry_run_of_a_day_old_live_intents() {
        let r = request(&json!({})).unwrap();
        assert_eq!((r.older_than_hours, r.dry_run, r.limit), (24.0, true, 500));
        assert_eq!(r.statuses, live_statuses());
        let r = request(&json!({"older_than_hours": 0.5, "dry_run": false,
            "status_filter": ["WAITING"], "limit": 3}))
        .unwrap();
        assert_eq!((r.older_than_hours, r.dry_run, r.limit), (0.5, false, 3));
        assert_eq!(r.statuses, vec![Status::Waiting]);
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, field) in [
            (json!({"older_than_hours": -1}), "older_than_hours"),
            (json!({"older_than_hours": "1"}), "older_than_hours"),
            (json!({"status_filter": ["DONE"]}), "status_filter[0]"),
            (
                json!({"status_filter": ["WAITING", "COMPLETED"]}),
                "status_filter[1]",
            ),
            (json!({"limit": 0}), "limit"),
            (json!({"dry_run": "no"}), "dry_run"),
            (json!({"everything": true}), "everything"),
        ] {
            match request(&body) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
