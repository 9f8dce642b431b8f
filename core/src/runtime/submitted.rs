//! `SubmittedRecords`, as in Kafka Connect: source records handed to the producer but not yet committed,
//! queued per source partition so that only each partition's contiguous acknowledged prefix is committed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::record::{SourceOffset, SourcePartition};

/// Queue ids are unique in the process, so a handle from another tracker, or from a queue that has since been
/// dropped, never matches a live record.
static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(0);

/// A submitted record, to pass to [`SubmittedRecords::ack`] when the producer acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Submitted {
    queue: u64,
    seq: u64,
}

#[derive(Debug)]
struct Slot {
    offset: SourceOffset,
    acked: bool,
}

/// The records of one source partition in submission order.
#[derive(Debug)]
struct PartitionQueue {
    id: u64,
    partition: SourcePartition,
    /// Sequence number of the front record; records before it have been committed.
    head: u64,
    records: VecDeque<Slot>,
    /// The offset of the newest record of the acknowledged prefix already removed from `records`,
    /// and how many records that prefix held, until `committable` reports them.
    ready: Option<SourceOffset>,
    ready_count: usize,
}

impl PartitionQueue {
    /// Moves the acknowledged prefix out of `records`, so memory holds only unacknowledged records
    /// and those queued behind them, however long the commit interval.
    fn compact(&mut self) {
        while self.records.front().is_some_and(|slot| slot.acked) {
            if let Some(slot) = self.records.pop_front() {
                self.ready = Some(slot.offset);
                self.ready_count += 1;
                self.head += 1;
            }
        }
    }
}

/// Offsets that may be committed now, with counts for logging and metrics (Kafka's `CommittableOffsets`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommittableOffsets {
    /// The newest committable offset of each partition that has one, in the order the partitions' queues
    /// were created.
    pub offsets: Vec<(SourcePartition, SourceOffset)>,
    /// Records removed from the tracker by this call.
    pub committable_messages: usize,
    /// Records still waiting: unacknowledged, or acknowledged behind an unacknowledged one.
    pub uncommittable_messages: usize,
    /// The partition with the most waiting records, if any record is waiting.
    pub largest_deque_partition: Option<SourcePartition>,
    pub largest_deque_size: usize,
}

impl CommittableOffsets {
    /// Whether there is no offset to commit.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Merges `newer` into these offsets, as when a commit failed and its offsets are retried with the next:
    /// `newer`'s offset wins per partition, committable counts add up and the waiting counts are `newer`'s.
    pub fn updated_with(mut self, newer: CommittableOffsets) -> CommittableOffsets {
        for (partition, offset) in newer.offsets {
            match self
                .offsets
                .iter_mut()
                .find(|(p, _)| p.same(&partition) || *p == partition)
            {
                Some(entry) => entry.1 = offset,
                None => self.offsets.push((partition, offset)),
            }
        }
        CommittableOffsets {
            offsets: self.offsets,
            committable_messages: self.committable_messages + newer.committable_messages,
            uncommittable_messages: newer.uncommittable_messages,
            largest_deque_partition: newer.largest_deque_partition,
            largest_deque_size: newer.largest_deque_size,
        }
    }
}

/// Tracks submitted source records per source partition until their offsets are committed.
#[derive(Debug, Default)]
pub struct SubmittedRecords {
    /// Live queues, in creation order, hence sorted by id.
    queues: Vec<PartitionQueue>,
    /// Index of the queue the last submission went to: tasks usually send runs of one partition.
    last: usize,
}

impl SubmittedRecords {
    pub fn new() -> SubmittedRecords {
        SubmittedRecords::default()
    }

    /// Records a record sent to the producer; ack the returned handle when the producer confirms it.
    pub fn submit(&mut self, partition: SourcePartition, offset: SourceOffset) -> Submitted {
        let queue = self.queue_for(partition);
        let seq = queue.head + queue.records.len() as u64;
        queue.records.push_back(Slot {
            offset,
            acked: false,
        });
        Submitted {
            queue: queue.id,
            seq,
        }
    }

