//! The worker's metrics: Kafka Connect's metric groups (worker, connector task, source task, sink task,
//! task errors) in Prometheus naming, `kafka_connect_<group>_<metric>`, labelled by connector and task,
//! encoded as OpenMetrics text for the REST listener's `/metrics`.
//!
//! Kafka Connect's JMX beans report rates and averages (`source-record-poll-rate`,
//! `put-batch-avg-time-ms`); Prometheus computes those from counters and histograms at query time
//! (`rate(kafka_connect_source_task_source_record_poll_total[1m])`), so events are counted here and
//! durations observed, never averaged. Each task holds its own counters, resolved once when it starts,
//! so counting a record is an atomic add. What is a state rather than an event (connectors and tasks by
//! state, each sink partition's lag behind the end of its log) is read when the metrics are scraped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::api::TopicPartition;
use crate::runtime::worker::ConnectorType;

/// The labels of a task's metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TaskLabels {
    connector: String,
    task: String,
}

/// The labels of a connector's count of tasks in one state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: String,
    state: String,
}

/// The labels of a sink partition's lag.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    connector: String,
    task: String,
    topic: String,
    partition: String,
}

type Counters = Family<TaskLabels, Counter>;
type Histograms = Family<TaskLabels, Histogram, fn() -> Histogram>;

/// Latencies from 1 ms to about 33 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Batch sizes from 1 to 4096 records.
fn records() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

/// Every metric family of the worker.
struct Families {
    source_polled: Counters,
    source_written: Counters,
    poll_seconds: Histograms,
    sink_read: Counters,
    sink_sent: Counters,
    put_seconds: Histograms,
    flush_seconds: Histograms,
    partition_count: Family<TaskLabels, Gauge>,
    rebalances: Counters,
    batch_size: Histograms,
    commit_success: Counters,
    commit_failure: Counters,
    commit_seconds: Histograms,
    records_skipped: Counters,
    record_errors: Counters,
    retries: Counters,
    dead_letters: Counters,
    dead_letter_failures: Counters,
    connectors: Gauge,
    tasks: Gauge,
    tasks_by_state: Family<StateLabels, Gauge>,
    restarts: Family<TaskLabels, Gauge>,
    lag: Family<PartitionLabels, Gauge>,
}

