//! The rdkafka group member behind [`GroupConsumer`].
//!
//! librdkafka reports rebalances through a callback that runs inside a poll. Kafka Connect must flush and
//! commit before it gives partitions up, which is async work that cannot run inside that callback, so
//! the callback only queues the rebalance; `poll` hands it to the runtime as an event and applies it
//! (assign or unassign) on the next call, after the runtime has done its work.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{blocking, rd_error};
use crate::api::TopicPartition;
use crate::kafka::{ConsumedRecord, GroupConsumer, GroupEvent, KafkaError, KafkaHeader};

/// How long a blocking librdkafka call (commit, committed offsets) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A rebalance librdkafka announced and the runtime has not yet seen.
#[derive(Debug)]
enum Rebalance {
    Assign(Vec<TopicPartition>),
    Revoke {
        partitions: Vec<TopicPartition>,
        lost: bool,
    },
}

/// A rebalance the runtime has seen and that must be applied at the next poll.
#[derive(Debug)]
enum Pending {
    Assign(TopicPartitionList),
    Revoke(TopicPartitionList),
}

/// Queues rebalances for `poll` instead of applying them at once, except while closing.
pub(super) struct RebalanceQueue {
    queue: Mutex<VecDeque<Rebalance>>,
    arrived: Notify,
    closing: AtomicBool,
}

impl RebalanceQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Rebalance>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for RebalanceQueue {}

impl ConsumerContext for RebalanceQueue {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if self.closing.load(Ordering::SeqCst) {
            // Leaving the group: nothing is left to flush, let librdkafka finish at once.
            let result = match (assign, cooperative) {
                (true, true) => consumer.incremental_assign(tpl),
                (true, false) => consumer.assign(tpl),
                (false, true) => consumer.incremental_unassign(tpl),
                (false, false) => consumer.unassign(),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "applying a rebalance while closing failed");
            }
            return;
        }
        let partitions = partitions_of(tpl);
        let event = if assign {
            Rebalance::Assign(partitions)
        } else {
            Rebalance::Revoke {
                partitions,
                lost: consumer.assignment_lost(),
            }
        };
        self.lock().push_back(event);
        self.arrived.notify_one();
    }
}

pub(super) struct RdGroupConsumer {
    inner: Arc<BaseConsumer<RebalanceQueue>>,
    /// Signalled by librdkafka when the consumer queue becomes non-empty.
    ready: Arc<Notify>,
    pending: Option<Pending>,
    /// The topic name of the last record read, shared by the records that follow it.
    last_topic: Option<Arc<str>>,
}

impl RdGroupConsumer {
    pub(super) fn new(
        config: &rdkafka::ClientConfig,
        subscription: &[String],
    ) -> Result<RdGroupConsumer, KafkaError> {
        let context = RebalanceQueue {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            closing: AtomicBool::new(false),
        };
        let mut inner: BaseConsumer<RebalanceQueue> = config
            .create_with_context(context)
            .map_err(|e| rd_error(&e))?;
        let ready = Arc::new(Notify::new());
        let signal = ready.clone();
        inner.set_nonempty_callback(move || signal.notify_one());
        let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
        inner.subscribe(&topics).map_err(|e| rd_error(&e))?;
        Ok(RdGroupConsumer {
            inner: Arc::new(inner),
            ready,
            pending: None,
            last_topic: None,
        })
    }

    fn cooperative(&self) -> bool {
        matches!(
            self.inner.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        )
    }

    /// Applies the rebalance the runtime was told about at the previous poll.
    fn apply_pending(&mut self) -> Result<(), KafkaError> {
        let cooperative = self.cooperative();
        let result = match self.pending.take() {
            None => return Ok(()),
            Some(Pending::Assign(tpl)) if cooperative => self.inner.incremental_assign(&tpl),
            Some(Pending::Assign(tpl)) => self.inner.assign(&tpl),
            Some(Pending::Revoke(tpl)) if cooperative => self.inner.incremental_unassign(&tpl),
            Some(Pending::Revoke(_)) => self.inner.unassign(),
        };
        result.map_err(|e| rd_error(&e))
    }

    /// Turns a queued rebalance into an event, remembering what to apply at the next poll.
    fn next_rebalance(&mut self) -> Option<GroupEvent> {
        let rebalance = self.inner.context().lock().pop_front()?;
        Some(match rebalance {
            Rebalance::Assign(partitions) => {
                self.pending = Some(Pending::Assign(tpl_of(&partitions, None)));
                GroupEvent::Assigned(partitions)
            }
            Rebalance::Revoke { partitions, lost } => {
                self.pending = Some(Pending::Revoke(tpl_of(&partitions, None)));
                if lost {
                    GroupEvent::Lost(partitions)
                } else {
                    GroupEvent::Revoked(partitions)
                }
            }
        })
    }
}

