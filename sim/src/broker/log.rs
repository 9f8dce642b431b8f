//! Topics and partition logs: append with idempotent-producer deduplication, transactional records and
//! their control markers, and reads under either isolation level.
//!
//! Acknowledged data is never lost: the log models a replicated cluster, so a broker restart keeps it,
//! and it has no retention, so every partition starts at offset 0.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::protocol::{ErrorCode, FetchedRecord, Isolation, ProduceBatch, Record, Tp};

/// Batches the broker remembers per producer and partition, as Kafka does: enough to recognize a retry of
/// any of the batches a producer may have in flight (`max.in.flight.requests.per.connection` <= 5).
const REMEMBERED_BATCHES: usize = 5;

/// A batch an idempotent producer appended to a partition.
#[derive(Debug, Clone, Copy)]
struct AppendedBatch {
    base_sequence: i64,
    base_offset: i64,
    records: usize,
}

/// An idempotent producer's state in one partition: its epoch and its latest batches, oldest first.
#[derive(Debug, Clone)]
struct ProducerBatches {
    epoch: i16,
    batches: VecDeque<AppendedBatch>,
}

/// Whether a read_committed consumer may see a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Visible since this simulated time: a plain append, or the commit of its transaction.
    Visible(Duration),
    /// In a transaction still open: read_committed readers stop before it (the last stable offset).
    Pending,
    /// Its transaction aborted: read_committed readers skip it.
    Aborted,
}

/// One offset of a partition: a record, or a transaction's control marker (which takes an offset, as in
/// Kafka, and is never returned as a record).
#[derive(Debug, Clone)]
pub enum Entry {
    Data {
        record: Record,
        producer_id: i64,
        epoch: i16,
        visibility: Visibility,
    },
    Marker {
        producer_id: i64,
        commit: bool,
    },
}

/// A record as a read_committed reader sees it, with who wrote it and when it became visible.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    pub offset: i64,
    pub record: &'a Record,
    pub visible_at: Duration,
    pub producer_id: i64,
    pub epoch: i16,
}

/// What one read found.
#[derive(Debug, Default)]
pub struct Read {
    pub records: Vec<FetchedRecord>,
    /// Per partition read, the offset to read from next (past markers and skipped records).
    pub next: Vec<(Tp, i64)>,
    /// Partitions whose position is before the log start or past the end.
    pub out_of_range: Vec<Tp>,
}

/// Every topic's partitions and the producer state idempotence needs.
#[derive(Debug, Default)]
pub struct Logs {
    topics: BTreeMap<String, Vec<Vec<Entry>>>,
    producers: BTreeMap<(i64, Tp), ProducerBatches>,
    next_producer_id: i64,
    /// Per partition, the log start where retention has deleted the records before it (0 elsewhere).
    /// The entries stay, for the oracle: readers cannot read them.
    starts: BTreeMap<Tp, i64>,
}

