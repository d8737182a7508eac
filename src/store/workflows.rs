//! The `workflows`, `workflow_steps` and `intent_controls` tables: a scenario intent's compiled
//! steps and which one runs, each run of a step (the intent that carries it, its outcome), and
//! the controls and policy patched onto an intent with their generation. Rows only; what a step
//! does and when the workflow moves on is decided in `service::workflow`.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension, Row, ToSql};

use super::Tx;

use crate::model::StepStatus;
use crate::Error;

impl FromSql for StepStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = value.as_str()?;
        StepStatus::parse(s)
            .ok_or_else(|| FromSqlError::Other(format!("unknown step status {s}").into()))
    }
}

impl ToSql for StepStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A workflow as stored: `spec` is the compiled workflow (JSON text, see
/// `service::scenarios`), `current_step` the step that runs (none once it ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRow {
    pub intent_id: String,
    pub compile_id: String,
    pub scenario_id: String,
    pub spec: String,
    pub current_step: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One run of a step. `step_intent_id` is the intent that carries the step to its agent or
/// human (none for a step that ended as it started); `result` JSON text of the result or
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub id: i64,
    pub intent_id: String,
    pub step_id: String,
    pub step_intent_id: Option<String>,
    pub status: StepStatus,
    pub result: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
}

const STEP_COLUMNS: &str =
    "id, intent_id, step_id, step_intent_id, status, result, started_at, ended_at";

fn step_from_row(r: &Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        id: r.get(0)?,
        intent_id: r.get(1)?,
        step_id: r.get(2)?,
        step_intent_id: r.get(3)?,
        status: r.get(4)?,
        result: r.get(5)?,
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
    })
}

pub fn insert(conn: &Tx, w: &WorkflowRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO workflows (intent_id, compile_id, scenario_id, spec, current_step, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        w.intent_id,
        w.compile_id,
        w.scenario_id,
        w.spec,
        w.current_step,
        w.created_at,
        w.updated_at
    ])?;
    Ok(())
}

pub fn get(conn: &Tx, intent_id: &str) -> Result<Option<WorkflowRow>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT intent_id, compile_id, scenario_id, spec, current_step, created_at, \
             updated_at FROM workflows WHERE intent_id = ?1",
        )?
        .query_row([intent_id], |r| {
            Ok(WorkflowRow {
                intent_id: r.get(0)?,
                compile_id: r.get(1)?,
                scenario_id: r.get(2)?,
                spec: r.get(3)?,
                current_step: r.get(4)?,
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })
        .optional()?)
}

pub fn set_current(conn: &Tx, intent_id: &str, step: Option<&str>, at: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE workflows SET current_step = ?2, updated_at = ?3 WHERE intent_id = ?1",
    )?
    .execute(params![intent_id, step, at])?;
    Ok(())
}

pub fn insert_step(conn: &Tx, s: &StepRow) -> Result<i64, Error> {
    conn.prepare_cached(
        "INSERT INTO workflow_steps (intent_id, step_id, step_intent_id, status, result, \
         started_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        s.intent_id,
        s.step_id,
        s.step_intent_id,
        s.status,
        s.result,
        s.started_at,
        s.ended_at
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The run carried by the intent `step_intent_id`, if that intent carries one.
pub fn step_by_intent(conn: &Tx, step_intent_id: &str) -> Result<Option<StepRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE step_intent_id = ?1"
        ))?
        .query_row([step_intent_id], step_from_row)
        .optional()?)
}

/// Every run of a workflow's steps, in the order they started.
pub fn steps(conn: &Tx, intent_id: &str) -> Result<Vec<StepRow>, Error> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE intent_id = ?1 ORDER BY id"
        ))?
        .query_map([intent_id], step_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn finish_step(
    conn: &Tx,
    id: i64,
    status: StepStatus,
    result: Option<&str>,
    at: &str,
) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE workflow_steps SET status = ?2, result = ?3, ended_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, status, result, at])?;
    Ok(())
}

/// An intent's controls and policy (JSON object texts) and their generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlsRow {
    pub intent_id: String,
    pub policy_generation: i64,
    pub controls: String,
    pub policy: String,
    pub updated_at: String,
}

pub fn controls(conn: &Tx, intent_id: &str) -> Result<Option<ControlsRow>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT intent_id, policy_generation, controls, policy, updated_at \
             FROM intent_controls WHERE intent_id = ?1",
        )?
        .query_row([intent_id], |r| {
            Ok(ControlsRow {
                intent_id: r.get(0)?,
                policy_generation: r.get(1)?,
                controls: r.get(2)?,
                policy: r.get(3)?,
                updated_at: r.get(4)?,
            })
        })
        .optional()?)
}

pub fn upsert_controls(conn: &Tx, c: &ControlsRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO intent_controls (intent_id, policy_generation, controls, policy, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (intent_id) DO UPDATE SET \
         policy_generation = excluded.policy_generation, controls = excluded.controls, \
         policy = excluded.policy, updated_at = excluded.updated_at",
    )?
    .execute(params![
        c.intent_id,
        c.policy_generation,
        c.controls,
        c.policy,
        c.updated_at
    ])?;
    Ok(())
}
