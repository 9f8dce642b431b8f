//! One run, seed to report: the plan and the seed's choices, the simulation's hosts, the fault, heal, drain
//! and stop phases, and the oracle's verdict.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use turmoil::net::TcpListener;

use super::actions::{apply, Action, Targets};
use super::fault_marks;
use super::hosts::{listeners, run_worker, Files, HostContext, WorkerHost};
use super::journal::{lock, millis, Journal, JournalObserver, SharedJournal};
use super::names::{broker_name, worker_name};
use super::offsets::{OffsetFile, SourceCommits};
use super::operator_calls::Calls;
use super::told;
use crate::broker::{serve, BrokerConfig, Cluster, BROKER_PORT};
use crate::coverage;
use crate::fault_plan;
use crate::faults::{Fault, Scheduled};
use crate::kit::{DurableWrites, OpenPartitions, SourceRecords};
use crate::oracle::drain::{shortfalls, DrainState};
use crate::oracle::redelivery::{self, Evidence, SinkCopies};
use crate::oracle::{
    cap, check_final, kafka_positions, Anomaly, AnomalyKind, CommitChecks, Destination, Durability,
    FinalState, RetentionEvidence,
};
use crate::oracle::{slow_calls, upserts};
use crate::placement;
use crate::report::{FinalOffsets, Report, TraceHash};
use crate::scenario::{Guarantee, Scenario, Workload};
use crate::timeline::{LaneKind, TimelineBuilder};
use crate::workload::{self, input_file, SinkMode};
use sluice_core::api::CommitRecordReads;

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

/// Runs `scenario` under `seed` with the faults the seed draws.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Report, RunError> {
    let choices = choose(scenario, seed);
    let mut report = run_planned(&choices.scenario, seed, choices.plan)?;
    report.guarantee_relaxed = choices.relaxed.map(str::to_owned);
    Ok(report)
}

/// What a seed chooses before its run: the faults, and the scenario narrowed to the assignor,
/// transaction boundary and sink mode it picked, held to the guarantee those allow.
#[derive(Debug, Clone)]
pub struct Choices {
    pub scenario: Scenario,
    pub plan: Vec<Scheduled>,
    /// Why the run is held to a weaker guarantee than its scenario's, if it is.
    pub relaxed: Option<&'static str>,
}

/// The choices `seed` makes for `scenario`; [`run_planned`] with them is [`run`].
pub fn choose(scenario: &Scenario, seed: u64) -> Choices {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plan = fault_plan::plan(scenario, &mut rng);
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
    // The later choices are drawn after the earlier ones, so that a seed keeps what it chose before each
    // was added. Narrowing a list to one choice (`sluice sim --sink-mode`, `--reads`) skips its draw and
    // changes the draws after it: a run replays exactly with the same seed and the same options.
    let sink_modes = match (scenario.workload, scenario.sink_modes) {
        (Workload::Files, _) | (_, [] | [_]) => scenario.sink_modes,
        (_, all) => std::slice::from_ref(&all[rng.random_range(0..all.len())]),
    };
    let commit_record_reads = match scenario.commit_record_reads {
        [] | [_] => scenario.commit_record_reads,
        all => std::slice::from_ref(&all[rng.random_range(0..all.len())]),
    };
    if scenario.cut_off_stops {
        for scheduled in &mut plan {
            if let Fault::StopWorker { cut_off, .. } = &mut scheduled.fault {
                *cut_off = rng.random_bool(0.5);
            }
        }
    }
    let narrowed = Scenario {
        assignors: if cooperative {
            &["cooperative-sticky"]
        } else {
            &["range"]
        },
        transaction_boundaries: boundary,
        sink_modes,
        commit_record_reads,
        ..scenario.clone()
    };
    let stops = plan
        .iter()
        .any(|s| matches!(s.fault, Fault::StopWorker { .. }));
    // A sink that keeps its offsets in the destination resumes from them, whatever Kafka's commits
    // missed: it needs no relaxing (run_planned holds it to exactly once).
    let exactly_once_sink = narrowed.sink_mode() == Some(SinkMode::OffsetsInDestination);
    let (guarantee, relaxed) = if cooperative
        && stops
        && !exactly_once_sink
        && scenario.guarantee == Guarantee::ExactlyOnce
    {
        (Guarantee::AtLeastOnce, Some(COOPERATIVE_STOPS))
    } else {
        (scenario.guarantee, None)
    };
    Choices {
        scenario: Scenario {
            guarantee,
            ..narrowed
        },
        plan,
        relaxed,
    }
}

