//! The key-value sink's task alone, with the kit's task harness: no Kafka, no workers, the runtime's
//! calls (open, put, pre_commit, close, rebalances, lost partitions, restarts, crashes) in an order each
//! seed draws, against the same model of the service, which crashes and is cut off now and then. The
//! correct task passes; each planted bug is caught.

#[path = "support/kv_service.rs"]
mod kv_service;

use std::sync::Arc;

use kv_connectors::{sink_plugin, SINK_CLASS};
use kv_service::{KvService, ADDRESS};
use sluice_sim::kit::{
    SimDialer, SinkTaskTest, SinkUnderTest, TaskHarness, TaskStep, TaskTestError,
};
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::scenario::Guarantee;

fn sink(bug: &str) -> SinkUnderTest {
    SinkUnderTest {
        class: SINK_CLASS.to_owned(),
        plugin: sink_plugin(Arc::new(SimDialer)),
        config: [("kv.address", ADDRESS), ("bug", bug)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        system: Arc::new(KvService),
    }
}

#[test]
fn the_kv_sink_task_holds_at_least_once_through_every_cycle() {
    SinkTaskTest::new("kv_sink_task", sink("none"))
        .seeds(1..=200)
        .require(&[
            TaskStep::Commit,
            TaskStep::Rebalance,
            TaskStep::PartitionsLost,
            TaskStep::Restart,
            TaskStep::Crash,
            TaskStep::FlushFailed,
            TaskStep::ExternalCrashed,
            TaskStep::ExternalUnreachable,
            TaskStep::ExternalSlow,
            TaskStep::ExternalErrors,
        ])
        .check();
}

/// The first failing seed of `test`: it must exist and show one of `kinds`.
fn caught(test: SinkTaskTest, kinds: &[AnomalyKind]) {
    match test.run() {
        Err(TaskTestError::Failed {
            run,
            shrunk,
            replay,
        }) => {
            println!("seed {} caught it; replay: {replay}\n{shrunk}", run.seed);
            assert!(
                run.anomalies.iter().any(|a| kinds.contains(&a.kind)),
                "{:?}",
                run.anomalies
            );
            // Shrinking keeps a prefix of the run that fails in the same way, and cuts it down.
            assert!(
                shrunk.run.anomalies.iter().any(|a| kinds.contains(&a.kind)),
                "{shrunk}"
            );
            assert!(shrunk.steps < shrunk.of, "{shrunk}");
            assert!(shrunk.run.log.len() < run.log.len(), "{shrunk}");
            assert_eq!(shrunk.run.seed, run.seed);
            assert!(
                replay.starts_with(&format!("SLUICE_SEED={} ", run.seed)),
                "{replay}"
            );
            assert!(!run.log.is_empty());
        }
        other => panic!("the planted bug should be caught: {other:?}"),
    }
}

#[test]
fn a_task_that_commits_before_its_writes_are_durable_is_caught() {
    caught(
        SinkTaskTest::new(
            "kv_sink_task_commit_before_sync",
            sink("commit-before-sync"),
        )
        .seeds(1..=100),
        &[AnomalyKind::CommittedBeforeDurable],
    );
}

#[test]
fn a_task_that_keeps_writes_of_partitions_it_lost_is_caught() {
    caught(
        SinkTaskTest::new("kv_sink_task_keep_lost_writes", sink("keep-lost-writes")).seeds(1..=100),
        &[AnomalyKind::WrittenAfterClose],
    );
}

#[test]
fn a_harness_whose_seeds_never_reach_a_required_step_fails() {
    let test = SinkTaskTest::new("kv_sink_task_no_faults", sink("none"))
        .without_external_faults()
        .seeds(1..=3)
        .require(&[TaskStep::Put, TaskStep::ExternalCrashed]);
    match test.run() {
        Err(TaskTestError::NotReached { missing, sweep }) => {
            assert_eq!(sweep.seeds, 3);
            assert_eq!(missing, vec!["external-crashed"]);
        }
        other => panic!("the test should fail for the step it never reached: {other:?}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    let test = SinkTaskTest::new("kv_sink_task_determinism", sink("none"));
    let first = test.run_seed(7).expect("the seed runs");
    let second = test.run_seed(7).expect("the seed runs again");
    assert!(first.log.len() > 100, "{:?}", first.log);
    assert_eq!(first.log, second.log);
    assert_eq!(first.committed, second.committed);
}

#[test]
fn the_upserting_kv_sink_task_is_effectively_once() {
    let mut under_test = sink("none");
    under_test
        .config
        .insert("kv.key".to_owned(), "record".to_owned());
    SinkTaskTest::new("kv_sink_task_effectively_once", under_test)
        .guarantee(Guarantee::EffectivelyOnce)
        .seeds(1..=50)
        .require(&[
            TaskStep::Rebalance,
            TaskStep::Crash,
            TaskStep::ExternalCrashed,
        ])
        .check();
}
