//! Runs a scenario under one seed: builds the turmoil simulation (a broker host and worker hosts running the
//! unchanged standalone worker), injects the planned faults, heals them, lets the pipeline drain, stops the
//! workers cleanly and hands everything to the oracle.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_core::config::{ConfigError, ConfigMap};
use sluice_core::runtime::{
    OffsetBackingStore, OffsetStoreError, SharedOffsetStore, StandaloneWorker, WorkerConfig,
};
use tokio::sync::watch;
use turmoil::net::TcpListener;

use crate::broker::{
    serve, BrokerConfig, Cluster, ClusterEvent, ClusterObserver, Logs, BROKER_PORT,
};
use crate::client::SimBackend;
use crate::faults::{self, Fault, Scheduled};
use crate::oracle::{check_final, durable_end, CommitChecks, Destination, FinalState};
use crate::placement::{self, Orchestrator, Placement};
use crate::protocol::Tp;
use crate::report::{FinalOffsets, Report, TraceHash};
use crate::scenario::{Guarantee, Scenario, Workload};
use crate::workload::{self, input_file, DestinationStore, DiskFaults, StoreFault};

/// Simulated time starts here (2026-01-01T00:00:00Z), so timestamps do not depend on the wall clock.
const EPOCH_SECS: u64 = 1_767_225_600;
/// How long the workers get to stop cleanly at the end.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How often the drain phase checks whether everything arrived.
const DRAIN_CHECK: Duration = Duration::from_millis(500);

/// Why a run could not complete (as opposed to completing with anomalies).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the simulation failed: {0}")]
    Simulation(String),
}

/// The run's trace and the checks made as it goes.
struct Journal {
    trace: Vec<String>,
    checks: CommitChecks,
}

type SharedJournal = Arc<Mutex<Journal>>;

fn lock(journal: &SharedJournal) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

struct JournalObserver(SharedJournal);

impl ClusterObserver for JournalObserver {
    fn on_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs) {
        let mut journal = lock(&self.0);
        journal.trace.push(format!("{} {event:?}", millis(at)));
        journal.checks.on_cluster_event(at, event, logs);
    }
}

/// Worker 0's source offsets: kept outside the host, as a synced file survives a crash; every commit is
/// checked against what Kafka holds at that moment.
struct CheckedOffsetStore {
    /// Per connector, per source partition (keyed by its JSON text): the partition and its offset.
    offsets: BTreeMap<String, BTreeMap<String, (SourcePartition, SourceOffset)>>,
    cluster: Arc<Cluster>,
    journal: SharedJournal,
}

impl OffsetBackingStore for CheckedOffsetStore {
    fn get(&self, connector: &str, partition: &SourcePartition) -> Option<SourceOffset> {
        self.offsets
            .get(connector)?
            .get(&partition.to_string())
            .map(|(_, offset)| offset.clone())
    }

    fn put(
        &mut self,
        connector: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<(), OffsetStoreError> {
        let commits: Vec<(i64, i64)> = offsets
            .iter()
            .filter_map(|(p, o)| source_position(p, o))
            .collect();
        {
            let state = self.cluster.lock();
            let mut journal = lock(&self.journal);
            journal.checks.on_source_commit(&state.logs, &commits);
            journal.trace.push(format!(
                "{} source commit {commits:?}",
                millis(crate::broker::now())
            ));
        }
        let stored = self.offsets.entry(connector.to_owned()).or_default();
        for (partition, offset) in offsets {
            stored.insert(partition.to_string(), (partition.clone(), offset.clone()));
        }
        Ok(())
    }
}

impl CheckedOffsetStore {
    /// Committed seq per stream.
    fn committed(&self) -> BTreeMap<i64, i64> {
        self.offsets
            .values()
            .flat_map(|offsets| offsets.values())
            .filter_map(|(partition, offset)| source_position(partition, offset))
            .collect()
    }
}

/// A committed source offset as (stream, seq of the last record it covers): SequenceSource's
/// `{"stream": s}`/`{"seq": n}`, or FileStreamSource's `{"position": bytes}` (stream 0, line `bytes / 14 - 1`).
fn source_position(partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)> {
    if let Some(position) = offset.get("position").and_then(|p| p.as_i64()) {
        let last = position / input_file::LINE_BYTES as i64 - 1;
        return (last >= 0).then_some((0, last));
    }
    Some((
        partition.get("stream")?.as_i64()?,
        offset.get("seq")?.as_i64()?,
    ))
}

/// What a run needs to know for each worker host.
struct WorkerHost {
    name: String,
    stop: watch::Sender<bool>,
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
        ("bootstrap.servers", format!("broker:{BROKER_PORT}")),
        ("key.converter", string.clone()),
        ("value.converter", string),
        (
            "offset.storage.file.filename",
            "/sluice/offsets.json".into(),
        ),
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
    ])
}

