//! The JSON shapes clients see (AXP `api.intents.*.response.v1.json`). Only this module derives
//! `Serialize` for them; stored rows are converted here explicitly, so a change in the schema of
//! the database never leaks into the API by accident, nor the other way round.

use serde::Serialize;
use serde_json::value::RawValue;

pub mod accounts;
pub mod media;
pub mod people;
pub mod schemas;

use crate::model::WaitingReason;
use crate::service::agents;
use crate::store::completions::CompletionRow;
use crate::store::deliveries::{AttemptRow, DeliveryRow};
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::Error;

/// Stored JSON text as an embedded raw JSON value (no re-parse into a tree).
fn raw(s: &str) -> Result<&RawValue, Error> {
    Ok(serde_json::from_str(s)?)
}

fn raw_opt(s: &Option<String>) -> Result<Option<&RawValue>, Error> {
    s.as_deref().map(raw).transpose()
}

#[derive(Serialize)]
pub struct PendingWith<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "ref")]
    pub reference: &'a str,
}

#[derive(Serialize)]
pub struct Intent<'a> {
    pub intent_id: &'a str,
    pub status: &'static str,
    /// The same as `status`: AXME's clients and example programs read this name.
    pub lifecycle_status: &'static str,
    pub legacy_status: &'static str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub intent_type: &'a str,
    pub correlation_id: &'a str,
    pub from_agent: &'a str,
    pub to_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    pub payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remind_after_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remind_interval_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reminders: Option<i64>,
    pub remind_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<i64>,
    pub delivery_attempt: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human_task: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_with: Option<PendingWith<'a>>,
    /// The `seq` of the newest event: `events?since=` this value returns only what is new.
    pub last_seq: i64,
}

impl<'a> Intent<'a> {
    pub fn from_row(r: &'a IntentRow) -> Result<Intent<'a>, Error> {
        let pending_with = (!r.status.is_terminal()).then(|| PendingWith {
            kind: if r.waiting_reason == Some(WaitingReason::Human) {
                "human"
            } else {
                "agent"
            },
            reference: &r.to_agent,
        });
        Ok(Intent {
            intent_id: &r.intent_id,
            status: r.status.as_str(),
            lifecycle_status: r.status.as_str(),
            legacy_status: r.status.legacy(),
            created_at: &r.created_at,
            updated_at: &r.updated_at,
            intent_type: &r.intent_type,
            correlation_id: &r.correlation_id,
            from_agent: &r.from_agent,
            to_agent: &r.to_agent,
            reply_to: r.reply_to.as_deref(),
            payload: raw(&r.payload)?,
            waiting_reason: r.waiting_reason.map(|w| w.as_str()),
            result: raw_opt(&r.result)?,
            error: raw_opt(&r.error)?,
            deadline_at: r.deadline_at.as_deref(),
            remind_after_seconds: r.remind_after_seconds,
            remind_interval_seconds: r.remind_interval_seconds,
            max_reminders: r.max_reminders,
            remind_count: r.remind_count,
            escalate_to: r.escalate_to.as_deref(),
            max_delivery_attempts: r.max_delivery_attempts,
            delivery_attempt: r.delivery_attempt,
            human_task: raw_opt(&r.human_task)?,
            pending_with,
            last_seq: r.last_seq,
        })
    }
}

#[derive(Serialize)]
pub struct Event<'a> {
    pub intent_id: &'a str,
    pub seq: i64,
    pub event_type: &'a str,
    pub status: &'static str,
    pub waiting_reason: Option<&'static str>,
    pub handler: Option<&'a str>,
    pub actor: &'a str,
    pub at: &'a str,
    pub details: &'a RawValue,
}

impl<'a> Event<'a> {
    pub fn from_row(r: &'a EventRow) -> Result<Event<'a>, Error> {
        Ok(Event {
            intent_id: &r.intent_id,
            seq: r.seq,
            event_type: &r.event_type,
            status: r.status.as_str(),
            waiting_reason: r.waiting_reason.map(|w| w.as_str()),
            handler: r.handler.as_deref(),
            actor: &r.actor,
            at: &r.at,
            details: raw(&r.details)?,
        })
    }

    pub fn list(rows: &'a [EventRow]) -> Result<Vec<Event<'a>>, Error> {
        rows.iter().map(Event::from_row).collect()
    }
}

#[derive(Serialize)]
pub struct Created<'a> {
    pub ok: bool,
    pub intent_id: &'a str,
    pub status: &'static str,
    pub created_at: &'a str,
}

#[derive(Serialize)]
pub struct IntentEnvelope<'a> {
    pub ok: bool,
    pub intent: Intent<'a>,
    /// The intent's payload once more beside it: AXME's example agents read
    /// `get_intent(id)["payload"]` off the answer without unwrapping `intent`.
    pub payload: &'a RawValue,
}

