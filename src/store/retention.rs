//! Deleting what the retention no longer keeps: terminal intents last changed before a cutoff,
//! with every row that belongs to them. Each query runs on an index (the plans are checked by
//! the tests below), and a caller deletes a bounded batch per transaction so that other writes
//! never wait long behind a sweep.
//!
//! Freed pages are reused by SQLite for new rows; the file is not shrunk (no `VACUUM`, which
//! would rewrite the whole database under the writer). A database created with
//! `auto_vacuum=INCREMENTAL` gets its free pages returned a bounded number at a time.

use super::Tx;
use rusqlite::params;

use crate::Error;

/// What belongs to an intent, one `DELETE` per table, each given the batch's intent ids as a
/// JSON array in `?1`. Delivery attempts go before the deliveries they are found through, the
/// intents last. A new table of per-intent rows (inbox threads, say) adds one line here.
const DELETES: &[&str] = &[
    "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT delivery_id FROM deliveries \
     WHERE intent_id IN (SELECT value FROM json_each(?1)))",
    "DELETE FROM deliveries WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM events WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM completions WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM leases WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM idempotency_keys WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM thread_messages WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM threads WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM timers WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM mail_outbox WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM email_links WHERE intent_id IN (SELECT value FROM json_each(?1))",
    // Uploads go with the intents that attach them (their files with the next media sweep).
    "DELETE FROM media WHERE upload_id IN (SELECT upload_id FROM media_refs \
     WHERE intent_id IN (SELECT value FROM json_each(?1)))",
    "DELETE FROM media_refs WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM workflow_steps WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM workflows WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM intent_controls WHERE intent_id IN (SELECT value FROM json_each(?1))",
    "DELETE FROM intents WHERE intent_id IN (SELECT value FROM json_each(?1))",
];

/// Intents the retention may remove: terminal (the `WHERE` of the partial index
/// `intents_retention`, spelled identically), last changed before `?1` (RFC 3339 UTC, which
/// sorts as text), oldest first, at most `?2`. The index is named: without statistics SQLite
/// would rather take `intents_status`, and then read and sort every terminal intent per batch.
/// On this one it reads the oldest changes in order and stops after `?2`. Kept whatever their age:
/// an intent with a pending delivery (pushes are never dropped), the newest intent row, and the
/// intent of the newest event — event ids are `max + 1`, so the newest event must stay for ids
/// (the stream cursors) to keep increasing; likewise the intents' row ids.
const EXPIRED: &str = "SELECT intent_id FROM intents INDEXED BY intents_retention \
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELED', 'TIMED_OUT') AND updated_at < ?1 \
    AND id <> (SELECT MAX(id) FROM intents) \
    AND intent_id IS NOT (SELECT intent_id FROM events \
        WHERE event_id = (SELECT MAX(event_id) FROM events)) \
    AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.intent_id = intents.intent_id \
        AND d.status = 'pending') \
    ORDER BY updated_at LIMIT ?2";

/// Ids of at most `limit` intents the retention removes at `cutoff`, oldest change first.
pub fn expired(conn: &Tx, cutoff: &str, limit: usize) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(EXPIRED)?;
    let rows = stmt
        .query_map(params![cutoff, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

/// Deletes the intents `ids` and every row that belongs to them. Returns how many intents went.
pub fn delete(conn: &Tx, ids: &[String]) -> Result<usize, Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids = serde_json::to_string(ids)?;
    let mut intents = 0;
    for sql in DELETES {
        intents = conn.prepare_cached(sql)?.execute([&ids])?;
    }
    Ok(intents)
}

/// Returns up to `pages` free pages to the file system when the database was created with
/// `auto_vacuum=INCREMENTAL`; does nothing otherwise (the page layout of a database is never
/// changed). Returns whether it ran.
pub fn incremental_vacuum(conn: &Tx, pages: u32) -> Result<bool, Error> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        return Ok(false);
    }
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;
    use rusqlite::Connection;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let nulls = vec![rusqlite::types::Value::Null; stmt.parameter_count()];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");
        rows.join("\n")
    }

    /// Every table a statement reads or deletes from is searched through an index: a `SCAN`
    /// is allowed only of the JSON array of ids.
    #[test]
    fn every_statement_of_a_sweep_uses_an_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrations::migrate(&mut conn).expect("migrate");
        let conn = Tx::sqlite(&conn);
        for sql in DELETES.iter().copied().chain([EXPIRED]) {
            let p = plan(&conn, sql);
            for line in p.lines() {
                let scan = line.trim_start().starts_with("SCAN") && !line.contains("json_each");
                assert!(!scan, "a full scan in\n{sql}\n{p}");
            }
        }
        let p = plan(&conn, EXPIRED);
        assert!(p.contains("intents_retention"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "read in index order: {p}");
    }

    #[test]
    fn incremental_vacuum_runs_only_on_incremental_databases() {
        let conn = Connection::open_in_memory().expect("open");
        assert!(!incremental_vacuum(&Tx::sqlite(&conn), 10).expect("none"));
        let conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "auto_vacuum", 2).expect("set");
        conn.execute_batch(
            "CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000)); DELETE FROM t;",
        )
        .expect("fill");
        assert!(incremental_vacuum(&Tx::sqlite(&conn), 10).expect("ran"));
    }
}
