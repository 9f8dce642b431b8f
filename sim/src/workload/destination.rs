//! The sink destination: an external store the `StoreSink` connector writes to, living outside the worker
//! hosts so it survives their crashes, as a database would.
//!
//! It keeps every durable write with the writer's identity, worker and delivery epoch, and when each epoch
//! began (the rewind that started it), so the oracle can check order, compare what was committed in Kafka
//! with what was durable at that moment, and judge each record written again. The harness arms its faults
//! (a stalled or failing flush); the store notes which worker each struck, and when.
//!
//! A sink may also keep its offsets here, written atomically with its records, as an exactly-once sink
//! keeps them in its database: opening a partition claims it (a write from an instance that lost its
//! claim is refused, so a zombie cannot write behind its successor) and reads where delivery resumes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::strikes::Strikes;
use crate::broker::now;
use crate::protocol::Tp;

/// One record made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub tp: Tp,
    pub offset: i64,
    pub value: String,
    /// The task instance that wrote it (see [`DestinationStore::register_writer`]).
    pub task: String,
    /// The worker the task instance runs on.
    pub worker: usize,
    /// The task's delivery epoch: it advances when partitions are assigned and after a failed flush (both
    /// rewind delivery to the committed offset).
    pub epoch: u64,
    pub at: Duration,
}

/// A record a destination applied as an upsert: `key` holds the record at `tp`/`offset` from `at` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub key: String,
    pub tp: Tp,
    pub offset: i64,
    pub value: String,
    pub at: Duration,
}

/// A fault the harness arms; the next flush that sees it suffers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The flush takes this long before it writes.
    StallFlush(Duration),
    /// The next `put` takes this long.
    StallPut(Duration),
    /// The flush fails (a sync error): nothing of it is written.
    FailFlush,
    /// The next `put` fails for good (the destination refuses the task): the task fails, and its
    /// `task.restart.policy` restarts it.
    FailPut,
}

/// A write refused by the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The writer's claim on the partition was taken by another instance (see [`DestinationStore::claim`]).
    #[error("{tp} is claimed by {owner}: this writer was replaced")]
    Fenced { tp: Tp, owner: String },
}

/// What opening a partition found in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub tp: Tp,
    /// The offset after the last record stored with its offset, where delivery must resume.
    pub stored: Option<i64>,
    /// Kafka's committed offset for the sink's group, as last seen by the harness (see
    /// [`DestinationStore::note_kafka_commit`]): where the consumer would resume without a rewind.
    pub kafka_committed: Option<i64>,
}

/// A partition whose offsets a sink keeps in the destination.
#[derive(Debug)]
struct Stored {
    /// The offset after the last record written with offsets.
    next: Option<i64>,
    /// The writer instance that claimed it last.
    owner: String,
}

#[derive(Debug, Default)]
struct Inner {
    writes: Vec<Write>,
    durable: BTreeMap<Tp, BTreeSet<i64>>,
    /// Per partition, the offset after the contiguous durable prefix.
    contiguous: BTreeMap<Tp, i64>,
    faults: VecDeque<StoreFault>,
    /// The worker of each registered writer.
    workers: BTreeMap<String, usize>,
    /// When each delivery epoch (writer, epoch) began: at some time between the two.
    epochs: BTreeMap<(String, u64), (Duration, Duration)>,
    stored: BTreeMap<Tp, Stored>,
    kafka_committed: BTreeMap<Tp, i64>,
    /// Flushes under way, for coverage ([`crate::coverage::Event::RebalanceDuringFlush`]).
    flushing: usize,
    /// Workers whose sink task failed for good and has not started again since.
    failed: BTreeSet<usize>,
    /// What a destination that applies records by key said it applied, in order.
    upserts: Vec<Upsert>,
}

