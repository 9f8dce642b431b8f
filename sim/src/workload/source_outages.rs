//! Failures of the source system the SequenceSource reads: the harness arms them ([`SourceOutages::fail`])
//! and the source's next polls meet them, as a connector meets a database that is down (a retriable
//! error: the runtime polls again after a backoff) or refuses it for good (a fatal one: the task fails,
//! and its `task.restart.policy` restarts it).

use std::sync::Mutex;
use std::time::Duration;

use sluice_core::api::ConnectError;

use crate::coverage::{self, Event};

/// What the source system does to the polls it is armed for.
#[derive(Debug, Default)]
pub struct SourceOutages(Mutex<Outage>);

#[derive(Debug, Default)]
struct Outage {
    /// Polls fail with a retriable error until this simulated time.
    unavailable_until: Duration,
    /// The next poll fails with a fatal error.
    fatal: bool,
    /// A poll failed fatally and no task instance has started since.
    failed: bool,
}

impl SourceOutages {
    /// From `now`, polls fail with a retriable error for `duration`; or, if `fatal`, the next poll fails
    /// for good.
    pub fn fail(&self, now: Duration, duration: Duration, fatal: bool) {
        let mut outage = self.lock();
        match fatal {
            true => outage.fatal = true,
            false => outage.unavailable_until = outage.unavailable_until.max(now + duration),
        }
    }

    /// The error a poll at `now` meets, if any.
    pub fn poll(&self, now: Duration) -> Result<(), ConnectError> {
        let mut outage = self.lock();
        if std::mem::take(&mut outage.fatal) {
            outage.failed = true;
            coverage::reached(Event::PollFailedFatal);
            return Err(ConnectError::fatal(
                "the source system refused this task for good",
            ));
        }
        if now < outage.unavailable_until {
            coverage::reached(Event::PollFailedRetriable);
            return Err(ConnectError::retriable("the source system is unavailable"));
        }
        Ok(())
    }

    /// A task instance started: one after a fatal failure is its restart.
    pub fn started(&self) {
        if std::mem::take(&mut self.lock().failed) {
            coverage::reached(Event::TaskRestartedAfterFailure);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