#[derive(Serialize)]
pub struct IntentList<'a> {
    pub ok: bool,
    pub intents: Vec<Intent<'a>>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The answer to `POST /v1/intents/bulk-cancel`, as AXME's CLI reads it.
#[derive(Serialize)]
pub struct BulkCanceled<'a> {
    pub ok: bool,
    pub dry_run: bool,
    /// Dry runs only: how many would be canceled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_cancel: Option<usize>,
    pub canceled: usize,
    pub intent_ids: &'a [String],
}

#[derive(Serialize)]
pub struct EventList<'a> {
    pub ok: bool,
    pub events: Vec<Event<'a>>,
}

/// What happened to an intent's completion (`completion_delivery` of AXME's resolve).
#[derive(Serialize)]
pub struct CompletionDelivery<'a> {
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<&'a RawValue>,
}

impl<'a> CompletionDelivery<'a> {
    pub fn from_row(c: Option<&'a CompletionRow>) -> Result<CompletionDelivery<'a>, Error> {
        Ok(match c {
            Some(c) => CompletionDelivery {
                delivered: true,
                reason: None,
                reply_to: Some(&c.reply_to),
                thread_id: Some(&c.intent_id),
                message_id: Some(&c.message_id),
                completion: Some(raw(&c.body)?),
            },
            None => CompletionDelivery {
                delivered: false,
                reason: Some("no_reply_to"),
                reply_to: None,
                thread_id: None,
                message_id: None,
                completion: None,
            },
        })
    }
}

/// The answer to resolve, resume, ack and progress: the intent after the change and the
/// event(s) the change appended.
#[derive(Serialize)]
pub struct ChangedIntent<'a> {
    pub ok: bool,
    pub intent: Intent<'a>,
    /// The last event appended.
    pub event: Event<'a>,
    /// Every event appended, oldest first (more than one when an ack records the hand-over).
    /// Absent from resolve, whose AXP schema has no such field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_delivery: Option<CompletionDelivery<'a>>,
    /// Resume only (AXME `ResumeIntentResponse`): the resume was applied, under this policy
    /// generation of the intent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
}

/// A registered agent (or a service account, which is one). The webhook secret is shown in full
/// only in the response that generated it (`webhook_secret`); otherwise only its last four
/// characters (`secret_hint`). `status`, `service_account_id` and `service_account_name` are
/// AXME's (`api.agents.get.response.v1.json`); the last two are `null` for an agent registered
/// without a service account.
#[derive(Serialize)]
pub struct Agent<'a> {
    pub address: &'a str,
    pub status: &'static str,
    pub service_account_id: Option<&'a str>,
    pub service_account_name: Option<&'a str>,
    pub delivery_mode: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<i64>,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    /// When the webhook answered `410 Gone` and pushes stopped (until the agent registers again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_disabled_at: Option<&'a str>,
}

impl<'a> Agent<'a> {
    pub fn from_entry(e: &'a agents::Entry, generated_secret: Option<&'a str>) -> Agent<'a> {
        let r = &e.agent;
        let secret_hint = r
            .webhook_secret
            .as_deref()
            .map(|s| &s[s.len().saturating_sub(4)..]);
        Agent {
            address: &r.address,
            status: e.status(),
            service_account_id: e.account.as_ref().map(|a| a.service_account_id.as_str()),
            service_account_name: e.account.as_ref().map(|a| a.name.as_str()),
            delivery_mode: r.delivery_mode.as_str(),
            display_name: r.display_name.as_deref(),
            webhook_url: r.webhook_url.as_deref(),
            secret_hint,
            webhook_secret: generated_secret,
            lease_seconds: r.lease_seconds,
            max_delivery_attempts: r.max_delivery_attempts,
            created_at: &r.created_at,
            updated_at: &r.updated_at,
            webhook_disabled_at: r.disabled_at.as_deref(),
        }
    }
}

