//! People (`/v1/users/...`): a user is a person with a `@nick`, a `user_id`, an owner address
//! (`agent://user/<nick>`, their inbox and what their keys act for) and a `public_address`
//! (`<nick>@ax`). A key bound to the owner address is that user's key: through the ordinary
//! access rules it sees the user's inbox, tasks and intents, nothing else.
//!
//! Nicks are unique without regard to case and without their `@`; a rename keeps the user's
//! id and owner address, so threads and keys keep working. An agent key may register a nick
//! only for its own address and read or change only its own profile; an admin key may do it
//! for anyone. This module never runs SQL itself (`store::users` does).

use serde_json::Value;

use super::access::Access;
use super::validate::{self, Fields};
use crate::clock;
use crate::store::users::{self, UserRow};
use crate::store::{Store, Tx};
use crate::Error;

/// The domain of public addresses (`alice@ax`), as AXME spells them.
pub const PUBLIC_DOMAIN: &str = "ax";

/// A nick as read from a request: as written (with `@`) and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nick {
    /// `@` and the characters as given.
    pub display: String,
    /// Lower case, without `@`.
    pub normalized: String,
}

/// Reads a nick: an optional `@`, then 3 to 32 letters, digits, `_`, `.` or `-`.
pub fn nick(field: &str, raw: &str) -> Result<Nick, Error> {
    let bare = raw.strip_prefix('@').unwrap_or(raw);
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let n = bare.chars().count();
    if !(3..=32).contains(&n) || !bare.chars().all(ok) {
        return Err(Error::invalid(
            field,
            "must be @ followed by 3 to 32 letters, digits, '_', '.' or '-' (e.g. @alice)",
        ));
    }
    Ok(Nick {
        display: format!("@{bare}"),
        normalized: bare.to_ascii_lowercase(),
    })
}

/// `alice@ax` for the normalized nick `alice`.
pub fn public_address(normalized_nick: &str) -> String {
    format!("{normalized_nick}@{PUBLIC_DOMAIN}")
}

/// The optional profile fields every users request may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

fn profile(f: &Fields<'_>) -> Result<Profile, Error> {
    let phone = f.str_opt("phone", 3, 32)?;
    if let Some(p) = phone {
        let ok = |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.');
        if !p.chars().all(ok) {
            return Err(Error::invalid(
                "phone",
                "must use only digits, spaces and + - ( ) .",
            ));
        }
    }
    let email = f.str_opt("email", 3, 255)?;
    if let Some(e) = email {
        let (local, domain) = e.split_once('@').unwrap_or(("", ""));
        if local.is_empty() || domain.is_empty() || e.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "email",
                "must be an address such as a@example.com",
            ));
        }
    }
    Ok(Profile {
        display_name: f.str_opt("display_name", 1, 120)?.map(str::to_string),
        phone: phone.map(str::to_string),
        email: email.map(str::to_string),
    })
}

/// A checked `POST /v1/users/register-nick` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    pub nick: Nick,
    pub profile: Profile,
}

pub fn register_request(body: &Value) -> Result<Register, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["nick", "display_name", "phone", "email"])?;
    Ok(Register {
        nick: nick("nick", f.str_req("nick", 1, 64)?)?,
        profile: profile(&f)?,
    })
}

/// A checked `rename-nick` or `profile/update` body: whose profile, and what changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub owner_agent: String,
    pub nick: Option<Nick>,
    pub profile: Profile,
}

/// Reads `rename-nick` (`nick_required`) or `profile/update` bodies.
pub fn update_request(body: &Value, nick_required: bool) -> Result<Update, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&["owner_agent", "nick", "display_name", "phone", "email"])?;
    let owner_agent = validate::owner_address("owner_agent", &f.address_req("owner_agent")?)?;
    let raw = if nick_required {
        Some(f.str_req("nick", 1, 64)?)
    } else {
        f.str_opt("nick", 1, 64)?
    };
    Ok(Update {
        owner_agent,
        nick: raw.map(|n| nick("nick", n)).transpose()?,
        profile: profile(&f)?,
    })
}

fn nick_taken(n: &Nick) -> Error {
    Error::conflict(
        "nick_taken",
        format!("the nick {} belongs to another user", n.display),
    )
}

/// Whether a nick is free.
pub async fn available(store: &Store, n: &Nick) -> Result<bool, Error> {
    let n = n.clone();
    store.read(move |c| available_in(c, &n)).await
}

fn available_in(conn: &Tx, n: &Nick) -> Result<bool, Error> {
    Ok(users::by_nick(conn, &n.normalized)?.is_none())
}

