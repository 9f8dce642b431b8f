//! Clean stops duplicate nothing, however many sink tasks a connector has. With `tasks.max=4`, tasks
//! stopping one after another used to leave the group while their siblings were still committing: the
//! embedded broker refused those commits (REBALANCE_IN_PROGRESS), and five SIGTERM stops during a stream
//! wrote 174,928 lines twice. Now every task commits before any leaves, and offsets refused because a
//! rebalance was under way are committed in the new generation by whichever task then owns them.

mod common;

use common::{
    append, append_gradually, assert_same_lines_once, numbered_lines, read_lines, short_sessions,
    sink_props, source_props, wait_until, worker_props, BrokerKind, Dir, TestBroker, Worker,
};

#[test]
fn four_sink_tasks_stopped_and_restarted_during_a_stream_write_each_line_once() {
    stopped_and_restarted(BrokerKind::Embedded);
}

#[test]
fn four_sink_tasks_stopped_and_restarted_during_a_stream_write_each_line_once_on_tansu() {
    stopped_and_restarted(BrokerKind::Tansu);
}

fn stopped_and_restarted(kind: BrokerKind) {
    let dir = Dir::new();
    let broker = TestBroker::start(kind, &dir, &["stream:8"]);
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let source_worker = dir.write_properties(
        "source-worker.properties",
        &worker_props(&dir.path("source.offsets"), Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("stream-source", &input, "stream"),
    );
    let producer = Worker::start(&dir, "source-worker", &source_worker, &[&source]);
    // A stop can race a rebalance still under way (the tasks joining one after another at start), and the
    // embedded broker takes up to a session timeout to complete one: the stop may wait that long for
    // the new generation, in which the refused offsets are committed.
    let sink_worker = dir.write_properties(
        "sink-worker.properties",
        &short_sessions(worker_props(
            &dir.path("sink.offsets"),
            Some(broker.bootstrap()),
        ))
        .set("task.shutdown.graceful.timeout.ms", 20_000),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("stream-sink", &output, "stream").set("tasks.max", 4),
    );

    let lines = numbered_lines(0, 36_000);
    let rounds: Vec<&[String]> = lines.chunks(6_000).collect();
    let mut stops = 0;
    for (round, chunk) in rounds.iter().enumerate() {
        let consumer = Worker::start(&dir, &format!("sink-{round}"), &sink_worker, &[&sink]);
        let (during, after) = chunk.split_at(chunk.len() / 2);
        append_gradually(&input, during, 500);
        let written_before = read_lines(&output).len();
        wait_until(
            "the sink tasks to write some of this round's lines",
            || read_lines(&output).len() > written_before,
            || common::reports(&[&consumer, &producer]),
        );
        if round + 1 == rounds.len() {
            append_gradually(&input, after, 500);
            wait_until(
                "every line in the output",
                || read_lines(&output).len() >= lines.len(),
                || common::reports(&[&consumer, &producer]),
            );
            consumer.stop();
            break;
        }
        // Stop while the stream runs: the source is still sending these lines as the sink tasks stop.
        append(&input, after);
        let logs = consumer.stop();
        stops += 1;
        assert!(
            !logs.contains("leaving the group before every task of the connector committed"),
            "every task committed before any left:\n{logs}"
        );
    }
    producer.stop();
    assert_eq!(stops, rounds.len() - 1);
    assert_same_lines_once(&read_lines(&output), &lines);
}
