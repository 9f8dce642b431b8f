//! The JDBC sink under the simulation, through the test kit, against the model database: workers and the
//! database crash, the network fails, puts and flushes stall. Upserts keyed by the record's key leave each
//! key with its latest record through crashes; a task thrown out of its group while its put stalls
//! overwrites newer values unless Sluice's exactly-once option fences it; with the option, plain inserts
//! write no record twice, and without it the oracle finds the duplicates that crashes cause.

use std::sync::Arc;

use sluice_connectors::jdbc::{JdbcSinkConnector, SINK_CLASS};
use sluice_core::api::ConnectorPlugin;
use sluice_sim::coverage::Event;
use sluice_sim::faults::FaultKind;
use sluice_sim::kit::{SimDialer, SimTest, SinkUnderTest};
use sluice_sim::model_db::client::ModelDbOpener;
use sluice_sim::model_db::sink_tables::SinkTables;
use sluice_sim::model_db::written_table::DB_URL;
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::scenario::Guarantee;

/// The JDBC sink with `settings` over the kit's defaults: tables created, records' coordinates kept.
fn jdbc_sink(settings: &[(&str, &str)]) -> SinkUnderTest {
    let mut config: Vec<(&str, &str)> = vec![
        ("connection.url", DB_URL),
        ("auto.create", "true"),
        ("kafka.coordinates.columns", "true"),
        ("tasks.max", "2"),
        ("batch.size", "50"),
        ("max.retries", "1000"),
        ("retry.backoff.ms", "500"),
        ("connection.attempts", "1000"),
        ("connection.backoff.ms", "1000"),
    ];
    config.extend_from_slice(settings);
    SinkUnderTest {
        class: SINK_CLASS.to_owned(),
        plugin: ConnectorPlugin::sink(|| {
            Box::new(JdbcSinkConnector::new(Arc::new(ModelDbOpener::new(
                Arc::new(SimDialer),
            ))))
        }),
        config: config
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        system: Arc::new(SinkTables::default()),
    }
}

/// Faults that end processes and connections, but leave no task thrown out of its group still writing.
const CRASHES: &[FaultKind] = &[
    FaultKind::CrashWorker,
    FaultKind::StopWorker,
    FaultKind::RestartBroker,
    FaultKind::FailFlush,
    FaultKind::CrashExternal,
    FaultKind::HoldExternal,
    FaultKind::ErrorsExternal,
];

#[test]
fn upserts_by_record_key_leave_each_key_with_its_latest_record_through_crashes() {
    SimTest::sink(
        "jdbc_sink_upsert",
        jdbc_sink(&[("insert.mode", "upsert"), ("pk.mode", "record_key")]),
    )
    .faults(CRASHES, 6)
    .guarantee(Guarantee::EffectivelyOnce)
    .seeds(1..=200)
    .require(&[
        Event::ExternalCrashed,
        Event::ExternalUnreachable,
        Event::ExternalErrorAnswered,
        Event::WorkerCrashed,
    ])
    .check();
}

/// A put that stalls past `max.poll.interval.ms` gets its task thrown out; the stalled put then
/// finishes, writing values older than the ones the partition's new owner wrote meanwhile: the oracle
/// finds the key left with a stale value.
#[test]
fn a_stalled_task_thrown_out_of_its_group_overwrites_newer_upserts_and_the_oracle_says_so() {
    let failure = SimTest::sink(
        "jdbc_sink_upsert_zombie",
        jdbc_sink(&[("insert.mode", "upsert"), ("pk.mode", "record_key")]),
    )
    .faults(&[FaultKind::StallPut], 3)
    .guarantee(Guarantee::EffectivelyOnce)
    .seeds(1..=50)
    .find_failure()
    .expect("the simulation runs")
    .expect("a seed of the first 50 lets a thrown-out task overwrite a newer value");
    println!("{failure}");
    assert!(
        failure
            .report
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::StaleValue),
        "{failure}"
    );
}

/// With the offsets in the database, each batch moves them only from where its task last saw them, so
/// the thrown-out task's late batch is refused: every fault, and each key ends with its latest record.
#[test]
fn upserts_with_offsets_kept_in_the_database_fence_thrown_out_tasks() {
    SimTest::sink(
        "jdbc_sink_upsert_exactly_once",
        jdbc_sink(&[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("exactly.once.enabled", "true"),
        ]),
    )
    .guarantee(Guarantee::EffectivelyOnce)
    .seeds(1..=200)
    .require(&[
        Event::ExternalCrashed,
        Event::ExternalUnreachable,
        Event::ExternalErrorAnswered,
        Event::WorkerCrashed,
        Event::MemberThrownOut,
    ])
    .check();
}

#[test]
fn with_offsets_kept_in_the_database_plain_inserts_are_written_once() {
    SimTest::sink(
        "jdbc_sink_exactly_once",
        jdbc_sink(&[("insert.mode", "insert"), ("exactly.once.enabled", "true")]),
    )
    .guarantee(Guarantee::ExactlyOnceSink)
    .seeds(1..=200)
    .require(&[
        Event::ExternalCrashed,
        Event::ExternalUnreachable,
        Event::WorkerCrashed,
        Event::MemberThrownOut,
    ])
    .check();
}

/// Without the option, a crash between a batch's commit in the database and the offsets' commit in
/// Kafka writes its rows again: the oracle says so.
#[test]
fn without_the_option_plain_inserts_are_written_twice_and_the_oracle_says_so() {
    let failure = SimTest::sink(
        "jdbc_sink_insert_duplicates",
        jdbc_sink(&[("insert.mode", "insert")]),
    )
    .guarantee(Guarantee::ExactlyOnceSink)
    .seeds(1..=50)
    .find_failure()
    .expect("the simulation runs")
    .expect("a seed of the first 50 writes a record twice");
    println!("{failure}");
    assert!(
        failure
            .report
            .anomalies
            .iter()
            .any(|a| a.kind == AnomalyKind::Duplicate),
        "{failure}"
    );
}
