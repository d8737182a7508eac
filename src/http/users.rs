//! Handlers of people and invites (`/v1/users/...`, `/v1/invites/...`). The two token routes,
//! `GET /v1/invites/{token}` and `POST /v1/invites/{token}/accept`, are answered without an API
//! key: the newcomer has none yet, and the token (256 random bits, shown once) is the
//! credential. Everything else goes through the caller's key and `service::access`.

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::Response;

use super::response::{self, from_rendered, Body};
use super::wire::people::{self as wire, UserShape};
use super::Ctx;
use crate::clock;
use crate::service::access::Access;
use crate::service::idempotency::write_once;
use crate::service::{auth, invites, users};
use crate::Error;

type Result = std::result::Result<Response<Body>, Error>;

/// `GET /v1/users/check-nick?nick=`.
pub async fn check_nick(ctx: Ctx) -> Result {
    let raw = ctx.query.get("nick").ok_or_else(|| Error::BadRequest {
        field: "nick".into(),
        reason: "is required".into(),
    })?;
    let raw = raw.to_string();
    let nick = users::nick("nick", &raw)?;
    let n = nick.clone();
    let available = ctx
        .state
        .store
        .read(move |c| users::available(c, &n))
        .await?;
    response::ok(&wire::NickCheck {
        ok: true,
        nick: &nick.display,
        normalized_nick: &nick.normalized,
        public_address: users::public_address(&nick.normalized),
        available,
    })
}

/// `POST /v1/users/register-nick {nick, display_name?, phone?, email?}`.
pub async fn register_nick(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    let req = users::register_request(&body)?;
    let scope = ctx.idempotency("POST /v1/users/register-nick".into(), &body)?;
    let access = Access::of(&ctx.principal);
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| users::register(c, &access, req),
        |u| response::render(&wire::User::from_row(u, UserShape::Registered)),
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `POST /v1/users/rename-nick {owner_agent, nick, ...}`.
pub async fn rename_nick(ctx: Ctx, body: Incoming) -> Result {
    update(ctx, body, true).await
}

/// `POST /v1/users/profile/update {owner_agent, nick?, ...}`.
pub async fn update_profile(ctx: Ctx, body: Incoming) -> Result {
    update(ctx, body, false).await
}

async fn update(ctx: Ctx, body: Incoming, rename: bool) -> Result {
    let body = ctx.json(body).await?;
    let req = users::update_request(&body, rename)?;
    let (endpoint, shape) = if rename {
        ("POST /v1/users/rename-nick", UserShape::Renamed)
    } else {
        ("POST /v1/users/profile/update", UserShape::Profile)
    };
    let scope = ctx.idempotency(endpoint.into(), &body)?;
    let access = Access::of(&ctx.principal);
    let rendered = write_once(
        &ctx.state.store,
        scope,
        move |c| users::update(c, &access, req),
        move |u| response::render(&wire::User::from_row(u, shape)),
    )
    .await?;
    Ok(from_rendered(rendered))
}

/// `GET /v1/users/profile?owner_agent=`.
pub async fn profile(ctx: Ctx) -> Result {
    let raw = ctx
        .query
        .get("owner_agent")
        .ok_or_else(|| Error::BadRequest {
            field: "owner_agent".into(),
            reason: "is required".into(),
        })?;
    let owner = crate::service::validate::owner_address("owner_agent", raw)?;
    let access = Access::of(&ctx.principal);
    let user = ctx
        .state
        .store
        .read(move |c| users::profile_of(c, &access, &owner))
        .await?;
    response::ok(&wire::User::from_row(&user, UserShape::Profile))
}

/// Refuses an `Idempotency-Key` on a route whose answer holds a secret that is never stored
/// (an invite token, an API key), so it could not be replayed.
fn not_replayable(headers: &HeaderMap, route: &str) -> std::result::Result<(), Error> {
    if headers.contains_key("idempotency-key") {
        return Err(Error::BadRequest {
            field: "Idempotency-Key".into(),
            reason: format!(
                "{route} cannot be replayed: its response holds a secret that is never stored"
            ),
        });
    }
    Ok(())
}

/// `POST /v1/invites/create {owner_agent, recipient_hint?, ttl_seconds?}`.
pub async fn create_invite(ctx: Ctx, body: Incoming) -> Result {
    let body = ctx.json(body).await?;
    not_replayable(&ctx.headers, "POST /v1/invites/create")?;
    let req = invites::create_request(&body)?;
    let token = invites::new_token()?;
    let access = Access::of(&ctx.principal);
    let t = token.clone();
    let row = ctx
        .state
        .store
        .write(move |c| invites::create(c, &access, req, &t, clock::now()))
        .await?;
    let url = format!("{}/v1/invites/{token}", ctx.state.public_url());
    response::ok(&wire::InviteCreated::new(&row, &token, url))
}

/// `GET /v1/invites/{token}`, without an API key. A browser (its `Accept` names `text/html`)
/// opening the `invite_url` is sent on to the dashboard's accept page with `303`; a client
/// gets the invite as JSON.
pub async fn get_invite(ctx: Ctx) -> Result {
    let token = invites::token(ctx.param(0))?;
    let browser = ctx
        .headers
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if browser {
        let mut resp = Response::new(Body::full(Vec::new()));
        *resp.status_mut() = hyper::StatusCode::SEE_OTHER;
        let to = format!("/ui/#/invite/{token}");
        if let Ok(v) = hyper::header::HeaderValue::from_str(&to) {
            resp.headers_mut().insert(hyper::header::LOCATION, v);
        }
        return Ok(resp);
    }
    let t = token.clone();
    let view = ctx.state.store.read(move |c| invites::get(c, &t)).await?;
    let status = invites::status(&view.invite, clock::now());
    response::ok(&wire::Invite::new(&view, &token, status))
}

/// `POST /v1/invites/{token}/accept {nick, display_name?}`, without an API key: creates the
/// user and their key; the key is live before the answer leaves.
pub async fn accept_invite(ctx: Ctx, body: Incoming) -> Result {
    let token = invites::token(ctx.param(0))?;
    let body = ctx.json(body).await?;
    not_replayable(&ctx.headers, "POST /v1/invites/{token}/accept")?;
    let req = invites::accept_request(&body)?;
    let api_key = auth::generate_key()?;
    let t = token.clone();
    let state = &ctx.state;
    let accepted = state
        .store
        .write(move |c| invites::accept(c, &t, req, api_key, clock::now()))
        .await?;
    state
        .keys
        .insert(&accepted.key, vec![accepted.user.owner_agent.clone()]);
    response::ok(&wire::InviteAccepted::new(&accepted, &token))
}
