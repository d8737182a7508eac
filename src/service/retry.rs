//! When push attempts are retried and how many there are: the retry schedule with jitter, the
//! throttle floor after a 429 or a timeout, and the cap on an honoured `Retry-After`. No I/O.

use std::time::Duration;

/// When attempts are retried and how many there are.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before retry 1, 2, …; the last delay repeats if attempts outlast the schedule.
    pub schedule: Vec<Duration>,
    /// The shortest wait after a 429 or a timeout (even when the schedule says less).
    pub throttle_floor: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl RetryPolicy {
    /// Attempts a delivery gets when neither its intent nor its agent says: one per schedule
    /// step plus the first.
    pub fn default_attempts(&self) -> i64 {
        self.schedule.len() as i64 + 1
    }

    /// The delay before the next attempt after `attempts` failed ones, ±20% jitter.
    pub fn backoff(
        &self,
        attempts: i64,
        retry_after: Option<Duration>,
        throttled: bool,
    ) -> Duration {
        let step = (attempts.max(1) - 1) as usize;
        let base = self
            .schedule
            .get(step)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(5));
        let jitter = 0.8 + 0.4 * (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let mut delay = base.mul_f64(jitter);
        if throttled {
            delay = delay.max(self.throttle_floor);
        }
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(self.retry_after_cap));
        }
        delay
    }
}
