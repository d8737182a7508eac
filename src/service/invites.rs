//! Invites (`/v1/invites/...`): a one-time token an owner hands to a newcomer. Accepting it with
//! a nick creates the newcomer's user and an API key bound to their new owner address, in one
//! transaction, exactly once; an expired or used token is refused with a code that says which.
//!
//! The token (32 random bytes) is the credential of the invite routes, so they answer without
//! an API key; it is shown once, when the invite is created, and stored only as its SHA-256,
//! like API keys. Time is passed in (`now`) so expiry is decided by the server's clock and
//! tested without waiting.

use base64::Engine;
use serde_json::Value;
use time::OffsetDateTime;

use super::access::Access;
use super::auth;
use super::users::{self, Nick};
use super::validate::{self, Fields};
use crate::clock;
use crate::store::keys::{self, KeyRow};
use crate::store::users::{self as store, InviteRow, UserRow};
use crate::store::{Store, Tx};
use crate::Error;

/// Default and bounds of `ttl_seconds` (the AXP schema's: one minute to 14 days).
pub const TTL_DEFAULT: i64 = 7 * 86_400;
pub const TTL_MIN: i64 = 60;
pub const TTL_MAX: i64 = 14 * 86_400;

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Accepted,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Expired => "expired",
        }
    }
}

/// The status of an invite at `now`: accepted wins over expired.
pub fn status(row: &InviteRow, now: OffsetDateTime) -> Status {
    if row.accepted_at.is_some() {
        Status::Accepted
    } else if clock::parse(&row.expires_at).is_some_and(|t| t <= now) {
        Status::Expired
    } else {
        Status::Pending
    }
}

/// A checked `POST /v1/invites/create` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    pub owner_agent: String,
    pub recipient_hint: Option<String>,
    pub ttl_seconds: i64,
}

pub fn create_request(body: &Value) -> Result<Create, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["owner_agent", "recipient_hint", "ttl_seconds"])?;
    Ok(Create {
        owner_agent: validate::owner_address("owner_agent", &f.address_req("owner_agent")?)?,
        recipient_hint: f.str_opt("recipient_hint", 1, 255)?.map(str::to_string),
        ttl_seconds: f
            .int_opt("ttl_seconds", TTL_MIN, TTL_MAX)?
            .unwrap_or(TTL_DEFAULT),
    })
}

/// A checked `POST /v1/invites/{token}/accept` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub nick: Nick,
    pub display_name: Option<String>,
}

pub fn accept_request(body: &Value) -> Result<Accept, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["nick", "display_name"])?;
    Ok(Accept {
        nick: users::nick("nick", f.str_req("nick", 1, 64)?)?,
        display_name: f.str_opt("display_name", 1, 120)?.map(str::to_string),
    })
}

/// The token of a new invite: 32 random bytes in URL-safe base64 (43 characters).
pub fn new_token() -> Result<String, Error> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(auth::random_32()?))
}

/// Reads a token from a path: 12 to 64 URL-safe characters, or 404 (as if no such invite).
pub fn token(raw: &str) -> Result<String, Error> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
    if (12..=64).contains(&raw.len()) && raw.chars().all(ok) {
        Ok(raw.to_string())
    } else {
        Err(not_found(raw))
    }
}

fn not_found(token: &str) -> Error {
    Error::NotFound {
        what: "invite",
        id: token.chars().take(8).collect::<String>() + "…",
    }
}

/// Creates an invite of `token` (made by [`new_token`]) from `owner_agent`, which an agent key
/// must act for.
pub async fn create(
    store: &Store,
    access: &Access,
    req: Create,
    token: &str,
) -> Result<InviteRow, Error> {
    let (access, token) = (access.clone(), token.to_string());
    store
        .write(move |c| create_in(c, &access, req, &token, clock::now()))
        .await
}

fn create_in(
    conn: &Tx,
    access: &Access,
    req: Create,
    token: &str,
    now: OffsetDateTime,
) -> Result<InviteRow, Error> {
    access.require(&req.owner_agent, "inviting on behalf of")?;
    let row = InviteRow {
        token_hash: auth::hash_key(token).to_vec(),
        token_prefix: token.chars().take(8).collect(),
        owner_agent: req.owner_agent,
        recipient_hint: req.recipient_hint,
        created_at: clock::format(now),
        expires_at: clock::format(now + time::Duration::seconds(req.ttl_seconds)),
        accepted_at: None,
        user_id: None,
    };
    store::insert_invite(conn, &row)?;
    Ok(row)
}

/// An invite with the user it became, if it was accepted.
#[derive(Debug, Clone)]
pub struct InviteView {
    pub invite: InviteRow,
    pub user: Option<UserRow>,
}

/// The invite of a token, or 404.
pub async fn get(store: &Store, token: &str) -> Result<InviteView, Error> {
    let token = token.to_string();
    store.read(move |c| get_in(c, &token)).await
}

fn get_in(conn: &Tx, token: &str) -> Result<InviteView, Error> {
    let invite = store::invite(conn, &auth::hash_key(token))?.ok_or_else(|| not_found(token))?;
    let user = match &invite.user_id {
        Some(id) => store::by_id(conn, id)?,
        None => None,
    };
    Ok(InviteView { invite, user })
}

