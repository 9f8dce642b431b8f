//! The source task harness: drives the author's `SourceTask` as the runtime does (poll, sometimes
//! dropping a pending poll as the runtime does to commit or to stop; Kafka's acknowledgements told with
//! `commit_record`; commits of the offsets of acknowledged records; clean restarts and crashes, each new
//! instance reading the stored offsets) in an order the seed draws, while the system's records appear as
//! the seed draws them. Every commit is checked against what "Kafka" (the harness's log of acknowledged
//! records) holds (`committed-before-durable`: the offset covers a record not acknowledged), and at the
//! end every record of the system must have reached Kafka (`unseen`), as itself (`inconsistent`), and be
//! covered by the committed offsets once the faults are over (`not-drained`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_core::api::{
    CommitRecordReads, ConnectorPlugin, OffsetStorageReader, RecordMetadata, SourceConnector,
    SourceOffset, SourcePartition, SourceRecord, SourceTask, SourceTaskContext,
};
use sluice_core::config::ConfigMap;
use sluice_core::data::Value;

use super::{
    connector_config, run_driver, start_connector, Journal, Settings, TaskHarness, TaskRun,
    TaskStep, TaskTestError,
};
use crate::broker::now;
use crate::kit::source::{ExternalSource, SourceRecords, SourceUnderTest};
use crate::oracle::{cap, Anomaly, AnomalyKind};

/// A test of one source task: the connector under test and its system, the records that appear, the
/// seeds.
#[derive(Debug, Clone)]
pub struct SourceTaskTest {
    settings: Settings,
    under_test: SourceUnderTest,
    streams: i64,
    per_stream: i64,
    interval: Duration,
}

impl SourceTaskTest {
    /// A test named `name` (the replay command names it) of the source under test: its system makes 4
    /// streams of 100 records appear (one record of each stream every 100 ms on average), 200 steps per
    /// seed, seeds 1 to 100, with the system crashing, cut off, slow and answering errors now and then.
    pub fn new(name: &'static str, under_test: SourceUnderTest) -> SourceTaskTest {
        SourceTaskTest {
            settings: Settings::new(name),
            under_test,
            streams: 4,
            per_stream: 100,
            interval: Duration::from_millis(100),
        }
    }

    /// The system's records: `streams` streams of `per_stream` records, one every `interval` on average.
    pub fn records(mut self, streams: i64, per_stream: i64, interval: Duration) -> SourceTaskTest {
        self.streams = streams.max(1);
        self.per_stream = per_stream.max(1);
        self.interval = interval;
        self
    }
}

impl TaskHarness for SourceTaskTest {
    fn settings(&mut self) -> &mut Settings {
        &mut self.settings
    }

    fn settings_ref(&self) -> &Settings {
        &self.settings
    }

    fn run_seed(&self, seed: u64) -> Result<TaskRun, TaskTestError> {
        let kafka = Arc::new(Mutex::new(Vec::new()));
        let records = SourceRecords::drawn(self.streams, self.per_stream, self.interval, seed);
        let outcome = run_driver(
            seed,
            &self.settings,
            |sim| self.under_test.system.build(sim, records),
            &self.under_test.system.hosts(),
            |journal| Driver::new(self, seed, kafka.clone(), journal).run(),
        )?;
        let mut anomalies = outcome.anomalies;
        anomalies.extend(self.final_checks(&kafka_log(&kafka), &outcome.committed));
        Ok(TaskRun {
            seed,
            log: outcome.log,
            steps: outcome.steps,
            anomalies: cap(anomalies),
            committed: outcome.committed,
        })
    }
}