#[async_trait]
impl GroupConsumer for RdGroupConsumer {
    async fn poll(
        &mut self,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<GroupEvent, KafkaError> {
        self.apply_pending()?;
        if let Some(event) = self.next_rebalance() {
            return Ok(event);
        }
        let deadline = Instant::now() + max_wait;
        let mut records = Vec::new();
        let consumer = self.inner.clone();
        loop {
            // Take what librdkafka has already fetched, without blocking.
            while records.len() < max_records {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(message)) => {
                        let topic = self.topic_of(&message);
                        records.push(consumed(topic, &message));
                    }
                    Some(Err(error)) if records.is_empty() => return Err(rd_error(&error)),
                    Some(Err(error)) => {
                        tracing::warn!(error = %error, "consumer error while reading a batch");
                        break;
                    }
                    None => break,
                }
            }
            if !records.is_empty() {
                return Ok(GroupEvent::Records(records));
            }
            if let Some(event) = self.next_rebalance() {
                return Ok(event);
            }
            let context = self.inner.context().clone();
            tokio::select! {
                () = self.ready.notified() => {}
                () = context.arrived.notified() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(GroupEvent::Records(records)),
            }
        }
    }

    async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = tpl_of(&offsets.keys().cloned().collect::<Vec<_>>(), Some(offsets));
        let consumer = self.inner.clone();
        blocking(CALL_TIMEOUT, move || {
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await?
        .map_err(|e| commit_error(&e))
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError> {
        let tpl = tpl_of(partitions, None);
        let consumer = self.inner.clone();
        let committed = blocking(CALL_TIMEOUT * 2, move || {
            consumer.committed_offsets(tpl, CALL_TIMEOUT)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (TopicPartition::new(e.topic(), e.partition()), offset)
            })
            .collect())
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> Result<(), KafkaError> {
        if let Some(Pending::Assign(tpl)) = &mut self.pending {
            if let Some(mut element) = tpl.find_partition(&partition.topic, partition.partition) {
                return element
                    .set_offset(Offset::Offset(offset))
                    .map_err(|e| rd_error(&e));
            }
        }
        self.inner
            .seek(
                &partition.topic,
                partition.partition,
                Offset::Offset(offset),
                Duration::ZERO,
            )
            .map_err(|e| rd_error(&e))
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        self.inner
            .pause(&tpl_of(partitions, None))
            .map_err(|e| rd_error(&e))
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        self.inner
            .resume(&tpl_of(partitions, None))
            .map_err(|e| rd_error(&e))
    }

    async fn close(mut self: Box<Self>) -> Result<(), KafkaError> {
        self.inner.context().closing.store(true, Ordering::SeqCst);
        self.apply_pending()?;
        let inner = self.inner;
        // Dropping the last handle leaves the group; librdkafka blocks while it does.
        blocking(CALL_TIMEOUT, move || drop(inner)).await
    }
}

/// A failed commit: fencing codes mean this member's generation is over.
fn commit_error(error: &RdError) -> KafkaError {
    match error {
        RdError::ConsumerCommit(
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::StaleMemberEpoch,
        ) => KafkaError::Fenced(error.to_string()),
        other => rd_error(other),
    }
}

impl RdGroupConsumer {
    /// The message's topic name, shared with the previous message's when it is the same.
    fn topic_of(&mut self, message: &BorrowedMessage<'_>) -> Arc<str> {
        match &self.last_topic {
            Some(topic) if **topic == *message.topic() => topic.clone(),
            _ => {
                let topic: Arc<str> = Arc::from(message.topic());
                self.last_topic = Some(topic.clone());
                topic
            }
        }
    }
}

/// Copies a message out of librdkafka.
fn consumed(topic: Arc<str>, message: &BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| KafkaHeader {
                    key: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: message.timestamp().to_millis(),
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut partitions: Vec<_> = tpl
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    partitions.sort();
    partitions
}

fn tpl_of(
    partitions: &[TopicPartition],
    offsets: Option<&BTreeMap<TopicPartition, i64>>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for p in partitions {
        let offset = offsets
            .and_then(|o| o.get(p))
            .map_or(Offset::Invalid, |&o| Offset::Offset(o));
        // Only an invalid offset variant can fail here, and these are plain or Invalid.
        let _ = tpl.add_partition_offset(&p.topic, p.partition, offset);
    }
    tpl
}
