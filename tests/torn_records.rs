//! A sink write that fails part-way (a full disk, a file size limit) leaves no torn record: FileStreamSink
//! cuts its file back to the end of its last complete line before it writes again, so the file holds
//! whole lines only, each once and in order, however often the write fails.

mod common;

use std::fs;
use std::time::Duration;

use common::{append, numbered_lines, sink_props, source_props, worker_props, Dir, Worker};

/// The worker process may write no file past this (its log included).
const LIMIT_KIB: u64 = 64;

#[test]
fn a_write_cut_short_by_the_file_size_limit_leaves_whole_lines_only() {
    let dir = Dir::new();
    let input = dir.path("input.txt");
    let lines = numbered_lines(0, 3_000);
    append(&input, &lines);
    let output = dir.path("output.txt");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("torn-source", &input, "torn").set("topic.creation.default.partitions", 1),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("torn-sink", &output, "torn"));
    let mut sluice =
        Worker::start_with_file_size_limit(&dir, "torn", LIMIT_KIB, &worker, &[&source, &sink]);
    sluice.wait_for_log("File too large");
    // Retried writes fail the same way: give them a few rounds.
    std::thread::sleep(Duration::from_secs(2));
    sluice.signal("TERM");
    let (_, logs) = sluice.exit_within(Duration::from_secs(60));

    let written = fs::read(&output).expect("the sink's file");
    assert!(
        written.len() as u64 > LIMIT_KIB * 1024 / 2,
        "the writes went on up to the limit ({} bytes written):\n{logs}",
        written.len()
    );
    assert_eq!(
        written.last(),
        Some(&b'\n'),
        "the file ends in a torn line:\n{logs}"
    );
    let text = String::from_utf8(written).expect("whole UTF-8 lines");
    let found: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(
        found,
        lines[..found.len()],
        "whole input lines, each once and in order"
    );
}
