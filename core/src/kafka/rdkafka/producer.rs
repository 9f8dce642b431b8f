//! The rdkafka producer behind [`Producer`]: a threaded librdkafka producer whose delivery reports are
//! forwarded, tagged with each record's token, to the runtime's delivery channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, Notify};

use super::{blocking, rd_error};
use crate::api::RecordMetadata;
use crate::kafka::{Delivery, KafkaError, ProduceRecord, Producer};

/// How long `send` waits for room when librdkafka's queue is full before trying again.
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
                topic: message.topic().to_owned(),
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

#[async_trait]
impl Producer for RdProducer {
    async fn send(&self, record: ProduceRecord, token: u64) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            headers = headers.insert(Header {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        let headers = (headers.count() > 0).then_some(headers);
        loop {
            let mut base =
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(&record.topic, token as usize);
            if let Some(p) = record.partition {
                base = base.partition(p);
            }
            if let Some(k) = &record.key {
                base = base.key(k.as_slice());
            }
            if let Some(v) = &record.value {
                base = base.payload(v.as_slice());
            }
            if let Some(ts) = record.timestamp {
                base = base.timestamp(ts);
            }
            if let Some(h) = &headers {
                base = base.headers(h.clone());
            }
            match self.inner.send(base) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let room = self.room.notified();
                    // Delivery reports free room; the timeout covers a report that raced the wait.
                    let _ = tokio::time::timeout(QUEUE_FULL_BACKOFF, room).await;
                }
                Err((error, _)) => return Err(rd_error(&error)),
            }
        }
    }

    async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let inner = self.inner.clone();
        blocking(move || inner.flush(timeout))
            .await?
            .map_err(|e| rd_error(&e))
    }
}
