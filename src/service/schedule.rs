//! Timers set and cancelled as reactions: a new intent's first reminder, a delayed completion
//! (`agent://internal/delay`, `Step::CompleteAfter`), and the end of that completion when the
//! intent stops waiting for time. `timers` fires them; this module only writes the rows.

use serde_json::{json, Value};

use crate::clock;
use crate::model::TimerKind;
use crate::store::intents::IntentRow;
use crate::store::timers;
use crate::store::Tx;
use crate::Error;

fn created_ms(intent: &IntentRow) -> i64 {
    clock::parse(&intent.created_at)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or_else(clock::now_ms)
}

/// Sets the first reminder of a new intent, if it asks for reminders.
pub fn on_create(conn: &Tx, intent: &IntentRow) -> Result<(), Error> {
    if let Some(after) = intent.remind_after_seconds {
        let due = created_ms(intent) + after * 1000;
        timers::insert(conn, &intent.intent_id, TimerKind::Remind, due, "{}")?;
    }
    Ok(())
}

/// Completes a WAITING intent with `result` at `due_ms` (a durable delay).
pub fn complete_at(conn: &Tx, intent_id: &str, due_ms: i64, result: &Value) -> Result<(), Error> {
    let data = json!({"result": result}).to_string();
    timers::insert(conn, intent_id, TimerKind::Complete, due_ms, &data)?;
    Ok(())
}

/// An intent leaves WAITING_FOR_TIME: its delayed completion no longer applies (a later wait
/// for time sets a new one).
pub fn cancel_completion(conn: &Tx, intent_id: &str) -> Result<(), Error> {
    timers::delete_kind(conn, intent_id, TimerKind::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing;

    #[test]
    fn the_first_reminder_falls_remind_after_seconds_after_creation() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let none = testing::intent(&tx, json!({}));
        assert!(timers::for_intent(&tx, &none.intent_id)
            .expect("timers")
            .is_empty());
        let i = testing::intent(&tx, json!({"remind_after_seconds": 90}));
        let t = timers::for_intent(&tx, &i.intent_id).expect("timers");
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].kind.as_str(), t[0].due_ms - created_ms(&i)),
            (TimerKind::Remind.as_str(), 90_000)
        );
    }

    #[test]
    fn cancelling_a_completion_leaves_the_other_timers() {
        let conn = testing::db();
        let tx = Tx::sqlite(&conn);
        let i = testing::intent(&tx, json!({"remind_after_seconds": 90}));
        complete_at(&tx, &i.intent_id, 1, &json!({"ok": true})).expect("delay");
        let kinds = |tx: &Tx| -> Vec<String> {
            let t = timers::for_intent(tx, &i.intent_id).expect("timers");
            t.into_iter().map(|t| t.kind).collect()
        };
        assert_eq!(
            kinds(&tx),
            [TimerKind::Complete.as_str(), TimerKind::Remind.as_str()]
        );
        cancel_completion(&tx, &i.intent_id).expect("cancelled");
        assert_eq!(kinds(&tx), [TimerKind::Remind.as_str()]);
    }
}
