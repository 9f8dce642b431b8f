//! Records at the Kafka boundary: `SourceRecord` to `ProduceRecord` (and into the producer's queue)
//! and `ConsumedRecord` to `SinkRecord`, through the connector's converters.

use std::borrow::Cow;

use super::connector_config::ConnectorConfig;
use super::repeated::Repeated;
use super::tolerance::{Failure, RetryPolicy};
use crate::api::{Header, SinkRecord, SourceOffset, SourcePartition, SourceRecord};
use crate::convert::{ConvertError, Converter, HeaderConverter};
use crate::data::Data;
use crate::kafka::{ConsumedRecord, KafkaError, KafkaHeader, ProduceRecord, Producer, SendError};
use crate::transforms::{Outcome, TransformChain, TransformFailed};

/// A source record's key, value and headers as bytes, ready to be produced.
pub struct Serialized<'a> {
    record: &'a SourceRecord,
    key: Option<Cow<'a, [u8]>>,
    value: Option<Cow<'a, [u8]>>,
    headers: Vec<KafkaHeader>,
}

impl Serialized<'_> {
    /// The record to hand to the producer; strings and bytes are not copied.
    pub fn produce_record(&self) -> ProduceRecord<'_> {
        let record = self.record;
        ProduceRecord {
            topic: &record.topic,
            partition: record.kafka_partition,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &self.headers,
            timestamp: record.timestamp,
        }
    }
}

/// A connector's key, value and header converters.
pub struct Converters<'a> {
    pub key: &'a dyn Converter,
    pub value: &'a dyn Converter,
    pub header: HeaderConverter,
}

impl ConnectorConfig {
    /// The connector's converters.
    pub(crate) fn converters(&self) -> Converters<'_> {
        Converters {
            key: &*self.key_converter,
            value: &*self.value_converter,
            header: self.header_converter,
        }
    }
}

impl Converters<'_> {
    /// Serializes a source record for the producer. An error comes with the stage that refused the
    /// record, in Kafka's words (`KEY_CONVERTER`, `VALUE_CONVERTER`).
    pub fn to_kafka<'a>(
        &self,
        record: &'a SourceRecord,
    ) -> Result<Serialized<'a>, (&'static str, ConvertError)> {
        Ok(Serialized {
            record,
            key: self
                .key
                .from_connect(&record.topic, &record.key)
                .map_err(|e| ("KEY_CONVERTER", e))?,
            value: self
                .value
                .from_connect(&record.topic, &record.value)
                .map_err(|e| ("VALUE_CONVERTER", e))?,
            headers: self.kafka_headers(&record.headers),
        })
    }

    /// Deserializes a consumed record for a sink task; converters may keep its bytes without copying.
    /// An error comes with the stage that refused the record, in Kafka's words (`KEY_CONVERTER`,
    /// `VALUE_CONVERTER`).
    pub fn to_sink(
        &self,
        record: ConsumedRecord,
    ) -> Result<SinkRecord, (&'static str, ConvertError)> {
        let key = self
            .key
            .to_connect_owned(&record.topic, record.key)
            .map_err(|e| ("KEY_CONVERTER", e))?;
        let value = self
            .value
            .to_connect_owned(&record.topic, record.value)
            .map_err(|e| ("VALUE_CONVERTER", e))?;
        let headers = record
            .headers
            .into_iter()
            .map(|h| Header {
                value: self.header.from_kafka(h.value),
                key: h.key,
            })
            .collect();
        Ok(SinkRecord {
            topic: record.topic,
            partition: record.partition,
            kafka_offset: record.offset,
            key,
            value,
            headers,
            timestamp: record.timestamp,
        })
    }
}

impl Converters<'_> {
    /// Record headers as bytes, through the header converter.
    pub fn kafka_headers(&self, headers: &[Header]) -> Vec<KafkaHeader> {
        headers
            .iter()
            .map(|h| KafkaHeader {
                key: h.key.clone(),
                value: self.header.to_kafka(&h.value),
            })
            .collect()
    }

    /// A sink record serialized again, as it would be consumed (for the dead letter queue); a key or
    /// value the converters cannot serialize goes as null.
    pub fn to_consumed(&self, record: &SinkRecord) -> ConsumedRecord {
        let bytes = |converter: &dyn Converter, data: &Data| {
            converter
                .from_connect(&record.topic, data)
                .ok()
                .flatten()
                .map(Cow::into_owned)
        };
        ConsumedRecord {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.kafka_offset,
            key: bytes(self.key, &record.key),
            value: bytes(self.value, &record.value),
            headers: self.kafka_headers(&record.headers),
            timestamp: record.timestamp,
        }
    }
}

