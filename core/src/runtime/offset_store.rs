//! The standalone worker's source offset file (`offset.storage.file.filename`): offsets per connector and
//! source partition, written atomically as checksummed, deterministic JSON, and never silently reset when damaged.
//! The file names the Kafka cluster its offsets belong to: offsets that describe what one cluster holds
//! are never applied to another.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::api::record::{SourceMap, SourceOffset, SourcePartition};
use crate::fs::{parent_dir, FileSystem};
use crate::hash::fnv1a64;

/// The file format version this code reads and writes.
const VERSION: u64 = 1;

/// Why the offset file could not be read or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    #[error("cannot read offset file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("offset file {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "offset file {} has format version {version}; this version of Sluice reads version {VERSION}",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, version: String },
    #[error("cannot write offset file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The offsets describe what another Kafka cluster holds.
    #[error("offset file {} holds source offsets for Kafka cluster {stored:?}, but the worker reached cluster {actual:?}", path.display())]
    OtherCluster {
        path: PathBuf,
        stored: String,
        actual: String,
    },
    /// The new file is in place, but it may not survive a power loss.
    #[error("wrote offset file {} but could not sync its directory: {source}", path.display())]
    SyncDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where a worker keeps source offsets. The standalone worker uses [`FileOffsetStore`]; a simulation can keep
/// them in a store that outlives a crashed worker, as a disk does.
pub trait OffsetBackingStore: Send {
    /// The stored offset of one source partition of a connector.
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset>;

    /// Durably merges offsets of a connector (a later entry for the same partition wins). On error nothing
    /// changes, and the caller retries these offsets with its next commit.
    fn put(
        &mut self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError>;

    /// Every stored offset of a connector.
    fn offsets(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)>;

    /// Durably sets (`Some`) or removes (`None`) offsets of a connector, as an operator asks
    /// (KIP-875). On error nothing changes.
    fn alter(
        &mut self,
        connector: &str,
        changes: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<(), OffsetStoreError>;

    /// Binds the offsets to the Kafka cluster with id `cluster`, before any source task reads them: a
    /// store bound to another cluster is an [`OffsetStoreError::OtherCluster`], unless `rebind` moves it
    /// to this one (keeping its offsets). A store bound to no cluster yet (new, or written by an older
    /// version) is bound to this one. The binding is written with the next offsets.
    fn bind_cluster(&mut self, cluster: &str, rebind: bool) -> Result<(), OffsetStoreError>;

    /// The cluster the offsets belong to, if known.
    fn cluster(&self) -> Option<&str>;
}

/// A connector's offsets, keyed by the canonical JSON text of the source partition.
type ConnectorOffsets = BTreeMap<String, (SourcePartition, SourceOffset)>;

/// Source offsets of every connector of a standalone worker, mirrored in one file.
///
/// The file is `{"version": 1, "cluster": "<Kafka cluster id>", "checksum": "<hex>", "offsets": [{"key":
/// ["<connector>", {partition}], "value": {offset}}, ...]}` (`cluster` is absent until the store is bound
/// to one, and in files of older versions), sorted by connector and then by the partition's JSON text; the checksum is the
/// FNV-1a 64 hash of the `offsets` array serialized compactly with object keys sorted.
pub struct FileOffsetStore {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    /// The Kafka cluster the offsets belong to.
    cluster: Option<String>,
    /// The cluster the file names, written again by the next `put` when it differs from `cluster`.
    file_cluster: Option<String>,
    offsets: BTreeMap<String, ConnectorOffsets>,
    /// The last write replaced the file but syncing its directory failed: the rename may not survive a
    /// crash, so the next `put` writes the file again even if its offsets are unchanged.
    rename_unsynced: bool,
}

impl fmt::Debug for FileOffsetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileOffsetStore")
            .field("path", &self.path)
            .field("cluster", &self.cluster)
            .field("offsets", &self.offsets)
            .field("rename_unsynced", &self.rename_unsynced)
            .finish_non_exhaustive()
    }
}

