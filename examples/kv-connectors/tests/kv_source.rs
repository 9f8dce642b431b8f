//! The event-log source under the simulation, with Sluice's test kit: the correct source holds at least
//! once through crashes and stops of its worker, lost sessions, broker restarts, produce errors and
//! crashes of the service; a source whose offsets run ahead of what it read is caught, shrunk to the
//! faults that matter, and caught again from the saved regression file.

#[path = "support/event_log.rs"]
mod event_log;

use std::sync::Arc;

use event_log::{EventLog, LOG_ADDRESS};
use kv_connectors::{source_plugin, SOURCE_CLASS};
use sluice_sim::coverage::Event;
use sluice_sim::faults::FaultKind;
use sluice_sim::kit::{SimDialer, SimTest, SourceUnderTest, TestError};
use sluice_sim::oracle::AnomalyKind;

fn source(bug: &str) -> SimTest {
    let config = [
        ("kv.address", LOG_ADDRESS),
        ("topic", "sequences"),
        ("streams", "4"),
        ("tasks.max", "2"),
        ("batch.max", "5"),
        ("bug", bug),
    ];
    let test = SimTest::source(
        "placeholder",
        SourceUnderTest {
            class: SOURCE_CLASS.to_owned(),
            plugin: source_plugin(Arc::new(SimDialer)),
            config: config
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            system: Arc::new(EventLog),
        },
    );
    assert_eq!(test.topic(), "sequences");
    test
}

#[test]
fn the_event_log_source_delivers_every_record_at_least_once_through_every_fault() {
    source("none")
        .with_scenario(|s| s.name = "kv_source_at_least_once")
        .seeds(1..=200)
        .require(&[
            Event::ExternalCrashed,
            Event::ExternalUnreachable,
            Event::ExternalSlow,
            Event::ExternalErrorAnswered,
            Event::WorkerCrashed,
            Event::DeliveryFailed,
        ])
        .check();
}

#[test]
fn a_source_whose_offsets_run_ahead_of_what_it_read_is_caught_shrunk_and_replayed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let test = source("offset-at-log-end")
        .with_scenario(|s| s.name = "kv_source_offset_at_log_end")
        // A restart of the source's worker (worker 0) resumes from the committed offsets.
        .headline_faults(&[FaultKind::CrashWorker, FaultKind::StopWorker])
        .seeds(1..=100)
        .regressions_in(dir.path());
    let failure = test
        .find_failure()
        .expect("the simulation runs")
        .expect("a seed of the first 100 catches it");
    println!("{failure}");
    let kinds: Vec<AnomalyKind> = failure
        .shrunk_report
        .anomalies
        .iter()
        .map(|a| a.kind)
        .collect();
    // The committed offset covers records not yet in Kafka (and, after a restart, never).
    assert!(
        kinds.contains(&AnomalyKind::CommittedBeforeDurable) || kinds.contains(&AnomalyKind::Lost),
        "{failure}"
    );
    assert!(failure.shrunk.plan.len() <= 3, "{failure}");
    test.save(&failure.shrunk).expect("the regression is saved");
    match test.replay_regressions() {
        Err(TestError::RegressionFails { seed, .. }) => assert_eq!(seed, failure.report.seed),
        other => panic!("the saved regression should fail again: {other:?}"),
    }
}

#[test]
fn the_event_log_source_with_exactly_once_support_writes_each_record_once() {
    source("none")
        .with_scenario(|s| s.name = "kv_source_exactly_once")
        .exactly_once_source()
        .seeds(1..=100)
        .require(&[
            Event::ZombieFenced,
            Event::WorkerCrashed,
            Event::ExternalCrashed,
            Event::ExternalErrorAnswered,
        ])
        .check();
}

#[test]
fn a_source_whose_offsets_run_ahead_loses_records_under_exactly_once_support() {
    let failure = source("offset-at-log-end")
        .with_scenario(|s| s.name = "kv_source_exactly_once_offset_at_log_end")
        .exactly_once_source()
        .seeds(1..=100)
        .find_failure()
        .expect("the simulation runs")
        .expect("a seed of the first 100 catches it");
    println!("{failure}");
    assert!(failure.shrunk.plan.len() <= 3, "{failure}");
    assert!(
        failure.shrunk_report.anomalies.iter().any(|a| matches!(
            a.kind,
            AnomalyKind::CommittedBeforeDurable | AnomalyKind::Lost | AnomalyKind::Unseen
        )),
        "{failure}"
    );
}
