//! The simulated producer: an idempotent Kafka producer.
//!
//! `send` queues a record; a background task sends the queue in batches, one request at a time, numbering
//! each partition's batches so the broker appends a retried batch once. A request whose response is lost
//! (broker restart, network partition) is retried with the same numbers until `delivery.timeout.ms`; every
//! record then gets exactly one delivery report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::RecordMetadata;
use sluice_core::hash::fnv1a64;
use sluice_core::kafka::{
    ClientSettings, Delivery, KafkaError, ProduceRecord, Producer, ProducerHandle, SendError,
};
use tokio::sync::{mpsc, Notify};

use super::connection::{code_error, unexpected, Connection};
use super::settings::{millis, number};
use crate::protocol::{ProduceBatch, Record, Request, Response, Tp};

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

struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    /// Records queued or in flight.
    outstanding: AtomicUsize,
    work: Notify,
    room: Notify,
    idle: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct SimProducer {
    shared: Arc<Shared>,
}

impl SimProducer {
    pub fn start(broker: &str, settings: &ClientSettings) -> Result<ProducerHandle, KafkaError> {
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
        });
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let sender = Sender {
            shared: shared.clone(),
            connection: Connection::new(broker, request_timeout),
            delivery_timeout,
            deliveries: deliveries_tx,
            producer_id: None,
            sequences: BTreeMap::new(),
            partitions: BTreeMap::new(),
            round_robin: 0,
        };
        tokio::spawn(sender.run());
        Ok(ProducerHandle {
            producer: Box::new(SimProducer { shared }),
            deliveries,
        })
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
                Err(e) => {
                    last_error = e;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        };
        if results.is_none() {
            // The batches may or may not have been appended: numbering on from here could make the broker
            // take the next batch for a retry of this one. Start again under a new producer id.
            self.producer_id = None;
            self.sequences.clear();
        }
        for (i, (tp, records)) in by_partition.into_iter().enumerate() {
            let outcome = match &results {
                Some(results) => results
                    .get(i)
                    .cloned()
                    .unwrap_or(Err(crate::protocol::ErrorCode::UnknownTopicOrPartition))
                    .map_err(code_error),
                None => Err(last_error.clone()),
            };
            if outcome.is_ok() {
                *self.sequences.entry(tp.clone()).or_insert(0) += records.len() as i64;
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
    ) -> Result<Vec<Result<i64, crate::protocol::ErrorCode>>, KafkaError> {
        let producer_id = match self.producer_id {
            Some(id) => id,
            None => match self
                .connection
                .call(&Request::InitProducerId, Duration::ZERO)
                .await?
            {
                Response::ProducerId { producer_id } => {
                    self.producer_id = Some(producer_id);
                    producer_id
                }
                other => return Err(unexpected(other)),
            },
        };
        let request = Request::Produce {
            producer_id,
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
