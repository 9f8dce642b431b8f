//! `KvSinkConnector`: writes each record's value under the key `<topic>/<partition>/<offset>`, so the
//! service holds each Kafka record once however often it is delivered. `put` writes at once; the flush
//! before each offset commit makes the writes durable (`SYNC`), and only then are the offsets committed.
//!
//! A connection that breaks takes the writes made since the last sync with it; the task then fails its
//! next flush (closing its connection, so nothing it stored since is kept either), and the runtime goes
//! back to the committed offsets and delivers those records again.
//!
//! Keys: `kv.address` (`host:port`, required); `bug`, a deliberate mistake for the crate's own tests of the
//! simulation: `none` (the default) or `commit-before-sync` (the flush sends `SYNC` without waiting for
//! the answer, so offsets can be committed before the writes are durable).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;
use sluice_core::net::Dialer;

use crate::protocol::{KvClient, KvError};

const ADDRESS: &str = "kv.address";
const BUG: &str = "bug";
const BUGS: &[&str] = &["none", "commit-before-sync"];

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(
            ADDRESS,
            ConfigType::String,
            "The key-value service, as host:port.",
        )
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate mistake, for tests of the simulation: none or commit-before-sync.",
        )
        .check(known_bug)
}

fn known_bug(value: &str) -> Result<(), String> {
    match BUGS.contains(&value) {
        true => Ok(()),
        false => Err(format!("must be one of {}", BUGS.join(", "))),
    }
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
            commit_before_sync: false,
            client: None,
            unsynced: false,
            maybe_lost: false,
        })
    }
}

struct KvSinkTask {
    dialer: Arc<dyn Dialer>,
    address: String,
    commit_before_sync: bool,
    client: Option<KvClient>,
    /// Writes made since the last sync.
    unsynced: bool,
    /// A connection broke while it held unsynced writes: they may be gone.
    maybe_lost: bool,
}

impl KvSinkTask {
    async fn client(&mut self) -> Result<&mut KvClient, KvError> {
        if self.client.is_none() {
            self.client = Some(KvClient::connect(&*self.dialer, &self.address).await?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// The connection is gone, and with it perhaps what it had not synced.
    fn broke(&mut self, e: KvError) -> ConnectError {
        self.client = None;
        if self.unsynced {
            self.maybe_lost = true;
        }
        ConnectError::retriable(e.to_string())
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
        self.commit_before_sync = config.string(BUG) == "commit-before-sync";
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            match &record.value.value {
                Value::String(text) => entries.push((key(record), text.clone())),
                other => {
                    return Err(ConnectError::fatal(format!(
                        "{}: the key-value sink stores strings, not {other:?}",
                        key(record)
                    )))
                }
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let written = match self.client().await {
            Ok(client) => client.put_all(&entries).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                self.unsynced = true;
                Ok(())
            }
            Err(e @ KvError::NotAToken { .. }) => Err(ConnectError::fatal(e.to_string())),
            // Part of the batch may be stored: the runtime hands the same batch over again.
            Err(e) => {
                self.unsynced = true;
                Err(self.broke(e))
            }
        }
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        if self.maybe_lost {
            // The runtime goes back to the committed offsets and delivers everything since again; what
            // this connection stored meanwhile is dropped with it, so nothing is written twice.
            self.client = None;
            self.maybe_lost = false;
            self.unsynced = false;
            return Err(ConnectError::retriable(
                "a connection to the key-value service broke before it synced its writes",
            ));
        }
        if self.unsynced {
            let wait = !self.commit_before_sync;
            let synced = match self.client().await {
                Ok(client) if !wait => client.sync_without_waiting().await,
                Ok(client) => client.sync().await,
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                let error = self.broke(e);
                self.maybe_lost = false;
                self.unsynced = false;
                return Err(error);
            }
            self.unsynced = false;
        }
        Ok(offsets.clone())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.client = None;
        Ok(())
    }
}
