//! A source task's records on their way to Kafka: the records a poll returned and not yet handed to
//! the producer, and those handed over and not yet acknowledged.
//!
//! The outbox is what lets the source task runner poll the task for its next batch while the last
//! one is still being transformed, converted and produced: it owns everything sending needs except
//! the task itself. Sending is cancel-safe: a record leaves the unsent queue only once the producer
//! has it (or once it went nowhere), so a send interrupted at an await resumes where it stopped, and
//! no record is tracked out of order (which would let a later offset be committed past an earlier,
//! unsent record).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::api::{CommitRecordReads, ConnectError, SourceOffset, SourcePartition, SourceRecord};
use crate::kafka::{KafkaError, Producer, SendError};

use super::connector_config::ConnectorConfig;
use super::dead_letter_queue::{source_dead_letter, SourceDeadLetters};
use super::in_flight::InFlight;
use super::records::{
    convert_error, describe, describe_parts, log_skipped, send_when_room, transform_error,
    transform_source,
};
use super::repeated::Repeated;
use super::status::TaskCounter;
use super::submitted::{Submitted, SubmittedRecords};
use super::topic_creation::TopicCreator;
use super::TaskError;

/// Records polled and not yet acknowledged by Kafka.
pub struct Outbox {
    /// Polled, not yet handed to the producer, oldest first.
    unsent: VecDeque<SourceRecord>,
    /// Records that went nowhere (dropped by a transform, or skipped as bad), whose offsets are
    /// committable: the task hears of them through `commit_record` once it is not being polled.
    skipped: Vec<SourceRecord>,
    dispatch: Dispatch,
}

/// Everything sending a record needs besides the record.
struct Dispatch {
    id: String,
    config: Arc<ConnectorConfig>,
    producer: Box<dyn Producer>,
    status: TaskCounter,
    topics: TopicCreator,
    submitted: SubmittedRecords,
    in_flight: InFlight<Pending>,
    /// The topics of the records in flight whose entries keep no more than their topic.
    sent_topics: SentTopics,
    /// What the task's `commit_record` reads, and so what is kept of each record in flight.
    reads: CommitRecordReads,
    /// Records the converter refused (skipped under `errors.tolerance=all`).
    refused: Repeated,
    /// Where records that cannot be transformed or converted go, if anywhere.
    dead_letters: Option<SourceDeadLetters>,
}

/// A record with the producer, until Kafka acknowledges it.
struct Pending {
    record: Kept,
    /// Its place among the source partition's records, whose offsets commit in order.
    handle: Option<Submitted>,
    /// Its dead letter was sent instead: the letter's acknowledgement commits the record's offset.
    dead_letter: bool,
}

/// What is kept of a sent record for the task's `commit_record`: no more than it reads. A source has
/// thousands of records in flight, and each acknowledgement reads its entry long after it was
/// written, from memory rather than the cache: entries stay small.
enum Kept {
    /// The record, whole or without its data, for a `commit_record` that reads it.
    Record(Box<SourceRecord>),
    /// Only its topic, as an index into [`SentTopics`] (its partition and offset are in the submitted
    /// records), for a task whose `commit_record` reads nothing: enough to say which record Kafka
    /// refused.
    Topic(usize),
}

/// The topics records were sent to, each named once. An entry in flight names its record's topic by
/// index rather than by a shared name: acknowledgements, served on whichever thread, then neither
/// read nor release the name's reference count, which the thread creating records keeps changing.
#[derive(Default)]
struct SentTopics {
    names: Vec<Arc<str>>,
    indexes: BTreeMap<Arc<str>, usize>,
    /// The last topic's index: a task usually writes runs of records to one topic.
    last: usize,
}

impl SentTopics {
    fn index_of(&mut self, topic: &Arc<str>) -> usize {
        if self.names.get(self.last).is_some_and(|last| last == topic) {
            return self.last;
        }
        let index = match self.indexes.get(topic) {
            Some(&index) => index,
            None => {
                self.names.push(topic.clone());
                self.indexes.insert(topic.clone(), self.names.len() - 1);
                self.names.len() - 1
            }
        };
        self.last = index;
        index
    }

    fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", |name| name)
    }
}

