//! What a task does with a record that fails a stage (KIP-298, beside `errors.tolerance` and the dead
//! letter queue): try it again while the failure is retriable (`errors.retry.timeout`,
//! `errors.retry.delay.max.ms`), and say so in the log (`errors.log.enable`,
//! `errors.log.include.messages`).
//!
//! Retries wait exponentially longer from 300 ms (as Kafka Connect's `RetryWithToleranceOperator`),
//! capped at `errors.retry.delay.max.ms`, each delay jittered by up to half of it, so that the tasks
//! of a connector that fail together do not retry together. The jitter is a hash of the task and the
//! attempt, and the waits are on the runtime's clock: a simulated run replays exactly.
//!
//! A skipped record is always logged, at most once a minute with a count of the others (Kafka Connect
//! says nothing unless `errors.log.enable=true`); with `errors.log.enable=true` every failure gets an
//! ERROR line of its own naming the stage, the class and where the record came from, and with
//! `errors.log.include.messages=true` its key, value and headers too.

use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::hash::fnv1a64;

use super::repeated::Repeated;

pub const ERRORS_RETRY_TIMEOUT: &str = "errors.retry.timeout";
pub const ERRORS_RETRY_DELAY_MAX: &str = "errors.retry.delay.max.ms";
pub const ERRORS_LOG_ENABLE: &str = "errors.log.enable";
pub const ERRORS_LOG_INCLUDE_MESSAGES: &str = "errors.log.include.messages";

/// The first retry's delay, doubled for each one after.
const FIRST_DELAY: Duration = Duration::from_millis(300);

/// How long a retriable failure is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `None`: for as long as it fails (`errors.retry.timeout=-1`).
    timeout: Option<Duration>,
    max_delay: Duration,
}

impl RetryPolicy {
    /// From `errors.retry.timeout` (milliseconds; 0 never retries, -1 retries forever) and
    /// `errors.retry.delay.max.ms`.
    pub fn new(timeout_ms: i64, max_delay_ms: i64) -> RetryPolicy {
        RetryPolicy {
            timeout: u64::try_from(timeout_ms).ok().map(Duration::from_millis),
            max_delay: Duration::from_millis(u64::try_from(max_delay_ms).unwrap_or_default()),
        }
    }

    /// Whether a failure is ever tried again.
    pub fn retries(&self) -> bool {
        self.timeout != Some(Duration::ZERO)
    }

    /// The wait before retry `attempt` (from 1) of `task`.
    pub fn delay(&self, task: &str, attempt: u32) -> Duration {
        let doubled = FIRST_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(20));
        let base = doubled.min(self.max_delay);
        let jitter = fnv1a64(format!("{task}/{attempt}").as_bytes()) % 1000;
        base / 2 + base / 2 * u32::try_from(jitter).unwrap_or_default() / 1000
    }

    /// Runs `attempt` until it succeeds, fails with an error `retriable` says is not, or the time to
    /// retry is over (then its last error).
    pub async fn run<T, E: std::fmt::Display>(
        &self,
        task: &str,
        stage: &str,
        mut attempt: impl FnMut() -> Result<T, E>,
        retriable: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let deadline = self.timeout.map(|timeout| Instant::now() + timeout);
        let mut retries = 0;
        loop {
            match attempt() {
                Err(e) if retriable(&e) && self.retries() => {
                    retries += 1;
                    let delay = self.delay(task, retries);
                    if deadline.is_some_and(|deadline| Instant::now() + delay > deadline) {
                        tracing::warn!(task, stage, retries = retries - 1, error = %e, "giving up retrying (errors.retry.timeout)");
                        return Err(e);
                    }
                    tracing::info!(task, stage, retry = retries, ?delay, error = %e, "retriable failure; trying again");
                    sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// How a task logs the records it skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorLog {
    /// `errors.log.enable`: a line for every failure.
    pub each: bool,
    /// `errors.log.include.messages`: with the record's content.
    pub include_messages: bool,
}

/// A record a stage failed on, for the log.
pub struct Failure<'a> {
    pub task: &'a str,
    /// `KEY_CONVERTER`, `VALUE_CONVERTER`, `TRANSFORMATION`, `TASK_PUT`.
    pub stage: &'a str,
    /// The class that failed.
    pub class: &'a str,
    pub error: &'a str,
    /// The record, by where it came from ("the record at topic t partition 0 offset 7").
    pub record: &'a str,
}

impl ErrorLog {
    /// Logs a record skipped under `errors.tolerance=all`; `content` gives its key, value and headers.
    pub fn skipped(
        &self,
        failure: &Failure<'_>,
        content: impl FnOnce() -> String,
        repeated: &mut Repeated,
    ) {
        let Failure {
            task,
            stage,
            class,
            error,
            record,
        } = failure;
        if self.each {
            let content = self.include_messages.then(content);
            tracing::error!(task, stage, class, content, error, "error encountered in task {task} executing stage {stage} with class {class}: skipping {record}");
        } else if let Some(more) = repeated.happened() {
            tracing::warn!(
                task,
                stage,
                class,
                error,
                more_since_last_line = more,
                "skipping {record}: stage {stage} failed (errors.log.enable=true logs each)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_300_ms_up_to_the_cap_with_jitter_of_at_most_half() {
        let policy = RetryPolicy::new(60_000, 2_000);
        for (attempt, base) in [(1, 300), (2, 600), (3, 1_200), (4, 2_000), (9, 2_000)] {
            let delay = policy.delay("sink-0", attempt).as_millis();
            assert!(
                (base / 2..=base).contains(&delay),
                "attempt {attempt}: {delay} ms, expected within [{}, {base}]",
                base / 2
            );
        }
        assert_ne!(
            policy.delay("sink-0", 3),
            policy.delay("sink-1", 3),
            "two tasks failing together should not retry together"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_the_failure_passes() {
        let policy = RetryPolicy::new(10_000, 1_000);
        let mut calls = 0;
        let started = Instant::now();
        let result: Result<u32, String> = policy
            .run(
                "t",
                "TRANSFORMATION",
                || {
                    calls += 1;
                    if calls < 4 {
                        Err("busy".into())
                    } else {
                        Ok(calls)
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Ok(4));
        assert!(started.elapsed() >= Duration::from_millis(150 + 300 + 500));
    }

    /// Runs a stage that always fails under `policy`: its result and how many times it ran.
    async fn always_failing(policy: RetryPolicy, retriable: bool) -> (Result<(), String>, u32) {
        let mut calls = 0;
        let result = policy
            .run(
                "t",
                "TRANSFORMATION",
                || {
                    calls += 1;
                    Err("down".to_owned())
                },
                |_| retriable,
            )
            .await;
        (result, calls)
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_timeout_and_never_retries_without_one() {
        let (result, calls) = always_failing(RetryPolicy::new(2_000, 60_000), true).await;
        assert_eq!(result, Err("down".into()));
        assert!((3..=5).contains(&calls), "{calls} attempts in 2 s");
        let (result, calls) = always_failing(RetryPolicy::new(0, 60_000), true).await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "errors.retry.timeout=0 never retries");
        let (result, calls) = always_failing(RetryPolicy::new(-1, 60_000), false).await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a failure that is not retriable is not retried");
    }
}
