//! StoreSink: a sink connector writing record values to the [`DestinationStore`], in one of three ways
//! ([`SinkMode`], the `mode` key), so the simulation reaches every path of the runtime's sink loop: `put`
//! buffering and `flush` writing (`buffer`); `put` writing at once, as FileStreamSink and most real sinks do
//! (`write-in-put`); or `put` writing each batch with its partitions' offsets in one transaction, `open`
//! rewinding to the stored offsets through the task context and `pre_commit` approving only what is stored
//! (`offsets-in-destination`, Kafka Connect's exactly-once sink pattern). Offsets are committed only for
//! durable records in every mode.
//!
//! Its `bug` key plants a deliberate mistake, so tests can show the oracle catches each kind of anomaly:
//! `commit-before-flush` (pre_commit approves offsets before writing them; `buffer` mode), `pause-partition`
//! (partition 0 is paused forever, so its records never arrive), `reverse-flush` (a write stores its records
//! backwards), `write-twice` (every write is made again, as a blindly retried write would be),
//! `garble-values` (values are written altered), `skip-rewind` (`open` claims its partitions but does not
//! rewind them, as if the runtime ignored the request; `offsets-in-destination` mode), `rewind-to-start`
//! (`open` asks the runtime to resume every partition it is given from offset 0, past what the group had
//! committed, as a sink that mistook an assignment for a fresh start would).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;
use tokio::time::Instant;

use super::destination::{DestinationStore, StoreError, StoreFault};
use crate::coverage::{self, Event};
use crate::protocol::Tp;

const BUG: &str = "bug";
const MODE: &str = "mode";
const MAX_POLL_INTERVAL: &str = "max.poll.interval.ms";
const TASK_ID: &str = "task.id";

/// How the sink makes records durable, and which offsets it lets the runtime commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkMode {
    /// `put` buffers; `flush` writes the buffer; the runtime commits the offsets it passed.
    Buffer,
    /// `put` writes at once; `flush` has nothing left to make durable.
    WriteInPut,
    /// `put` writes records and their offsets atomically; `open` claims its partitions and rewinds them to
    /// the stored offsets; `pre_commit` returns the stored offsets. Every record is written once.
    OffsetsInDestination,
}

impl SinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkMode::Buffer => "buffer",
            SinkMode::WriteInPut => "write-in-put",
            SinkMode::OffsetsInDestination => "offsets-in-destination",
        }
    }

    pub fn parse(text: &str) -> Option<SinkMode> {
        [
            SinkMode::Buffer,
            SinkMode::WriteInPut,
            SinkMode::OffsetsInDestination,
        ]
        .into_iter()
        .find(|mode| mode.as_str() == text)
    }
}

