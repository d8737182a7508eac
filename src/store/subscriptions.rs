//! The `webhook_subscriptions` table: observers that want lifecycle events pushed to a URL.

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

/// A subscription as stored. `event_types` is a JSON array of strings; `secret` signs the
/// deliveries and never leaves the server except in the response that generated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub subscription_id: String,
    pub owner_agent: String,
    pub callback_url: String,
    pub event_types: String,
    pub secret: String,
    pub active: bool,
    pub description: Option<String>,
    pub intent_id: Option<String>,
    pub correlation_id: Option<String>,
    pub to_agent: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revoked_at: Option<String>,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<String>,
}

const COLUMNS: &str = "subscription_id, owner_agent, callback_url, event_types, secret, active, \
    description, intent_id, correlation_id, to_agent, created_at, updated_at, revoked_at, \
    previous_secret, previous_secret_until";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        subscription_id: r.get(0)?,
        owner_agent: r.get(1)?,
        callback_url: r.get(2)?,
        event_types: r.get(3)?,
        secret: r.get(4)?,
        active: r.get(5)?,
        description: r.get(6)?,
        intent_id: r.get(7)?,
        correlation_id: r.get(8)?,
        to_agent: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        revoked_at: r.get(12)?,
        previous_secret: r.get(13)?,
        previous_secret_until: r.get(14)?,
    })
}

/// Inserts or replaces a subscription by id.
pub fn upsert(conn: &Tx, s: &SubscriptionRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO webhook_subscriptions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
         ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?
    .execute(params![
        s.subscription_id,
        s.owner_agent,
        s.callback_url,
        s.event_types,
        s.secret,
        s.active,
        s.description,
        s.intent_id,
        s.correlation_id,
        s.to_agent,
        s.created_at,
        s.updated_at,
        s.revoked_at,
        s.previous_secret,
        s.previous_secret_until
    ])?;
    Ok(())
}

pub fn get(conn: &Tx, id: &str) -> Result<Option<SubscriptionRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE subscription_id = ?1"
        ))?
        .query_row([id], from_row)
        .optional()?)
}

/// The subscription of an owner for a callback URL, if any (upsert key of the AXME API).
pub fn find(conn: &Tx, owner: &str, url: &str) -> Result<Option<SubscriptionRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE owner_agent = ?1 \
             AND callback_url = ?2 AND revoked_at IS NULL"
        ))?
        .query_row([owner, url], from_row)
        .optional()?)
}

/// Subscriptions not revoked, optionally of one owner, oldest first.
pub fn list(conn: &Tx, owner: Option<&str>) -> Result<Vec<SubscriptionRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE revoked_at IS NULL \
         AND (?1 IS NULL OR owner_agent = ?1) ORDER BY created_at"
    ))?;
    let rows = stmt
        .query_map([owner], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Active subscriptions (the ones events are pushed to).
pub fn active(conn: &Tx) -> Result<Vec<SubscriptionRow>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE active = 1 AND revoked_at IS NULL \
         ORDER BY rowid"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Turns a subscription off (its URL answered `410 Gone`).
pub fn deactivate(conn: &Tx, id: &str, at: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE webhook_subscriptions SET active = 0, updated_at = ?2 WHERE subscription_id = ?1",
    )?
    .execute(params![id, at])?;
    Ok(())
}

/// An event published through `POST /v1/webhooks/events` (not an intent event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEventRow {
    pub event_id: String,
    pub owner_agent: String,
    pub event_type: String,
    pub source: String,
    /// The payload object as JSON text.
    pub payload: String,
    pub created_at: String,
}

pub fn insert_event(conn: &Tx, e: &WebhookEventRow) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO webhook_events (event_id, owner_agent, event_type, source, payload, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.event_id,
        e.owner_agent,
        e.event_type,
        e.source,
        e.payload,
        e.created_at
    ])?;
    Ok(())
}

pub fn get_event(conn: &Tx, event_id: &str) -> Result<Option<WebhookEventRow>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT event_id, owner_agent, event_type, source, payload, created_at \
             FROM webhook_events WHERE event_id = ?1",
        )?
        .query_row([event_id], |r| {
            Ok(WebhookEventRow {
                event_id: r.get(0)?,
                owner_agent: r.get(1)?,
                event_type: r.get(2)?,
                source: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
            })
        })
        .optional()?)
}
