//! The intent lifecycle state machine: the legal moves as one table, checked by one function.
//! Every status change in the program goes through [`check`]; nothing else decides whether an
//! intent may move.

use crate::model::Status::{self, *};
use crate::Error;

/// From each non-terminal status, the statuses it may move to (SPEC.md, "Intents and their
/// lifecycle"). Terminal statuses have no row: they never move again.
const MOVES: &[(Status, &[Status])] = &[
    (Created, &[Submitted]),
    (
        Submitted,
        &[
            Delivered, InProgress, Waiting, Completed, Failed, Canceled, TimedOut,
        ],
    ),
    (
        Delivered,
        &[
            Acknowledged,
            InProgress,
            Waiting,
            Completed,
            Failed,
            Canceled,
            TimedOut,
            // The lease was lost: the intent goes back to the queue for redelivery.
            Submitted,
        ],
    ),
    (
        Acknowledged,
        &[InProgress, Waiting, Completed, Failed, Canceled, TimedOut],
    ),
    (
        InProgress,
        &[Waiting, Completed, Failed, Canceled, TimedOut],
    ),
    (
        Waiting,
        &[InProgress, Completed, Failed, Canceled, TimedOut],
    ),
];

/// Whether the table allows `from -> to`.
pub fn allowed(from: Status, to: Status) -> bool {
    MOVES
        .iter()
        .find(|(f, _)| *f == from)
        .is_some_and(|(_, tos)| tos.contains(&to))
}

/// Checks a move, answering 409 with a precise reason when it is not legal.
pub fn check(from: Status, to: Status) -> Result<(), Error> {
    if from.is_terminal() {
        return Err(Error::conflict(
            "intent_terminal",
            format!("the intent is already {from}; a terminal intent never changes"),
        ));
    }
    if allowed(from, to) {
        Ok(())
    } else {
        Err(Error::conflict(
            "invalid_transition",
            format!("an intent cannot move from {from} to {to}"),
        ))
    }
}

/// The one exit from a terminal status: an intent that FAILED because it could not be delivered
/// is redriven back to SUBMITTED (`POST /v1/intents/{id}/redrive`). The caller checks the
/// failure was `delivery_failed`; this checks the statuses.
pub fn check_redrive(from: Status) -> Result<(), Error> {
    if from == Failed {
        Ok(())
    } else {
        Err(Error::conflict(
            "not_redrivable",
            format!("only a FAILED intent can be redriven; this one is {from}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legal moves as SPEC.md spells them, written out independently of `MOVES`.
    fn spec_allows(from: Status, to: Status) -> bool {
        let legal: &[(&str, &str)] = &[
            ("CREATED", "SUBMITTED"),
            ("SUBMITTED", "DELIVERED"),
            ("SUBMITTED", "IN_PROGRESS"),
            ("SUBMITTED", "WAITING"),
            ("SUBMITTED", "FAILED"),
            ("SUBMITTED", "CANCELED"),
            ("SUBMITTED", "TIMED_OUT"),
            ("SUBMITTED", "COMPLETED"),
            ("DELIVERED", "ACKNOWLEDGED"),
            ("DELIVERED", "IN_PROGRESS"),
            ("DELIVERED", "WAITING"),
            ("DELIVERED", "FAILED"),
            ("DELIVERED", "CANCELED"),
            ("DELIVERED", "TIMED_OUT"),
            ("DELIVERED", "SUBMITTED"),
            ("DELIVERED", "COMPLETED"),
            ("ACKNOWLEDGED", "IN_PROGRESS"),
            ("ACKNOWLEDGED", "WAITING"),
            ("ACKNOWLEDGED", "COMPLETED"),
            ("ACKNOWLEDGED", "FAILED"),
            ("ACKNOWLEDGED", "CANCELED"),
            ("ACKNOWLEDGED", "TIMED_OUT"),
            ("IN_PROGRESS", "WAITING"),
            ("IN_PROGRESS", "COMPLETED"),
            ("IN_PROGRESS", "FAILED"),
            ("IN_PROGRESS", "CANCELED"),
            ("IN_PROGRESS", "TIMED_OUT"),
            ("WAITING", "IN_PROGRESS"),
            ("WAITING", "COMPLETED"),
            ("WAITING", "FAILED"),
            ("WAITING", "CANCELED"),
            ("WAITING", "TIMED_OUT"),
        ];
        legal
            .iter()
            .any(|(f, t)| *f == from.as_str() && *t == to.as_str())
    }

    #[test]
    fn every_pair_of_statuses_matches_the_spec() {
        let mut legal = 0;
        for from in Status::ALL {
            for to in Status::ALL {
                let expected = spec_allows(from, to);
                assert_eq!(allowed(from, to), expected, "{from} -> {to}");
                assert_eq!(check(from, to).is_ok(), expected, "{from} -> {to}");
                legal += usize::from(expected);
            }
        }
        assert_eq!(legal, 32);
    }

    #[test]
    fn terminal_statuses_refuse_every_move_with_intent_terminal() {
        for from in Status::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in Status::ALL {
                let err = check(from, to).expect_err("terminal");
                assert_eq!(err.code(), "intent_terminal");
            }
        }
    }

    #[test]
    fn illegal_moves_name_both_statuses() {
        let err = check(Status::Waiting, Status::Acknowledged).expect_err("illegal");
        assert_eq!(err.code(), "invalid_transition");
        assert_eq!(
            err.to_string(),
            "an intent cannot move from WAITING to ACKNOWLEDGED"
        );
    }
}
