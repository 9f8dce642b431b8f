//! What the JDBC source task tests share: committed offsets as the runtime's reader gives them back,
//! polling a task until it has nothing more, and reading a record's fields.

use std::sync::Mutex;
use std::time::Duration;

use sluice_connectors::jdbc::source::task::JdbcSourceTask;
use sluice_core::api::{
    OffsetStorageReader, SourceOffset, SourcePartition, SourceRecord, SourceTask,
};
use sluice_core::data::Value;

/// Committed offsets, the last one of a partition winning.
#[derive(Default)]
pub struct Offsets(pub Mutex<Vec<(SourcePartition, SourceOffset)>>);

impl Offsets {
    /// Commits `record`'s offset.
    pub fn commit(&self, record: &SourceRecord) {
        self.0.lock().unwrap().push((
            record.source_partition.clone(),
            record.source_offset.clone(),
        ));
    }
}

impl OffsetStorageReader for Offsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        let offsets = self.0.lock().unwrap();
        offsets
            .iter()
            .rev()
            .find(|(p, _)| p == partition)
            .map(|(_, o)| o.clone())
    }
}

/// Polls until a poll returns nothing.
pub async fn drain(task: &mut JdbcSourceTask) -> Vec<SourceRecord> {
    let mut all = Vec::new();
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(10), task.poll())
            .await
            .expect("a poll returns")
            .expect("the poll succeeds");
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// A field of a record's struct value.
pub fn field(record: &SourceRecord, name: &str) -> Value {
    match &record.value.value {
        Value::Struct(s) => s
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no field {name}")),
        other => panic!("not a struct: {other:?}"),
    }
}
