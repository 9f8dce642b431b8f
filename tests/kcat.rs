//! An independent client, kcat (Debian package `kcat`), reads what a FileStreamSource wrote into a
//! `sluice broker` topic: the file's lines, in file order within each partition. These tests fail,
//! never skip, when kcat is not installed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    append, append_gradually, assert_same_lines_once, consume, numbered_lines, read_lines,
    sink_props, source_props, wait_for_lines, wait_until, worker_props, Broker, Dir, Worker,
};

#[test]
fn kcat_reads_the_lines_the_source_wrote() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["kcat-lines:1"]);
    let input = dir.path("input.txt");
    let lines = numbered_lines(0, 5_000);
    let config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("kcat-source", &input, "kcat-lines"),
    );

    let worker = Worker::start(&dir, "worker", &config, &[&source]);
    append_gradually(&input, &lines, 1_000);
    let consumed = std::cell::RefCell::new(String::new());
    wait_until(
        "kcat to read every line from the topic",
        || {
            let read = consume(&dir, &broker, "kcat-lines", None);
            let done = read.lines().count() >= lines.len();
            consumed.replace(read);
            done
        },
        || {
            format!(
                "kcat read {} lines\n{}",
                consumed.borrow().lines().count(),
                worker.report()
            )
        },
    );
    let consumed = consumed.into_inner();
    worker.stop();

    assert!(
        consumed == lines.concat(),
        "kcat should read the input file exactly, in order: {} lines read for {}",
        consumed.lines().count(),
        lines.len()
    );
}

#[test]
fn kcat_sees_file_order_in_each_of_four_partitions_and_the_sink_keeps_it() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["kcat-spread:4"]);
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 10_000);
    let config = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), Some(broker.bootstrap())),
    );
    let source = dir.write_properties(
        "source.properties",
        &source_props("spread-source", &input, "kcat-spread"),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("spread-sink", &output, "kcat-spread"),
    );

    let worker = Worker::start(&dir, "worker", &config, &[&source, &sink]);
    // The producer keeps a keyless batch in one partition and picks another at random for the next, so
    // lines written at 20 moments (more than the source's 200 ms tail interval apart) spread out.
    for part in lines.chunks(lines.len() / 20) {
        append(&input, part);
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_for_lines(&output, lines.len(), &[&worker]);
    worker.stop();

    // Lines by partition, as kcat reads them (the partition number, a tab, then the line).
    let consumed = consume(&dir, &broker, "kcat-spread", Some("%p\t%s\n"));
    let mut partitions: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for record in consumed.lines() {
        let (partition, line) = record
            .split_once('\t')
            .unwrap_or_else(|| panic!("unexpected kcat output {record:?}"));
        partitions
            .entry(partition.parse().unwrap())
            .or_default()
            .push(format!("{line}\n"));
    }
    eprintln!(
        "lines per partition: {:?}",
        partitions
            .iter()
            .map(|(p, l)| (p, l.len()))
            .collect::<Vec<_>>()
    );
    let all: Vec<String> = partitions.values().flatten().cloned().collect();
    assert_same_lines_once(&all, &lines);
    assert!(
        partitions.len() > 1,
        "records without keys should be spread over the partitions, but only {:?} got any",
        partitions.keys().collect::<Vec<_>>()
    );

    let position: BTreeMap<&str, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let copied = read_lines(&output);
    assert_same_lines_once(&copied, &lines);
    for (partition, in_topic) in &partitions {
        assert!(
            in_topic
                .windows(2)
                .all(|w| position[w[0].as_str()] < position[w[1].as_str()]),
            "partition {partition} should hold its lines in file order"
        );
        let members: std::collections::BTreeSet<&str> =
            in_topic.iter().map(String::as_str).collect();
        let in_output: Vec<&String> = copied
            .iter()
            .filter(|l| members.contains(l.as_str()))
            .collect();
        assert!(
            in_output.iter().copied().eq(in_topic.iter()),
            "the sink should write partition {partition}'s lines in the partition's order"
        );
    }
}
