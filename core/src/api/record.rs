//! Records: what a source task produces (`SourceRecord`) and what a sink task receives (`SinkRecord`),
//! with source partitions and offsets as string-keyed JSON maps.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use super::source_map::{SourceMap, SourceValue};
use crate::data::Data;

/// Where a source record came from, e.g. `{"filename": ...}` or `{"table": ..., "protocol": "1"}`.
pub type SourcePartition = SourceMap;
/// How far into its source partition a record is, e.g. `{"position": 1024}`.
pub type SourceOffset = SourceMap;

/// One record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Data,
}

/// A record read from a source system, to be written to Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub source_partition: SourcePartition,
    pub source_offset: SourceOffset,
    /// Shared: a task usually writes every record to the same topic.
    pub topic: Arc<str>,
    /// The Kafka partition; `None` lets the producer's partitioner choose.
    pub kafka_partition: Option<i32>,
    pub key: Data,
    pub value: Data,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; `None` lets the producer stamp it.
    pub timestamp: Option<i64>,
}

impl SourceRecord {
    /// A record with a value only: no key, no headers, no fixed partition.
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: impl Into<Arc<str>>,
        value: Data,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            kafka_partition: None,
            key: Data::NULL,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// The record without its key, value and headers: what `commit_record` is given by a task that
    /// does not read them ([`CommitRecordReads::NoData`](super::CommitRecordReads::NoData)).
    pub fn without_data(self) -> SourceRecord {
        SourceRecord {
            key: Data::NULL,
            value: Data::NULL,
            headers: Vec::new(),
            ..self
        }
    }
}

/// A partition of a Kafka topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Where Kafka stored a source record (in the record's topic): passed to `SourceTask::commit_record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
}

/// A record read from Kafka, handed to a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// Shared between the records of a partition.
    pub topic: Arc<str>,
    pub partition: i32,
    /// The record's offset in its Kafka partition.
    pub kafka_offset: i64,
    pub key: Data,
    pub value: Data,
    pub headers: Vec<Header>,
    pub timestamp: Option<i64>,
}

impl SinkRecord {
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}
