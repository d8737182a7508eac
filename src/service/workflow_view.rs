//! What a workflow looks like from outside the engine: a workflow with every run of its steps
//! (`GET /v1/intents/{id}/workflow`), and the intent that carries its running step (where a
//! resume of the workflow's intent goes). Reads only; the engine itself is `workflow`.

use super::access::Access;
use crate::model::StepStatus;
use crate::store::workflows::{self, StepRow, WorkflowRow};
use crate::store::{Store, Tx};
use crate::Error;

/// The intent that carries the running step of the workflow `intent_id`, if one runs.
pub fn running_step_intent(conn: &Tx, intent_id: &str) -> Result<Option<String>, Error> {
    Ok(workflows::steps(conn, intent_id)?
        .into_iter()
        .rev()
        .find(|r| r.status == StepStatus::Running)
        .and_then(|r| r.step_intent_id))
}

/// A workflow and every run of its steps (`GET /v1/intents/{id}/workflow`), if the caller may
/// see its intent (404 otherwise).
pub async fn view(
    store: &Store,
    access: &Access,
    intent_id: &str,
) -> Result<(WorkflowRow, Vec<StepRow>), Error> {
    let (access, id) = (access.clone(), intent_id.to_string());
    store
        .read(move |c| {
            access.read(c, &id)?;
            view_in(c, &id)
        })
        .await
}

fn view_in(conn: &Tx, intent_id: &str) -> Result<(WorkflowRow, Vec<StepRow>), Error> {
    let row = workflows::get(conn, intent_id)?.ok_or_else(|| Error::NotFound {
        what: "workflow",
        id: intent_id.to_string(),
    })?;
    Ok((row.clone(), workflows::steps(conn, intent_id)?))
}