    /// The source partition and offset of a submitted record not yet committed.
    pub fn get(&self, handle: Submitted) -> Option<(&SourcePartition, &SourceOffset)> {
        let index = self
            .queues
            .binary_search_by_key(&handle.queue, |queue| queue.id)
            .ok()?;
        let queue = self.queues.get(index)?;
        let position = usize::try_from(handle.seq.checked_sub(queue.head)?).ok()?;
        let slot = queue.records.get(position)?;
        Some((&queue.partition, &slot.offset))
    }

    /// Marks a record acknowledged. Acking twice, or a record already committed or unknown, does nothing.
    pub fn ack(&mut self, handle: Submitted) {
        let Ok(index) = self
            .queues
            .binary_search_by_key(&handle.queue, |queue| queue.id)
        else {
            return;
        };
        let Some(queue) = self.queues.get_mut(index) else {
            return;
        };
        let Some(position) = handle
            .seq
            .checked_sub(queue.head)
            .and_then(|p| usize::try_from(p).ok())
        else {
            return;
        };
        if let Some(slot) = queue.records.get_mut(position) {
            slot.acked = true;
            if position == 0 {
                queue.compact();
            }
        }
    }

    /// Removes each partition's contiguous prefix of acknowledged records and returns the offset of the last
    /// one removed per partition. Queues left empty are dropped.
    pub fn committable(&mut self) -> CommittableOffsets {
        let mut result = CommittableOffsets::default();
        for queue in &mut self.queues {
            queue.compact();
            let removed = std::mem::take(&mut queue.ready_count);
            if let Some(offset) = queue.ready.take() {
                result.offsets.push((queue.partition.clone(), offset));
            }
            let waiting = queue.records.len();
            result.committable_messages += removed;
            result.uncommittable_messages += waiting;
            if waiting > result.largest_deque_size {
                result.largest_deque_size = waiting;
                result.largest_deque_partition = Some(queue.partition.clone());
            }
        }
        self.queues.retain(|queue| !queue.records.is_empty());
        self.last = 0;
        result
    }

