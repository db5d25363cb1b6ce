//! [`RetryPolicy`]: when a failed CRM call is tried again, as data a config can set, the same
//! for every connector.
//!
//! Invariant: a wait is never shorter than what the CRM asked for (`Retry-After` or a known
//! policy window), and never longer than `cap` unless the CRM asked for more. The exponential
//! schedule comes from `backon`; the *full jitter* (a uniform draw between zero and the step)
//! is applied here because backon's own jitter only adds to the step, so many workers that
//! failed together would still retry together (DESIGN principle 6).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;

/// How often and how patiently a retryable failure (429, 5xx, timeout, reset) is retried
/// within one call. Retrying is safe because every write is an upsert by our key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 never retries.
    pub max_retries: u32,
    /// First step of the exponential schedule.
    pub base: Duration,
    /// Longest step of the schedule.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries from 200 ms, doubling up to 10 s: roughly half a minute of trouble.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The steps of one call's retries, before jitter: `base`, `2 base`, ... up to `cap`,
    /// `max_retries` of them.
    pub fn schedule(&self) -> Schedule {
        let steps = ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.cap.max(self.base))
            .with_factor(2.0)
            .with_max_times(usize::try_from(self.max_retries).unwrap_or(usize::MAX))
            .build();
        Schedule {
            steps: Box::new(steps),
        }
    }
}

/// The remaining retries of one call.
pub struct Schedule {
    steps: Box<dyn Iterator<Item = Duration> + Send>,
}

impl Schedule {
    /// The wait before the next retry, or `None` when the retries are spent: a uniform draw
    /// in `[0, step]`, raised to `asked` when the CRM asked for a longer wait.
    pub fn next_wait(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let step = self.steps.next()?;
        let max_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(rand::rng().random_range(0..=max_ms));
        Some(asked.map_or(jitter, |asked| asked.max(jitter)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_the_doubling_cap_and_end_after_max_retries() {
        let policy = RetryPolicy {
            max_retries: 4,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(300),
        };
        let mut schedule = policy.schedule();
        let caps = [100, 200, 300, 300];
        for cap in caps {
            let wait = schedule.next_wait(None);
            assert!(
                wait.is_some_and(|w| w <= Duration::from_millis(cap)),
                "{wait:?} > {cap} ms"
            );
        }
        assert_eq!(schedule.next_wait(None), None);
    }

    #[test]
    fn a_wait_the_crm_asked_for_is_never_shortened() {
        let mut schedule = RetryPolicy::default().schedule();
        let asked = Duration::from_secs(30);
        assert_eq!(schedule.next_wait(Some(asked)), Some(asked));
    }

    #[test]
    fn no_retries_means_no_wait() {
        let policy = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.schedule().next_wait(None), None);
    }
}