/// What accepting an invite made: the user, and their key (shown this once).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub invite: InviteRow,
    pub user: UserRow,
    pub key: KeyRow,
    pub api_key: String,
}

/// Accepts a pending invite: creates the user (their owner address is new) and an agent key
/// bound to it. 409 `invite_expired` / `invite_already_accepted` / `nick_taken` otherwise.
/// The key is applied to the live key table after the commit, before this returns.
pub async fn accept(
    store: &Store,
    live: &auth::Keys,
    token: &str,
    req: Accept,
) -> Result<Accepted, Error> {
    let api_key = auth::generate_key()?;
    let token = token.to_string();
    let accepted = store
        .write(move |c| accept_in(c, &token, req, api_key, clock::now()))
        .await?;
    live.insert(&accepted.key, vec![accepted.user.owner_agent.clone()]);
    Ok(accepted)
}

fn accept_in(
    conn: &Tx,
    token: &str,
    req: Accept,
    api_key: String,
    now: OffsetDateTime,
) -> Result<Accepted, Error> {
    let hash = auth::hash_key(token);
    let mut invite = store::invite(conn, &hash)?.ok_or_else(|| not_found(token))?;
    match status(&invite, now) {
        Status::Pending => {}
        Status::Accepted => {
            return Err(Error::conflict(
                "invite_already_accepted",
                "this invite was already accepted; an invite is used once",
            ))
        }
        Status::Expired => {
            return Err(Error::conflict(
                "invite_expired",
                format!("this invite expired at {}", invite.expires_at),
            ))
        }
    }
    let profile = users::Profile {
        display_name: req.display_name,
        ..Default::default()
    };
    let user = users::new_user(conn, req.nick, None, profile)?;
    let at = clock::format(now);
    if !store::accept_invite(conn, &hash, &user.user_id, &at)? {
        return Err(Error::internal("a pending invite could not be accepted"));
    }
    invite.accepted_at = Some(at.clone());
    invite.user_id = Some(user.user_id.clone());
    let key = KeyRow {
        key_id: uuid::Uuid::new_v4().to_string(),
        key_hash: auth::hash_key(&api_key).to_vec(),
        name: format!("user.{}", user.normalized_nick),
        role: crate::model::KeyRole::Agent,
        created_at: at,
        revoked_at: None,
    };
    keys::insert(conn, &key)?;
    keys::insert_agents(conn, &key.key_id, std::slice::from_ref(&user.owner_agent))?;
    Ok(Accepted {
        invite,
        user,
        key,
        api_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::service::testing::{admin, db};

    fn accept_body(nick: &str) -> Accept {
        accept_request(&json!({"nick": nick})).expect("valid")
    }

    #[test]
    fn an_invite_is_accepted_once_and_refused_after_it_expires() {
        let conn = db();
        let c = Tx::sqlite(&conn);
        let t0 = clock::now();
        let req = create_request(&json!({"owner_agent": "team/lead", "ttl_seconds": 60})).unwrap();
        let used = new_token().unwrap();
        let row = create_in(&c, &admin(), req.clone(), &used, t0).unwrap();
        assert_eq!(status(&row, t0), Status::Pending);
        assert_eq!(
            status(&row, t0 + time::Duration::seconds(60)),
            Status::Expired
        );

        let a = accept_in(&c, &used, accept_body("@Newcomer"), "k1".into(), t0).unwrap();
        assert_eq!(a.user.owner_agent, "agent://user/newcomer");
        assert_eq!(
            keys::agents_of(&c, &a.key.key_id).unwrap(),
            vec![a.user.owner_agent.clone()]
        );
        let again = accept_in(&c, &used, accept_body("@other"), "k2".into(), t0).unwrap_err();
        assert_eq!(again.code(), "invite_already_accepted");
        assert_eq!(
            get_in(&c, &used).unwrap().user.unwrap().user_id,
            a.user.user_id
        );

        let late = new_token().unwrap();
        create_in(&c, &admin(), req, &late, t0).unwrap();
        let e = accept_in(
            &c,
            &late,
            accept_body("@late"),
            "k3".into(),
            t0 + time::Duration::seconds(61),
        )
        .unwrap_err();
        assert_eq!(e.code(), "invite_expired");
        assert!(
            store::by_nick(&c, "late").unwrap().is_none(),
            "nothing of an expired accept stays"
        );
    }

    #[test]
    fn create_requests_name_the_field_they_break() {
        for (body, field) in [
            (json!({}), "owner_agent"),
            (
                json!({"owner_agent": "a/b", "ttl_seconds": 59}),
                "ttl_seconds",
            ),
            (
                json!({"owner_agent": "a/b", "ttl_seconds": 1_209_601}),
                "ttl_seconds",
            ),
            (
                json!({"owner_agent": "a/b", "recipient_hint": ""}),
                "recipient_hint",
            ),
            (json!({"owner_agent": "a/b", "x": 1}), "x"),
        ] {
            match create_request(&body).unwrap_err() {
                Error::Invalid { field: f, .. } => assert_eq!(f, field, "{body}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
