//! What each worker host runs: the worker and connector configs a scenario gives, the standalone worker
//! with its sink (and, without exactly-once source support, worker 0's source), and with it the source
//! task wherever the orchestrator places it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::config::{ConfigError, ConfigMap};
use sluice_core::runtime::{worker_control, SharedOffsetStore, StandaloneWorker, WorkerConfig};
use tokio::sync::watch;

use super::journal::{lock, millis, SharedJournal};
use super::names::{broker_name, worker_name};
use super::offsets::{OffsetFile, OFFSET_FILE};
use super::operator::TaskFailures;
use super::operator_calls::{self, Calls, Connectors};
use crate::broker::BROKER_PORT;
use crate::client::SimBackend;
use crate::coverage::{self, Event};
use crate::faults::FaultKind;
use crate::kit::disk::on_disk;
use crate::kit::{with_faults, Faults, OpenPartitions};
use crate::placement::Placement;
use crate::scenario::{Scenario, Workload};
use crate::timeline::{LaneKind, MarkKind};
use crate::workload::{self, input_file, Mark, SimFs, SinkMode};

/// What a run needs to know for each worker host.
pub(super) struct WorkerHost {
    pub(super) name: String,
    pub(super) stop: watch::Sender<bool>,
    /// The operator's REST calls to the worker.
    pub(super) calls: Calls,
}

