//! The simulated producer: an idempotent Kafka producer, transactional when given a `transactional.id`.
//!
//! `send` queues a record; a background task sends the queue in batches, one request at a time, numbering
//! each partition's batches so the broker appends a retried batch once. A request whose response is lost
//! (broker restart, network partition) is retried with the same numbers until `delivery.timeout.ms`; every
//! record then gets exactly one delivery report. A transactional producer's sender adds each partition to
//! the open transaction before its first batch there (the transaction calls are in [`super::transactions`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::RecordMetadata;
use sluice_core::hash::fnv1a64;
use sluice_core::kafka::{
    ClientSettings, Delivery, KafkaError, ProduceRecord, Producer, ProducerHandle, SendError,
    TransactionalHandle,
};
use tokio::sync::{mpsc, Notify};

use super::connection::{code_error, unexpected, Connection};
use super::settings::{millis, number};
use super::transactions::TxnShared;
use crate::protocol::{ErrorCode, ProduceBatch, Record, Request, Response, Tp, TxnProducer};

/// Records per produce request.
const MAX_BATCH: usize = 500;
/// Wait before retrying a failed request.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

struct Queued {
    token: u64,
    topic: String,
    partition: Option<i32>,
    record: Record,
}

pub(super) struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    /// Records queued or in flight.
    outstanding: AtomicUsize,
    work: Notify,
    room: Notify,
    idle: Notify,
    closed: AtomicBool,
    /// Set for a transactional producer.
    pub(super) txn: Option<TxnShared>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct SimProducer {
    pub(super) shared: Arc<Shared>,
    /// Transaction requests go on a connection of their own (in Kafka, to the transaction coordinator).
    pub(super) control: Connection,
}

impl SimProducer {
    pub fn start(broker: &str, settings: &ClientSettings) -> Result<ProducerHandle, KafkaError> {
        let (producer, deliveries) = SimProducer::spawn(broker, settings, None)?;
        Ok(ProducerHandle {
            producer: Box::new(producer),
            deliveries,
        })
    }

    /// A transactional producer with this `transactional.id`.
    pub fn start_transactional(
        broker: &str,
        settings: &ClientSettings,
        transactional_id: &str,
    ) -> Result<TransactionalHandle, KafkaError> {
        let timeout = millis(settings, "transaction.timeout.ms", 60_000)?;
        let txn = TxnShared::new(transactional_id, timeout);
        let (producer, deliveries) = SimProducer::spawn(broker, settings, Some(txn))?;
        Ok(TransactionalHandle {
            producer: Box::new(producer),
            deliveries,
        })
    }

    fn spawn(
        broker: &str,
        settings: &ClientSettings,
        txn: Option<TxnShared>,
    ) -> Result<(SimProducer, mpsc::UnboundedReceiver<Delivery>), KafkaError> {
        let capacity = number(settings, "queue.buffering.max.messages", 100_000usize)?;
        let request_timeout = millis(settings, "request.timeout.ms", 30_000)?;
        let delivery_timeout = millis(settings, "delivery.timeout.ms", 120_000)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            outstanding: AtomicUsize::new(0),
            work: Notify::new(),
            room: Notify::new(),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            txn,
        });
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let sender = Sender {
            shared: shared.clone(),
            connection: Connection::new(broker, request_timeout),
            delivery_timeout,
            deliveries: deliveries_tx,
            producer_id: None,
            sequence_epoch: 0,
            sequences: BTreeMap::new(),
            partitions: BTreeMap::new(),
            round_robin: 0,
        };
        tokio::spawn(sender.run());
        Ok((
            SimProducer {
                shared,
                control: Connection::new(broker, request_timeout),
            },
            deliveries,
        ))
    }
}

impl Drop for SimProducer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.work.notify_one();
    }
}

#[async_trait]
impl Producer for SimProducer {
    fn send(&self, record: &ProduceRecord<'_>, token: u64) -> Result<(), SendError> {
        if let Some(txn) = &self.shared.txn {
            txn.check_send()?;
        }
        if self.shared.outstanding.load(Ordering::SeqCst) >= self.shared.capacity {
            return Err(SendError::QueueFull);
        }
        let timestamp = record.timestamp.unwrap_or_else(|| {
            turmoil::since_epoch()
                .map(|t| t.as_millis() as i64)
                .unwrap_or_default()
        });
        self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
        self.shared.lock().push_back(Queued {
            token,
            topic: record.topic.to_owned(),
            partition: record.partition,
            record: Record {
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers: record
                    .headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect(),
                timestamp,
            },
        });
        self.shared.work.notify_one();
        Ok(())
    }

