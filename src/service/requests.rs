//! The write requests of the intents API, read from JSON into checked inputs. Each reader
//! enforces its AXP schema (`api.intents.*.request.v1.json`) or its SPEC.md shape, and names the
//! offending field on the first violation.

use serde_json::{Map, Value};

use super::validate::{self, Fields};
use crate::clock;
use crate::model::{Status, WaitingReason};
use crate::Error;

/// A checked `POST /v1/intents` body.
#[derive(Debug, Clone)]
pub struct CreateIntent {
    pub intent_type: String,
    pub correlation_id: String,
    pub from_agent: Option<String>,
    pub to_agent: String,
    pub reply_to: Option<String>,
    /// The payload object as JSON text.
    pub payload: String,
    pub deadline_at: Option<String>,
    pub remind_after_seconds: Option<i64>,
    pub remind_interval_seconds: Option<i64>,
    pub max_reminders: Option<i64>,
    pub escalate_to: Option<String>,
    pub max_delivery_attempts: Option<i64>,
    /// The human task object as JSON text.
    pub human_task: Option<String>,
}

/// Generous upper bound for the integer knobs (about 68 years in seconds).
const INT_MAX: i64 = i32::MAX as i64;

pub fn create_intent(body: &Value, max_payload_bytes: usize) -> Result<CreateIntent, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "intent_type",
        "correlation_id",
        "from_agent",
        "to_agent",
        "reply_to",
        "payload",
        "deadline_at",
        "remind_after_seconds",
        "remind_interval_seconds",
        "max_reminders",
        "escalate_to",
        "max_delivery_attempts",
        "human_task",
    ])?;
    let intent_type = f.str_req("intent_type", 1, 255)?;
    if !validate::is_intent_type(intent_type) {
        return Err(Error::invalid(
            "intent_type",
            "must match ^[a-z0-9_]+(\\.[a-z0-9_]+)+\\.v[0-9]+$ (e.g. billing.invoice.send.v1)",
        ));
    }
    let correlation_id = validate::uuid("correlation_id", f.str_req("correlation_id", 1, 64)?)?;
    let to_agent = f.address_req("to_agent")?;
    // Derived from the key (`access::from_agent`): a sent value of any scheme is accepted, and
    // only an agent address is looked at.
    let from_agent = f
        .str_opt("from_agent", 0, usize::MAX)?
        .and_then(|s| validate::address("from_agent", s).ok());
    let reply_to = f
        .str_opt("reply_to", 0, usize::MAX)?
        .map(|s| validate::reply_address("reply_to", s))
        .transpose()?;
    let payload_obj = f.obj_req("payload")?;
    let payload = serde_json::to_string(payload_obj)?;
    if payload.len() > max_payload_bytes {
        return Err(Error::TooLarge {
            field: "payload".into(),
            limit: max_payload_bytes,
        });
    }
    let deadline_at = match f.str_opt("deadline_at", 1, 64)? {
        None => None,
        Some(s) => Some(clock::format(deadline(s)?)),
    };
    let escalate_to = match f.str_opt("escalate_to", 1, validate::ADDRESS_MAX)? {
        None => None,
        Some(s) => Some(validate::address("escalate_to", s)?),
    };
    let human_task = match f.obj_opt("human_task")? {
        None => None,
        Some(obj) => Some(human_task(obj)?),
    };
    Ok(CreateIntent {
        intent_type: intent_type.to_string(),
        correlation_id,
        from_agent,
        to_agent,
        reply_to,
        payload,
        deadline_at,
        remind_after_seconds: f.int_opt("remind_after_seconds", 1, INT_MAX)?,
        remind_interval_seconds: f.int_opt("remind_interval_seconds", 1, INT_MAX)?,
        max_reminders: f.int_opt("max_reminders", 1, INT_MAX)?,
        escalate_to,
        max_delivery_attempts: f.int_opt("max_delivery_attempts", 1, 1000)?,
        human_task,
    })
}

/// An RFC 3339 date-time that is still one in UTC: a time such as `9999-12-31T23:59:59-01:00`
/// parses, but lies past year 9999 once converted, where it has no RFC 3339 spelling.
fn deadline(s: &str) -> Result<time::OffsetDateTime, Error> {
    clock::parse(s)
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| {
            Error::invalid(
                "deadline_at",
                "must be an RFC 3339 date-time between years 0000 and 9999 in UTC",
            )
        })
}

const TASK_TYPES: &[&str] = &[
    "approval",
    "review",
    "clarification",
    "provide_data",
    "attach_file",
    "manual_action",
    "confirmation",
    "validate_real_world",
    "validate_output",
    "assignment",
    "delegation",
    "reroute",
    "override",
    "escalate",
];

/// Checks a `HumanTaskSpec` and returns it as JSON text.
/// Checks a human task spec (`human_task` of a create, or one a handler asks for) and returns
/// it as JSON text.
pub fn human_task(obj: &Map<String, Value>) -> Result<String, Error> {
    let f = Fields::nested(obj, "human_task".into());
    f.deny_unknown(&[
        "title",
        "description",
        "task_type",
        "allowed_outcomes",
        "required_comment",
        "assignees",
        "evidence_required",
        "form_schema",
    ])?;
    f.str_req("title", 0, 255)?;
    f.str_opt("description", 0, 2000)?;
    if let Some(t) = f.str_opt("task_type", 1, 64)? {
        if !TASK_TYPES.contains(&t) {
            return Err(Error::invalid(
                f.path("task_type"),
                format!("must be one of {}", TASK_TYPES.join(", ")),
            ));
        }
    }
    f.str_array_opt("allowed_outcomes", (1, 20), (1, 64))?;
    f.bool_opt("required_comment")?;
    f.str_array_opt("assignees", (1, 20), (1, 383))?;
    f.bool_opt("evidence_required")?;
    f.obj_opt("form_schema")?;
    // A field sent as null is an absent one, as everywhere in a request; stored without it, the
    // task reads back (`/v1/me/tasks`) as the HumanTaskSpec it was checked as.
    let present: Map<String, Value> = obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(serde_json::to_string(&present)?)
}

