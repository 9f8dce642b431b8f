//! What each SequenceSource task instance was told by the runtime: `commit_record` for each record
//! (with where Kafka stored it, or nothing for a record dropped before Kafka), and `commit` after
//! offsets were committed. The oracle holds these to the `SourceTask` contract: every record whose offset
//! was committed was reported first, and a report names the record's real place in Kafka.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// A record of the source: (stream, seq).
pub type RecordId = (i64, i64);

/// One instance's reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceReports {
    /// Every `commit_record` call, per record: the (partition, offset) it was given, if any.
    pub told: BTreeMap<RecordId, Vec<Option<(i32, i64)>>>,
    /// Every record the instance handed to the runtime.
    pub polled: BTreeSet<RecordId>,
    /// Records polled and not told of yet.
    untold: BTreeSet<RecordId>,
    /// At the first `commit` that came while polled records were untold: those records. (With
    /// exactly-once support a commit follows the transaction holding everything polled before it, so
    /// every such record must have been reported by then.)
    pub untold_at_commit: Option<Vec<RecordId>>,
}

/// The reports of every instance, by instance number.
#[derive(Debug, Default)]
pub struct SourceReports {
    instances: Mutex<BTreeMap<u64, InstanceReports>>,
}

impl SourceReports {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, InstanceReports>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Instance `instance` handed record `id` to the runtime.
    pub fn polled(&self, instance: u64, id: RecordId) {
        let mut instances = self.lock();
        let reports = instances.entry(instance).or_default();
        reports.polled.insert(id);
        reports.untold.insert(id);
    }

    /// The runtime called `commit_record` on `instance` for record `id`.
    pub fn told(&self, instance: u64, id: RecordId, stored: Option<(i32, i64)>) {
        let mut instances = self.lock();
        let reports = instances.entry(instance).or_default();
        reports.untold.remove(&id);
        reports.told.entry(id).or_default().push(stored);
    }

    /// How many records `instance` polled and was not told of.
    pub fn untold(&self, instance: u64) -> usize {
        self.lock().get(&instance).map_or(0, |r| r.untold.len())
    }

    /// The runtime called `commit` on `instance`.
    pub fn committed(&self, instance: u64) {
        let mut instances = self.lock();
        let reports = instances.entry(instance).or_default();
        if reports.untold_at_commit.is_none() && !reports.untold.is_empty() {
            reports.untold_at_commit = Some(reports.untold.iter().copied().collect());
        }
    }

    /// Every instance's reports, taken at the end of a run (nothing is reported after).
    pub fn take(&self) -> BTreeMap<u64, InstanceReports> {
        std::mem::take(&mut *self.lock())
    }
}
