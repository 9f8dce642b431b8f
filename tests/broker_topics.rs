//! A worker pointed at another process's embedded broker (`sluice broker`): topics it writes without
//! `topic.creation.*` keys are created when first written; a topic it must create with given settings
//! cannot be (the embedded broker creates topics only for its own process), and the error says how to
//! get it, instead of an admin request timing out with nothing to go on.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{
    numbered_lines, sink_props, source_props, wait_until, worker_props, Broker, Dir, Worker,
};

/// A worker file pointing at `broker`.
fn worker_on(dir: &Dir, broker: &Broker) -> PathBuf {
    let offsets = dir.path("offsets.json");
    dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, Some(broker.bootstrap())),
    )
}

#[test]
fn a_topic_written_first_is_created_on_the_fly() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &[]);
    let worker = worker_on(&dir, &broker);
    let lines = numbered_lines(0, 10);
    let input = dir.write("input.txt", lines.concat());
    let output = dir.path("output.txt");
    let source = dir.write_properties(
        "source.properties",
        &source_props("fly-source", &input, "fly"),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("fly-sink", &output, "fly"));
    let sluice = Worker::start(&dir, "fly", &worker, &[&source, &sink]);
    wait_until(
        "the sink wrote every line",
        || common::read_lines(&output).len() >= lines.len(),
        || sluice.report(),
    );
    sluice.stop();
}

#[test]
fn a_topic_with_creation_settings_gets_an_error_that_says_how() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &[]);
    let worker = worker_on(&dir, &broker);
    let input = dir.write("input.txt", "one\ntwo\n");
    let source = dir.write_properties(
        "source.properties",
        &source_props("made-source", &input, "made")
            .set("topic.creation.default.partitions", 3)
            .set("topic.creation.default.replication.factor", 1),
    );
    let mut sluice = Worker::start(&dir, "made", &worker, &[&source]);
    sluice.wait_for_log("task failed");
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "the only task failed:\n{logs}");
    assert!(
        logs.contains("`sluice broker --topic made:3`"),
        "the error says how to get the topic:\n{logs}"
    );
}
