//! The sink destination: an external store the `StoreSink` connector writes to, living outside the worker
//! hosts so it survives their crashes, as a database would.
//!
//! It keeps every durable write with the writer's identity, worker and delivery epoch, and when each epoch
//! began (the rewind that started it), so the oracle can check order, compare what was committed in Kafka
//! with what was durable at that moment, and judge each record written again. The harness arms its faults
//! (a stalled or failing flush); the store notes which worker each struck, and when.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
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

/// A fault the harness arms; the next flush that sees it suffers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The flush takes this long before it writes.
    StallFlush(Duration),
    /// The next `put` takes this long.
    StallPut(Duration),
    /// The flush fails (a sync error): nothing of it is written.
    FailFlush,
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
    /// When each delivery epoch (writer, epoch) began.
    epochs: BTreeMap<(String, u64), Duration>,
}

#[derive(Debug, Default)]
pub struct DestinationStore {
    inner: Mutex<Inner>,
    strikes: Strikes,
}

impl DestinationStore {
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

    /// A writer's delivery epoch begins now: its consumer was just positioned (partitions assigned) or
    /// rewound (after a failed flush), and what it delivers next comes from there.
    pub fn rewound(&self, task: &str, epoch: u64) {
        self.lock().epochs.insert((task.to_owned(), epoch), now());
    }

    /// When each delivery epoch (writer, epoch) began.
    pub fn epoch_starts(&self) -> BTreeMap<(String, u64), Duration> {
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
        let mut inner = self.lock();
        let at = now();
        let worker = inner.workers.get(task).copied().unwrap_or_default();
        for (tp, offset, value) in records {
            let set = inner.durable.entry(tp.clone()).or_default();
            set.insert(offset);
            let mut next = inner.contiguous.get(&tp).copied().unwrap_or(0);
            let set = &inner.durable[&tp];
            while set.contains(&next) {
                next += 1;
            }
            inner.contiguous.insert(tp.clone(), next);
            inner.writes.push(Write {
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

    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    pub fn arm(&self, fault: StoreFault) {
        self.lock().faults.push_back(fault);
    }

    /// Takes the next armed fault of the kind `pick` accepts.
    pub fn take_fault(&self, pick: impl Fn(&StoreFault) -> bool) -> Option<StoreFault> {
        let mut inner = self.lock();
        let index = inner.faults.iter().position(pick)?;
        inner.faults.remove(index)
    }
}