impl Inner {
    fn append(
        &mut self,
        task: &str,
        epoch: u64,
        records: impl IntoIterator<Item = (Tp, i64, String)>,
    ) {
        let at = now();
        let worker = self.workers.get(task).copied().unwrap_or_default();
        for (tp, offset, value) in records {
            let set = self.durable.entry(tp.clone()).or_default();
            set.insert(offset);
            let mut next = self.contiguous.get(&tp).copied().unwrap_or(0);
            let set = &self.durable[&tp];
            while set.contains(&next) {
                next += 1;
            }
            self.contiguous.insert(tp.clone(), next);
            self.writes.push(Write {
                tp,
                offset,
                value,
                task: task.to_owned(),
                worker,
                epoch,
                at,
            });
        }
    }
}

/// A flush under way; it ends when this is dropped (also when the task's host crashes mid-flush).
pub struct Flushing(Arc<DestinationStore>);

impl Drop for Flushing {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.flushing = inner.flushing.saturating_sub(1);
    }
}

#[derive(Debug, Default)]
pub struct DestinationStore {
    inner: Mutex<Inner>,
    strikes: Strikes,
    /// Whether the destination rejects some records ([`super::rejected`]): the sink reports them as
    /// errant, and they go to its dead letter queue.
    rejects: AtomicBool,
}

impl DestinationStore {
    /// Makes the destination reject some records (the `dead-letters` scenario).
    pub fn reject_records(&self) {
        self.rejects.store(true, Ordering::SeqCst);
    }

    /// Whether the destination rejects this record (by its value), as [`reject_records`](Self::reject_records) asked.
    pub fn rejects(&self, value: &[u8]) -> bool {
        self.rejects.load(Ordering::SeqCst)
            && super::parse_value(value).is_some_and(|(_, seq)| super::rejected(seq))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A name for a new writer on `worker`: every task instance gets its own (`task#n`), as tasks of the
    /// same name run in several workers and again after a restart.
    pub fn register_writer(&self, task: &str, worker: usize) -> String {
        let mut inner = self.lock();
        let name = format!("{task}#{}", inner.workers.len() + 1);
        inner.workers.insert(name.clone(), worker);
        name
    }

    /// Names a writer on `worker` that is no task instance (a worker host writing to an external system).
    pub fn name_writer(&self, name: &str, worker: usize) {
        self.lock().workers.insert(name.to_owned(), worker);
    }

    /// A writer's delivery epoch begins now: its consumer was just positioned (partitions assigned) or
    /// rewound (after a failed flush), and what it delivers next comes from there.
    pub fn rewound(&self, task: &str, epoch: u64) {
        let now = now();
        self.rewound_between(task, epoch, now, now);
    }

    /// A writer's delivery epoch began at some time between `from` and `to`: a writer that does not say
    /// when it rewinds is seen to, where its writes go back to an earlier offset.
    pub fn rewound_between(&self, task: &str, epoch: u64, from: Duration, to: Duration) {
        self.lock()
            .epochs
            .insert((task.to_owned(), epoch), (from, to));
    }

    /// When each delivery epoch (writer, epoch) began: at some time between the two.
    pub fn epoch_starts(&self) -> BTreeMap<(String, u64), (Duration, Duration)> {
        self.lock().epochs.clone()
    }

    /// The faults that struck, with the worker each struck.
    pub fn strikes(&self) -> &Strikes {
        &self.strikes
    }

    /// Durably appends records, in order.
    pub fn write(
        &self,
        task: &str,
        epoch: u64,
        records: impl IntoIterator<Item = (Tp, i64, String)>,
    ) {
        self.lock().append(task, epoch, records);
    }

    /// Claims partitions for `writer` (a writer that held them before can no longer write them) and
    /// returns what each holds: one transaction, so no write of the previous owner lands after it.
    pub fn claim(&self, writer: &str, partitions: &[Tp]) -> Vec<Claim> {
        let mut inner = self.lock();
        partitions
            .iter()
            .map(|tp| {
                let stored = inner.stored.entry(tp.clone()).or_insert(Stored {
                    next: None,
                    owner: String::new(),
                });
                stored.owner = writer.to_owned();
                let stored = stored.next;
                Claim {
                    tp: tp.clone(),
                    stored,
                    kafka_committed: inner.kafka_committed.get(tp).copied(),
                }
            })
            .collect()
    }

    /// Durably appends records and, in the same transaction, the offset after each partition's last one;
    /// refused as a whole if `writer` no longer holds the claim on one of the partitions.
    pub fn write_with_offsets(
        &self,
        writer: &str,
        epoch: u64,
        records: Vec<(Tp, i64, String)>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let mut next: BTreeMap<Tp, i64> = BTreeMap::new();
        for (tp, offset, _) in &records {
            let after = next.entry(tp.clone()).or_insert(offset + 1);
            *after = (*after).max(offset + 1);
        }
        for tp in next.keys() {
            let owner = inner.stored.get(tp).map(|s| s.owner.as_str());
            if owner != Some(writer) {
                return Err(StoreError::Fenced {
                    tp: tp.clone(),
                    owner: owner.unwrap_or("nobody").to_owned(),
                });
            }
        }
        inner.append(writer, epoch, records);
        for (tp, after) in next {
            if let Some(stored) = inner.stored.get_mut(&tp) {
                stored.next = Some(after);
            }
        }
        Ok(())
    }

    /// The stored offsets of those `partitions` that `writer` still holds.
    pub fn stored_offsets<'a>(
        &self,
        writer: &str,
        partitions: impl IntoIterator<Item = &'a Tp>,
    ) -> BTreeMap<Tp, i64> {
        let inner = self.lock();
        partitions
            .into_iter()
            .filter_map(|tp| {
                let stored = inner.stored.get(tp).filter(|s| s.owner == writer)?;
                Some((tp.clone(), stored.next?))
            })
            .collect()
    }

