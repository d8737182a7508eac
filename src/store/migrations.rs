//! The schema, as an append-only ordered list of migrations. The schema version of a database is
//! the number of migrations applied to it, kept in `PRAGMA user_version`. Never edit or reorder
//! an entry that has shipped: add a new one at the end.

use rusqlite::Connection;

use crate::Error;

/// Every migration, oldest first. Entry `i` takes a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: keys, intents, their events, idempotency records, reply_to completions.
    r#"
    CREATE TABLE api_keys (
        key_id      TEXT PRIMARY KEY,
        key_hash    BLOB NOT NULL UNIQUE,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );

    CREATE TABLE intents (
        id                      INTEGER PRIMARY KEY,
        intent_id               TEXT NOT NULL UNIQUE,
        intent_type             TEXT NOT NULL,
        correlation_id          TEXT NOT NULL,
        from_agent              TEXT NOT NULL,
        to_agent                TEXT NOT NULL,
        reply_to                TEXT,
        payload                 TEXT NOT NULL,
        status                  TEXT NOT NULL,
        waiting_reason          TEXT,
        result                  TEXT,
        error                   TEXT,
        deadline_at             TEXT,
        remind_after_seconds    INTEGER,
        remind_interval_seconds INTEGER,
        max_reminders           INTEGER,
        remind_count            INTEGER NOT NULL DEFAULT 0,
        escalate_to             TEXT,
        max_delivery_attempts   INTEGER,
        delivery_attempt        INTEGER NOT NULL DEFAULT 0,
        human_task              TEXT,
        last_seq                INTEGER NOT NULL,
        created_at              TEXT NOT NULL,
        updated_at              TEXT NOT NULL
    );
    CREATE INDEX intents_to_agent ON intents (to_agent, id);
    CREATE INDEX intents_from_agent ON intents (from_agent, id);
    CREATE INDEX intents_status ON intents (status, id);
    CREATE INDEX intents_correlation ON intents (correlation_id, id);

    CREATE TABLE events (
        event_id        INTEGER PRIMARY KEY,
        intent_id       TEXT NOT NULL,
        seq             INTEGER NOT NULL,
        event_type      TEXT NOT NULL,
        status          TEXT NOT NULL,
        waiting_reason  TEXT,
        handler         TEXT,
        actor           TEXT NOT NULL,
        at              TEXT NOT NULL,
        details         TEXT NOT NULL,
        UNIQUE (intent_id, seq)
    );

    CREATE TABLE idempotency_keys (
        key_id          TEXT NOT NULL,
        endpoint        TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        request_hash    BLOB NOT NULL,
        status_code     INTEGER NOT NULL,
        response        BLOB NOT NULL,
        created_unix    INTEGER NOT NULL,
        PRIMARY KEY (key_id, endpoint, idempotency_key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_age ON idempotency_keys (created_unix);

    CREATE TABLE completions (
        message_id  TEXT PRIMARY KEY,
        intent_id   TEXT NOT NULL,
        reply_to    TEXT NOT NULL,
        status      TEXT NOT NULL,
        event_seq   INTEGER NOT NULL,
        body        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX completions_reply_to ON completions (reply_to, created_at);
    "#,
    // 2: the agent registry.
    r#"
    CREATE TABLE agents (
        address               TEXT PRIMARY KEY,
        delivery_mode         TEXT NOT NULL,
        display_name          TEXT,
        webhook_url           TEXT,
        webhook_secret        TEXT,
        lease_seconds         INTEGER,
        max_delivery_attempts INTEGER,
        created_at            TEXT NOT NULL,
        updated_at            TEXT NOT NULL
    );
    "#,
    // 3: the agent feed (submissions and terminal events by handler) without a table scan.
    r#"
    CREATE INDEX events_feed ON events (handler, event_id) WHERE event_type IN
        ('intent.submitted', 'intent.completed', 'intent.failed', 'intent.canceled',
         'intent.timed_out');
    "#,
    // 4: push deliveries (handler webhooks and observer subscriptions) and their attempts.
    r#"
    CREATE TABLE webhook_subscriptions (
        subscription_id TEXT PRIMARY KEY,
        owner_agent     TEXT NOT NULL,
        callback_url    TEXT NOT NULL,
        event_types     TEXT NOT NULL,
        secret          TEXT NOT NULL,
        active          INTEGER NOT NULL,
        description     TEXT,
        intent_id       TEXT,
        correlation_id  TEXT,
        to_agent        TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        revoked_at      TEXT
    );

    CREATE TABLE deliveries (
        delivery_id     TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        intent_id       TEXT,
        event_seq       INTEGER,
        event_type      TEXT NOT NULL,
        agent_address   TEXT,
        subscription_id TEXT,
        target_url      TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        max_attempts    INTEGER NOT NULL,
        next_attempt_ms INTEGER,
        last_error      TEXT,
        replay_of       TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        webhook_event_id TEXT,
        endpoint        TEXT NOT NULL
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt_ms) WHERE status = 'pending';
    CREATE INDEX deliveries_intent ON deliveries (intent_id, created_at);

    CREATE TABLE delivery_attempts (
        delivery_id      TEXT NOT NULL,
        attempt          INTEGER NOT NULL,
        at               TEXT NOT NULL,
        status_code      INTEGER,
        latency_ms       INTEGER NOT NULL,
        error            TEXT,
        response_excerpt TEXT,
        PRIMARY KEY (delivery_id, attempt)
    ) WITHOUT ROWID;

    CREATE INDEX deliveries_webhook_event ON deliveries (webhook_event_id)
        WHERE webhook_event_id IS NOT NULL;

    CREATE TABLE webhook_events (
        event_id    TEXT PRIMARY KEY,
        owner_agent TEXT NOT NULL,
        event_type  TEXT NOT NULL,
        source      TEXT NOT NULL,
        payload     TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );

    ALTER TABLE agents ADD COLUMN disabled_at TEXT;
    ALTER TABLE agents ADD COLUMN previous_secret TEXT;
    ALTER TABLE agents ADD COLUMN previous_secret_until TEXT;
    ALTER TABLE webhook_subscriptions ADD COLUMN previous_secret TEXT;
    ALTER TABLE webhook_subscriptions ADD COLUMN previous_secret_until TEXT;
    "#,
    // 5: inbox claims: leases on intents, and when a nacked intent may be claimed again.
    r#"
    ALTER TABLE intents ADD COLUMN available_at_ms INTEGER;
    CREATE INDEX intents_claimable ON intents (to_agent, id) WHERE status = 'SUBMITTED';

    CREATE TABLE leases (
        lease_token   TEXT PRIMARY KEY,
        intent_id     TEXT NOT NULL,
        agent_address TEXT NOT NULL,
        attempt       INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        state         TEXT NOT NULL,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX leases_active ON leases (expires_at_ms) WHERE state = 'active';
    CREATE INDEX leases_intent ON leases (intent_id);
    "#,
    // 6: deadlines of live intents, for the runtime timer.
    r#"
    CREATE INDEX intents_deadline ON intents (deadline_at) WHERE deadline_at IS NOT NULL
        AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'TIMED_OUT');
    "#,
    // 7: inbox threads (an intent as seen by one owner) and the messages posted in them.
    r#"
    CREATE TABLE threads (
        owner_agent TEXT NOT NULL,
        intent_id   TEXT NOT NULL,
        role        TEXT NOT NULL,
        change_id   INTEGER NOT NULL,
        read_at     TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (owner_agent, intent_id)
    ) WITHOUT ROWID;
    CREATE INDEX threads_intent ON threads (intent_id);
    CREATE INDEX threads_change ON threads (change_id);
    CREATE INDEX threads_owner_change ON threads (owner_agent, change_id);

    CREATE TABLE thread_messages (
        message_id  TEXT PRIMARY KEY,
        intent_id   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        author      TEXT NOT NULL,
        body        TEXT NOT NULL,
        hidden_for  TEXT NOT NULL DEFAULT '[]',
        deleted_at  TEXT,
        at          TEXT NOT NULL
    );
    CREATE INDEX thread_messages_intent ON thread_messages (intent_id, at);
    "#,
    // 8: durable runtime timers (reminders, escalations, delays), each fired once.
    r#"
    CREATE TABLE timers (
        timer_id  INTEGER PRIMARY KEY,
        intent_id TEXT NOT NULL,
        kind      TEXT NOT NULL,
        due_ms    INTEGER NOT NULL,
        data      TEXT NOT NULL
    );
    CREATE INDEX timers_due ON timers (due_ms);
    CREATE INDEX timers_intent ON timers (intent_id);
    "#,
    // 9: the agents an agent-role API key is bound to.
    r#"
    CREATE TABLE api_key_agents (
        key_id  TEXT NOT NULL REFERENCES api_keys (key_id),
        address TEXT NOT NULL,
        PRIMARY KEY (key_id, address)
    ) WITHOUT ROWID;
    "#,
    // 10: retention: terminal intents by their last change, and every row of an intent found by
    // its id (idempotency records now say which intent their response is about).
    r#"
    CREATE INDEX intents_retention ON intents (updated_at)
        WHERE status IN ('COMPLETED', 'FAILED', 'CANCELED', 'TIMED_OUT');
    CREATE INDEX completions_intent ON completions (intent_id);
    ALTER TABLE idempotency_keys ADD COLUMN intent_id TEXT;
    CREATE INDEX idempotency_keys_intent ON idempotency_keys (intent_id)
        WHERE intent_id IS NOT NULL;
    "#,
    // 11: pending deliveries by endpoint, so that the push scheduler reads due work only at the
    // endpoints with room and never steps over a saturated endpoint's backlog.
    r#"
    CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint, next_attempt_ms)
        WHERE status = 'pending';
    "#,
    // 12: service accounts (AXME's agent identities): an agent address with its own keys.
    r#"
    CREATE TABLE service_accounts (
        service_account_id  TEXT PRIMARY KEY,
        name                TEXT NOT NULL UNIQUE,
        address             TEXT NOT NULL UNIQUE,
        description         TEXT,
        display_name        TEXT,
        org_id              TEXT NOT NULL,
        workspace_id        TEXT NOT NULL,
        created_by_actor_id TEXT NOT NULL,
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL
    );
    "#,
    // 13: people (users with a nick and an inbox address), invites, payload schemas, media
    // uploads and the intents that attach them.
    r#"
    CREATE TABLE users (
        user_id         TEXT PRIMARY KEY,
        nick            TEXT NOT NULL,
        normalized_nick TEXT NOT NULL UNIQUE,
        owner_agent     TEXT NOT NULL UNIQUE,
        display_name    TEXT,
        phone           TEXT,
        email           TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );

    CREATE TABLE invites (
        token_hash     BLOB PRIMARY KEY,
        token_prefix   TEXT NOT NULL,
        owner_agent    TEXT NOT NULL,
        recipient_hint TEXT,
        created_at     TEXT NOT NULL,
        expires_at     TEXT NOT NULL,
        accepted_at    TEXT,
        user_id        TEXT
    ) WITHOUT ROWID;

    CREATE TABLE payload_schemas (
        semantic_type      TEXT PRIMARY KEY,
        schema_json        TEXT NOT NULL,
        schema_hash        TEXT NOT NULL,
        schema_ref         TEXT NOT NULL,
        compatibility_mode TEXT NOT NULL,
        scope              TEXT NOT NULL,
        owner_agent        TEXT,
        active             INTEGER NOT NULL,
        created_at         TEXT NOT NULL,
        updated_at         TEXT NOT NULL
    );
    CREATE INDEX intents_type ON intents (intent_type, id);

    CREATE TABLE media (
        upload_id      TEXT PRIMARY KEY,
        owner_agent    TEXT NOT NULL,
        filename       TEXT NOT NULL,
        mime_type      TEXT NOT NULL,
        size_bytes     INTEGER NOT NULL,
        expected_sha256 TEXT,
        received_bytes INTEGER,
        sha256         TEXT,
        status         TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        expires_at     TEXT NOT NULL,
        finalized_at   TEXT
    );
    CREATE TABLE media_refs (
        intent_id TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        PRIMARY KEY (intent_id, upload_id)
    ) WITHOUT ROWID;
    CREATE INDEX media_refs_upload ON media_refs (upload_id);
    "#,
    // 14: workflows: the compiled steps of a scenario's intent, each step's runs (one row per run,
    // naming the intent that carries it), and the controls and policy an intent is patched with.
    r#"
    CREATE TABLE workflows (
        intent_id    TEXT PRIMARY KEY,
        compile_id   TEXT NOT NULL UNIQUE,
        scenario_id  TEXT NOT NULL,
        spec         TEXT NOT NULL,
        current_step TEXT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    );

    CREATE TABLE workflow_steps (
        id             INTEGER PRIMARY KEY,
        intent_id      TEXT NOT NULL,
        step_id        TEXT NOT NULL,
        step_intent_id TEXT UNIQUE,
        status         TEXT NOT NULL,
        result         TEXT,
        started_at     TEXT NOT NULL,
        ended_at       TEXT
    );
    CREATE INDEX workflow_steps_by_intent ON workflow_steps (intent_id, id);

    CREATE TABLE intent_controls (
        intent_id         TEXT PRIMARY KEY,
        policy_generation INTEGER NOT NULL,
        controls          TEXT NOT NULL,
        policy            TEXT NOT NULL,
        updated_at        TEXT NOT NULL
    );
    "#,
    // live_bytes: the payload bytes of the live (non-terminal) intents each sender address has
    // sent, kept in the transaction of every create, terminal move and redrive; what an agent
    // key's --max-live-bytes-per-key quota reads. Backfilled from the intents already stored.
    r#"
    CREATE TABLE live_bytes (
        agent TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO live_bytes (agent, bytes)
        SELECT from_agent, SUM(length(CAST(payload AS BLOB))) FROM intents
        WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELED', 'TIMED_OUT')
        GROUP BY from_agent;
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The schema version of an open database.
pub fn current_version(conn: &Connection) -> Result<i64, Error> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the database up to the latest version, each migration in its own transaction.
/// A database written by a newer build is refused rather than guessed at.
pub fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let current = current_version(conn)?;
    if current > latest_version() {
        return Err(Error::internal(format!(
            "database schema version {current} is newer than this build supports ({}); upgrade axme",
            latest_version()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_new_database_to_the_latest_version_once() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first");
        migrate(&mut conn).expect("second is a no-op");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, latest_version());
    }

    #[test]
    fn refuses_a_database_from_a_newer_build() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .expect("set");
        let err = migrate(&mut conn).expect_err("must refuse");
        assert!(
            matches!(&err, Error::Internal { reason } if reason.contains("newer")),
            "{err:?}"
        );
    }
}
