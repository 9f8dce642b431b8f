//! The run's journal: its trace (every fault, group change, commit and write, with simulated times) and
//! the oracle's checks made as events happen, and its timeline.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::broker::{ClusterEvent, ClusterObserver, Departure, GroupChange, Logs};
use crate::coverage::{self, Event};
use crate::oracle::CommitChecks;
use crate::timeline::TimelineBuilder;
use crate::workload::DestinationStore;

/// The run's trace and the checks made as it goes.
pub(super) struct Journal {
    pub(super) trace: Vec<String>,
    pub(super) checks: CommitChecks,
    /// The same run drawn for a person ([`crate::timeline`]).
    pub(super) timeline: TimelineBuilder,
}

impl Journal {
    /// Makes a check at `at`; what it finds is marked on the timeline then.
    pub(super) fn check(&mut self, at: Duration, check: impl FnOnce(&mut CommitChecks)) {
        let before = self.checks.found().len();
        check(&mut self.checks);
        for anomaly in &self.checks.found()[before..] {
            self.timeline.anomaly_found(at, anomaly);
        }
    }
}

pub(super) type SharedJournal = Arc<Mutex<Journal>>;

pub(super) fn lock(journal: &SharedJournal) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// Journals what the cluster does, and counts the coverage events only the cluster sees.
pub(super) struct JournalObserver {
    pub(super) journal: SharedJournal,
    /// The sink's destination: told the sink group's commits, asked whether a flush is under way.
    pub(super) store: Arc<DestinationStore>,
    pub(super) sink_group: String,
}

impl ClusterObserver for JournalObserver {
    fn on_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs) {
        match event {
            ClusterEvent::Group {
                change:
                    GroupChange::Departed(_, Departure::SessionExpired | Departure::MissedRebalance),
                ..
            } => coverage::reached(Event::MemberThrownOut),
            ClusterEvent::Group {
                group,
                change: GroupChange::RebalanceStarted,
            } if *group == self.sink_group && self.store.flush_in_progress() => {
                coverage::reached(Event::RebalanceDuringFlush)
            }
            ClusterEvent::Committed { group, offsets, .. } if *group == self.sink_group => {
                self.store.note_kafka_commit(offsets)
            }
            _ => {}
        }
        let mut journal = lock(&self.journal);
        journal.trace.push(format!("{} {event:?}", millis(at)));
        super::cluster_marks::cluster_event(&mut journal.timeline, at, event);
        journal.check(at, |checks| checks.on_cluster_event(at, event, logs));
    }
}
