//! The `deliveries` and `delivery_attempts` tables: the push outbox. A delivery row is written in
//! the same transaction as the event that causes it, so no event can be committed without its
//! pushes; every attempt on it is recorded. `next_attempt_ms` (Unix milliseconds) is set only
//! while the delivery is pending.

use super::Tx;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension, Row, ToSql};

use crate::model::{DeliveryKind, DeliveryStatus};
use crate::Error;

impl FromSql for DeliveryKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        DeliveryKind::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown delivery kind {s}").into()))
    }
}

impl ToSql for DeliveryKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DeliveryStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        DeliveryStatus::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown delivery status {s}").into()))
    }
}

impl ToSql for DeliveryStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub kind: DeliveryKind,
    pub intent_id: Option<String>,
    pub event_seq: Option<i64>,
    pub event_type: String,
    pub agent_address: Option<String>,
    pub subscription_id: Option<String>,
    pub target_url: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub last_error: Option<String>,
    pub replay_of: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// For pushes of a published (non-intent) event: the `webhook_events` row.
    pub webhook_event_id: Option<String>,
    /// Scheme, host and port of the target: what a per-endpoint limit counts.
    pub endpoint: String,
}

const COLUMNS: &str = "delivery_id, kind, intent_id, event_seq, event_type, agent_address, \
    subscription_id, target_url, status, attempts, max_attempts, next_attempt_ms, last_error, \
    replay_of, created_at, updated_at, webhook_event_id, endpoint";

fn from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        delivery_id: r.get(0)?,
        kind: r.get(1)?,
        intent_id: r.get(2)?,
        event_seq: r.get(3)?,
        event_type: r.get(4)?,
        agent_address: r.get(5)?,
        subscription_id: r.get(6)?,
        target_url: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        max_attempts: r.get(10)?,
        next_attempt_ms: r.get(11)?,
        last_error: r.get(12)?,
        replay_of: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        webhook_event_id: r.get(16)?,
        endpoint: r.get(17)?,
    })
}

pub fn insert(conn: &Tx, d: &DeliveryRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO deliveries ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?
    .execute(params![
        d.delivery_id,
        d.kind,
        d.intent_id,
        d.event_seq,
        d.event_type,
        d.agent_address,
        d.subscription_id,
        d.target_url,
        d.status,
        d.attempts,
        d.max_attempts,
        d.next_attempt_ms,
        d.last_error,
        d.replay_of,
        d.created_at,
        d.updated_at,
        d.webhook_event_id,
        d.endpoint
    ])?;
    super::notify::record_delivery();
    Ok(())
}

pub fn get(conn: &Tx, delivery_id: &str) -> Result<Option<DeliveryRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE delivery_id = ?1"
        ))?
        .query_row([delivery_id], from_row)
        .optional()?)
}

/// Writes back the state of a delivery after an attempt or a replay.
pub fn update_state(conn: &Tx, d: &DeliveryRow) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?2, attempts = ?3, max_attempts = ?4, next_attempt_ms = ?5, \
         last_error = ?6, updated_at = ?7, replay_of = ?8 WHERE delivery_id = ?1",
    )?
    .execute(params![
        d.delivery_id,
        d.status,
        d.attempts,
        d.max_attempts,
        d.next_attempt_ms,
        d.last_error,
        d.updated_at,
        d.replay_of
    ])?;
    super::notify::record_delivery();
    Ok(())
}

/// A delivery by its rowid (what the push scheduler keeps of the deliveries it took).
pub fn get_by_rowid(conn: &Tx, rowid: i64) -> Result<Option<DeliveryRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM deliveries WHERE rowid = ?1"
        ))?
        .query_row([rowid], from_row)
        .optional()?)
}

