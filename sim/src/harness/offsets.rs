//! The workers' source offset files: each worker runs the real `FileOffsetStore` on its simulated disk,
//! wrapped to check every commit against Kafka and to remember what the store reported committed, which
//! the file must still hold after a crash.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_core::runtime::{FileOffsetStore, OffsetBackingStore, OffsetStoreError};
use turmoil::fs::shim::std::fs as blocking;

use super::journal::{lock, millis, SharedJournal};
use crate::broker::Cluster;
use crate::kit::ExternalSource;
use crate::oracle::{Anomaly, AnomalyKind};
use crate::timeline::{LaneKind, MarkKind};
use crate::workload::input_file::InputRotations;
use crate::workload::SimFs;

/// Where every worker keeps its source offsets (`offset.storage.file.filename`), on its own disk.
pub(super) const OFFSET_FILE: &str = "/sluice/offsets.json";

/// Per connector, per source partition (keyed by its JSON text): the partition and its offset.
type Offsets = BTreeMap<String, BTreeMap<String, (SourcePartition, SourceOffset)>>;

/// The offsets a worker's store reported committed, that is durable; kept outside the host, which
/// forgets everything when it crashes.
/// FileStreamSource's offsets are mapped to lines through the input file's rotations.
#[derive(Clone)]
pub(super) struct SourceCommits {
    offsets: Arc<Mutex<Offsets>>,
    rotations: Arc<InputRotations>,
    /// A test kit's source system, which maps its connector's offsets to records.
    under_test: Option<Arc<dyn ExternalSource>>,
}

