//! The `live_bytes` table: per sender address, the payload bytes of its live (non-terminal)
//! intents. Changed by a delta in the transaction that creates an intent, ends it or redrives
//! it (`service::history`), so reading a key's usage is one primary-key lookup per address,
//! never a sum over the intents.

use super::Tx;
use rusqlite::OptionalExtension;

use crate::Error;

/// Adds `delta` (negative when an intent ends) to `agent`'s live bytes.
pub fn add(conn: &Tx, agent: &str, delta: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO live_bytes (agent, bytes) VALUES (?1, MAX(?2, 0)) \
         ON CONFLICT (agent) DO UPDATE SET bytes = MAX(bytes + ?2, 0)",
    )?
    .execute(rusqlite::params![agent, delta])?;
    Ok(())
}

/// The live bytes of `agent` (0 when it has none).
pub fn of(conn: &Tx, agent: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT bytes FROM live_bytes WHERE agent = ?1")?
        .query_row([agent], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::migrations::MIGRATIONS;

    #[test]
    fn the_migration_backfills_the_live_intents_of_an_existing_database() {
        let conn = Connection::open_in_memory().expect("open");
        let ours = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE live_bytes"))
            .expect("the live_bytes migration");
        for m in &MIGRATIONS[..ours] {
            conn.execute_batch(m).expect("earlier migration");
        }
        let insert = |id: &str, from: &str, payload: &str, status: &str| {
            conn.execute(
                "INSERT INTO intents (intent_id, intent_type, correlation_id, from_agent, \
                 to_agent, payload, status, last_seq, created_at, updated_at) \
                 VALUES (?1, 't', 'c', ?2, 'agent://h', ?3, ?4, 2, 'now', 'now')",
                rusqlite::params![id, from, payload, status],
            )
            .expect("intent");
        };
        insert("1", "agent://a", r#"{"k":"é"}"#, "SUBMITTED");
        insert("2", "agent://a", r#"{"k":1}"#, "WAITING");
        insert("3", "agent://a", r#"{"k":12345}"#, "COMPLETED");
        insert("4", "agent://b", r#"{}"#, "TIMED_OUT");
        conn.execute_batch(MIGRATIONS[ours]).expect("ours");
        let tx = Tx::sqlite(&conn);
        let bytes = (r#"{"k":"é"}"#.len() + r#"{"k":1}"#.len()) as i64;
        assert_eq!(
            of(&tx, "agent://a").expect("a"),
            bytes,
            "bytes, not characters"
        );
        assert_eq!(of(&tx, "agent://b").expect("b"), 0);
        add(&tx, "agent://b", 5).expect("add");
        add(&tx, "agent://b", -7).expect("take");
        assert_eq!(of(&tx, "agent://b").expect("b"), 0, "never below zero");
    }
}