impl Logs {
    /// Creates a topic; `false` if it existed.
    pub fn create(&mut self, name: &str, partitions: i32) -> Result<bool, ErrorCode> {
        if partitions < 1 {
            return Err(ErrorCode::InvalidPartitions);
        }
        if self.topics.contains_key(name) {
            return Ok(false);
        }
        self.topics
            .insert(name.to_owned(), vec![Vec::new(); partitions as usize]);
        Ok(true)
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|p| p.len() as i32)
    }

    /// Every topic with its partition count, sorted by name.
    pub fn topics(&self) -> Vec<(String, i32)> {
        self.topics
            .iter()
            .map(|(name, partitions)| (name.clone(), partitions.len() as i32))
            .collect()
    }

    pub fn new_producer_id(&mut self) -> i64 {
        self.next_producer_id += 1;
        self.next_producer_id
    }

    fn partition(&self, tp: &Tp) -> Option<&Vec<Entry>> {
        self.topics
            .get(&*tp.topic)?
            .get(usize::try_from(tp.partition).ok()?)
    }

    fn partition_mut(&mut self, tp: &Tp) -> Option<&mut Vec<Entry>> {
        self.topics
            .get_mut(&*tp.topic)?
            .get_mut(usize::try_from(tp.partition).ok()?)
    }

    /// Appends a batch and returns the offset of its first record. A batch the producer already appended
    /// (a retry after a lost or failed response, among its last [`REMEMBERED_BATCHES`]) is not appended
    /// again: its original offset is returned, and `Ok((offset, false))` says so. A batch whose sequence
    /// does not follow the producer's last one in this partition (one before it is missing) is refused
    /// with `OUT_OF_ORDER_SEQUENCE_NUMBER`, as Kafka refuses it. A transactional batch's records stay
    /// [`Visibility::Pending`] until its transaction ends; a plain one is visible at `now`.
    pub fn append(
        &mut self,
        producer_id: i64,
        epoch: i16,
        transactional: bool,
        batch: ProduceBatch,
        now: Duration,
    ) -> Result<(i64, bool), ErrorCode> {
        let key = (producer_id, batch.tp.clone());
        // A new epoch numbers its batches from zero again.
        let known = self
            .producers
            .get(&key)
            .filter(|state| state.epoch == epoch)
            .map(|state| &state.batches);
        let expected = match known {
            Some(batches) => {
                if let Some(retry) = batches.iter().find(|b| {
                    b.base_sequence == batch.base_sequence && b.records == batch.records.len()
                }) {
                    return Ok((retry.base_offset, false));
                }
                batches
                    .back()
                    .map_or(0, |last| last.base_sequence + last.records as i64)
            }
            None => 0,
        };
        if batch.base_sequence != expected {
            return Err(ErrorCode::OutOfOrderSequence);
        }
        let log = self
            .partition_mut(&batch.tp)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        let base_offset = log.len() as i64;
        let records = batch.records.len();
        let visibility = if transactional {
            Visibility::Pending
        } else {
            Visibility::Visible(now)
        };
        log.extend(batch.records.into_iter().map(|record| Entry::Data {
            record,
            producer_id,
            epoch,
            visibility,
        }));
        let state = self
            .producers
            .entry(key)
            .and_modify(|state| {
                if state.epoch != epoch {
                    state.epoch = epoch;
                    state.batches.clear();
                }
            })
            .or_insert_with(|| ProducerBatches {
                epoch,
                batches: VecDeque::new(),
            });
        if state.batches.len() == REMEMBERED_BATCHES {
            state.batches.pop_front();
        }
        state.batches.push_back(AppendedBatch {
            base_sequence: batch.base_sequence,
            base_offset,
            records,
        });
        Ok((base_offset, true))
    }

    /// Ends a transaction in one partition: its records from `first` on become visible at `now` (commit)
    /// or aborted, and a control marker is appended.
    pub fn end_transaction(
        &mut self,
        tp: &Tp,
        producer_id: i64,
        first: i64,
        commit: bool,
        now: Duration,
    ) {
        let Some(log) = self.partition_mut(tp) else {
            return;
        };
        let start = usize::try_from(first).unwrap_or(0);
        for entry in log.iter_mut().skip(start) {
            if let Entry::Data {
                producer_id: p,
                visibility,
                ..
            } = entry
            {
                if *p == producer_id && *visibility == Visibility::Pending {
                    *visibility = if commit {
                        Visibility::Visible(now)
                    } else {
                        Visibility::Aborted
                    };
                }
            }
        }
        log.push(Entry::Marker {
            producer_id,
            commit,
        });
    }

    /// The offset the next entry of a partition gets (the high watermark).
    pub fn end_offset(&self, tp: &Tp) -> Result<i64, ErrorCode> {
        self.partition(tp)
            .map(|log| log.len() as i64)
            .ok_or(ErrorCode::UnknownTopicOrPartition)
    }

    /// The offset of a partition's first readable entry (the log start): 0 until retention deletes.
    pub fn start_offset(&self, tp: &Tp) -> Result<i64, ErrorCode> {
        self.partition(tp)
            .map(|_| self.log_start(tp))
            .ok_or(ErrorCode::UnknownTopicOrPartition)
    }

    /// Where retention has deleted a partition's records up to (0 until it deletes).
    fn log_start(&self, tp: &Tp) -> i64 {
        self.starts.get(tp).copied().unwrap_or(0)
    }

    /// Retention deletes a partition's records before `before` (at most up to its end), as time-based
    /// retention deletes old segments or DeleteRecords does; returns the new log start.
    pub fn delete_records(&mut self, tp: &Tp, before: i64) -> Result<i64, ErrorCode> {
        let end = self.end_offset(tp)?;
        let start = self.start_offset(tp)?.max(before.min(end));
        self.starts.insert(tp.clone(), start);
        Ok(start)
    }

    /// Up to `max` records of each partition from its position, partitions in the order given.
    pub fn read(
        &self,
        positions: &[(Tp, i64)],
        max: usize,
        isolation: Isolation,
    ) -> Result<Read, ErrorCode> {
        let mut read = Read::default();
        for (tp, position) in positions {
            let log = self
                .partition(tp)
                .ok_or(ErrorCode::UnknownTopicOrPartition)?;
            let log_start = self.log_start(tp);
            let start = match usize::try_from(*position) {
                Ok(start) if *position >= log_start && start <= log.len() => start,
                _ => {
                    read.out_of_range.push(tp.clone());
                    continue;
                }
            };
            let mut next = start;
            for entry in &log[start..] {
                if read.records.len() >= max {
                    break;
                }
                match entry {
                    Entry::Marker { .. } => {}
                    Entry::Data { visibility, .. }
                        if isolation == Isolation::ReadCommitted
                            && *visibility == Visibility::Pending =>
                    {
                        break;
                    }
                    Entry::Data { visibility, .. }
                        if isolation == Isolation::ReadCommitted
                            && *visibility == Visibility::Aborted => {}
                    Entry::Data { record, .. } => read.records.push(FetchedRecord {
                        tp: tp.clone(),
                        offset: next as i64,
                        record: record.clone(),
                    }),
                }
                next += 1;
            }
            if next > start {
                read.next.push((tp.clone(), next as i64));
            }
        }
        Ok(read)
    }

    /// Every entry of a partition, for the oracle.
    pub fn entries(&self, tp: &Tp) -> &[Entry] {
        self.partition(tp).map(Vec::as_slice).unwrap_or_default()
    }

    /// The records a read_committed reader sees in a partition, in offset order.
    pub fn committed_records(&self, tp: &Tp) -> impl Iterator<Item = Committed<'_>> {
        self.committed_records_from(tp, 0).0
    }

    /// The records a read_committed reader sees in a partition from offset `from` on, and the offset
    /// where it stops: the last stable offset (the first record of a transaction still open), or the log
    /// end. What such a reader sees below it never changes (the log only grows, and only open
    /// transactions end), so a reader following the log goes on from there.
    pub fn committed_records_from(
        &self,
        tp: &Tp,
        from: i64,
    ) -> (impl Iterator<Item = Committed<'_>>, i64) {
        let entries = self.entries(tp);
        let start = usize::try_from(from).unwrap_or(0).min(entries.len());
        let stable = entries[start..]
            .iter()
            .position(is_pending)
            .map_or(entries.len(), |pending| start + pending);
        let records = entries[start..stable]
            .iter()
            .enumerate()
            .filter_map(move |(i, entry)| match entry {
                Entry::Data {
                    record,
                    visibility: Visibility::Visible(at),
                    producer_id,
                    epoch,
                } => Some(Committed {
                    offset: (start + i) as i64,
                    record,
                    visible_at: *at,
                    producer_id: *producer_id,
                    epoch: *epoch,
                }),
                _ => None,
            });
        (records, stable as i64)
    }

    /// Offsets from `from` on of the records that are visible or may still become visible (in open
    /// transactions): what a reader may have read, whatever its isolation level, less what is aborted
    /// and what retention deleted (a sink owes nothing for records it could no longer read).
    pub fn live_offsets_from(&self, tp: &Tp, from: i64) -> impl Iterator<Item = i64> + '_ {
        let entries = self.entries(tp);
        let from = from.max(self.log_start(tp));
        let start = usize::try_from(from).unwrap_or(0).min(entries.len());
        entries[start..]
            .iter()
            .enumerate()
            .filter(|(_, entry)| is_live(entry))
            .map(move |(i, _)| (start + i) as i64)
    }

    /// One past the last record a read_committed reader sees in a partition: where a consumer that read
    /// everything commits (markers and aborted records after it are never delivered).
    pub fn committed_end(&self, tp: &Tp) -> i64 {
        self.committed_records(tp)
            .last()
            .map_or(0, |committed| committed.offset + 1)
    }
}

