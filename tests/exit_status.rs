//! A failed task is visible: the worker's periodic status line gives each task's state and the records it
//! moved, and a worker whose task had failed (while the others ran on) exits 1 after a clean stop,
//! naming the task, where it used to exit 0 as if all was well.

mod common;

use std::time::Duration;

use common::{
    numbered_lines, read_lines, sink_props, source_props, wait_until, worker_props, Dir, Worker,
};

#[test]
fn a_stop_after_a_task_failed_exits_non_zero_and_names_it() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, None).set("status.log.interval.ms", 300),
    );
    let lines = numbered_lines(0, 20);
    let input = dir.write("input.txt", lines.concat());
    let output = dir.path("output.txt");
    let source = dir.write_properties(
        "source.properties",
        &source_props("good-source", &input, "status"),
    );
    let good = dir.write_properties(
        "good.properties",
        &sink_props("good-sink", &output, "status"),
    );
    // A sink whose file cannot be created: its task fails, the others run on.
    let unwritable = dir.path("no-such-directory").join("out.txt");
    let bad = dir.write_properties(
        "bad.properties",
        &sink_props("bad-sink", &unwritable, "status"),
    );
    let mut sluice = Worker::start(&dir, "status", &worker, &[&source, &good, &bad]);
    sluice.wait_for_log("task failed");
    wait_until(
        "the good sink wrote every line",
        || read_lines(&output).len() >= lines.len(),
        || sluice.report(),
    );
    sluice.wait_for_log("bad-sink-0 FAILED (task bad-sink-0");
    sluice.wait_for_log("good-source-0 running, 20 records");
    sluice.signal("TERM");
    let (status, logs) = sluice.exit_within(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(1),
        "a failed task fails the run:\n{logs}"
    );
    let error = logs
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line:\n{logs}"));
    assert!(
        error.contains("tasks failed") && error.contains("bad-sink-0"),
        "the error names the failed task: {error}"
    );
}