impl SourceCommits {
    pub(super) fn new(
        rotations: Arc<InputRotations>,
        under_test: Option<Arc<dyn ExternalSource>>,
    ) -> SourceCommits {
        SourceCommits {
            offsets: Arc::default(),
            rotations,
            under_test,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Offsets> {
        self.offsets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Committed seq per stream.
    pub(super) fn committed(&self) -> BTreeMap<i64, i64> {
        self.lock()
            .values()
            .flat_map(|offsets| offsets.values())
            .filter_map(|(partition, offset)| self.position(partition, offset))
            .collect()
    }

    /// A committed source offset as (stream, seq of the last record it covers): SequenceSource's
    /// `{"stream": s}`/`{"seq": n}`, or FileStreamSource's `{"position": bytes, "head": ...}` (stream 0,
    /// the line the position ends after in the life of the input file the head fingerprints).
    fn position(&self, partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)> {
        if let Some(system) = &self.under_test {
            return system.covered(partition, offset);
        }
        if offset.get("position").is_some() {
            return self.rotations.last_line(offset).map(|line| (0, line));
        }
        Some((
            partition.get("stream")?.as_i64()?,
            offset.get("seq")?.as_i64()?,
        ))
    }
}

/// A worker's offset file, and what each commit through it is checked against.
#[derive(Clone)]
pub(super) struct OffsetFile {
    pub(super) commits: SourceCommits,
    pub(super) cluster: Arc<Cluster>,
    pub(super) journal: SharedJournal,
}

impl OffsetFile {
    /// Opens the file on this host's disk `fs`. Every offset reported committed must be in it: one
    /// missing (or a file that cannot be read) was reported durable before it was.
    pub(super) fn open(
        &self,
        fs: SimFs,
        worker: usize,
    ) -> Result<CheckedOffsetStore, OffsetStoreError> {
        let opened = create_dir(Path::new(OFFSET_FILE))
            .map_err(|source| OffsetStoreError::Write {
                path: OFFSET_FILE.into(),
                source,
            })
            .and_then(|()| FileOffsetStore::open(Arc::new(fs), Path::new(OFFSET_FILE)));
        let mut journal = lock(&self.journal);
        let store = match opened {
            Ok(store) => store,
            Err(e) => {
                let anomaly = Anomaly {
                    kind: AnomalyKind::CommittedBeforeDurable,
                    detail: format!("worker-{worker} cannot open its offset file: {e}"),
                };
                journal.check(crate::broker::now(), |checks| checks.report(anomaly));
                return Err(e);
            }
        };
        for (connector, offsets) in self.commits.lock().iter() {
            for (partition, offset) in offsets.values() {
                let reported = self.commits.position(partition, offset);
                let kept = store
                    .get(connector, partition)
                    .and_then(|kept| self.commits.position(partition, &kept));
                if kept < reported {
                    let anomaly = Anomaly {
                        kind: AnomalyKind::CommittedBeforeDurable,
                        detail: format!(
                            "worker-{worker}'s offset store reported {connector} {partition} committed at {offset}, but its file holds {kept:?} after a restart"
                        ),
                    };
                    journal.check(crate::broker::now(), |checks| checks.report(anomaly));
                }
            }
        }
        Ok(CheckedOffsetStore {
            store,
            file: self.clone(),
            worker,
        })
    }
}

/// The directory of `path`, created durably.
fn create_dir(path: &Path) -> std::io::Result<()> {
    let dir = sluice_core::fs::parent_dir(path);
    blocking::create_dir_all(dir)?;
    blocking::sync_dir(sluice_core::fs::parent_dir(dir))
}

/// A worker's real offset store: every commit is checked against what Kafka holds at that moment, and
/// what it reports committed is remembered.
pub(super) struct CheckedOffsetStore {
    store: FileOffsetStore,
    file: OffsetFile,
    /// The worker whose disk holds the file.
    worker: usize,
}

impl OffsetBackingStore for CheckedOffsetStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        self.store.get(connector, partition)
    }

    fn bind_cluster(&mut self, cluster: &str, rebind: bool) -> Result<(), OffsetStoreError> {
        self.store.bind_cluster(cluster, rebind)
    }

    fn cluster(&self) -> Option<&str> {
        self.store.cluster()
    }

    fn offsets(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        self.store.offsets(connector)
    }

    /// An operator's change: what the worker reports committed from now on starts from it.
    fn alter(
        &mut self,
        connector: &str,
        changes: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<(), OffsetStoreError> {
        let altered: Vec<(i64, i64)> = changes
            .iter()
            .filter_map(|(partition, offset)| match offset {
                Some(offset) => self.file.commits.position(partition, offset),
                None => {
                    let current = self.store.get(connector, partition)?;
                    let (stream, _) = self.file.commits.position(partition, &current)?;
                    Some((stream, -1))
                }
            })
            .collect();
        self.store.alter(connector, changes)?;
        let at = crate::broker::now();
        lock(&self.file.journal).check(at, |checks| checks.on_source_offsets_altered(at, &altered));
        let mut recorded = self.file.commits.lock();
        let recorded = recorded.entry(connector.to_owned()).or_default();
        for (partition, offset) in changes {
            match offset {
                Some(offset) => {
                    recorded.insert(partition.to_string(), (partition.clone(), offset.clone()));
                }
                None => {
                    recorded.remove(&partition.to_string());
                }
            }
        }
        Ok(())
    }

    fn put(
        &mut self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError> {
        let commits: Vec<(i64, i64)> = offsets
            .iter()
            .filter_map(|(p, o)| self.file.commits.position(p, o))
            .collect();
        let stored = self.store.put(connector, offsets);
        let state = self.file.cluster.lock();
        let mut journal = lock(&self.file.journal);
        let at = crate::broker::now();
        let now = millis(at);
        match &stored {
            Ok(()) => {
                journal.check(at, |checks| {
                    checks.on_source_commit(at, &state.logs, &commits)
                });
                journal
                    .trace
                    .push(format!("{now} source commit {commits:?}"));
                let commits: Vec<String> = commits
                    .iter()
                    .map(|(stream, seq)| format!("stream-{stream}:{seq}"))
                    .collect();
                let lane = format!("worker-{}", self.worker);
                journal.timeline.mark(
                    (LaneKind::Worker, &lane),
                    at,
                    MarkKind::Commit,
                    "source commit",
                    format!(
                        "{connector} commits its source offsets up to {}",
                        commits.join(", ")
                    ),
                );
                let mut recorded = self.file.commits.lock();
                let recorded = recorded.entry(connector.to_owned()).or_default();
                for (partition, offset) in offsets {
                    recorded.insert(partition.to_string(), (partition.clone(), offset.clone()));
                }
            }
            Err(e) => journal
                .trace
                .push(format!("{now} source commit {commits:?} failed: {e}")),
        }
        stored
    }
}
