//! The sink task harness: drives the author's `SinkTask` as the runtime does (open, put, flush and
//! pre_commit, close, rebalances, lost partitions, rewinds after a failed flush, restarts and crashes of
//! the task) in an order the seed draws. Every commit is checked against what the system held durably
//! then (`committed-before-durable`), and at the end every record below the committed offsets must be
//! durable with its value (`unseen`, `inconsistent`), written at most once under exactly once
//! (`duplicate`), never made durable after the task closed its partition (`written-after-close`), and
//! everything committed once the faults are over (`not-drained`). The runtime's side of the task's
//! context is [`SinkTaskControl`], so the task sees the assignment, rewinds, pauses and commit requests
//! it would under the real runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_core::api::{
    ConnectError, ConnectorPlugin, SinkConnector, SinkRecord, SinkTask, SinkTaskContext,
    SinkTaskControl, TopicPartition,
};
use sluice_core::data::Data;

use super::{
    connector_config, run_driver, start_connector, Journal, Settings, TaskHarness, TaskRun,
    TaskStep, TaskTestError,
};
use crate::broker::now;
use crate::kit::destination::{DurableWrites, SinkUnderTest};
use crate::kit::open_partitions::OpenPartitions;
use crate::oracle::{cap, upserts, Anomaly, AnomalyKind};
use crate::protocol::Tp;
use crate::scenario::Guarantee;
use crate::workload::{DestinationStore, Upsert};

/// A test of one sink task: the connector under test and its system, the records it is fed, the seeds.
#[derive(Debug, Clone)]
pub struct SinkTaskTest {
    settings: Settings,
    under_test: SinkUnderTest,
    topic: String,
    partitions: i32,
    records: i64,
    guarantee: Guarantee,
}

impl SinkTaskTest {
    /// A test named `name` (the replay command names it) of the sink under test: one task fed 4
    /// partitions of 100 records, 200 steps per seed, seeds 1 to 100, held to at least once, with the
    /// external system crashing, cut off, slow and answering errors now and then.
    pub fn new(name: &'static str, under_test: SinkUnderTest) -> SinkTaskTest {
        SinkTaskTest {
            settings: Settings::new(name),
            under_test,
            topic: "records".to_owned(),
            partitions: 4,
            records: 100,
            guarantee: Guarantee::AtLeastOnce,
        }
    }

    /// Feeds `partitions` partitions of `records` records each.
    pub fn records(mut self, partitions: i32, records: i64) -> SinkTaskTest {
        self.partitions = partitions.max(1);
        self.records = records.max(1);
        self
    }

    /// The guarantee the task is held to: at least once, exactly once (no record written twice), or
    /// effectively once (the destination upserts by key: each key must end with its latest record).
    pub fn guarantee(mut self, guarantee: Guarantee) -> SinkTaskTest {
        self.guarantee = guarantee;
        self
    }
}

impl TaskHarness for SinkTaskTest {
    fn settings(&mut self) -> &mut Settings {
        &mut self.settings
    }

    fn settings_ref(&self) -> &Settings {
        &self.settings
    }

    fn run_seed(&self, seed: u64) -> Result<TaskRun, TaskTestError> {
        let store = Arc::new(DestinationStore::default());
        let open = Arc::new(OpenPartitions::default());
        let outcome = run_driver(
            seed,
            &self.settings,
            |sim| {
                self.under_test
                    .system
                    .build(sim, DurableWrites::new(store.clone()))
            },
            &self.under_test.system.hosts(),
            |journal| Driver::new(self, seed, store.clone(), open.clone(), journal).run(),
        )?;
        let mut anomalies = outcome.anomalies;
        anomalies.extend(self.final_checks(&store, &outcome.committed));
        anomalies.extend(open.check(&store.writes()));
        Ok(TaskRun {
            seed,
            log: outcome.log,
            steps: outcome.steps,
            anomalies: cap(anomalies),
            committed: outcome.committed,
        })
    }
}

