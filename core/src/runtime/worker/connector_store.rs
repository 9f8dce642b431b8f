//! The connectors a controlled standalone worker runs, kept in a JSON file next to its offset file
//! (`<offset file>.connectors.json`), so that connectors created, changed or stopped over the REST API
//! survive a restart of the worker (Kafka Connect's standalone mode forgets them). Written whole, to a
//! temp file renamed over the old one: a crash leaves the old file or the new one, never a torn one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::ConfigMap;
use crate::fs::FileSystem;
use crate::runtime::offset_store::replace_file;

use super::control::TargetState;

/// Why the connector file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorStoreError {
    #[error("cannot read the connector file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the connector file {} is not valid: {source}; move it away to start without the connectors it held", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the connector file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One connector as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConnector {
    pub config: ConfigMap,
    pub target: TargetState,
}

#[derive(Serialize, Deserialize)]
struct File {
    connectors: BTreeMap<String, StoredConnector>,
}

/// The connector file of a worker.
pub struct ConnectorStore {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
}

impl ConnectorStore {
    /// The file next to `offset_file`.
    pub fn beside(fs: Arc<dyn FileSystem>, offset_file: &Path) -> ConnectorStore {
        let mut name = offset_file.as_os_str().to_owned();
        name.push(".connectors.json");
        ConnectorStore {
            fs,
            path: PathBuf::from(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored connectors; none if the file does not exist.
    pub fn load(&self) -> Result<BTreeMap<String, StoredConnector>, ConnectorStoreError> {
        let bytes = self
            .fs
            .read(&self.path)
            .map_err(|source| ConnectorStoreError::Read {
                path: self.path.clone(),
                source,
            })?;
        let Some(bytes) = bytes else {
            return Ok(BTreeMap::new());
        };
        let file: File =
            serde_json::from_slice(&bytes).map_err(|source| ConnectorStoreError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.connectors)
    }

    /// Replaces the stored connectors with these.
    pub fn save(
        &mut self,
        connectors: BTreeMap<String, (ConfigMap, TargetState)>,
    ) -> Result<(), ConnectorStoreError> {
        let file = File {
            connectors: connectors
                .into_iter()
                .map(|(name, (config, target))| (name, StoredConnector { config, target }))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| ConnectorStoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        replace_file(&*self.fs, &self.path, &bytes).map_err(|source| ConnectorStoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::LocalFs;

    #[test]
    fn connectors_saved_are_loaded_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let offsets = dir.path().join("offsets.json");
        let mut store = ConnectorStore::beside(Arc::new(LocalFs), &offsets);
        assert!(store.load().expect("no file yet").is_empty());
        let config = ConfigMap::from([("name".to_owned(), "a".to_owned())]);
        store
            .save(BTreeMap::from([(
                "a".to_owned(),
                (config.clone(), TargetState::Stopped),
            )]))
            .expect("saved");
        assert_eq!(
            store.load().expect("loaded"),
            BTreeMap::from([(
                "a".to_owned(),
                StoredConnector {
                    config,
                    target: TargetState::Stopped
                }
            )])
        );
        assert_eq!(
            store.path(),
            dir.path().join("offsets.json.connectors.json")
        );
        std::fs::write(store.path(), "{not json").expect("written");
        let e = store.load().expect_err("corrupt");
        assert!(
            e.to_string().contains("offsets.json.connectors.json"),
            "{e}"
        );
    }
}
