//! Source offsets in a Kafka topic (`offset.storage.topic`), as exactly-once source tasks keep them: the
//! record format Kafka Connect uses (key `["<connector>", {partition}]`, value `{offset}`, a null value
//! deletes) and reading a connector's offsets back, read_committed, when a task starts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{OffsetStorageReader, SourceMap, SourceOffset, SourcePartition, TopicPartition};
use crate::kafka::{Admin, KafkaError, LogReader};

/// The key of a source partition's offset record.
pub fn offset_key(connector: &str, partition: &SourcePartition) -> Vec<u8> {
    serde_json::to_vec(&(connector, partition)).expect("a string and a JSON map serialize")
}

/// The value of an offset record.
pub fn offset_value(offset: &SourceOffset) -> Vec<u8> {
    serde_json::to_vec(offset).expect("a JSON map serializes")
}

/// One connector's offsets as the topic held them when the task started; the task only reads them.
#[derive(Debug, Default)]
pub struct TopicOffsets {
    /// Keyed by the partition's JSON text.
    offsets: BTreeMap<String, SourceOffset>,
}

impl TopicOffsets {
    /// Applies one offset record (later records win; a null value or an unreadable one deletes).
    fn apply(&mut self, connector: &str, key: &[u8], value: Option<&[u8]>) {
        let Ok((name, partition)) = serde_json::from_slice::<(String, SourceMap)>(key) else {
            tracing::warn!(
                key = %String::from_utf8_lossy(key),
                "skipping an offset record whose key is not [connector, partition]"
            );
            return;
        };
        if name != connector {
            return;
        }
        match value.map(serde_json::from_slice::<Option<SourceMap>>) {
            Some(Ok(Some(offset))) => {
                self.offsets.insert(partition.to_string(), offset);
            }
            _ => {
                self.offsets.remove(&partition.to_string());
            }
        }
    }

    /// Reads `connector`'s offsets from every partition of `topic`.
    pub async fn read(
        reader: &mut dyn LogReader,
        admin: &dyn Admin,
        topic: &str,
        connector: &str,
        timeout: Duration,
    ) -> Result<TopicOffsets, KafkaError> {
        let partitions = admin.partition_count(topic).await?.ok_or_else(|| {
            KafkaError::Backend(format!("the offsets topic {topic:?} does not exist"))
        })?;
        let partitions: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect();
        let mut offsets = TopicOffsets::default();
        for record in reader.read_to_end(&partitions, timeout).await? {
            if let Some(key) = &record.key {
                offsets.apply(connector, key, record.value.as_deref());
            }
        }
        Ok(offsets)
    }
}

impl OffsetStorageReader for TopicOffsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.offsets.get(&partition.to_string()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_in_kafka_connects_format() {
        let partition = SourceMap::single("stream", 3);
        let key = offset_key("src", &partition);
        assert_eq!(key, br#"["src",{"stream":3}]"#);
        let value = offset_value(&SourceMap::single("seq", 9));
        assert_eq!(value, br#"{"seq":9}"#);

        let mut offsets = TopicOffsets::default();
        offsets.apply("src", &key, Some(&value));
        offsets.apply(
            "src",
            &offset_key("other", &partition),
            Some(b"{\"seq\":1}"),
        );
        assert_eq!(
            offsets.offset(&partition),
            Some(SourceMap::single("seq", 9))
        );
        offsets.apply("src", &key, Some(b"null"));
        assert_eq!(offsets.offset(&partition), None);
        offsets.apply("src", &key, Some(&value));
        offsets.apply("src", &key, None);
        assert_eq!(offsets.offset(&partition), None, "a tombstone deletes");
    }
}