impl SourceTaskTest {
    /// Everything reached Kafka as itself, and is covered by the committed offsets.
    fn final_checks(&self, kafka: &[String], committed: &BTreeMap<String, i64>) -> Vec<Anomaly> {
        let mut anomalies = Vec::new();
        let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for value in kafka {
            match self.under_test.system.identify(value.as_bytes()) {
                Some((stream, seq))
                    if (0..self.streams).contains(&stream)
                        && (0..self.per_stream).contains(&seq) =>
                {
                    *seen.entry((stream, seq)).or_insert(0) += 1;
                }
                _ => anomalies.push(Anomaly {
                    kind: AnomalyKind::Inconsistent,
                    detail: format!("Kafka holds {value:?}, which is no record of the system"),
                }),
            }
        }
        for stream in 0..self.streams {
            if let Some(seq) = (0..self.per_stream).find(|seq| !seen.contains_key(&(stream, *seq)))
            {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::Unseen,
                    detail: format!("stream {stream} seq {seq} never reached Kafka"),
                });
            }
            let covered = committed
                .get(&format!("stream-{stream}"))
                .copied()
                .unwrap_or(-1);
            if covered < self.per_stream - 1 {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::NotDrained,
                    detail: format!(
                        "stream {stream}'s committed offset covers records only up to seq {covered} of {}",
                        self.per_stream
                    ),
                });
            }
        }
        anomalies
    }
}

fn kafka_log(kafka: &Mutex<Vec<String>>) -> Vec<String> {
    kafka.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The stored source offsets, which outlive task instances; keyed by the partition's JSON text.
#[derive(Default)]
struct StoredOffsets(Mutex<BTreeMap<String, (SourcePartition, SourceOffset)>>);

impl StoredOffsets {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (SourcePartition, SourceOffset)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl OffsetStorageReader for StoredOffsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.lock()
            .get(&partition.to_string())
            .map(|(_, offset)| offset.clone())
    }
}

/// Plays the runtime for one source task, inside the simulation.
struct Driver {
    plugin: ConnectorPlugin,
    config: ConfigMap,
    system: Arc<dyn ExternalSource>,
    streams: i64,
    per_stream: i64,
    steps: usize,
    rng: StdRng,
    journal: Journal,
    /// The values of the records Kafka acknowledged, in order.
    kafka: Arc<Mutex<Vec<String>>>,
    stored: Arc<StoredOffsets>,
    connector: Option<Box<dyn SourceConnector>>,
    task_config: ConfigMap,
    task: Option<Box<dyn SourceTask>>,
    instance: u64,
    /// Polled, not yet acknowledged, in poll order.
    in_flight: VecDeque<SourceRecord>,
    /// Per partition: the offset of its last acknowledged record (its records are acknowledged in order).
    acknowledged: BTreeMap<String, (SourcePartition, SourceOffset)>,
}

impl Driver {
    fn new(
        test: &SourceTaskTest,
        seed: u64,
        kafka: Arc<Mutex<Vec<String>>>,
        journal: Journal,
    ) -> Driver {
        let config = connector_config(
            &test.under_test.config,
            test.settings.name,
            &test.under_test.class,
        );
        Driver {
            plugin: test.under_test.plugin.clone(),
            config,
            system: test.under_test.system.clone(),
            streams: test.streams,
            per_stream: test.per_stream,
            steps: test.settings.steps,
            rng: StdRng::seed_from_u64(seed),
            journal,
            kafka,
            stored: Arc::default(),
            connector: None,
            task_config: ConfigMap::new(),
            task: None,
            instance: 0,
            in_flight: VecDeque::new(),
            acknowledged: BTreeMap::new(),
        }
    }

    async fn run(mut self) {
        if let Err(e) = self.start_connector().await {
            self.journal.anomaly(
                AnomalyKind::NotDrained,
                format!("the connector did not start: {e}"),
            );
            return;
        }
        self.start_task().await;
        for _ in 0..self.steps {
            self.step().await;
        }
        self.drain().await;
        let mut outcome = self.journal.outcome();
        for (partition, offset) in self.stored.lock().values() {
            if let Some((stream, seq)) = self.system.covered(partition, offset) {
                outcome.committed.insert(format!("stream-{stream}"), seq);
            }
        }
    }

    async fn start_connector(&mut self) -> Result<(), String> {
        let ConnectorPlugin::Source(make) = &self.plugin else {
            return Err("the plugin under test is not a source connector".to_owned());
        };
        let mut connector = make();
        self.task_config = start_connector(connector.as_mut(), &self.config).await?;
        self.connector = Some(connector);
        Ok(())
    }