/// A deliberate mistake for the oracle to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkBug {
    None,
    CommitBeforeFlush,
    PausePartition,
    ReverseFlush,
    WriteTwice,
    GarbleValues,
    SkipRewind,
    RewindToStart,
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
            "skip-rewind" => SinkBug::SkipRewind,
            "rewind-to-start" => SinkBug::RewindToStart,
            _ => return None,
        })
    }
}

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate bug: none, commit-before-flush, pause-partition, reverse-flush, write-twice, garble-values, skip-rewind or rewind-to-start.",
        )
        .optional(
            MODE,
            ConfigType::String,
            "buffer",
            "How records are made durable: buffer, write-in-put or offsets-in-destination.",
        )
        .optional(
            MAX_POLL_INTERVAL,
            ConfigType::Long,
            "300000",
            "The consumers' max.poll.interval.ms: a put or flush that outlasts it is reported as coverage.",
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
        if SinkMode::parse(parsed.string(MODE)).is_none() {
            return Err(ConnectError::fatal(format!(
                "mode: unknown value {:?}",
                parsed.string(MODE)
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
            mode: SinkMode::Buffer,
            max_poll_interval: Duration::MAX,
            epoch: 0,
            buffer: Vec::new(),
            deferred: Vec::new(),
            rewinds: BTreeMap::new(),
        })
    }
}

pub struct StoreSinkTask {
    store: Arc<DestinationStore>,
    worker: usize,
    task: String,
    context: Option<SinkTaskContext>,
    bug: SinkBug,
    mode: SinkMode,
    /// A put or flush longer than this lost the consumer its place in the group (coverage).
    max_poll_interval: Duration,
    epoch: u64,
    buffer: Vec<(Tp, i64, String)>,
    /// Records pre_commit approved without writing (the commit-before-flush bug); written later.
    deferred: Vec<(Tp, i64, String)>,
    /// Partitions opened with a rewind that moves the consumer (the stored offset is past Kafka's
    /// committed one), and the offset their first record must have if the runtime applied it (coverage).
    rewinds: BTreeMap<Tp, i64>,
}

impl StoreSinkTask {
    /// Makes records durable as the mode does (with the planted bugs that change writes).
    fn write(&mut self, mut records: Vec<(Tp, i64, String)>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.bug == SinkBug::ReverseFlush {
            records.reverse();
        }
        if self.bug == SinkBug::WriteTwice {
            self.store_write(records.clone())?;
            self.epoch += 1;
        }
        self.store_write(records)
    }

    fn store_write(&self, records: Vec<(Tp, i64, String)>) -> Result<(), StoreError> {
        match self.mode {
            SinkMode::OffsetsInDestination => self
                .store
                .write_with_offsets(&self.task, self.epoch, records),
            SinkMode::Buffer | SinkMode::WriteInPut => {
                self.store.write(&self.task, self.epoch, records);
                Ok(())
            }
        }
    }

    /// Stalls for a while, as a struck fault of this worker.
    async fn stall(&self, stall: std::time::Duration) {
        let from = crate::broker::now();
        self.store.strikes().record(self.worker, from, from + stall);
        tokio::time::sleep(stall).await;
    }

    fn write_deferred(&mut self) -> Result<(), StoreError> {
        let deferred = std::mem::take(&mut self.deferred);
        self.write(deferred)
    }

    /// Writes a batch in `put` (the modes that write there); an armed store fault fails it whole.
    fn write_batch(&mut self, batch: Vec<(Tp, i64, String)>) -> Result<(), ConnectError> {
        if self
            .store
            .take_fault(|f| matches!(f, StoreFault::FailFlush))
            .is_some()
        {
            // Nothing is written; the runtime delivers the batch again.
            let now = crate::broker::now();
            self.store.strikes().record(self.worker, now, now);
            return Err(ConnectError::retriable("the destination failed the write"));
        }
        self.write(batch)
            .map_err(|e| ConnectError::retriable(e.to_string()))
    }

    /// Claims opened partitions in the destination and asks the runtime to resume each where the
    /// destination says (offsets-in-destination).
    fn rewind_to_stored(&mut self, partitions: &[TopicPartition]) {
        let Some(context) = &self.context else {
            return;
        };
        let tps: Vec<Tp> = partitions.iter().map(to_tp).collect();
        for claim in self.store.claim(&self.task, &tps) {
            let Some(stored) = claim.stored else {
                continue;
            };
            if self.bug == SinkBug::SkipRewind {
                continue;
            }
            context.offset(
                TopicPartition::new(&*claim.tp.topic, claim.tp.partition),
                stored,
            );
            if stored > claim.kafka_committed.unwrap_or(0) {
                self.rewinds.insert(claim.tp, stored);
            }
        }
    }

    /// Counts a put or flush that outlasted `max.poll.interval.ms`.
    fn timed(&self, started: Instant) {
        if started.elapsed() > self.max_poll_interval {
            coverage::reached(Event::FlushPastMaxPollInterval);
        }
    }
}

fn to_tp(tp: &TopicPartition) -> Tp {
    Tp::new(tp.topic.clone(), tp.partition)
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
        self.mode = SinkMode::parse(parsed.string(MODE)).unwrap_or(SinkMode::Buffer);
        self.max_poll_interval =
            Duration::from_millis(u64::try_from(parsed.long(MAX_POLL_INTERVAL)).unwrap_or(0));
        let task = context.configs().get(TASK_ID).cloned().unwrap_or_default();
        self.task = self.store.register_writer(&task, self.worker);
        if self.store.task_started(self.worker) {
            coverage::reached(Event::TaskRestartedAfterFailure);
        }
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
        if self.mode == SinkMode::OffsetsInDestination {
            self.rewind_to_stored(partitions);
        }
        if let (SinkBug::RewindToStart, Some(context)) = (self.bug, &self.context) {
            for tp in partitions {
                context.offset(tp.clone(), 0);
            }
        }
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let started = Instant::now();
        if let Some(StoreFault::FailPut) =
            self.store.take_fault(|f| matches!(f, StoreFault::FailPut))
        {
            // The task dies with what it buffered; whoever reads its partitions next delivers it again.
            let now = crate::broker::now();
            self.store.strikes().record(self.worker, now, now);
            self.store.task_failed(self.worker);
            coverage::reached(Event::PutFailedFatal);
            return Err(ConnectError::fatal(
                "the destination refused this task for good",
            ));
        }
        if let Some(StoreFault::StallPut(stall)) = self
            .store
            .take_fault(|f| matches!(f, StoreFault::StallPut(_)))
        {
            self.stall(stall).await;
        }
        self.write_deferred()
            .map_err(|e| ConnectError::retriable(e.to_string()))?;
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let tp = Tp::new(&*record.topic, record.partition);
            if let Some(resume_at) = self.rewinds.remove(&tp) {
                if record.kafka_offset >= resume_at {
                    coverage::reached(Event::RewindApplied);
                }
            }
            if let Some(context) = &self.context {
                let raw = text(&record.value.value);
                if self.store.rejects(raw.as_bytes()) {
                    coverage::reached(Event::ErrantRecordReported);
                    context
                        .errant_record_reporter()
                        .report(&record, &"the destination rejects this record");
                    continue;
                }
            }
            let mut value = text(&record.value.value);
            if self.bug == SinkBug::GarbleValues {
                value.push('!');
            }
            batch.push((tp, record.kafka_offset, value));
        }
        let written = match self.mode {
            SinkMode::Buffer => {
                self.buffer.append(&mut batch);
                Ok(())
            }
            SinkMode::WriteInPut | SinkMode::OffsetsInDestination => self.write_batch(batch),
        };
        self.timed(started);
        written
    }

    async fn flush(&mut self, _: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        let _flushing = self.store.flushing();
        let started = Instant::now();
        let buffered = self.mode == SinkMode::Buffer;
        let fault = self.store.take_fault(|f| {
            matches!(f, StoreFault::StallFlush(_))
                || (buffered && matches!(f, StoreFault::FailFlush))
        });
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
        let written = self
            .write(buffer)
            .map_err(|e| ConnectError::retriable(e.to_string()));
        self.timed(started);
        written
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
        if self.mode != SinkMode::OffsetsInDestination {
            return Ok(offsets.clone());
        }
        // What the destination holds, not what was handed to put: a write refused after this task was
        // replaced must not be committed.
        let tps: Vec<Tp> = offsets.keys().map(to_tp).collect();
        Ok(self
            .store
            .stored_offsets(&self.task, &tps)
            .into_iter()
            .map(|(tp, offset)| (TopicPartition::new(&*tp.topic, tp.partition), offset))
            .collect())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.write_deferred()
            .map_err(|e| ConnectError::retriable(e.to_string()))?;
        let closed: Vec<Tp> = partitions.iter().map(to_tp).collect();
        self.buffer.retain(|(tp, _, _)| !closed.contains(tp));
        self.rewinds.retain(|tp, _| !closed.contains(tp));
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.write_deferred()
            .map_err(|e| ConnectError::retriable(e.to_string()))
    }
}