/// The first endpoint after `after` (in byte order) with pending deliveries, and the soonest
/// `next_attempt_ms` among them: one seek in `deliveries_endpoint_due`, so that walking every
/// endpoint costs one seek per endpoint however long their backlogs are.
pub fn next_pending_endpoint(conn: &Tx, after: &str) -> Result<Option<(String, i64)>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT endpoint, next_attempt_ms FROM deliveries WHERE status = 'pending' \
             AND endpoint > ?1 AND next_attempt_ms IS NOT NULL \
             ORDER BY endpoint, next_attempt_ms LIMIT 1",
        )?
        .query_row([after], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Pending deliveries to `endpoint` due at `now_ms`, soonest first, at most `limit`, as
/// (rowid, `next_attempt_ms`): read from `deliveries_endpoint_due` alone, no table row.
pub fn due_at_endpoint(
    conn: &Tx,
    endpoint: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<(i64, i64)>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, next_attempt_ms FROM deliveries WHERE status = 'pending' \
         AND endpoint = ?1 AND next_attempt_ms <= ?2 ORDER BY next_attempt_ms LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![endpoint, now_ms, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Who owns a delivery's target: the owner of its subscription, or the handler agent it pushes
/// an intent to ("" for neither). What fair push scheduling shares the workers by.
pub fn owner_of(conn: &Tx, rowid: i64) -> Result<String, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(s.owner_agent, d.agent_address, '') FROM deliveries d \
             LEFT JOIN webhook_subscriptions s ON s.subscription_id = d.subscription_id \
             WHERE d.rowid = ?1",
        )?
        .query_row([rowid], |r| r.get(0))
        .optional()?
        .unwrap_or_default())
}

/// When the next pending delivery falls due after `now_ms` (Unix ms), if any.
pub fn next_due_after(conn: &Tx, now_ms: i64) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(next_attempt_ms) FROM deliveries WHERE status = 'pending' \
             AND next_attempt_ms > ?1",
        )?
        .query_row([now_ms], |r| r.get(0))?)
}

/// Moves the next attempt of every pending delivery by `by_ms` (a step of the system clock; see
/// `runtime::jumps`). Returns how many moved.
pub fn shift_pending(conn: &Tx, by_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached(
            "UPDATE deliveries SET next_attempt_ms = next_attempt_ms + ?1 \
             WHERE status = 'pending' AND next_attempt_ms IS NOT NULL",
        )?
        .execute([by_ms])?)
}

/// Filters of the delivery listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub intent_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Only deliveries created before this one (the previous page's last id, by rowid).
    pub before_rowid: Option<i64>,
    pub limit: usize,
}

