//! Topics and partition logs: append with idempotent-producer deduplication, read by offset.
//!
//! Acknowledged data is never lost: the log models a replicated cluster, so a broker restart keeps it.

use std::collections::BTreeMap;

use crate::protocol::{ErrorCode, FetchedRecord, ProduceBatch, Record, Tp};

/// The last batch an idempotent producer appended to a partition.
#[derive(Debug, Clone, Copy)]
struct LastBatch {
    base_sequence: i64,
    base_offset: i64,
    records: usize,
}

/// Every topic's partitions and the producer state idempotence needs.
#[derive(Debug, Default)]
pub struct Logs {
    topics: BTreeMap<String, Vec<Vec<Record>>>,
    last_batches: BTreeMap<(i64, Tp), LastBatch>,
    next_producer_id: i64,
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

    fn partition(&self, tp: &Tp) -> Option<&Vec<Record>> {
        self.topics
            .get(&tp.topic)?
            .get(usize::try_from(tp.partition).ok()?)
    }

    /// Appends a batch and returns the offset of its first record. A batch the producer already appended
    /// (a retry after a lost response) is not appended again: its original offset is returned.
    pub fn append(&mut self, producer_id: i64, batch: ProduceBatch) -> Result<i64, ErrorCode> {
        let key = (producer_id, batch.tp.clone());
        let last = self.last_batches.get(&key).copied();
        let log = self
            .topics
            .get_mut(&batch.tp.topic)
            .and_then(|p| p.get_mut(usize::try_from(batch.tp.partition).ok()?))
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        match last {
            Some(last)
                if batch.base_sequence == last.base_sequence
                    && batch.records.len() == last.records =>
            {
                return Ok(last.base_offset);
            }
            Some(last) if batch.base_sequence <= last.base_sequence => {
                return Err(ErrorCode::OutOfOrderSequence);
            }
            None if batch.base_sequence != 0 => return Err(ErrorCode::OutOfOrderSequence),
            _ => {}
        }
        let base_offset = log.len() as i64;
        let records = batch.records.len();
        log.extend(batch.records);
        self.last_batches.insert(
            key,
            LastBatch {
                base_sequence: batch.base_sequence,
                base_offset,
                records,
            },
        );
        Ok(base_offset)
    }

    /// The offset the next record of a partition gets.
    pub fn end_offset(&self, tp: &Tp) -> Result<i64, ErrorCode> {
        self.partition(tp)
            .map(|log| log.len() as i64)
            .ok_or(ErrorCode::UnknownTopicOrPartition)
    }

    /// Up to `max` records of each partition from its position, partitions in the order given.
    pub fn read(
        &self,
        positions: &[(Tp, i64)],
        max: usize,
    ) -> Result<Vec<FetchedRecord>, ErrorCode> {
        let mut out = Vec::new();
        for (tp, position) in positions {
            let log = self
                .partition(tp)
                .ok_or(ErrorCode::UnknownTopicOrPartition)?;
            let start = usize::try_from(*position).map_err(|_| ErrorCode::OffsetOutOfRange)?;
            if start > log.len() {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            let room = max.saturating_sub(out.len());
            for (i, record) in log[start..].iter().take(room).enumerate() {
                out.push(FetchedRecord {
                    tp: tp.clone(),
                    offset: (start + i) as i64,
                    record: record.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Every record of a partition, for the oracle.
    pub fn records(&self, tp: &Tp) -> &[Record] {
        self.partition(tp).map(Vec::as_slice).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(sequence: i64, values: &[&str]) -> ProduceBatch {
        ProduceBatch {
            tp: Tp::new("t", 0),
            base_sequence: sequence,
            records: values
                .iter()
                .map(|v| Record {
                    key: None,
                    value: Some(v.as_bytes().to_vec()),
                    headers: Vec::new(),
                    timestamp: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_retried_batch_is_appended_once() {
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        assert_eq!(logs.append(producer, batch(0, &["a", "b"])), Ok(0));
        assert_eq!(logs.append(producer, batch(0, &["a", "b"])), Ok(0));
        assert_eq!(logs.append(producer, batch(2, &["c"])), Ok(2));
        assert_eq!(logs.end_offset(&Tp::new("t", 0)), Ok(3));
        assert_eq!(
            logs.append(producer, batch(0, &["a"])),
            Err(ErrorCode::OutOfOrderSequence)
        );
    }

    #[test]
    fn reads_start_at_the_position_and_stop_at_the_limit() {
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        logs.append(producer, batch(0, &["a", "b", "c"])).unwrap();
        let read = logs.read(&[(Tp::new("t", 0), 1)], 1).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].offset, 1);
        assert_eq!(
            logs.read(&[(Tp::new("t", 0), 4)], 10),
            Err(ErrorCode::OffsetOutOfRange)
        );
    }
}