    /// Starts a new instance, which resumes from the stored offsets.
    async fn start_task(&mut self) {
        let Some(connector) = &self.connector else {
            return;
        };
        self.instance += 1;
        self.in_flight.clear();
        self.acknowledged.clear();
        let mut task = connector.create_task();
        let stored: Arc<dyn OffsetStorageReader> = self.stored.clone();
        let context = SourceTaskContext::new(self.task_config.clone(), stored);
        match task.start(context).await {
            Ok(()) => {
                self.journal
                    .log(format!("instance {} started", self.instance));
                self.task = Some(task);
            }
            Err(e) => {
                self.journal.note(
                    TaskStep::TaskFailed,
                    format!("instance {} failed to start: {e}", self.instance),
                );
            }
        }
    }

    async fn step(&mut self) {
        if self.task.is_none() {
            // The operator starts a failed task again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.start_task().await;
            return;
        }
        match self.rng.random_range(0..100) {
            0..=44 => {
                let wait = Duration::from_millis(self.rng.random_range(0..2_000));
                self.poll(wait).await;
            }
            45..=69 => self.acknowledge_some(),
            70..=84 => self.commit().await,
            85..=89 => {
                let wait = self.rng.random_range(100..3_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            90..=95 => self.restart().await,
            _ => self.crash().await,
        }
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(0..200))).await;
    }

    /// Polls, dropping the poll if it is still pending after `wait`.
    async fn poll(&mut self, wait: Duration) {
        let Some(task) = &mut self.task else {
            return;
        };
        match tokio::time::timeout(wait, task.poll()).await {
            Err(_) => self.journal.note(
                TaskStep::PollCancelled,
                format!("a poll pending for {} ms is dropped", wait.as_millis()),
            ),
            Ok(Ok(records)) if records.is_empty() => {}
            Ok(Ok(records)) => {
                let values: Vec<String> = records.iter().map(value_text).collect();
                self.journal.note(
                    TaskStep::Poll,
                    format!("poll: {} records ({})", records.len(), summary(&values)),
                );
                self.in_flight.extend(records);
            }
            Ok(Err(e)) if e.is_retriable() => {
                self.journal.log(format!("poll will be retried: {e}"));
            }
            Ok(Err(e)) => {
                self.journal.note(
                    TaskStep::TaskFailed,
                    format!("instance {} failed in poll: {e}", self.instance),
                );
                if let Some(mut task) = self.task.take() {
                    let _ = task.stop().await;
                }
            }
        }
    }

    /// Kafka acknowledges some of the oldest records in flight.
    fn acknowledge_some(&mut self) {
        if !self.in_flight.is_empty() {
            let count = self.rng.random_range(1..=self.in_flight.len());
            self.acknowledge(count);
        }
    }

    /// Kafka acknowledges the `count` oldest records in flight; the task is told of each.
    fn acknowledge(&mut self, count: usize) {
        let Some(task) = &mut self.task else {
            return;
        };
        if count == 0 {
            return;
        }
        // As the runtime does: a task is told of what its `commit_record` reads.
        let reads = task.commit_record_reads();
        let mut values = Vec::new();
        let mut refused = Vec::new();
        for record in self.in_flight.drain(..count) {
            let value = value_text(&record);
            let offset = {
                let mut kafka = self.kafka.lock().unwrap_or_else(|e| e.into_inner());
                kafka.push(value.clone());
                kafka.len() as i64 - 1
            };
            let metadata = RecordMetadata {
                partition: record.kafka_partition.unwrap_or(0),
                offset,
                timestamp: record.timestamp,
            };
            let told = match reads {
                CommitRecordReads::Everything => Some(record.clone()),
                CommitRecordReads::NoData => Some(record.clone().without_data()),
                CommitRecordReads::Nothing => None,
            };
            if let Some(told) = told {
                if let Err(e) = task.commit_record(&told, Some(&metadata)) {
                    refused.push(format!("commit_record of {value} failed: {e}"));
                }
            }
            self.acknowledged.insert(
                record.source_partition.to_string(),
                (
                    record.source_partition.clone(),
                    record.source_offset.clone(),
                ),
            );
            values.push(value);
        }
        self.journal.note(
            TaskStep::Acknowledged,
            format!("Kafka acknowledges {count} ({})", summary(&values)),
        );
        for line in refused {
            self.journal.log(line);
        }
    }

