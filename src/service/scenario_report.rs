//! `POST /v1/scenarios/validate`: a bundle's check (`scenarios::check`, its humans bound to
//! users) plus the warnings that need the registry: agents that are neither registered nor
//! created, who will have to pull their steps. Reads only; nothing is written.

use serde_json::Value;

use super::scenario_fields::Report;
use super::scenarios::{bind_humans, check};
use crate::store::agents as agent_rows;
use crate::store::{Store, Tx};
use crate::Error;

/// The report of a bundle, read at once.
pub async fn validate(
    store: &Store,
    body: Value,
    max_payload_bytes: usize,
) -> Result<Report, Error> {
    store
        .read(move |c| report(c, &body, max_payload_bytes))
        .await
}

fn report(conn: &Tx, body: &Value, max_payload_bytes: usize) -> Result<Report, Error> {
    let (mut report, mut bundle) = check(body, max_payload_bytes);
    if let Some(b) = bundle.as_mut() {
        bind_humans(conn, b, &mut report)?;
    }
    for (i, a) in bundle.iter().flat_map(|b| b.agents.iter().enumerate()) {
        if !a.create_if_missing && agent_rows::get(conn, &a.address)?.is_none() {
            report.warn(
                format!("agents[{i}].address"),
                format!(
                    "{} is not registered and create_if_missing is false: it will have to pull its steps (stream or poll)",
                    a.address
                ),
            );
        }
    }
    Ok(report)
}
