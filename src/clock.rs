//! The server's clock, and its one wire spelling of time: RFC 3339 UTC with microseconds
//! (`2026-11-25T16:52:57.123456Z`). Every timestamp the server writes or returns, and every
//! timer it sets or fires, reads the time here, so stored and returned times always sort as
//! strings and all timers run on one clock.
//!
//! The server's time is *the wall clock at an anchor plus the monotonic time elapsed since*:
//! when someone (NTP, an admin) steps the system clock, the server's time does not move with it
//! by itself. The runtime's scheduler notices the step (`skew_ms`) within a second and, in one
//! write transaction, shifts every relative timer by the jump and re-anchors this clock to the
//! wall clock (`reanchor`, then `settle` once that transaction's fate is known; see
//! `runtime::jumps`). So a jump neither fires every lease and retry at once nor leaves them
//! stuck for its size, and after it the server's time is the wall clock again.
//!
//! While a re-anchoring is not settled, `generation` is odd: a read that decides what is due
//! outside the writer (the push scheduler's) compares it before and after and reads again if it
//! changed, so it never pairs the new time with timers not yet shifted. This module never
//! touches the store.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Now, in UTC, on the server's clock.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(server().now_ns()))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Now, in Unix milliseconds, on the server's clock: what every `*_ms` timer column is compared
/// with.
pub fn now_ms() -> i64 {
    server().now_ns().div_euclid(1_000_000)
}

/// Now, spelled for the wire and the store.
pub fn now_rfc3339() -> String {
    format(now())
}

/// Formats a time as RFC 3339 UTC with microseconds.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

/// Parses an RFC 3339 date-time with any offset; `None` if it is not one.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds since the Unix epoch, on the server's clock.
pub fn unix_seconds() -> i64 {
    now().unix_timestamp()
}

/// How far the system wall clock is ahead of the server's clock, in milliseconds (negative:
/// behind). Zero but for rounding until someone steps the system clock.
pub fn skew_ms() -> i64 {
    server().skew_ns().div_euclid(1_000_000)
}

/// Moves the server's clock onto the wall clock at once, without settling: for small steps,
/// which are followed as they always were (timers are not shifted for them).
pub fn follow_wall() {
    server().follow_wall();
}

/// Starts moving the server's clock by `jump_ms` (a `skew_ms` the caller just measured), in the
/// write job that shifts the relative timers by the same amount; that job's write is then
/// passed to [`settle`]. Unsettled until then ([`generation`] is odd).
pub fn reanchor(jump_ms: i64) {
    server().reanchor(jump_ms);
}

/// Ends an unsettled re-anchoring, if there is one: kept if its transaction committed, undone
/// if not (the jump is then seen again and retried).
pub fn settle(committed: bool) {
    server().settle(committed);
}

/// Odd while a re-anchoring is unsettled; moves on at each start and end of one.
pub fn generation() -> u64 {
    server().generation.load(Ordering::SeqCst)
}

/// Where a clock reads time: the system, or a fake in this module's tests.
trait Source {
    /// The wall clock, Unix nanoseconds.
    fn wall_ns(&self) -> i64;
    /// A monotonic clock, nanoseconds since any fixed origin.
    fn mono_ns(&self) -> i64;
}

struct System {
    origin: Instant,
}

impl Source for System {
    fn wall_ns(&self) -> i64 {
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
    }

    fn mono_ns(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }
}

/// Wall at the anchor plus monotonic elapsed since, kept as one number: `offset = wall - mono`
/// at the anchor, so `now = mono + offset` and re-anchoring is one atomic store.
struct Clock<S> {
    source: S,
    /// Written by `new`, `follow_wall`, `reanchor` and `settle` (the runtime's scheduler and
    /// the writer thread); read by everyone.
    offset_ns: AtomicI64,
    /// Odd from `reanchor` until `settle`.
    generation: AtomicU64,
    /// The offset before the unsettled re-anchoring, to go back to if it is undone.
    previous_ns: AtomicI64,
}

impl<S: Source> Clock<S> {
    fn new(source: S) -> Self {
        let offset = source.wall_ns() - source.mono_ns();
        Clock {
            source,
            offset_ns: AtomicI64::new(offset),
            generation: AtomicU64::new(0),
            previous_ns: AtomicI64::new(offset),
        }
    }

    fn now_ns(&self) -> i64 {
        self.source.mono_ns() + self.offset_ns.load(Ordering::SeqCst)
    }

    fn skew_ns(&self) -> i64 {
        let server = self.now_ns();
        self.source.wall_ns() - server
    }

    fn follow_wall(&self) {
        let offset = self.source.wall_ns() - self.source.mono_ns();
        self.offset_ns.store(offset, Ordering::SeqCst);
    }

