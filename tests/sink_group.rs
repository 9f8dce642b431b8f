//! Sink tasks of one connector form one consumer group (`connect-<name>`): they split a topic's partitions,
//! whether they run in two workers or as `tasks.max=2` in one, and a survivor takes over a stopped
//! member's partitions without losing records: on `sluice broker` and on Tansu.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{
    append, append_gradually, assert_every_line_at_least_once, assert_same_lines_once, assignments,
    numbered_lines, read_lines, short_sessions, sink_props, source_props, wait_for_lines,
    wait_until, worker_props, BrokerKind, Dir, TestBroker, Worker,
};

const ALL_PARTITIONS: [i32; 4] = [0, 1, 2, 3];

/// Starts a worker running the `shared-sink` connector into `<label>.txt`.
fn start_sink_worker(dir: &Dir, broker: &TestBroker, label: &str) -> Worker {
    let config = dir.write_properties(
        &format!("{label}.properties"),
        &short_sessions(worker_props(
            &dir.path(&format!("{label}.offsets")),
            Some(broker.bootstrap()),
        )),
    );
    let sink = dir.write_properties(
        &format!("{label}-sink.properties"),
        &sink_props("shared-sink", &dir.path(&format!("{label}.txt")), "shared"),
    );
    Worker::start(dir, label, &config, &[&sink])
}

/// The partitions of the last assignment a task logged; none if it logged none.
fn last_assignment(worker: &Worker, task: &str) -> BTreeSet<i32> {
    assignments(&worker.logs(), task).pop().unwrap_or_default()
}

fn lines_of(paths: &[&Path]) -> Vec<String> {
    paths.iter().flat_map(|p| read_lines(p)).collect()
}

#[test]
fn two_workers_share_partitions_and_the_survivor_takes_over() {
    survivor_takes_over(BrokerKind::Embedded);
}

#[test]
fn two_workers_share_partitions_and_the_survivor_takes_over_on_tansu() {
    survivor_takes_over(BrokerKind::Tansu);
}

fn survivor_takes_over(kind: BrokerKind) {
    let dir = Dir::new();
    let broker = TestBroker::start(kind, &dir, &["shared:4"]);
    let input = dir.path("input.txt");
    let (out_a, out_b) = (dir.path("sink-a.txt"), dir.path("sink-b.txt"));
    let lines = numbered_lines(0, 30_000);
    let (before_stop, rest) = lines.split_at(10_000);
    let (around_stop, after_stop) = rest.split_at(10_000);

    let a = start_sink_worker(&dir, &broker, "sink-a");
    let mut b = start_sink_worker(&dir, &broker, "sink-b");
    // librdkafka's sticky partitioner sends keyless records to one partition per linger window: the
    // first 10,000 lines arrive in a handful of windows, which can all pick the two partitions of one
    // worker (about one run in twenty) and leave the other with nothing to write. Partitioned record by
    // record, every partition gets lines.
    let source_config = dir.write_properties(
        "source-worker.properties",
        &worker_props(&dir.path("source.offsets"), Some(broker.bootstrap()))
            .set("producer.sticky.partitioning.linger.ms", 0),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("shared-source", &input, "shared"),
    );
    let producer = Worker::start(&dir, "source-worker", &source_config, &[&source]);

    append_gradually(&input, before_stop, 250);
    wait_until(
        "both sink workers to write lines",
        || !read_lines(&out_a).is_empty() && !read_lines(&out_b).is_empty(),
        || common::reports(&[&a, &b, &producer]),
    );
    let (owned_a, owned_b) = (
        last_assignment(&a, "shared-sink-0"),
        last_assignment(&b, "shared-sink-0"),
    );
    assert!(
        owned_a.is_disjoint(&owned_b)
            && owned_a.union(&owned_b).copied().eq(ALL_PARTITIONS)
            && !owned_a.is_empty()
            && !owned_b.is_empty(),
        "the two workers should split the four partitions, but own {owned_a:?} and {owned_b:?}\n{}",
        common::reports(&[&a, &b])
    );

    // Stop one member while records keep flowing.
    let (first_half, second_half) = around_stop.split_at(around_stop.len() / 2);
    append_gradually(&input, first_half, 250);
    b.assert_running();
    let assignments_before = assignments(&a.logs(), "shared-sink-0").len();
    b.stop();
    append_gradually(&input, second_half, 250);
    wait_until(
        "the surviving worker to take over the stopped worker's partitions",
        || {
            let taken: BTreeSet<i32> = assignments(&a.logs(), "shared-sink-0")
                .into_iter()
                .skip(assignments_before)
                .flatten()
                .collect();
            taken.is_superset(&owned_b)
        },
        || a.report(),
    );

    append(&input, after_stop);
    let wanted: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    wait_until(
        "every input line in one of the two outputs",
        || {
            let written = lines_of(&[&out_a, &out_b]);
            let seen: BTreeSet<&str> = written.iter().map(String::as_str).collect();
            wanted.iter().all(|l| seen.contains(l))
        },
        || {
            format!(
                "the outputs have {} lines for {} input lines\n{}",
                lines_of(&[&out_a, &out_b]).len(),
                lines.len(),
                common::reports(&[&a, &producer])
            )
        },
    );
    producer.stop();
    a.stop();

    let written = lines_of(&[&out_a, &out_b]);
    assert_every_line_at_least_once(&written, &lines);
    eprintln!(
        "{} lines written for {} input lines ({} by the stopped worker)",
        written.len(),
        lines.len(),
        read_lines(&out_b).len()
    );
}

#[test]
fn two_tasks_in_one_worker_split_the_partitions() {
    let dir = Dir::new();
    let broker = TestBroker::start(BrokerKind::Embedded, &dir, &["pair:4"]);
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 10_000);
    append(&input, &[]);
    let config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("pair-source", &input, "pair"),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("pair-sink", &output, "pair").set("tasks.max", 2),
    );

    let worker = Worker::start(&dir, "worker", &config, &[&source, &sink]);
    // Records arrive only once the tasks have settled: the embedded broker refuses offset commits while a
    // group rebalances, so records consumed during the first rebalance could be delivered twice (at least once).
    let split = |worker: &Worker| {
        let first = last_assignment(worker, "pair-sink-0");
        let second = last_assignment(worker, "pair-sink-1");
        first.is_disjoint(&second)
            && first.union(&second).copied().eq(ALL_PARTITIONS)
            && !first.is_empty()
            && !second.is_empty()
    };
    wait_until(
        "tasks pair-sink-0 and pair-sink-1 to split the four partitions",
        || split(&worker),
        || worker.report(),
    );
    append(&input, &lines);
    wait_for_lines(&output, lines.len(), &[&worker]);
    worker.stop();

    assert_same_lines_once(&read_lines(&output), &lines);
}
