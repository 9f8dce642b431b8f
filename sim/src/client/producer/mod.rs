//! The simulated producer: an idempotent Kafka producer, transactional when given a `transactional.id`.
//!
//! `send` queues a record; a background task ([`sender`]) batches the records per partition and keeps up
//! to `max.in.flight.requests.per.connection` produce requests in flight on each partition leader's
//! connection. Each batch
//! carries per-partition sequence numbers, so the broker appends a retried batch once and refuses one
//! that does not follow its predecessor; batches refused with a retriable error are sent again in order
//! ([`partition`]). Acknowledgements of different partitions complete independently, so they can come
//! back out of the order the records were sent. A record not acknowledged within `delivery.timeout.ms`
//! fails; every record gets exactly one delivery report. A transactional producer's sender adds each
//! partition to the open transaction before its first batch there (the transaction calls are in
//! [`super::transactions`]).

mod ack_order;
mod partition;
mod sender;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::kafka::{
    delivery_channel, ClientSettings, DeliveryReceiver, KafkaError, ProduceRecord, Producer,
    ProducerHandle, SendError, TransactionalHandle,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::routing::Router;
use super::settings::{millis, number, text};
use super::transactions::TxnShared;
use crate::protocol::Record;
use sender::{Limits, Sender};

/// Requests one connection may have in flight at most with idempotence (Kafka's limit: the broker
/// remembers the last five batches of each producer and partition).
const MAX_IN_FLIGHT_IDEMPOTENT: usize = 5;

struct Queued {
    token: u64,
    topic: String,
    partition: Option<i32>,
    record: Record,
    /// `delivery.timeout.ms` from when it was sent.
    deadline: Instant,
}

pub(super) struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    delivery_timeout: Duration,
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

    /// `count` records got their delivery reports.
    fn reported(&self, count: usize) {
        if count == 0 {
            return;
        }
        self.outstanding.fetch_sub(count, Ordering::SeqCst);
        self.room.notify_waiters();
        if self.outstanding.load(Ordering::SeqCst) == 0 {
            self.idle.notify_waiters();
        }
    }
}

pub struct SimProducer {
    pub(super) shared: Arc<Shared>,
    /// Transaction requests go on connections of their own, to the transaction coordinator.
    pub(super) control: Router,
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
    ) -> Result<(SimProducer, DeliveryReceiver), KafkaError> {
        let capacity = number(settings, "queue.buffering.max.messages", 100_000usize)?;
        let request_timeout = millis(settings, "request.timeout.ms", 30_000)?;
        let delivery_timeout = millis(settings, "delivery.timeout.ms", 120_000)?;
        let limits = Limits {
            max_in_flight: max_in_flight(settings)?,
            request_timeout,
            retry_backoff: millis(settings, "retry.backoff.ms", 100)?,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            delivery_timeout,
            outstanding: AtomicUsize::new(0),
            work: Notify::new(),
            room: Notify::new(),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            txn,
        });
        let (deliveries_tx, deliveries) = delivery_channel();
        let control = Router::new(broker, request_timeout);
        let sender = Sender::new(shared.clone(), limits, control.sibling(), deliveries_tx);
        tokio::spawn(sender.run());
        Ok((SimProducer { shared, control }, deliveries))
    }
}

/// `max.in.flight.requests.per.connection` (librdkafka's alias `max.in.flight`): 5 by default, and at
/// most 5, since the producer is always idempotent (`enable.idempotence=false` is refused).
fn max_in_flight(settings: &ClientSettings) -> Result<usize, KafkaError> {
    if text(settings, "enable.idempotence", "true") != "true" {
        return Err(KafkaError::Config {
            key: "enable.idempotence".into(),
            message: "the simulated producer is always idempotent".into(),
        });
    }
    let key = if settings.contains_key("max.in.flight") {
        "max.in.flight"
    } else {
        "max.in.flight.requests.per.connection"
    };
    match number(settings, key, MAX_IN_FLIGHT_IDEMPOTENT)? {
        n @ 1..=MAX_IN_FLIGHT_IDEMPOTENT => Ok(n),
        n => Err(KafkaError::Config {
            key: key.into(),
            message: format!(
                "{n}: an idempotent producer keeps 1 to {MAX_IN_FLIGHT_IDEMPOTENT} requests in flight"
            ),
        }),
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
            deadline: Instant::now() + self.shared.delivery_timeout,
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
