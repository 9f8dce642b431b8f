//! One partition's side of the producer: records waiting for a batch, batches to send again, and the
//! sequence numbers that make the producer idempotent.
//!
//! A batch is numbered when it is first sent and keeps its numbers through every retry. After a retriable
//! failure the partition sends nothing until all its batches in flight are answered (the broker refuses
//! the ones that followed a missing batch as out of order) and the retry backoff has passed; it then sends
//! its failed batches again in sequence order, as librdkafka does. The broker recognizes a retry only
//! among the last five batches it appended, so no batch is numbered more than
//! `max.in.flight.requests.per.connection` batches past the oldest one not yet settled (acknowledged or
//! failed for good), as the Java client ensures.

use std::collections::VecDeque;

use sluice_core::kafka::KafkaError;
use tokio::time::Instant;

use crate::protocol::Record;

/// A record handed to the producer, waiting for its outcome.
#[derive(Debug)]
pub struct Pending {
    pub token: u64,
    /// Its place in the order records were sent to this producer.
    pub index: u64,
    pub record: Record,
    /// `delivery.timeout.ms` after it was sent.
    pub deadline: Instant,
    /// An attempt to append it had an unknown outcome (no answer, or `REQUEST_TIMED_OUT` after the
    /// broker appended it): the log may hold it even if its delivery fails.
    pub maybe_stored: bool,
}

/// Records sent together to one partition, numbered from `base_sequence`.
#[derive(Debug)]
pub struct Batch {
    pub base_sequence: i64,
    /// The epoch the numbers count in.
    pub epoch: i16,
    pub records: Vec<Pending>,
}

impl Batch {
    /// The deadline of its oldest record: the batch expires with it.
    pub fn deadline(&self) -> Option<Instant> {
        self.records.first().map(|p| p.deadline)
    }
}

/// A partition's records on their way.
#[derive(Debug, Default)]
pub struct PartitionQueue {
    /// Records not in a batch yet, in the order they were sent.
    queued: VecDeque<Pending>,
    /// Batches that failed retriably, in sequence order, to be sent again before anything new.
    retry: VecDeque<Batch>,
    /// Batches in requests not answered yet.
    in_flight: usize,
    next_sequence: i64,
    /// The base sequences of the batches from the oldest unsettled one on, and whether each is settled.
    window: VecDeque<(i64, bool)>,
    /// Set by a retriable failure: nothing is sent until the batches in flight are answered and this
    /// time has come.
    retry_at: Option<Instant>,
    /// Why the last batch failed, for the records that expire waiting for a retry.
    pub last_error: Option<KafkaError>,
}

impl PartitionQueue {
    pub fn push(&mut self, pending: Pending) {
        self.queued.push_back(pending);
    }

    /// Records waiting here, in a batch to retry or not yet batched.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.retry.is_empty()
    }

    /// Whether a batch may be sent now, with at most `window` batches numbered past the oldest unsettled.
    pub fn sendable(&self, now: Instant, window: usize) -> bool {
        let waiting = match self.retry_at {
            Some(at) => self.in_flight > 0 || now < at,
            None => false,
        };
        match (self.retry.is_empty(), self.queued.is_empty()) {
            _ if waiting => false,
            (false, _) => true,
            (true, false) => self.window.len() < window,
            (true, true) => false,
        }
    }

    /// When the partition may send again after a failure, once nothing of it is in flight.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| self.in_flight == 0)
    }

    /// The next batch to send: the first to retry, or up to `max` queued records numbered from the next
    /// sequence number.
    pub fn next_batch(&mut self, max: usize, epoch: i16) -> Option<Batch> {
        self.retry_at = None;
        if let Some(batch) = self.retry.pop_front() {
            self.in_flight += 1;
            return Some(batch);
        }
        let n = self.queued.len().min(max);
        if n == 0 {
            return None;
        }
        let batch = Batch {
            base_sequence: self.next_sequence,
            epoch,
            records: self.queued.drain(..n).collect(),
        };
        self.next_sequence += n as i64;
        self.window.push_back((batch.base_sequence, false));
        self.in_flight += 1;
        Some(batch)
    }

    /// The batch numbered from `base_sequence` was acknowledged or failed for good.
    pub fn settled(&mut self, base_sequence: i64) {
        if let Some(entry) = self.window.iter_mut().find(|(b, _)| *b == base_sequence) {
            entry.1 = true;
        }
        while self.window.front().is_some_and(|(_, settled)| *settled) {
            self.window.pop_front();
        }
    }

    /// A batch was answered (acknowledged or refused for good).
    pub fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A batch failed retriably: it goes back in sequence order, and the partition waits for `retry_at`.
    pub fn failed(&mut self, batch: Batch, error: KafkaError, retry_at: Instant) {
        self.answered();
        let at = self
            .retry
            .iter()
            .position(|b| b.base_sequence > batch.base_sequence)
            .unwrap_or(self.retry.len());
        self.retry.insert(at, batch);
        self.retry_at = Some(retry_at);
        self.last_error = Some(error);
    }

    /// The earliest deadline of a record waiting here.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retry = self.retry.front().and_then(Batch::deadline);
        let queued = self.queued.front().map(|p| p.deadline);
        match (retry, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes the records whose deadline has passed: batches to retry (numbered, perhaps appended) and
    /// queued records. Records queue in the order they were sent, so expired ones are at the fronts.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let mut expired = Expired::default();
        while self
            .retry
            .front()
            .and_then(Batch::deadline)
            .is_some_and(|d| d <= now)
        {
            if let Some(batch) = self.retry.pop_front() {
                self.settled(batch.base_sequence);
                expired.records.extend(batch.records);
                expired.numbered = true;
            }
        }
        while self.queued.front().is_some_and(|p| p.deadline <= now) {
            expired.records.extend(self.queued.pop_front());
        }
        expired
    }

    /// Every record waiting here, batches to retry first: they are given up.
    pub fn drain(&mut self) -> Vec<Pending> {
        let mut records: Vec<Pending> = self.retry.drain(..).flat_map(|b| b.records).collect();
        records.extend(self.queued.drain(..));
        self.retry_at = None;
        records
    }

    /// A transactional producer's new epoch: numbering starts from zero, and the batches to retry, which
    /// belonged to the transaction that ended, are given back to be failed.
    pub fn new_epoch(&mut self) -> Vec<Pending> {
        self.next_sequence = 0;
        self.window.clear();
        self.retry_at = None;
        self.retry.drain(..).flat_map(|b| b.records).collect()
    }

    /// Starts numbering from zero (a new producer id): batches to retry lose their numbers and
    /// go back in front of the queue, to be batched and numbered again. Nothing may be in flight.
    pub fn renumber(&mut self) {
        let retried: Vec<Pending> = self.retry.drain(..).flat_map(|b| b.records).collect();
        for pending in retried.into_iter().rev() {
            self.queued.push_front(pending);
        }
        self.next_sequence = 0;
        self.window.clear();
    }
}

