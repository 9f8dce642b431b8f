//! Records deleted by retention before a sink read them are reported: the consumer can only go on from
//! the partition's log start, which Kafka Connect does without a word. On `sluice broker`, whose
//! partitions keep about 5 MiB each. A sink finds them at its committed offset when it starts, or, while
//! it runs, when its consumer jumps to the log start (librdkafka's `auto.offset.reset`, which says
//! nothing).

mod common;

use std::fs;

use common::{
    append, assert_same_lines_once, numbered_lines, read_lines, short_sessions, sink_props,
    source_props, wait_for_lines, wait_until, worker_props, Broker, Dir, Worker,
};

#[test]
fn a_sink_behind_the_log_start_says_how_many_records_it_never_got() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["kept:1"]);
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    append(&input, &numbered_lines(0, 100));
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(
            &dir.path("offsets.json"),
            Some(broker.bootstrap()),
        )),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("kept-source", &input, "kept"),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("kept-sink", &output, "kept"));
    let both = Worker::start(&dir, "both", &worker, &[&source, &sink]);
    wait_for_lines(&output, 100, &[&both]);
    both.stop();

    // While the sink is away, about 10 MiB more: the broker drops the partition's oldest records.
    append(&input, &numbered_lines(100, 150_000));
    let end = fs::metadata(&input).expect("input").len().to_string();
    let source_only = Worker::start(&dir, "source", &worker, &[&source]);
    wait_until(
        "every line sent",
        || fs::read_to_string(dir.path("offsets.json")).is_ok_and(|text| text.contains(&end)),
        || source_only.report(),
    );
    source_only.stop();

    let sink_only = Worker::start(&dir, "sink", &worker, &[&sink]);
    sink_only.wait_for_log("were deleted by retention before this sink read them");
    let logs = sink_only.stop();
    let (line, lost) = reported_loss(&logs);
    assert!(lost < 150_100, "{line}");
}

#[test]
fn a_running_sink_overtaken_by_the_log_start_says_how_many_records_it_never_got() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["kept:1"]);
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    append(&input, &numbered_lines(0, 100));
    let source_worker = dir.write_properties(
        "source-worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(broker.bootstrap())),
    );
    // Kafka's default session timeout (45 s): the sink stays in its group while it is suspended.
    let sink_worker = dir.write_properties(
        "sink-worker.properties",
        &worker_props(&dir.path("sink-offsets.json"), Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("kept-source", &input, "kept"),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("kept-sink", &output, "kept"));
    let mut sink_only = Worker::start(&dir, "sink", &sink_worker, &[&sink]);
    let source_only = Worker::start(&dir, "source", &source_worker, &[&source]);
    wait_for_lines(&output, 100, &[&sink_only, &source_only]);

    // Suspended, the sink falls behind while about 10 MiB more push the partition's oldest records out.
    sink_only.signal("STOP");
    append(&input, &numbered_lines(100, 150_000));
    let end = fs::metadata(&input).expect("input").len().to_string();
    wait_until(
        "every line sent",
        || fs::read_to_string(dir.path("offsets.json")).is_ok_and(|text| text.contains(&end)),
        || source_only.report(),
    );
    sink_only.signal("CONT");

    sink_only.wait_for_log("were deleted by retention before this sink read them");
    let logs = sink_only.logs();
    assert_eq!(
        logs.matches("partitions assigned").count(),
        1,
        "the sink never left its group: it found the loss while it ran\n{logs}"
    );
    let (line, lost) = reported_loss(&logs);
    assert!(lost < 150_000, "{line}");
    // Each line is one record: the sink wrote every line but those it was told were deleted.
    let kept = numbered_lines(0, 100)
        .into_iter()
        .chain(numbered_lines(100 + lost, 150_000 - lost))
        .collect::<Vec<_>>();
    wait_for_lines(&output, kept.len(), &[&sink_only, &source_only]);
    sink_only.stop();
    source_only.stop();
    assert_same_lines_once(&read_lines(&output), &kept);
}

/// The sink's retention report (an ERROR naming `kept-0` and offsets from 100 on) and how many records
/// it says were lost, at least one.
fn reported_loss(logs: &str) -> (&str, usize) {
    let line = logs
        .lines()
        .find(|line| line.contains("were deleted by retention"))
        .expect("the report");
    assert!(
        line.contains("ERROR") && line.contains("records of kept-0 (offsets 100 to "),
        "{line}"
    );
    let lost: usize = line
        .split(" records of kept-0")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of records in {line:?}"));
    assert!(lost > 0, "{line}");
    (line, lost)
}
