//! The event-log source under the simulation, with Sluice's test kit: the correct source holds at least
//! once through crashes and stops of its worker, lost sessions, broker restarts, produce errors and
//! crashes of the service; a source whose offsets run ahead of what it read is caught, shrunk to the
//! faults that matter, and caught again from the saved regression file. Logs of JSON orders are checked
//! by the identity the model reads back from each order.

#[path = "support/caught.rs"]
mod caught;
#[path = "support/event_log.rs"]
mod event_log;

use std::sync::Arc;

use caught::{caught, replayed};
use event_log::{EventLog, LOG_ADDRESS};
use kv_connectors::{source_plugin, SOURCE_CLASS};
use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_sim::coverage::Event;
use sluice_sim::faults::FaultKind;
use sluice_sim::kit::{ExternalSource, SimDialer, SimTest, SourceRecords, SourceUnderTest};
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::turmoil;

fn source(bug: &str) -> SimTest {
    source_of(Arc::new(EventLog::plain()), bug)
}

/// The source reading `system`, with its planted bug `bug` (`none` for the correct one).
fn source_of(system: Arc<dyn ExternalSource>, bug: &str) -> SimTest {
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
            system,
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
    // The committed offset covers records not yet in Kafka (and, after a restart, never).
    let failure = caught(
        &test,
        &[AnomalyKind::CommittedBeforeDurable, AnomalyKind::Lost],
    );
    replayed(&test, &failure);
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
    caught(
        &source("offset-at-log-end")
            .with_scenario(|s| s.name = "kv_source_exactly_once_offset_at_log_end")
            .exactly_once_source()
            .seeds(1..=100),
        &[
            AnomalyKind::CommittedBeforeDurable,
            AnomalyKind::Lost,
            AnomalyKind::Unseen,
        ],
    );
}

/// The logs hold JSON orders, not the kit's `stream-S:N` text; the model identifies each order
/// (`ExternalSource::identify`), and the oracle finds every one in Kafka by it.
#[test]
fn a_source_of_json_orders_is_held_to_the_identity_its_model_reads_back() {
    source_of(Arc::new(EventLog::orders()), "none")
        .with_scenario(|s| s.name = "kv_source_orders")
        .seeds(1..=50)
        .require(&[Event::WorkerCrashed, Event::ExternalCrashed])
        .check();
}

/// The orders' model without its `identify`: the oracle cannot find a single order in Kafka, and says
/// so, so the passing test above rests on the identities the model read back.
#[test]
fn orders_no_model_identifies_are_none_of_the_systems_records() {
    struct Unidentified(EventLog);
    impl ExternalSource for Unidentified {
        fn build(&self, sim: &mut turmoil::Sim<'_>, records: SourceRecords) {
            self.0.build(sim, records)
        }
        fn hosts(&self) -> Vec<String> {
            self.0.hosts()
        }
        fn covered(
            &self,
            partition: &SourcePartition,
            offset: &SourceOffset,
        ) -> Option<(i64, i64)> {
            self.0.covered(partition, offset)
        }
    }
    let report = source_of(Arc::new(Unidentified(EventLog::orders())), "none")
        .with_scenario(|s| s.name = "kv_source_orders_unidentified")
        .run_exact(1, Vec::new())
        .expect("the simulation runs");
    let kinds: Vec<AnomalyKind> = report.anomalies.iter().map(|a| a.kind).collect();
    assert!(
        kinds.contains(&AnomalyKind::Unseen) || kinds.contains(&AnomalyKind::Lost),
        "{kinds:?}"
    );
}

/// The planted bug is caught as well when the oracle knows the records only by the model's identities.
#[test]
fn a_source_of_orders_whose_offsets_run_ahead_is_caught() {
    caught(
        &source_of(Arc::new(EventLog::orders()), "offset-at-log-end")
            .with_scenario(|s| s.name = "kv_source_orders_offset_at_log_end")
            .headline_faults(&[FaultKind::CrashWorker, FaultKind::StopWorker])
            .seeds(1..=100),
        &[AnomalyKind::CommittedBeforeDurable, AnomalyKind::Lost],
    );
}

/// Workers misconfigured with a `group.id` each give a moved task's instances different transactional
/// ids, so nothing fences the old one: the oracle tells its late records from its successor's by their
/// transactional producers, with nothing asked of the connector, and reports `zombie-write`.
#[test]
fn a_zombie_of_the_source_that_nothing_fences_is_caught() {
    let failure = source("none")
        .with_scenario(|s| {
            s.name = "kv_source_exactly_once_unfenced";
            s.worker_bug = "distinct-group-ids";
        })
        .exactly_once_source()
        .seeds(1..=50)
        .find_failure()
        .expect("the simulation runs")
        .expect("a seed of the first 50 lets a zombie write");
    println!("{failure}");
    assert!(
        failure
            .report
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::ZombieWrite),
        "{failure}"
    );
}