    /// Stores the offsets of the acknowledged records, checking what each covers, and tells the task.
    async fn commit(&mut self) {
        if self.acknowledged.is_empty() {
            return;
        }
        let offsets = std::mem::take(&mut self.acknowledged);
        let in_kafka: BTreeSet<(i64, i64)> = kafka_log(&self.kafka)
            .iter()
            .filter_map(|value| self.system.identify(value.as_bytes()))
            .collect();
        let mut lines = Vec::new();
        for (key, (partition, offset)) in offsets {
            if let Some((stream, seq)) = self.system.covered(&partition, &offset) {
                let missing = (0..=seq).find(|s| !in_kafka.contains(&(stream, *s)));
                if let Some(missing) = missing {
                    self.journal.anomaly(
                        AnomalyKind::CommittedBeforeDurable,
                        format!(
                            "instance {} committed {partition} at {offset}, which covers stream {stream} up to seq {seq}, but stream {stream} seq {missing} is not in Kafka",
                            self.instance
                        ),
                    );
                }
            }
            lines.push(format!("{partition} at {offset}"));
            self.stored.lock().insert(key, (partition, offset));
        }
        self.journal
            .note(TaskStep::Commit, format!("commit {}", lines.join(", ")));
        if let Some(task) = &mut self.task {
            if let Err(e) = task.commit().await {
                self.journal.log(format!("commit() failed: {e}"));
            }
        }
    }

    /// A clean stop: what Kafka acknowledged is committed, then a new instance.
    async fn restart(&mut self) {
        self.journal.note(
            TaskStep::Restart,
            format!("instance {} stops cleanly", self.instance),
        );
        self.commit().await;
        if let Some(mut task) = self.task.take() {
            if let Err(e) = task.stop().await {
                self.journal.log(format!("stop failed: {e}"));
            }
        }
        self.start_task().await;
    }

    /// The task's process dies: what was in flight is gone, and a new instance starts.
    async fn crash(&mut self) {
        self.journal.note(
            TaskStep::Crash,
            format!(
                "instance {} crashes with {} records in flight",
                self.instance,
                self.in_flight.len()
            ),
        );
        self.task = None;
        self.start_task().await;
    }

    /// Polls, acknowledges and commits everything until every record is committed (or two simulated
    /// minutes have passed), then stops.
    async fn drain(&mut self) {
        self.journal
            .log("drain: poll, acknowledge and commit until everything is committed");
        let limit = now() + Duration::from_secs(120);
        while now() < limit && !self.drained() {
            if self.task.is_none() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.start_task().await;
                continue;
            }
            self.poll(Duration::from_millis(500)).await;
            self.acknowledge(self.in_flight.len());
            self.commit().await;
        }
        if let Some(mut task) = self.task.take() {
            let _ = task.stop().await;
        }
        if let Some(mut connector) = self.connector.take() {
            let _ = connector.stop().await;
        }
        self.journal.log("stopped");
    }

    /// Whether the stored offsets cover every record of every stream.
    fn drained(&self) -> bool {
        let stored = self.stored.lock();
        (0..self.streams).all(|stream| {
            stored.values().any(|(partition, offset)| {
                self.system.covered(partition, offset) == Some((stream, self.per_stream - 1))
            })
        })
    }
}

/// A record's value as text (the system's records carry `stream-S:N`).
fn value_text(record: &SourceRecord) -> String {
    match &record.value.value {
        Value::String(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// The first and last of some values.
fn summary(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] => format!("{first} .. {last}"),
    }
}
