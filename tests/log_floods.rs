//! Repeated errors of one cause are logged once, then summarised with a count: a broker stall that made
//! thousands of deliveries fail wrote one ERROR line per record (3,400 lines for a 12 s stall), burying
//! the line that said what was wrong.

mod common;

use std::fs;
use std::time::Duration;

use common::{append, numbered_lines, source_props, wait_until, worker_props, Broker, Dir, Worker};

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
    let sluice = Worker::start(&dir, "stall", &worker, &[&source]);
    let end = fs::metadata(&input).expect("input").len().to_string();
    wait_until(
        "the first lines committed",
        || fs::read_to_string(&offsets).is_ok_and(|text| text.contains(&end)),
        || sluice.report(),
    );

    // Kafka goes away: every record read from now on fails its delivery.
    drop(broker);
    append(&input, &numbered_lines(100, 5_000));
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
