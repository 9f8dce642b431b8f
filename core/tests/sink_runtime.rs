//! The sink task runtime on a real (embedded) broker: what it commits for `connect-<name>`, and how it
//! honours rewinds, retriable `put` errors, commit requests, pause/resume, `topics.regex` and clean shutdown.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{lock, props, Cluster, Probes};
use rdkafka::consumer::{Consumer, StreamConsumer};
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, ConnectorPlugin, PluginRegistry, SinkConnector,
    SinkRecord, SinkTask, SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap};
use sluice_core::data::Data;
use sluice_core::kafka::KafkaHeader;
use sluice_core::transforms::{ConnectRecord, Outcome, TransformError, Transformation};

type Offsets = BTreeMap<TopicPartition, i64>;

/// A record as the sink saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    topic: String,
    partition: i32,
    offset: i64,
    value: String,
}

/// Every call the runtime made into the task, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Open(Vec<TopicPartition>),
    Put { records: Vec<Seen>, accepted: bool },
    Flush(Offsets),
    PreCommit { offered: Offsets, approved: Offsets },
    Close(Vec<TopicPartition>),
    Stop,
}

type OpenHook = Box<dyn FnMut(&SinkTaskContext, &[TopicPartition]) + Send>;
type PutHook = Box<dyn FnMut(&SinkTaskContext, &[Seen]) -> Result<(), ConnectError> + Send>;
type PreCommitHook = Box<dyn FnMut(&Offsets) -> Result<Offsets, ConnectError> + Send>;

/// What a test sees of, and decides for, its sink task.
#[derive(Default)]
struct SinkProbe {
    calls: Mutex<Vec<Call>>,
    on_open: Mutex<Option<OpenHook>>,
    on_put: Mutex<Option<PutHook>>,
    /// Replaces the default `pre_commit` (flush, then approve everything offered).
    on_pre_commit: Mutex<Option<PreCommitHook>>,
    /// How long each `put` takes, in order (then: no time).
    put_delays: Mutex<Vec<Duration>>,
    /// Each record put, as its value and the keys of its headers.
    headers: Mutex<Vec<(String, Vec<String>)>>,
}

impl SinkProbe {
    fn record(&self, call: Call) {
        lock(&self.calls).push(call);
    }

    fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The records of every `put` that succeeded, in delivery order.
    fn accepted(&self) -> Vec<Seen> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Put {
                    records,
                    accepted: true,
                } => Some(records),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The offsets of accepted records of one partition, in delivery order.
    fn offsets(&self, topic: &str, partition: i32) -> Vec<i64> {
        self.accepted()
            .into_iter()
            .filter(|s| s.topic == topic && s.partition == partition)
            .map(|s| s.offset)
            .collect()
    }

    fn values(&self) -> Vec<String> {
        self.accepted().into_iter().map(|s| s.value).collect()
    }

    fn pre_commits(&self) -> Vec<(Offsets, Offsets)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::PreCommit { offered, approved } => Some((offered, approved)),
                _ => None,
            })
            .collect()
    }
}

static PROBES: Probes<SinkProbe> = Probes::new();

#[derive(Default)]
struct ProbeSinkConnector {
    config: ConfigMap,
}

#[async_trait]
impl Connector for ProbeSinkConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().required(
            "probe",
            sluice_core::config::ConfigType::String,
            "Probe id.",
        )
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone(); max_tasks]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for ProbeSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(ProbeSinkTask::default())
    }
}

#[derive(Default)]
struct ProbeSinkTask {
    probe: Option<Arc<SinkProbe>>,
    context: Option<SinkTaskContext>,
    /// `probe.reads.headers=false` says `put` reads no headers.
    reads_headers: bool,
}

impl ProbeSinkTask {
    fn probe(&self) -> &SinkProbe {
        self.probe.as_deref().expect("started")
    }
}