impl Families {
    fn new() -> Families {
        Families {
            source_polled: Counters::default(),
            source_written: Counters::default(),
            poll_seconds: Histograms::new_with_constructor(seconds),
            sink_read: Counters::default(),
            sink_sent: Counters::default(),
            put_seconds: Histograms::new_with_constructor(seconds),
            flush_seconds: Histograms::new_with_constructor(seconds),
            partition_count: Family::default(),
            rebalances: Counters::default(),
            batch_size: Histograms::new_with_constructor(records),
            commit_success: Counters::default(),
            commit_failure: Counters::default(),
            commit_seconds: Histograms::new_with_constructor(seconds),
            records_skipped: Counters::default(),
            record_errors: Counters::default(),
            retries: Counters::default(),
            dead_letters: Counters::default(),
            dead_letter_failures: Counters::default(),
            connectors: Gauge::default(),
            tasks: Gauge::default(),
            tasks_by_state: Family::default(),
            restarts: Family::default(),
            lag: Family::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        let seconds = Unit::Seconds;
        let source = registry.sub_registry_with_prefix("source_task");
        source.register(
            "source_record_poll",
            "Records returned by the task's poll, before transforms",
            self.source_polled.clone(),
        );
        source.register(
            "source_record_write",
            "Records Kafka acknowledged, after transforms",
            self.source_written.clone(),
        );
        source.register_with_unit(
            "poll_batch",
            "Time taken by each call to the task's poll",
            seconds.clone(),
            self.poll_seconds.clone(),
        );
        let sink = registry.sub_registry_with_prefix("sink_task");
        sink.register(
            "sink_record_read",
            "Records read from Kafka, before transforms",
            self.sink_read.clone(),
        );
        sink.register(
            "sink_record_send",
            "Records handed to the task's put, after transforms",
            self.sink_sent.clone(),
        );
        sink.register_with_unit(
            "put_batch",
            "Time taken by each call to the task's put",
            seconds.clone(),
            self.put_seconds.clone(),
        );
        sink.register_with_unit(
            "flush",
            "Time taken by each call to the task's flush (pre_commit)",
            seconds.clone(),
            self.flush_seconds.clone(),
        );
        sink.register(
            "partition_count",
            "Topic partitions assigned to the task",
            self.partition_count.clone(),
        );
        sink.register(
            "rebalance",
            "Rebalances the task took part in (partitions assigned or revoked)",
            self.rebalances.clone(),
        );
        sink.register(
            "partition_lag",
            "Records between the task's position in a partition and the end of its log, when scraped",
            self.lag.clone(),
        );
        let task = registry.sub_registry_with_prefix("connector_task");
        task.register(
            "batch_size",
            "Records per poll (sources) or per put (sinks)",
            self.batch_size.clone(),
        );
        task.register(
            "offset_commit_success",
            "Offset commits that succeeded",
            self.commit_success.clone(),
        );
        task.register(
            "offset_commit_failure",
            "Offset commits that failed",
            self.commit_failure.clone(),
        );
        task.register_with_unit(
            "offset_commit",
            "Time taken by each offset commit",
            seconds,
            self.commit_seconds.clone(),
        );
        task.register(
            "restarts",
            "The task's automatic restarts in a row (task.restart.policy=on-failure)",
            self.restarts.clone(),
        );
        let errors = registry.sub_registry_with_prefix("task_error");
        errors.register(
            "total_records_skipped",
            "Records skipped for errors (errors.tolerance=all)",
            self.records_skipped.clone(),
        );
        errors.register(
            "total_record_errors",
            "Record failures in converters, transforms, predicates or the task",
            self.record_errors.clone(),
        );
        errors.register(
            "total_retries",
            "Retries of retriable failures",
            self.retries.clone(),
        );
        errors.register(
            "deadletterqueue_produce_requests",
            "Records sent to the dead letter queue",
            self.dead_letters.clone(),
        );
        errors.register(
            "deadletterqueue_produce_failures",
            "Records the dead letter queue could not take",
            self.dead_letter_failures.clone(),
        );
        let worker = registry.sub_registry_with_prefix("worker");
        worker.register(
            "connector_count",
            "Connectors of the worker",
            self.connectors.clone(),
        );
        worker.register("task_count", "Tasks of the worker", self.tasks.clone());
        worker.register(
            "connector_task_count",
            "A connector's tasks in each state",
            self.tasks_by_state.clone(),
        );
    }
}

/// Where each sink task stands in each of its partitions: the next offset it reads.
type Positions = BTreeMap<TaskLabels, BTreeMap<TopicPartition, i64>>;

/// The worker's metrics, shared by its tasks and its REST API.
#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    families: Arc<Families>,
    positions: Arc<Mutex<Positions>>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let families = Families::new();
        let mut registry = Registry::with_prefix("kafka_connect");
        families.register(&mut registry);
        WorkerMetrics {
            registry: Arc::new(registry),
            families: Arc::new(families),
            positions: Arc::default(),
        }
    }
}

impl std::fmt::Debug for WorkerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerMetrics")
    }
}

/// A connector's tasks in each state, and each task's automatic restarts in a row, as a scrape reads
/// them.
#[derive(Debug, Clone, Default)]
pub struct ConnectorCounts {
    pub connector: String,
    /// Tasks by state name (`RUNNING`, `FAILED`, ...).
    pub tasks_by_state: BTreeMap<String, i64>,
    /// By task index.
    pub restarts: BTreeMap<usize, u32>,
}

