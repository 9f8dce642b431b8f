//! The oracle is not vacuous: for each kind of anomaly, a connector with a planted bug runs under the
//! simulation, and the oracle reports exactly that kind, with the seed that replays it.

use std::collections::BTreeSet;

use sluice_sim::faults::{Fault, Scheduled};
use sluice_sim::kit::SimTest;
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::{builtin, Report};

const SEED: u64 = 11;

fn kinds_found(source_bug: &'static str, sink_bug: &'static str) -> BTreeSet<AnomalyKind> {
    let scenario = builtin::scenario("pipeline")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.source_bug = source_bug;
            s.sink_bug = sink_bug;
            s.drain_limit = std::time::Duration::from_secs(20);
        });
    let report = scenario
        .run_exact(SEED, Vec::new())
        .expect("the simulation runs");
    assert_eq!(report.seed, SEED);
    assert!(
        report.summary().contains(&format!("seed={SEED} ANOMALY")),
        "{}",
        report.summary()
    );
    report.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn a_source_that_skips_records_loses_them() {
    assert_eq!(
        kinds_found("skip-records", "none"),
        BTreeSet::from([AnomalyKind::Lost])
    );
}

#[test]
fn a_source_that_commits_ahead_of_kafka_commits_before_durable() {
    assert_eq!(
        kinds_found("early-offsets", "none"),
        BTreeSet::from([AnomalyKind::CommittedBeforeDurable])
    );
}

/// It writes what it approved with the next batch: the last records wait for the task to stop, so the run
/// does not drain either.
#[test]
fn a_sink_that_approves_offsets_before_writing_commits_before_durable() {
    assert_eq!(
        kinds_found("none", "commit-before-flush"),
        BTreeSet::from([AnomalyKind::CommittedBeforeDurable, AnomalyKind::NotDrained])
    );
}

/// Its records never arrive, and its committed offset stays short of the log's end: the run does not
/// drain.
#[test]
fn a_sink_that_never_reads_a_partition_leaves_records_unseen_and_does_not_drain() {
    assert_eq!(
        kinds_found("none", "pause-partition"),
        BTreeSet::from([AnomalyKind::Unseen, AnomalyKind::NotDrained])
    );
}

#[test]
fn a_sink_that_writes_twice_duplicates() {
    assert_eq!(
        kinds_found("none", "write-twice"),
        BTreeSet::from([AnomalyKind::Duplicate])
    );
}

#[test]
fn a_sink_that_writes_backwards_is_nonmonotonic() {
    assert_eq!(
        kinds_found("none", "reverse-flush"),
        BTreeSet::from([AnomalyKind::Nonmonotonic])
    );
}

#[test]
fn a_sink_that_alters_values_is_inconsistent() {
    assert_eq!(
        kinds_found("none", "garble-values"),
        BTreeSet::from([AnomalyKind::Inconsistent])
    );
}

/// The exactly-once scenario with one scripted take-over: worker 0's source task is cut off from the
/// broker at 20 s for 10 s while the task starts on worker 1; transactions end every 2 s, so the cut-off
/// instance leaves one open.
fn take_over(worker_bug: &'static str, sink_isolation: &'static str) -> Report {
    let scenario = builtin::scenario("exactly-once-source")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.worker_bug = worker_bug;
            s.sink_isolation = sink_isolation;
            s.transaction_boundaries = &["interval"];
            s.drain_limit = std::time::Duration::from_secs(120);
        });
    let plan = vec![Scheduled {
        at: std::time::Duration::from_secs(20),
        fault: Fault::TakeOver {
            from: 0,
            to: 1,
            duration: std::time::Duration::from_secs(10),
        },
    }];
    scenario.run_exact(SEED, plan).expect("the simulation runs")
}

fn kinds(report: &Report) -> BTreeSet<AnomalyKind> {
    report.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn a_fenced_zombie_writes_nothing_visible() {
    let report = take_over("none", "read_committed");
    assert!(report.passed(), "{}", report.to_yaml());
    assert!(
        report
            .trace
            .iter()
            .any(|line| line.contains("ProducerInitialized") && line.contains("epoch: 1")),
        "the successor bumped the epoch"
    );
    assert!(
        report
            .trace
            .iter()
            .any(|line| line.contains("worker-0 source (placement 0) failed")),
        "the zombie stopped once fenced"
    );
}

#[test]
fn workers_with_distinct_group_ids_let_a_zombie_write() {
    let report = take_over("distinct-group-ids", "read_committed");
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::ZombieWrite]),
        "{}",
        report.to_yaml()
    );
}

#[test]
fn a_sink_reading_uncommitted_writes_aborted_records() {
    let report = take_over("none", "read_uncommitted");
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::Inconsistent]),
        "{}",
        report.to_yaml()
    );
}