fn props(pairs: &[(&str, String)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn worker_props(scenario: &Scenario, index: usize) -> ConfigMap {
    let string = "org.apache.kafka.connect.storage.StringConverter".to_owned();
    let group = match scenario.worker_bug {
        "distinct-group-ids" => format!("connect-worker-{index}"),
        _ => "connect-cluster".to_owned(),
    };
    let exactly_once = if scenario.exactly_once {
        "enabled"
    } else {
        "disabled"
    };
    props(&[
        ("group.id", group),
        ("exactly.once.source.support", exactly_once.into()),
        ("consumer.isolation.level", scenario.sink_isolation.into()),
        ("bootstrap.servers", bootstrap_servers(scenario)),
        ("key.converter", string.clone()),
        ("value.converter", string),
        ("offset.storage.file.filename", OFFSET_FILE.into()),
        (
            "offset.flush.interval.ms",
            scenario.commit_interval.as_millis().to_string(),
        ),
        (
            "consumer.session.timeout.ms",
            scenario.session_timeout.as_millis().to_string(),
        ),
        (
            "consumer.heartbeat.interval.ms",
            scenario.heartbeat_interval.as_millis().to_string(),
        ),
        (
            "consumer.max.poll.interval.ms",
            scenario.max_poll_interval.as_millis().to_string(),
        ),
        (
            "consumer.partition.assignment.strategy",
            scenario.assignor().into(),
        ),
        (
            "producer.delivery.timeout.ms",
            scenario.delivery_timeout.as_millis().to_string(),
        ),
        (
            "producer.request.timeout.ms",
            (scenario.delivery_timeout / 3)
                .min(Duration::from_secs(30))
                .as_millis()
                .to_string(),
        ),
    ])
}

fn source_props(scenario: &Scenario) -> ConfigMap {
    if let Some(under_test) = &scenario.source_under_test {
        let mut config = under_test.config.clone();
        config.extend(props(&[
            ("name", "source-under-test".into()),
            ("connector.class", under_test.class.clone()),
        ]));
        return config;
    }
    if scenario.workload == Workload::Files {
        return props(&[
            ("name", "file-source".into()),
            ("connector.class", "FileStreamSource".into()),
            ("file", input_file::INPUT_FILE.into()),
            ("topic", scenario.topic().into()),
        ]);
    }
    let mut config = props(&[
        ("name", "sequence-source".into()),
        (
            "connector.class",
            "io.sluice.sim.SequenceSourceConnector".into(),
        ),
        ("tasks.max", "2".into()),
        ("topic", scenario.topic().into()),
        ("streams", scenario.streams.to_string()),
        (
            "records.per.stream",
            scenario.records_per_stream.to_string(),
        ),
        (
            "poll.interval.ms",
            scenario.source_interval.as_millis().to_string(),
        ),
        ("batch.size", "10".into()),
        // Its records are bytes, and some are poison (see SequenceSource): skipped, not fatal.
        (
            "value.converter",
            "org.apache.kafka.connect.converters.ByteArrayConverter".into(),
        ),
        ("errors.tolerance", "all".into()),
        ("bug", scenario.source_bug.into()),
        (
            "commit.record.reads",
            workload::reads_name(scenario.commit_record_reads().unwrap_or_default()).into(),
        ),
        (
            "exactly.once.support",
            if scenario.exactly_once {
                "required"
            } else {
                "requested"
            }
            .into(),
        ),
        (
            "transaction.boundary",
            scenario.transaction_boundary().into(),
        ),
    ]);
    if scenario.transforms {
        config.extend(source_transforms());
    }
    if scenario.faults.contains(&FaultKind::FailPoll) {
        config.extend(restart_on_failure());
    }
    if let Some(topic) = scenario.source_dead_letter_topic() {
        config.extend(dead_letter_queue(topic));
    }
    config
}

/// The marker of records that went through the source's transforms.
const ORIGIN_HEADER: &str = "sim.origin";

/// The source's chain: drops the records marked for it, fails on those marked to fail, and adds an
/// origin header to every other record.
fn source_transforms() -> ConfigMap {
    let mut config = marked_transforms(Mark::SourceDrop, Mark::SourceFail);
    config.extend(props(&[
        ("marks", "true".into()),
        ("transforms", "dropMarked,failMarked,origin".into()),
        (
            "transforms.origin.type",
            "org.apache.kafka.connect.transforms.InsertHeader".into(),
        ),
        ("transforms.origin.header", ORIGIN_HEADER.into()),
        ("transforms.origin.value.literal", "sequence-source".into()),
        ("predicates", "dropMark,failMark".into()),
    ]));
    config
}

/// The sink's chain: drops records without the source's origin header and those marked to be
/// dropped, and fails on those marked to fail.
fn sink_transforms() -> ConfigMap {
    let mut config = marked_transforms(Mark::SinkDrop, Mark::SinkFail);
    config.extend(has_header("fromSource", ORIGIN_HEADER));
    config.extend(props(&[
        ("transforms", "requireOrigin,dropMarked,failMarked".into()),
        (
            "transforms.requireOrigin.type",
            "org.apache.kafka.connect.transforms.Filter".into(),
        ),
        ("transforms.requireOrigin.predicate", "fromSource".into()),
        ("transforms.requireOrigin.negate", "true".into()),
        ("predicates", "fromSource,dropMark,failMark".into()),
    ]));
    config
}

/// The transforms `dropMarked` (a `Filter` of the records with `drop`'s header) and `failMarked` (an
/// `ExtractField` of a value that is no map, on the records with `fail`'s header), and their predicates
/// `dropMark` and `failMark`; the chain's `transforms` and `predicates` lists name them.
fn marked_transforms(drop: Mark, fail: Mark) -> ConfigMap {
    let mut config = props(&[
        (
            "transforms.dropMarked.type",
            "org.apache.kafka.connect.transforms.Filter".into(),
        ),
        ("transforms.dropMarked.predicate", "dropMark".into()),
        (
            "transforms.failMarked.type",
            "org.apache.kafka.connect.transforms.ExtractField$Value".into(),
        ),
        ("transforms.failMarked.field", "missing".into()),
        ("transforms.failMarked.predicate", "failMark".into()),
    ]);
    config.extend(has_header("dropMark", drop.header()));
    config.extend(has_header("failMark", fail.header()));
    config
}

/// The predicate `alias`: the record has a header `key` (`HasHeaderKey`).
fn has_header(alias: &str, key: &str) -> ConfigMap {
    props(&[
        (
            &format!("predicates.{alias}.type"),
            "org.apache.kafka.connect.transforms.predicates.HasHeaderKey".into(),
        ),
        (&format!("predicates.{alias}.name"), key.into()),
    ])
}

/// A failed task restarts after a second (doubling with each failure in a row): the scenario's tasks
/// fail on purpose.
fn restart_on_failure() -> ConfigMap {
    props(&[("task.restart.policy", "on-failure".into())])
}

/// A dead letter queue with Kafka Connect's context headers, on a topic of one replica.
fn dead_letter_queue(topic: String) -> ConfigMap {
    props(&[
        ("errors.deadletterqueue.topic.name", topic),
        (
            "errors.deadletterqueue.topic.replication.factor",
            "1".into(),
        ),
        (
            "errors.deadletterqueue.context.headers.enable",
            "true".into(),
        ),
    ])
}

/// The sink connector's config on worker `index`; its consumers' client id names the worker, so the oracle
/// can tell which worker each group member runs on.
fn sink_props(scenario: &Scenario, index: usize) -> ConfigMap {
    let client_id = (
        "consumer.override.client.id",
        workload::sink_client_id(index),
    );
    let limit = (
        "put.flush.limit.ms",
        scenario.put_flush_limit.as_millis().to_string(),
    );
    if let Some(under_test) = &scenario.sink_under_test {
        let mut config = props(&[("errors.tolerance", "all".into()), limit]);
        if scenario.faults.contains(&FaultKind::FailPut) {
            config.extend(restart_on_failure());
        }
        config.extend(under_test.config.clone());
        config.extend(props(&[
            ("name", scenario.sink_name().into()),
            ("connector.class", under_test.class.clone()),
            ("topics", scenario.topic().into()),
            client_id,
        ]));
        return config;
    }
    if scenario.workload == Workload::Files {
        return props(&[
            ("name", scenario.sink_name().into()),
            ("connector.class", "FileStreamSink".into()),
            ("file", input_file::OUTPUT_FILE.into()),
            ("topics", scenario.topic().into()),
            limit,
            client_id,
        ]);
    }
    let mut config = props(&[
        ("name", scenario.sink_name().into()),
        ("connector.class", "io.sluice.sim.StoreSinkConnector".into()),
        ("tasks.max", scenario.sink_tasks.to_string()),
        // Some records are not UTF-8 (see SequenceSource): skipped, not fatal.
        ("errors.tolerance", "all".into()),
        ("topics", scenario.topic().into()),
        ("bug", scenario.sink_bug.into()),
        (
            "mode",
            scenario
                .sink_mode()
                .unwrap_or(SinkMode::Buffer)
                .as_str()
                .into(),
        ),
        (
            "max.poll.interval.ms",
            scenario.max_poll_interval.as_millis().to_string(),
        ),
        limit,
        client_id,
    ]);
    if scenario.transforms {
        config.extend(sink_transforms());
    }
    if scenario.faults.contains(&FaultKind::FailPut) {
        config.extend(restart_on_failure());
    }
    if let Some(topic) = scenario.dead_letter_topic() {
        config.extend(dead_letter_queue(topic));
    }
    config
}

/// The files each worker's disk held when it last stopped cleanly: its output, and worker 0's input.
pub(super) type Files = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// What a worker host runs with; cloned each time the host starts.
#[derive(Clone)]
pub(super) struct HostContext {
    pub(super) index: usize,
    pub(super) scenario: Scenario,
    /// What the workload connectors of every worker share.
    pub(super) workload: workload::Shared,
    /// The worker's source offset file on its disk.
    pub(super) offsets: OffsetFile,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) journal: SharedJournal,
    pub(super) files: Files,
    /// Which worker runs the source, with exactly-once source support.
    pub(super) placement: Placement,
    /// The partitions a test kit's sink under test holds open on each worker.
    pub(super) open_partitions: Arc<OpenPartitions>,
    /// The operator's REST calls to this worker.
    pub(super) calls: Calls,
}

/// Every broker's listener, in broker id order.
pub(super) fn listeners(scenario: &Scenario) -> Vec<String> {
    (0..scenario.brokers.max(1))
        .map(|id| format!("{}:{BROKER_PORT}", broker_name(id)))
        .collect()
}

/// The workers' `bootstrap.servers`: every broker.
fn bootstrap_servers(scenario: &Scenario) -> String {
    listeners(scenario).join(",")
}

impl HostContext {
    /// This host's simulated disk.
    fn fs(&self) -> SimFs {
        SimFs::new(
            self.workload.disk.clone(),
            self.workload.ledger.clone(),
            self.index,
        )
    }

    /// A standalone worker keeping its source offsets in `offsets`; its source tasks report their
    /// failures to `failures`, if given, and its exactly-once source tasks run with `generation`.
    fn worker(
        &self,
        offsets: SharedOffsetStore,
        failures: Option<&TaskFailures>,
        generation: Option<u64>,
    ) -> Result<StandaloneWorker, ConfigError> {
        let mut props = worker_props(&self.scenario, self.index);
        if let Some(generation) = generation {
            props.insert(
                "exactly.once.source.generation".into(),
                generation.to_string(),
            );
        }
        let config = WorkerConfig::parse(&props)?;
        let backend = Arc::new(SimBackend::new(bootstrap_servers(&self.scenario)));
        let mut plugins = workload::plugins(&self.workload, self.fs());
        if let Some(under_test) = &self.scenario.source_under_test {
            plugins.register(
                &under_test.class,
                on_disk(under_test.plugin.clone(), Arc::new(self.fs())),
            );
        }
        if let Some(under_test) = &self.scenario.sink_under_test {
            plugins.register(
                &under_test.class,
                with_faults(
                    on_disk(under_test.plugin.clone(), Arc::new(self.fs())),
                    Faults {
                        store: self.workload.store.clone(),
                        open: self.open_partitions.clone(),
                        worker: self.index,
                        max_poll_interval: self.scenario.max_poll_interval,
                    },
                ),
            );
        }
        if let (Some(failures), Some(class)) = (
            failures,
            source_props(&self.scenario).get("connector.class"),
        ) {
            failures.watch(&mut plugins, class);
        }
        Ok(
            StandaloneWorker::with_offset_store(config, backend, plugins, offsets)
                .with_fs(Arc::new(self.fs())),
        )
    }
}

pub(super) async fn run_worker(host: HostContext) -> turmoil::Result {
    let HostContext {
        index,
        ref scenario,
        ref journal,
        ref files,
        ..
    } = host;
    if scenario.workload == Workload::Files {
        input_file::create_data_dir()?;
    }
    let writer = (scenario.workload == Workload::Files && index == 0).then(|| {
        let total = scenario.total_records() as u64;
        let interval = scenario.source_interval;
        let rotations = host.workload.rotations.clone();
        let commits = host.offsets.commits.clone();
        tokio::spawn(async move {
            let committed = || commits.committed().get(&0).copied();
            input_file::write_input(total, 20, interval, &rotations, committed).await
        })
    });
    let offsets: SharedOffsetStore = match host.offsets.open(host.fs(), index) {
        Ok(store) => Arc::new(Mutex::new(store)),
        Err(e) => {
            worker_line(
                journal,
                index,
                "failed",
                format!("worker-{index} cannot start: {e}"),
            );
            return Ok(());
        }
    };
    let source = scenario
        .exactly_once
        .then(|| tokio::spawn(run_placed_source(host.clone(), offsets.clone())));
    // The operator restarts the worker whenever its source task fails.
    loop {
        let failures = TaskFailures::new(host.stop.clone(), host.calls.operating_source());
        let worker = host.worker(offsets.clone(), Some(&failures), None)?;
        let mut plans = Vec::new();
        let source = (index == 0 && !scenario.exactly_once).then(|| source_props(scenario));
        if let Some(source) = &source {
            plans.push(worker.plan(source)?);
        }
        let sink = sink_props(scenario, index);
        plans.push(worker.plan(&sink)?);
        let (control, inbox) = worker_control();
        let connectors = Connectors {
            source: source.and_then(|s| s.get("name").cloned()),
            sink: sink.get("name").cloned().unwrap_or_default(),
        };
        let operator = tokio::spawn(operator_calls::serve(
            host.calls.clone(),
            control,
            connectors,
            journal.clone(),
            index,
            host.stop.clone(),
        ));
        let shutdown = {
            let failures = failures.clone();
            let mut stop = host.stop.clone();
            async move {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => {}
                    () = failures.wait() => {}
                }
            }
        };
        let outcome = worker.run_controlled(plans, inbox, shutdown).await;
        operator.abort();
        match outcome {
            Ok(()) => worker_line(journal, index, "stopped", format!("worker-{index} stopped")),
            Err(e) => worker_line(
                journal,
                index,
                "failed",
                format!("worker-{index} failed: {e}"),
            ),
        }
        if !failures.raised() || *host.stop.borrow() {
            break;
        }
        worker_line(
            journal,
            index,
            "restart",
            format!("operator restarts worker-{index}: a source task failed"),
        );
    }
    if let Some(source) = source {
        // It stops on the same signal.
        let _ = source.await;
    }
    if let Some(writer) = writer {
        writer.abort();
    }
    if scenario.workload == Workload::Files {
        let mut found = vec![(
            format!("worker-{index}:{}", input_file::OUTPUT_FILE),
            input_file::read_lines(input_file::OUTPUT_FILE)?,
        )];
        if index == 0 {
            found.push((
                input_file::INPUT_FILE.to_owned(),
                input_file::read_lines(input_file::INPUT_FILE)?,
            ));
        }
        files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(found);
    }
    Ok(())
}

