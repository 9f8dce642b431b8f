//! The rdkafka producer behind [`Producer`]: a threaded librdkafka producer whose delivery reports are
//! forwarded, tagged with each record's token, to the runtime's delivery channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, Notify};

use super::{blocking, rd_error};
use crate::api::RecordMetadata;
use crate::kafka::{Delivery, KafkaError, ProduceRecord, Producer, SendError};

/// How long `wait_for_room` waits for a delivery report before letting the caller try again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Forwards delivery reports from librdkafka's thread to the runtime.
pub(super) struct DeliveryForwarder {
    deliveries: mpsc::UnboundedSender<Delivery>,
    room: Arc<Notify>,
}

impl ClientContext for DeliveryForwarder {}

impl ProducerContext for DeliveryForwarder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, token: usize) {
        let result = match result {
            Ok(message) => Ok(RecordMetadata {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
            }),
            Err((error, _)) => Err(rd_error(error)),
        };
        // The receiver is gone only when the task was torn down; its acknowledgements no longer matter.
        let _ = self.deliveries.send(Delivery {
            token: token as u64,
            result,
        });
        self.room.notify_one();
    }
}

pub(super) struct RdProducer {
    inner: Arc<ThreadedProducer<DeliveryForwarder>>,
    room: Arc<Notify>,
}

impl RdProducer {
    pub(super) fn new(
        config: &rdkafka::ClientConfig,
    ) -> Result<(RdProducer, mpsc::UnboundedReceiver<Delivery>), KafkaError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Notify::new());
        let context = DeliveryForwarder {
            deliveries: tx,
            room: room.clone(),
        };
        let inner = config
            .create_with_context::<_, ThreadedProducer<_>>(context)
            .map_err(|e| rd_error(&e))?;
        Ok((
            RdProducer {
                inner: Arc::new(inner),
                room,
            },
            rx,
        ))
    }
}

impl RdProducer {
    /// The librdkafka producer, for the transaction calls (`super::transactional`).
    pub(super) fn client(&self) -> Arc<ThreadedProducer<DeliveryForwarder>> {
        self.inner.clone()
    }
}

#[async_trait]
impl Producer for RdProducer {
    fn send(&self, record: &ProduceRecord<'_>, token: u64) -> Result<(), SendError> {
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
        let inner = self.inner.clone();
        blocking(timeout * 2, move || inner.flush(timeout))
            .await?
            .map_err(|e| rd_error(&e))
    }
}