fn source_props(scenario: &Scenario) -> ConfigMap {
    if scenario.workload == Workload::Files {
        return props(&[
            ("name", "file-source".into()),
            ("connector.class", "FileStreamSource".into()),
            ("file", input_file::INPUT_FILE.into()),
            ("topic", scenario.topic().into()),
        ]);
    }
    props(&[
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
        ("bug", scenario.source_bug.into()),
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
    ])
}

fn sink_props(scenario: &Scenario) -> ConfigMap {
    if scenario.workload == Workload::Files {
        return props(&[
            ("name", scenario.sink_name().into()),
            ("connector.class", "FileStreamSink".into()),
            ("file", input_file::OUTPUT_FILE.into()),
            ("topics", scenario.topic().into()),
        ]);
    }
    props(&[
        ("name", scenario.sink_name().into()),
        ("connector.class", "io.sluice.sim.StoreSinkConnector".into()),
        ("tasks.max", "1".into()),
        ("topics", scenario.topic().into()),
        ("bug", scenario.sink_bug.into()),
    ])
}

/// The files each worker's disk held when it last stopped cleanly: its output, and worker 0's input.
type Files = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// What a worker host runs with; cloned each time the host starts.
#[derive(Clone)]
struct HostContext {
    index: usize,
    scenario: Scenario,
    store: Arc<DestinationStore>,
    offsets: SharedOffsetStore,
    stop: watch::Receiver<bool>,
    journal: SharedJournal,
    files: Files,
    disk: Arc<DiskFaults>,
    /// Numbers source task instances across the run.
    instances: Arc<AtomicU64>,
    /// Which worker runs the source, with exactly-once source support.
    placement: Placement,
}

impl HostContext {
    fn worker(&self) -> Result<StandaloneWorker, ConfigError> {
        let config = WorkerConfig::parse(&worker_props(&self.scenario, self.index))?;
        let backend = Arc::new(SimBackend::new(format!("broker:{BROKER_PORT}")));
        Ok(StandaloneWorker::with_offset_store(
            config,
            backend,
            workload::plugins(
                self.store.clone(),
                self.disk.clone(),
                self.instances.clone(),
            ),
            self.offsets.clone(),
        ))
    }
}