/// Runs an instance of the exactly-once source task whenever the orchestrator places it on this worker,
/// until the worker stops. An instance that fails while it is still the current placement (fenced by a
/// zombie that registered after it) is started again here under a new generation, as an operator
/// restarts a failed task; one that is no longer current (a zombie fenced by its successor) is not.
async fn run_placed_source(host: HostContext, offsets: SharedOffsetStore) {
    let mut placement = host.placement.clone();
    let mut stop = host.stop.clone();
    let mut started = None;
    loop {
        let placed = tokio::select! {
            placed = placement.next_for(host.index, started) => placed,
            _ = stop.wait_for(|stop| *stop) => None,
        };
        let Some(generation) = placed else {
            return;
        };
        started = Some(generation);
        // A task that fails (fenced by a zombie that registered after it) stops the instance, which the
        // operator then starts again below.
        let failures = TaskFailures::new(host.stop.clone(), Arc::default());
        let outcome = match host.worker(offsets.clone(), Some(&failures), Some(generation)) {
            Ok(worker) => match worker.plan(&source_props(&host.scenario)) {
                Ok(plan) => {
                    let mut stop = host.stop.clone();
                    let shutdown = async move {
                        tokio::select! {
                            _ = stop.wait_for(|stop| *stop) => {}
                            () = failures.wait() => {}
                        }
                    };
                    worker
                        .run(vec![plan], shutdown)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let failed = outcome.is_err();
        let (label, line) = match outcome {
            Ok(()) => (
                "stopped",
                format!(
                    "worker-{} source (placement {generation}) stopped",
                    host.index
                ),
            ),
            Err(e) => (
                "failed",
                format!(
                    "worker-{} source (placement {generation}) failed: {e}",
                    host.index
                ),
            ),
        };
        if line.contains("exactly.once.source.generation") {
            coverage::reached(Event::OlderGenerationRefused);
        }
        worker_line(&host.journal, host.index, label, line);
        if *host.stop.borrow() {
            return;
        }
        if failed && placement.restart(host.index, generation) {
            worker_line(
                &host.journal,
                host.index,
                "restart",
                format!(
                    "operator restarts the source on worker-{}: its instance failed",
                    host.index
                ),
            );
            coverage::reached(Event::FailedSourceRestarted);
        }
    }
}

/// Puts a line about worker `index`'s tasks in the trace (after the simulated time), and on the
/// worker's lane of the timeline.
fn worker_line(journal: &SharedJournal, index: usize, label: &str, line: String) {
    let at = crate::broker::now();
    let lane = worker_name(index);
    let mut journal = lock(journal);
    journal.trace.push(format!("{} {line}", millis(at)));
    journal.timeline.mark(
        (LaneKind::Worker, &lane),
        at,
        MarkKind::Lifecycle,
        label,
        line,
    );
}
