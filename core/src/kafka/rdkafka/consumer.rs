//! The rdkafka group member behind [`GroupConsumer`].
//!
//! librdkafka reports rebalances through a callback that runs inside a poll. Kafka Connect must flush and
//! commit before it gives partitions up, which is async work that cannot run inside that callback, so
//! the callback only queues the rebalance; `poll` hands it to the runtime as an event and applies it
//! (assign or unassign) on the next call, after the runtime has done its work.
//!
//! Fetched messages do not travel on the consumer queue that carries those rebalances: each assigned
//! partition's messages are forwarded to a queue of their own, read in batches (one lock per message
//! and no clock read, where polling takes both and allocates per message). librdkafka's batch read
//! would apply a rebalance itself, so it never reads the consumer queue.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::bindings as rd;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client_log;
use super::signalled_queue::SignalledQueue;
use super::{blocking, detached, message_timestamp, rd_error};
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
    closing: Arc<AtomicBool>,
}

impl RebalanceQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Rebalance>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for RebalanceQueue {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        client_log::log(level, facility, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        client_log::report_error(&error, reason);
    }
}

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

/// The queue that assigned partitions' fetched messages are forwarded to.
struct MessageQueue(SignalledQueue);

impl MessageQueue {
    fn new(
        consumer: &BaseConsumer<RebalanceQueue>,
        ready: Arc<Notify>,
    ) -> Result<Self, KafkaError> {
        // SAFETY: the client is alive; the queue is destroyed before it (field order of RdGroupConsumer).
        let queue = unsafe {
            SignalledQueue::new(
                rd::rd_kafka_queue_new(consumer.client().native_ptr()),
                ready,
            )
        }?;
        Ok(MessageQueue(queue))
    }

    /// Forwards a partition's fetched messages here. librdkafka drops the forwarding when the
    /// partition stops, so it is set again at every assignment, before fetching starts.
    fn take_over(
        &self,
        consumer: &BaseConsumer<RebalanceQueue>,
        partition: &TopicPartition,
    ) -> Result<(), KafkaError> {
        let topic = CString::new(&*partition.topic).map_err(|_| {
            KafkaError::Backend(format!("invalid topic name {:?}", partition.topic))
        })?;
        // SAFETY: the client is alive and the name is NUL-terminated.
        let from = unsafe {
            rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition.partition,
            )
        };
        if from.is_null() {
            return Err(KafkaError::Backend(format!(
                "no fetch queue for {partition}"
            )));
        }
        // SAFETY: both queues are alive; the reference taken above is released once forwarded.
        unsafe {
            rd::rd_kafka_queue_forward(from, self.0.as_ptr());
            rd::rd_kafka_queue_destroy(from);
        }
        Ok(())
    }

    /// Appends up to `max` messages that are ready to `out` without waiting; the caller destroys them.
    fn read(&self, max: usize, out: &mut Vec<*mut rd::rd_kafka_message_t>) {
        out.reserve(max);
        let free = out.spare_capacity_mut();
        // SAFETY: librdkafka writes at most `max` message pointers into the spare capacity and
        // returns how many; a negative count is an error, read as none.
        let read = unsafe {
            rd::rd_kafka_consume_batch_queue(self.0.as_ptr(), 0, free.as_mut_ptr().cast(), max)
        };
        let read = usize::try_from(read).unwrap_or(0).min(max);
        // SAFETY: the first `read` spare slots were initialised above.
        unsafe { out.set_len(out.len() + read) };
    }
}

pub(super) struct RdGroupConsumer {
    /// Declared first: a consumer dropped without `close` (a task that panicked) must apply the revocation
    /// librdkafka hands over as it destroys the client, not queue it for a poll that never comes.
    _closing_on_drop: ClosingOnDrop,
    /// Declared before `inner`: the queue must be destroyed before the client.
    messages: MessageQueue,
    inner: Arc<BaseConsumer<RebalanceQueue>>,
    pending: Option<Pending>,
    /// The topic name of the last record read, shared by the records that follow it.
    last_topic: Option<Arc<str>>,
    /// Messages read from the message queue, not yet copied out.
    batch: Vec<*mut rd::rd_kafka_message_t>,
    /// Whether records are copied out with their headers: librdkafka parses a record's headers when
    /// asked, allocating even to find that it has none.
    headers: bool,
}

/// Marks the consumer as closing when dropped.
struct ClosingOnDrop(Arc<AtomicBool>);