    fn reanchor(&self, jump_ms: i64) {
        if self.generation.load(Ordering::SeqCst) % 2 == 1 {
            // Never nested: the runtime settles one before it measures the next.
            return;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        let previous = self
            .offset_ns
            .fetch_add(jump_ms.saturating_mul(1_000_000), Ordering::SeqCst);
        self.previous_ns.store(previous, Ordering::SeqCst);
    }

    fn settle(&self, committed: bool) {
        if self.generation.load(Ordering::SeqCst) % 2 == 0 {
            return;
        }
        if !committed {
            let previous = self.previous_ns.load(Ordering::SeqCst);
            self.offset_ns.store(previous, Ordering::SeqCst);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

fn server() -> &'static Clock<System> {
    static SERVER: OnceLock<Clock<System>> = OnceLock::new();
    SERVER.get_or_init(|| {
        Clock::new(System {
            origin: Instant::now(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_microseconds() {
        let t = parse("2026-11-25T18:52:57.5+02:00").expect("parses");
        assert_eq!(format(t), "2026-11-25T16:52:57.500000Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(parse("2026-11-25 16:52:57").is_none());
        assert!(parse("tomorrow").is_none());
    }

    const S: i64 = 1_000_000_000;

    /// A wall clock and a monotonic clock the test moves by hand.
    #[derive(Default)]
    struct Fake {
        wall: AtomicI64,
        mono: AtomicI64,
    }

    impl Fake {
        fn at(wall_s: i64) -> Self {
            let f = Fake::default();
            f.wall.store(wall_s * S, Ordering::SeqCst);
            f
        }
        /// Real time passes: both clocks move.
        fn pass(&self, s: i64) {
            self.wall.fetch_add(s * S, Ordering::SeqCst);
            self.mono.fetch_add(s * S, Ordering::SeqCst);
        }
        /// Someone steps the system clock: only the wall clock moves.
        fn step(&self, s: i64) {
            self.wall.fetch_add(s * S, Ordering::SeqCst);
        }
    }

    impl Source for &Fake {
        fn wall_ns(&self) -> i64 {
            self.wall.load(Ordering::SeqCst)
        }
        fn mono_ns(&self) -> i64 {
            self.mono.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn runs_with_the_wall_clock_until_it_is_stepped() {
        let f = Fake::at(1_000);
        let c = Clock::new(&f);
        assert_eq!(c.now_ns(), 1_000 * S);
        f.pass(5);
        assert_eq!((c.now_ns(), c.skew_ns()), (1_005 * S, 0));
    }

    #[test]
    fn a_step_of_the_wall_clock_does_not_move_the_server_clock() {
        let f = Fake::at(1_000);
        let c = Clock::new(&f);
        f.step(3_600);
        f.pass(1);
        assert_eq!(c.now_ns(), 1_001 * S);
        assert_eq!(c.skew_ns(), 3_600 * S);
        f.step(-7_200);
        assert_eq!((c.now_ns(), c.skew_ns()), (1_001 * S, -3_600 * S));
    }

    #[test]
    fn reanchoring_moves_the_server_clock_by_the_jump() {
        let f = Fake::at(1_000);
        let c = Clock::new(&f);
        f.pass(2);
        f.step(-3_600);
        let jump = c.skew_ns() / 1_000_000;
        assert_eq!(jump, -3_600_000);
        c.reanchor(jump);
        assert_eq!(c.now_ns(), (1_002 - 3_600) * S);
        assert_eq!(
            c.generation.load(Ordering::SeqCst),
            1,
            "odd while unsettled"
        );
        c.settle(true);
        assert_eq!(c.generation.load(Ordering::SeqCst), 2);
        f.pass(1);
        assert_eq!((c.now_ns(), c.skew_ns()), ((1_003 - 3_600) * S, 0));
        c.settle(false);
        assert_eq!(
            c.now_ns(),
            (1_003 - 3_600) * S,
            "nothing to undo once settled"
        );
    }

    #[test]
    fn an_undone_reanchoring_puts_the_old_time_back_and_the_jump_is_seen_again() {
        let f = Fake::at(1_000);
        let c = Clock::new(&f);
        f.step(3_600);
        c.reanchor(3_600_000);
        assert_eq!(c.now_ns(), 4_600 * S);
        c.reanchor(1);
        assert_eq!(c.now_ns(), 4_600 * S, "not nested");
        c.settle(false);
        assert_eq!(c.now_ns(), 1_000 * S);
        assert_eq!(c.skew_ns(), 3_600 * S);
        assert_eq!(c.generation.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn following_a_small_step_moves_the_clock_without_a_generation() {
        let f = Fake::at(1_000);
        let c = Clock::new(&f);
        f.step(1);
        c.follow_wall();
        assert_eq!((c.now_ns(), c.skew_ns()), (1_001 * S, 0));
        assert_eq!(c.generation.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_process_clock_agrees_with_the_system_and_spells_milliseconds() {
        assert!(skew_ms().abs() < 1_000, "skew {}", skew_ms());
        let (a, b) = (now_ms(), now().unix_timestamp() * 1000);
        assert!((a - b).abs() < 2_000, "{a} vs {b}");
    }
}