#[async_trait]
impl SinkTask for ProbeSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        self.probe = Some(PROBES.of(context.configs()));
        self.reads_headers = context
            .configs()
            .get("probe.reads.headers")
            .is_none_or(|reads| reads != "false");
        self.context = Some(context);
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let probe = self.probe();
        probe.record(Call::Open(partitions.to_vec()));
        if let Some(hook) = lock(&probe.on_open).as_mut() {
            hook(self.context.as_ref().expect("started"), partitions);
        }
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let seen: Vec<Seen> = records
            .iter()
            .map(|r| Seen {
                topic: r.topic.to_string(),
                partition: r.partition,
                offset: r.kafka_offset,
                value: r.value.value.as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let probe = self.probe();
        lock(&probe.headers).extend(records.iter().map(|r| {
            let keys = r.headers.iter().map(|h| h.key.clone()).collect();
            (r.value.value.as_str().unwrap_or_default().to_owned(), keys)
        }));
        let delay = {
            let mut delays = lock(&probe.put_delays);
            (!delays.is_empty()).then(|| delays.remove(0))
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let result = match lock(&probe.on_put).as_mut() {
            Some(hook) => hook(self.context.as_ref().expect("started"), &seen),
            None => Ok(()),
        };
        probe.record(Call::Put {
            records: seen,
            accepted: result.is_ok(),
        });
        result
    }

    fn reads_headers(&self) -> bool {
        self.reads_headers
    }

    async fn flush(&mut self, offsets: &Offsets) -> Result<(), ConnectError> {
        self.probe().record(Call::Flush(offsets.clone()));
        Ok(())
    }

    async fn pre_commit(&mut self, offered: &Offsets) -> Result<Offsets, ConnectError> {
        let hooked = lock(&self.probe().on_pre_commit)
            .as_mut()
            .map(|h| h(offered));
        let approved = match hooked {
            Some(approved) => approved?,
            None => {
                self.flush(offered).await?;
                offered.clone()
            }
        };
        self.probe().record(Call::PreCommit {
            offered: offered.clone(),
            approved: approved.clone(),
        });
        Ok(approved)
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.probe().record(Call::Close(partitions.to_vec()));
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.probe().record(Call::Stop);
        Ok(())
    }
}

/// Failures left for `FlakyLookup`: each application to the record `p-5` takes one and fails
/// retriably, as a lookup in another system that timed out.
static LOOKUP_FAILURES_LEFT: AtomicU32 = AtomicU32::new(0);

/// A transform that looks each record up elsewhere, and sometimes cannot reach it.
struct FlakyLookup;

impl Transformation for FlakyLookup {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let unlucky = record.value().value.as_str() == Some("p-5");
        if unlucky
            && LOOKUP_FAILURES_LEFT
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(TransformError::Retriable("the lookup timed out".into()));
        }
        Ok(Outcome::Keep)
    }
}

fn registry() -> PluginRegistry {
    let mut plugins = PluginRegistry::new();
    plugins.register_transform("test.FlakyLookup", Arc::new(|_| Ok(Box::new(FlakyLookup))));
    plugins.register(
        "test.ProbeSinkConnector",
        ConnectorPlugin::sink(|| Box::new(ProbeSinkConnector::default())),
    );
    plugins
}

