//! The JSON shapes of users and invites (AXP `api.users.*` and `api.invites.*` responses),
//! converted explicitly from stored rows.

use serde::Serialize;

use crate::service::invites::{self, Accepted, InviteView};
use crate::service::users::public_address;
use crate::store::users::{InviteRow, UserRow};

/// `check-nick`.
#[derive(Serialize)]
pub struct NickCheck<'a> {
    pub ok: bool,
    pub nick: &'a str,
    pub normalized_nick: &'a str,
    pub public_address: String,
    pub available: bool,
}

/// What every users response says about the user; `at` is the response's own timestamp
/// field (`created_at`, `renamed_at`, or `updated_at`).
#[derive(Serialize)]
pub struct User<'a> {
    pub ok: bool,
    pub user_id: &'a str,
    pub owner_agent: &'a str,
    pub nick: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized_nick: Option<&'a str>,
    pub public_address: String,
    pub display_name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<&'a str>,
}

/// Which timestamp a users response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserShape {
    Registered,
    Renamed,
    Profile,
}

impl<'a> User<'a> {
    pub fn from_row(u: &'a UserRow, shape: UserShape) -> User<'a> {
        User {
            ok: true,
            user_id: &u.user_id,
            owner_agent: &u.owner_agent,
            nick: &u.nick,
            normalized_nick: (shape == UserShape::Profile).then_some(u.normalized_nick.as_str()),
            public_address: public_address(&u.normalized_nick),
            display_name: u.display_name.as_deref(),
            phone: u.phone.as_deref(),
            email: u.email.as_deref(),
            created_at: (shape == UserShape::Registered).then_some(u.created_at.as_str()),
            renamed_at: (shape == UserShape::Renamed).then_some(u.updated_at.as_str()),
            updated_at: (shape == UserShape::Profile).then_some(u.updated_at.as_str()),
        }
    }
}

/// `POST /v1/invites/create`: the token is shown this once.
#[derive(Serialize)]
pub struct InviteCreated<'a> {
    pub ok: bool,
    pub token: &'a str,
    pub invite_url: String,
    pub owner_agent: &'a str,
    pub recipient_hint: Option<&'a str>,
    pub status: &'static str,
    pub created_at: &'a str,
    pub expires_at: &'a str,
}

impl<'a> InviteCreated<'a> {
    pub fn new(row: &'a InviteRow, token: &'a str, invite_url: String) -> InviteCreated<'a> {
        InviteCreated {
            ok: true,
            token,
            invite_url,
            owner_agent: &row.owner_agent,
            recipient_hint: row.recipient_hint.as_deref(),
            status: invites::Status::Pending.as_str(),
            created_at: &row.created_at,
            expires_at: &row.expires_at,
        }
    }
}

/// `GET /v1/invites/{token}`.
#[derive(Serialize)]
pub struct Invite<'a> {
    pub ok: bool,
    pub token: &'a str,
    pub owner_agent: &'a str,
    pub recipient_hint: Option<&'a str>,
    pub status: &'static str,
    pub created_at: &'a str,
    pub expires_at: &'a str,
    pub accepted_at: Option<&'a str>,
    pub accepted_owner_agent: Option<&'a str>,
    pub nick: Option<&'a str>,
    pub public_address: Option<String>,
}

impl<'a> Invite<'a> {
    pub fn new(v: &'a InviteView, token: &'a str, status: invites::Status) -> Invite<'a> {
        let user = v.user.as_ref();
        Invite {
            ok: true,
            token,
            owner_agent: &v.invite.owner_agent,
            recipient_hint: v.invite.recipient_hint.as_deref(),
            status: status.as_str(),
            created_at: &v.invite.created_at,
            expires_at: &v.invite.expires_at,
            accepted_at: v.invite.accepted_at.as_deref(),
            accepted_owner_agent: user.map(|u| u.owner_agent.as_str()),
            nick: user.map(|u| u.nick.as_str()),
            public_address: user.map(|u| public_address(&u.normalized_nick)),
        }
    }
}

/// `POST /v1/invites/{token}/accept`: the new user, and (an extension of the AXP shape) the
/// API key bound to their owner address, shown this once.
#[derive(Serialize)]
pub struct InviteAccepted<'a> {
    pub ok: bool,
    pub token: &'a str,
    pub status: &'static str,
    pub invite_owner_agent: &'a str,
    pub user_id: &'a str,
    pub owner_agent: &'a str,
    pub nick: &'a str,
    pub public_address: String,
    pub display_name: Option<&'a str>,
    pub accepted_at: &'a str,
    pub registry_bind_status: &'static str,
    pub api_key: &'a str,
    pub key_id: &'a str,
}

impl<'a> InviteAccepted<'a> {
    pub fn new(a: &'a Accepted, token: &'a str) -> InviteAccepted<'a> {
        InviteAccepted {
            ok: true,
            token,
            status: invites::Status::Accepted.as_str(),
            invite_owner_agent: &a.invite.owner_agent,
            user_id: &a.user.user_id,
            owner_agent: &a.user.owner_agent,
            nick: &a.user.nick,
            public_address: public_address(&a.user.normalized_nick),
            display_name: a.user.display_name.as_deref(),
            accepted_at: a
                .invite
                .accepted_at
                .as_deref()
                .unwrap_or(&a.user.created_at),
            // A self-hosted server has no outside registry to bind the nick in.
            registry_bind_status: "disabled",
            api_key: &a.api_key,
            key_id: &a.key.key_id,
        }
    }
}