    /// The queue of `partition`, found by pointer first and by contents second, or a new one.
    fn queue_for(&mut self, partition: SourcePartition) -> &mut PartitionQueue {
        let found = match self.queues.get(self.last) {
            Some(queue) if queue.partition.same(&partition) => Some(self.last),
            _ => self
                .queues
                .iter()
                .position(|queue| queue.partition.same(&partition))
                .or_else(|| {
                    self.queues
                        .iter()
                        .position(|queue| queue.partition == partition)
                }),
        };
        let index = match found {
            Some(index) => index,
            None => {
                self.queues.push(PartitionQueue {
                    id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
                    partition: partition.clone(),
                    head: 0,
                    records: VecDeque::new(),
                    ready: None,
                    ready_count: 0,
                });
                self.queues.len() - 1
            }
        };
        self.last = index;
        let queue = &mut self.queues[index];
        if !queue.partition.same(&partition) {
            // Equal contents in a new allocation: keep the caller's, so its next submission takes the fast path.
            queue.partition = partition;
        }
        queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use serde_json::json;

    fn partition(name: &str) -> SourcePartition {
        SourcePartition::single("filename", name)
    }

    fn offset(position: u64) -> SourceOffset {
        SourceOffset::single("position", position)
    }

    fn offsets_of(result: &CommittableOffsets) -> Vec<(String, u64)> {
        result
            .offsets
            .iter()
            .map(|(p, o)| {
                (
                    p.get("filename")
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    o.get("position")
                        .and_then(|v| v.as_u64())
                        .unwrap_or(u64::MAX),
                )
            })
            .collect()
    }

    #[test]
    fn in_order_acks_commit_the_last_offset() {
        let mut records = SubmittedRecords::new();
        let a = partition("a");
        let handles: Vec<_> = (1..=3)
            .map(|i| records.submit(a.clone(), offset(i)))
            .collect();
        for &h in &handles {
            records.ack(h);
        }
        let result = records.committable();
        assert_eq!(offsets_of(&result), vec![("a".to_owned(), 3)]);
        assert_eq!(result.committable_messages, 3);
        assert_eq!(result.uncommittable_messages, 0);
        assert_eq!(result.largest_deque_partition, None);
        assert_eq!(result.largest_deque_size, 0);
        assert_eq!(result.uncommittable_messages, 0);
        assert!(records.committable().is_empty());
    }

    #[test]
    fn an_unacked_record_holds_back_later_acked_ones() {
        let mut records = SubmittedRecords::new();
        let a = partition("a");
        let h1 = records.submit(a.clone(), offset(1));
        let h2 = records.submit(a.clone(), offset(2));
        let h3 = records.submit(a.clone(), offset(3));
        records.ack(h2);
        records.ack(h3);
        let result = records.committable();
        assert!(result.is_empty());
        assert_eq!(result.committable_messages, 0);
        assert_eq!(result.uncommittable_messages, 3);
        assert_eq!(result.largest_deque_size, 3);
        assert_eq!(result.largest_deque_partition, Some(a.clone()));
        records.ack(h1);
        assert_eq!(
            offsets_of(&records.committable()),
            vec![("a".to_owned(), 3)]
        );
    }

    #[test]
    fn partial_prefix_is_committed() {
        let mut records = SubmittedRecords::new();
        let a = partition("a");
        let h1 = records.submit(a.clone(), offset(1));
        let h2 = records.submit(a.clone(), offset(2));
        let _h3 = records.submit(a.clone(), offset(3));
        let h4 = records.submit(a.clone(), offset(4));
        records.ack(h4);
        records.ack(h1);
        records.ack(h2);
        let result = records.committable();
        assert_eq!(offsets_of(&result), vec![("a".to_owned(), 2)]);
        assert_eq!(result.committable_messages, 2);
        assert_eq!(result.uncommittable_messages, 2);
    }

    #[test]
    fn partitions_are_independent_and_ordered_by_first_submission() {
        let mut records = SubmittedRecords::new();
        let (b, a, c) = (partition("b"), partition("a"), partition("c"));
        let b1 = records.submit(b.clone(), offset(10));
        let a1 = records.submit(a.clone(), offset(1));
        let c1 = records.submit(c.clone(), offset(100));
        let _c2 = records.submit(c.clone(), offset(101));
        let a2 = records.submit(a.clone(), offset(2));
        records.ack(a2);
        records.ack(c1);
        records.ack(a1);
        records.ack(b1);
        let result = records.committable();
        assert_eq!(
            offsets_of(&result),
            vec![
                ("b".to_owned(), 10),
                ("a".to_owned(), 2),
                ("c".to_owned(), 100)
            ]
        );
        assert_eq!(result.committable_messages, 4);
        assert_eq!(result.uncommittable_messages, 1);
        assert_eq!(result.largest_deque_partition, Some(c));
        assert_eq!(result.largest_deque_size, 1);
    }

    #[test]
    fn largest_deque_is_the_first_with_most_waiting_records() {
        let mut records = SubmittedRecords::new();
        for name in ["a", "b", "c"] {
            records.submit(partition(name), offset(1));
        }
        records.submit(partition("b"), offset(2));
        records.submit(partition("c"), offset(2));
        let result = records.committable();
        assert_eq!(result.largest_deque_partition, Some(partition("b")));
        assert_eq!(result.largest_deque_size, 2);
        assert_eq!(result.uncommittable_messages, 5);
    }

    #[test]
    fn double_stale_and_foreign_acks_are_no_ops() {
        let mut records = SubmittedRecords::new();
        let mut other = SubmittedRecords::new();
        let a = partition("a");
        let foreign = other.submit(a.clone(), offset(1));
        let h1 = records.submit(a.clone(), offset(1));
        let h2 = records.submit(a.clone(), offset(2));
        records.ack(foreign);
        assert!(records.committable().is_empty());
        records.ack(h1);
        records.ack(h1);
        assert_eq!(
            offsets_of(&records.committable()),
            vec![("a".to_owned(), 1)]
        );
        records.ack(h1);
        let result = records.committable();
        assert!(result.is_empty());
        assert_eq!(result.uncommittable_messages, 1);
        records.ack(h2);
        assert_eq!(
            offsets_of(&records.committable()),
            vec![("a".to_owned(), 2)]
        );
        records.ack(h2);
        assert!(other.committable().is_empty());
    }

    #[test]
    fn handles_of_a_dropped_queue_do_not_touch_its_successor() {
        let mut records = SubmittedRecords::new();
        let a = partition("a");
        let old = records.submit(a.clone(), offset(1));
        records.ack(old);
        assert_eq!(records.committable().committable_messages, 1);
        let new = records.submit(a.clone(), offset(2));
        records.ack(old);
        assert!(records.committable().is_empty());
        records.ack(new);
        assert_eq!(
            offsets_of(&records.committable()),
            vec![("a".to_owned(), 2)]
        );
    }

    #[test]
    fn emptied_partition_moves_behind_partitions_still_waiting() {
        let mut records = SubmittedRecords::new();
        let a1 = records.submit(partition("a"), offset(1));
        let b1 = records.submit(partition("b"), offset(1));
        let _b2 = records.submit(partition("b"), offset(2));
        records.ack(a1);
        records.ack(b1);
        records.committable();
        let a2 = records.submit(partition("a"), offset(2));
        records.ack(a2);
        let b3 = records.submit(partition("b"), offset(3));
        records.ack(b3);
        let result = records.committable();
        assert_eq!(offsets_of(&result), vec![("a".to_owned(), 2)]);
        assert_eq!(result.uncommittable_messages, 2);
    }

    #[test]
    fn equal_partitions_in_new_allocations_share_a_queue() {
        let mut records = SubmittedRecords::new();
        let mut forward = serde_json::Map::new();
        forward.insert("table".into(), json!("t"));
        forward.insert("protocol".into(), json!("1"));
        let mut backward = serde_json::Map::new();
        backward.insert("protocol".into(), json!("1"));
        backward.insert("table".into(), json!("t"));
        let h1 = records.submit(SourcePartition::new(forward), offset(1));
        let h2 = records.submit(SourcePartition::new(backward.clone()), offset(2));
        let _h3 = records.submit(SourcePartition::new(backward), offset(3));
        records.ack(h2);
        let result = records.committable();
        assert!(result.is_empty());
        assert_eq!(result.largest_deque_size, 3);
        records.ack(h1);
        let result = records.committable();
        assert_eq!(result.offsets.len(), 1);
        assert_eq!(result.offsets[0].1, offset(2));
    }

    #[test]
    fn updated_with_keeps_newest_offset_per_partition() {
        let older = CommittableOffsets {
            offsets: vec![(partition("a"), offset(1)), (partition("b"), offset(5))],
            committable_messages: 6,
            uncommittable_messages: 3,
            largest_deque_partition: Some(partition("a")),
            largest_deque_size: 2,
        };
        let newer = CommittableOffsets {
            offsets: vec![(partition("c"), offset(7)), (partition("a"), offset(4))],
            committable_messages: 4,
            uncommittable_messages: 1,
            largest_deque_partition: Some(partition("c")),
            largest_deque_size: 1,
        };
        let merged = older.updated_with(newer);
        assert_eq!(
            offsets_of(&merged),
            vec![
                ("a".to_owned(), 4),
                ("b".to_owned(), 5),
                ("c".to_owned(), 7)
            ]
        );
        assert_eq!(merged.committable_messages, 10);
        assert_eq!(merged.uncommittable_messages, 1);
        assert_eq!(merged.largest_deque_partition, Some(partition("c")));
        assert_eq!(merged.largest_deque_size, 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Submit to partition `p`, reusing its shared allocation or making an equal new one.
        Submit {
            p: usize,
            fresh: bool,
        },
        /// Ack the submitted record picked by this index (modulo the number of submissions).
        Ack(usize),
        Commit,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..3usize, any::<bool>()).prop_map(|(p, fresh)| Op::Submit { p, fresh }),
            3 => any::<usize>().prop_map(Op::Ack),
            1 => Just(Op::Commit),
        ]
    }