/// A new user row for `nick` whose inbox is `owner_agent` (or `agent://user/<nick>`, made
/// unique if another user already has that address from an earlier nick).
pub fn new_user(
    conn: &Tx,
    nick: Nick,
    owner_agent: Option<String>,
    profile: Profile,
) -> Result<UserRow, Error> {
    if !available_in(conn, &nick)? {
        return Err(nick_taken(&nick));
    }
    let user_id = uuid::Uuid::new_v4().to_string();
    let owner_agent = match owner_agent {
        Some(o) => {
            if users::by_owner(conn, &o)?.is_some() {
                return Err(Error::conflict(
                    "user_exists",
                    format!("{o} already has a user; rename it instead"),
                ));
            }
            o
        }
        None => {
            let plain = format!("agent://user/{}", nick.normalized);
            if users::by_owner(conn, &plain)?.is_none() {
                plain
            } else {
                format!("{plain}-{}", &user_id[..8])
            }
        }
    };
    let now = clock::now_rfc3339();
    let row = UserRow {
        user_id,
        nick: nick.display,
        normalized_nick: nick.normalized,
        owner_agent,
        display_name: profile.display_name,
        phone: profile.phone,
        email: profile.email,
        created_at: now.clone(),
        updated_at: now,
    };
    users::insert(conn, &row)?;
    Ok(row)
}

/// Registers a nick: for an agent key, as the user of its own address; for an admin key, a new
/// user with a new owner address.
pub async fn register(store: &Store, access: &Access, req: Register) -> Result<UserRow, Error> {
    let access = access.clone();
    store.write(move |c| register_in(c, &access, req)).await
}

/// [`register`] inside the caller's transaction (an idempotent write).
pub fn register_in(conn: &Tx, access: &Access, req: Register) -> Result<UserRow, Error> {
    let own = access.owner_scope(None)?;
    new_user(conn, req.nick, own, req.profile)
}

/// The user of `owner_agent`, if the caller may act for it (403) and it exists (404).
pub async fn profile_of(
    store: &Store,
    access: &Access,
    owner_agent: &str,
) -> Result<UserRow, Error> {
    let (access, owner) = (access.clone(), owner_agent.to_string());
    store.read(move |c| profile_of_in(c, &access, &owner)).await
}

fn profile_of_in(conn: &Tx, access: &Access, owner_agent: &str) -> Result<UserRow, Error> {
    access.require(owner_agent, "reading the profile of")?;
    users::by_owner(conn, owner_agent)?.ok_or_else(|| Error::NotFound {
        what: "user",
        id: owner_agent.to_string(),
    })
}

/// Renames a user and/or changes their profile fields; fields not given stay as they are.
pub fn update(conn: &Tx, access: &Access, req: Update) -> Result<UserRow, Error> {
    access.require(&req.owner_agent, "changing the profile of")?;
    let mut user = users::by_owner(conn, &req.owner_agent)?.ok_or_else(|| Error::NotFound {
        what: "user",
        id: req.owner_agent.clone(),
    })?;
    if let Some(n) = req.nick {
        if n.normalized != user.normalized_nick && !available_in(conn, &n)? {
            return Err(nick_taken(&n));
        }
        user.nick = n.display;
        user.normalized_nick = n.normalized;
    }
    let p = req.profile;
    user.display_name = p.display_name.or(user.display_name);
    user.phone = p.phone.or(user.phone);
    user.email = p.email.or(user.email);
    user.updated_at = clock::now_rfc3339();
    users::update(conn, &user)?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nicks_are_normalized_without_at_and_case() {
        let n = nick("nick", "@Alice.Smith").unwrap();
        assert_eq!(
            (n.display.as_str(), n.normalized.as_str()),
            ("@Alice.Smith", "alice.smith")
        );
        assert_eq!(nick("nick", "bob").unwrap().display, "@bob");
        for bad in ["@ab", "", "@", "a b c", "@élan", &"x".repeat(33)] {
            assert!(nick("nick", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_name_the_field_they_break() {
        let field = |e: Error| match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let bad = [
            (register_request(&json!({})), "nick"),
            (register_request(&json!({"nick": "@a"})), "nick"),
            (
                register_request(&json!({"nick": "@abc", "email": "x"})),
                "email",
            ),
            (
                register_request(&json!({"nick": "@abc", "phone": "12a"})),
                "phone",
            ),
            (
                register_request(&json!({"nick": "@abc", "role": "x"})),
                "role",
            ),
            (
                register_request(&json!({"nick": "@abc", "display_name": ""})),
                "display_name",
            ),
        ];
        for (r, f) in bad {
            assert_eq!(field(r.unwrap_err()), f);
        }
        let e = update_request(&json!({"nick": "@abc"}), true).unwrap_err();
        assert_eq!(field(e), "owner_agent");
        let e = update_request(&json!({"owner_agent": "agent://u"}), true).unwrap_err();
        assert_eq!(field(e), "nick");
        assert!(update_request(&json!({"owner_agent": "agent://u"}), false).is_ok());
    }
}
