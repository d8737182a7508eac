//! The `completions` table: when an intent with `reply_to` reaches a terminal status, its
//! completion is stored here for the `reply_to` address's inbox (one message per completion;
//! the thread id is the intent id).

use super::Tx;
use rusqlite::params;

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRow {
    pub message_id: String,
    pub intent_id: String,
    pub reply_to: String,
    pub status: String,
    pub event_seq: i64,
    /// The completion as JSON text (status, result or error, reason).
    pub body: String,
    pub created_at: String,
}

pub fn insert(conn: &Tx, c: &CompletionRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO completions (message_id, intent_id, reply_to, status, event_seq, body, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        c.message_id,
        c.intent_id,
        c.reply_to,
        c.status,
        c.event_seq,
        c.body,
        c.created_at
    ])?;
    Ok(())
}
