//! What a new intent's payload brings with it, checked inside its create: the payload schema
//! of its type (`schemas`) and the media uploads it attaches (`media`). `intents::create` calls
//! [`on_create`] once, after its first events, so a refusal rolls the whole create back.

use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::Tx;
use crate::Error;

pub fn on_create(
    conn: &Tx,
    intent: &mut IntentRow,
    appended: &mut Vec<EventRow>,
) -> Result<(), Error> {
    if let Some(details) = super::schemas::check_created(conn, intent)? {
        let actor = intent.from_agent.clone();
        let event =
            super::effects::note(conn, intent, super::schemas::WARNING_EVENT, &actor, details)?;
        appended.push(event);
    }
    super::media::link(conn, intent)
}
