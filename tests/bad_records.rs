//! Records a converter cannot handle are named where they are: a sink names the record's topic,
//! partition and offset, so a user can find it with any Kafka tool; a source names the topic and the
//! record's place in the source. Under `errors.tolerance=all` the record is skipped with the same words.

mod common;

use std::time::Duration;

use common::{
    append, read_lines, sink_props, source_props, wait_for_lines, worker_props, Dir, Worker,
};

/// A worker copying `lines` from a file into a one-partition topic as strings, and from there into
/// `output.txt` through a JsonConverter sink (with `errors.tolerance=tolerance`).
fn start(dir: &Dir, lines: &[&str], tolerance: &str) -> Worker {
    let input = dir.path("input.txt");
    let lines: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
    append(&input, &lines);
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("json-source", &input, "json-lines")
            .set("topic.creation.default.partitions", 1),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("json-sink", &dir.path("output.txt"), "json-lines")
            .set(
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            )
            .set("value.converter.schemas.enable", false)
            .set("errors.tolerance", tolerance),
    );
    Worker::start(dir, "json", &worker, &[&source, &sink])
}

#[test]
fn a_record_the_sink_cannot_convert_is_named_by_topic_partition_and_offset() {
    let dir = Dir::new();
    let mut sluice = start(&dir, &["{\"n\":1}", "not json", "{\"n\":2}"], "none");
    sluice.wait_for_log("cannot convert the record at topic json-lines partition 0 offset 1");
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a stop after a task failed exits non-zero:\n{logs}"
    );
}

#[test]
fn a_skipped_record_is_named_by_topic_partition_and_offset() {
    let dir = Dir::new();
    let sluice = start(&dir, &["{\"n\":1}", "not json", "{\"n\":2}"], "all");
    wait_for_lines(&dir.path("output.txt"), 2, &[&sluice]);
    let logs = sluice.stop();
    assert!(
        logs.contains("skipping the record at topic json-lines partition 0 offset 1"),
        "{logs}"
    );
}

/// A worker copying `input.txt` into `long-lines` and from there into `output.txt`, its source with
/// `extra` settings.
fn start_copy(dir: &Dir, contents: &[u8], extra: &[(&str, &str)]) -> Worker {
    let input = dir.write("input.txt", contents);
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    // One partition: the sink writes the lines in the order they were read.
    let mut source = source_props("long-source", &input, "long-lines")
        .set("topic.creation.default.partitions", 1);
    for (key, value) in extra {
        source = source.set(key, value);
    }
    let source = dir.write_properties("source.properties", &source);
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("long-sink", &dir.path("output.txt"), "long-lines"),
    );
    Worker::start(dir, "long", &worker, &[&source, &sink])
}

#[test]
fn a_line_past_max_line_bytes_is_named_by_file_and_byte_position() {
    let dir = Dir::new();
    let mut contents = b"first\n".to_vec();
    contents.extend(std::iter::repeat_n(b'x', 3 << 20));
    let mut sluice = start_copy(&dir, &contents, &[]);
    let input = dir.path("input.txt");
    sluice.wait_for_log(&format!(
        "{}: the line starting at byte 6 is longer than max.line.bytes=1048576",
        input.display()
    ));
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(60));
    assert!(!status.success(), "the source task failed:\n{logs}");
}

#[test]
fn a_line_past_max_line_bytes_is_skipped_under_errors_tolerance_all() {
    let dir = Dir::new();
    let mut contents = b"first\n".to_vec();
    contents.extend(std::iter::repeat_n(b'x', 3 << 20));
    contents.extend(b"\nlast\n");
    let sluice = start_copy(&dir, &contents, &[("errors.tolerance", "all")]);
    wait_for_lines(&dir.path("output.txt"), 2, &[&sluice]);
    let logs = sluice.stop();
    assert_eq!(
        read_lines(&dir.path("output.txt")),
        ["first\n", "last\n"],
        "{logs}"
    );
    assert!(
        logs.contains("the line starting at byte 6 is longer than max.line.bytes=1048576"),
        "{logs}"
    );
}

#[test]
fn a_line_the_producer_cannot_send_is_named_by_file_and_byte_position() {
    let dir = Dir::new();
    let mut contents = b"first\n".to_vec();
    contents.extend(std::iter::repeat_n(b'x', 2 << 20));
    contents.push(b'\n');
    let end = contents.len();
    let mut sluice = start_copy(&dir, &contents, &[("max.line.bytes", "4194304")]);
    sluice.wait_for_log(&format!(
        "Kafka did not take the record for topic long-lines from source partition {{\"filename\":\"{}\"}}",
        dir.path("input.txt").display()
    ));
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(60));
    assert!(!status.success(), "the source task failed:\n{logs}");
    assert!(
        logs.contains(&format!("\"position\":{end}}}: ")),
        "the line's end, where its offset points:\n{logs}"
    );
}
