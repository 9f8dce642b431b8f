//! The event-log source's task alone, with the kit's task harness: no Kafka, no workers; polls (some
//! dropped while pending), acknowledgements, commits, clean restarts and crashes in an order each seed
//! draws, while the service's records appear and the service crashes or is cut off now and then. The
//! correct task passes; a task whose offsets run ahead of what it read is caught.

#[path = "support/event_log.rs"]
mod event_log;

use std::sync::Arc;

use event_log::{EventLog, LOG_ADDRESS};
use kv_connectors::{source_plugin, SOURCE_CLASS};
use sluice_sim::kit::{
    SimDialer, SourceTaskTest, SourceUnderTest, TaskHarness, TaskStep, TaskTestError,
};
use sluice_sim::oracle::AnomalyKind;

fn source(name: &'static str, bug: &str) -> SourceTaskTest {
    source_of(name, bug, EventLog::plain())
}

/// The task reading `log`, with its planted bug `bug` (`none` for the correct one).
fn source_of(name: &'static str, bug: &str, log: EventLog) -> SourceTaskTest {
    let config = [
        ("kv.address", LOG_ADDRESS),
        ("topic", "sequences"),
        ("streams", "4"),
        ("batch.max", "5"),
        ("bug", bug),
    ];
    SourceTaskTest::new(
        name,
        SourceUnderTest {
            class: SOURCE_CLASS.to_owned(),
            plugin: source_plugin(Arc::new(SimDialer)),
            config: config
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            system: Arc::new(log),
        },
    )
}

#[test]
fn the_event_log_source_task_holds_at_least_once_through_every_cycle() {
    source("event_log_source_task", "none")
        .seeds(1..=200)
        .require(&[
            TaskStep::Poll,
            TaskStep::PollCancelled,
            TaskStep::Acknowledged,
            TaskStep::Commit,
            TaskStep::Restart,
            TaskStep::Crash,
            TaskStep::ExternalCrashed,
            TaskStep::ExternalUnreachable,
            TaskStep::ExternalSlow,
            TaskStep::ExternalErrors,
        ])
        .check();
}

#[test]
fn a_task_whose_offsets_run_ahead_of_what_it_read_is_caught() {
    match source(
        "event_log_source_task_offset_at_log_end",
        "offset-at-log-end",
    )
    .seeds(1..=100)
    .run()
    {
        Err(TaskTestError::Failed {
            run,
            shrunk,
            replay,
        }) => {
            println!("seed {} caught it; replay: {replay}\n{shrunk}", run.seed);
            assert!(
                shrunk
                    .run
                    .anomalies
                    .iter()
                    .any(|a| a.kind == AnomalyKind::CommittedBeforeDurable),
                "{shrunk}"
            );
            assert!(shrunk.steps < shrunk.of, "{shrunk}");
            assert!(
                run.anomalies
                    .iter()
                    .any(|a| a.kind == AnomalyKind::CommittedBeforeDurable),
                "{:?}",
                run.anomalies
            );
        }
        other => panic!("the planted bug should be caught: {other:?}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    let test = source("event_log_source_task_determinism", "none");
    let first = test.run_seed(3).expect("the seed runs");
    let second = test.run_seed(3).expect("the seed runs again");
    assert!(first.log.len() > 100, "{:?}", first.log);
    assert_eq!(first.log, second.log);
    assert_eq!(first.committed.len(), 4, "{:?}", first.committed);
}

/// Logs of JSON orders: the harness knows each record by the identity the model reads back.
#[test]
fn the_task_reading_json_orders_is_held_to_their_identities() {
    source_of("event_log_source_task_orders", "none", EventLog::orders())
        .seeds(1..=50)
        .require(&[TaskStep::Commit, TaskStep::Crash])
        .check();
}
