//! Dead letter queues on `sluice broker`, written and read by kcat: under `errors.tolerance=all`, a
//! sink's records that cannot be converted (garbage that is not JSON) or transformed (JSON that is not
//! an object, for a transform that needs one) land in the queue's topic as they were produced, with the
//! `__connect.errors.*` headers, and the good records reach the file; a source's record that cannot be
//! transformed lands in its queue as the task made it, and its offset is committed. The error log's
//! record contents carry the headers of a record even for a sink that reads none.

mod common;

use std::path::{Path, PathBuf};

use common::{
    consume, kcat, read_lines, sink_props, source_props, wait_for_lines, wait_until, worker_props,
    Broker, Dir, Props, Worker,
};

#[test]
fn garbage_and_untransformable_records_reach_the_dead_letter_queue_with_their_context() {
    let dir = Dir::new();
    // `sluice broker` creates topics only for its own process: the queue's topic is made here, as an
    // operator would with kafka-topics, and the worker finds it there.
    let broker = Broker::start(&dir, &["json-in:1", "json-dlq:1"]);
    let input = dir.write(
        "records.txt",
        "{\"n\":1}\nnot json\n{\"n\":2}\n42\n{\"n\":3}\n",
    );
    kcat(
        &dir,
        &[
            "-P",
            "-b",
            broker.bootstrap(),
            "-t",
            "json-in",
            "-l",
            &input.display().to_string(),
        ],
    );

    let output = dir.path("output.txt");
    let (worker_config, sink) = json_sink(&dir, &broker, "dlq-sink", &output, "json-in", |props| {
        props
            .set("transforms", "n")
            .set("transforms.n.type", "ExtractField$Value")
            .set("transforms.n.field", "n")
            .set("errors.tolerance", "all")
            .set("errors.deadletterqueue.topic.name", "json-dlq")
            .set("errors.deadletterqueue.topic.replication.factor", 1)
            .set("errors.deadletterqueue.context.headers.enable", true)
            .set("errors.log.enable", true)
            .set("errors.log.include.messages", true)
    });
    let worker = Worker::start(&dir, "worker", &worker_config, &[&sink]);
    wait_for_lines(&output, 3, &[&worker]);
    worker.wait_for_log(
        "wrote records that could not be converted or transformed to the dead letter queue",
    );
    let logs = worker.stop();
    assert_eq!(read_lines(&output), ["1\n", "2\n", "3\n"], "{logs}");
    // errors.log.enable: a line per failure, with the record's content (include.messages).
    let failures: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("error encountered in task"))
        .collect();
    assert_eq!(failures.len(), 2, "{logs}");
    assert!(
        failures[0].contains("VALUE_CONVERTER")
            && failures[0].contains("offset 1")
            && failures[0].contains("not json"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].contains("TRANSFORMATION") && failures[1].contains("value=\\\"42\\\""),
        "{}",
        failures[1]
    );

    let dead = consume(&dir, &broker, "json-dlq", Some("%s|%h\n"));
    let letters: Vec<&str> = dead.lines().collect();
    assert_eq!(letters.len(), 2, "two dead letters, as produced:\n{dead}");
    let (garbage, garbage_headers) = letters[0].split_once('|').unwrap();
    assert_eq!(garbage, "not json");
    for expected in [
        "__connect.errors.topic=json-in",
        "__connect.errors.partition=0",
        "__connect.errors.offset=1",
        "__connect.errors.connector.name=dlq-sink",
        "__connect.errors.task.id=0",
        "__connect.errors.stage=VALUE_CONVERTER",
        "__connect.errors.class.name=JsonConverter",
        "__connect.errors.exception.class.name=org.apache.kafka.connect.errors.DataException",
    ] {
        assert!(
            garbage_headers.contains(expected),
            "{expected} missing from {garbage_headers}"
        );
    }
    let (number, number_headers) = letters[1].split_once('|').unwrap();
    assert_eq!(number, "42");
    for expected in [
        "__connect.errors.offset=3",
        "__connect.errors.stage=TRANSFORMATION",
        "__connect.errors.class.name=ExtractField$Value",
        "__connect.errors.exception.message=",
    ] {
        assert!(
            number_headers.contains(expected),
            "{expected} missing from {number_headers}"
        );
    }
}

