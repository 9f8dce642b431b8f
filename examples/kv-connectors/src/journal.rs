//! `KvJournalSinkConnector`: appends each record to a journal file on the worker's local disk, which the
//! key-value service's bulk loader ingests, one line per record: `<topic> <partition> <offset> <value>`.
//! Each task keeps its own file (`journal.file` with `.<task>` after it). It reaches the disk through the
//! [`FileSystem`] seam, so the same code runs on the machine's disk and on the simulation's.
//!
//! `put` appends; `pre_commit` syncs the file and approves only the offsets the sync made durable. Lines
//! not synced are cut off the file when they cannot be trusted any more: when a sync fails (the kernel
//! may have dropped them although a later sync succeeds), when a write fails (a line may be half
//! written), and when the runtime closes partitions while
//! some of their lines are unsynced (they belong to another task now, which starts from the committed
//! offsets). The next flush then fails, cutting off what was put meanwhile too, so the runtime goes back
//! to the committed offsets and delivers everything since again, once.
//!
//! Keys: `journal.file` (required); `bug`, a deliberate mistake for the crate's own tests of the
//! simulation: `none` (the default) or `commit-before-sync` (`pre_commit` approves what was written and
//! leaves the sync to the next `put`, so offsets are committed before their lines are durable).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;
use sluice_core::fs::{AppendFile, FileSystem};

const FILE: &str = "journal.file";
const BUG: &str = "bug";
const BUGS: &[&str] = &["none", "commit-before-sync"];

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(
            FILE,
            ConfigType::String,
            "The journal file; each task appends to its own, with `.<task>` after this name.",
        )
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate mistake, for tests of the simulation.",
        )
        .check(|value| crate::one_of(value, BUGS))
}

/// The journal sink connector, writing through `fs`.
pub struct KvJournalSinkConnector {
    fs: Arc<dyn FileSystem>,
    config: ConfigMap,
}

impl KvJournalSinkConnector {
    /// A connector whose tasks keep their journals on `fs`.
    pub fn new(fs: Arc<dyn FileSystem>) -> KvJournalSinkConnector {
        KvJournalSinkConnector {
            fs,
            config: ConfigMap::new(),
        }
    }
}

#[async_trait]
impl Connector for KvJournalSinkConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        config_def().parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        let file = self.config.get(FILE).cloned().unwrap_or_default();
        (0..max_tasks.max(1))
            .map(|task| {
                let mut config = self.config.clone();
                config.insert(FILE.to_owned(), format!("{file}.{task}"));
                config
            })
            .collect()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for KvJournalSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(JournalTask {
            fs: self.fs.clone(),
            path: String::new(),
            commit_before_sync: false,
            file: None,
            synced_len: 0,
            written: BTreeMap::new(),
            synced: BTreeMap::new(),
            broken: None,
            sync_due: false,
        })
    }
}

struct JournalTask {
    fs: Arc<dyn FileSystem>,
    path: String,
    commit_before_sync: bool,
    file: Option<Box<dyn AppendFile>>,
    /// The file's length at its last successful sync.
    synced_len: u64,
    /// Per partition, the offset after the last record appended, and after the last one synced.
    written: BTreeMap<TopicPartition, i64>,
    synced: BTreeMap<TopicPartition, i64>,
    /// Why the next flush must fail: unsynced lines were cut off, so what was put since the last commit
    /// must be delivered again.
    broken: Option<String>,
    /// The `commit-before-sync` bug approved lines that the next `put` syncs.
    sync_due: bool,
}

impl JournalTask {
    async fn file(&mut self) -> Result<&mut Box<dyn AppendFile>, ConnectError> {
        if self.file.is_none() {
            let mut file = self
                .fs
                .open_append(&self.path)
                .await
                .map_err(|e| failed("open", &self.path, e))?;
            self.synced_len = file
                .length()
                .await
                .map_err(|e| failed("stat", &self.path, e))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    async fn append(&mut self, line: &[u8]) -> Result<(), ConnectError> {
        let path = self.path.clone();
        let file = self.file().await?;
        let mut rest = line;
        while !rest.is_empty() {
            let written = file
                .write(rest)
                .await
                .map_err(|e| failed("write", &path, e))?;
            rest = &rest[written..];
        }
        Ok(())
    }

    /// Cuts off every unsynced line: what was put since the last sync must be delivered again.
    async fn cut_unsynced(&mut self) {
        if let Some(file) = &mut self.file {
            if file.truncate(self.synced_len).await.is_err() {
                // Open it again: a crash leaves what was synced, and the next sync says if it is gone.
                self.file = None;
            }
        }
        self.written = self.synced.clone();
    }

    /// Syncs the file: everything appended so far is durable.
    async fn sync(&mut self) -> Result<(), ConnectError> {
        let path = self.path.clone();
        let file = self.file().await?;
        match file.sync().await {
            Ok(()) => {
                self.synced_len = file.length().await.map_err(|e| failed("stat", &path, e))?;
                self.synced = self.written.clone();
                Ok(())
            }
            Err(e) => {
                self.cut_unsynced().await;
                Err(failed("sync", &path, e))
            }
        }
    }
}

fn failed(what: &str, path: &str, e: std::io::Error) -> ConnectError {
    ConnectError::retriable(format!("cannot {what} the journal {path}: {e}"))
}

#[async_trait]
impl SinkTask for JournalTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(context.configs())?;
        self.path = parsed.string(FILE).to_owned();
        self.commit_before_sync = parsed.string(BUG) == "commit-before-sync";
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        if std::mem::take(&mut self.sync_due) {
            self.sync().await?;
        }
        for record in records {
            let value = match &record.value.value {
                Value::String(text) => text.clone(),
                Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            };
            let line = format!(
                "{} {} {} {}\n",
                record.topic, record.partition, record.kafka_offset, value
            );
            if let Err(e) = self.append(line.as_bytes()).await {
                // A line may be half written: cut off everything unsynced, and have it come again.
                self.cut_unsynced().await;
                self.broken = Some(e.to_string());
                return Err(e);
            }
            self.written.insert(
                TopicPartition::new(&*record.topic, record.partition),
                record.kafka_offset + 1,
            );
        }
        Ok(())
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        if let Some(why) = self.broken.take() {
            // The runtime goes back to the committed offsets: what was put since comes again, once.
            self.cut_unsynced().await;
            return Err(ConnectError::retriable(why));
        }
        if self.commit_before_sync {
            self.sync_due = true;
            return Ok(approved(&self.written, offsets));
        }
        self.sync().await?;
        Ok(approved(&self.synced, offsets))
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let unsynced = partitions
            .iter()
            .any(|tp| self.written.get(tp) != self.synced.get(tp));
        if unsynced {
            self.cut_unsynced().await;
            self.broken = Some(format!(
                "lines put since the last sync were cut off the journal {} when partitions closed; they come again",
                self.path
            ));
        }
        for tp in partitions {
            self.written.remove(tp);
            self.synced.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

/// The offsets `durable` covers, of the partitions the runtime asks about.
fn approved(
    durable: &BTreeMap<TopicPartition, i64>,
    asked: &BTreeMap<TopicPartition, i64>,
) -> BTreeMap<TopicPartition, i64> {
    asked
        .keys()
        .filter_map(|tp| Some((tp.clone(), *durable.get(tp)?)))
        .collect()
}
