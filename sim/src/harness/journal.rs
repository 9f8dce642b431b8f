//! The run's journal: its trace (every fault, group change, commit and write, with simulated times) and
//! the oracle's checks made as events happen.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::broker::{ClusterEvent, ClusterObserver, Logs};
use crate::oracle::CommitChecks;

/// The run's trace and the checks made as it goes.
pub(super) struct Journal {
    pub(super) trace: Vec<String>,
    pub(super) checks: CommitChecks,
}

pub(super) type SharedJournal = Arc<Mutex<Journal>>;

pub(super) fn lock(journal: &SharedJournal) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn millis(d: Duration) -> u128 {
    d.as_millis()
}

pub(super) struct JournalObserver(pub(super) SharedJournal);

impl ClusterObserver for JournalObserver {
    fn on_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs) {
        let mut journal = lock(&self.0);
        journal.trace.push(format!("{} {event:?}", millis(at)));
        journal.checks.on_cluster_event(at, event, logs);
    }
}
