//! `KvSinkConnector`: writes each record's value under the key `<topic>/<partition>/<offset>`, so the
//! service holds each Kafka record once however often it is delivered; or, with `kv.key=record`, under
//! the record's own key, as an upsert (`UPSERT`: the key holds the latest value written, with the
//! record's coordinates as its version, and the service ignores a write older than what the key holds):
//! delivered again, a record writes the same value again, and a zombie's late write of an older record
//! changes nothing, so each key ends with its latest record (effectively once).
//!
//! `put` writes at once; writes become durable when the task syncs them (`SYNC`), after
//! `kv.sync.records` writes or, at a commit, once `kv.sync.interval.ms` passed since the last sync. Only
//! synced offsets are committed (`pre_commit` returns them), as sinks that write files or batches commit
//! only what they closed.
//!
//! Writes not yet synced are dropped by the service with the connection. The task drops its connection
//! itself, and with it what it wrote since the last sync, when the connection breaks and when the
//! runtime closes partitions (revoked or lost: their records go to another task now, which starts from
//! the committed, synced, offsets). Its next flush then fails, dropping the connection again with what
//! was written meanwhile, so the runtime goes back to the committed offsets and delivers everything since
//! again.
//!
//! Keys: `kv.address` (`host:port`, required), `kv.key` (`coordinates`, the default, or `record`),
//! `kv.sync.records` (default 100), `kv.sync.interval.ms` (default 3000); `bug`, a deliberate mistake for the crate's own tests of the simulation: `none` (the
//! default), `commit-before-sync` (a sync sends `SYNC` without waiting for the answer, so offsets can be
//! committed before the writes are durable) or `keep-lost-writes` (closing partitions keeps the
//! connection and what it wrote of them, which the next sync makes durable behind the new owner's back).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;
use sluice_core::net::Dialer;
use tokio::time::Instant;

use crate::protocol::{Entry, KvClient, KvError};

const ADDRESS: &str = "kv.address";
const KEY: &str = "kv.key";
const KEYS: &[&str] = &["coordinates", "record"];
const SYNC_RECORDS: &str = "kv.sync.records";
const SYNC_INTERVAL: &str = "kv.sync.interval.ms";
const BUG: &str = "bug";
const BUGS: &[&str] = &[
    "none",
    "commit-before-sync",
    "keep-lost-writes",
    "blind-upserts",
];

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(
            ADDRESS,
            ConfigType::String,
            "The key-value service, as host:port.",
        )
        .optional(
            KEY,
            ConfigType::String,
            "coordinates",
            "What the service's keys are: coordinates (<topic>/<partition>/<offset>) or record (the record's key, as an upsert).",
        )
        .check(|value| crate::one_of(value, KEYS))
        .optional(
            SYNC_RECORDS,
            ConfigType::Int,
            "100",
            "Sync after this many writes.",
        )
        .optional(
            SYNC_INTERVAL,
            ConfigType::Long,
            "3000",
            "At a commit, sync if the last sync is this old (milliseconds).",
        )
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate mistake, for tests of the simulation: none, commit-before-sync, keep-lost-writes or blind-upserts.",
        )
        .check(known_bug)
}

fn known_bug(value: &str) -> Result<(), String> {
    crate::one_of(value, BUGS)
}

/// Splits the job into identical tasks; the consumer group spreads the partitions over them.
pub struct KvSinkConnector {
    dialer: Arc<dyn Dialer>,
    config: ConfigMap,
}

impl KvSinkConnector {
    pub fn new(dialer: Arc<dyn Dialer>) -> KvSinkConnector {
        KvSinkConnector {
            dialer,
            config: ConfigMap::new(),
        }
    }
}

#[async_trait]
impl Connector for KvSinkConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        self.config = config_def().parse(config)?.map().clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone(); max_tasks.max(1)]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for KvSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(KvSinkTask {
            dialer: self.dialer.clone(),
            address: String::new(),
            upsert: false,
            blind_upserts: false,
            sync_records: 0,
            sync_interval: Duration::ZERO,
            commit_before_sync: false,
            keep_lost_writes: false,
            client: None,
            partitions: BTreeMap::new(),
            unsynced: 0,
            rolled_back: false,
            last_sync: Instant::now(),
        })
    }
}

/// What the task knows of one partition.
#[derive(Debug, Default)]
struct Progress {
    /// The offset after the last record written, synced or not.
    written: Option<i64>,
    /// The offset after the last record made durable: what may be committed.
    synced: Option<i64>,
}

struct KvSinkTask {
    dialer: Arc<dyn Dialer>,
    address: String,
    /// `kv.key=record`: the record's key is the service's key.
    upsert: bool,
    /// The planted bug `blind-upserts`: upserts overwrite whatever the key holds (`PUT`), newer or not.
    blind_upserts: bool,
    sync_records: usize,
    sync_interval: Duration,
    commit_before_sync: bool,
    keep_lost_writes: bool,
    client: Option<KvClient>,
    partitions: BTreeMap<TopicPartition, Progress>,
    /// Writes since the last sync.
    unsynced: usize,
    /// Writes were dropped since the last flush: it must fail, so the runtime delivers them again.
    rolled_back: bool,
    last_sync: Instant,
}