async fn run_worker(host: HostContext) -> turmoil::Result {
    let HostContext {
        index,
        ref scenario,
        ref journal,
        ref files,
        ..
    } = host;
    let mut stop = host.stop.clone();
    if scenario.workload == Workload::Files {
        input_file::create_data_dir()?;
    }
    let writer = (scenario.workload == Workload::Files && index == 0).then(|| {
        tokio::spawn(input_file::write_input(
            scenario.total_records() as u64,
            20,
            scenario.source_interval,
        ))
    });
    let worker = host.worker()?;
    let mut plans = Vec::new();
    if index == 0 && !scenario.exactly_once {
        plans.push(worker.plan(&source_props(scenario))?);
    }
    plans.push(worker.plan(&sink_props(scenario))?);
    let source = scenario
        .exactly_once
        .then(|| tokio::spawn(run_placed_source(host.clone())));
    let shutdown = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let outcome = worker.run(plans, shutdown).await;
    if let Some(source) = source {
        // It stops on the same signal.
        let _ = source.await;
    }
    let line = match outcome {
        Ok(()) => format!("{} worker-{index} stopped", millis(crate::broker::now())),
        Err(e) => format!(
            "{} worker-{index} failed: {e}",
            millis(crate::broker::now())
        ),
    };
    lock(journal).trace.push(line);
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
/// until the worker stops. An instance that ends by itself (fenced as a zombie) is not restarted here.
async fn run_placed_source(host: HostContext) {
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
        let outcome = match host.worker() {
            Ok(worker) => match worker.plan(&source_props(&host.scenario)) {
                Ok(plan) => {
                    let mut stop = host.stop.clone();
                    let shutdown = async move {
                        let _ = stop.wait_for(|stop| *stop).await;
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
        let now = millis(crate::broker::now());
        let line = match outcome {
            Ok(()) => format!(
                "{now} worker-{} source (placement {generation}) stopped",
                host.index
            ),
            Err(e) => format!(
                "{now} worker-{} source (placement {generation}) failed: {e}",
                host.index
            ),
        };
        lock(&host.journal).trace.push(line);
        if *host.stop.borrow() {
            return;
        }
    }
}

/// What to do at a point in simulated time.
#[derive(Debug, Clone)]
enum Action {
    Inject(Fault),
    /// Start a crashed or stopped worker again.
    Restart(usize),
    Release(usize),
    Repair(usize),
    BrokerUp,
    LatencyOff,
}

/// Runs `scenario` under `seed` with the faults the seed draws.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Report, RunError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = faults::plan(scenario, &mut rng);
    let assignor = scenario
        .assignors
        .get(rng.random_range(0..scenario.assignors.len().max(1)))
        .copied()
        .unwrap_or("range");
    let cooperative = assignor == "cooperative-sticky";
    let boundary = match scenario.transaction_boundaries {
        [] | [_] => scenario.transaction_boundaries,
        all => std::slice::from_ref(&all[rng.random_range(0..all.len())]),
    };
    // A cooperative member keeps its partitions while the group rebalances; if it stops just as the
    // rebalance completes, its last commit still carries the old generation and is refused (Kafka refuses
    // it too), so what it flushed is delivered again: clean stops promise exactly once only with eager
    // rebalances.
    let guarantee = match (
        cooperative,
        plan.iter()
            .any(|s| matches!(s.fault, Fault::StopWorker { .. })),
    ) {
        (true, true) => Guarantee::AtLeastOnce,
        _ => scenario.guarantee,
    };
    run_planned(
        &Scenario {
            assignors: if cooperative {
                &["cooperative-sticky"]
            } else {
                &["range"]
            },
            guarantee,
            transaction_boundaries: boundary,
            ..scenario.clone()
        },
        seed,
        plan,
    )
}

/// One simulation at a time per process: see [`align_task_ids`].
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Task ids to align the next run's first task id to.
const TASK_ID_ALIGNMENT: u64 = 64;

/// Makes tokio's next task id a multiple of [`TASK_ID_ALIGNMENT`].
///
/// tokio numbers tasks from one process-wide counter and files each task of a runtime in one of a few lists
/// by its id; when turmoil crashes a host it drops the host's runtime, and the tasks go in list order. Their
/// drops close connections, and the order of those closes decides how the simulation's random stream is
/// consumed after. So a run replays exactly only if its task ids fall into the same lists as last time:
/// starting every run at an aligned id (and never running two at once) guarantees it, whatever ran before.
fn align_task_ids() -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| RunError::Simulation(format!("cannot start a runtime: {e}")))?;
    loop {
        let id: u64 = runtime
            .spawn(async {})
            .id()
            .to_string()
            .parse()
            .map_err(|_| RunError::Simulation("tokio task ids are not numbers".into()))?;
        if (id + 1) % TASK_ID_ALIGNMENT == 0 {
            return Ok(());
        }
    }
}

/// Runs `scenario` under `seed` with a scripted list of faults.
pub fn run_planned(
    scenario: &Scenario,
    seed: u64,
    plan: Vec<Scheduled>,
) -> Result<Report, RunError> {
    if scenario.workers == 0 {
        return Err(RunError::Simulation(
            "a scenario needs at least one worker".into(),
        ));
    }
    if let Some(bad) = plan
        .iter()
        .find(|s| s.fault.workers().iter().any(|w| *w >= scenario.workers))
    {
        return Err(RunError::Simulation(format!(
            "fault {:?} names a worker the scenario does not have ({} workers)",
            bad.fault, scenario.workers
        )));
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    align_task_ids()?;
    // The driver runs outside the simulation: the wall clock only measures the run for its report.
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::Instant::now();
    let store = Arc::new(DestinationStore::default());
    let cluster = Arc::new(Cluster::new(BrokerConfig::default()));
    let journal: SharedJournal = Arc::new(Mutex::new(Journal {
        trace: Vec::new(),
        checks: CommitChecks::new(scenario, store.clone()),
    }));
    cluster.observe(Box::new(JournalObserver(journal.clone())));
    cluster.create_topic(scenario.topic(), scenario.partitions);
    let source_offsets = Arc::new(Mutex::new(CheckedOffsetStore {
        offsets: BTreeMap::new(),
        cluster: cluster.clone(),
        journal: journal.clone(),
    }));

    let total = scenario.active + scenario.drain_limit + STOP_LIMIT;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .tick_duration(scenario.tick)
        .simulation_duration(total + Duration::from_secs(10))
        .build();

    {
        let cluster = cluster.clone();
        sim.host("broker", move || {
            let cluster = cluster.clone();
            async move {
                let listener = TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
                serve(listener, cluster).await
            }
        });
    }
    let files: Files = Arc::default();
    let disk: Arc<DiskFaults> = Arc::default();
    let instances: Arc<AtomicU64> = Arc::default();
    let (orchestrator, placement) = placement::orchestrator();
    let mut workers = Vec::new();
    for index in 0..scenario.workers {
        let name = format!("worker-{index}");
        let (stop, stop_rx) = watch::channel(false);
        let offsets: SharedOffsetStore = if index == 0 {
            source_offsets.clone()
        } else {
            Arc::new(Mutex::new(CheckedOffsetStore {
                offsets: BTreeMap::new(),
                cluster: cluster.clone(),
                journal: journal.clone(),
            }))
        };
        let host = HostContext {
            index,
            scenario: scenario.clone(),
            store: store.clone(),
            offsets,
            stop: stop_rx,
            journal: journal.clone(),
            files: files.clone(),
            disk: disk.clone(),
            instances: instances.clone(),
            placement: placement.clone(),
        };
        sim.host(name.as_str(), move || run_worker(host.clone()));
        workers.push(WorkerHost { name, stop });
    }

    let mut schedule: Vec<(Duration, Action)> = plan
        .iter()
        .map(|s| (s.at, Action::Inject(s.fault.clone())))
        .collect();
    let step =
        |sim: &mut turmoil::Sim<'_>| sim.step().map_err(|e| RunError::Simulation(e.to_string()));

    let targets = Targets {
        workers: &workers,
        store: &store,
        disk: &disk,
        journal: &journal,
        orchestrator: &orchestrator,
    };
    // Faults.
    while sim.elapsed() < scenario.active {
        let now = sim.elapsed();
        schedule.sort_by_key(|(at, _)| *at);
        while schedule.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = schedule.remove(0);
            apply(&mut sim, action, now, &targets, &mut schedule);
        }
        step(&mut sim)?;
    }
    // Heal what is still broken, then drain.
    schedule.retain(|(_, action)| !matches!(action, Action::Inject(_)));
    let mut healing = std::mem::take(&mut schedule);
    healing.sort_by_key(|(at, _)| *at);
    for (_, action) in healing {
        let now = sim.elapsed();
        apply(&mut sim, action, now, &targets, &mut schedule);
    }
    let drain_end = sim.elapsed() + scenario.drain_limit;
    let mut next_check = sim.elapsed();
    while sim.elapsed() < drain_end {
        let now = sim.elapsed();
        // Stopped workers whose restart was postponed come back here.
        schedule.sort_by_key(|(at, _)| *at);
        while schedule.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = schedule.remove(0);
            apply(&mut sim, action, now, &targets, &mut schedule);
        }
        if now >= next_check {
            next_check = now + DRAIN_CHECK;
            if schedule.is_empty() && drained(scenario, &cluster, &store, &source_offsets) {
                break;
            }
        }
        step(&mut sim)?;
    }
    // Stop every worker cleanly.
    for worker in &workers {
        let _ = worker.stop.send(true);
    }
    let stop_end = sim.elapsed() + STOP_LIMIT;
    while sim.elapsed() < stop_end && workers.iter().any(|w| sim.is_host_running(w.name.as_str())) {
        step(&mut sim)?;
    }
    let simulated = sim.elapsed();
    drop(sim);

    let source_committed = committed_source(scenario, &cluster, &source_offsets);
    let writes = store.writes();
    let files = std::mem::take(&mut *files.lock().unwrap_or_else(|e| e.into_inner()));
    let outputs: Vec<String> = files
        .iter()
        .filter(|(name, _)| name.ends_with(input_file::OUTPUT_FILE))
        .flat_map(|(_, lines)| lines.iter().cloned())
        .collect();
    let state = cluster.lock();
    let journal = lock(&journal);
    let zombie_writes = journal
        .checks
        .zombie_writes(&state.logs)
        .into_iter()
        .map(|zombie| (zombie.tp, zombie.offset))
        .collect();
    let (tally, mut anomalies) = check_final(&FinalState {
        scenario,
        logs: &state.logs,
        source_committed: &source_committed,
        destination: match scenario.workload {
            Workload::Sequences => Destination::Store(&writes),
            Workload::Files => Destination::Lines(&outputs),
        },
        zombie_writes: &zombie_writes,
    });
    let sink_committed = state.committed(&scenario.sink_group());
    anomalies.splice(0..0, journal.checks.anomalies(&state.logs));
    drop(state);
    let mut trace = journal.trace.clone();
    trace.extend(writes.iter().map(|write| {
        format!(
            "{} write {} {} {} {} {}",
            millis(write.at),
            write.task,
            write.epoch,
            write.tp,
            write.offset,
            write.value
        )
    }));
    trace.extend(files.iter().map(|(name, lines)| {
        format!(
            "file {name}: {} lines, last {:?}",
            lines.len(),
            lines.last()
        )
    }));
    let mut hash = TraceHash::default();
    for line in &trace {
        hash.add(line);
    }
    Ok(Report {
        scenario: scenario.name.to_owned(),
        seed,
        guarantee: scenario.guarantee,
        assignor: scenario.assignor().to_owned(),
        transaction_boundary: scenario
            .exactly_once
            .then(|| scenario.transaction_boundary().to_owned()),
        faults: plan,
        simulated_ms: simulated.as_millis() as u64,
        records: tally,
        anomalies,
        final_offsets: FinalOffsets {
            source: source_committed
                .iter()
                .map(|(stream, seq)| (format!("stream-{stream}"), *seq))
                .collect(),
            sink: sink_committed
                .iter()
                .map(|(tp, offset)| (tp.to_string(), *offset))
                .collect(),
        },
        trace_hash: hash.hex(),
        wall_ms: wall.elapsed().as_millis() as u64,
        trace,
    })
}