impl WorkerMetrics {
    /// The counters of a task, registered under its connector and index: a source's and every task's,
    /// or a sink's and every task's.
    pub fn task(&self, connector: &str, index: usize, kind: ConnectorType) -> TaskMetrics {
        let labels = TaskLabels {
            connector: connector.to_owned(),
            task: index.to_string(),
        };
        let source = kind == ConnectorType::Source;
        let sink = kind == ConnectorType::Sink;
        let counter = |family: &Counters, mine: bool| match mine {
            true => family.get_or_create_owned(&labels),
            false => Counter::default(),
        };
        let histogram = |family: &Histograms, mine: bool| match mine {
            true => family.get_or_create_owned(&labels),
            false => seconds(),
        };
        let f = &self.families;
        TaskMetrics {
            source_polled: counter(&f.source_polled, source),
            source_written: counter(&f.source_written, source),
            poll_seconds: histogram(&f.poll_seconds, source),
            sink_read: counter(&f.sink_read, sink),
            sink_sent: counter(&f.sink_sent, sink),
            put_seconds: histogram(&f.put_seconds, sink),
            flush_seconds: histogram(&f.flush_seconds, sink),
            partition_count: match sink {
                true => f.partition_count.get_or_create_owned(&labels),
                false => Gauge::default(),
            },
            rebalances: counter(&f.rebalances, sink),
            batch_size: f.batch_size.get_or_create_owned(&labels),
            commit_success: counter(&f.commit_success, true),
            commit_failure: counter(&f.commit_failure, true),
            commit_seconds: histogram(&f.commit_seconds, true),
            records_skipped: counter(&f.records_skipped, true),
            record_errors: counter(&f.record_errors, true),
            retries: counter(&f.retries, true),
            dead_letters: counter(&f.dead_letters, true),
            dead_letter_failures: counter(&f.dead_letter_failures, true),
            positions: sink.then(|| (self.positions.clone(), labels.clone())),
        }
    }

    /// Drops a task's metrics: its connector was deleted or stopped.
    pub fn forget(&self, connector: &str, index: usize) {
        let labels = TaskLabels {
            connector: connector.to_owned(),
            task: index.to_string(),
        };
        let f = &self.families;
        for counters in [
            &f.source_polled,
            &f.source_written,
            &f.sink_read,
            &f.sink_sent,
            &f.rebalances,
            &f.commit_success,
            &f.commit_failure,
            &f.records_skipped,
            &f.record_errors,
            &f.retries,
            &f.dead_letters,
            &f.dead_letter_failures,
        ] {
            counters.remove(&labels);
        }
        for histograms in [
            &f.poll_seconds,
            &f.put_seconds,
            &f.flush_seconds,
            &f.batch_size,
            &f.commit_seconds,
        ] {
            histograms.remove(&labels);
        }
        f.partition_count.remove(&labels);
        f.restarts.remove(&labels);
        lock(&self.positions).remove(&labels);
    }

    /// The partitions sink tasks read, whose log ends a scrape needs for their lag.
    pub fn sink_partitions(&self) -> BTreeSet<TopicPartition> {
        lock(&self.positions)
            .values()
            .flat_map(|positions| positions.keys().cloned())
            .collect()
    }