impl SinkTaskTest {
    /// What must hold once the task is done: everything committed, durable and right, once each under
    /// exactly once.
    fn final_checks(
        &self,
        store: &DestinationStore,
        committed: &BTreeMap<String, i64>,
    ) -> Vec<Anomaly> {
        let mut anomalies = Vec::new();
        let mut copies: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
        for write in store.writes() {
            copies
                .entry((write.tp.to_string(), write.offset))
                .or_default()
                .push(write.value.clone());
            let expected = (*write.tp.topic == *self.topic
                && (0..self.partitions).contains(&write.tp.partition)
                && (0..self.records).contains(&write.offset))
            .then(|| record_value(write.tp.partition, write.offset));
            if expected.as_deref() != Some(write.value.as_str()) {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::Inconsistent,
                    detail: format!(
                        "{} offset {} was written as {:?}; the record is {expected:?}",
                        write.tp, write.offset, write.value
                    ),
                });
            }
        }
        for partition in 0..self.partitions {
            let tp = TopicPartition::new(&self.topic, partition);
            let end = committed.get(&tp.to_string()).copied().unwrap_or(0);
            if end < self.records {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::NotDrained,
                    detail: format!(
                        "{tp} is committed only up to offset {end} of {}",
                        self.records
                    ),
                });
            }
            let sim_tp = Tp::new(self.topic.as_str(), partition);
            if let Some(missing) = store.first_missing(&sim_tp, 0..end) {
                anomalies.push(Anomaly {
                    kind: AnomalyKind::Unseen,
                    detail: format!("{tp} offset {missing} is below the committed offset {end} but was never made durable"),
                });
            }
            if matches!(
                self.guarantee,
                Guarantee::ExactlyOnce | Guarantee::ExactlyOnceSink
            ) {
                for offset in 0..self.records {
                    let written = copies.get(&(tp.to_string(), offset)).map_or(0, Vec::len);
                    if written > 1 {
                        anomalies.push(Anomaly {
                            kind: AnomalyKind::Duplicate,
                            detail: format!("{tp} offset {offset} {written} times"),
                        });
                    }
                }
            }
        }
        if self.guarantee == Guarantee::EffectivelyOnce {
            anomalies.extend(stale_values(self.records, &store.upserts()));
        }
        anomalies
    }
}

/// Under effectively once: each key of the destination ends with the last record of its partition (a
/// partition's `records` records share one key).
fn stale_values(records: i64, upserts: &[Upsert]) -> Vec<Anomaly> {
    if upserts.is_empty() {
        return vec![upserts::none_told()];
    }
    let latest = records - 1;
    upserts::last_per_key(upserts)
        .into_iter()
        .filter(|(_, held)| {
            held.offset < latest && held.value != record_value(held.tp.partition, latest)
        })
        .map(|(key, held)| Anomaly {
            kind: AnomalyKind::StaleValue,
            detail: format!(
                "key {key} ends with {} offset {} ({}), applied at {} ms, but the latest record of its key is offset {latest}",
                held.tp,
                held.offset,
                held.value,
                held.at.as_millis()
            ),
        })
        .collect()
}

/// The value of a partition's record: `stream-P:OFFSET`, as the kit's other tests write them.
pub fn record_value(partition: i32, offset: i64) -> String {
    format!("stream-{partition}:{offset}")
}

/// Plays the runtime for one task, inside the simulation.
struct Driver {
    plugin: ConnectorPlugin,
    config: sluice_core::config::ConfigMap,
    topic: String,
    partitions: i32,
    records: i64,
    steps: usize,
    rng: StdRng,
    store: Arc<DestinationStore>,
    open: Arc<OpenPartitions>,
    journal: Journal,
    /// The task instance running, with the runtime's side of its context.
    task: Option<(Box<dyn SinkTask>, SinkTaskControl)>,
    connector: Option<Box<dyn SinkConnector>>,
    task_config: sluice_core::config::ConfigMap,
    instance: u64,
    assigned: BTreeSet<TopicPartition>,
    paused: BTreeSet<TopicPartition>,
    /// The next offset to deliver per assigned partition.
    positions: BTreeMap<TopicPartition, i64>,
    /// The group's committed offsets: they outlive task instances.
    committed: BTreeMap<TopicPartition, i64>,
}