    fn model_partition(p: usize) -> SourcePartition {
        let mut map = serde_json::Map::new();
        map.insert("p".into(), json!(p));
        map.insert("kind".into(), json!("model"));
        SourcePartition::new(map)
    }

    /// The reference: every record ever submitted per partition, with how many have been committed.
    #[derive(Default)]
    struct Model {
        records: [Vec<(u64, bool)>; 3],
        committed: [usize; 3],
        /// Partitions with a live queue, in queue creation order.
        live: Vec<usize>,
        last_committed: [Option<u64>; 3],
    }

    impl Model {
        fn waiting(&self, p: usize) -> usize {
            self.records[p].len() - self.committed[p]
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn commits_exactly_the_acked_prefix(ops in proptest::collection::vec(op(), 0..300)) {
            let mut records = SubmittedRecords::new();
            let mut model = Model::default();
            let shared: Vec<SourcePartition> = (0..3).map(model_partition).collect();
            let mut handles: Vec<(Submitted, usize, usize)> = Vec::new();
            let mut next_offset = 0u64;
            for op in ops {
                match op {
                    Op::Submit { p, fresh } => {
                        let partition = if fresh { model_partition(p) } else { shared[p].clone() };
                        next_offset += 1;
                        let handle = records.submit(partition, offset(next_offset));
                        handles.push((handle, p, model.records[p].len()));
                        model.records[p].push((next_offset, false));
                        if !model.live.contains(&p) {
                            model.live.push(p);
                        }
                    }
                    Op::Ack(pick) => {
                        if !handles.is_empty() {
                            let (handle, p, i) = handles[pick % handles.len()];
                            records.ack(handle);
                            model.records[p][i].1 = true;
                        }
                    }
                    Op::Commit => {
                        let result = records.committable();
                        let mut expected = Vec::new();
                        let (mut committable, mut waiting) = (0, 0);
                        let (mut largest, mut largest_partition) = (0, None);
                        for &p in &model.live {
                            let start = model.committed[p];
                            let acked = model.records[p][start..].iter().take_while(|r| r.1).count();
                            if acked > 0 {
                                let newest = model.records[p][start + acked - 1].0;
                                expected.push((model_partition(p), offset(newest)));
                                model.committed[p] = start + acked;
                            }
                            committable += acked;
                            waiting += model.waiting(p);
                            if model.waiting(p) > largest {
                                largest = model.waiting(p);
                                largest_partition = Some(model_partition(p));
                            }
                        }
                        for (partition, committed) in &result.offsets {
                            let p = partition.get("p").and_then(|v| v.as_u64()).unwrap_or(99) as usize;
                            let value = committed.get("position").and_then(|v| v.as_u64()).unwrap_or(0);
                            prop_assert!(p < 3, "unknown partition {}", partition);
                            let index = model.records[p].iter().position(|r| r.0 == value);
                            prop_assert!(index.is_some(), "offset {} was never submitted to {}", value, p);
                            let index = index.unwrap_or_default();
                            prop_assert!(
                                model.records[p][..=index].iter().all(|r| r.1),
                                "offset {} is unacked or behind an unacked record", value
                            );
                            if let Some(previous) = model.last_committed[p] {
                                prop_assert!(value > previous, "offset went back from {} to {}", previous, value);
                            }
                            model.last_committed[p] = Some(value);
                        }
                        prop_assert_eq!(&result.offsets, &expected);
                        prop_assert_eq!(result.committable_messages, committable);
                        prop_assert_eq!(result.uncommittable_messages, waiting);
                        prop_assert_eq!(result.largest_deque_size, largest);
                        prop_assert_eq!(&result.largest_deque_partition, &largest_partition);
                        let waiting_of = |p: usize| model.records[p].len() - model.committed[p];
                        model.live.retain(|&p| waiting_of(p) > 0);
                    }
                }
            }
        }
    }
}