/// Why clean stops with cooperative rebalances promise at least once only: a cooperative member keeps its
/// partitions while the group rebalances; if it stops just as the rebalance completes, its last commit
/// still carries the old generation and is refused (Kafka refuses it too), so what it flushed is
/// delivered again.
const COOPERATIVE_STOPS: &str = "exactly once relaxed to at least once: cooperative rebalances with clean stops (a member stopping as a rebalance completes has its last commit refused, so what it wrote is delivered again)";

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

/// Runs `scenario` under `seed` with a scripted list of faults. A StoreSink keeping its offsets in the
/// destination holds the sink side to exactly once.
pub fn run_planned(
    scenario: &Scenario,
    seed: u64,
    plan: Vec<Scheduled>,
) -> Result<Report, RunError> {
    let scenario = &Scenario {
        guarantee: match scenario.sink_mode() {
            Some(SinkMode::OffsetsInDestination) => scenario.guarantee.with_exactly_once_sink(),
            _ => scenario.guarantee,
        },
        ..scenario.clone()
    };
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
    coverage::start();
    crate::kit::errors::answer_with_errors(false);
    let listening = told::listen();
    // The driver runs outside the simulation: the wall clock only measures the run for its report.
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::Instant::now();
    let shared = workload::Shared::default();
    let store = shared.store.clone();
    if scenario.dead_letters {
        store.reject_records();
    }
    let cluster = Arc::new(Cluster::new(BrokerConfig {
        listeners: listeners(scenario),
        accept_stale_commits: scenario.broker_bug == "accept-stale-commits",
        ..BrokerConfig::default()
    }));
    let durability = match scenario.workload {
        Workload::Sequences => Durability::store(store.clone()),
        Workload::Files => Durability::files(shared.ledger.clone()),
    };
    let journal: SharedJournal = Arc::new(Mutex::new(Journal {
        trace: Vec::new(),
        checks: CommitChecks::new(scenario, durability),
        timeline: TimelineBuilder::default(),
    }));
    cluster.observe(Box::new(JournalObserver {
        journal: journal.clone(),
        store: store.clone(),
        sink_group: scenario.sink_group(),
    }));
    cluster.create_topic(scenario.topic(), scenario.partitions);
    // Worker 0's: it runs the source, unless sources run exactly once.
    let source_system = scenario
        .source_under_test
        .as_ref()
        .map(|under_test| under_test.system.clone());
    let source_commits = SourceCommits::new(shared.rotations.clone(), source_system.clone());

    let total = scenario.active + scenario.drain_limit + STOP_LIMIT;
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .tick_duration(scenario.tick)
        .simulation_duration(total + Duration::from_secs(10))
        .build();

    let brokers: Vec<String> = (0..scenario.brokers.max(1)).map(broker_name).collect();
    for (id, name) in brokers.iter().enumerate() {
        let cluster = cluster.clone();
        sim.host(name.as_str(), move || {
            let cluster = cluster.clone();
            async move {
                let listener = TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
                serve(listener, cluster, id as i32).await
            }
        });
    }
    let mut external = Vec::new();
    if let Some(under_test) = &scenario.sink_under_test {
        let durable = DurableWrites::new(store.clone());
        under_test.system.build(&mut sim, durable.clone());
        let system = under_test.system.clone();
        shared.ledger.watch(Box::new(move |worker, path, lines| {
            system.synced(&durable, worker, path, lines)
        }));
        external.extend(under_test.system.hosts());
    }
    if let Some(under_test) = &scenario.source_under_test {
        under_test.system.build(
            &mut sim,
            SourceRecords::drawn(
                scenario.streams,
                scenario.records_per_stream,
                scenario.source_interval,
                seed,
            ),
        );
        external.extend(under_test.system.hosts());
    }
    {
        let timeline = &mut lock(&journal).timeline;
        for name in &brokers {
            timeline.lane(LaneKind::Broker, name);
        }
        for index in 0..scenario.workers {
            timeline.lane(LaneKind::Worker, &worker_name(index));
        }
        for host in &external {
            timeline.lane(LaneKind::External, host);
        }
    }
    let files: Files = Arc::default();
    let open_partitions = Arc::new(OpenPartitions::default());
    let (orchestrator, placement) = placement::orchestrator();
    let mut workers = Vec::new();
    for index in 0..scenario.workers {
        let name = worker_name(index);
        let (stop, stop_rx) = watch::channel(false);
        let calls = Calls::new();
        let offsets = OffsetFile {
            commits: if index == 0 {
                source_commits.clone()
            } else {
                SourceCommits::new(shared.rotations.clone(), source_system.clone())
            },
            cluster: cluster.clone(),
            journal: journal.clone(),
        };
        let host = HostContext {
            index,
            scenario: scenario.clone(),
            workload: shared.clone(),
            offsets,
            stop: stop_rx,
            journal: journal.clone(),
            files: files.clone(),
            placement: placement.clone(),
            open_partitions: open_partitions.clone(),
            calls: calls.clone(),
        };
        sim.host(name.as_str(), move || run_worker(host.clone()));
        workers.push(WorkerHost { name, stop, calls });
    }

    let mut schedule: Vec<(Duration, Action)> = plan
        .iter()
        .map(|s| (s.at, Action::Inject(s.fault.clone())))
        .collect();
    let step =
        |sim: &mut turmoil::Sim<'_>| sim.step().map_err(|e| RunError::Simulation(e.to_string()));

    let targets = Targets {
        workers: &workers,
        brokers: &brokers,
        store: &store,
        disk: &shared.disk,
        rotations: &shared.rotations,
        outages: &shared.outages,
        journal: &journal,
        orchestrator: &orchestrator,
        cluster: &cluster,
        topic: scenario.topic(),
        external: &external,
        open_partitions: &open_partitions,
    };
    // Faults.
    while sim.elapsed() < scenario.active {
        let now = sim.elapsed();
        schedule.sort_by_key(|(at, _)| *at);
        while schedule.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = schedule.remove(0);
            act(&mut sim, action, now, &targets, &mut schedule);
        }
        step(&mut sim)?;
    }
    // Heal what is still broken, then drain.
    schedule.retain(|(_, action)| !matches!(action, Action::Inject(_)));
    let mut healing = std::mem::take(&mut schedule);
    healing.sort_by_key(|(at, _)| *at);
    for (_, action) in healing {
        let now = sim.elapsed();
        act(&mut sim, action, now, &targets, &mut schedule);
    }
    let drain_end = sim.elapsed() + scenario.drain_limit;
    let mut next_check = sim.elapsed();
    let mut drained = false;
    while sim.elapsed() < drain_end {
        let now = sim.elapsed();
        // Stopped workers whose restart was postponed come back here.
        schedule.sort_by_key(|(at, _)| *at);
        while schedule.first().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = schedule.remove(0);
            act(&mut sim, action, now, &targets, &mut schedule);
        }
        if now >= next_check {
            next_check = now + DRAIN_CHECK;
            if schedule.is_empty()
                && missing(scenario, &cluster, &journal, &source_commits, &listening).is_empty()
            {
                drained = true;
                break;
            }
        }
        step(&mut sim)?;
    }
    let not_drained = if drained {
        Vec::new()
    } else {
        missing(scenario, &cluster, &journal, &source_commits, &listening)
    };
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
    let mut coverage = coverage::finish();
    let retention_reported = listening.finish();

    let source_committed = committed_source(scenario, &cluster, &source_commits);
    let writes = store.writes();
    let files = std::mem::take(&mut *files.lock().unwrap_or_else(|e| e.into_inner()));
    let outputs: Vec<String> = files
        .iter()
        .filter(|(name, _)| name.ends_with(input_file::OUTPUT_FILE))
        .flat_map(|(_, lines)| lines.iter().cloned())
        .collect();
    let state = cluster.lock();
    let mut journal = lock(&journal);
    // What every check below reads of the run: computed once.
    let positions = kafka_positions(&state.logs, scenario);
    let zombies = journal.checks.zombie_writes(&state.logs);
    let zombie_writes = zombies
        .iter()
        .map(|zombie| (zombie.tp.clone(), zombie.offset))
        .collect();
    let (tally, found) = check_final(&FinalState {
        scenario,
        logs: &state.logs,
        source_committed: &source_committed,
        destination: match scenario.workload {
            Workload::Sequences => Destination::Store(&writes),
            Workload::Files => Destination::Lines(&outputs),
        },
        zombie_writes: &zombie_writes,
        positions: &positions,
        reports: &shared.reports.take(),
        retention: RetentionEvidence {
            deleted_while_owed: journal.checks.deleted_while_owed(),
            reported: &retention_reported,
        },
    });
    let sink_committed = state.committed(&scenario.sink_group());
    let lines = shared.ledger.lines(input_file::OUTPUT_FILE);
    let epochs = store.epoch_starts();
    let mut strikes = store.strikes().all();
    strikes.extend(shared.disk.strikes().all());
    let redelivered = redelivery::judge(&Evidence {
        scenario,
        logs: &state.logs,
        plan: &plan,
        strikes: &strikes,
        sink_commits: &journal.checks.sink_commits(),
        sink_ownership: &journal.checks.sink_ownership(),
        source_commits: journal.checks.source_commits(),
        sink: match scenario.workload {
            Workload::Sequences => SinkCopies::Store {
                writes: &writes,
                epochs: &epochs,
            },
            Workload::Files => SinkCopies::Lines(&lines),
        },
        zombie_writes: &zombie_writes,
        positions: &positions,
    });
    let mut anomalies = journal.checks.anomalies(&state.logs, &positions, &zombies);
    anomalies.extend(slow_calls::check(
        scenario,
        &strikes,
        &journal.checks.sink_ownership(),
        &mut coverage,
    ));
    anomalies.extend(found);
    anomalies.extend(redelivered);
    anomalies.extend(open_partitions.check(&writes));
    if scenario.guarantee == Guarantee::EffectivelyOnce {
        anomalies.extend(upserts::check(&state.logs, &store.upserts()));
    }
    anomalies.extend(not_drained.into_iter().map(|detail| Anomaly {
        kind: AnomalyKind::NotDrained,
        detail: format!(
            "after the {} s drain limit: {detail}",
            scenario.drain_limit.as_secs()
        ),
    }));
    let anomalies = cap(anomalies);
    drop(state);
    let mut timeline = std::mem::take(&mut journal.timeline);
    timeline.flushes(&writes);
    let timeline = timeline.finish(scenario.name, seed, simulated, &anomalies, &writes);
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
        guarantee_relaxed: None,
        assignor: scenario.assignor().to_owned(),
        sink_mode: scenario.sink_mode(),
        commit_record_reads: scenario
            .commit_record_reads()
            .filter(|&reads| reads != CommitRecordReads::Everything),
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
        coverage,
        trace_hash: hash.hex(),
        wall_ms: wall.elapsed().as_millis() as u64,
        trace,
        timeline,
    })
}