#[derive(Serialize)]
pub struct AgentEnvelope<'a> {
    pub ok: bool,
    pub agent: Agent<'a>,
}

#[derive(Serialize)]
pub struct AgentList<'a> {
    pub ok: bool,
    pub agents: Vec<Agent<'a>>,
}

#[derive(Serialize)]
pub struct Retired<'a> {
    pub ok: bool,
    pub address: &'a str,
}

/// One recorded push attempt.
#[derive(Serialize)]
pub struct Attempt<'a> {
    pub attempt: i64,
    pub at: &'a str,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<&'a str>,
    pub response_excerpt: Option<&'a str>,
}

/// A push delivery with its attempts (SPEC.md, "Deliveries").
#[derive(Serialize)]
pub struct Delivery<'a> {
    pub delivery_id: &'a str,
    pub intent_id: Option<&'a str>,
    pub event_type: &'a str,
    pub target_url: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'a str>,
    pub attempts: Vec<Attempt<'a>>,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<&'a str>,
    pub created_at: &'a str,
    pub updated_at: &'a str,
}

impl<'a> Delivery<'a> {
    pub fn from_rows(d: &'a DeliveryRow, attempts: &'a [AttemptRow]) -> Delivery<'a> {
        Delivery {
            delivery_id: &d.delivery_id,
            intent_id: d.intent_id.as_deref(),
            event_type: &d.event_type,
            target_url: &d.target_url,
            kind: d.kind.as_str(),
            status: d.status.as_str(),
            agent_address: d.agent_address.as_deref(),
            subscription_id: d.subscription_id.as_deref(),
            event_id: d.webhook_event_id.as_deref(),
            attempts: attempts
                .iter()
                .map(|a| Attempt {
                    attempt: a.attempt,
                    at: &a.at,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: a.error.as_deref(),
                    response_excerpt: a.response_excerpt.as_deref(),
                })
                .collect(),
            next_attempt_at: d.next_attempt_ms.and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .ok()
                    .map(crate::clock::format)
            }),
            last_error: d.last_error.as_deref(),
            created_at: &d.created_at,
            updated_at: &d.updated_at,
        }
    }
}

/// What an agent key is told of a transport error: the guard's own refusals as they are, any
/// other only that it happened.
const WITHHELD: &str = "the push failed before an answer (the detail is shown to admin keys)";

/// An error as an agent key sees it (see [`Delivery::for_agent_key`]).
fn withhold(e: Option<&str>) -> Option<&str> {
    e.map(|e| {
        if e.contains(crate::model::PUSH_REFUSED) || e.starts_with("HTTP ") {
            e
        } else {
            WITHHELD
        }
    })
}

impl Delivery<'_> {
    /// The delivery as an agent key sees it: status codes and latencies, but neither the
    /// receiver's answer nor the transport error's text, so that a push to an address inside
    /// the host's network cannot be used to read it or to scan its ports by error messages.
    pub fn for_agent_key(mut self) -> Self {
        for a in &mut self.attempts {
            a.response_excerpt = None;
            a.error = withhold(a.error);
        }
        self.last_error = withhold(self.last_error);
        self
    }
}

#[derive(Serialize)]
pub struct DeliveryEnvelope<'a> {
    pub ok: bool,
    pub delivery: Delivery<'a>,
}

#[derive(Serialize)]
pub struct Capabilities {
    pub ok: bool,
    pub capabilities: Vec<&'static str>,
    pub supported_intent_types: Vec<&'static str>,
}

#[derive(Serialize)]
pub struct Health {
    pub ok: bool,
    pub status: &'static str,
    pub version: &'static str,
    pub schema_version: i64,
}

/// One entry of a thread's timeline: an intent event or a message posted on the intent.
#[derive(Serialize)]
pub struct TimelineEntry<'a> {
    /// A UUID: the message id, or for an event a UUID (version 8) carrying its global
    /// event-log position.
    pub event_id: String,
    pub event_type: &'a str,
    pub actor: &'a str,
    pub at: &'a str,
    pub details: &'a RawValue,
    /// Events only: the event's `seq` and the status it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<&'a str>,
}

/// The UUID a thread timeline shows for the event at position `event_id` of the event log.
pub fn event_uuid(event_id: i64) -> String {
    format!(
        "00000000-0000-8000-8000-{:012x}",
        event_id as u64 & 0xffff_ffff_ffff
    )
}

