//! A sink connector's dead letter queue (KIP-298: `errors.deadletterqueue.topic.name`): under
//! `errors.tolerance=all`, a record that cannot be converted or transformed is written, as it was
//! consumed, to the queue's topic, with `__connect.errors.*` headers saying where it came from and why
//! when `errors.deadletterqueue.context.headers.enable` is set.
//!
//! A source connector may have one too, for records that cannot be transformed or converted: see
//! [`source_dead_letter`].
//!
//! Nothing is lost between the two: the batch's dead letters are acknowledged by Kafka before the batch
//! goes on to `put`, so no offset past them can be committed before they are durable; a dead letter
//! Kafka refuses fails the task, and its record is consumed again after the restart.

use std::sync::Arc;
use std::time::Duration;

use crate::api::SourceRecord;
use crate::config::ConfigMap;
use crate::convert::{Converter, JsonConverter};
use crate::kafka::{
    Admin, Delivery, DeliveryReceiver, KafkaError, KafkaHeader, NewTopic, ProduceRecord, Producer,
    ProducerHandle,
};

use super::records::{send_when_room, Converters};

/// The prefix of the context headers.
pub const HEADER_PREFIX: &str = "__connect.errors.";
/// The error kind records that cannot be converted or transformed are reported with (Kafka's
/// exception class for them).
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";

/// A record that could not reach the task, and why.
pub struct DeadLetter {
    pub record: crate::kafka::ConsumedRecord,
    /// Kafka's stage name: `KEY_CONVERTER`, `VALUE_CONVERTER`, `HEADER_CONVERTER` or `TRANSFORMATION`.
    pub stage: &'static str,
    /// The converter or transform that refused it.
    pub class: String,
    /// The kind of error (Kafka's exception class).
    pub error_kind: &'static str,
    pub message: String,
}