/// A source record through the connector's transforms: what goes to Kafka (the record itself when
/// there are no transforms), or `None` when a transform dropped it. The task's own record stays as it
/// was: its offset is committed, and `commit_record` is given it, as in Kafka Connect.
/// A retriable failure is tried again on a fresh copy, as `retry` says.
pub async fn transform_source<'a>(
    chain: &TransformChain,
    record: &'a SourceRecord,
    retry: &RetryPolicy,
    task: &str,
) -> Result<Option<Cow<'a, SourceRecord>>, TransformFailed> {
    if chain.is_empty() {
        return Ok(Some(Cow::Borrowed(record)));
    }
    let attempt = || {
        let mut sent = record.clone();
        Ok(match chain.apply(&mut sent)? {
            Outcome::Keep => Some(Cow::Owned(sent)),
            Outcome::Drop => None,
        })
    };
    retry
        .run(
            task,
            "TRANSFORMATION",
            attempt,
            TransformFailed::is_retriable,
        )
        .await
}

/// Logs a source record skipped under `errors.tolerance=all` as the connector's `errors.log.*` say.
pub fn log_skipped(
    config: &ConnectorConfig,
    task: &str,
    record: &SourceRecord,
    stage: &str,
    class: &str,
    message: &str,
    repeated: &mut Repeated,
) {
    let failure = Failure {
        task,
        stage,
        class,
        error: message,
        record: &describe(record),
    };
    config.error_log().skipped(
        &failure,
        || content(&record.key, &record.value, &record.headers),
        repeated,
    );
}

/// A source record the transforms refused, named by its topic and its place in the source.
pub fn transform_error(record: &SourceRecord, error: &TransformFailed) -> String {
    format!("cannot transform {}: {error}", describe(record))
}

/// A source record the converters refused, named by its topic and its place in the source.
pub fn convert_error(record: &SourceRecord, error: &ConvertError) -> String {
    format!("cannot convert {}: {error}", describe(record))
}

/// What a record holds, for `errors.log.include.messages`.
pub fn content(key: &Data, value: &Data, headers: &[Header]) -> String {
    let headers: Vec<String> = headers
        .iter()
        .map(|h| format!("{}={:?}", h.key, h.value.value))
        .collect();
    format!(
        "key={:?} value={:?} headers=[{}]",
        key.value,
        value.value,
        headers.join(", ")
    )
}

/// What a record as consumed holds (its bytes as text where they are UTF-8), for
/// `errors.log.include.messages`.
pub fn consumed_content(record: &ConsumedRecord) -> String {
    let text = |bytes: &Option<Vec<u8>>| match bytes {
        Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        None => "null".to_owned(),
    };
    let headers: Vec<String> = record
        .headers
        .iter()
        .map(|h| format!("{}={}", h.key, text(&h.value)))
        .collect();
    format!(
        "key={} value={} headers=[{}]",
        text(&record.key),
        text(&record.value),
        headers.join(", ")
    )
}

/// A source record, named by its topic and its place in the source.
pub fn describe(record: &SourceRecord) -> String {
    describe_parts(
        &record.topic,
        &record.source_partition,
        &record.source_offset,
    )
}

/// [`describe`] from a record's topic, source partition and offset.
pub fn describe_parts(topic: &str, partition: &SourcePartition, offset: &SourceOffset) -> String {
    format!("the record for topic {topic} from source partition {partition} at offset {offset}")
}

/// Hands a record to the producer, waiting for room in its queue as long as it is full.
pub async fn send_when_room<P: Producer + ?Sized>(
    producer: &P,
    record: &ProduceRecord<'_>,
    token: u64,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record, token) {
            Ok(()) => return Ok(()),
            Err(SendError::QueueFull) => producer.wait_for_room().await,
            Err(SendError::Kafka(e)) => return Err(e),
        }
    }
}
