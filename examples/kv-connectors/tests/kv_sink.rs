//! The key-value sink under the simulation, with Sluice's test kit: the correct sink holds at least once
//! through crashes of workers and of the service, lost sessions, slow and failed flushes; a sink that
//! commits before its writes are durable is caught, shrunk to the faults that matter, and caught again
//! from the saved regression file.

#[path = "support/caught.rs"]
mod caught;
#[path = "support/kv_service.rs"]
mod kv_service;

use std::sync::Arc;

use caught::{caught, replayed};
use kv_connectors::{sink_plugin, SINK_CLASS};
use kv_service::{KvService, ADDRESS};
use sluice_sim::coverage::Event;
use sluice_sim::faults::FaultKind;
use sluice_sim::kit::{SimDialer, SimTest, SinkUnderTest, TestError};
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::scenario::Guarantee;
use sluice_sim::timeline::LaneKind;

fn sink(bug: &str) -> SinkUnderTest {
    SinkUnderTest {
        class: SINK_CLASS.to_owned(),
        plugin: sink_plugin(Arc::new(SimDialer)),
        config: [("kv.address", ADDRESS), ("tasks.max", "2"), ("bug", bug)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        system: Arc::new(KvService),
    }
}

#[test]
fn the_kv_sink_delivers_every_record_at_least_once_through_every_fault() {
    SimTest::sink("kv_sink_at_least_once", sink("none"))
        .seeds(1..=200)
        .require(&[
            Event::ExternalCrashed,
            Event::ExternalUnreachable,
            Event::ExternalSlow,
            Event::ExternalErrorAnswered,
            Event::WorkerCrashed,
            Event::MemberThrownOut,
            Event::FlushPastMaxPollInterval,
        ])
        .check();
}

/// Runs `test` until a seed fails, and checks that the failure is of one of `kinds`, shrinks to at most
/// three faults, and fails again when replayed from the regression file it is saved in.
fn caught_shrunk_and_replayed(test: SimTest, kinds: &[AnomalyKind]) {
    let failure = caught(&test, kinds);

    // The shrunk run's timeline: a lane per host and per group member, and its anomalies.
    let path = failure.timeline.as_ref().expect("the timeline is written");
    let page = std::fs::read_to_string(path).expect("the timeline can be read");
    for lane in failure.shrunk_report.timeline.lanes.iter() {
        assert!(
            page.contains(&format!("\"name\":\"{}\"", lane.name)),
            "{}",
            lane.name
        );
    }
    let lanes = &failure.shrunk_report.timeline.lanes;
    assert!(lanes.iter().any(|lane| lane.kind == LaneKind::Member));
    for host in ["worker-0", "worker-1", "broker-0", "kv"] {
        assert!(lanes.iter().any(|lane| lane.name == host), "{host}");
    }
    assert_eq!(
        failure.shrunk_report.timeline.anomalies.len(),
        failure.shrunk_report.anomalies.len()
    );

    replayed(&test, &failure);
}

#[test]
fn a_sink_that_keeps_writes_of_partitions_it_lost_is_caught_shrunk_and_replayed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    caught_shrunk_and_replayed(
        SimTest::sink("kv_sink_keep_lost_writes", sink("keep-lost-writes"))
            .seeds(1..=100)
            .regressions_in(dir.path()),
        // Its kept writes become durable after the partition moved (written-after-close), or, when
        // it comes back to the same task, next to the ones delivered again (written twice with no
        // fault to excuse it).
        &[
            AnomalyKind::WrittenAfterClose,
            AnomalyKind::RedeliveredWithoutFault,
        ],
    );
}

#[test]
fn a_sink_that_commits_before_its_writes_are_durable_is_caught_shrunk_and_replayed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    caught_shrunk_and_replayed(
        SimTest::sink("kv_sink_commit_before_sync", sink("commit-before-sync"))
            .seeds(1..=100)
            .regressions_in(dir.path()),
        &[AnomalyKind::CommittedBeforeDurable],
    );
}

#[test]
fn a_test_whose_seeds_never_reach_a_required_event_fails() {
    let test = SimTest::sink("kv_sink_latency_only", sink("none"))
        .faults(&[FaultKind::Latency], 2)
        .seeds(1..=3)
        .require(&[Event::OutOfOrderAcknowledgement, Event::ExternalCrashed]);
    match test.run() {
        Err(TestError::NotReached { missing, seeds, .. }) => {
            assert_eq!(seeds, 3);
            assert_eq!(missing, vec!["external-crashed"]);
        }
        other => panic!("the test should fail for the event it never reached: {other:?}"),
    }
}

#[test]
fn every_seed_replays_exactly() {
    let sweep = SimTest::sink("kv_sink_determinism", sink("none"))
        .seeds(1..=5)
        .check_determinism()
        .run()
        .expect("each seed runs the same twice");
    assert_eq!(sweep.seeds, 5);
}

/// The sink with `kv.key=record`: the service's keys are the records' keys, each holding its latest
/// value (upserts).
fn upserting_sink(bug: &str) -> SinkUnderTest {
    let mut under_test = sink(bug);
    under_test
        .config
        .insert("kv.key".to_owned(), "record".to_owned());
    under_test
}

#[test]
fn the_kv_sink_upserting_by_record_key_is_effectively_once_through_every_fault() {
    SimTest::sink("kv_sink_effectively_once", upserting_sink("none"))
        .guarantee(Guarantee::EffectivelyOnce)
        .seeds(1..=200)
        .require(&[
            Event::ExternalCrashed,
            Event::WorkerCrashed,
            Event::MemberThrownOut,
        ])
        .check();
}

#[test]
fn a_sink_whose_upserts_overwrite_newer_values_is_caught_shrunk_and_replayed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    caught_shrunk_and_replayed(
        SimTest::sink("kv_sink_blind_upserts", upserting_sink("blind-upserts"))
            .guarantee(Guarantee::EffectivelyOnce)
            .seeds(1..=100)
            .regressions_in(dir.path()),
        &[AnomalyKind::StaleValue],
    );
}

#[test]
fn effectively_once_needs_a_destination_that_tells_its_upserts() {
    let report = SimTest::sink("kv_sink_effectively_once_unchecked", sink("none"))
        .guarantee(Guarantee::EffectivelyOnce)
        .run_seed(1)
        .expect("the seed runs");
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::StaleValue && a.detail.contains("told no upsert")),
        "{:?}",
        report.anomalies
    );
}