    /// The metrics as OpenMetrics text, with the connectors' counts as given and each sink partition's
    /// lag behind the log ends given (partitions whose end is unknown have none).
    pub fn encode(
        &self,
        connectors: &[ConnectorCounts],
        log_ends: &BTreeMap<TopicPartition, i64>,
    ) -> String {
        let f = &self.families;
        f.connectors.set(connectors.len() as i64);
        f.tasks.set(
            connectors
                .iter()
                .map(|c| c.tasks_by_state.values().sum::<i64>())
                .sum(),
        );
        f.tasks_by_state.clear();
        f.restarts.clear();
        for counts in connectors {
            for (state, count) in &counts.tasks_by_state {
                f.tasks_by_state
                    .get_or_create(&StateLabels {
                        connector: counts.connector.clone(),
                        state: state.clone(),
                    })
                    .set(*count);
            }
            for (task, restarts) in &counts.restarts {
                f.restarts
                    .get_or_create(&TaskLabels {
                        connector: counts.connector.clone(),
                        task: task.to_string(),
                    })
                    .set(i64::from(*restarts));
            }
        }
        f.lag.clear();
        for (task, positions) in lock(&self.positions).iter() {
            for (partition, position) in positions {
                if let Some(end) = log_ends.get(partition) {
                    f.lag
                        .get_or_create(&PartitionLabels {
                            connector: task.connector.clone(),
                            task: task.task.clone(),
                            topic: partition.topic.clone(),
                            partition: partition.partition.to_string(),
                        })
                        .set((end - position).max(0));
                }
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn lock(positions: &Mutex<Positions>) -> MutexGuard<'_, Positions> {
    positions.lock().unwrap_or_else(|e| e.into_inner())
}

/// A task's side of the metrics: what it counts as it runs. The default counts nowhere (a task run
/// outside a worker).
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    source_polled: Counter,
    source_written: Counter,
    poll_seconds: Histogram,
    sink_read: Counter,
    sink_sent: Counter,
    put_seconds: Histogram,
    flush_seconds: Histogram,
    partition_count: Gauge,
    rebalances: Counter,
    batch_size: Histogram,
    commit_success: Counter,
    commit_failure: Counter,
    commit_seconds: Histogram,
    records_skipped: Counter,
    record_errors: Counter,
    retries: Counter,
    dead_letters: Counter,
    dead_letter_failures: Counter,
    positions: Option<(Arc<Mutex<Positions>>, TaskLabels)>,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        TaskMetrics {
            source_polled: Counter::default(),
            source_written: Counter::default(),
            poll_seconds: seconds(),
            sink_read: Counter::default(),
            sink_sent: Counter::default(),
            put_seconds: seconds(),
            flush_seconds: seconds(),
            partition_count: Gauge::default(),
            rebalances: Counter::default(),
            batch_size: records(),
            commit_success: Counter::default(),
            commit_failure: Counter::default(),
            commit_seconds: seconds(),
            records_skipped: Counter::default(),
            record_errors: Counter::default(),
            retries: Counter::default(),
            dead_letters: Counter::default(),
            dead_letter_failures: Counter::default(),
            positions: None,
        }
    }
}

impl TaskMetrics {
    /// A source task's poll returned `records` records after `took`.
    pub fn polled(&self, records: usize, took: Duration) {
        self.source_polled.inc_by(records as u64);
        self.poll_seconds.observe(took.as_secs_f64());
        if records > 0 {
            self.batch_size.observe(records as f64);
        }
    }

    /// Kafka acknowledged `records` of a source task's records.
    pub fn written(&self, records: u64) {
        self.source_written.inc_by(records);
    }

    /// A sink task's consumer returned `records` records.
    pub fn read(&self, records: usize) {
        self.sink_read.inc_by(records as u64);
    }

    /// A sink task's `put` took `records` records and returned after `took`.
    pub fn put(&self, records: usize, took: Duration) {
        self.sink_sent.inc_by(records as u64);
        self.put_seconds.observe(took.as_secs_f64());
        if records > 0 {
            self.batch_size.observe(records as f64);
        }
    }

    /// A sink task's flush (`pre_commit`) returned after `took`.
    pub fn flushed(&self, took: Duration) {
        self.flush_seconds.observe(took.as_secs_f64());
    }

