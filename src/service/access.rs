//! Who may do what. An admin key may do everything. An agent key acts for the agent addresses it
//! is bound to, and only for them:
//!
//! - it sends intents only `from_agent` one of its addresses: the one it names, else its first
//!   (any other value sent is ignored, as AXME ignores `from_agent`);
//! - it reads an intent (the intent, its events, its stream) only when one of its addresses is the
//!   intent's `from_agent`, `to_agent` or `reply_to`; any other intent does not exist for it (404,
//!   never 403, so ids cannot be probed);
//! - it handles (resolve, resume, ack, progress, redrive, claims) only intents addressed to one of
//!   its addresses; the sender may also cancel its own intent (one by one or in a bulk cancel);
//! - it reads feeds, claims, inboxes, tasks, subscriptions and registry entries only of its own
//!   addresses; listings are filtered, never padded with others' rows;
//! - it never manages keys, takes backups or reads metrics.
//!
//! The checks that depend on an intent run inside the transaction (or read) of the operation,
//! so a concurrent re-addressing cannot slip between the check and the change.

use crate::store::Tx;

use super::auth::Principal;
use crate::store::deliveries::DeliveryRow;
use crate::store::intents::{self, IntentRow};
use crate::store::{leases, subscriptions};
use crate::Error;

/// What a caller may reach, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    admin: bool,
    agents: Vec<String>,
}

