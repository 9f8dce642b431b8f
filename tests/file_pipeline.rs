//! File → topic → file through one standalone worker (with its embedded broker, and through Tansu): the
//! output holds exactly the input, byte for byte through one partition, and every line once through four.

mod common;

use std::fs;

use common::{
    append, assert_same_lines_once, assignments, numbered_lines, read_lines, sink_props,
    source_props, wait_for_lines, worker_props, BrokerKind, Dir, TestBroker, Worker,
};

const LINES: usize = 10_000;

/// The fewest increasing runs that `numbers` splits into (patience sorting): a sequence interleaved
/// from `k` ordered partitions needs at most `k`.
fn increasing_runs_needed(numbers: &[usize]) -> usize {
    // That is the length of the longest decreasing subsequence; `ends[k]` is the largest possible last
    // element of a decreasing subsequence of length k + 1 (so `ends` is decreasing).
    let mut ends: Vec<usize> = Vec::new();
    for &n in numbers {
        let k = ends.partition_point(|&end| end > n);
        match ends.get_mut(k) {
            Some(end) => *end = n,
            None => ends.push(n),
        }
    }
    ends.len()
}

/// The line number `numbered_lines` put in a line.
fn line_number(line: &str) -> usize {
    line["line ".len().."line 000000".len()]
        .parse()
        .unwrap_or_else(|e| panic!("no line number in {line:?}: {e}"))
}

#[test]
fn one_partition_copies_the_file_byte_for_byte() {
    let dir = Dir::new();
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    append(&input, &numbered_lines(0, LINES));
    let worker_config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("copy-source", &input, "copy")
            .set("topic.creation.default.partitions", 1)
            .set("topic.creation.default.replication.factor", 1),
    );
    let sink = dir.write_properties("sink.properties", &sink_props("copy-sink", &output, "copy"));

    let worker = Worker::start(&dir, "worker", &worker_config, &[&source, &sink]);
    wait_for_lines(&output, LINES, &[&worker]);
    let logs = worker.stop();

    assert!(
        fs::read(&output).unwrap() == fs::read(&input).unwrap(),
        "the output differs from the input: {} vs {} bytes",
        fs::metadata(&output).unwrap().len(),
        fs::metadata(&input).unwrap().len(),
    );
    assert!(
        logs.contains("started the embedded broker"),
        "the worker should have used its embedded broker:\n{logs}"
    );
    assert_eq!(
        assignments(&logs, "copy-sink-0"),
        vec![[0].into()],
        "the sink should own the topic's single partition:\n{logs}"
    );
}

#[test]
fn four_partitions_deliver_every_line_once_in_partition_order() {
    four_partitions(None);
}

/// The same through Tansu, where the source creates its topic with the admin client.
#[test]
fn four_partitions_deliver_every_line_once_in_partition_order_on_tansu() {
    let dir = Dir::new();
    let tansu = TestBroker::start(BrokerKind::Tansu, &dir, &[]);
    four_partitions(Some(tansu.bootstrap()));
}

/// `bootstrap`: the broker; without, the worker's own embedded one.
fn four_partitions(bootstrap: Option<&str>) {
    let dir = Dir::new();
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, LINES);
    append(&input, &lines);
    let worker_config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), bootstrap),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("spread-source", &input, "spread")
            .set("topic.creation.default.partitions", 4)
            .set("topic.creation.default.replication.factor", 1),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("spread-sink", &output, "spread"),
    );

    let worker = Worker::start(&dir, "worker", &worker_config, &[&source, &sink]);
    wait_for_lines(&output, LINES, &[&worker]);
    let logs = worker.stop();

    let copied = read_lines(&output);
    assert_same_lines_once(&copied, &lines);
    assert_eq!(
        assignments(&logs, "spread-sink-0").last(),
        Some(&[0, 1, 2, 3].into()),
        "the sink should own all four partitions:\n{logs}"
    );
    // Records have no key, so lines are spread over the partitions; each partition keeps file order,
    // so the output is an interleaving of at most four increasing runs of line numbers.
    let numbers: Vec<usize> = copied.iter().map(|l| line_number(l)).collect();
    let runs = increasing_runs_needed(&numbers);
    assert!(
        runs <= 4,
        "the output interleaves {runs} ordered runs; four partitions can produce at most 4"
    );
}

#[test]
fn sink_connector_given_as_rest_api_json() {
    let dir = Dir::new();
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    append(&input, &numbered_lines(0, 2_000));
    let worker_config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("json-source", &input, "json-topic")
            .set("topic.creation.default.partitions", 1),
    );
    let sink = dir.write_json(
        "sink.json",
        &sink_props("json-sink", &output, "json-topic")
            .set(
                "connector.class",
                "org.apache.kafka.connect.file.FileStreamSinkConnector",
            )
            .set("tasks.max", 1),
    );
    let written: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&sink).unwrap()).unwrap();
    assert!(
        written["name"] == "json-sink" && written["config"]["topics"] == "json-topic",
        "the sink file should be in the REST API's shape: {written}"
    );

    let worker = Worker::start(&dir, "worker", &worker_config, &[&source, &sink]);
    wait_for_lines(&output, 2_000, &[&worker]);
    let logs = worker.stop();

    assert!(
        fs::read(&output).unwrap() == fs::read(&input).unwrap(),
        "the output differs from the input"
    );
    assert!(
        logs.contains("task=json-sink-0"),
        "the JSON connector's name should name its task:\n{logs}"
    );
}

#[test]
fn increasing_runs_are_counted() {
    assert_eq!(increasing_runs_needed(&[]), 0);
    assert_eq!(increasing_runs_needed(&[1, 2, 3]), 1);
    assert_eq!(increasing_runs_needed(&[1, 10, 2, 11, 3, 12]), 2);
    assert_eq!(increasing_runs_needed(&[3, 2, 1]), 3);
}