/// Records whose `delivery.timeout.ms` passed before they were acknowledged.
#[derive(Debug, Default)]
pub struct Expired {
    pub records: Vec<Pending>,
    /// Some were in a batch already sent: the broker may hold them, and the sequence numbers after them
    /// cannot be trusted to follow.
    pub numbered: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pending(index: u64, deadline: Instant) -> Pending {
        Pending {
            token: index,
            index,
            record: Record {
                key: None,
                value: None,
                headers: Vec::new(),
                timestamp: 0,
            },
            deadline,
            maybe_stored: false,
        }
    }

    #[test]
    fn failed_batches_go_again_in_sequence_order_after_those_in_flight() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut queue = PartitionQueue::default();
        for i in 0..6 {
            queue.push(pending(i, later));
        }
        let first = queue.next_batch(2, 0).expect("a batch");
        let second = queue.next_batch(2, 0).expect("a batch");
        let third = queue.next_batch(2, 0).expect("a batch");
        assert_eq!(
            [
                first.base_sequence,
                second.base_sequence,
                third.base_sequence
            ],
            [0, 2, 4]
        );
        let backoff = now + Duration::from_millis(100);
        queue.failed(second, KafkaError::Timeout("x".into()), backoff);
        assert!(!queue.sendable(backoff, 5), "two batches still in flight");
        queue.failed(first, KafkaError::Timeout("x".into()), backoff);
        queue.answered();
        queue.settled(third.base_sequence);
        assert!(!queue.sendable(now, 5), "backing off");
        assert!(queue.sendable(backoff, 5));
        let again = queue.next_batch(2, 0).expect("the first batch again");
        assert_eq!((again.base_sequence, again.records[0].index), (0, 0));
        assert_eq!(queue.next_batch(2, 0).map(|b| b.base_sequence), Some(2));
        assert!(queue.next_batch(2, 0).is_none());
    }

    #[test]
    fn no_batch_is_numbered_further_than_the_window_past_the_oldest_unsettled() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut queue = PartitionQueue::default();
        for i in 0..4 {
            queue.push(pending(i, later));
        }
        let first = queue.next_batch(1, 0).expect("a batch");
        let second = queue.next_batch(1, 0).expect("a batch");
        assert!(!queue.sendable(now, 2), "two batches unsettled");
        queue.answered();
        queue.settled(second.base_sequence);
        assert!(
            !queue.sendable(now, 2),
            "the first batch is unsettled, and the broker would forget it"
        );
        queue.answered();
        queue.settled(first.base_sequence);
        assert!(queue.sendable(now, 2));
    }

    #[test]
    fn expiry_takes_the_oldest_records_and_says_whether_they_were_numbered() {
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let later = now + Duration::from_secs(60);
        let mut queue = PartitionQueue::default();
        queue.push(pending(0, soon));
        let batch = queue.next_batch(10, 0).expect("a batch");
        queue.push(pending(1, soon));
        queue.push(pending(2, later));
        queue.failed(batch, KafkaError::Timeout("x".into()), now);
        assert!(queue.expire(now).records.is_empty());
        let expired = queue.expire(soon);
        assert!(expired.numbered);
        let indexes: Vec<u64> = expired.records.iter().map(|p| p.index).collect();
        assert_eq!(indexes, [0, 1]);
        assert_eq!(queue.next_deadline(), Some(later));
        queue.renumber();
        assert_eq!(queue.next_batch(10, 1).map(|b| b.base_sequence), Some(0));
    }
}
