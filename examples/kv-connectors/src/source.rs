//! `KvLogSourceConnector`: copies the service's event logs into a topic, one source partition per log
//! (`{"stream": S}`), its offset the next event to read (`{"next": N}`). Each task reads the streams the
//! connector gave it, at most `batch.max` events of each per poll, and resumes from the committed offsets.
//!
//! The runtime may drop a pending `poll` (to commit, or to stop): the task then forgets the batch it was
//! reading and its connection, whose half-read answer would otherwise be taken for the next one's. (The
//! simulation found that: without it, records went to Kafka under other records' offsets.)
//!
//! Keys: `kv.address` (`host:port`, required), `topic` (required), `streams` (how many logs: 0 to N-1,
//! required), `batch.max` (default 20), `poll.interval.ms` (the pause when nothing is new, default 200),
//! and `bug`, a deliberate mistake for the crate's own tests of the simulation: `none` (the default) or
//! `offset-at-log-end` (each record's offset is where the log ended when it was read, ahead of what was
//! read when a batch stopped short: a restart skips the rest).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SourceConnector, SourceMap, SourceRecord,
    SourceTask, SourceTaskContext,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Data;
use sluice_core::net::Dialer;

use crate::protocol::{KvClient, KvError};

const ADDRESS: &str = "kv.address";
const TOPIC: &str = "topic";
const STREAMS: &str = "streams";
const BATCH_MAX: &str = "batch.max";
const POLL_INTERVAL: &str = "poll.interval.ms";
const BUG: &str = "bug";
/// The streams of one task, set by the connector.
const TASK_STREAMS: &str = "task.streams";
const BUGS: &[&str] = &["none", "offset-at-log-end"];

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(
            ADDRESS,
            ConfigType::String,
            "The key-value service, as host:port.",
        )
        .required(
            TOPIC,
            ConfigType::String,
            "The topic to write the events to.",
        )
        .required(
            STREAMS,
            ConfigType::Int,
            "How many event logs there are (0 to N-1).",
        )
        .optional(
            BATCH_MAX,
            ConfigType::Int,
            "20",
            "Events read from each log per poll.",
        )
        .optional(
            POLL_INTERVAL,
            ConfigType::Long,
            "200",
            "How long to wait when no log has anything new, in milliseconds.",
        )
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate mistake, for tests of the simulation: none or offset-at-log-end.",
        )
        .check(known_bug)
        .optional(TASK_STREAMS, ConfigType::List, "", "Set by the connector.")
}

fn known_bug(value: &str) -> Result<(), String> {
    crate::one_of(value, BUGS)
}

/// Spreads the streams over the tasks.
pub struct KvLogSourceConnector {
    dialer: Arc<dyn Dialer>,
    config: ConfigMap,
    streams: i32,
}

impl KvLogSourceConnector {
    pub fn new(dialer: Arc<dyn Dialer>) -> KvLogSourceConnector {
        KvLogSourceConnector {
            dialer,
            config: ConfigMap::new(),
            streams: 0,
        }
    }
}

#[async_trait]
impl Connector for KvLogSourceConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(config)?;
        self.streams = parsed.int(STREAMS);
        self.config = parsed.map().clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        let tasks = max_tasks.clamp(1, self.streams.max(1) as usize);
        (0..tasks)
            .map(|task| {
                let streams: Vec<String> = (0..self.streams)
                    .filter(|s| *s as usize % tasks == task)
                    .map(|s| s.to_string())
                    .collect();
                let mut config = self.config.clone();
                config.insert(TASK_STREAMS.to_owned(), streams.join(","));
                config
            })
            .collect()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for KvLogSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(KvLogSourceTask {
            dialer: self.dialer.clone(),
            address: String::new(),
            topic: Arc::from(""),
            batch_max: 0,
            poll_interval: Duration::ZERO,
            offset_at_log_end: false,
            next: BTreeMap::new(),
            client: None,
        })
    }
}

struct KvLogSourceTask {
    dialer: Arc<dyn Dialer>,
    address: String,
    topic: Arc<str>,
    batch_max: usize,
    poll_interval: Duration,
    offset_at_log_end: bool,
    /// Per stream, the next event to read.
    next: BTreeMap<i64, i64>,
    client: Option<KvClient>,
}

impl KvLogSourceTask {
    /// Reads one batch. The connection is held by this call while it waits for the answer: if the
    /// runtime drops the poll meanwhile, the connection goes with it, and no half-read answer is left for
    /// the next request to misread.
    async fn read(&mut self, stream: i64, from: i64) -> Result<(Vec<(i64, String)>, i64), KvError> {
        let mut client = match self.client.take() {
            Some(client) => client,
            None => KvClient::connect(&*self.dialer, &self.address).await?,
        };
        let read = client.read(stream, from, self.batch_max).await?;
        self.client = Some(client);
        Ok(read)
    }
}

fn partition(stream: i64) -> SourceMap {
    SourceMap::single("stream", stream)
}

#[async_trait]
impl SourceTask for KvLogSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = config_def().parse(context.configs())?;
        self.address = config.string(ADDRESS).to_owned();
        self.topic = Arc::from(config.string(TOPIC));
        self.batch_max = config.int(BATCH_MAX).max(1) as usize;
        self.poll_interval = Duration::from_millis(config.long(POLL_INTERVAL).max(1) as u64);
        self.offset_at_log_end = config.string(BUG) == "offset-at-log-end";
        for stream in config.list(TASK_STREAMS) {
            let stream: i64 = stream.parse().map_err(|_| {
                ConnectError::fatal(format!("{TASK_STREAMS}: {stream:?} is no stream"))
            })?;
            let next = context
                .offset_storage_reader()
                .offset(&partition(stream))
                .and_then(|offset| offset.get("next")?.as_i64())
                .unwrap_or(0);
            self.next.insert(stream, next);
        }
        Ok(())
    }

    /// Cancel-safe: the positions move only once every read is done, so a poll the runtime drops loses
    /// nothing.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let mut records = Vec::new();
        let mut advanced = Vec::new();
        let streams: Vec<(i64, i64)> = self.next.iter().map(|(s, n)| (*s, *n)).collect();
        for (stream, from) in streams {
            let (events, end) = self
                .read(stream, from)
                .await
                .map_err(|e| ConnectError::retriable(e.to_string()))?;
            for (seq, text) in events {
                let next = if self.offset_at_log_end { end } else { seq + 1 };
                let mut record = SourceRecord::new(
                    partition(stream),
                    SourceMap::single("next", next),
                    self.topic.clone(),
                    Data::string(text),
                );
                record.key = Data::string(format!("stream-{stream}"));
                records.push(record);
                advanced.push((stream, seq + 1));
            }
        }
        self.next.extend(advanced);
        if records.is_empty() {
            tokio::time::sleep(self.poll_interval).await;
        }
        Ok(records)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.client = None;
        Ok(())
    }
}
