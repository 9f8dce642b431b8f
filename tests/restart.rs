//! Stopping a worker mid-stream and starting it again on the same offset file and sink file, against a
//! separate broker (`sluice broker`, and Tansu): a clean stop (SIGTERM) loses and repeats nothing; a
//! crash (SIGKILL) loses nothing.

mod common;

use std::path::PathBuf;

use common::{
    append, append_gradually, assert_every_line_at_least_once, numbered_lines, read_lines,
    short_sessions, sink_props, source_props, wait_for_lines, wait_until, worker_props, BrokerKind,
    Dir, TestBroker, Worker,
};

/// Lines written before the stop, while the worker runs.
const BEFORE_STOP: usize = 10_000;
/// Lines appended while the worker is down.
const WHILE_DOWN: usize = 4_000;
/// Lines appended after the restart, while the worker runs.
const AFTER_RESTART: usize = 6_000;
const TOTAL: usize = BEFORE_STOP + WHILE_DOWN + AFTER_RESTART;

/// A broker with a one-partition topic, and the files of a worker copying `input` into `output` through it.
struct Pipeline {
    dir: Dir,
    _broker: TestBroker,
    input: PathBuf,
    output: PathBuf,
    worker_config: PathBuf,
    source: PathBuf,
    sink: PathBuf,
}

impl Pipeline {
    fn new(kind: BrokerKind) -> Pipeline {
        let dir = Dir::new();
        let broker = TestBroker::start(kind, &dir, &["restart:1"]);
        let input = dir.path("input.txt");
        let output = dir.path("output.txt");
        let worker_config = dir.write_properties(
            "worker.properties",
            &short_sessions(worker_props(
                &dir.path("offsets.json"),
                Some(broker.bootstrap()),
            )),
        );
        let source = dir.write_properties(
            "source.properties",
            &source_props("restart-source", &input, "restart").set("batch.size", 500),
        );
        let sink = dir.write_properties(
            "sink.properties",
            &sink_props("restart-sink", &output, "restart"),
        );
        Pipeline {
            dir,
            _broker: broker,
            input,
            output,
            worker_config,
            source,
            sink,
        }
    }

    fn start(&self, label: &str) -> Worker {
        Worker::start(
            &self.dir,
            label,
            &self.worker_config,
            &[&self.source, &self.sink],
        )
    }

    /// Starts the worker and writes the first lines gradually; returns the running worker right after
    /// the last of them was appended, so it is stopped with lines not yet read or not yet delivered.
    fn run_until_mid_stream(&self, lines: &[String]) -> Worker {
        let worker = self.start("first-run");
        let (early, late) = lines.split_at(lines.len() / 2);
        append_gradually(&self.input, early, 250);
        // Data flows end to end before the stop.
        wait_for_lines(&self.output, 1, &[&worker]);
        append_gradually(&self.input, late, 250);
        worker
    }
}

#[test]
fn clean_stop_mid_stream_loses_and_repeats_nothing() {
    clean_stop_mid_stream(Pipeline::new(BrokerKind::Embedded));
}

#[test]
fn clean_stop_mid_stream_loses_and_repeats_nothing_on_tansu() {
    clean_stop_mid_stream(Pipeline::new(BrokerKind::Tansu));
}

fn clean_stop_mid_stream(pipeline: Pipeline) {
    let lines = numbered_lines(0, TOTAL);
    let (before, rest) = lines.split_at(BEFORE_STOP);
    let (while_down, after) = rest.split_at(WHILE_DOWN);

    let worker = pipeline.run_until_mid_stream(before);
    worker.stop();
    let copied_at_stop = read_lines(&pipeline.output).len();
    assert!(
        copied_at_stop < BEFORE_STOP,
        "the stop should come mid-stream, but all {BEFORE_STOP} lines were already copied"
    );
    assert_eq!(
        read_lines(&pipeline.output),
        before[..copied_at_stop],
        "after a clean stop the output should be a prefix of the input"
    );

    append(&pipeline.input, while_down);
    let worker = pipeline.start("second-run");
    worker.wait_for_log("resuming from the committed position");
    append_gradually(&pipeline.input, after, 250);
    wait_for_lines(&pipeline.output, TOTAL, &[&worker]);
    worker.stop();

    let copied = read_lines(&pipeline.output);
    if copied != lines {
        let first_difference = copied.iter().zip(&lines).position(|(a, b)| a != b);
        panic!(
            "after a clean stop and restart the output should be the input exactly: {} lines for {} \
             input lines; first difference at line {first_difference:?} (the stop came after {copied_at_stop} lines)",
            copied.len(),
            lines.len(),
        );
    }
}

#[test]
fn hard_crash_mid_stream_loses_nothing() {
    hard_crash_mid_stream(Pipeline::new(BrokerKind::Embedded));
}

#[test]
fn hard_crash_mid_stream_loses_nothing_on_tansu() {
    hard_crash_mid_stream(Pipeline::new(BrokerKind::Tansu));
}

fn hard_crash_mid_stream(pipeline: Pipeline) {
    // The killed sink stays in its group until its session times out (45 s by default, and the embedded
    // broker takes about twice that); Kafka Connect users shorten it the same way.
    let lines = numbered_lines(0, TOTAL);
    let (before, rest) = lines.split_at(BEFORE_STOP);
    let (while_down, after) = rest.split_at(WHILE_DOWN);

    let worker = pipeline.run_until_mid_stream(before);
    worker.crash();
    let copied_at_crash = read_lines(&pipeline.output).len();
    assert!(
        copied_at_crash < BEFORE_STOP,
        "the crash should come mid-stream, but all {BEFORE_STOP} lines were already copied"
    );

    append(&pipeline.input, while_down);
    let worker = pipeline.start("second-run");
    append_gradually(&pipeline.input, after, 250);
    let wanted: std::collections::BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    wait_until(
        "every input line in the output after the crash and restart",
        || {
            let copied = read_lines(&pipeline.output);
            let seen: std::collections::BTreeSet<&str> =
                copied.iter().map(String::as_str).collect();
            wanted.iter().all(|l| seen.contains(l))
        },
        || {
            format!(
                "the output has {} lines for {TOTAL} input lines\n{}",
                read_lines(&pipeline.output).len(),
                worker.report()
            )
        },
    );
    worker.stop();

    let copied = read_lines(&pipeline.output);
    assert_every_line_at_least_once(&copied, &lines);
    eprintln!(
        "after the crash: {} output lines for {TOTAL} input lines ({} redelivered)",
        copied.len(),
        copied.len() - TOTAL
    );
}
