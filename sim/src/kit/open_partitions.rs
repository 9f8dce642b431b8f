//! Which partitions each worker's tasks of the sink under test hold open, as the runtime tells them
//! (`open` on assignment, `close` when a partition is revoked or lost), so the oracle can find writes a
//! worker made durable after the runtime took the partition away from it: `written-after-close`.
//!
//! A member thrown out of its group may write for a while before it notices (a zombie), and nothing but
//! fencing in the destination stops that. But once the runtime has closed a partition, the task knows:
//! what it still holds of that partition must be dropped, or the new owner's writes can be overwritten
//! by stale ones.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::broker::now;
use crate::oracle::{Anomaly, AnomalyKind};
use crate::protocol::Tp;
use crate::workload::Write;

/// When a worker held a partition closed: from the close to the next open, or to the end.
type ClosedSpan = (Duration, Option<Duration>);

#[derive(Debug, Default)]
struct Inner {
    /// Per (worker, partition): how many of the worker's tasks hold it open.
    open: BTreeMap<(usize, Tp), u32>,
    /// Per (worker, partition): the spans when no task of the worker held it after one had (from the
    /// close, to the next open or forever).
    closed: BTreeMap<(usize, Tp), Vec<ClosedSpan>>,
}

/// The open partitions of every worker.
#[derive(Debug, Default)]
pub struct OpenPartitions {
    inner: Mutex<Inner>,
}

impl OpenPartitions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A task on `worker` opened `partitions`.
    pub(crate) fn opened(&self, worker: usize, partitions: impl IntoIterator<Item = Tp>) {
        self.opened_at(worker, partitions, now());
    }

    fn opened_at(&self, worker: usize, partitions: impl IntoIterator<Item = Tp>, at: Duration) {
        let mut inner = self.lock();
        for tp in partitions {
            let key = (worker, tp);
            let count = inner.open.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                if let Some(span) = inner
                    .closed
                    .get_mut(&key)
                    .and_then(|spans| spans.last_mut())
                {
                    span.1.get_or_insert(at);
                }
            }
        }
    }

    /// A task on `worker` closed `partitions` (after writing what it would of them).
    pub(crate) fn closed(&self, worker: usize, partitions: impl IntoIterator<Item = Tp>) {
        self.closed_at(worker, partitions, now());
    }

    fn closed_at(&self, worker: usize, partitions: impl IntoIterator<Item = Tp>, at: Duration) {
        let mut inner = self.lock();
        for tp in partitions {
            let key = (worker, tp);
            let Some(count) = inner.open.get_mut(&key) else {
                continue;
            };
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.closed.entry(key).or_default().push((at, None));
            }
        }
    }

    /// `worker` crashed: its tasks are gone without closing anything, and what it opens after its restart
    /// starts afresh.
    pub(crate) fn crashed(&self, worker: usize) {
        self.lock().open.retain(|(w, _), _| *w != worker);
    }

    /// The writes made durable by a worker while it held the partition closed.
    pub(crate) fn check(&self, writes: &[Write]) -> Vec<Anomaly> {
        let inner = self.lock();
        writes
            .iter()
            .filter_map(|write| {
                let spans = inner.closed.get(&(write.worker, write.tp.clone()))?;
                let (closed, _) = spans
                    .iter()
                    .find(|(from, to)| *from < write.at && to.is_none_or(|to| write.at < to))?;
                Some(Anomaly {
                    kind: AnomalyKind::WrittenAfterClose,
                    detail: format!(
                        "worker-{} made {} offset {} durable at {} ms, after the runtime closed the partition on that worker at {} ms (revoked or lost) and before it opened it there again",
                        write.worker,
                        write.tp,
                        write.offset,
                        write.at.as_millis(),
                        closed.as_millis()
                    ),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(worker: usize, partition: i32, at: u64) -> Write {
        Write {
            tp: Tp::new("t", partition),
            offset: 7,
            value: "v".into(),
            task: format!("worker-{worker}"),
            worker,
            epoch: 1,
            at: Duration::from_millis(at),
        }
    }

    #[test]
    fn a_write_between_a_close_and_the_next_open_on_that_worker_is_an_anomaly() {
        let open = OpenPartitions::default();
        let p0 = || [Tp::new("t", 0)];
        open.opened_at(0, p0(), Duration::from_millis(100));
        open.closed_at(0, p0(), Duration::from_millis(200));
        open.opened_at(0, p0(), Duration::from_millis(300));
        let found = open.check(&[
            write(0, 0, 150),
            write(0, 0, 250),
            write(0, 0, 350),
            write(1, 0, 250),
            write(0, 1, 250),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::WrittenAfterClose);
        assert!(found[0].detail.contains("at 250 ms"), "{}", found[0].detail);
    }

    #[test]
    fn a_partition_another_task_of_the_worker_still_holds_is_not_closed_there() {
        let open = OpenPartitions::default();
        open.opened(0, [Tp::new("t", 0)]);
        open.opened(0, [Tp::new("t", 0)]);
        open.closed(0, [Tp::new("t", 0)]);
        assert!(open.check(&[write(0, 0, 0)]).is_empty());
        open.crashed(0);
        open.closed(0, [Tp::new("t", 0)]);
        assert!(open.check(&[write(0, 0, 0)]).is_empty());
    }
}
