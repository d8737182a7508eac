//! Steps of the system clock. The server's clock (`crate::clock`) runs on monotonic time from an
//! anchor, so when NTP or an admin steps the wall clock the server's time does not follow by
//! itself; the timer scheduler calls [`check`] on every pass (at least once a second) and this
//! decides what the step means for the timers.
//!
//! The rule: a timer set as "so long from now" is RELATIVE and keeps its remaining time across a
//! jump — a lease's expiry, a pending push's next attempt, a nack delay, the `timers` table
//! (reminders, escalations, delayed completions). A time a client gave as a date is ABSOLUTE and
//! stays where it is — an intent's `deadline_at`: after a forward jump past it the intent times
//! out, after a backward jump it waits until the wall clock reaches it again. Other stored dates
//! (event and row timestamps, ages for retention and idempotency keys, a rotated secret's grace)
//! are history or absolute too and are not rewritten.
//!
//! A jump larger than [`JUMP_THRESHOLD_MS`] is applied in ONE write job that shifts every
//! relative timer by it and re-anchors the clock by the same amount, so no write runs against a
//! half-shifted state: the writer runs jobs one by one, and the re-anchoring is undone if that
//! transaction does not commit (`Store::write_settled`, `clock::settle`). Smaller differences
//! are followed as the wall clock always was, timers moving with it. Firing stays what it was —
//! a timer row deleted, a lease ended, a delivery updated in the transaction that acts on it —
//! so a jump neither fires a timer twice nor loses one.
//!
//! Not seen: a step while the server is stopped (it starts anchored at the wall clock, whatever
//! that is), and time the machine spends suspended, which the monotonic clock does not count and
//! which is therefore treated as a forward jump (relative timers keep their remaining time).

use crate::clock;
use crate::store::{deliveries, leases, timers, Store};
use crate::Error;

/// A difference between the wall clock and the server's clock beyond which relative timers are
/// shifted.
pub const JUMP_THRESHOLD_MS: i64 = 2_000;
/// Below this the two clocks agree (reading both is not instantaneous).
const AGREE_MS: i64 = 50;

/// How many rows one jump moved, per kind.
#[derive(Debug, Clone, Copy, Default)]
struct Shifted {
    leases: usize,
    held_back: usize,
    deliveries: usize,
    timers: usize,
}

/// Compares the wall clock with the server's clock and applies a jump (see the module doc).
/// A failed shift is logged and left for the next pass, which sees the same jump again.
pub async fn check(store: &Store) {
    let skew = clock::skew_ms();
    if skew.abs() <= AGREE_MS {
        return;
    }
    if skew.abs() <= JUMP_THRESHOLD_MS {
        tracing::debug!(skew_ms = skew, "following a small step of the system clock");
        clock::follow_wall();
        return;
    }
    let applied = store
        .write_settled(
            |c| {
                // Measured again here: this is the moment the clock and the rows move together.
                let jump = clock::skew_ms();
                let shifted = shift(c, jump, clock::now_ms())?;
                clock::reanchor(jump);
                Ok((jump, shifted))
            },
            |outcome| clock::settle(outcome.is_ok()),
        )
        .await;
    match applied {
        Ok((jump, s)) => tracing::warn!(
            jump_ms = jump,
            leases = s.leases,
            nack_delays = s.held_back,
            deliveries = s.deliveries,
            timers = s.timers,
            "clock jumped by {}; relative timers shifted by the jump, deadlines kept",
            spell(jump)
        ),
        Err(e) => tracing::warn!(
            skew_ms = skew,
            error = %e,
            "the system clock jumped and shifting the timers failed; retrying"
        ),
    }
}

/// Moves every relative timer by `jump_ms`; `now_ms` is the server's time before the jump.
fn shift(c: &crate::store::Tx, jump_ms: i64, now_ms: i64) -> Result<Shifted, Error> {
    Ok(Shifted {
        leases: leases::shift_active(c, jump_ms)?,
        held_back: leases::shift_held_back(c, jump_ms, now_ms)?,
        deliveries: deliveries::shift_pending(c, jump_ms)?,
        timers: timers::shift_all(c, jump_ms)?,
    })
}

/// `+1h 0m 3.250s`, `-12.000s`: a jump for the log.
fn spell(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let ms = ms.unsigned_abs();
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let secs = format!("{}.{:03}s", s / 1000, s % 1000);
    match (h, m) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m {secs}"),
        (h, m) => format!("{sign}{h}h {m}m {secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::spell;

    #[test]
    fn jumps_are_spelled_with_their_sign_and_units() {
        assert_eq!(spell(3_600_000), "+1h 0m 0.000s");
        assert_eq!(spell(-3_723_250), "-1h 2m 3.250s");
        assert_eq!(spell(-12_000), "-12.000s");
        assert_eq!(spell(61_001), "+1m 1.001s");
    }
}