#[test]
fn a_source_record_that_cannot_be_transformed_goes_to_the_dead_letter_queue_and_its_offset_is_committed(
) {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["dates:1", "dates-dlq:1"]);
    let input = dir.write("dates.txt", "2023-11-14\nnot a date\n2023-11-15\n");
    let offsets = dir.path("offsets.json");
    let worker_config = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("dates-source", &input, "dates")
            .set("transforms", "unix")
            .set("transforms.unix.type", "TimestampConverter$Value")
            .set("transforms.unix.target.type", "unix")
            .set("transforms.unix.format", "yyyy-MM-dd")
            .set("errors.tolerance", "all")
            .set("errors.deadletterqueue.topic.name", "dates-dlq")
            .set("errors.deadletterqueue.context.headers.enable", true),
    );
    let worker = Worker::start(&dir, "worker", &worker_config, &[&source]);
    let end = std::fs::metadata(&input).unwrap().len();
    wait_until(
        "every line's offset, the dead letter's included, is committed",
        || {
            std::fs::read_to_string(&offsets)
                .is_ok_and(|o| o.contains(&format!("\"position\":{end}}}")))
        },
        || worker.logs(),
    );
    worker.stop();

    let converted = consume(&dir, &broker, "dates", None);
    assert_eq!(
        converted.lines().collect::<Vec<_>>(),
        ["1699920000000", "1700006400000"]
    );
    let dead = consume(&dir, &broker, "dates-dlq", Some("%s|%h\n"));
    let (value, headers) = dead.trim_end().split_once('|').expect("one dead letter");
    assert_eq!(value, "not a date", "the record as the task made it");
    for expected in [
        "__connect.errors.topic=dates",
        "__connect.errors.stage=TRANSFORMATION",
        "__connect.errors.class.name=TimestampConverter$Value",
        "__connect.errors.connector.name=dates-source",
        "__connect.errors.source.offset={",
    ] {
        assert!(
            headers.contains(expected),
            "{expected} missing from {headers}"
        );
    }
    assert!(
        headers.contains("__connect.errors.source.partition={") && headers.contains("dates.txt"),
        "the source partition names the file: {headers}"
    );
}

/// `errors.log.include.messages` logs a refused record with its headers, though the sink (FileStreamSink)
/// reads none itself and no transform or dead letter queue would have them read.
#[test]
fn a_logged_failure_shows_the_headers_of_a_record_for_a_sink_that_reads_none() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["tagged-in:1"]);
    let garbage = dir.write("garbage.txt", "not json\n");
    let good = dir.write("good.txt", "7\n");
    for (file, extra) in [(&garbage, &["-H", "origin=plant-7"][..]), (&good, &[][..])] {
        let file = file.display().to_string();
        let mut args = vec![
            "-P",
            "-b",
            broker.bootstrap(),
            "-t",
            "tagged-in",
            "-l",
            &file,
        ];
        args.extend(extra);
        kcat(&dir, &args);
    }
    let output = dir.path("output.txt");
    let (worker_config, sink) = json_sink(
        &dir,
        &broker,
        "logged-sink",
        &output,
        "tagged-in",
        |props| {
            props
                .set("errors.tolerance", "all")
                .set("errors.log.enable", true)
                .set("errors.log.include.messages", true)
        },
    );
    let worker = Worker::start(&dir, "worker", &worker_config, &[&sink]);
    wait_for_lines(&output, 1, &[&worker]);
    let logs = worker.stop();
    assert_eq!(read_lines(&output), ["7\n"], "{logs}");
    let failure = logs
        .lines()
        .find(|l| l.contains("error encountered in task"))
        .unwrap_or_else(|| panic!("no failure logged:\n{logs}"));
    assert!(
        failure.contains("not json") && failure.contains("origin=\\\"plant-7\\\""),
        "{failure}"
    );
}

/// A worker's file on `broker`, and a FileStreamSink `name` writing the schemaless JSON values of
/// `topic` to `output`, with what `settings` adds (error handling, transforms).
fn json_sink(
    dir: &Dir,
    broker: &Broker,
    name: &str,
    output: &Path,
    topic: &str,
    settings: impl FnOnce(Props) -> Props,
) -> (PathBuf, PathBuf) {
    let worker_config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(broker.bootstrap())),
    );
    let sink = sink_props(name, output, topic)
        .set(
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        )
        .set("value.converter.schemas.enable", false);
    let sink = dir.write_properties("sink.properties", &settings(sink));
    (worker_config, sink)
}