/// A record Kafka acknowledged, or refused.
pub struct Acknowledged {
    /// The record as the task's `commit_record` gets it; `None` if `commit_record` reads nothing.
    /// Boxed as it was kept: an acknowledgement is returned for every record, and a record inline
    /// would be copied with each one.
    pub record: Option<Box<SourceRecord>>,
    /// Its dead letter was sent instead.
    pub dead_letter: bool,
    /// Which record it was, for the error when Kafka did not store it.
    pub refused: Option<String>,
}

/// What became of the record at the front of the unsent queue.
enum Sent {
    /// The producer has it, under this token.
    Produced(u64),
    /// Its dead letter is with the producer, under this token.
    DeadLettered(u64),
    /// It goes nowhere.
    Skipped,
}

/// What the outbox is built from.
pub struct OutboxSetup {
    pub id: String,
    pub config: Arc<ConnectorConfig>,
    pub producer: Box<dyn Producer>,
    pub topics: TopicCreator,
    pub dead_letters: Option<SourceDeadLetters>,
}

impl Outbox {
    pub fn new(setup: OutboxSetup) -> Outbox {
        Outbox {
            unsent: VecDeque::new(),
            skipped: Vec::new(),
            dispatch: Dispatch {
                id: setup.id,
                config: setup.config,
                producer: setup.producer,
                status: TaskCounter::default(),
                topics: setup.topics,
                submitted: SubmittedRecords::new(),
                in_flight: InFlight::default(),
                sent_topics: SentTopics::default(),
                reads: CommitRecordReads::Everything,
                refused: Repeated::default(),
                dead_letters: setup.dead_letters,
            },
        }
    }

    /// Reports metrics to this task's status.
    pub fn set_status(&mut self, status: TaskCounter) {
        self.dispatch.status = status;
    }

    /// Keeps of each record in flight what the task's `commit_record` reads.
    pub fn keep_for(&mut self, reads: CommitRecordReads) {
        self.dispatch.reads = reads;
    }

    /// Queues a poll's records for sending. Usually the last poll's are all sent, and the poll's own
    /// vector becomes the queue without a copy (a queue of its own would hold two polls' worth).
    pub fn push(&mut self, records: Vec<SourceRecord>) {
        if self.unsent.is_empty() {
            self.unsent = VecDeque::from(records);
        } else {
            self.unsent.extend(records);
        }
    }

    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Whether the task may be polled for more: not while the records in flight span too many (the
    /// offset tracker holds the same span as the in-flight list).
    pub fn has_room(&self) -> bool {
        self.dispatch.in_flight.has_room()
    }

    /// How many records await acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.dispatch.in_flight.len()
    }

    /// The records that went nowhere since the last call, for the task's `commit_record`.
    pub fn take_skipped(&mut self) -> Vec<SourceRecord> {
        std::mem::take(&mut self.skipped)
    }

    /// The offsets of the records sent, in order per source partition, marked as Kafka acknowledges
    /// them: the acknowledged prefix of each partition is what may be committed.
    pub fn submitted(&mut self) -> &mut SubmittedRecords {
        &mut self.dispatch.submitted
    }

    /// How many refused records were not logged one by one.
    pub fn refused_unlogged(&mut self) -> u64 {
        self.dispatch.refused.take_unlogged()
    }