fn is_pending(entry: &Entry) -> bool {
    matches!(
        entry,
        Entry::Data {
            visibility: Visibility::Pending,
            ..
        }
    )
}

fn is_live(entry: &Entry) -> bool {
    matches!(
        entry,
        Entry::Data {
            visibility: Visibility::Visible(_) | Visibility::Pending,
            ..
        }
    )
}

/// A batch of records with these values, for tests of what reads the logs.
#[cfg(test)]
pub(crate) fn test_batch(tp: Tp, sequence: i64, values: &[&[u8]]) -> ProduceBatch {
    ProduceBatch {
        tp,
        base_sequence: sequence,
        records: values
            .iter()
            .map(|v| Record {
                key: None,
                value: Some(v.to_vec()),
                headers: Vec::new(),
                timestamp: 0,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sequence: i64, values: &[&str]) -> ProduceBatch {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        test_batch(Tp::new("t", 0), sequence, &values)
    }

    fn values(read: &Read) -> Vec<String> {
        read.records
            .iter()
            .map(|r| String::from_utf8(r.record.value.clone().unwrap_or_default()).unwrap())
            .collect()
    }

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn a_retried_batch_is_appended_once() {
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        assert_eq!(
            logs.append(producer, 0, false, batch(0, &["a", "b"]), NOW),
            Ok((0, true))
        );
        assert_eq!(
            logs.append(producer, 0, false, batch(0, &["a", "b"]), NOW),
            Ok((0, false))
        );
        assert_eq!(
            logs.append(producer, 0, false, batch(2, &["c"]), NOW),
            Ok((2, true))
        );
        assert_eq!(logs.end_offset(&Tp::new("t", 0)), Ok(3));
        assert_eq!(
            logs.append(producer, 0, false, batch(0, &["a"]), NOW),
            Err(ErrorCode::OutOfOrderSequence)
        );
        assert_eq!(
            logs.append(producer, 1, false, batch(0, &["d"]), NOW),
            Ok((3, true)),
            "a new epoch numbers from zero"
        );
    }

    #[test]
    fn batches_in_flight_are_recognized_when_retried_and_a_gap_is_refused() {
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        assert_eq!(
            logs.append(producer, 0, false, batch(1, &["b"]), NOW),
            Err(ErrorCode::OutOfOrderSequence),
            "a first batch must start at zero"
        );
        for seq in 0..6 {
            assert_eq!(
                logs.append(producer, 0, false, batch(seq, &["x"]), NOW),
                Ok((seq, true))
            );
        }
        assert_eq!(
            logs.append(producer, 0, false, batch(8, &["y"]), NOW),
            Err(ErrorCode::OutOfOrderSequence),
            "the batch numbered 6 is missing"
        );
        assert_eq!(
            logs.append(producer, 0, false, batch(1, &["x"]), NOW),
            Ok((1, false)),
            "a retry of any of the last five batches is deduplicated"
        );
        assert_eq!(
            logs.append(producer, 0, false, batch(0, &["x"]), NOW),
            Err(ErrorCode::OutOfOrderSequence),
            "older batches are forgotten"
        );
        assert_eq!(logs.end_offset(&Tp::new("t", 0)), Ok(6));
    }

    #[test]
    fn reads_start_at_the_position_and_stop_at_the_limit() {
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        logs.append(producer, 0, false, batch(0, &["a", "b", "c"]), NOW)
            .unwrap();
        let read = logs
            .read(&[(Tp::new("t", 0), 1)], 1, Isolation::ReadUncommitted)
            .unwrap();
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].offset, 1);
        assert_eq!(read.next, vec![(Tp::new("t", 0), 2)]);
        let past_the_end = logs
            .read(&[(Tp::new("t", 0), 4)], 10, Isolation::ReadUncommitted)
            .unwrap();
        assert_eq!(past_the_end.out_of_range, [Tp::new("t", 0)]);
    }

    #[test]
    fn deleted_records_cannot_be_read_and_owe_nothing() {
        let tp = Tp::new("t", 0);
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        logs.append(producer, 0, false, batch(0, &["a", "b", "c", "d"]), NOW)
            .unwrap();
        assert_eq!(logs.delete_records(&tp, 2), Ok(2));
        assert_eq!(logs.start_offset(&tp), Ok(2));
        assert_eq!(
            logs.delete_records(&tp, 1),
            Ok(2),
            "the log start never moves back"
        );
        let before = logs
            .read(&[(tp.clone(), 1)], 10, Isolation::ReadUncommitted)
            .unwrap();
        assert_eq!(before.out_of_range, std::slice::from_ref(&tp));
        assert!(before.records.is_empty());
        assert_eq!(
            values(
                &logs
                    .read(&[(tp.clone(), 2)], 10, Isolation::ReadUncommitted)
                    .unwrap()
            ),
            ["c", "d"]
        );
        assert_eq!(logs.live_offsets_from(&tp, 0).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(
            logs.committed_records(&tp).count(),
            4,
            "the oracle still sees every record"
        );
        assert_eq!(logs.delete_records(&tp, 10), Ok(4), "at most up to the end");
    }

    #[test]
    fn read_committed_stops_at_open_transactions_and_skips_aborted_ones() {
        let tp = Tp::new("t", 0);
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let (aborting, committing) = (logs.new_producer_id(), logs.new_producer_id());
        logs.append(aborting, 0, true, batch(0, &["x1"]), NOW)
            .unwrap();
        logs.append(committing, 0, true, batch(0, &["c1"]), NOW)
            .unwrap();
        let all = [(tp.clone(), 0)];
        assert_eq!(
            values(&logs.read(&all, 10, Isolation::ReadUncommitted).unwrap()),
            ["x1", "c1"]
        );
        let open = logs.read(&all, 10, Isolation::ReadCommitted).unwrap();
        assert!(open.records.is_empty() && open.next.is_empty());

        logs.end_transaction(&tp, aborting, 0, false, NOW);
        let read = logs.read(&all, 10, Isolation::ReadCommitted).unwrap();
        assert!(read.records.is_empty(), "c1 is still open");
        assert_eq!(read.next, vec![(tp.clone(), 1)], "past the aborted x1");

        let later = Duration::from_secs(1);
        logs.end_transaction(&tp, committing, 0, true, later);
        let read = logs.read(&all, 10, Isolation::ReadCommitted).unwrap();
        assert_eq!(values(&read), ["c1"]);
        assert_eq!(read.records[0].offset, 1);
        assert_eq!(read.next, vec![(tp.clone(), 4)], "past both markers");
        assert_eq!(logs.end_offset(&tp), Ok(4));
        assert_eq!(logs.committed_end(&tp), 2);
        let committed: Vec<Committed<'_>> = logs.committed_records(&tp).collect();
        assert_eq!(committed.len(), 1);
        assert_eq!((committed[0].offset, committed[0].visible_at), (1, later));
        assert_eq!(logs.live_offsets_from(&tp, 0).collect::<Vec<_>>(), [1]);
    }
}
