//! The rdkafka producer behind [`Producer`]: a librdkafka producer whose delivery reports are
//! forwarded, tagged with each record's token, to the runtime's delivery channel.
//!
//! Delivery reports are served by a task on the runtime rather than by a polling thread of their
//! own: librdkafka signals the task when its event queue fills, and the task serves every waiting
//! batch of reports at once, and wakes the source task once per batch. The reports of a batch are
//! gathered and handed over together, one message on the channel. A flush waits on a blocking
//! thread while the task serves the reports, and hands over what the task gathered last before it
//! returns, so every report of a flushed record is on the channel by then.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::bindings as rd;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::client_log;
use super::producer_events::{delivery_of, serve_one};
use super::signalled_queue::SignalledQueue;
use super::topic_handles::{HandleRecord, TopicHandles};
use super::{blocking, rd_error};
use crate::kafka::{
    delivery_channel, Delivery, DeliveryReceiver, DeliverySender, KafkaError, ProduceRecord,
    Producer, SendError,
};

// A record's token travels through librdkafka as a pointer-sized opaque: it must hold a u64 whole.
const _: () = assert!(usize::BITS >= 64, "delivery tokens need 64-bit pointers");

/// How long `wait_for_room` waits for a delivery report before letting the caller try again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Forwards delivery reports to the runtime.
pub(super) struct DeliveryForwarder {
    /// The reports served since the last hand-over: gathered by the serving task (or by rdkafka's
    /// poll, through [`delivery`](ProducerContext::delivery)), handed over by the task after each
    /// event, and by a flush or a transaction call before it returns.
    gathered: Mutex<Vec<Delivery>>,
    deliveries: DeliverySender,
}

impl DeliveryForwarder {
    /// Adds reports to the batch to hand over, under one lock however many there are.
    pub(super) fn gather(&self, add: impl FnOnce(&mut Vec<Delivery>)) {
        add(&mut self.gathered.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Hands the gathered reports over, under the lock that gathers them, so that a batch is handed
    /// over whole and once. (Two pollers may still gather their events in either order; reports are
    /// matched by token, not by order.) The next batch starts with room for as many as this one: one
    /// allocation a batch, not one for each time it would have grown.
    pub(super) fn forward(&self) {
        let mut gathered = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        if !gathered.is_empty() {
            let room = gathered.len();
            self.deliveries
                .send(std::mem::replace(&mut *gathered, Vec::with_capacity(room)));
        }
    }
}

impl ClientContext for DeliveryForwarder {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        client_log::log(level, facility, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        client_log::report_error(&error, reason);
    }
}

impl ProducerContext for DeliveryForwarder {
    type DeliveryOpaque = usize;

    /// Reports served by rdkafka's own poll: when a transaction's commit finds records left to flush,
    /// and when the client is dropped (rdkafka purges what is in flight, then polls).
    fn delivery(&self, result: &DeliveryResult<'_>, _token: usize) {
        let (Ok(message) | Err((_, message))) = result;
        // SAFETY: the message is alive for the duration of this call.
        let delivery = unsafe { delivery_of(message.ptr()) };
        self.gather(|gathered| gathered.push(delivery));
    }
}

/// Serves the producer's events as they arrive, until the producer is gone.
async fn serve_events(
    producer: Weak<BaseProducer<DeliveryForwarder>>,
    events: SignalledQueue,
    room: Arc<Notify>,
) {
    loop {
        events.arrived().await;
        loop {
            // Held for one event at a time, never across an await: the producer's owner drops the
            // client (librdkafka's destroy, which may block) where it chose to, not this task.
            let Some(client) = producer.upgrade() else {
                return;
            };
            // SAFETY: the queue is the client's main queue, and the client is alive while `client` is.
            if !unsafe { serve_one(&client, events.as_ptr()) } {
                break;
            }
            client.context().forward();
            drop(client);
            // A long burst of reports must not keep the tasks sharing this thread waiting.
            tokio::task::consume_budget().await;
        }
        room.notify_waiters();
    }
}

pub(super) struct RdProducer {
    /// Declared before `inner`, so dropped before the client they belong to.
    topics: TopicHandles,
    inner: Arc<BaseProducer<DeliveryForwarder>>,
    /// The task serving the producer's events, stopped when the producer is dropped.
    server: JoinHandle<()>,
    room: Arc<Notify>,
}

impl RdProducer {
    /// A producer whose events are served by a task on the current tokio runtime.
    pub(super) fn new(
        config: &rdkafka::ClientConfig,
    ) -> Result<(RdProducer, DeliveryReceiver), KafkaError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| KafkaError::Backend("a producer needs a tokio runtime".into()))?;
        let (tx, rx) = delivery_channel();
        let context = DeliveryForwarder {
            gathered: Mutex::default(),
            deliveries: tx,
        };
        let inner = Arc::new(
            config
                .create_with_context::<_, BaseProducer<_>>(context)
                .map_err(|e| rd_error(&e))?,
        );
        // SAFETY: the client is alive, and the task holding the queue ends before the client does
        // (it is aborted when the producer is dropped and holds the client only weakly).
        let events = unsafe {
            SignalledQueue::new(
                rd::rd_kafka_queue_get_main(inner.client().native_ptr()),
                Arc::new(Notify::new()),
            )
        }?;
        let room = Arc::new(Notify::new());
        let server = runtime.spawn(serve_events(Arc::downgrade(&inner), events, room.clone()));
        Ok((
            RdProducer {
                topics: TopicHandles::default(),
                inner,
                server,
                room,
            },
            rx,
        ))
    }
}