impl Driver {
    fn new(
        test: &SinkTaskTest,
        seed: u64,
        store: Arc<DestinationStore>,
        open: Arc<OpenPartitions>,
        journal: Journal,
    ) -> Driver {
        let mut config = connector_config(
            &test.under_test.config,
            test.settings.name,
            &test.under_test.class,
        );
        config.insert("topics".to_owned(), test.topic.clone());
        Driver {
            plugin: test.under_test.plugin.clone(),
            config,
            topic: test.topic.clone(),
            partitions: test.partitions,
            records: test.records,
            steps: test.settings.steps,
            rng: StdRng::seed_from_u64(seed),
            store,
            open,
            journal,
            task: None,
            connector: None,
            task_config: Default::default(),
            instance: 0,
            assigned: BTreeSet::new(),
            paused: BTreeSet::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
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
        let all: Vec<TopicPartition> = (0..self.partitions)
            .map(|p| TopicPartition::new(&self.topic, p))
            .collect();
        let first: Vec<TopicPartition> = all
            .iter()
            .filter(|_| self.rng.random_bool(0.7))
            .cloned()
            .collect();
        self.assign(first).await;
        for _ in 0..self.steps {
            self.step(&all).await;
        }
        self.drain(&all).await;
        self.journal.outcome().committed = self
            .committed
            .iter()
            .map(|(tp, offset)| (tp.to_string(), *offset))
            .collect();
    }

    async fn start_connector(&mut self) -> Result<(), String> {
        let ConnectorPlugin::Sink(make) = &self.plugin else {
            return Err("the plugin under test is not a sink connector".to_owned());
        };
        let mut connector = make();
        self.task_config = start_connector(connector.as_mut(), &self.config).await?;
        self.connector = Some(connector);
        Ok(())
    }

    /// Starts a new task instance; what was assigned is opened in it.
    async fn start_task(&mut self) {
        let Some(connector) = &self.connector else {
            return;
        };
        self.instance += 1;
        let mut task = connector.create_task();
        let (context, control) = SinkTaskContext::with_control(self.task_config.clone());
        if let Err(e) = task.start(context).await {
            self.journal
                .log(format!("instance {} failed to start: {e}", self.instance));
        }
        self.task = Some((task, control));
        let reopen: Vec<TopicPartition> = std::mem::take(&mut self.assigned).into_iter().collect();
        self.positions.clear();
        self.paused.clear();
        if !reopen.is_empty() {
            self.assign(reopen).await;
        }
    }

    /// One step, drawn.
    async fn step(&mut self, all: &[TopicPartition]) {
        if self.task.is_none() {
            // The operator starts a failed task again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.start_task().await;
            return;
        }
        let roll = self.rng.random_range(0..100);
        match roll {
            0..=54 => self.put_some().await,
            55..=74 => self.commit(None).await,
            75..=79 => {
                let wait = self.rng.random_range(100..4_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            80..=87 => self.rebalance(all).await,
            88..=91 => self.lose_some().await,
            92..=95 => self.restart().await,
            _ => self.crash().await,
        }
        tokio::time::sleep(Duration::from_millis(self.rng.random_range(0..200))).await;
    }

    /// Assigns and opens `partitions`: each is delivered from its committed offset, or where the task
    /// rewinds it in `open`.
    async fn assign(&mut self, partitions: Vec<TopicPartition>) {
        if partitions.is_empty() {
            return;
        }
        self.assigned.extend(partitions.iter().cloned());
        for tp in &partitions {
            let from = self.committed.get(tp).copied().unwrap_or(0);
            self.positions.insert(tp.clone(), from);
        }
        let Some((task, control)) = &mut self.task else {
            return;
        };
        control.set_assignment(self.assigned.clone());
        let opened = task.open(&partitions).await;
        self.open.opened(0, partitions.iter().map(to_tp));
        self.journal.log(format!("open {}", names(&partitions)));
        if let Err(e) = opened {
            self.failed("open", e).await;
            return;
        }
        self.apply_requests();
    }

    /// Takes what the task asked for through its context.
    fn apply_requests(&mut self) {
        let Some((_, control)) = &self.task else {
            return;
        };
        let rewinds = control.take_rewinds();
        let (pause, resume) = control.take_pauses();
        for (tp, offset) in rewinds {
            if self.assigned.contains(&tp) {
                self.journal.note(
                    TaskStep::RewindRequested,
                    format!("the task rewinds {tp} to {offset}"),
                );
                self.positions.insert(tp, offset);
            }
        }
        self.paused
            .extend(pause.into_iter().filter(|tp| self.assigned.contains(tp)));
        for tp in resume {
            self.paused.remove(&tp);
        }
    }

    /// Puts the next records of some assigned, unpaused partitions.
    async fn put_some(&mut self) {
        let ready: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|tp| !self.paused.contains(*tp))
            .filter(|tp| self.positions.get(*tp).is_some_and(|p| *p < self.records))
            .cloned()
            .collect();
        if ready.is_empty() {
            return;
        }
        let mut batch = Vec::new();
        let mut first = BTreeMap::new();
        for tp in ready {
            if !self.rng.random_bool(0.6) {
                continue;
            }
            let from = self.positions[&tp];
            let count = self.rng.random_range(1..=20).min(self.records - from);
            first.insert(tp.clone(), from);
            let topic: Arc<str> = Arc::from(tp.topic.as_str());
            batch.extend((from..from + count).map(|offset| SinkRecord {
                topic: topic.clone(),
                partition: tp.partition,
                kafka_offset: offset,
                key: Data::string(format!("stream-{}", tp.partition)),
                value: Data::string(record_value(tp.partition, offset)),
                headers: Vec::new(),
                timestamp: Some(offset),
            }));
            self.positions.insert(tp, from + count);
        }
        if batch.is_empty() {
            return;
        }
        let Some((task, _)) = &mut self.task else {
            return;
        };
        let count = batch.len();
        match task.put(batch).await {
            Ok(()) => {
                let ranges: Vec<String> = first
                    .iter()
                    .map(|(tp, from)| format!("{tp}@{from}..{}", self.positions[tp]))
                    .collect();
                self.journal
                    .note(TaskStep::Put, format!("put {count}: {}", ranges.join(", ")));
                self.apply_requests();
            }
            Err(e) if e.is_retriable() => {
                self.journal.note(
                    TaskStep::PutRetried,
                    format!("put of {count} will be retried: {e}"),
                );
                self.positions.extend(first);
            }
            Err(e) => self.failed("put", e).await,
        }
    }

    /// Asks the task what may be committed (of `only`, or of every assigned partition) and commits it,
    /// checking each offset against what the system holds durably now.
    async fn commit(&mut self, only: Option<&[TopicPartition]>) {
        let current: BTreeMap<TopicPartition, i64> = self
            .positions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|only| only.contains(tp)))
            .map(|(tp, offset)| (tp.clone(), *offset))
            .collect();
        if current.is_empty() {
            return;
        }
        let Some((task, _)) = &mut self.task else {
            return;
        };
        match task.pre_commit(&current).await {
            Ok(approved) => {
                let approved: BTreeMap<TopicPartition, i64> = approved
                    .into_iter()
                    .filter(|(tp, offset)| {
                        self.assigned.contains(tp) && self.committed.get(tp) != Some(offset)
                    })
                    .collect();
                if approved.is_empty() {
                    return;
                }
                for (tp, offset) in &approved {
                    let durable = self.store.contiguous_end(&to_tp(tp));
                    if *offset > durable {
                        self.journal.anomaly(
                            AnomalyKind::CommittedBeforeDurable,
                            format!("instance {} committed {tp} at offset {offset}, but the system held only offsets below {durable} durably", self.instance),
                        );
                    }
                }
                let offsets: Vec<String> =
                    approved.iter().map(|(tp, o)| format!("{tp}@{o}")).collect();
                self.journal
                    .note(TaskStep::Commit, format!("commit {}", offsets.join(", ")));
                self.committed.extend(approved);
            }
            Err(e) => {
                self.journal.note(
                    TaskStep::FlushFailed,
                    format!("pre_commit failed, rewinding to the committed offsets: {e}"),
                );
                let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
                for tp in assigned {
                    let to = self.committed.get(&tp).copied().unwrap_or(0);
                    self.positions.insert(tp, to);
                }
            }
        }
    }