/// A probe sink named `name` (so its group is `connect-<name>`) reading `topics`.
fn sink(name: &str, topics: &str) -> ConfigMap {
    props(&[
        ("name", name),
        ("connector.class", "ProbeSink"),
        ("probe", name),
        ("topics", topics),
    ])
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn numbered(prefix: &str, range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_exactly_what_pre_commit_approves_and_resumes_there() {
    let cluster = Cluster::start();
    cluster.create_topic("orders", 1);
    let values = numbered("order", 0..10);
    cluster.produce("orders", 0, &strs(&values)).await;

    // The sink has durably stored only the records before offset 4, whatever was put.
    let probe = PROBES.create("durable-prefix");
    *lock(&probe.on_pre_commit) = Some(Box::new(|offered: &Offsets| {
        Ok(offered
            .iter()
            .map(|(p, o)| (p.clone(), (*o).min(4)))
            .collect())
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("durable-prefix", "orders")],
    );
    common::wait_until("a pre_commit offered all ten records", || {
        probe
            .pre_commits()
            .iter()
            .filter(|(offered, _)| offered.get(&tp("orders", 0)) == Some(&10))
            .count()
            >= 3
    })
    .await;
    let group = "connect-durable-prefix";
    assert_eq!(
        cluster.committed(group, &[tp("orders", 0)]),
        [Some(4)],
        "while running, the group should hold the approved offset 4, not the offered 10"
    );
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        cluster.committed(group, &[tp("orders", 0)]),
        [Some(4)],
        "the final commit on shutdown must also be what pre_commit approved"
    );
    assert_eq!(probe.offsets("orders", 0), (0..10).collect::<Vec<_>>());
    assert!(
        !probe.calls().iter().any(|c| matches!(c, Call::Flush(_))),
        "a sink that overrides pre_commit is not flushed by the runtime"
    );

    // A restarted sink (approving everything) gets the records from offset 4 on, and nothing before.
    let restarted = PROBES.create("durable-prefix");
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("durable-prefix", "orders")],
    );
    common::wait_until("the restarted sink to get offset 9", || {
        restarted.offsets("orders", 0).contains(&9)
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(restarted.offsets("orders", 0), (4..10).collect::<Vec<_>>());
    assert_eq!(cluster.committed(group, &[tp("orders", 0)]), [Some(10)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewind_in_open_sets_where_delivery_starts() {
    let cluster = Cluster::start();
    cluster.create_topic("events", 2);
    for partition in 0..2 {
        let values = numbered(&format!("p{partition}"), 0..10);
        cluster.produce("events", partition, &strs(&values)).await;
    }
    let probe = PROBES.create("rewinder");
    *lock(&probe.on_open) = Some(Box::new(|context, partitions| {
        // As a sink keeping its offsets in the destination would: partition 0 resumes at 6.
        if partitions.contains(&tp("events", 0)) {
            context.offset(tp("events", 0), 6);
        }
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("rewinder", "events")],
    );
    common::wait_until("both partitions delivered to their end", || {
        probe.offsets("events", 0).contains(&9) && probe.offsets("events", 1).contains(&9)
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        probe.offsets("events", 0),
        (6..10).collect::<Vec<_>>(),
        "partition 0 was rewound to 6 in open"
    );
    assert_eq!(
        probe.offsets("events", 1),
        (0..10).collect::<Vec<_>>(),
        "partition 1 starts at the beginning (no commit, auto.offset.reset=earliest)"
    );
    assert_eq!(
        cluster.committed("connect-rewinder", &[tp("events", 0), tp("events", 1)]),
        [Some(10), Some(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_retrying_a_put_says_so_in_its_status_until_the_retry_passes() {
    let cluster = Cluster::start();
    cluster.create_topic("refunds", 1);
    let values = numbered("r", 0..10);
    cluster.produce("refunds", 0, &strs(&values)).await;
    let probe = PROBES.create("hesitant");
    let mut refusals = 0;
    *lock(&probe.on_put) = Some(Box::new(move |_, records| {
        if refusals == 3 || records.is_empty() {
            return Ok(());
        }
        refusals += 1;
        Err(ConnectError::retriable("the destination is busy"))
    }));
    let (worker, view) = cluster.start_controlled_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("hesitant", "refunds")],
    );
    let blocked = || {
        view.status("hesitant")
            .and_then(|status| status.tasks.first().and_then(|t| t.blocked.clone()))
    };
    common::wait_until("the task's status saying it retries", || {
        blocked().is_some_and(|why| {
            why.contains("retrying put") && why.contains("the destination is busy")
        })
    })
    .await;
    common::wait_until("every record delivered", || {
        probe.offsets("refunds", 0).contains(&9)
    })
    .await;
    assert_eq!(blocked(), None, "the retry passed: nothing to say any more");
    worker.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retriable_put_error_redelivers_the_same_records() {
    let cluster = Cluster::start();
    cluster.create_topic("payments", 2);
    for partition in 0..2 {
        let values = numbered(&format!("p{partition}"), 0..20);
        cluster.produce("payments", partition, &strs(&values)).await;
    }
    let probe = PROBES.create("flaky");
    let mut failed = false;
    *lock(&probe.on_put) = Some(Box::new(move |_, records| {
        if failed || records.is_empty() {
            return Ok(());
        }
        failed = true;
        Err(ConnectError::retriable("the destination is busy"))
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("flaky", "payments")],
    );
    common::wait_until("both partitions delivered to their end", || {
        probe.offsets("payments", 0).contains(&19) && probe.offsets("payments", 1).contains(&19)
    })
    .await;
    worker.stop().await.expect("a clean stop");

    let calls = probe.calls();
    let rejected: Vec<Seen> = calls
        .iter()
        .find_map(|c| match c {
            Call::Put {
                records,
                accepted: false,
            } => Some(records.clone()),
            _ => None,
        })
        .expect("one put was rejected");
    let accepted = probe.accepted();
    for record in &rejected {
        assert!(
            accepted.contains(record),
            "rejected record {record:?} was never delivered again"
        );
    }
    for partition in 0..2 {
        let offsets = probe.offsets("payments", partition);
        // At least once: every offset, in order, none skipped (a retry may repeat a prefix).
        let distinct: BTreeSet<i64> = offsets.iter().copied().collect();
        assert_eq!(
            distinct,
            (0..20).collect(),
            "partition {partition} lost or invented records: {offsets:?}"
        );
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1 || w[1] <= w[0]),
            "partition {partition} skipped records: {offsets:?}"
        );
        if let Some(first) = rejected.iter().find(|s| s.partition == partition) {
            assert_eq!(
                offsets.first(),
                Some(&first.offset),
                "partition {partition}: the first accepted record should be the rejected batch's first"
            );
        }
    }
    assert_eq!(
        cluster.committed("connect-flaky", &[tp("payments", 0), tp("payments", 1)]),
        [Some(20), Some(20)]
    );
}

/// A `put` slower than `max.poll.interval.ms` does not cost the task its partitions: the runtime polls
/// meanwhile with them paused, so the consumer neither leaves its group nor skips what arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_slower_than_max_poll_interval_keeps_the_partitions() {
    let cluster = Cluster::start();
    cluster.create_topic("slow", 1);
    cluster
        .produce("slow", 0, &strs(&numbered("s", 0..10)))
        .await;
    let probe = PROBES.create("slow-put");
    lock(&probe.put_delays).push(Duration::from_secs(12));
    let mut config = sink("slow-put", "slow");
    config.extend(props(&[
        ("consumer.override.max.poll.interval.ms", "6000"),
        ("consumer.override.session.timeout.ms", "6000"),
        ("consumer.override.heartbeat.interval.ms", "1000"),
    ]));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[config]);
    common::wait_until("the slow put to start", || {
        lock(&probe.put_delays).is_empty()
    })
    .await;
    cluster
        .produce("slow", 0, &strs(&numbered("s", 10..20)))
        .await;
    common::wait_until("every record", || probe.offsets("slow", 0).contains(&19)).await;
    let calls = probe.calls();
    assert!(
        calls.iter().filter(|c| matches!(c, Call::Open(_))).count() == 1
            && !calls.iter().any(|c| matches!(c, Call::Close(_))),
        "the 12 s put (max.poll.interval.ms 6 s) cost the task its partition: {calls:?}"
    );
    worker.stop().await.expect("a clean stop");
    assert_eq!(probe.offsets("slow", 0), (0..20).collect::<Vec<_>>());
    assert_eq!(
        cluster.committed("connect-slow-put", &[tp("slow", 0)]),
        [Some(20)]
    );
}

/// A `put` past `put.flush.limit.ms` is taken for a hung task: the runtime stops polling, the consumer
/// leaves its group after `max.poll.interval.ms`, and when the call returns the partition is given up
/// uncommitted and delivered again once the task has it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_past_its_limit_gives_the_partitions_up() {
    let cluster = Cluster::start();
    cluster.create_topic("hung", 1);
    cluster
        .produce("hung", 0, &strs(&numbered("h", 0..10)))
        .await;
    let probe = PROBES.create("hung-put");
    lock(&probe.put_delays).push(Duration::from_secs(14));
    let mut config = sink("hung-put", "hung");
    config.extend(props(&[
        ("put.flush.limit.ms", "3000"),
        ("consumer.override.max.poll.interval.ms", "6000"),
        ("consumer.override.session.timeout.ms", "6000"),
        ("consumer.override.heartbeat.interval.ms", "1000"),
    ]));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[config]);
    common::wait_until("the partition given up and opened again", || {
        probe
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Open(_)))
            .count()
            == 2
    })
    .await;
    common::wait_until("the records again", || {
        probe.offsets("hung", 0).iter().filter(|o| **o == 9).count() == 2
    })
    .await;
    worker.stop().await.expect("a clean stop");
    let calls = probe.calls();
    let closed = calls
        .iter()
        .position(|c| matches!(c, Call::Close(_)))
        .expect("the lost partition was closed");
    assert!(
        !calls[..closed]
            .iter()
            .any(|c| matches!(c, Call::PreCommit { approved, .. } if !approved.is_empty())),
        "nothing was committed for the hung put's records before the partition was lost: {calls:?}"
    );
    assert_eq!(
        probe.offsets("hung", 0),
        (0..10).chain(0..10).collect::<Vec<_>>(),
        "the hung put's records are delivered again, once each"
    );
}

/// A transform that fails retriably (KIP-298) is tried again with backoff under `errors.retry.timeout`,
/// and the record goes through once the failure passes; without retries it is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retriable_transform_failure_is_retried_until_it_passes() {
    let cluster = Cluster::start();
    cluster.create_topic("lookups", 1);
    cluster
        .produce("lookups", 0, &strs(&numbered("p", 0..10)))
        .await;
    let config = |name: &str, timeout: &str| {
        let mut config = sink(name, "lookups");
        config.extend(props(&[
            ("transforms", "lookup"),
            ("transforms.lookup.type", "test.FlakyLookup"),
            ("errors.tolerance", "all"),
            ("errors.retry.timeout", timeout),
            ("errors.retry.delay.max.ms", "1000"),
            ("errors.log.enable", "true"),
        ]));
        config
    };

    LOOKUP_FAILURES_LEFT.store(3, Ordering::SeqCst);
    let probe = PROBES.create("retried");
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[config("retried", "30000")],
    );
    common::wait_until("every record", || probe.offsets("lookups", 0).contains(&9)).await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        LOOKUP_FAILURES_LEFT.load(Ordering::SeqCst),
        0,
        "the lookup failed three times"
    );
    assert_eq!(
        probe.values(),
        numbered("p", 0..10),
        "p-5 went through once retried"
    );

    LOOKUP_FAILURES_LEFT.store(3, Ordering::SeqCst);
    let probe = PROBES.create("not-retried");
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[config("not-retried", "0")],
    );
    common::wait_until("every record", || probe.offsets("lookups", 0).contains(&9)).await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        LOOKUP_FAILURES_LEFT.load(Ordering::SeqCst),
        2,
        "errors.retry.timeout=0 tries once"
    );
    let mut expected = numbered("p", 0..10);
    expected.retain(|v| v != "p-5");
    assert_eq!(
        probe.values(),
        expected,
        "p-5 skipped under errors.tolerance=all"
    );
    assert_eq!(
        cluster.committed("connect-not-retried", &[tp("lookups", 0)]),
        [Some(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_commit_commits_before_the_flush_interval() {
    let cluster = Cluster::start();
    cluster.create_topic("audit", 1);
    let probe = PROBES.create("eager");
    *lock(&probe.on_put) = Some(Box::new(|context, records| {
        if records.iter().any(|r| r.value == "commit-now") {
            context.request_commit();
        }
        Ok(())
    }));
    let mut worker_props = cluster.worker_props();
    worker_props.insert("offset.flush.interval.ms".into(), "600000".into());
    let worker = cluster.start_worker(&worker_props, registry(), &[sink("eager", "audit")]);

    let first = numbered("audit", 0..5);
    cluster.produce("audit", 0, &strs(&first)).await;
    common::wait_until("the first records", || probe.offsets("audit", 0).len() == 5).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        cluster.committed("connect-eager", &[tp("audit", 0)]),
        [None],
        "nothing is committed before the (10 minute) flush interval without a request"
    );
    assert!(probe.pre_commits().is_empty());

    cluster
        .produce("audit", 0, &["audit-5", "commit-now"])
        .await;
    common::wait_until("the requested commit", || {
        cluster.committed("connect-eager", &[tp("audit", 0)]) == [Some(7)]
    })
    .await;
    assert_eq!(
        probe.pre_commits().len(),
        1,
        "one request, one commit: {:?}",
        probe.pre_commits()
    );
    worker.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_a_partition_and_resume_restarts_it() {
    let cluster = Cluster::start();
    cluster.create_topic("feed", 2);
    let probe = PROBES.create("pauser");
    *lock(&probe.on_put) = Some(Box::new(|context, records| {
        for record in records {
            match record.value.as_str() {
                "pause-p0" => context.pause(&[tp("feed", 0)]),
                "resume-p0" => context.resume(&[tp("feed", 0)]),
                _ => {}
            }
        }
        Ok(())
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("pauser", "feed")],
    );
    cluster.produce("feed", 0, &["pause-p0"]).await;
    common::wait_until("the pausing record", || {
        probe.values().contains(&"pause-p0".to_owned())
    })
    .await;
    // The runtime applies the pause as soon as that put returns; leave it a moment to do so.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let held = numbered("held", 1..6);
    cluster.produce("feed", 0, &strs(&held)).await;
    cluster.produce("feed", 1, &["p1-a", "p1-b"]).await;
    common::wait_until("partition 1 while 0 is paused", || {
        probe.offsets("feed", 1).len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        probe.offsets("feed", 0),
        [0],
        "a paused partition must not be delivered"
    );

    cluster.produce("feed", 1, &["resume-p0"]).await;
    common::wait_until("partition 0 after resume", || {
        probe.offsets("feed", 0).len() == 6
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(probe.offsets("feed", 0), (0..6).collect::<Vec<_>>());
    let resumed: Vec<String> = probe
        .accepted()
        .into_iter()
        .filter(|s| s.partition == 0 && s.offset > 0)
        .map(|s| s.value)
        .collect();
    assert_eq!(resumed, held);
    let values = probe.values();
    let resume_at = values
        .iter()
        .position(|v| v == "resume-p0")
        .expect("resume record");
    let first_held = values
        .iter()
        .position(|v| v == "held-1")
        .expect("held record");
    assert!(
        first_held > resume_at,
        "held records came before the resume: {values:?}"
    );
}

/// A sink subscribed with `topics.regex`, its consumer refreshing metadata twice a second so that it
/// notices new topics quickly.
fn start_regex_sink(cluster: &Cluster, name: &str, regex: &str) -> common::RunningWorker {
    let mut config = sink(name, "");
    config.remove("topics");
    config.insert("topics.regex".into(), regex.into());
    let mut worker_props = cluster.worker_props();
    worker_props.insert(
        "consumer.topic.metadata.refresh.interval.ms".into(),
        "500".into(),
    );
    cluster.start_worker(&worker_props, registry(), &[config])
}

fn opened(probe: &SinkProbe) -> BTreeSet<TopicPartition> {
    probe
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Open(partitions) => Some(partitions),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_regex_consumes_matching_topics_including_new_ones() {
    let cluster = Cluster::start();
    for topic in ["metrics-a", "metrics-b", "other", "old-metrics-a"] {
        cluster.create_topic(topic, 1);
        cluster.produce(topic, 0, &[&format!("from-{topic}")]).await;
    }
    let probe = PROBES.create("regex");
    let worker = start_regex_sink(&cluster, "regex", "metrics-.*");
    common::wait_until("records of both matching topics", || {
        let values = probe.values();
        values.contains(&"from-metrics-a".to_owned())
            && values.contains(&"from-metrics-b".to_owned())
    })
    .await;
    // A matching topic created while the sink runs joins the subscription.
    cluster.create_topic("metrics-c", 1);
    cluster.produce("metrics-c", 0, &["from-metrics-c"]).await;
    common::wait_until("a record of the new matching topic", || {
        probe.values().contains(&"from-metrics-c".to_owned())
    })
    .await;
    worker.stop().await.expect("a clean stop");
    let mut values = probe.values();
    values.sort();
    assert_eq!(
        values,
        ["from-metrics-a", "from-metrics-b", "from-metrics-c"]
    );
    assert_eq!(
        opened(&probe),
        BTreeSet::from([tp("metrics-a", 0), tp("metrics-b", 0), tp("metrics-c", 0)])
    );
}

/// Kafka matches `topics.regex` against the whole topic name (`Pattern.matcher(topic).matches()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_regex_must_match_the_whole_topic_name() {
    let cluster = Cluster::start();
    for topic in ["metrics-a", "metrics-ab"] {
        cluster.create_topic(topic, 1);
        cluster.produce(topic, 0, &[&format!("from-{topic}")]).await;
    }
    let probe = PROBES.create("full-match");
    let worker = start_regex_sink(&cluster, "full-match", "metrics-[ab]");
    common::wait_until("the record of the matching topic", || {
        probe.values().contains(&"from-metrics-a".to_owned())
    })
    .await;
    // Give a wrongly subscribed topic time to show up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(probe.values(), ["from-metrics-a"]);
    assert_eq!(opened(&probe), BTreeSet::from([tp("metrics-a", 0)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_flushes_commits_and_closes() {
    let cluster = Cluster::start();
    cluster.create_topic("ledger", 1);
    let values = numbered("entry", 0..10);
    cluster.produce("ledger", 0, &strs(&values)).await;
    let probe = PROBES.create("closer");
    let mut worker_props = cluster.worker_props();
    worker_props.insert("offset.flush.interval.ms".into(), "600000".into());
    let worker = cluster.start_worker(&worker_props, registry(), &[sink("closer", "ledger")]);
    common::wait_until("all records", || probe.offsets("ledger", 0).len() == 10).await;
    assert_eq!(
        cluster.committed("connect-closer", &[tp("ledger", 0)]),
        [None]
    );
    worker.stop().await.expect("a clean stop");

    let partition = vec![tp("ledger", 0)];
    let offsets = Offsets::from([(tp("ledger", 0), 10)]);
    let calls = probe.calls();
    let last_put = calls
        .iter()
        .rposition(|c| matches!(c, Call::Put { .. }))
        .expect("a put");
    assert_eq!(
        calls[last_put + 1..],
        [
            Call::Flush(offsets.clone()),
            Call::PreCommit {
                offered: offsets.clone(),
                approved: offsets
            },
            Call::Close(partition.clone()),
            Call::Stop,
        ],
        "after the last put: flush, pre_commit, close, stop; all calls: {calls:?}"
    );
    assert_eq!(calls.first(), Some(&Call::Open(partition)));
    assert_eq!(
        cluster.committed("connect-closer", &[tp("ledger", 0)]),
        [Some(10)],
        "the final offsets are committed on shutdown"
    );
}

/// librdkafka's mock cluster, the embedded broker, refuses every offset commit while a group rebalances,
/// so the commit a task makes when an eager rebalance revokes its partition is refused. When the
/// rebalance gives the partition back, the task commits those offsets in the new generation and resumes
/// after them, instead of receiving every flushed record again. (With the flush timer at ten minutes,
/// the group holds offset 10 before the stop only through that retry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refused_during_a_rebalance_is_made_when_the_partition_comes_back() {
    let cluster = Cluster::start();
    cluster.create_topic("ledger", 1);
    cluster.create_topic("elsewhere", 1);
    cluster
        .produce("ledger", 0, &strs(&numbered("entry", 0..10)))
        .await;
    let probe = PROBES.create("rejoiner");
    let mut worker_props = cluster.worker_props();
    worker_props.insert("offset.flush.interval.ms".into(), "600000".into());
    let worker = cluster.start_worker(&worker_props, registry(), &[sink("rejoiner", "ledger")]);
    common::wait_until("all records", || probe.offsets("ledger", 0).len() == 10).await;
    let group = "connect-rejoiner";
    assert_eq!(cluster.committed(group, &[tp("ledger", 0)]), [None]);

    // Another member joins the sink's group for another topic: the rebalance takes the ledger's
    // partition from the task, then gives it back (the newcomer reads only `elsewhere`).
    let joiner: StreamConsumer = cluster
        .client()
        .set("group.id", group)
        .set("partition.assignment.strategy", "range")
        .create()
        .expect("create the joining member");
    joiner.subscribe(&["elsewhere"]).expect("subscribe");
    let joiner = tokio::spawn(async move {
        loop {
            // Polling keeps the member in the group; `elsewhere` stays empty.
            let _ = joiner.recv().await;
        }
    });
    let opened = |probe: &SinkProbe| {
        probe
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Open(_)))
            .count()
    };
    common::wait_until("the partition back with the task", || opened(&probe) == 2).await;
    let calls = probe.calls();
    let revoked = calls
        .iter()
        .position(|c| matches!(c, Call::Close(_)))
        .expect("the rebalance revoked the partition");
    assert!(
        matches!(&calls[revoked - 1], Call::PreCommit { approved, .. } if approved.get(&tp("ledger", 0)) == Some(&10)),
        "the revocation committed offset 10 (refused by the rebalancing group): {calls:?}"
    );
    cluster
        .produce("ledger", 0, &strs(&numbered("entry", 10..15)))
        .await;
    common::wait_until("the new records", || {
        probe.offsets("ledger", 0).contains(&14)
    })
    .await;
    assert_eq!(
        cluster.committed(group, &[tp("ledger", 0)]),
        [Some(10)],
        "the refused commit was made in the new generation"
    );
    worker.stop().await.expect("a clean stop");
    joiner.abort();
    assert_eq!(
        probe.offsets("ledger", 0),
        (0..15).collect::<Vec<_>>(),
        "each record once: the task resumed after the refused commit's offsets"
    );
}

/// A `put` that fails with a non-retriable error fails the task: its records are not handed to it again
/// and nothing is committed past them; the worker's stop says the task failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_put_error_fails_the_task() {
    let cluster = Cluster::start();
    cluster.create_topic("ledger", 1);
    cluster
        .produce("ledger", 0, &strs(&numbered("entry", 0..10)))
        .await;
    let probe = PROBES.create("fatal-put");
    *lock(&probe.on_put) = Some(Box::new(|_: &SinkTaskContext, _: &[Seen]| {
        Err(ConnectError::fatal("the destination rejected the batch"))
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("fatal-put", "ledger")],
    );
    let failed_put = |probe: &SinkProbe| {
        probe.calls().iter().any(|c| {
            matches!(
                c,
                Call::Put {
                    accepted: false,
                    ..
                }
            )
        })
    };
    common::wait_until("the failed put", || failed_put(&probe)).await;
    let stopped = worker.stop().await;
    assert!(
        stopped.is_err(),
        "the stop reports the failed task: {stopped:?}"
    );
    let puts = probe
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Put { .. }))
        .count();
    assert_eq!(
        puts,
        1,
        "the failed records are not put again: {:?}",
        probe.calls()
    );
    assert_eq!(
        cluster.committed("connect-fatal-put", &[tp("ledger", 0)]),
        [None]
    );
}

/// A flush that fails may have lost what `put` buffered: the runtime commits nothing and delivers the
/// records since the last commit again, as Kafka Connect does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_redelivers_everything_since_the_last_commit() {
    let cluster = Cluster::start();
    cluster.create_topic("ledger", 1);
    cluster
        .produce("ledger", 0, &strs(&numbered("entry", 0..10)))
        .await;
    let probe = PROBES.create("lossy-flush");
    let mut failed = false;
    *lock(&probe.on_pre_commit) = Some(Box::new(move |offered: &Offsets| {
        if failed {
            return Ok(offered.clone());
        }
        failed = true;
        Err(ConnectError::fatal("the disk is full"))
    }));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("lossy-flush", "ledger")],
    );
    common::wait_until("a commit after the failed flush", || {
        probe
            .pre_commits()
            .iter()
            .any(|(_, approved)| approved.get(&tp("ledger", 0)) == Some(&10))
    })
    .await;
    worker.stop().await.expect("a clean stop");
    let offsets = probe.offsets("ledger", 0);
    let first_pass = offsets
        .iter()
        .position(|o| *o == 9)
        .expect("offset 9 delivered");
    assert_eq!(
        offsets[first_pass + 1..].first(),
        Some(&0),
        "after the failed flush delivery must restart at offset 0: {offsets:?}"
    );
    assert_eq!(
        cluster.committed("connect-lossy-flush", &[tp("ledger", 0)]),
        [Some(10)]
    );
}

/// `consumer.override.max.poll.records` bounds what one `put` receives, as Kafka's consumer setting does
/// for a Java sink task (librdkafka has no such key: the runtime applies it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_poll_records_bounds_each_put() {
    let cluster = Cluster::start();
    cluster.create_topic("readings", 1);
    let values = numbered("reading", 0..50);
    cluster.produce("readings", 0, &strs(&values)).await;
    let probe = PROBES.create("small-puts");
    let mut config = sink("small-puts", "readings");
    config.insert("consumer.override.max.poll.records".into(), "7".into());
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[config]);
    common::wait_until("all records", || probe.offsets("readings", 0).len() == 50).await;
    worker.stop().await.expect("a clean stop");
    let sizes: Vec<usize> = probe
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Put { records, .. } if !records.is_empty() => Some(records.len()),
            _ => None,
        })
        .collect();
    assert!(sizes.iter().all(|n| *n <= 7), "put sizes: {sizes:?}");
    assert!(sizes.contains(&7), "the bound was reached: {sizes:?}");
    assert_eq!(probe.offsets("readings", 0), (0..50).collect::<Vec<_>>());
}