    /// An offset commit ended, after `took`.
    pub fn committed(&self, succeeded: bool, took: Duration) {
        match succeeded {
            true => self.commit_success.inc(),
            false => self.commit_failure.inc(),
        };
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A record failed a stage and was left out (`errors.tolerance=all`), to the dead letter queue if
    /// the connector has one.
    pub fn skipped_for_error(&self) {
        self.record_errors.inc();
        self.records_skipped.inc();
    }

    /// A retriable failure is tried again.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// Records went to the dead letter queue (`succeeded`), or could not.
    pub fn dead_lettered(&self, records: usize, succeeded: bool) {
        match succeeded {
            true => self.dead_letters.inc_by(records as u64),
            false => self.dead_letter_failures.inc_by(records as u64),
        };
    }

    /// A sink task's group took part in a rebalance, after which it holds `partitions`.
    pub fn rebalanced(&self, partitions: usize) {
        self.rebalances.inc();
        self.partition_count.set(partitions as i64);
    }

    /// A sink task reads `partition` next from `offset`.
    pub fn position(&self, partition: &TopicPartition, offset: i64) {
        if let Some((positions, task)) = &self.positions {
            lock(positions)
                .entry(task.clone())
                .or_default()
                .insert(partition.clone(), offset);
        }
    }

    /// A sink task no longer reads these partitions (revoked, or the task ended).
    pub fn unassigned<'a>(&self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        if let Some((positions, task)) = &self.positions {
            let mut positions = lock(positions);
            if let Some(mine) = positions.get_mut(task) {
                for partition in partitions {
                    mine.remove(partition);
                }
            }
        }
    }

    /// The task ended: it reads no partition any more.
    pub fn ended(&self) {
        if let Some((positions, task)) = &self.positions {
            lock(positions).remove(task);
        }
        self.partition_count.set(0);
    }
}

/// Runs `work`, and tells how long it took (on the runtime's clock).
pub async fn timed<F: std::future::Future>(work: F) -> (F::Output, Duration) {
    let started = tokio::time::Instant::now();
    let output = work.await;
    (output, started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn counts_lag_and_states_show_in_the_text_and_a_forgotten_task_leaves_it() {
        let metrics = WorkerMetrics::default();
        let source = metrics.task("in", 0, ConnectorType::Source);
        let sink = metrics.task("out", 1, ConnectorType::Sink);
        source.polled(3, Duration::from_millis(5));
        source.written(3);
        sink.put(2, Duration::from_millis(1));
        let partition = TopicPartition::new("lines", 0);
        sink.position(&partition, 7);
        let ends = BTreeMap::from([(partition.clone(), 10)]);
        let counts = ConnectorCounts {
            connector: "out".into(),
            tasks_by_state: BTreeMap::from([("RUNNING".into(), 1)]),
            restarts: BTreeMap::from([(1, 2)]),
        };
        assert_eq!(
            metrics.sink_partitions(),
            BTreeSet::from([partition.clone()])
        );
        let text = metrics.encode(&[counts], &ends);
        for expected in [
            r#"kafka_connect_source_task_source_record_poll_total{connector="in",task="0"} 3"#,
            r#"kafka_connect_source_task_source_record_write_total{connector="in",task="0"} 3"#,
            r#"kafka_connect_sink_task_sink_record_send_total{connector="out",task="1"} 2"#,
            r#"kafka_connect_sink_task_partition_lag{connector="out",task="1",topic="lines",partition="0"} 3"#,
            r#"kafka_connect_worker_connector_task_count{connector="out",state="RUNNING"} 1"#,
            r#"kafka_connect_connector_task_restarts{connector="out",task="1"} 2"#,
            "kafka_connect_worker_connector_count 1",
            "kafka_connect_worker_task_count 1",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected}\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));

        sink.unassigned([&partition]);
        assert!(metrics.sink_partitions().is_empty());
        metrics.forget("out", 1);
        let text = metrics.encode(&[], &ends);
        assert!(line(&text, "kafka_connect_sink_task_sink_record_send_total{").is_none());
        assert!(line(
            &text,
            r#"kafka_connect_connector_task_batch_size_count{connector="out""#
        )
        .is_none());
        assert!(line(
            &text,
            r#"kafka_connect_source_task_source_record_poll_total{connector="in""#
        )
        .is_some());
        assert!(line(
            &text,
            r#"kafka_connect_sink_task_partition_count{connector="in""#
        )
        .is_none());
    }

    #[test]
    fn a_task_outside_a_worker_counts_nowhere() {
        let metrics = TaskMetrics::default();
        metrics.polled(1, Duration::ZERO);
        metrics.position(&TopicPartition::new("t", 0), 1);
        metrics.ended();
    }
}