impl Drop for RdProducer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RdProducer {
    /// The librdkafka producer, for the transaction calls (`super::transactional`).
    pub(super) fn client(&self) -> Arc<BaseProducer<DeliveryForwarder>> {
        self.inner.clone()
    }
}

#[async_trait]
impl Producer for RdProducer {
    fn send(&self, record: &ProduceRecord<'_>, token: u64) -> Result<(), SendError> {
        if record.headers.is_empty() {
            let by_handle = HandleRecord {
                topic: record.topic,
                partition: record.partition,
                key: record.key,
                value: record.value,
                timestamp: record.timestamp,
                opaque: token as usize,
            };
            // SAFETY: the client lives as long as `inner`, which is dropped after `topics`.
            let produced = unsafe {
                self.topics
                    .produce(self.inner.client().native_ptr(), &by_handle)
            };
            match produced {
                Some(Ok(())) => return Ok(()),
                Some(Err(RDKafkaErrorCode::QueueFull)) => return Err(SendError::QueueFull),
                Some(Err(code)) => {
                    return Err(SendError::Kafka(rd_error(&RdError::MessageProduction(
                        code,
                    ))))
                }
                // No handle for this topic: rdkafka's own send says why.
                None => {}
            }
        }
        // The token travels through librdkafka as the delivery opaque.
        let mut base =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(record.topic, token as usize);
        if let Some(p) = record.partition {
            base = base.partition(p);
        }
        if let Some(k) = record.key {
            base = base.key(k);
        }
        if let Some(v) = record.value {
            base = base.payload(v);
        }
        if let Some(ts) = record.timestamp {
            base = base.timestamp(ts);
        }
        if !record.headers.is_empty() {
            let headers = record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |headers, h| {
                    headers.insert(Header {
                        key: &h.key,
                        value: h.value.as_deref(),
                    })
                },
            );
            base = base.headers(headers);
        }
        match self.inner.send(base) {
            Ok(()) => Ok(()),
            Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(SendError::QueueFull)
            }
            Err((error, _)) => Err(SendError::Kafka(rd_error(&error))),
        }
    }

    async fn wait_for_room(&self) {
        // Delivery reports free room; the timeout covers a report that raced the wait.
        let _ = tokio::time::timeout(QUEUE_FULL_BACKOFF, self.room.notified()).await;
    }

    async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        // Only the serving task takes the reports a flush waits for.
        if self.server.is_finished() {
            return Err(KafkaError::Backend(
                "the producer's delivery reports are no longer served".into(),
            ));
        }
        let inner = self.inner.clone();
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        blocking(timeout * 2, move || {
            // librdkafka's own flush: with delivery reports as events it only waits until no
            // message is left in flight, while the serving task serves the reports (a message leaves
            // the count when its report's event is destroyed, after the task gathered it). rdkafka's
            // `flush` polled the queue instead, in rounds that each waited out 100 ms even once the
            // last report was in.
            // SAFETY: the client is alive while `inner` is.
            let flushed = unsafe { rd::rd_kafka_flush(inner.client().native_ptr(), timeout_ms) };
            // The reports the task gathered last may still wait for its hand-over: hand them over
            // here, so that they are on the channel when the flush returns.
            inner.context().forward();
            match flushed {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
                code => Err(rd_error(&RdError::Flush(code.into()))),
            }
        })
        .await?
    }
}
