//! Counts read for the metrics on each scrape. Each query is answered from an index (a covering
//! scan of `intents_status`, the partial indexes `deliveries_due` and `intents_claimable`), so a
//! scrape never reads table rows.

use super::Tx;
use rusqlite::params;

use crate::Error;

/// What the store holds right now, for the gauges of a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Intents by status (statuses with none are left out).
    pub intents_by_status: Vec<(String, i64)>,
    /// Pushes waiting for their next attempt (the retry queue, first attempts included).
    pub pending_deliveries: i64,
    /// For every agent registered with the inbox binding: intents it could claim now.
    pub claimable_by_agent: Vec<(String, i64)>,
}

/// Reads every count of a scrape, at `now_ms` (Unix milliseconds, for nack delays).
pub fn snapshot(conn: &Tx, now_ms: i64) -> Result<Snapshot, Error> {
    Ok(Snapshot {
        intents_by_status: intents_by_status(conn)?,
        pending_deliveries: pending_deliveries(conn)?,
        claimable_by_agent: claimable_by_agent(conn, now_ms)?,
    })
}

const BY_STATUS: &str = "SELECT status, COUNT(*) FROM intents GROUP BY status ORDER BY status";

const PENDING: &str = "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'";

const CLAIMABLE: &str = "SELECT a.address, (SELECT COUNT(*) FROM intents i \
    WHERE i.to_agent = a.address AND i.status = 'SUBMITTED' \
    AND (i.available_at_ms IS NULL OR i.available_at_ms <= ?1)) \
    FROM agents a WHERE a.delivery_mode = 'inbox' ORDER BY a.address";

/// Intents by status: one pass over the `intents_status` index (no table rows read).
pub fn intents_by_status(conn: &Tx) -> Result<Vec<(String, i64)>, Error> {
    let mut stmt = conn.prepare_cached(BY_STATUS)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Pending deliveries, counted on the partial index `deliveries_due`.
pub fn pending_deliveries(conn: &Tx) -> Result<i64, Error> {
    Ok(conn.prepare_cached(PENDING)?.query_row([], |r| r.get(0))?)
}

/// For each inbox agent, its intents that a claim at `now_ms` would take: SUBMITTED and not held
/// back by a nack delay (the same rule as `leases::claimable`), counted on `intents_claimable`.
pub fn claimable_by_agent(conn: &Tx, now_ms: i64) -> Result<Vec<(String, i64)>, Error> {
    let mut stmt = conn.prepare_cached(CLAIMABLE)?;
    let rows = stmt
        .query_map(params![now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrations;
    use rusqlite::Connection;

    /// The plan of a scrape's query: each table is read through the index named.
    #[test]
    fn a_scrape_reads_indexes_only() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrations::migrate(&mut conn).expect("migrate");
        let conn = Tx::sqlite(&conn);
        let plan = |sql: &str| -> String {
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
        };
        let p = plan(BY_STATUS);
        assert!(p.contains("COVERING INDEX intents_status"), "{p}");
        let p = plan(PENDING);
        assert!(p.contains("deliveries_due"), "{p}");
        let p = plan(CLAIMABLE);
        assert!(p.contains("INDEX intents_claimable"), "{p}");
    }
}