impl KvSinkTask {
    async fn client(&mut self) -> Result<&mut KvClient, KvError> {
        if self.client.is_none() {
            self.client = Some(KvClient::connect(&*self.dialer, &self.address).await?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Makes every write so far durable; if that fails, rolls back.
    async fn sync(&mut self) {
        let wait = !self.commit_before_sync;
        let synced = match self.client().await {
            Ok(client) if wait => client.sync().await,
            Ok(client) => client.sync_without_waiting().await,
            Err(e) => Err(e),
        };
        if let Err(e) = synced {
            tracing::warn!(error = %e, "the key-value service did not sync; going back to the synced offsets");
            self.roll_back();
            return;
        }
        for progress in self.partitions.values_mut() {
            // A delivery that went back rewrites what is durable already.
            progress.synced = progress.synced.max(progress.written);
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
    }

    /// Stores a batch; `written` is the offset after its last record, per partition.
    async fn write(
        &mut self,
        entries: Vec<Entry>,
        written: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ConnectError> {
        if entries.is_empty() {
            return Ok(());
        }
        let stored = match self.client().await {
            Ok(client) => client.put_all(&entries).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(()) => {
                for (tp, next) in written {
                    self.partitions.entry(tp).or_default().written = Some(next);
                }
                self.unsynced += entries.len();
                if self.unsynced >= self.sync_records {
                    self.sync().await;
                }
                Ok(())
            }
            Err(e @ KvError::NotAToken { .. }) => Err(ConnectError::fatal(e.to_string())),
            Err(e) => {
                // Part of the batch may be stored: drop it all and go back to what is durable.
                tracing::warn!(error = %e, "the key-value service connection broke; going back to the synced offsets");
                self.roll_back();
                Ok(())
            }
        }
    }

    /// Drops the connection, and with it every write since the last sync; the next flush fails, so that
    /// the runtime delivers those records again.
    fn roll_back(&mut self) {
        self.client = None;
        self.unsynced = 0;
        self.rolled_back = true;
        for progress in self.partitions.values_mut() {
            progress.written = progress.synced;
        }
    }
}

impl KvSinkTask {
    /// What to store for a record: under its coordinates, or under its key with its coordinates as the
    /// version.
    fn entry(&self, record: &SinkRecord, value: &str) -> Result<Entry, ConnectError> {
        if !self.upsert {
            return Ok(Entry {
                key: key(record),
                value: value.to_owned(),
                version: None,
                only_if_newer: false,
            });
        }
        match &record.key.value {
            Value::String(record_key) => Ok(Entry {
                key: record_key.clone(),
                value: value.to_owned(),
                version: Some(key(record)),
                only_if_newer: !self.blind_upserts,
            }),
            other => Err(ConnectError::fatal(format!(
                "{}: kv.key=record needs string keys, not {other:?}",
                key(record)
            ))),
        }
    }
}

fn key(record: &SinkRecord) -> String {
    format!(
        "{}/{}/{}",
        record.topic, record.partition, record.kafka_offset
    )
}

#[async_trait]
impl SinkTask for KvSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let config = config_def().parse(context.configs())?;
        self.address = config.string(ADDRESS).to_owned();
        self.upsert = config.string(KEY) == "record";
        self.blind_upserts = config.string(BUG) == "blind-upserts";
        self.sync_records = config.int(SYNC_RECORDS).max(1) as usize;
        self.sync_interval = Duration::from_millis(config.long(SYNC_INTERVAL).max(0) as u64);
        self.commit_before_sync = config.string(BUG) == "commit-before-sync";
        self.keep_lost_writes = config.string(BUG) == "keep-lost-writes";
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        for tp in partitions {
            self.partitions.insert(tp.clone(), Progress::default());
        }
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        if self.rolled_back {
            // The next flush fails and the runtime delivers these again: writing them now, past the
            // dropped ones, could let a sync claim what is not there.
            return Ok(());
        }
        let mut entries = Vec::with_capacity(records.len());
        let mut written: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for record in &records {
            let tp = record.topic_partition();
            match &record.value.value {
                Value::String(text) => entries.push(self.entry(record, text)?),
                other => {
                    return Err(ConnectError::fatal(format!(
                        "{}: the key-value sink stores strings, not {other:?}",
                        key(record)
                    )))
                }
            }
            let progress = self.partitions.entry(tp.clone()).or_default();
            // Nothing of the partition is durable yet: delivery resumes at its first record.
            progress.synced.get_or_insert(record.kafka_offset);
            written.insert(tp, record.kafka_offset + 1);
        }
        self.write(entries, written).await
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        if self.unsynced > 0 && self.last_sync.elapsed() >= self.sync_interval {
            self.sync().await;
        }
        if self.rolled_back {
            // The runtime starts again from the committed offsets.
            self.rolled_back = false;
            return Err(ConnectError::retriable(
                "writes to the key-value service were dropped before they were synced",
            ));
        }
        Ok(offsets
            .keys()
            .filter_map(|tp| Some((tp.clone(), self.partitions.get(tp)?.synced?)))
            .collect())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        if self.keep_lost_writes {
            return Ok(());
        }
        let closed: BTreeSet<&TopicPartition> = partitions.iter().collect();
        let holds_closed = self
            .partitions
            .iter()
            .any(|(tp, p)| closed.contains(tp) && p.written != p.synced);
        self.partitions.retain(|tp, _| !closed.contains(tp));
        if holds_closed {
            self.roll_back();
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.client = None;
        Ok(())
    }
}