/// Why dead letters could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("cannot create the dead letter queue topic {topic:?}: {source}")]
    Create {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot write to the dead letter queue topic {topic:?}: {source}")]
    Write {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// The dead letter queue of one sink task.
pub struct DeadLetterQueue {
    topic: Arc<str>,
    replication_factor: i16,
    context_headers: bool,
    connector: String,
    task: String,
    producer: Box<dyn Producer>,
    deliveries: DeliveryReceiver,
    admin: Arc<dyn Admin>,
    created: bool,
}

/// How long a batch's dead letters may take to be acknowledged.
const ACKNOWLEDGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a dead letter queue needs.
pub struct DeadLetterQueueSetup {
    pub topic: String,
    pub replication_factor: i16,
    pub context_headers: bool,
    pub connector: String,
    pub task: String,
    pub producer: ProducerHandle,
    pub admin: Arc<dyn Admin>,
}

impl DeadLetterQueue {
    pub fn new(setup: DeadLetterQueueSetup) -> DeadLetterQueue {
        DeadLetterQueue {
            topic: setup.topic.into(),
            replication_factor: setup.replication_factor,
            context_headers: setup.context_headers,
            connector: setup.connector,
            task: setup.task,
            producer: setup.producer.producer,
            deliveries: setup.producer.deliveries,
            admin: setup.admin,
            created: false,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes the dead letters and waits until Kafka acknowledged every one.
    pub async fn write(&mut self, letters: Vec<DeadLetter>) -> Result<(), DeadLetterError> {
        if letters.is_empty() {
            return Ok(());
        }
        let write_error = |topic: &str, source| DeadLetterError::Write {
            topic: topic.to_owned(),
            source,
        };
        self.create_topic().await?;
        let count = letters.len();
        for (token, letter) in letters.iter().enumerate() {
            let mut headers = letter.record.headers.clone();
            if self.context_headers {
                headers.extend(self.context(letter));
            }
            let record = ProduceRecord {
                topic: &self.topic,
                partition: None,
                key: letter.record.key.as_deref(),
                value: letter.record.value.as_deref(),
                headers: &headers,
                timestamp: letter.record.timestamp,
            };
            send_when_room(&*self.producer, &record, token as u64)
                .await
                .map_err(|e| write_error(&self.topic, e))?;
        }
        self.producer
            .flush(ACKNOWLEDGE_TIMEOUT)
            .await
            .map_err(|e| write_error(&self.topic, e))?;
        for _ in 0..count {
            match tokio::time::timeout(ACKNOWLEDGE_TIMEOUT, self.deliveries.recv()).await {
                Ok(Some(Delivery { result: Ok(_), .. })) => {}
                Ok(Some(Delivery { result: Err(e), .. })) => {
                    return Err(write_error(&self.topic, e))
                }
                Ok(None) | Err(_) => {
                    return Err(write_error(
                        &self.topic,
                        KafkaError::Backend("a dead letter was never acknowledged".into()),
                    ))
                }
            }
        }
        tracing::warn!(task = %self.task, topic = %self.topic, records = count, "wrote records that could not be converted or transformed to the dead letter queue");
        Ok(())
    }

    async fn create_topic(&mut self) -> Result<(), DeadLetterError> {
        if self.created {
            return Ok(());
        }
        let topic = NewTopic {
            name: self.topic.to_string(),
            partitions: 1,
            replication_factor: self.replication_factor,
            config: Default::default(),
        };
        self.admin
            .create_topic(&topic)
            .await
            .map_err(|source| DeadLetterError::Create {
                topic: self.topic.to_string(),
                source,
            })?;
        self.created = true;
        Ok(())
    }

    /// Kafka Connect's `__connect.errors.*` headers, as text.
    fn context(&self, letter: &DeadLetter) -> Vec<KafkaHeader> {
        let header = |name: &str, value: String| KafkaHeader {
            key: format!("{HEADER_PREFIX}{name}"),
            value: Some(value.into_bytes()),
        };
        vec![
            header("topic", letter.record.topic.to_string()),
            header("partition", letter.record.partition.to_string()),
            header("offset", letter.record.offset.to_string()),
            header("connector.name", self.connector.clone()),
            header(
                "task.id",
                self.task.rsplit('-').next().unwrap_or("0").to_owned(),
            ),
            header("stage", letter.stage.to_owned()),
            header("class.name", letter.class.clone()),
            header("exception.class.name", letter.error_kind.to_owned()),
            header("exception.message", letter.message.clone()),
            header(
                "exception.stacktrace",
                format!("{}: {}", letter.error_kind, letter.message),
            ),
        ]
    }
}

/// Where a source's dead letters go: its queue topic, and what its context headers say.
pub struct SourceDeadLetters {
    pub topic: Arc<str>,
    pub context_headers: bool,
    pub connector: String,
    pub task: String,
}

/// A source's dead letter, ready to produce.
pub struct SourceDeadLetter {
    pub topic: Arc<str>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<KafkaHeader>,
    timestamp: Option<i64>,
}

impl SourceDeadLetter {
    pub fn produce_record(&self) -> ProduceRecord<'_> {
        ProduceRecord {
            topic: &self.topic,
            partition: None,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            timestamp: self.timestamp,
        }
    }
}

/// A source record that could not be transformed or converted, as bytes for the dead letter queue: its
/// key and value through the connector's converters, or, where a converter refuses them, through
/// JsonConverter with its schema (so that nothing of the record is lost); its headers, with the
/// `__connect.errors.*` context when enabled (the topic it was meant for, `source.partition` and
/// `source.offset` as JSON, and no Kafka partition or offset: it never had one).
pub fn source_dead_letter(
    queue: &SourceDeadLetters,
    converters: &Converters<'_>,
    record: &SourceRecord,
    stage: &'static str,
    class: &str,
    message: &str,
) -> SourceDeadLetter {
    let json = JsonConverter::configure(&ConfigMap::new(), false).ok();
    let bytes = |converter: &dyn Converter, data: &crate::data::Data| {
        converter
            .from_connect(&record.topic, data)
            .or_else(|e| match &json {
                Some(json) => json.from_connect(&record.topic, data),
                None => Err(e),
            })
            .ok()
            .flatten()
            .map(std::borrow::Cow::into_owned)
    };
    let mut headers = converters.kafka_headers(&record.headers);
    if queue.context_headers {
        let header = |name: &str, value: String| KafkaHeader {
            key: format!("{HEADER_PREFIX}{name}"),
            value: Some(value.into_bytes()),
        };
        headers.extend([
            header("topic", record.topic.to_string()),
            header("source.partition", record.source_partition.to_string()),
            header("source.offset", record.source_offset.to_string()),
            header("connector.name", queue.connector.clone()),
            header(
                "task.id",
                queue.task.rsplit('-').next().unwrap_or("0").to_owned(),
            ),
            header("stage", stage.to_owned()),
            header("class.name", class.to_owned()),
            header("exception.class.name", DATA_EXCEPTION.to_owned()),
            header("exception.message", message.to_owned()),
            header(
                "exception.stacktrace",
                format!("{DATA_EXCEPTION}: {message}"),
            ),
        ]);
    }
    SourceDeadLetter {
        topic: queue.topic.clone(),
        key: bytes(converters.key, &record.key),
        value: bytes(converters.value, &record.value),
        headers,
        timestamp: record.timestamp,
    }
}
