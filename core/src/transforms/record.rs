//! What a transform sees of a record, source or sink (Kafka's `ConnectRecord`): its topic, partition,
//! key, value, headers and timestamp. A source record's partition and offset in its source system are
//! out of a transform's reach, so a transformed record still commits where it came from.

use std::sync::Arc;

use crate::api::{Header, SinkRecord, SourceRecord};
use crate::data::Data;

/// A record as transforms and predicates see it.
pub trait ConnectRecord: Send {
    fn topic(&self) -> &str;
    fn set_topic(&mut self, topic: Arc<str>);
    /// The Kafka partition, when known (a source record may leave it to the producer).
    fn kafka_partition(&self) -> Option<i32>;
    /// The record's offset in its Kafka partition: sink records only.
    fn kafka_offset(&self) -> Option<i64>;
    fn key(&self) -> &Data;
    fn key_mut(&mut self) -> &mut Data;
    fn value(&self) -> &Data;
    fn value_mut(&mut self) -> &mut Data;
    fn headers(&self) -> &[Header];
    fn headers_mut(&mut self) -> &mut Vec<Header>;
    /// Milliseconds since the Unix epoch.
    fn timestamp(&self) -> Option<i64>;
}

/// The accessors source and sink records share: both keep these in fields of the same names.
macro_rules! shared_accessors {
    () => {
        fn topic(&self) -> &str {
            &self.topic
        }
        fn set_topic(&mut self, topic: Arc<str>) {
            self.topic = topic;
        }
        fn key(&self) -> &Data {
            &self.key
        }
        fn key_mut(&mut self) -> &mut Data {
            &mut self.key
        }
        fn value(&self) -> &Data {
            &self.value
        }
        fn value_mut(&mut self) -> &mut Data {
            &mut self.value
        }
        fn headers(&self) -> &[Header] {
            &self.headers
        }
        fn headers_mut(&mut self) -> &mut Vec<Header> {
            &mut self.headers
        }
        fn timestamp(&self) -> Option<i64> {
            self.timestamp
        }
    };
}

impl ConnectRecord for SourceRecord {
    shared_accessors!();
    fn kafka_partition(&self) -> Option<i32> {
        self.kafka_partition
    }
    fn kafka_offset(&self) -> Option<i64> {
        None
    }
}

impl ConnectRecord for SinkRecord {
    shared_accessors!();
    fn kafka_partition(&self) -> Option<i32> {
        Some(self.partition)
    }
    fn kafka_offset(&self) -> Option<i64> {
        Some(self.kafka_offset)
    }
}
