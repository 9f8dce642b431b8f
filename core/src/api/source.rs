//! Source tasks and their context: poll records from a system, learn which of them Kafka acknowledged,
//! and read back committed source offsets to resume from.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ConnectError, RecordMetadata, SourceOffset, SourcePartition, SourceRecord};
use crate::config::ConfigMap;

/// Reads the committed source offsets of this connector.
pub trait OffsetStorageReader: Send + Sync {
    /// The last committed offset of a source partition.
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset>;

    /// The last committed offsets of several source partitions; absent ones are left out.
    fn offsets(&self, partitions: &[SourcePartition]) -> Vec<(SourcePartition, SourceOffset)> {
        partitions
            .iter()
            .filter_map(|p| self.offset(p).map(|o| (p.clone(), o)))
            .collect()
    }
}

/// What a source task can ask of the runtime.
#[derive(Clone)]
pub struct SourceTaskContext {
    config: ConfigMap,
    offsets: Arc<dyn OffsetStorageReader>,
}

impl SourceTaskContext {
    pub fn new(config: ConfigMap, offsets: Arc<dyn OffsetStorageReader>) -> SourceTaskContext {
        SourceTaskContext { config, offsets }
    }

    /// The task's config.
    pub fn configs(&self) -> &ConfigMap {
        &self.config
    }

    /// Committed offsets, to resume from.
    pub fn offset_storage_reader(&self) -> &dyn OffsetStorageReader {
        &*self.offsets
    }
}

/// A task that reads records from a source system.
///
/// The runtime calls `start`, then `poll` in a loop, and `stop` at the end. `poll` must be cancel-safe:
/// to stop a task the runtime drops a pending `poll` future (Connect's "stop must unblock poll").
#[async_trait]
pub trait SourceTask: Send {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError>;

    /// The next batch of records; an empty batch now and then lets the runtime commit and stop.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;

    /// Called after source offsets were committed, up to the records acknowledged so far.
    async fn commit(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }

    /// Called once per record when Kafka acknowledged it (`metadata` set) or when it was dropped before
    /// reaching Kafka (`metadata` is `None`). Runs on the task's loop: keep it quick.
    fn commit_record(
        &mut self,
        record: &SourceRecord,
        metadata: Option<&RecordMetadata>,
    ) -> Result<(), ConnectError> {
        let _ = (record, metadata);
        Ok(())
    }

    /// What [`commit_record`](SourceTask::commit_record) reads of the records it is given; asked once,
    /// after `start`. The less it reads, the less the runtime keeps of each record between sending it
    /// and Kafka's acknowledgement (thousands of records are in flight): less memory, and a faster task.
    fn commit_record_reads(&self) -> CommitRecordReads {
        CommitRecordReads::Everything
    }

    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// What a source task's [`SourceTask::commit_record`] reads of the records it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitRecordReads {
    /// The whole record: it is kept whole until Kafka acknowledges it.
    #[default]
    Everything,
    /// The topic, partitions, offsets and timestamp, not the key, value and headers: the runtime
    /// frees a record's data as soon as it is sent (by the thread that built it, while still in the
    /// cache), and `commit_record` gets null keys and values and no headers.
    NoData,
    /// Nothing: the task keeps the default `commit_record`, which the runtime then never calls. It
    /// keeps of a sent record only its place among its source partition's offsets.
    Nothing,
}