/// The at-least-once storm scenario with one scripted crash of worker 0, where the source task runs: down
/// at 20 s for 2 s.
fn source_restart(source_bug: &'static str) -> Report {
    let scenario = builtin::scenario("crash-restart-storm")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.source_bug = source_bug;
        });
    let plan = vec![Scheduled {
        at: std::time::Duration::from_secs(20),
        fault: Fault::CrashWorker {
            worker: 0,
            down: std::time::Duration::from_secs(2),
        },
    }];
    let report = scenario.run_exact(SEED, plan).expect("the simulation runs");
    assert!(
        report
            .trace
            .iter()
            .any(|line| line.contains("Inject(CrashWorker { worker: 0")),
        "worker 0 crashed"
    );
    assert!(
        report.trace.iter().any(|line| line.contains("Restart(0)")),
        "worker 0 came back"
    );
    report
}

#[test]
fn a_restarted_source_resumes_after_its_committed_offset() {
    let report = source_restart("none");
    assert!(report.passed(), "{}", report.to_yaml());
}

#[test]
fn a_source_that_restarts_from_the_beginning_redelivers_after_commit() {
    let report = source_restart("restart-from-beginning");
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::RedeliveredAfterCommit]),
        "{}",
        report.to_yaml()
    );
    assert!(report.records.kafka_duplicates > 0);
}

/// The at-least-once storm scenario with eager rebalances, the StoreSink buffering, and one scripted
/// clean stop: worker 2 leaves the group at 20 s for 5 s, its partitions move to the other workers (whose
/// tasks open them), and move back when it returns.
fn sink_handover(sink_bug: &'static str) -> Report {
    let scenario = builtin::scenario("crash-restart-storm")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.sink_bug = sink_bug;
            s.sink_modes = &[sluice_sim::workload::SinkMode::Buffer];
            s.assignors = &["range"];
        });
    let plan = vec![Scheduled {
        at: std::time::Duration::from_secs(20),
        fault: Fault::StopWorker {
            worker: 2,
            away: std::time::Duration::from_secs(5),
            cut_off: false,
        },
    }];
    let report = scenario.run_exact(SEED, plan).expect("the simulation runs");
    assert!(
        report
            .coverage
            .contains_key(&sluice_sim::coverage::Event::PartitionHandedOver),
        "the partitions moved: {}",
        report.to_yaml()
    );
    report
}

#[test]
fn sink_tasks_given_partitions_resume_after_the_committed_offsets() {
    let report = sink_handover("none");
    assert!(report.passed(), "{}", report.to_yaml());
}

/// The partitions' new owners are members in good standing, so nothing excuses the copies: the oracle
/// must not take them for a zombie's.
#[test]
fn a_sink_that_rewinds_what_it_is_given_to_the_start_redelivers_after_commit() {
    let report = sink_handover("rewind-to-start");
    assert_eq!(
        kinds(&report),
        BTreeSet::from([AnomalyKind::RedeliveredAfterCommit]),
        "{}",
        report.to_yaml()
    );
}

/// A broker whose coordinator accepts offset commits from older generations (`broker_bug`), or the
/// correct one, under a scripted plan.
fn broker(broker_bug: &'static str, scenario: SimTest, seed: u64, plan: Vec<Scheduled>) -> Report {
    let scenario = scenario.with_scenario(|s| {
        s.broker_bug = broker_bug;
    });
    scenario.run_exact(seed, plan).expect("the simulation runs")
}

/// Worker 1's messages to the broker are held for 20 s from 20 s on: its session expires and its
/// partitions move; when the hold ends, the commits it made meanwhile reach the coordinator.
fn zombie_commits(broker_bug: &'static str) -> Report {
    let plan = vec![Scheduled {
        at: std::time::Duration::from_secs(20),
        fault: Fault::HoldNetwork {
            worker: 1,
            duration: std::time::Duration::from_secs(20),
        },
    }];
    let scenario = builtin::scenario("crash-restart-storm").expect("a known scenario");
    let report = broker(broker_bug, scenario, SEED, plan);
    assert!(
        report
            .trace
            .iter()
            .any(|line| line.contains("Departed(\"worker-1-") && line.contains("SessionExpired")),
        "worker 1's member was thrown out"
    );
    report
}

#[test]
fn a_coordinator_accepting_a_zombies_commits_moves_offsets_back() {
    let report = zombie_commits("accept-stale-commits");
    assert_eq!(
        kinds(&report),
        BTreeSet::from([
            AnomalyKind::StaleCommitAccepted,
            AnomalyKind::CommittedOffsetRegressed
        ]),
        "{}",
        report.to_yaml()
    );
    assert!(zombie_commits("none").passed());
}
