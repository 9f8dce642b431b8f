//! Worker 0's source offset store: kept outside the host, and checked at every commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_core::runtime::{OffsetBackingStore, OffsetStoreError};

use super::journal::{lock, millis, SharedJournal};
use crate::broker::Cluster;
use crate::workload::input_file;

/// Worker 0's source offsets: kept outside the host, as a synced file survives a crash; every commit is
/// checked against what Kafka holds at that moment.
pub(super) struct CheckedOffsetStore {
    /// Per connector, per source partition (keyed by its JSON text): the partition and its offset.
    offsets: BTreeMap<String, BTreeMap<String, (SourcePartition, SourceOffset)>>,
    cluster: Arc<Cluster>,
    journal: SharedJournal,
}

impl OffsetBackingStore for CheckedOffsetStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        self.offsets
            .get(connector)?
            .get(&partition.to_string())
            .map(|(_, offset)| offset.clone())
    }

    fn put(
        &mut self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError> {
        let commits: Vec<(i64, i64)> = offsets
            .iter()
            .filter_map(|(p, o)| source_position(p, o))
            .collect();
        {
            let state = self.cluster.lock();
            let mut journal = lock(&self.journal);
            let now = crate::broker::now();
            journal.checks.on_source_commit(now, &state.logs, &commits);
            journal
                .trace
                .push(format!("{} source commit {commits:?}", millis(now)));
        }
        let stored = self.offsets.entry(connector.to_owned()).or_default();
        for (partition, offset) in offsets {
            stored.insert(partition.to_string(), (partition.clone(), offset.clone()));
        }
        Ok(())
    }
}

impl CheckedOffsetStore {
    pub(super) fn new(cluster: Arc<Cluster>, journal: SharedJournal) -> CheckedOffsetStore {
        CheckedOffsetStore {
            offsets: BTreeMap::new(),
            cluster,
            journal,
        }
    }

    /// Committed seq per stream.
    pub(super) fn committed(&self) -> BTreeMap<i64, i64> {
        self.offsets
            .values()
            .flat_map(|offsets| offsets.values())
            .filter_map(|(partition, offset)| source_position(partition, offset))
            .collect()
    }
}

/// A committed source offset as (stream, seq of the last record it covers): SequenceSource's
/// `{"stream": s}`/`{"seq": n}`, or FileStreamSource's `{"position": bytes}` (stream 0, line `bytes / 14 - 1`).
fn source_position(partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)> {
    if let Some(position) = offset.get("position").and_then(|p| p.as_i64()) {
        let last = position / input_file::LINE_BYTES as i64 - 1;
        return (last >= 0).then_some((0, last));
    }
    Some((
        partition.get("stream")?.as_i64()?,
        offset.get("seq")?.as_i64()?,
    ))
}