/// A checked `POST /v1/intents/{id}/resolve` body.
#[derive(Debug, Clone)]
pub struct Resolve {
    pub status: Status,
    pub actor: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub reason: Option<String>,
}

pub fn resolve(body: &Value) -> Result<Resolve, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["status", "actor", "result", "error", "reason"])?;
    let status = match f.str_req("status", 1, 32)? {
        "COMPLETED" => Status::Completed,
        "FAILED" => Status::Failed,
        "CANCELED" => Status::Canceled,
        _ => {
            return Err(Error::invalid(
                "status",
                "must be one of COMPLETED, FAILED, CANCELED",
            ))
        }
    };
    let actor = f.str_opt("actor", 3, 255)?.map(str::to_string);
    let result = f.obj_opt("result")?.cloned().map(Value::Object);
    let error = f.obj_opt("error")?.cloned().map(Value::Object);
    let reason = f.str_opt("reason", 0, 2000)?.map(str::to_string);
    match status {
        Status::Completed if result.is_none() => Err(Error::invalid(
            "result",
            "is required when status is COMPLETED",
        )),
        Status::Failed if error.is_none() => {
            Err(Error::invalid("error", "is required when status is FAILED"))
        }
        Status::Canceled if reason.is_none() => Err(Error::invalid(
            "reason",
            "is required when status is CANCELED",
        )),
        _ => Ok(Resolve {
            status,
            actor,
            result,
            error,
            reason,
        }),
    }
}

/// A checked `POST /v1/intents/{id}/ack` body (an empty body is fine).
pub fn ack(body: &Value) -> Result<Option<String>, Error> {
    if body.is_null() {
        return Ok(None);
    }
    let f = Fields::body(body)?;
    f.deny_unknown(&["actor"])?;
    Ok(f.str_opt("actor", 3, 255)?.map(str::to_string))
}

/// A checked `POST /v1/intents/{id}/progress` body.
#[derive(Debug, Clone)]
pub struct Progress {
    pub status: Status,
    pub waiting_reason: Option<WaitingReason>,
    pub details: Option<Value>,
    pub actor: Option<String>,
}

pub fn progress(body: &Value) -> Result<Progress, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["status", "waiting_reason", "details", "actor"])?;
    let status = match f.str_req("status", 1, 32)? {
        "IN_PROGRESS" => Status::InProgress,
        "WAITING" => Status::Waiting,
        _ => return Err(Error::invalid("status", "must be IN_PROGRESS or WAITING")),
    };
    let waiting_reason = match f.str_opt("waiting_reason", 1, 64)? {
        None => None,
        Some(s) => Some(WaitingReason::parse(s).ok_or_else(|| {
            Error::invalid(
                "waiting_reason",
                "must be one of WAITING_FOR_HUMAN, WAITING_FOR_TOOL, WAITING_FOR_AGENT, WAITING_FOR_TIME",
            )
        })?),
    };
    match (status, waiting_reason) {
        (Status::Waiting, None) => {
            return Err(Error::invalid(
                "waiting_reason",
                "is required when status is WAITING",
            ))
        }
        (Status::InProgress, Some(_)) => {
            return Err(Error::invalid(
                "waiting_reason",
                "is only allowed when status is WAITING",
            ))
        }
        _ => {}
    }
    Ok(Progress {
        status,
        waiting_reason,
        details: f.obj_opt("details")?.cloned().map(Value::Object),
        actor: f.str_opt("actor", 3, 255)?.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a `deadline_at` past year 9999 once in UTC panicked the handler (no answer).
    #[test]
    fn deadline_past_year_9999_in_utc_is_422_not_a_panic() {
        let body = |deadline: &str| {
            serde_json::json!({
                "intent_type": "demo.task.v1",
                "correlation_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "to_agent": "agent://a/b",
                "payload": {},
                "deadline_at": deadline,
            })
        };
        for bad in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            let e = create_intent(&body(bad), 1024).expect_err(bad);
            assert_eq!(
                (e.code(), e.to_string().starts_with("deadline_at:")),
                ("schema_invalid", true),
                "{bad}: {e}"
            );
        }
        let ok = create_intent(&body("9999-12-31T23:59:59+01:00"), 1024).expect("in range");
        assert_eq!(
            ok.deadline_at.as_deref(),
            Some("9999-12-31T22:59:59.000000Z")
        );
    }

    /// Regression: a human task's null fields were stored, and `/v1/me/tasks` then answered
    /// with a `human_task` that is not a HumanTaskSpec (`"description": null`).
    #[test]
    fn human_task_null_fields_are_not_stored() {
        let body = serde_json::json!({
            "intent_type": "demo.task.v1",
            "correlation_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "to_agent": "agent://a/b",
            "payload": {},
            "human_task": {"title": "t", "description": null, "form_schema": null},
        });
        let req = create_intent(&body, 1024).expect("valid");
        assert_eq!(req.human_task.as_deref(), Some(r#"{"title":"t"}"#));
    }
}