    /// Moves partitions: some assigned ones are committed and closed, some others opened.
    async fn rebalance(&mut self, all: &[TopicPartition]) {
        let revoked: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|_| self.rng.random_bool(0.4))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = all
            .iter()
            .filter(|tp| !self.assigned.contains(*tp) && self.rng.random_bool(0.6))
            .cloned()
            .collect();
        self.journal.note(
            TaskStep::Rebalance,
            format!(
                "rebalance: revoke {}, assign {}",
                names(&revoked),
                names(&added)
            ),
        );
        if !revoked.is_empty() {
            self.commit(Some(&revoked)).await;
            self.close(&revoked).await;
        }
        self.assign(added).await;
    }

    /// Some partitions are lost: closed with no commit (another member took them).
    async fn lose_some(&mut self) {
        let lost: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|_| self.rng.random_bool(0.5))
            .cloned()
            .collect();
        if lost.is_empty() {
            return;
        }
        self.journal
            .note(TaskStep::PartitionsLost, format!("lost {}", names(&lost)));
        self.close(&lost).await;
    }

    async fn close(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.assigned.remove(tp);
            self.positions.remove(tp);
            self.paused.remove(tp);
        }
        let Some((task, control)) = &mut self.task else {
            return;
        };
        control.set_assignment(self.assigned.clone());
        let closed = task.close(partitions).await;
        self.open.closed(0, partitions.iter().map(to_tp));
        self.journal.log(format!("close {}", names(partitions)));
        if let Err(e) = closed {
            self.failed("close", e).await;
        }
    }

    /// A clean stop (commit, close, stop) and a new instance.
    async fn restart(&mut self) {
        self.journal.note(
            TaskStep::Restart,
            format!("instance {} stops cleanly", self.instance),
        );
        self.commit(None).await;
        let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        self.close(&assigned).await;
        if let Some((mut task, _)) = self.task.take() {
            if let Err(e) = task.stop().await {
                self.journal.log(format!("stop failed: {e}"));
            }
        }
        self.assigned.extend(assigned);
        self.start_task().await;
    }

    /// The task's process dies: the instance is dropped without a close, and a new one starts.
    async fn crash(&mut self) {
        self.journal.note(
            TaskStep::Crash,
            format!("instance {} crashes", self.instance),
        );
        self.task = None;
        self.open.crashed(0);
        self.start_task().await;
    }

    /// The task failed: the runtime closes and stops it; the next step starts a new instance, which
    /// opens the same partitions.
    async fn failed(&mut self, stage: &str, error: ConnectError) {
        self.journal.note(
            TaskStep::TaskFailed,
            format!("instance {} failed in {stage}: {error}", self.instance),
        );
        let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        if let Some((mut task, _)) = self.task.take() {
            let _ = task.close(&assigned).await;
            self.open.closed(0, assigned.iter().map(to_tp));
            let _ = task.stop().await;
        }
    }

    /// Every partition assigned, then puts and commits until everything is committed (or a simulated
    /// minute has passed), then a clean stop.
    async fn drain(&mut self, all: &[TopicPartition]) {
        self.journal
            .log("drain: every partition assigned until everything is committed");
        let missing: Vec<TopicPartition> = all
            .iter()
            .filter(|tp| !self.assigned.contains(*tp))
            .cloned()
            .collect();
        self.assign(missing).await;
        let limit = now() + Duration::from_secs(120);
        while now() < limit {
            let done = all
                .iter()
                .all(|tp| self.committed.get(tp).copied().unwrap_or(0) >= self.records);
            if done {
                break;
            }
            if self.task.is_none() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.start_task().await;
            }
            self.paused.clear();
            self.put_some().await;
            self.commit(None).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
        self.close(&assigned).await;
        if let Some((mut task, _)) = self.task.take() {
            let _ = task.stop().await;
        }
        if let Some(mut connector) = self.connector.take() {
            let _ = connector.stop().await;
        }
        self.journal.log("stopped");
    }
}

fn to_tp(tp: &TopicPartition) -> Tp {
    Tp::new(tp.topic.as_str(), tp.partition)
}

fn names(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return "nothing".to_owned();
    }
    partitions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(key: &str, partition: i32, offset: i64, at: u64) -> Upsert {
        Upsert {
            key: key.to_owned(),
            tp: Tp::new("records", partition),
            offset,
            value: record_value(partition, offset),
            at: Duration::from_millis(at),
        }
    }

    #[test]
    fn a_key_must_end_with_its_latest_record_whatever_was_written_twice() {
        let fine = [
            upsert("stream-0", 0, 98, 10),
            upsert("stream-0", 0, 99, 20),
            upsert("stream-0", 0, 99, 30),
        ];
        assert!(stale_values(100, &fine).is_empty());
        let stale = [upsert("stream-0", 0, 99, 20), upsert("stream-0", 0, 42, 30)];
        let found = stale_values(100, &stale);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::StaleValue);
        assert!(found[0].detail.contains("offset 42"), "{}", found[0].detail);
        assert_eq!(stale_values(100, &[])[0].kind, AnomalyKind::StaleValue);
    }
}