/// Deliveries matching the filter, newest first, each with its rowid (the listing cursor).
pub fn list(conn: &Tx, f: &ListFilter) -> Result<Vec<(i64, DeliveryRow)>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, rowid FROM deliveries WHERE (?1 IS NULL OR intent_id = ?1) \
         AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR rowid < ?3) \
         ORDER BY rowid DESC LIMIT ?4"
    ))?;
    let rows = stmt
        .query_map(
            params![f.intent_id, f.status, f.before_rowid, f.limit as i64],
            |r| Ok((r.get(18)?, from_row(r)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The deliveries of one published event.
pub fn for_webhook_event(conn: &Tx, event_id: &str) -> Result<Vec<DeliveryRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM deliveries WHERE webhook_event_id = ?1"
    ))?;
    let rows = stmt
        .query_map([event_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i64,
    pub at: String,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

pub fn insert_attempt(conn: &Tx, a: &AttemptRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, latency_ms, error, \
         response_excerpt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        a.delivery_id,
        a.attempt,
        a.at,
        a.status_code,
        a.latency_ms,
        a.error,
        a.response_excerpt
    ])?;
    Ok(())
}

/// The attempts of a delivery, in order.
pub fn attempts(conn: &Tx, delivery_id: &str) -> Result<Vec<AttemptRow>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT delivery_id, attempt, at, status_code, latency_ms, error, response_excerpt \
         FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    let rows = stmt
        .query_map([delivery_id], |r| {
            Ok(AttemptRow {
                delivery_id: r.get(0)?,
                attempt: r.get(1)?,
                at: r.get(2)?,
                status_code: r.get(3)?,
                latency_ms: r.get(4)?,
                error: r.get(5)?,
                response_excerpt: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("collect");
        rows.join("; ")
    }

    /// The scheduler's reads of due work must not depend on the length of a backlog: each is
    /// a seek in the endpoint index, and the due rows are read from the index alone.
    #[test]
    fn due_work_is_read_from_the_endpoint_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::store::migrations::migrate(&mut conn).expect("migrate");
        let conn = Tx::sqlite(&conn);
        let next = plan(
            &conn,
            "SELECT endpoint, next_attempt_ms FROM deliveries WHERE status = 'pending' \
             AND endpoint > 'x' AND next_attempt_ms IS NOT NULL \
             ORDER BY endpoint, next_attempt_ms LIMIT 1",
        );
        assert!(
            next.contains("deliveries_endpoint_due") && !next.contains("TEMP B-TREE"),
            "{next}"
        );
        let due = plan(
            &conn,
            "SELECT rowid, next_attempt_ms FROM deliveries WHERE status = 'pending' \
             AND endpoint = 'x' AND next_attempt_ms <= 5 ORDER BY next_attempt_ms LIMIT 3",
        );
        assert!(
            due.contains("COVERING INDEX deliveries_endpoint_due") && !due.contains("TEMP B-TREE"),
            "{due}"
        );
    }

    fn pending(id: &str, endpoint: &str, next_ms: i64) -> DeliveryRow {
        DeliveryRow {
            delivery_id: id.into(),
            kind: DeliveryKind::Handler,
            intent_id: None,
            event_seq: None,
            event_type: "intent.submitted".into(),
            agent_address: None,
            subscription_id: None,
            target_url: format!("{endpoint}/hook"),
            status: DeliveryStatus::Pending,
            attempts: 0,
            max_attempts: 0,
            next_attempt_ms: Some(next_ms),
            last_error: None,
            replay_of: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            webhook_event_id: None,
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn endpoints_are_walked_in_order_with_their_soonest_due_time() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::store::migrations::migrate(&mut conn).expect("migrate");
        let conn = Tx::sqlite(&conn);
        for (id, ep, at) in [
            ("d1", "http://b", 30),
            ("d2", "http://a", 20),
            ("d3", "http://b", 10),
            ("d4", "http://a", 40),
            ("d5", "http://c", 50),
        ] {
            insert(&conn, &pending(id, ep, at)).expect("insert");
        }
        let mut done = pending("d6", "http://c", 5);
        done.status = DeliveryStatus::Delivered;
        done.next_attempt_ms = None;
        insert(&conn, &done).expect("insert");

        let mut walked = Vec::new();
        let mut after = String::new();
        while let Some((ep, first)) = next_pending_endpoint(&conn, &after).expect("next") {
            walked.push((ep.clone(), first));
            after = ep;
        }
        assert_eq!(
            walked,
            vec![
                ("http://a".to_string(), 20),
                ("http://b".to_string(), 10),
                ("http://c".to_string(), 50)
            ]
        );
        let due: Vec<i64> = due_at_endpoint(&conn, "http://b", 30, 10)
            .expect("due")
            .into_iter()
            .map(|(_, at)| at)
            .collect();
        assert_eq!(due, vec![10, 30]);
        assert_eq!(
            due_at_endpoint(&conn, "http://a", 30, 1)
                .expect("due")
                .len(),
            1
        );
        assert!(due_at_endpoint(&conn, "http://c", 30, 10)
            .expect("due")
            .is_empty());
        let (rowid, _) = due_at_endpoint(&conn, "http://a", 20, 1).expect("due")[0];
        let row = get_by_rowid(&conn, rowid).expect("get").expect("row");
        assert_eq!(row.delivery_id, "d2");
    }
}