/// Marks `action` on the run's timeline, then applies it.
fn act(
    sim: &mut turmoil::Sim<'_>,
    action: Action,
    now: Duration,
    targets: &Targets<'_>,
    schedule: &mut Vec<(Duration, Action)>,
) {
    fault_marks::action(
        &mut lock(targets.journal).timeline,
        now,
        &action,
        targets.external,
    );
    apply(sim, action, now, targets, schedule);
}

/// Committed seq per stream: in the offsets topic with exactly-once source support, in worker 0's offset
/// store otherwise.
fn committed_source(
    scenario: &Scenario,
    cluster: &Cluster,
    source: &SourceCommits,
) -> BTreeMap<i64, i64> {
    if let (true, Some(under_test)) = (scenario.exactly_once, &scenario.source_under_test) {
        placement::topic_offsets_covered(&cluster.lock().logs, |partition, offset| {
            under_test.system.covered(partition, offset)
        })
    } else if scenario.exactly_once {
        placement::topic_offsets(&cluster.lock().logs)
    } else {
        source.committed()
    }
}

/// What is missing for the pipeline to have drained (see [`shortfalls`]): nothing once everything the
/// source holds is committed, in Kafka, durable at the sink's end and committed by the sink.
fn missing(
    scenario: &Scenario,
    cluster: &Cluster,
    journal: &SharedJournal,
    source: &SourceCommits,
    listening: &told::Listening,
) -> Vec<String> {
    let source_committed = committed_source(scenario, cluster, source);
    let reported = listening.reported();
    let state = cluster.lock();
    let sink_committed = state.committed(&scenario.sink_group());
    let journal = lock(journal);
    shortfalls(&DrainState {
        scenario,
        logs: &state.logs,
        source_committed: &source_committed,
        sink_committed: &sink_committed,
        durability: journal.checks.durability(),
        reported: &reported,
    })
}