impl Access {
    pub fn of(p: &Principal) -> Access {
        Access {
            admin: p.is_admin(),
            agents: p.agents.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the caller acts for `address`.
    pub fn owns(&self, address: &str) -> bool {
        self.admin || self.agents.iter().any(|a| a == address)
    }

    fn forbidden(&self, what: String) -> Error {
        Error::Forbidden {
            reason: format!("this key acts for {} only; {what}", self.agents.join(", ")),
        }
    }

    /// 403 unless the caller acts for `address`; `doing` says what was asked.
    pub fn require(&self, address: &str, doing: &str) -> Result<(), Error> {
        if self.owns(address) {
            Ok(())
        } else {
            Err(self.forbidden(format!("{doing} {address} is not allowed")))
        }
    }

    /// The `from_agent` of an intent this caller sends, derived from the key: an agent key sends
    /// as the one of its addresses it names, else as its first; an admin key (which acts for
    /// every agent) as the agent address it names, else as itself (`None`: the caller's address).
    /// A value the key may not send as is ignored, as AXME ignores a sent `from_agent`.
    pub fn sender(&self, given: Option<String>) -> Option<String> {
        match (self.admin, given) {
            (true, given) => given,
            (false, Some(a)) if self.owns(&a) => Some(a),
            (false, _) => self.agents.first().cloned(),
        }
    }

    /// The owner scope of an inbox or subscription call: as given (owned), or for an agent key
    /// its first address. An admin without a scope sees every owner (`None`).
    pub fn owner_scope(&self, given: Option<String>) -> Result<Option<String>, Error> {
        match (self.admin, given) {
            (true, given) => Ok(given),
            (false, Some(o)) => {
                self.require(&o, "acting as owner")?;
                Ok(Some(o))
            }
            (false, None) => Ok(self.agents.first().cloned()),
        }
    }

    /// The addresses an agent key acts for; `None` for an admin key, which acts for all.
    pub fn parties(&self) -> Option<&[String]> {
        (!self.admin).then_some(self.agents.as_slice())
    }

    /// Whether the caller may see this intent at all.
    pub fn can_read(&self, i: &IntentRow) -> bool {
        self.admin
            || self.owns(&i.from_agent)
            || self.owns(&i.to_agent)
            || i.reply_to.as_deref().is_some_and(|r| self.owns(r))
    }

    /// The intent, if the caller may see it; 404 otherwise, as if it did not exist.
    pub fn read(&self, conn: &Tx, intent_id: &str) -> Result<IntentRow, Error> {
        match intents::get(conn, intent_id)? {
            Some(i) if self.can_read(&i) => Ok(i),
            _ => Err(Error::NotFound {
                what: "intent",
                id: intent_id.to_string(),
            }),
        }
    }

    /// The intent, if the caller handles it (it is addressed to one of the caller's addresses);
    /// 404 if the caller cannot see it, 403 if it can but is not its handler. `cancel_as_sender`
    /// also lets its sender through (cancelling one's own request).
    pub fn handle(
        &self,
        conn: &Tx,
        intent_id: &str,
        cancel_as_sender: bool,
    ) -> Result<IntentRow, Error> {
        let i = self.read(conn, intent_id)?;
        if self.owns(&i.to_agent) || (cancel_as_sender && self.owns(&i.from_agent)) {
            Ok(i)
        } else {
            Err(self.forbidden(format!("intent {intent_id} is addressed to {}", i.to_agent)))
        }
    }

    /// Following intent events (a lifecycle subscription, the firehose): an agent key follows
    /// only its own agents' intents (`to_agent`), or one intent it may see (`intent_id`), and
    /// must name one of the two. `doing_of` says what was asked of an address ("following the
    /// events of"), `doing` what was asked without a filter.
    pub fn observe(
        &self,
        conn: &Tx,
        to_agent: Option<&str>,
        intent_id: Option<&str>,
        doing_of: &str,
        doing: &str,
    ) -> Result<(), Error> {
        if self.admin {
            return Ok(());
        }
        match (to_agent, intent_id) {
            (Some(a), _) => self.require(a, doing_of),
            (None, Some(id)) => self.read(conn, id).map(drop),
            (None, None) => self.require_filter(&[None], doing),
        }
    }

    /// A claim (lease) of another key's agents does not exist for this key (404). An admin key
    /// owns every agent, so its claims need no lookup here (the operation finds the lease).
    pub fn lease(&self, conn: &Tx, token: &str) -> Result<(), Error> {
        if self.admin {
            return Ok(());
        }
        match leases::get(conn, token)? {
            Some(l) if !self.owns(&l.agent_address) => Err(Error::NotFound {
                what: "claim",
                id: token.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// A delivery is visible to an agent key (listed, read, replayed) only when it goes to a
    /// target the key owns: a push to one of its agents, or to one of its subscriptions. Any
    /// other, even of an intent the key may see, does not exist for it (404): its URL may hold
    /// another owner's token and its attempts that receiver's answers.
    pub fn delivery(&self, conn: &Tx, d: &DeliveryRow) -> Result<(), Error> {
        if self.admin {
            return Ok(());
        }
        let visible = match (&d.subscription_id, &d.agent_address) {
            (Some(sub), _) => {
                subscriptions::get(conn, sub)?.is_some_and(|s| self.owns(&s.owner_agent))
            }
            (None, Some(agent)) => self.owns(agent),
            (None, None) => false,
        };
        if visible {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "delivery",
                id: d.delivery_id.clone(),
            })
        }
    }

    /// For a listing: the one address an agent key must filter by, given the filters asked for.
    /// An admin may list anything; an agent key must name one of its addresses.
    pub fn require_filter(&self, filters: &[Option<&str>], doing: &str) -> Result<(), Error> {
        if self.admin {
            return Ok(());
        }
        let named: Vec<&str> = filters.iter().flatten().copied().collect();
        if named.iter().any(|a| self.owns(a)) {
            Ok(())
        } else {
            Err(self.forbidden(format!(
                "{doing} needs a filter naming one of these addresses"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_key(agents: &[&str]) -> Access {
        Access {
            admin: false,
            agents: agents.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn an_agent_key_acts_only_for_its_addresses() {
        let a = agent_key(&["agent://a", "agent://b"]);
        assert!(a.owns("agent://b") && !a.owns("agent://c"));
        assert_eq!(a.sender(None).as_deref(), Some("agent://a"));
        assert_eq!(
            a.sender(Some("agent://b".into())).as_deref(),
            Some("agent://b")
        );
        assert_eq!(
            a.sender(Some("agent://c".into())).as_deref(),
            Some("agent://a"),
            "another agent's address is ignored"
        );
        assert!(matches!(
            a.owner_scope(Some("agent://c".into())),
            Err(Error::Forbidden { .. })
        ));
        assert!(a
            .require_filter(&[None, Some("agent://a")], "listing")
            .is_ok());
        assert!(a
            .require_filter(&[None, Some("agent://c")], "listing")
            .is_err());
        assert!(a.require_filter(&[None, None], "listing").is_err());
    }

    #[test]
    fn an_admin_key_acts_for_everyone() {
        let a = Access {
            admin: true,
            agents: Vec::new(),
        };
        assert!(a.owns("agent://anyone"));
        assert_eq!(a.sender(None), None);
        assert_eq!(a.owner_scope(None).unwrap(), None);
        assert!(a.require_filter(&[None], "listing").is_ok());
    }
}
