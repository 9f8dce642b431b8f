//! Repeated errors of one cause are logged once, then summarised with a count: a broker stall that made
//! thousands of deliveries fail wrote one ERROR line per record (3,400 lines for a 12 s stall), burying
//! the line that said what was wrong.

mod common;

use std::fs;
use std::time::Duration;

use common::{
    append, numbered_lines, sink_props, source_props, wait_until, worker_props, Broker, Dir, Worker,
};

#[test]
fn thousands_of_failed_deliveries_are_one_error_and_a_count() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["stall"]);
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, Some(broker.bootstrap()))
            .set("producer.delivery.timeout.ms", 3_000),
    );
    let input = dir.path("input.txt");
    let first = numbered_lines(0, 100);
    append(&input, &first);
    let source = dir.write_properties(
        "source.properties",
        &source_props("stall-source", &input, "stall"),
    );
    let mut sluice = Worker::start(&dir, "stall", &worker, &[&source]);
    let end = fs::metadata(&input).expect("input").len().to_string();
    wait_until(
        "the first lines committed",
        || fs::read_to_string(&offsets).is_ok_and(|text| text.contains(&end)),
        || sluice.report(),
    );

    // Kafka goes away: every record read from now on fails its delivery.
    drop(broker);
    append(&input, &numbered_lines(100, 5_000));
    // The worker stays up with its task failed (an operator may restart it over REST); a stop then
    // exits 1, naming the failure.
    sluice.wait_for_log("task failed");
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "the only task failed:\n{logs}");
    let errors = logs.matches("Kafka did not accept a record").count();
    assert_eq!(errors, 1, "one line for the first failed delivery:\n{logs}");
    assert!(
        logs.contains("more records Kafka did not accept; their offsets stay uncommitted"),
        "then a count:\n{logs}"
    );
    let lines = logs.lines().count();
    assert!(lines < 60, "{lines} log lines:\n{logs}");
}

/// Kafka that cannot be reached is said once, in plain words, then counted: librdkafka alone reported it
/// about 40 times a second (a connect failure, "all brokers are down", a failed poll), 2,867 lines a minute.
#[test]
fn an_unreachable_kafka_is_one_plain_line_not_a_flood() {
    let dir = Dir::new();
    // A port nothing listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(&address)),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("nowhere-sink", &dir.path("output.txt"), "nowhere"),
    );
    let sluice = Worker::start(&dir, "unreachable", &worker, &[&sink]);
    let plain = format!("cannot reach Kafka at {address}: connection refused; retrying");
    sluice.wait_for_log(&plain);
    std::thread::sleep(Duration::from_secs(5));
    let logs = sluice.stop();
    let first_problem = logs
        .lines()
        .find(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .unwrap_or_default();
    assert!(
        first_problem.contains(&plain),
        "the first line that says something is wrong says what:\n{logs}"
    );
    assert_eq!(logs.matches(&plain).count(), 1, "{logs}");
    let lines = logs.lines().count();
    assert!(lines < 15, "{lines} log lines in 5 s:\n{logs}");
}