    /// The harness passes on each offset commit of the sink's group, so a sink can tell whether a rewind
    /// it asks for moves the consumer (coverage only: no sink decision depends on it).
    pub fn note_kafka_commit(&self, offsets: &[(Tp, i64)]) {
        let mut inner = self.lock();
        for (tp, offset) in offsets {
            inner.kafka_committed.insert(tp.clone(), *offset);
        }
    }

    /// Marks a flush under way until the returned guard is dropped.
    pub fn flushing(self: &Arc<Self>) -> Flushing {
        self.lock().flushing += 1;
        Flushing(self.clone())
    }

    /// Whether a sink task is flushing now.
    pub fn flush_in_progress(&self) -> bool {
        self.lock().flushing > 0
    }

    /// The offset after the longest run of durable offsets from 0 (records of a log without gaps).
    pub fn contiguous_end(&self, tp: &Tp) -> i64 {
        self.lock().contiguous.get(tp).copied().unwrap_or(0)
    }

    /// The first of `offsets` (a partition's records, in order) that is not durable.
    pub fn first_missing(&self, tp: &Tp, offsets: impl IntoIterator<Item = i64>) -> Option<i64> {
        let inner = self.lock();
        let durable = inner.durable.get(tp);
        offsets
            .into_iter()
            .find(|offset| !durable.is_some_and(|set| set.contains(offset)))
    }

    /// The destination's `key` now holds the record at `tp`/`offset` (also [`write`](Self::write) it).
    pub fn upsert(&self, key: &str, tp: Tp, offset: i64, value: &str) {
        self.lock().upserts.push(Upsert {
            key: key.to_owned(),
            tp,
            offset,
            value: value.to_owned(),
            at: now(),
        });
    }

    /// Every upsert, in the order applied.
    pub fn upserts(&self) -> Vec<Upsert> {
        self.lock().upserts.clone()
    }

    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    pub fn arm(&self, fault: StoreFault) {
        self.lock().faults.push_back(fault);
    }

    /// A sink task on `worker` failed for good.
    pub fn task_failed(&self, worker: usize) {
        self.lock().failed.insert(worker);
    }

    /// A sink task on `worker` started: whether it is the restart of one that failed for good.
    pub fn task_started(&self, worker: usize) -> bool {
        self.lock().failed.remove(&worker)
    }

    /// Takes the next armed fault of the kind `pick` accepts.
    pub fn take_fault(&self, pick: impl Fn(&StoreFault) -> bool) -> Option<StoreFault> {
        let mut inner = self.lock();
        let index = inner.faults.iter().position(pick)?;
        inner.faults.remove(index)
    }
}