    async fn wait_for_room(&self) {
        let room = self.shared.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        if self.shared.outstanding.load(Ordering::SeqCst) < self.shared.capacity {
            return;
        }
        room.await;
    }

    async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let wait = async {
            loop {
                let idle = self.shared.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.shared.outstanding.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            KafkaError::Timeout(format!("records still unacknowledged after {timeout:?}"))
        })
    }
}

/// The background task that sends queued records.
struct Sender {
    shared: Arc<Shared>,
    connection: Connection,
    delivery_timeout: Duration,
    deliveries: mpsc::UnboundedSender<Delivery>,
    producer_id: Option<i64>,
    /// The epoch `sequences` count in (a transactional producer's epoch changes at each init).
    sequence_epoch: i16,
    /// The next sequence number of each partition.
    sequences: BTreeMap<Tp, i64>,
    /// Partition counts of the topics produced to.
    partitions: BTreeMap<String, i32>,
    round_robin: i32,
}

impl Sender {
    async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            let work = shared.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            let batch: Vec<Queued> = {
                let mut queue = self.shared.lock();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                if self.shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                work.await;
                continue;
            }
            let count = batch.len();
            self.send(batch).await;
            self.shared.outstanding.fetch_sub(count, Ordering::SeqCst);
            self.shared.room.notify_waiters();
            if self.shared.outstanding.load(Ordering::SeqCst) == 0 {
                self.shared.idle.notify_waiters();
            }
        }
    }

    /// Sends records until each has an outcome, and reports them.
    async fn send(&mut self, records: Vec<Queued>) {
        let deadline = tokio::time::Instant::now() + self.delivery_timeout;
        let mut last_error = KafkaError::Timeout("delivery.timeout.ms passed".into());
        let mut by_partition: BTreeMap<Tp, Vec<(u64, Record)>> = BTreeMap::new();
        let mut unplaced = records;
        while tokio::time::Instant::now() < deadline {
            match self.place(unplaced, &mut by_partition).await {
                Ok(()) => {
                    unplaced = Vec::new();
                    break;
                }
                Err((rest, e)) => {
                    unplaced = rest;
                    last_error = e;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
        for record in unplaced {
            self.report(record.token, Err(last_error.clone()));
        }
        let batches: Vec<ProduceBatch> = by_partition
            .iter()
            .map(|(tp, records)| ProduceBatch {
                tp: tp.clone(),
                base_sequence: self.sequences.get(tp).copied().unwrap_or(0),
                records: records.iter().map(|(_, r)| r.clone()).collect(),
            })
            .collect();
        if batches.is_empty() {
            return;
        }
        let results = loop {
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            match self.produce(&batches).await {
                Ok(results) => break Some(results),
                Err(e @ KafkaError::ProducerFenced(_)) => {
                    last_error = e;
                    break None;
                }
                Err(e) => {
                    last_error = e;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        };
        match (&self.shared.txn, &results) {
            // The transaction cannot commit now; aborting it bumps the epoch, which renumbers batches.
            (Some(txn), None) => txn.fail(last_error.clone()),
            // The batches may or may not have been appended: numbering on from here could make the broker
            // take the next batch for a retry of this one. Start again under a new producer id.
            (None, None) => {
                self.producer_id = None;
                self.sequences.clear();
            }
            (_, Some(_)) => {}
        }
        for (i, (tp, records)) in by_partition.into_iter().enumerate() {
            let outcome = match &results {
                Some(results) => results
                    .get(i)
                    .cloned()
                    .unwrap_or(Err(ErrorCode::UnknownTopicOrPartition))
                    .map_err(code_error),
                None => Err(last_error.clone()),
            };
            match (&outcome, &self.shared.txn) {
                (Ok(_), _) => {
                    *self.sequences.entry(tp.clone()).or_insert(0) += records.len() as i64
                }
                (Err(e), Some(txn)) => txn.fail(e.clone()),
                (Err(_), None) => {}
            }
            for (n, (token, record)) in records.into_iter().enumerate() {
                let result = outcome.clone().map(|base| RecordMetadata {
                    partition: tp.partition,
                    offset: base + n as i64,
                    timestamp: Some(record.timestamp),
                });
                self.report(token, result);
            }
        }
    }

    /// Chooses each record's partition; gives back the records whose topic is unknown yet.
    async fn place(
        &mut self,
        records: Vec<Queued>,
        by_partition: &mut BTreeMap<Tp, Vec<(u64, Record)>>,
    ) -> Result<(), (Vec<Queued>, KafkaError)> {
        let missing: Vec<String> = records
            .iter()
            .filter(|r| !self.partitions.contains_key(&r.topic))
            .map(|r| r.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            let request = Request::Metadata {
                topics: Some(missing),
                auto_create: true,
            };
            match self.connection.call(&request, Duration::ZERO).await {
                Ok(Response::Metadata { topics }) => self.partitions.extend(topics),
                Ok(other) => return Err((records, unexpected(other))),
                Err(e) => return Err((records, e)),
            }
        }
        self.round_robin = self.round_robin.wrapping_add(1);
        let mut rest = Vec::new();
        for queued in records {
            let Some(&count) = self.partitions.get(&queued.topic) else {
                rest.push(queued);
                continue;
            };
            let partition = match (queued.partition, &queued.record.key) {
                (Some(p), _) => p,
                // FNV-1a where Kafka's Java client uses murmur2: the spread is what matters here.
                (None, Some(key)) => (fnv1a64(key) % count as u64) as i32,
                (None, None) => self.round_robin.rem_euclid(count),
            };
            by_partition
                .entry(Tp::new(queued.topic, partition))
                .or_default()
                .push((queued.token, queued.record));
        }
        if rest.is_empty() {
            Ok(())
        } else {
            let topic = rest[0].topic.clone();
            Err((
                rest,
                KafkaError::Backend(format!("topic {topic:?} does not exist")),
            ))
        }
    }

    async fn produce(
        &mut self,
        batches: &[ProduceBatch],
    ) -> Result<Vec<Result<i64, ErrorCode>>, KafkaError> {
        if let Some(txn) = &self.shared.txn {
            let producer = txn.producer()?;
            if producer.epoch != self.sequence_epoch {
                self.sequence_epoch = producer.epoch;
                self.sequences.clear();
            }
            let new: Vec<Tp> = txn.not_added(batches.iter().map(|b| &b.tp));
            if !new.is_empty() {
                let request = Request::AddPartitionsToTxn {
                    producer: producer.clone(),
                    partitions: new.clone(),
                };
                match self.connection.call(&request, Duration::ZERO).await? {
                    Response::Done => txn.added(new),
                    other => return Err(unexpected(other)),
                }
            }
            return self.send_produce(&producer, batches).await;
        }
        let producer_id = match self.producer_id {
            Some(id) => id,
            None => match self
                .connection
                .call(
                    &Request::InitProducerId {
                        transactional_id: None,
                        transaction_timeout_ms: 0,
                    },
                    Duration::ZERO,
                )
                .await?
            {
                Response::ProducerId { producer_id, .. } => {
                    self.producer_id = Some(producer_id);
                    producer_id
                }
                other => return Err(unexpected(other)),
            },
        };
        let request = Request::Produce {
            producer_id,
            epoch: 0,
            transactional_id: None,
            batches: batches.to_vec(),
        };
        match self.connection.call(&request, Duration::ZERO).await? {
            Response::Produced { results } => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    /// A transactional producer's produce request, in its current epoch.
    async fn send_produce(
        &mut self,
        producer: &TxnProducer,
        batches: &[ProduceBatch],
    ) -> Result<Vec<Result<i64, ErrorCode>>, KafkaError> {
        let request = Request::Produce {
            producer_id: producer.producer_id,
            epoch: producer.epoch,
            transactional_id: Some(producer.transactional_id.clone()),
            batches: batches.to_vec(),
        };
        match self.connection.call(&request, Duration::ZERO).await? {
            Response::Produced { results } => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    fn report(&self, token: u64, result: Result<RecordMetadata, KafkaError>) {
        // The receiver is gone only when the runtime stopped listening; nothing is left to tell.
        let _ = self.deliveries.send(Delivery { token, result });
    }
}
