//! Plain data crossing the Kafka seam: records to produce, records consumed, acknowledgements,
//! group events and client settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::{RecordMetadata, TopicPartition};

use super::KafkaError;

/// Client properties (`acks`, `linger.ms`, ...), as the worker's `producer.*` / `consumer.*` keys give them.
pub type ClientSettings = BTreeMap<String, String>;

/// A header as Kafka stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaHeader {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A serialized record on its way to Kafka, borrowed: the producer copies what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceRecord<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [KafkaHeader],
    pub timestamp: Option<i64>,
}

/// The outcome of one `send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub token: u64,
    pub result: Result<RecordMetadata, KafkaError>,
}

/// A serialized record read from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Shared between the records of a partition.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<KafkaHeader>,
    pub timestamp: Option<i64>,
}

/// What a consumer group member learns from one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// These partitions were added to this member's assignment.
    Assigned(Vec<TopicPartition>),
    /// These partitions are being taken away; they are still owned until the next poll.
    Revoked(Vec<TopicPartition>),
    /// These partitions were taken away without notice (the session expired); commits for them fail.
    Lost(Vec<TopicPartition>),
    /// Records, in offset order per partition; empty when none arrived in time.
    Records(Vec<ConsumedRecord>),
}

/// Which topics a group member consumes: Connect's `topics` or `topics.regex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    Topics(Vec<String>),
    Pattern(String),
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub config: BTreeMap<String, String>,
}
