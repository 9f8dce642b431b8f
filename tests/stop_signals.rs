//! Stop signals on a real `sluice standalone` process: SIGHUP stops it cleanly as SIGTERM and SIGINT do,
//! and a second signal during a stop ends the process at once, with status 130, instead of leaving the
//! user waiting for a stop that cannot finish.

mod common;

use std::time::Duration;

use common::{
    append, numbered_lines, read_lines, sink_props, source_props, wait_until, worker_props, Broker,
    Dir, Worker,
};

#[test]
fn sighup_stops_the_worker_cleanly() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let lines = numbered_lines(0, 100);
    let input = dir.write("input.txt", lines.concat());
    let output = dir.path("output.txt");
    let source = dir.write_properties(
        "source.properties",
        &source_props("hup-source", &input, "hup"),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("hup-sink", &output, "hup"));
    let sluice = Worker::start(&dir, "hup", &worker, &[&source, &sink]);
    wait_until(
        "the sink wrote every line",
        || read_lines(&output).len() >= lines.len(),
        || sluice.report(),
    );
    let logs = sluice.stop_with("HUP");
    assert!(
        logs.contains("shutdown signal received") && logs.contains("SIGHUP"),
        "the stop names its signal:\n{logs}"
    );
    assert!(
        offsets.exists(),
        "a clean stop commits the source's offsets"
    );
}

#[test]
fn a_second_signal_during_a_stop_exits_at_once() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["stuck"]);
    let offsets = dir.path("offsets.json");
    // The stop may wait a minute for records to be acknowledged.
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, Some(broker.bootstrap()))
            .set("offset.flush.timeout.ms", 60_000)
            .set("task.shutdown.graceful.timeout.ms", 60_000),
    );
    let input = dir.write("input.txt", numbered_lines(0, 10).concat());
    let source = dir.write_properties(
        "source.properties",
        &source_props("stuck-source", &input, "stuck"),
    );
    let mut sluice = Worker::start(&dir, "stuck", &worker, &[&source]);
    sluice.wait_for_log("source task started");
    // Kafka goes away, and the lines read from now on are never acknowledged.
    drop(broker);
    append(&input, &numbered_lines(10, 10));
    // The source tails the file every few milliseconds: give it time to read and send them.
    std::thread::sleep(Duration::from_secs(2));
    sluice.signal("TERM");
    sluice.wait_for_log("shutdown signal received");
    sluice.signal("INT");
    let (status, logs) = sluice.exit_within(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(130),
        "a second signal ends the stop at once:\n{logs}"
    );
    assert!(
        logs.contains("second shutdown signal"),
        "the exit says why:\n{logs}"
    );
}
