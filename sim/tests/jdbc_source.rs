//! The JDBC source under the simulation, through the test kit, against the model database: writers insert
//! rows in concurrent transactions that commit out of id and timestamp order, while workers,
//! the network and the database itself fail. The classic losses of Confluent's JDBC source
//! (kafka-connect-jdbc #27/#915: late commits skipped; #598: a restart inside a run of equal timestamps;
//! #70: timestamp precision) are shown caught where they happen, and absent from Sluice's settings.

use std::sync::Arc;
use std::time::Duration;

use sluice_connectors::jdbc::{JdbcSourceConnector, SOURCE_CLASS};
use sluice_core::api::ConnectorPlugin;
use sluice_sim::coverage::Event;
use sluice_sim::kit::{SimDialer, SimTest, SourceUnderTest};
use sluice_sim::model_db::client::ModelDbOpener;
use sluice_sim::model_db::written_table::{WrittenTable, DB_URL, TABLE};
use sluice_sim::model_db::Precision;
use sluice_sim::oracle::AnomalyKind;

/// The longest transaction of the writers.
const LONGEST: Duration = Duration::from_secs(2);

/// The JDBC source reading the written table with `settings` over the connector's defaults.
fn jdbc_source(table: WrittenTable, settings: &[(&str, &str)]) -> SimTest {
    let mut config: Vec<(&str, &str)> = vec![
        ("connection.url", DB_URL),
        ("mode", "timestamp+incrementing"),
        ("timestamp.column.name", "updated_at"),
        ("incrementing.column.name", "id"),
        ("table.whitelist", TABLE),
        ("topic.prefix", ""),
        ("poll.interval.ms", "200"),
        ("batch.max.rows", "25"),
        // The database answers errors for up to 10 s at a time: keep trying through that, where
        // Confluent's 3 attempts 10 s apart would also hold (seed 285 of 500 ran out of 3 attempts 1 s
        // apart, and the connector failed to start).
        ("connection.attempts", "30"),
        ("connection.backoff.ms", "1000"),
        ("tasks.max", "1"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
    ];
    config.extend_from_slice(settings);
    let test = SimTest::source(
        "placeholder",
        SourceUnderTest {
            class: SOURCE_CLASS.to_owned(),
            plugin: ConnectorPlugin::source(|| {
                Box::new(JdbcSourceConnector::new(Arc::new(ModelDbOpener::new(
                    Arc::new(SimDialer),
                ))))
            }),
            config: config
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            system: Arc::new(table),
        },
    )
    .with_scenario(|s| {
        s.streams = 1;
        s.records_per_stream = 600;
        s.source_interval = Duration::from_millis(60);
    });
    assert_eq!(test.topic(), TABLE);
    test
}

/// With no delay, a row whose transaction took its id and timestamp before the rows the source has
/// already read, and committed after, is never read: the oracle reports it.
#[test]
fn rows_committed_late_are_lost_without_a_delay_and_the_oracle_says_so() {
    let failure = jdbc_source(WrittenTable::new(Precision::Micros, LONGEST), &[])
        .with_scenario(|s| s.name = "jdbc_source_no_delay")
        .seeds(1..=20)
        .find_failure()
        .expect("the simulation runs")
        .expect("a seed of the first 20 loses a row that committed late");
    println!("{failure}");
    let kinds: Vec<AnomalyKind> = failure.report.anomalies.iter().map(|a| a.kind).collect();
    assert!(
        kinds.iter().any(|k| matches!(
            k,
            AnomalyKind::Lost | AnomalyKind::Unseen | AnomalyKind::CommittedBeforeDurable
        )),
        "{kinds:?}"
    );
}

/// `timestamp.delay.interval.ms` longer than the longest transaction (plus the clock's precision) reads
/// a row only once every transaction that could sort before it has committed: nothing is lost.
#[test]
fn a_delay_longer_than_the_longest_transaction_loses_nothing() {
    jdbc_source(
        WrittenTable::new(Precision::Micros, LONGEST),
        &[("timestamp.delay.interval.ms", "2500")],
    )
    .with_scenario(|s| s.name = "jdbc_source_delayed")
    .seeds(1..=200)
    .require(&[
        Event::WorkerCrashed,
        Event::ExternalCrashed,
        Event::ExternalUnreachable,
        Event::ExternalErrorAnswered,
    ])
    .check();
}

/// Timestamp mode alone, on a clock of whole seconds: rows come in runs of equal timestamps, and workers
/// stop and crash. The offset moves to a timestamp only with the last row of its run, so a restart
/// reads the rest of the run again (kafka-connect-jdbc#598): nothing is lost. A run goes out in one
/// batch, so a commit between its rows' acknowledgements is rare here; the SQLite task test
/// `a_restart_inside_a_run_of_equal_timestamps_reads_the_rest` restarts inside a run on purpose.
#[test]
fn restarts_inside_runs_of_equal_timestamps_lose_nothing() {
    jdbc_source(
        WrittenTable::new(Precision::Seconds, LONGEST),
        &[
            ("mode", "timestamp"),
            ("timestamp.delay.interval.ms", "3500"),
            ("batch.max.rows", "7"),
        ],
    )
    .with_scenario(|s| s.name = "jdbc_source_equal_timestamps")
    .headline_faults(&[
        sluice_sim::faults::FaultKind::CrashWorker,
        sluice_sim::faults::FaultKind::StopWorker,
    ])
    .seeds(1..=200)
    .require(&[Event::WorkerCrashed, Event::ExternalCrashed])
    .check();
}

/// Timestamps of microseconds and of nanoseconds are kept whole in the offsets (Confluent's
/// `timestamp_nanos`), so no row is read again forever and none is skipped (kafka-connect-jdbc#70).
#[test]
fn timestamps_finer_than_milliseconds_are_neither_reread_nor_skipped() {
    for (precision, name) in [
        (Precision::Micros, "jdbc_source_micros"),
        (Precision::Nanos, "jdbc_source_nanos"),
    ] {
        jdbc_source(
            WrittenTable::new(precision, LONGEST),
            &[
                ("mode", "timestamp"),
                ("timestamp.delay.interval.ms", "2500"),
            ],
        )
        .with_scenario(|s| s.name = name)
        .seeds(1..=200)
        .require(&[Event::WorkerCrashed])
        .check();
    }
}