/// Committed seq per stream: in the offsets topic with exactly-once source support, in worker 0's offset
/// store otherwise.
fn committed_source(
    scenario: &Scenario,
    cluster: &Cluster,
    source: &Mutex<CheckedOffsetStore>,
) -> BTreeMap<i64, i64> {
    if scenario.exactly_once {
        placement::topic_offsets(&cluster.lock().logs)
    } else {
        source.lock().unwrap_or_else(|e| e.into_inner()).committed()
    }
}

/// Everything the source holds is committed, in Kafka, durable in the destination and committed by the sink.
fn drained(
    scenario: &Scenario,
    cluster: &Cluster,
    store: &DestinationStore,
    source: &Mutex<CheckedOffsetStore>,
) -> bool {
    let committed = committed_source(scenario, cluster, source);
    let source_done = (0..scenario.streams)
        .all(|s| committed.get(&s) == Some(&(scenario.records_per_stream - 1)));
    if !source_done {
        return false;
    }
    let state = cluster.lock();
    let sink_committed = state.committed(&scenario.sink_group());
    (0..scenario.partitions).all(|p| {
        let tp = Tp::new(scenario.topic(), p);
        // Where a sink that read everything commits: control markers and aborted records after the last
        // record are never delivered to it.
        let end = state.logs.committed_end(&tp);
        // The FileStreamSink commits only what it synced; its files are read when the workers stop.
        let durable =
            scenario.workload == Workload::Files || durable_end(&state.logs, store, &tp) >= end;
        durable && sink_committed.get(&tp).copied().unwrap_or(0) >= end
    })
}

