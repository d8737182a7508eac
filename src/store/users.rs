//! The `users` table (people: a nick, an inbox address, a profile) and the `invites` table (one
//! row per invite, found by the SHA-256 of its token; the token itself is never stored).

use super::Tx;
use rusqlite::{params, OptionalExtension, Row};

use crate::Error;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: String,
    /// As the person chose it, with its `@`.
    pub nick: String,
    /// Lower case, without the `@`; unique.
    pub normalized_nick: String,
    /// The user's own address: their inbox, and what their keys act for. Never changes.
    pub owner_agent: String,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const USER_COLUMNS: &str = "user_id, nick, normalized_nick, owner_agent, display_name, phone, \
                            email, created_at, updated_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        user_id: r.get(0)?,
        nick: r.get(1)?,
        normalized_nick: r.get(2)?,
        owner_agent: r.get(3)?,
        display_name: r.get(4)?,
        phone: r.get(5)?,
        email: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

pub fn insert(conn: &Tx, u: &UserRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))?
    .execute(params![
        u.user_id,
        u.nick,
        u.normalized_nick,
        u.owner_agent,
        u.display_name,
        u.phone,
        u.email,
        u.created_at,
        u.updated_at
    ])?;
    Ok(())
}

/// Writes every field but the id, the owner address and the creation time.
pub fn update(conn: &Tx, u: &UserRow) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE users SET nick = ?2, normalized_nick = ?3, display_name = ?4, phone = ?5, \
         email = ?6, updated_at = ?7 WHERE user_id = ?1",
    )?
    .execute(params![
        u.user_id,
        u.nick,
        u.normalized_nick,
        u.display_name,
        u.phone,
        u.email,
        u.updated_at
    ])?;
    Ok(())
}

pub fn by_nick(conn: &Tx, normalized_nick: &str) -> Result<Option<UserRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE normalized_nick = ?1"
        ))?
        .query_row([normalized_nick], user_from_row)
        .optional()?)
}

pub fn by_id(conn: &Tx, user_id: &str) -> Result<Option<UserRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE user_id = ?1"
        ))?
        .query_row([user_id], user_from_row)
        .optional()?)
}

pub fn by_owner(conn: &Tx, owner_agent: &str) -> Result<Option<UserRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE owner_agent = ?1"
        ))?
        .query_row([owner_agent], user_from_row)
        .optional()?)
}

/// An invite as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    pub token_hash: Vec<u8>,
    /// The first characters of the token, for an operator reading the table.
    pub token_prefix: String,
    /// Who invites: the address the invite is from.
    pub owner_agent: String,
    pub recipient_hint: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    /// The user the invite became.
    pub user_id: Option<String>,
}

const INVITE_COLUMNS: &str = "token_hash, token_prefix, owner_agent, recipient_hint, created_at, \
                              expires_at, accepted_at, user_id";

fn invite_from_row(r: &Row<'_>) -> rusqlite::Result<InviteRow> {
    Ok(InviteRow {
        token_hash: r.get(0)?,
        token_prefix: r.get(1)?,
        owner_agent: r.get(2)?,
        recipient_hint: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        accepted_at: r.get(6)?,
        user_id: r.get(7)?,
    })
}

pub fn insert_invite(conn: &Tx, i: &InviteRow) -> Result<(), Error> {
    conn.prepare_cached(&format!(
        "INSERT INTO invites ({INVITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        i.token_hash,
        i.token_prefix,
        i.owner_agent,
        i.recipient_hint,
        i.created_at,
        i.expires_at,
        i.accepted_at,
        i.user_id
    ])?;
    Ok(())
}

pub fn invite(conn: &Tx, token_hash: &[u8]) -> Result<Option<InviteRow>, Error> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = ?1"
        ))?
        .query_row([token_hash], invite_from_row)
        .optional()?)
}

/// Marks a pending invite accepted by `user_id`; returns whether it was still pending.
pub fn accept_invite(conn: &Tx, token_hash: &[u8], user_id: &str, at: &str) -> Result<bool, Error> {
    let n = conn
        .prepare_cached(
            "UPDATE invites SET accepted_at = ?3, user_id = ?2 \
             WHERE token_hash = ?1 AND accepted_at IS NULL",
        )?
        .execute(params![token_hash, user_id, at])?;
    Ok(n == 1)
}