/// An inbox thread (AXP `api.inbox.thread.response.v1.json`), with the intent's state beside it.
#[derive(Serialize)]
pub struct Thread<'a> {
    pub thread_id: &'a str,
    pub intent_id: &'a str,
    pub status: &'static str,
    pub owner_agent: &'a str,
    pub from_agent: &'a str,
    pub to_agent: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub timeline: Vec<TimelineEntry<'a>>,
    pub role: &'a str,
    pub unread: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_at: Option<&'a str>,
    pub intent_type: &'a str,
    pub intent_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human_task: Option<&'a RawValue>,
    pub payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a RawValue>,
}

impl<'a> Thread<'a> {
    pub fn from_view(v: &'a crate::service::inbox_view::ThreadView) -> Result<Thread<'a>, Error> {
        let (t, i) = (&v.thread, &v.intent);
        let mut timeline = Vec::with_capacity(v.events.len() + v.messages.len());
        for e in &v.events {
            timeline.push(TimelineEntry {
                event_id: event_uuid(e.event_id),
                event_type: &e.event_type,
                actor: &e.actor,
                at: &e.at,
                details: raw(&e.details)?,
                seq: Some(e.seq),
                status: Some(e.status.as_str()),
                message_id: None,
            });
        }
        for m in &v.messages {
            timeline.push(TimelineEntry {
                event_id: m.message_id.clone(),
                event_type: match m.kind.as_str() {
                    "reply" => "inbox.reply",
                    "delegation" => "inbox.delegation",
                    _ => "inbox.decision",
                },
                actor: &m.author,
                at: &m.at,
                details: raw(&m.body)?,
                seq: None,
                status: None,
                message_id: Some(&m.message_id),
            });
        }
        // Events and messages interleaved in time; same-instant entries keep their order.
        timeline.sort_by(|a, b| a.at.cmp(b.at));
        Ok(Thread {
            thread_id: &t.intent_id,
            intent_id: &t.intent_id,
            status: v.status(),
            owner_agent: &t.owner_agent,
            from_agent: &i.from_agent,
            to_agent: &i.to_agent,
            created_at: &t.created_at,
            updated_at: &t.updated_at,
            timeline,
            role: t.role.as_str(),
            unread: v.unread(),
            read_at: t.read_at.as_deref(),
            intent_type: &i.intent_type,
            intent_status: i.status.as_str(),
            waiting_reason: i.waiting_reason.map(|w| w.as_str()),
            human_task: raw_opt(&i.human_task)?,
            payload: raw(&i.payload)?,
            result: raw_opt(&i.result)?,
            error: raw_opt(&i.error)?,
        })
    }
}

/// A pending human task (AXP `api.tasks.list.response.v1.json`; no other fields allowed).
#[derive(Serialize)]
pub struct Task<'a> {
    pub intent_id: &'a str,
    pub intent_type: &'a str,
    pub status: &'static str,
    pub from_agent: &'a str,
    pub assigned_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<&'a str>,
    pub human_task: serde_json::Value,
}

/// An API key as `/v1/keys` shows it: never its hash, never the key itself.
#[derive(Serialize)]
pub struct Key<'a> {
    pub key_id: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub agents: &'a [String],
    pub created_at: &'a str,
    pub revoked_at: Option<&'a str>,
}

impl<'a> Key<'a> {
    pub fn from_info(k: &'a crate::service::keys::KeyInfo) -> Key<'a> {
        Key {
            key_id: &k.row.key_id,
            name: &k.row.name,
            role: k.row.role.as_str(),
            agents: &k.agents,
            created_at: &k.row.created_at,
            revoked_at: k.row.revoked_at.as_deref(),
        }
    }
}

/// `POST /v1/keys`: the one response that carries the key itself.
#[derive(Serialize)]
pub struct KeyCreated<'a> {
    pub ok: bool,
    pub key: Key<'a>,
    pub api_key: &'a str,
}

#[derive(Serialize)]
pub struct KeyEnvelope<'a> {
    pub ok: bool,
    pub key: Key<'a>,
}

#[derive(Serialize)]
pub struct KeyList<'a> {
    pub ok: bool,
    pub keys: Vec<Key<'a>>,
}
