//! What a due delivery is sent with, read in one go by the push scheduler: its target URL, the
//! signing secrets (a rotated secret in its grace period included), and the intent and event
//! its body renders. Reads only.

use std::collections::HashMap;

use crate::model::{DeliveryKind, DeliveryMode};
use crate::store::deliveries::DeliveryRow;
use crate::store::events::EventRow;
use crate::store::intents::IntentRow;
use crate::store::{agents, subscriptions, Tx};
use crate::Error;

/// Everything an attempt needs, read in one go by the scheduler.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub delivery: DeliveryRow,
    pub url: String,
    /// Signing secrets (`whsec_…`), newest first.
    pub secrets: Vec<String>,
    pub intent: Option<IntentRow>,
    /// The event an observer push carries (not read for a handler push, whose body is the
    /// intent).
    pub event: Option<EventRow>,
    /// For a published (non-intent) event: that event.
    pub webhook_event: Option<subscriptions::WebhookEventRow>,
    /// Why this delivery cannot be attempted at all (endpoint disabled, secret gone, …): it is
    /// dead-lettered.
    pub blocked: Option<String>,
    /// Why this delivery no longer makes sense (the intent is terminal, the agent retired or
    /// switched to another binding): it is marked failed and the intent left alone.
    pub skipped: Option<String>,
}

/// The agents and subscriptions read by one batch of preparations: a scheduler pass that takes
/// many deliveries to one target reads it once. Hold one only for the length of a read.
#[derive(Debug, Default)]
pub struct Targets {
    agents: HashMap<String, Option<agents::AgentRow>>,
    subscriptions: HashMap<String, Option<subscriptions::SubscriptionRow>>,
}

impl Targets {
    fn agent(&mut self, conn: &Tx, address: &str) -> Result<Option<agents::AgentRow>, Error> {
        if let Some(a) = self.agents.get(address) {
            return Ok(a.clone());
        }
        let a = agents::get(conn, address)?;
        self.agents.insert(address.to_string(), a.clone());
        Ok(a)
    }

    fn subscription(
        &mut self,
        conn: &Tx,
        id: &str,
    ) -> Result<Option<subscriptions::SubscriptionRow>, Error> {
        if let Some(s) = self.subscriptions.get(id) {
            return Ok(s.clone());
        }
        let s = subscriptions::get(conn, id)?;
        self.subscriptions.insert(id.to_string(), s.clone());
        Ok(s)
    }
}

/// Reads what the attempt of a due delivery needs, each agent and subscription once per
/// `targets`.
pub fn prepare_with(conn: &Tx, d: DeliveryRow, targets: &mut Targets) -> Result<Prepared, Error> {
    let intent = match &d.intent_id {
        Some(id) => crate::store::intents::get(conn, id)?,
        None => None,
    };
    // A handler push carries the intent, not the event that caused it.
    let event = match (&d.intent_id, d.event_seq, d.kind == DeliveryKind::Handler) {
        (Some(id), Some(seq), false) => {
            crate::store::events::list_for_intent(conn, id, seq - 1, 1)?
                .into_iter()
                .next()
        }
        _ => None,
    };
    let webhook_event = match &d.webhook_event_id {
        Some(id) => subscriptions::get_event(conn, id)?,
        None => None,
    };
    let mut p = Prepared {
        url: d.target_url.clone(),
        delivery: d,
        secrets: Vec::new(),
        intent,
        event,
        webhook_event,
        blocked: None,
        skipped: None,
    };
    if let Some(address) = p.delivery.agent_address.clone() {
        match targets.agent(conn, &address)? {
            Some(a) if a.disabled_at.is_some() => {
                p.blocked = Some("the agent's webhook is disabled (it answered 410 Gone)".into())
            }
            Some(a) if a.delivery_mode != DeliveryMode::Http || a.webhook_url.is_none() => {
                p.skipped = Some(format!(
                    "the agent {address} now receives through {}; the intent waits to be pulled",
                    a.delivery_mode.as_str()
                ))
            }
            Some(a) => {
                p.secrets = super::agents::signing_secrets(
                    a.webhook_secret.as_deref(),
                    a.previous_secret.as_deref(),
                    a.previous_secret_until.as_deref(),
                );
                p.url = a.webhook_url.unwrap_or(p.url);
            }
            None => {
                p.skipped = Some(format!(
                    "the agent {address} was retired; the intent waits to be pulled"
                ))
            }
        }
    }
    if let Some(id) = p.delivery.subscription_id.clone() {
        match targets.subscription(conn, &id)? {
            Some(s) if s.revoked_at.is_some() => {
                p.blocked = Some("the subscription was deleted".into())
            }
            Some(s) if !s.active => p.blocked = Some("the subscription is inactive".into()),
            Some(s) => {
                p.secrets = super::agents::signing_secrets(
                    Some(&s.secret),
                    s.previous_secret.as_deref(),
                    s.previous_secret_until.as_deref(),
                );
                p.url = s.callback_url;
            }
            None => p.blocked = Some("the subscription no longer exists".into()),
        }
    }
    if p.secrets.is_empty() && p.blocked.is_none() && p.skipped.is_none() {
        p.blocked = Some("no signing secret".into());
    }
    if p.delivery.kind == DeliveryKind::Handler
        && p.delivery.replay_of.is_none()
        && p.intent.as_ref().is_some_and(|i| i.status.is_terminal())
    {
        p.skipped = Some("the intent is already terminal".into());
    }
    Ok(p)
}
