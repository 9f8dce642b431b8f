//! Source offsets in a Kafka topic (`offset.storage.topic`), as exactly-once source tasks keep them: the
//! record format Kafka Connect uses (key `["<connector>", {partition}]`, value `{offset}`, a null value
//! deletes) and reading a connector's offsets back, read_committed, when a task starts.
//!
//! The topic also holds the generation each task last ran with (`exactly.once.source.generation`), in
//! the same format under a partition of Sluice's own: key `["<connector>",{"sluice.task":N}]`, value
//! `{"generation":G}`. A task of an older generation reads it before it registers its transactional id,
//! and so never fences the instance that replaced it.

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

/// The field of the partition under which a task's generation is kept, which no connector's partition
/// should use.
const GENERATION_TASK: &str = "sluice.task";
/// The field of its value.
const GENERATION: &str = "generation";

/// The partition and value of the record saying task `task` of a connector runs with `generation`.
pub fn generation_record(task: usize, generation: u64) -> (SourcePartition, SourceOffset) {
    (
        SourceMap::single(GENERATION_TASK, task as i64),
        SourceMap::single(GENERATION, generation as i64),
    )
}

/// One connector's offsets as the topic held them when the task started; the task only reads them.
/// Also the newest generation recorded for each of its tasks.
#[derive(Debug, Default)]
pub struct TopicOffsets {
    /// Keyed by the partition's JSON text.
    offsets: BTreeMap<String, (SourcePartition, SourceOffset)>,
    /// By task number.
    generations: BTreeMap<i64, i64>,
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
        if partition.len() == 1 {
            if let Some(task) = partition.get(GENERATION_TASK).and_then(|t| t.as_i64()) {
                self.note_generation(task, value);
                return;
            }
        }
        match value.map(serde_json::from_slice::<Option<SourceMap>>) {
            Some(Ok(Some(offset))) => {
                self.offsets
                    .insert(partition.to_string(), (partition, offset));
            }
            _ => {
                self.offsets.remove(&partition.to_string());
            }
        }
    }

    /// A generation record: the newest generation of a task wins, whatever order records come in (a
    /// read_uncommitted reader also sees those of aborted transactions, which only makes it warier).
    fn note_generation(&mut self, task: i64, value: Option<&[u8]>) {
        let generation = value
            .and_then(|v| serde_json::from_slice::<SourceMap>(v).ok())
            .and_then(|v| v.get(GENERATION).and_then(|g| g.as_i64()));
        if let Some(generation) = generation {
            let newest = self.generations.entry(task).or_insert(generation);
            *newest = (*newest).max(generation);
        }
    }

    /// Every source partition's offset, in the order of the partitions' JSON text.
    pub fn entries(&self) -> Vec<(SourcePartition, SourceOffset)> {
        self.offsets.values().cloned().collect()
    }

    /// The newest generation recorded for task `task`.
    pub fn generation(&self, task: usize) -> Option<u64> {
        self.generations
            .get(&(task as i64))
            .and_then(|g| u64::try_from(*g).ok())
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
        self.offsets
            .get(&partition.to_string())
            .map(|(_, offset)| offset.clone())
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

    #[test]
    fn generation_records_are_kept_apart_from_offsets() {
        let (partition, value) = generation_record(1, 7);
        let key = offset_key("src", &partition);
        assert_eq!(key, br#"["src",{"sluice.task":1}]"#);
        assert_eq!(offset_value(&value), br#"{"generation":7}"#);

        let mut offsets = TopicOffsets::default();
        offsets.apply("src", &key, Some(&offset_value(&value)));
        let (_, older) = generation_record(1, 6);
        offsets.apply("src", &key, Some(&offset_value(&older)));
        let (other, newer) = generation_record(0, 9);
        offsets.apply(
            "src",
            &offset_key("other", &other),
            Some(&offset_value(&newer)),
        );
        assert_eq!(offsets.generation(1), Some(7), "the newest generation wins");
        assert_eq!(offsets.generation(0), None, "another connector's task");
        assert_eq!(offsets.offset(&partition), None, "not a source offset");
    }
}