/// What faults act on.
struct Targets<'a> {
    workers: &'a [WorkerHost],
    store: &'a DestinationStore,
    disk: &'a DiskFaults,
    journal: &'a SharedJournal,
    orchestrator: &'a Orchestrator,
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    action: Action,
    now: Duration,
    targets: &Targets<'_>,
    schedule: &mut Vec<(Duration, Action)>,
) {
    let Targets {
        workers,
        store,
        disk,
        journal,
        orchestrator,
    } = targets;
    lock(journal)
        .trace
        .push(format!("{} {action:?}", millis(now)));
    match action {
        Action::Inject(fault) => match fault {
            Fault::CrashWorker { worker, down } => {
                sim.crash(workers[worker].name.as_str());
                schedule.push((now + down, Action::Restart(worker)));
            }
            Fault::StopWorker { worker, away } => {
                let _ = workers[worker].stop.send(true);
                schedule.push((now + away, Action::Restart(worker)));
            }
            Fault::HoldNetwork { worker, duration } => {
                sim.hold(workers[worker].name.as_str(), "broker");
                schedule.push((now + duration, Action::Release(worker)));
            }
            Fault::PartitionNetwork { worker, duration } => {
                sim.partition(workers[worker].name.as_str(), "broker");
                schedule.push((now + duration, Action::Repair(worker)));
            }
            Fault::StallFlush { duration } => store.arm(StoreFault::StallFlush(duration)),
            Fault::StallPut { duration } => store.arm(StoreFault::StallPut(duration)),
            Fault::FailFlush => store.arm(StoreFault::FailFlush),
            Fault::FailSync => disk.fail_next_sync(),
            Fault::RestartBroker { down } => {
                sim.crash("broker");
                schedule.push((now + down, Action::BrokerUp));
            }
            Fault::Latency { max, duration } => {
                sim.set_max_message_latency(max);
                schedule.push((now + duration, Action::LatencyOff));
            }
            Fault::TakeOver { from, to, duration } => {
                sim.hold(workers[from].name.as_str(), "broker");
                schedule.push((now + duration, Action::Release(from)));
                orchestrator.place(to);
            }
        },
        Action::Restart(worker) => {
            let host = workers[worker].name.as_str();
            let stopping = *workers[worker].stop.borrow();
            match (stopping, sim.is_host_running(host)) {
                // Still stopping cleanly: come back when it has.
                (true, true) => {
                    schedule.push((now + Duration::from_millis(500), Action::Restart(worker)))
                }
                // Already up: restarting it would crash it.
                (false, true) => {}
                (_, false) => {
                    let _ = workers[worker].stop.send(false);
                    sim.bounce(host);
                }
            }
        }
        Action::Release(worker) => sim.release(workers[worker].name.as_str(), "broker"),
        Action::Repair(worker) => sim.repair(workers[worker].name.as_str(), "broker"),
        Action::BrokerUp => sim.bounce("broker"),
        Action::LatencyOff => sim.set_max_message_latency(Duration::ZERO),
    }
}
