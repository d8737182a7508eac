//! What a new intent's payload brings with it, checked inside its create: the payload schema
//! of its type (`schemas`) and the media uploads it attaches (`media`). `intents::create` calls
//! [`on_create`] once, after its first events, so a refusal rolls the whole create back.

use rusqlite::Connection;

use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::Error;

pub fn on_create(
    conn: &Connection,
    intent: &mut IntentRow,
    appended: &mut Vec<EventRow>,
) -> Result<(), Error> {
    super::schemas::check_created(conn, intent, appended)?;
    super::media::link(conn, intent)
}