/// A sink that reports every third record it is given as errant, as a destination declining it.
fn report_every_third(probe: &SinkProbe) {
    *lock(&probe.on_put) = Some(Box::new(|context: &SinkTaskContext, seen: &[Seen]| {
        let reporter = context.errant_record_reporter();
        for s in seen.iter().filter(|s| s.offset % 3 == 0) {
            let record = SinkRecord {
                topic: s.topic.as_str().into(),
                partition: s.partition,
                kafka_offset: s.offset,
                key: Data::NULL,
                value: Data::string(&s.value),
                headers: Vec::new(),
                timestamp: None,
            };
            reporter.report(&record, &"declined by the destination");
        }
        Ok(())
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_put_reports_as_errant_reach_the_dead_letter_queue_before_the_commit() {
    let cluster = Cluster::start();
    cluster.create_topic("payments", 1);
    cluster.create_topic("payments-dlq", 1);
    let values = numbered("payment", 0..10);
    cluster.produce("payments", 0, &strs(&values)).await;
    let probe = PROBES.create("errant");
    report_every_third(&probe);
    let mut config = sink("errant", "payments");
    for (key, value) in [
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", "payments-dlq"),
        ("errors.deadletterqueue.topic.replication.factor", "1"),
        ("errors.deadletterqueue.context.headers.enable", "true"),
    ] {
        config.insert(key.into(), value.into());
    }
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[config]);
    common::wait_until("all ten records committed", || {
        cluster.committed("connect-errant", &[tp("payments", 0)]) == [Some(10)]
    })
    .await;
    worker.stop().await.expect("a clean stop");

    let dead = cluster.read("payments-dlq", 1, 4).await;
    let dead_values: Vec<String> = dead
        .iter()
        .map(|d| String::from_utf8(d.value.clone().unwrap_or_default()).unwrap())
        .collect();
    assert_eq!(
        dead_values,
        ["payment-0", "payment-3", "payment-6", "payment-9"]
    );
    let header = |stored: &common::Stored, name: &str| {
        stored
            .headers
            .iter()
            .find(|(k, _)| k == &format!("__connect.errors.{name}"))
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(header(&dead[1], "stage").as_deref(), Some("TASK_PUT"));
    assert_eq!(header(&dead[1], "offset").as_deref(), Some("3"));
    assert_eq!(
        header(&dead[1], "exception.message").as_deref(),
        Some("declined by the destination")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errant_record_fails_the_task_without_error_tolerance() {
    let cluster = Cluster::start();
    cluster.create_topic("refunds", 1);
    cluster
        .produce("refunds", 0, &["refund-0", "refund-1"])
        .await;
    let probe = PROBES.create("intolerant");
    report_every_third(&probe);
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[sink("intolerant", "refunds")],
    );
    let error = worker.join().await.expect_err("the task fails");
    assert!(
        error.to_string().contains("errant") && error.to_string().contains("offset 0"),
        "{error}"
    );
    assert_eq!(
        cluster.committed("connect-intolerant", &[tp("refunds", 0)]),
        [None],
        "nothing is committed past a record the task could not write"
    );
}

/// Headers are read out of Kafka only when something looks at them: a task that says it reads none
/// gets its records without them, unless its transforms need them (here a filter on a header's
/// presence, which must still see them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_read_when_the_task_or_its_transforms_look_at_them() {
    let cluster = Cluster::start();
    cluster.create_topic("tagged", 1);
    let tag = [KafkaHeader {
        key: "skip".into(),
        value: Some(b"yes".to_vec()),
    }];
    cluster
        .produce_with_headers("tagged", 0, &["a-0", "a-1"], &tag)
        .await;
    cluster.produce("tagged", 0, &["b-0", "b-1"]).await;
    let reading = PROBES.create("headers-read");
    let unread = PROBES.create("headers-unread");
    let filtered = PROBES.create("headers-filtered");
    let mut configs = vec![sink("headers-read", "tagged")];
    let mut config = sink("headers-unread", "tagged");
    config.insert("probe.reads.headers".into(), "false".into());
    configs.push(config);
    let mut config = sink("headers-filtered", "tagged");
    for (key, value) in [
        ("probe.reads.headers", "false"),
        ("transforms", "drop"),
        ("transforms.drop.type", "Filter"),
        ("transforms.drop.predicate", "skipped"),
        ("predicates", "skipped"),
        ("predicates.skipped.type", "HasHeaderKey"),
        ("predicates.skipped.name", "skip"),
    ] {
        config.insert(key.into(), value.into());
    }
    configs.push(config);
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &configs);
    for name in ["headers-read", "headers-unread", "headers-filtered"] {
        common::wait_until(&format!("{name} committed all four"), || {
            cluster.committed(&format!("connect-{name}"), &[tp("tagged", 0)]) == [Some(4)]
        })
        .await;
    }
    worker.stop().await.expect("a clean stop");

    let seen = |probe: &SinkProbe| lock(&probe.headers).clone();
    let tagged = |value: &str| (value.to_owned(), vec!["skip".to_owned()]);
    let bare = |value: &str| (value.to_owned(), Vec::new());
    assert_eq!(
        seen(&reading),
        [tagged("a-0"), tagged("a-1"), bare("b-0"), bare("b-1")]
    );
    assert_eq!(
        seen(&unread),
        [bare("a-0"), bare("a-1"), bare("b-0"), bare("b-1")]
    );
    assert_eq!(seen(&filtered), [bare("b-0"), bare("b-1")]);
}

/// A record the converter refuses goes to the dead letter queue as it was consumed, headers and all,
/// even for a task that reads no headers itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_keeps_its_headers_when_the_task_reads_none() {
    let cluster = Cluster::start();
    cluster.create_topic("readings-json", 1);
    cluster.create_topic("readings-dlq", 1);
    let origin = [KafkaHeader {
        key: "origin".into(),
        value: Some(b"plant-7".to_vec()),
    }];
    cluster
        .produce_with_headers("readings-json", 0, &["not json"], &origin)
        .await;
    cluster.produce("readings-json", 0, &["{\"n\":1}"]).await;
    let probe = PROBES.create("headerless-dlq");
    let mut config = sink("headerless-dlq", "readings-json");
    for (key, value) in [
        ("probe.reads.headers", "false"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", "readings-dlq"),
        ("errors.deadletterqueue.topic.replication.factor", "1"),
    ] {
        config.insert(key.into(), value.into());
    }
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[config]);
    common::wait_until("both records committed", || {
        cluster.committed("connect-headerless-dlq", &[tp("readings-json", 0)]) == [Some(2)]
    })
    .await;
    worker.stop().await.expect("a clean stop");

    assert_eq!(
        lock(&probe.headers).len(),
        1,
        "only the good record was put"
    );
    let dead = cluster.read("readings-dlq", 1, 1).await;
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json"[..]));
    assert_eq!(
        dead[0].headers,
        [("origin".to_owned(), Some(b"plant-7".to_vec()))]
    );
}
