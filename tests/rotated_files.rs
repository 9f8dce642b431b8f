//! A file the source tails is rotated, truncated or replaced, as log files are: every line of every
//! version of the file reaches the topic once. Kafka's FileStreamSource resumes at the old byte position
//! in the new file (688 of 2,050 lines skipped after a truncation; none of 100 lines of a shorter
//! replacement, even after a restart).

mod common;

use std::fs;

use common::{
    append, assert_same_lines_once, numbered_lines, read_lines, sink_props, source_props,
    wait_until, worker_props, Dir, Worker,
};

#[test]
fn every_line_of_a_rotated_truncated_and_replaced_file_arrives_once() {
    let dir = Dir::new();
    let log = dir.path("app.log");
    let output = dir.path("output.txt");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let source = dir.write_properties("source.properties", &source_props("logs", &log, "logs"));
    let sink = dir.write_properties("sink.properties", &sink_props("copy", &output, "logs"));
    let mut expected = Vec::new();
    let write = |lines: Vec<String>, expected: &mut Vec<String>| {
        append(&log, &lines);
        expected.extend(lines);
    };
    let wait_for = |expected: &[String], sluice: &Worker, what: &str| {
        wait_until(
            what,
            || read_lines(&output).len() >= expected.len(),
            || {
                format!(
                    "{} of {} lines\n{}",
                    read_lines(&output).len(),
                    expected.len(),
                    sluice.report()
                )
            },
        );
    };

    let sluice = Worker::start(&dir, "first", &worker, &[&source, &sink]);
    write(numbered_lines(0, 100), &mut expected);
    wait_for(&expected, &sluice, "the first lines");

    // Rotation by renaming: the writer's last lines go to the old file, the next ones to a new, shorter
    // file at the same path.
    write(numbered_lines(100, 20), &mut expected);
    fs::rename(&log, dir.path("app.log.1")).expect("rotate");
    write(numbered_lines(120, 50), &mut expected);
    wait_for(
        &expected,
        &sluice,
        "the rotated file's lines and the new file's",
    );
    sluice.wait_for_log("the source file was replaced (rotated)");

    // copytruncate: the same file emptied, then written again.
    fs::write(&log, "").expect("truncate");
    sluice.wait_for_log("the source file was truncated");
    write(numbered_lines(170, 30), &mut expected);
    wait_for(&expected, &sluice, "the lines written after the truncation");
    sluice.stop();

    // Replaced by a shorter file while the worker was stopped.
    fs::remove_file(&log).expect("remove");
    write(numbered_lines(200, 10), &mut expected);
    let restarted = Worker::start(&dir, "restarted", &worker, &[&source, &sink]);
    wait_for(
        &expected,
        &restarted,
        "the replacement's lines after a restart",
    );
    let logs = restarted.stop();
    // A new file may get the old one's inode back: shorter than the position, it reads as truncated.
    assert!(
        logs.contains("it was replaced; reading the new one from its start")
            || logs.contains("it was truncated; reading it from its start"),
        "the restart says why it reads from the start:\n{logs}"
    );
    assert_same_lines_once(&read_lines(&output), &expected);
}