    /// Waits for the producer to send what it holds.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.dispatch.producer.flush(timeout).await
    }

    /// Transforms, converts and hands every unsent record to the producer, in order. Cancel-safe.
    pub async fn send_unsent(&mut self) -> Result<(), TaskError> {
        while let Some(record) = self.unsent.front() {
            let sent = match self.dispatch.send_now(record) {
                Some(sent) => sent?,
                None => self.dispatch.send(record).await?,
            };
            // Nothing below awaits: the record leaves the queue in the same poll its send finished.
            let Some(record) = self.unsent.pop_front() else {
                break;
            };
            match sent {
                Sent::Produced(token) => {
                    let pending = self.dispatch.pending(record, false);
                    self.dispatch.in_flight.insert(token, pending);
                }
                Sent::DeadLettered(token) => {
                    let pending = self.dispatch.pending(record, true);
                    self.dispatch.in_flight.insert(token, pending);
                }
                Sent::Skipped => {
                    let handle = match self.dispatch.reads {
                        CommitRecordReads::Nothing => self
                            .dispatch
                            .track(record.source_partition, record.source_offset),
                        _ => {
                            let handle = self.dispatch.track(
                                record.source_partition.clone(),
                                record.source_offset.clone(),
                            );
                            self.skipped.push(record);
                            handle
                        }
                    };
                    if let Some(handle) = handle {
                        self.dispatch.submitted.ack(handle);
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes the record sent with `token` off the in-flight list, its offset committable if Kafka
    /// `stored` it. `None` if the token was already acknowledged.
    pub fn delivered(&mut self, token: u64, stored: bool) -> Option<Acknowledged> {
        let pending = self.dispatch.in_flight.take(token)?;
        let submitted = &mut self.dispatch.submitted;
        let refused = match (stored, pending.handle) {
            (true, Some(handle)) => {
                submitted.ack(handle);
                None
            }
            (true, None) => None,
            (false, handle) => Some(match &pending.record {
                Kept::Record(record) => describe(record),
                Kept::Topic(index) => {
                    let topic = self.dispatch.sent_topics.name(*index);
                    match handle.and_then(|h| submitted.get(h)) {
                        Some((partition, offset)) => describe_parts(topic, partition, offset),
                        None => format!("a record for topic {topic}"),
                    }
                }
            }),
        };
        let record = match pending.record {
            Kept::Record(record) => Some(record),
            Kept::Topic(_) => None,
        };
        Some(Acknowledged {
            record,
            dead_letter: pending.dead_letter,
            refused,
        })
    }
}

impl Dispatch {
    /// Converts and produces one record without awaiting, when nothing in its way waits: no
    /// transforms, a topic already checked, a record that converts, room in the producer's queue.
    /// `None` when it needs [`send`](Self::send), having handed nothing over. Most records go this way: a
    /// record's future (with room for transforms, topic creation and dead letters) is built and
    /// polled only for those that need it.
    fn send_now(&mut self, record: &SourceRecord) -> Option<Result<Sent, TaskError>> {
        if !self.config.transforms.is_empty() || !self.topics.knows(&record.topic) {
            return None;
        }
        let produced = self.config.converters().to_kafka(record).ok()?;
        let token = self.in_flight.next_token();
        match self.producer.send(&produced.produce_record(), token) {
            Ok(()) => {
                self.status.used_topic(&record.topic);
                Some(Ok(Sent::Produced(token)))
            }
            Err(SendError::QueueFull) => None,
            Err(SendError::Kafka(e)) => Some(Err(self.not_taken(describe(record), e))),
        }
    }

    /// Transforms, converts and produces one record (or its dead letter). Nothing is recorded
    /// after the last await, so that a cancelled send leaves no trace but the producer's.
    async fn send(&mut self, record: &SourceRecord) -> Result<Sent, TaskError> {
        // Without transforms the record goes as it is, and no transformation future is built (with
        // its retry policy, and its result copied out) for each record.
        let sent = if self.config.transforms.is_empty() {
            Cow::Borrowed(record)
        } else {
            let retry = self.config.retry_policy();
            match transform_source(&self.config.transforms, record, &retry, &self.id).await {
                Ok(Some(sent)) => sent,
                Ok(None) => return Ok(Sent::Skipped),
                Err(e) if self.config.tolerates_errors() => {
                    let message = e.to_string();
                    return self
                        .skip_or_dead_letter(record, "TRANSFORMATION", &e.class, &message)
                        .await;
                }
                Err(e) => {
                    let error = transform_error(record, &e);
                    return Err(self.fail("transform", ConnectError::fatal(error)));
                }
            }
        };
        self.topics
            .ensure(&self.id, &self.config, &sent.topic)
            .await?;
        self.status.used_topic(&sent.topic);
        let converters = self.config.converters();
        let produced = match converters.to_kafka(&sent) {
            Ok(produced) => produced,
            Err((stage, e)) if self.config.tolerates_errors() => {
                drop(sent);
                let message = e.to_string();
                return self
                    .skip_or_dead_letter(record, stage, e.converter(), &message)
                    .await;
            }
            Err((_, e)) => {
                let error = convert_error(&sent, &e);
                return Err(self.fail("convert", ConnectError::fatal(error)));
            }
        };
        let token = self.in_flight.next_token();
        send_when_room(&*self.producer, &produced.produce_record(), token)
            .await
            .map_err(|e| self.not_taken(describe(&sent), e))?;
        Ok(Sent::Produced(token))
    }

    /// A record that cannot be transformed or converted, under `errors.tolerance=all`: written to the
    /// dead letter queue if the connector has one (its offset committed once Kafka acknowledged the
    /// dead letter), skipped otherwise.
    async fn skip_or_dead_letter(
        &mut self,
        record: &SourceRecord,
        stage: &'static str,
        class: &str,
        message: &str,
    ) -> Result<Sent, TaskError> {
        log_skipped(
            &self.config,
            &self.id,
            record,
            stage,
            class,
            message,
            &mut self.refused,
        );
        self.status.metrics().skipped_for_error();
        let Some(queue) = &self.dead_letters else {
            return Ok(Sent::Skipped);
        };
        let converters = self.config.converters();
        let letter = source_dead_letter(queue, &converters, record, stage, class, message);
        self.topics
            .ensure(&self.id, &self.config, &letter.topic)
            .await?;
        let token = self.in_flight.next_token();
        send_when_room(&*self.producer, &letter.produce_record(), token)
            .await
            .map_err(|e| self.not_taken(format!("the dead letter of {}", describe(record)), e))?;
        Ok(Sent::DeadLettered(token))
    }

    /// Tracks a sent record and keeps what the task's `commit_record` reads of it until Kafka
    /// acknowledges it (a dead-lettered record whole, for a task that reads records at all).
    fn pending(&mut self, record: SourceRecord, dead_letter: bool) -> Pending {
        let record = match (self.reads, dead_letter) {
            (CommitRecordReads::Nothing, _) => {
                let topic = self.sent_topics.index_of(&record.topic);
                let handle = self.track(record.source_partition, record.source_offset);
                return Pending {
                    record: Kept::Topic(topic),
                    handle,
                    dead_letter,
                };
            }
            (CommitRecordReads::Everything, _) | (CommitRecordReads::NoData, true) => record,
            (CommitRecordReads::NoData, false) => record.without_data(),
        };
        let handle = self.track(
            record.source_partition.clone(),
            record.source_offset.clone(),
        );
        Pending {
            record: Kept::Record(Box::new(record)),
            handle,
            dead_letter,
        }
    }

    /// Registers a record whose offset is to be committed once acknowledged. Records without a source
    /// partition (stdin, say) have no offset to commit and are not tracked, as in Kafka Connect.
    fn track(&mut self, partition: SourcePartition, offset: SourceOffset) -> Option<Submitted> {
        if partition.is_empty() {
            return None;
        }
        Some(self.submitted.submit(partition, offset))
    }

    fn fail(&self, stage: &'static str, error: ConnectError) -> TaskError {
        source_task_failed(&self.id, stage, error)
    }

    /// The producer refused `record` (described), for `error`.
    fn not_taken(&self, record: String, error: KafkaError) -> TaskError {
        TaskError::Send {
            task: self.id.clone(),
            record,
            source: error,
        }
    }
}

/// Logs why the source task `task` failed at `stage`, and says so as an error.
pub fn source_task_failed(task: &str, stage: &'static str, error: ConnectError) -> TaskError {
    tracing::error!(task = %task, stage, error = %error, "source task failed");
    TaskError::Connector {
        task: task.to_owned(),
        stage,
        source: error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_topics_name_each_topic_once_by_index() {
        let mut topics = SentTopics::default();
        let orders: Arc<str> = Arc::from("orders");
        let a = topics.index_of(&orders);
        assert_eq!(topics.index_of(&orders.clone()), a, "the same name, shared");
        assert_eq!(
            topics.index_of(&Arc::from("orders")),
            a,
            "the same name, apart"
        );
        let b = topics.index_of(&Arc::from("refunds"));
        assert_ne!(a, b);
        assert_eq!(
            topics.index_of(&orders),
            a,
            "back to the first after another"
        );
        assert_eq!((topics.name(a), topics.name(b)), ("orders", "refunds"));
        assert_eq!(topics.names.len(), 2);
    }
}
