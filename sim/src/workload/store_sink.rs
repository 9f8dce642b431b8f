//! StoreSink: a sink connector writing record values to the [`DestinationStore`]. `put` buffers; `flush`
//! writes the buffer durably, so offsets are committed only for durable records.
//!
//! Its `bug` key plants a deliberate mistake, so tests can show the oracle catches each kind of anomaly:
//! `commit-before-flush` (pre_commit approves offsets before writing them), `pause-partition` (partition 0
//! is paused forever, so its records never arrive), `reverse-flush` (a flush writes its records
//! backwards), `write-twice` (every flush is written again, as a blindly retried write would be),
//! `garble-values` (values are written altered).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;

use super::destination::{DestinationStore, StoreFault};
use crate::protocol::Tp;

const BUG: &str = "bug";
const TASK_ID: &str = "task.id";

/// A deliberate mistake for the oracle to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkBug {
    None,
    CommitBeforeFlush,
    PausePartition,
    ReverseFlush,
    WriteTwice,
    GarbleValues,
}

impl SinkBug {
    fn parse(text: &str) -> Option<SinkBug> {
        Some(match text {
            "none" => SinkBug::None,
            "commit-before-flush" => SinkBug::CommitBeforeFlush,
            "pause-partition" => SinkBug::PausePartition,
            "reverse-flush" => SinkBug::ReverseFlush,
            "write-twice" => SinkBug::WriteTwice,
            "garble-values" => SinkBug::GarbleValues,
            _ => return None,
        })
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new().optional(
        BUG,
        ConfigType::String,
        "none",
        "A deliberate bug: none, commit-before-flush, pause-partition, reverse-flush, write-twice or garble-values.",
    )
}

pub struct StoreSinkConnector {
    store: Arc<DestinationStore>,
    /// The worker the connector's tasks run on.
    worker: usize,
    config: ConfigMap,
}

impl StoreSinkConnector {
    pub fn new(store: Arc<DestinationStore>, worker: usize) -> StoreSinkConnector {
        StoreSinkConnector {
            store,
            worker,
            config: ConfigMap::new(),
        }
    }
}

#[async_trait]
impl Connector for StoreSinkConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(config)?;
        if SinkBug::parse(parsed.string(BUG)).is_none() {
            return Err(ConnectError::fatal(format!(
                "bug: unknown value {:?}",
                parsed.string(BUG)
            )));
        }
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        let name = self.config.get("name").cloned().unwrap_or_default();
        (0..max_tasks.max(1))
            .map(|i| {
                let mut config = self.config.clone();
                config.insert(TASK_ID.into(), format!("{name}-{i}"));
                config
            })
            .collect()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for StoreSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(StoreSinkTask {
            store: self.store.clone(),
            worker: self.worker,
            task: String::new(),
            context: None,
            bug: SinkBug::None,
            epoch: 0,
            buffer: Vec::new(),
            deferred: Vec::new(),
        })
    }
}

pub struct StoreSinkTask {
    store: Arc<DestinationStore>,
    worker: usize,
    task: String,
    context: Option<SinkTaskContext>,
    bug: SinkBug,
    epoch: u64,
    buffer: Vec<(Tp, i64, String)>,
    /// Records pre_commit approved without writing (the commit-before-flush bug); written later.
    deferred: Vec<(Tp, i64, String)>,
}

impl StoreSinkTask {
    fn write(&mut self, records: Vec<(Tp, i64, String)>) {
        match self.bug {
            SinkBug::ReverseFlush => {
                self.store
                    .write(&self.task, self.epoch, records.into_iter().rev())
            }
            SinkBug::WriteTwice if !records.is_empty() => {
                self.store.write(&self.task, self.epoch, records.clone());
                self.epoch += 1;
                self.store.write(&self.task, self.epoch, records);
            }
            _ => self.store.write(&self.task, self.epoch, records),
        }
    }

    /// Stalls for a while, as a struck fault of this worker.
    async fn stall(&self, stall: std::time::Duration) {
        let from = crate::broker::now();
        self.store.strikes().record(self.worker, from, from + stall);
        tokio::time::sleep(stall).await;
    }

    fn write_deferred(&mut self) {
        let deferred = std::mem::take(&mut self.deferred);
        self.write(deferred);
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

#[async_trait]
impl SinkTask for StoreSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(context.configs())?;
        self.bug = SinkBug::parse(parsed.string(BUG)).unwrap_or(SinkBug::None);
        let task = context.configs().get(TASK_ID).cloned().unwrap_or_default();
        self.task = self.store.register_writer(&task, self.worker);
        self.context = Some(context);
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.epoch += 1;
        self.store.rewound(&self.task, self.epoch);
        if let (SinkBug::PausePartition, Some(context)) = (self.bug, &self.context) {
            let first: Vec<TopicPartition> = partitions
                .iter()
                .filter(|tp| tp.partition == 0)
                .cloned()
                .collect();
            context.pause(&first);
        }
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        if let Some(StoreFault::StallPut(stall)) = self
            .store
            .take_fault(|f| matches!(f, StoreFault::StallPut(_)))
        {
            self.stall(stall).await;
        }
        self.write_deferred();
        for record in records {
            let tp = Tp::new(&*record.topic, record.partition);
            let mut value = text(&record.value.value);
            if self.bug == SinkBug::GarbleValues {
                value.push('!');
            }
            self.buffer.push((tp, record.kafka_offset, value));
        }
        Ok(())
    }

    async fn flush(&mut self, _: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        let fault = self
            .store
            .take_fault(|f| matches!(f, StoreFault::StallFlush(_) | StoreFault::FailFlush));
        match fault {
            Some(StoreFault::StallFlush(stall)) => self.stall(stall).await,
            Some(StoreFault::FailFlush) => {
                // The write is lost; the runtime rewinds to the committed offsets and delivers again.
                let now = crate::broker::now();
                self.store.strikes().record(self.worker, now, now);
                self.buffer.clear();
                self.epoch += 1;
                self.store.rewound(&self.task, self.epoch);
                return Err(ConnectError::retriable("the destination failed to sync"));
            }
            _ => {}
        }
        let buffer = std::mem::take(&mut self.buffer);
        self.write(buffer);
        Ok(())
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        if self.bug == SinkBug::CommitBeforeFlush {
            self.deferred.append(&mut self.buffer);
            return Ok(offsets.clone());
        }
        self.flush(offsets).await?;
        Ok(offsets.clone())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.write_deferred();
        let closed: Vec<Tp> = partitions
            .iter()
            .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
            .collect();
        self.buffer.retain(|(tp, _, _)| !closed.contains(tp));
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.write_deferred();
        Ok(())
    }
}
