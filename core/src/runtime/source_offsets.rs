//! One connector's view of the worker's source offset store: tasks read their resume points from it and
//! the runtime commits acknowledged offsets through it.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::{OffsetStorageReader, SourceOffset, SourcePartition};

use super::offset_store::{OffsetBackingStore, OffsetStoreError};

/// A worker's offset store, shared by its source tasks.
pub type SharedOffsetStore = Arc<Mutex<dyn OffsetBackingStore>>;

/// The offsets of one connector in the worker's [`OffsetBackingStore`].
#[derive(Clone)]
pub struct ConnectorOffsets {
    store: SharedOffsetStore,
    connector: String,
}

impl ConnectorOffsets {
    pub fn new(store: SharedOffsetStore, connector: impl Into<String>) -> ConnectorOffsets {
        ConnectorOffsets {
            store,
            connector: connector.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, dyn OffsetBackingStore + 'static> {
        // The store applies a write only after it is durable, so a panicking writer leaves it consistent.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Durably records these offsets.
    pub fn commit(
        &self,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError> {
        self.lock().put(&self.connector, offsets)
    }
}

impl OffsetStorageReader for ConnectorOffsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.lock().get(&self.connector, partition)
    }
}