impl FileOffsetStore {
    /// Loads the file from `fs`; a missing file is an empty store, and an unreadable or damaged one an
    /// error.
    pub fn open(fs: Arc<dyn FileSystem>, path: &Path) -> Result<FileOffsetStore, OffsetStoreError> {
        let (cluster, offsets) = match fs.read(path) {
            Ok(Some(bytes)) => parse_file(&bytes, path)?,
            Ok(None) => (None, BTreeMap::new()),
            Err(source) => {
                return Err(OffsetStoreError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Ok(FileOffsetStore {
            fs,
            path: path.to_owned(),
            file_cluster: cluster.clone(),
            cluster,
            offsets,
            rename_unsynced: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets or removes offsets of a connector and rewrites the file atomically. On error nothing changes
    /// in memory, so memory always matches the file; the caller should retry these offsets with its next
    /// commit. The one exception is [`OffsetStoreError::SyncDirectory`]: the new file is then already in
    /// place, and memory holds its contents; the next write writes the file again, so that its success
    /// means the offsets are durable.
    fn apply(
        &mut self,
        connector: &str,
        changes: &[(&SourcePartition, Option<&SourceOffset>)],
    ) -> Result<(), OffsetStoreError> {
        let mut merged = self.offsets.get(connector).cloned().unwrap_or_default();
        let mut changed = false;
        for (partition, offset) in changes {
            let key = canonical_map(partition);
            match offset {
                Some(offset) if merged.get(&key).is_some_and(|(_, old)| old == *offset) => {}
                Some(offset) => {
                    merged.insert(key, ((*partition).clone(), (*offset).clone()));
                    changed = true;
                }
                None => changed |= merged.remove(&key).is_some(),
            }
        }
        if !changed && !self.rename_unsynced && self.file_cluster == self.cluster {
            return Ok(());
        }
        let mut all: BTreeMap<&str, &ConnectorOffsets> = self
            .offsets
            .iter()
            .map(|(name, offsets)| (name.as_str(), offsets))
            .collect();
        all.insert(connector, &merged);
        let text = render(self.cluster.as_deref(), &all);
        match write_atomically(&*self.fs, &self.path, text.as_bytes()) {
            Ok(()) => {
                self.keep(connector, merged);
                self.rename_unsynced = false;
                self.file_cluster.clone_from(&self.cluster);
                Ok(())
            }
            Err(WriteFailure::Write(source)) => Err(OffsetStoreError::Write {
                path: self.path.clone(),
                source,
            }),
            Err(WriteFailure::SyncDirectory(source)) => {
                self.keep(connector, merged);
                self.rename_unsynced = true;
                self.file_cluster.clone_from(&self.cluster);
                Err(OffsetStoreError::SyncDirectory {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Holds a connector's offsets as written; a connector left without any is forgotten.
    fn keep(&mut self, connector: &str, offsets: ConnectorOffsets) {
        if offsets.is_empty() {
            self.offsets.remove(connector);
        } else {
            self.offsets.insert(connector.to_owned(), offsets);
        }
    }
}

impl OffsetBackingStore for FileOffsetStore {
    /// The stored offset of one source partition of a connector.
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        self.offsets
            .get(connector)?
            .get(&canonical_map(partition))
            .map(|(_, offset)| offset.clone())
    }

    /// Merges offsets of a connector (a later entry for the same partition wins); see
    /// [`FileOffsetStore::apply`].
    fn put(
        &mut self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError> {
        let changes: Vec<(&SourcePartition, Option<&SourceOffset>)> =
            offsets.iter().map(|(p, o)| (p, Some(o))).collect();
        self.apply(connector, &changes)
    }

    /// Every stored offset of a connector, sorted by the partition's JSON text.
    fn offsets(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        self.offsets
            .get(connector)
            .map(|offsets| offsets.values().cloned().collect())
            .unwrap_or_default()
    }

    fn alter(
        &mut self,
        connector: &str,
        changes: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<(), OffsetStoreError> {
        let changes: Vec<(&SourcePartition, Option<&SourceOffset>)> =
            changes.iter().map(|(p, o)| (p, o.as_ref())).collect();
        self.apply(connector, &changes)
    }

    fn bind_cluster(&mut self, cluster: &str, rebind: bool) -> Result<(), OffsetStoreError> {
        match &self.cluster {
            Some(stored) if stored != cluster && !rebind => Err(OffsetStoreError::OtherCluster {
                path: self.path.clone(),
                stored: stored.clone(),
                actual: cluster.to_owned(),
            }),
            _ => {
                self.cluster = Some(cluster.to_owned());
                Ok(())
            }
        }
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// Compact JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_canonical_object(map.iter().map(|(k, v)| (k.as_str(), v)), out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_canonical_object<'a>(map: impl Iterator<Item = (&'a str, &'a Value)>, out: &mut String) {
    out.push('{');
    let mut entries: Vec<_> = map.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key).to_string());
        out.push(':');
        write_canonical(value, out);
    }
    out.push('}');
}

fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn canonical_map(map: &SourceMap) -> String {
    let mut out = String::new();
    let entries: Vec<_> = map.iter().collect();
    write_canonical_object(entries.iter().map(|(k, v)| (*k, &**v)), &mut out);
    out
}

/// The whole file: the cluster, then one offset entry per line, each in canonical form.
fn render(cluster: Option<&str>, all: &BTreeMap<&str, &ConnectorOffsets>) -> String {
    let mut entries = Vec::new();
    for (connector, offsets) in all {
        let name = Value::from(*connector).to_string();
        for (partition, (_, offset)) in offsets.iter() {
            entries.push(format!(
                "{{\"key\":[{name},{partition}],\"value\":{}}}",
                canonical_map(offset)
            ));
        }
    }
    let checksum = fnv1a64(format!("[{}]", entries.join(",")).as_bytes());
    let body = if entries.is_empty() {
        String::new()
    } else {
        format!("\n{}\n", entries.join(",\n"))
    };
    let cluster = cluster
        .map(|id| format!("\"cluster\":{},", Value::from(id)))
        .unwrap_or_default();
    format!(
        "{{\"version\":{VERSION},{cluster}\"checksum\":\"{checksum:016x}\",\"offsets\":[{body}]}}\n"
    )
}

/// The cluster (absent in files of older versions) and the offsets of every connector.
type FileContents = (Option<String>, BTreeMap<String, ConnectorOffsets>);

fn parse_file(bytes: &[u8], path: &Path) -> Result<FileContents, OffsetStoreError> {
    let corrupt = |reason: String| OffsetStoreError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(corrupt("the file is empty".to_owned()));
    }
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
    let Value::Object(root) = root else {
        return Err(corrupt("expected a JSON object".to_owned()));
    };
    match root.get("version") {
        Some(version) if version.as_u64() == Some(VERSION) => {}
        Some(version @ Value::Number(_)) => {
            return Err(OffsetStoreError::UnsupportedVersion {
                path: path.to_owned(),
                version: version.to_string(),
            })
        }
        Some(_) => return Err(corrupt("\"version\" is not a number".to_owned())),
        None => return Err(corrupt("\"version\" is missing".to_owned())),
    }
    let cluster = match root.get("cluster") {
        None => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => return Err(corrupt("\"cluster\" is not a cluster id".to_owned())),
    };
    let Some(Value::String(checksum)) = root.get("checksum") else {
        return Err(corrupt(
            "\"checksum\" is missing or not a string".to_owned(),
        ));
    };
    let Some(entries) = root.get("offsets") else {
        return Err(corrupt("\"offsets\" is missing".to_owned()));
    };
    let actual = format!("{:016x}", fnv1a64(canonical(entries).as_bytes()));
    if !checksum.eq_ignore_ascii_case(&actual) {
        return Err(corrupt(format!(
            "checksum mismatch: the file says {checksum} but its offsets hash to {actual}"
        )));
    }
    let Value::Array(entries) = entries else {
        return Err(corrupt("\"offsets\" is not an array".to_owned()));
    };
    let mut offsets: BTreeMap<String, ConnectorOffsets> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let (connector, partition, offset) =
            parse_entry(entry).map_err(|reason| corrupt(format!("offset entry {i}: {reason}")))?;
        let key = canonical_map(&partition);
        let previous = offsets
            .entry(connector.to_owned())
            .or_default()
            .insert(key, (partition, offset));
        if previous.is_some() {
            return Err(corrupt(format!(
                "offset entry {i}: a second offset for the same connector and partition"
            )));
        }
    }
    Ok((cluster, offsets))
}

fn parse_entry(entry: &Value) -> Result<(&str, SourcePartition, SourceOffset), &'static str> {
    let Some(Value::Array(key)) = entry.get("key") else {
        return Err("\"key\" is missing or not an array");
    };
    let [Value::String(connector), Value::Object(partition)] = key.as_slice() else {
        return Err("\"key\" is not [\"<connector>\", {source partition}]");
    };
    let Some(Value::Object(offset)) = entry.get("value") else {
        return Err("\"value\" is missing or not an object");
    };
    Ok((
        connector,
        SourceMap::new(partition.clone()),
        SourceMap::new(offset.clone()),
    ))
}

/// Distinguishes temp files of concurrent writers in one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

enum WriteFailure {
    /// Nothing was replaced.
    Write(io::Error),
    /// The file was replaced but the rename may not be durable.
    SyncDirectory(io::Error),
}

/// Replaces a small file whole: a crash leaves the old contents or the new ones.
pub(crate) fn replace_file(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(fs, path, bytes).map_err(|e| match e {
        WriteFailure::Write(e) | WriteFailure::SyncDirectory(e) => e,
    })
}

/// Writes a temp file next to `path`, syncs it, renames it over `path` and syncs the directory.
fn write_atomically(fs: &dyn FileSystem, path: &Path, bytes: &[u8]) -> Result<(), WriteFailure> {
    let Some(file_name) = path.file_name() else {
        return Err(WriteFailure::Write(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the offset file path does not name a file",
        )));
    };
    let dir = parent_dir(path);
    let temp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fs
        .create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            // A failed sync is final: the file is dropped, and the next commit writes a new one.
            file.sync_all()
        })
        .and_then(|()| fs.rename(&temp, path));
    if let Err(err) = written {
        // Best effort: the temp file may not exist, and the write error is what matters.
        let _ = fs.remove_file(&temp);
        return Err(WriteFailure::Write(err));
    }
    fs.sync_dir(dir).map_err(WriteFailure::SyncDirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;

    use serde_json::json;

    use crate::fs::LocalFs;

    fn partition(file: &str) -> SourcePartition {
        SourcePartition::single("filename", file)
    }

    fn offset(position: u64) -> SourceOffset {
        SourceOffset::single("position", position)
    }

    fn tempdir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temp dir: {e}"),
        }
    }

    fn open(path: &Path) -> FileOffsetStore {
        match FileOffsetStore::open(Arc::new(LocalFs), path) {
            Ok(store) => store,
            Err(e) => panic!("cannot open: {e}"),
        }
    }

    fn put(
        store: &mut FileOffsetStore,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) {
        if let Err(e) = store.put(connector, offsets) {
            panic!("put failed: {e}");
        }
    }

    fn read(path: &Path) -> Vec<u8> {
        match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        if let Err(e) = fs::write(path, bytes) {
            panic!("cannot write {}: {e}", path.display());
        }
    }

    fn open_err(path: &Path) -> OffsetStoreError {
        match FileOffsetStore::open(Arc::new(LocalFs), path) {
            Ok(store) => panic!("expected an error, opened {store:?}"),
            Err(e) => e,
        }
    }

    fn assert_corrupt(path: &Path, reason_part: &str) {
        let err = open_err(path);
        let message = err.to_string();
        match err {
            OffsetStoreError::Corrupt { path: p, reason } => {
                assert_eq!(p, path);
                assert!(reason.contains(reason_part), "{reason}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// A file in the store's format with a correct checksum over `offsets`.
    fn file_with(version: Value, offsets: Value) -> Vec<u8> {
        let checksum = fnv1a64(canonical(&offsets).as_bytes());
        let root =
            json!({"version": version, "checksum": format!("{checksum:016x}"), "offsets": offsets});
        root.to_string().into_bytes()
    }

    #[test]
    fn offsets_are_bound_to_one_cluster() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        assert_eq!(store.cluster(), None);
        store.bind_cluster("cluster-a", false).expect("bind");
        put(&mut store, "c", &[(partition("a"), offset(3))]);
        let text = String::from_utf8(read(&path)).expect("utf-8");
        assert!(
            text.starts_with("{\"version\":1,\"cluster\":\"cluster-a\",\"checksum\""),
            "{text}"
        );

        let mut reopened = open(&path);
        assert_eq!(reopened.cluster(), Some("cluster-a"));
        reopened
            .bind_cluster("cluster-a", false)
            .expect("the same cluster");
        let err = reopened
            .bind_cluster("cluster-b", false)
            .expect_err("another cluster");
        let message = err.to_string();
        assert!(
            matches!(err, OffsetStoreError::OtherCluster { .. }),
            "{err:?}"
        );
        for part in ["cluster-a", "cluster-b", &path.display().to_string()] {
            assert!(message.contains(part), "{message}");
        }
        assert_eq!(reopened.cluster(), Some("cluster-a"));
        assert_eq!(reopened.get("c", &partition("a")), Some(offset(3)));
    }

    #[test]
    fn a_rebind_keeps_the_offsets_and_is_written_with_the_next_commit() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        store.bind_cluster("cluster-a", false).expect("bind");
        put(&mut store, "c", &[(partition("a"), offset(3))]);

        let mut moved = open(&path);
        moved.bind_cluster("cluster-b", true).expect("rebind");
        assert_eq!(open(&path).cluster(), Some("cluster-a"), "not written yet");
        // Unchanged offsets: the file is written all the same, for the binding.
        put(&mut moved, "c", &[(partition("a"), offset(3))]);
        let reopened = open(&path);
        assert_eq!(reopened.cluster(), Some("cluster-b"));
        assert_eq!(reopened.get("c", &partition("a")), Some(offset(3)));
    }

    #[test]
    fn a_file_without_a_cluster_is_bound_to_the_first_one() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        write(&path, &hand_written_file());
        let mut store = open(&path);
        assert_eq!(store.cluster(), None);
        store.bind_cluster("cluster-a", false).expect("bind");
        put(&mut store, "c", &[]);
        assert_eq!(open(&path).cluster(), Some("cluster-a"));
        assert_eq!(open(&path).get("c", &partition("a")), Some(offset(9)));
    }

    #[test]
    fn a_cluster_that_is_not_an_id_is_corrupt() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        for cluster in [json!(""), json!(7)] {
            let checksum = fnv1a64(b"[]");
            let root = json!({"version": 1, "cluster": cluster, "checksum": format!("{checksum:016x}"), "offsets": []});
            write(&path, root.to_string().as_bytes());
            assert_corrupt(&path, "\"cluster\" is not a cluster id");
        }
    }

    /// A file as an older version (or a person) wrote it: no cluster, one offset, a valid checksum.
    fn hand_written_file() -> Vec<u8> {
        file_with(
            json!(1),
            json!([{"key": ["c", {"filename": "a"}], "value": {"position": 9}}]),
        )
    }

    #[test]
    fn missing_file_is_an_empty_store() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let store = open(&path);
        assert_eq!(store.path(), path);
        assert_eq!(store.get("c", &partition("a")), None);
        assert!(store.offsets("c").is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn round_trip_across_reopen() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        let table = SourcePartition::new(
            json!({"table": "orders", "protocol": "1"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let ts = SourceOffset::new(
            json!({"timestamp": 1_700_000_000_000i64, "timestamp_nanos": 5, "incrementing": 42, "f": 0.25})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        put(
            &mut store,
            "jdbc",
            &[(table.clone(), ts.clone()), (partition("b"), offset(7))],
        );
        let reopened = open(&path);
        assert_eq!(reopened.get("jdbc", &table), Some(ts.clone()));
        assert_eq!(reopened.get("jdbc", &partition("b")), Some(offset(7)));
        assert_eq!(reopened.get("other", &table), None);
        assert_eq!(reopened.offsets("jdbc"), store.offsets("jdbc"));
        assert_eq!(
            reopened.offsets("jdbc"),
            vec![(partition("b"), offset(7)), (table, ts)]
        );
    }

    #[test]
    fn file_layout_is_the_documented_one() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(
            &mut store,
            "file-source",
            &[(partition("/tmp/in.txt"), offset(1024))],
        );
        let text = String::from_utf8(read(&path)).unwrap_or_default();
        let entries =
            r#"[{"key":["file-source",{"filename":"/tmp/in.txt"}],"value":{"position":1024}}]"#;
        let checksum = format!("{:016x}", fnv1a64(entries.as_bytes()));
        assert_eq!(
            text,
            format!(
                "{{\"version\":1,\"checksum\":\"{checksum}\",\"offsets\":[\n{}\n]}}\n",
                &entries[1..entries.len() - 1]
            )
        );
    }

    #[test]
    fn bytes_are_deterministic_whatever_the_insertion_order() {
        let dir = tempdir();
        let (first, second) = (dir.path().join("1.json"), dir.path().join("2.json"));
        let mut forward = serde_json::Map::new();
        forward.insert("z".into(), json!(1));
        forward.insert("a".into(), json!(2));
        let mut backward = serde_json::Map::new();
        backward.insert("a".into(), json!(2));
        backward.insert("z".into(), json!(1));

        let mut one = open(&first);
        put(&mut one, "b", &[(partition("x"), offset(1))]);
        put(
            &mut one,
            "a",
            &[
                (SourceMap::new(forward), offset(3)),
                (partition("y"), offset(2)),
            ],
        );
        let mut two = open(&second);
        put(
            &mut two,
            "a",
            &[
                (partition("y"), offset(2)),
                (SourceMap::new(backward), offset(3)),
            ],
        );
        put(&mut two, "b", &[(partition("x"), offset(1))]);
        assert_eq!(read(&first), read(&second));

        let text = String::from_utf8(read(&first)).unwrap_or_default();
        let a = text.find(r#"["a",{"a":2,"z":1}]"#);
        let ay = text.find(r#"["a",{"filename":"y"}]"#);
        let bx = text.find(r#"["b",{"filename":"x"}]"#);
        assert!(a.is_some() && a < ay && ay < bx, "{text}");
    }

    #[test]
    fn put_merges_into_existing_offsets() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(
            &mut store,
            "c",
            &[(partition("a"), offset(1)), (partition("b"), offset(1))],
        );
        put(
            &mut store,
            "c",
            &[(partition("a"), offset(2)), (partition("a"), offset(3))],
        );
        for store in [&store, &open(&path)] {
            assert_eq!(store.get("c", &partition("a")), Some(offset(3)));
            assert_eq!(store.get("c", &partition("b")), Some(offset(1)));
        }
    }

    #[test]
    fn alter_sets_and_removes_offsets_durably() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(
            &mut store,
            "c",
            &[(partition("a"), offset(1)), (partition("b"), offset(1))],
        );
        put(&mut store, "d", &[(partition("a"), offset(7))]);
        let changes = [(partition("a"), None), (partition("b"), Some(offset(9)))];
        if let Err(e) = store.alter("c", &changes) {
            panic!("alter failed: {e}");
        }
        for store in [&store, &open(&path)] {
            assert_eq!(store.offsets("c"), [(partition("b"), offset(9))]);
            assert_eq!(
                store.get("d", &partition("a")),
                Some(offset(7)),
                "another connector's"
            );
        }
        if let Err(e) = store.alter("c", &[(partition("b"), None)]) {
            panic!("alter failed: {e}");
        }
        for store in [&store, &open(&path)] {
            assert!(store.offsets("c").is_empty());
        }
        assert!(!String::from_utf8_lossy(&read(&path)).contains(r#"["c""#));
    }

    #[test]
    fn lookup_matches_equal_partitions_in_any_key_order() {
        let dir = tempdir();
        let mut store = open(&dir.path().join("offsets.json"));
        let mut forward = serde_json::Map::new();
        forward.insert("table".into(), json!("t"));
        forward.insert("protocol".into(), json!("1"));
        let mut backward = serde_json::Map::new();
        backward.insert("protocol".into(), json!("1"));
        backward.insert("table".into(), json!("t"));
        put(&mut store, "c", &[(SourceMap::new(forward), offset(1))]);
        put(
            &mut store,
            "c",
            &[(SourceMap::new(backward.clone()), offset(2))],
        );
        assert_eq!(store.offsets("c").len(), 1);
        assert_eq!(store.get("c", &SourceMap::new(backward)), Some(offset(2)));
    }

    #[test]
    fn connectors_are_kept_apart() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(&mut store, "one", &[(partition("shared"), offset(1))]);
        put(&mut store, "two", &[(partition("shared"), offset(2))]);
        put(&mut store, "one", &[(partition("own"), offset(3))]);
        let reopened = open(&path);
        assert_eq!(reopened.get("one", &partition("shared")), Some(offset(1)));
        assert_eq!(reopened.get("two", &partition("shared")), Some(offset(2)));
        assert_eq!(reopened.get("two", &partition("own")), None);
        assert_eq!(reopened.offsets("one").len(), 2);
        assert_eq!(
            reopened.offsets("two"),
            vec![(partition("shared"), offset(2))]
        );
    }

    #[test]
    fn torn_file_is_corrupt() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(
            &mut store,
            "c",
            &[(partition("a"), offset(1)), (partition("b"), offset(22))],
        );
        let whole = read(&path);
        let content_len = whole.len() - 1;
        for cut in [
            0,
            1,
            10,
            content_len / 3,
            content_len / 2,
            content_len - 2,
            content_len - 1,
        ] {
            write(&path, &whole[..cut]);
            let reason = if cut == 0 { "empty" } else { "not valid JSON" };
            assert_corrupt(&path, reason);
        }
        write(&path, b"   \n");
        assert_corrupt(&path, "empty");
    }

    #[test]
    fn non_json_and_wrong_shapes_are_corrupt() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        for (bytes, reason) in [
            (b"\x00\x01binary".to_vec(), "not valid JSON"),
            (b"[1,2]".to_vec(), "expected a JSON object"),
            (
                br#"{"checksum":"0","offsets":[]}"#.to_vec(),
                "\"version\" is missing",
            ),
            (
                br#"{"version":"1","checksum":"0","offsets":[]}"#.to_vec(),
                "not a number",
            ),
            (br#"{"version":1,"offsets":[]}"#.to_vec(), "\"checksum\""),
            (
                br#"{"version":1,"checksum":"0"}"#.to_vec(),
                "\"offsets\" is missing",
            ),
            (file_with(json!(1), json!({"a": 1})), "not an array"),
            (
                file_with(json!(1), json!([{"key": "c", "value": {}}])),
                "entry 0",
            ),
            (
                file_with(json!(1), json!([{"key": ["c"], "value": {}}])),
                "\"key\" is not",
            ),
            (
                file_with(json!(1), json!([{"key": [1, {}], "value": {}}])),
                "\"key\" is not",
            ),
            (
                file_with(json!(1), json!([{"key": ["c", {}]}])),
                "\"value\"",
            ),
            (
                file_with(json!(1), json!([{"key": ["c", {}], "value": 3}])),
                "\"value\"",
            ),
            (
                file_with(
                    json!(1),
                    json!([
                        {"key": ["c", {"f": "a"}], "value": {"p": 1}},
                        {"key": ["c", {"f": "a"}], "value": {"p": 2}}
                    ]),
                ),
                "entry 1: a second offset",
            ),
        ] {
            write(&path, &bytes);
            assert_corrupt(&path, reason);
        }
    }

    #[test]
    fn hand_written_file_with_valid_checksum_is_accepted() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        write(&path, &hand_written_file());
        assert_eq!(open(&path).get("c", &partition("a")), Some(offset(9)));
    }

    #[test]
    fn checksum_mismatch_is_corrupt() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        put(&mut store, "c", &[(partition("a"), offset(5))]);
        let text = String::from_utf8(read(&path)).unwrap_or_default();
        let edited = text.replace(r#""position":5"#, r#""position":6"#);
        assert_ne!(edited, text);
        write(&path, edited.as_bytes());
        assert_corrupt(&path, "checksum mismatch");
    }

    #[test]
    fn unknown_version_is_an_error() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        write(&path, &file_with(json!(2), json!([])));
        match open_err(&path) {
            OffsetStoreError::UnsupportedVersion { path: p, version } => {
                assert_eq!(p, path);
                assert_eq!(version, "2");
            }
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_path_is_a_read_error() {
        let dir = tempdir();
        match open_err(dir.path()) {
            OffsetStoreError::Read { path, .. } => assert_eq!(path, dir.path()),
            other => panic!("expected Read, got {other:?}"),
        }
    }

    #[test]
    fn failed_write_leaves_memory_unchanged() {
        let dir = tempdir();
        let missing = dir.path().join("missing").join("offsets.json");
        let mut store = open(&missing);
        match store.put("c", &[(partition("a"), offset(1))]) {
            Err(OffsetStoreError::Write { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a write error, got {other:?}"),
        }
        assert_eq!(store.get("c", &partition("a")), None);
        assert!(store.offsets("c").is_empty());

        let sub = dir.path().join("sub");
        if let Err(e) = fs::create_dir(&sub) {
            panic!("cannot create {}: {e}", sub.display());
        }
        let path = sub.join("offsets.json");
        let mut store = open(&path);
        put(&mut store, "c", &[(partition("a"), offset(1))]);
        if let Err(e) = fs::remove_dir_all(&sub) {
            panic!("cannot remove {}: {e}", sub.display());
        }
        assert!(store
            .put(
                "c",
                &[(partition("a"), offset(2)), (partition("b"), offset(1))]
            )
            .is_err_and(|e| matches!(e, OffsetStoreError::Write { .. })));
        assert_eq!(store.get("c", &partition("a")), Some(offset(1)));
        assert_eq!(store.get("c", &partition("b")), None);
        assert_eq!(store.offsets("c"), vec![(partition("a"), offset(1))]);
    }

    #[test]
    fn failed_rename_removes_the_temp_file() {
        let dir = tempdir();
        let path = dir.path().join("offsets.json");
        let mut store = open(&path);
        let blocker = path.join("child");
        if let Err(e) = fs::create_dir_all(&blocker) {
            panic!("cannot create {}: {e}", blocker.display());
        }
        assert!(store
            .put("c", &[(partition("a"), offset(1))])
            .is_err_and(|e| matches!(e, OffsetStoreError::Write { .. })));
        assert_eq!(store.get("c", &partition("a")), None);
        let names: Vec<_> = fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, vec![std::ffi::OsString::from("offsets.json")]);
    }

    #[test]
    fn put_without_changes_does_not_write() {
        let dir = tempdir();
        let sub = dir.path().join("sub");
        if let Err(e) = fs::create_dir(&sub) {
            panic!("cannot create {}: {e}", sub.display());
        }
        let mut store = open(&sub.join("offsets.json"));
        put(&mut store, "c", &[(partition("a"), offset(1))]);
        if let Err(e) = fs::remove_dir_all(&sub) {
            panic!("cannot remove {}: {e}", sub.display());
        }
        put(&mut store, "c", &[(partition("a"), offset(1))]);
        put(&mut store, "c", &[]);
        assert_eq!(store.get("c", &partition("a")), Some(offset(1)));
    }
}