impl Drop for ClosingOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// SAFETY: `batch` is empty between calls; every other field is Send.
unsafe impl Send for RdGroupConsumer {}

impl RdGroupConsumer {
    pub(super) fn new(
        config: &rdkafka::ClientConfig,
        subscription: &[String],
    ) -> Result<RdGroupConsumer, KafkaError> {
        let closing = Arc::new(AtomicBool::new(false));
        let context = RebalanceQueue {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            closing: closing.clone(),
        };
        let mut inner: BaseConsumer<RebalanceQueue> = config
            .create_with_context(context)
            .map_err(|e| rd_error(&e))?;
        let ready = Arc::new(Notify::new());
        let signal = ready.clone();
        inner.set_nonempty_callback(move || signal.notify_one());
        let messages = MessageQueue::new(&inner, ready)?;
        let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
        inner.subscribe(&topics).map_err(|e| rd_error(&e))?;
        Ok(RdGroupConsumer {
            _closing_on_drop: ClosingOnDrop(closing),
            messages,
            inner: Arc::new(inner),
            pending: None,
            last_topic: None,
            batch: Vec::new(),
            headers: true,
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
        if self.pending.is_none() {
            return Ok(());
        }
        // A request to librdkafka's main thread: asked only when there is a rebalance to apply.
        let cooperative = self.cooperative();
        if let Some(Pending::Assign(tpl)) = &self.pending {
            for partition in partitions_of(tpl) {
                self.messages.take_over(&self.inner, &partition)?;
            }
        }
        let result = match self.pending.take() {
            None => return Ok(()),
            Some(Pending::Assign(tpl)) => {
                let assigned = if cooperative {
                    self.inner.incremental_assign(&tpl)
                } else {
                    self.inner.assign(&tpl)
                };
                // librdkafka keeps a partition's pause across its loss and return; a new assignment
                // starts fetching, as the trait promises (the runtime pauses it again if it wants).
                if let Err(e) = self.inner.resume(&tpl) {
                    tracing::debug!(error = %e, "cannot resume newly assigned partitions");
                }
                assigned
            }
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
            // The consumer queue: rebalances, errors, and the messages of a partition fetched before
            // its forwarding was set.
            while records.len() < max_records {
                match consumer.poll(Duration::ZERO) {
                    // SAFETY: the message is alive until the end of this arm.
                    Some(Ok(message)) => records.push(unsafe { self.copy_out(message.ptr()) }?),
                    Some(Err(error)) if records.is_empty() => return Err(rd_error(&error)),
                    Some(Err(error)) => {
                        tracing::warn!(error = %error, "consumer error while reading a batch");
                        break;
                    }
                    None => break,
                }
            }
            self.read_messages(max_records, &mut records)?;
            if !records.is_empty() {
                return Ok(GroupEvent::Records(records));
            }
            if let Some(event) = self.next_rebalance() {
                return Ok(event);
            }
            let context = self.inner.context().clone();
            tokio::select! {
                () = self.messages.0.arrived() => {}
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

    async fn log_start_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        // ListOffsets with the EARLIEST timestamp (-2): one request per leader for every partition, where
        // a watermark query costs two per partition.
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for p in partitions {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Beginning)
                .map_err(|e| rd_error(&e))?;
        }
        let consumer = self.inner.clone();
        let found = blocking(CALL_TIMEOUT * 2, move || {
            consumer.offsets_for_times(tpl, CALL_TIMEOUT)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        let mut starts = BTreeMap::new();
        for element in found.elements() {
            if let Some(error) = element.error().err() {
                return Err(rd_error(&error));
            }
            if let Offset::Offset(start) = element.offset() {
                starts.insert(
                    TopicPartition::new(element.topic(), element.partition()),
                    start,
                );
            }
        }
        Ok(starts)
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

    fn read_headers(&mut self, read: bool) {
        self.headers = read;
    }

    async fn close(mut self: Box<Self>) -> Result<(), KafkaError> {
        self.inner.context().closing.store(true, Ordering::SeqCst);
        self.apply_pending()?;
        let RdGroupConsumer {
            messages, inner, ..
        } = *self;
        // librdkafka waits for the application's queues before it destroys the client.
        drop(messages);
        // Dropping the last handle leaves the group; librdkafka blocks while it does, and now and then
        // for good (so not on a blocking task, which a runtime's shutdown would wait for).
        detached(CALL_TIMEOUT, move || drop(inner)).await
    }
}

/// A failed commit: fencing codes mean this member is out of the group; a rebalance under way refuses
/// commits until the next generation forms, and a generation formed with this member refuses one that
/// carried the generation before (ILLEGAL_GENERATION: the coordinator checks the member first).
fn commit_error(error: &RdError) -> KafkaError {
    match error {
        RdError::ConsumerCommit(
            RDKafkaErrorCode::RebalanceInProgress | RDKafkaErrorCode::IllegalGeneration,
        ) => KafkaError::RebalanceInProgress(error.to_string()),
        RdError::ConsumerCommit(
            RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::StaleMemberEpoch,
        ) => KafkaError::Fenced(error.to_string()),
        other => rd_error(other),
    }
}

impl RdGroupConsumer {
    /// Copies the messages that are ready on the message queue into `records`, up to `max`. An error
    /// in place of a message fails the read if no record came before it, and ends it otherwise.
    fn read_messages(
        &mut self,
        max: usize,
        records: &mut Vec<ConsumedRecord>,
    ) -> Result<(), KafkaError> {
        let mut failed = None;
        while records.len() < max && failed.is_none() {
            let mut batch = std::mem::take(&mut self.batch);
            self.messages.read(max - records.len(), &mut batch);
            if batch.is_empty() {
                self.batch = batch;
                break;
            }
            for message in batch.drain(..) {
                if failed.is_none() {
                    // SAFETY: librdkafka handed the message over; it is destroyed just below.
                    match unsafe { self.copy_out(message) } {
                        Ok(record) => records.push(record),
                        Err(error) => failed = Some(error),
                    }
                }
                // SAFETY: each message read is destroyed exactly once.
                unsafe { rd::rd_kafka_message_destroy(message) };
            }
            self.batch = batch;
        }
        match failed {
            Some(error) if records.is_empty() => Err(error),
            Some(error) => {
                tracing::warn!(error = %error, "consumer error while reading a batch");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Copies a message out of librdkafka; the topic name is shared with the previous record's when
    /// it is the same.
    ///
    /// # Safety
    /// `message` must point to a live message.
    unsafe fn copy_out(
        &mut self,
        message: *const rd::rd_kafka_message_t,
    ) -> Result<ConsumedRecord, KafkaError> {
        // SAFETY: the caller guarantees the message is alive; librdkafka keeps its topic, payload,
        // key and headers alive with it.
        unsafe {
            let m = &*message;
            if m.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(rd_error(&RdError::MessageConsumption(m.err.into())));
            }
            let name = CStr::from_ptr(rd::rd_kafka_topic_name(m.rkt));
            let topic = match &self.last_topic {
                Some(topic) if topic.as_bytes() == name.to_bytes() => topic.clone(),
                _ => {
                    let topic: Arc<str> = Arc::from(name.to_string_lossy());
                    self.last_topic = Some(topic.clone());
                    topic
                }
            };
            let timestamp = message_timestamp(message);
            Ok(ConsumedRecord {
                topic,
                partition: m.partition,
                offset: m.offset,
                key: bytes(m.key, m.key_len),
                value: bytes(m.payload, m.len),
                headers: if self.headers {
                    headers(message)
                } else {
                    Vec::new()
                },
                timestamp,
            })
        }
    }
}

/// Copies bytes librdkafka owns; null is a Kafka null.
///
/// # Safety
/// `data` must be null or point to `len` readable bytes.
unsafe fn bytes(data: *const c_void, len: usize) -> Option<Vec<u8>> {
    // SAFETY: guaranteed by the caller.
    (!data.is_null())
        .then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec())
}

/// Copies a message's headers.
///
/// # Safety
/// `message` must point to a live message.
unsafe fn headers(message: *const rd::rd_kafka_message_t) -> Vec<KafkaHeader> {
    let mut headers = std::ptr::null_mut();
    // SAFETY: the headers belong to the message, alive per the caller; each index is below the count.
    unsafe {
        if rd::rd_kafka_message_headers(message, &mut headers)
            != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Vec::new();
        }
        (0..rd::rd_kafka_header_cnt(headers))
            .filter_map(|index| {
                let mut name = std::ptr::null();
                let mut value = std::ptr::null();
                let mut len = 0;
                let found =
                    rd::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut len);
                (found == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| KafkaHeader {
                    key: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    value: bytes(value, len),
                })
            })
            .collect()
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
