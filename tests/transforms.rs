//! Transforms and predicates on a real worker with its embedded broker: FileStream sources route their
//! topics, stamp headers and filter a whole topic away (its offsets still committed), and the sink casts
//! the values its predicate picks.

mod common;

use std::fs;

use common::{
    append, assert_same_lines_once, read_lines, sink_props, source_props, wait_for_lines,
    wait_until, worker_props, Dir, Worker,
};

const KEPT: usize = 2_000;
const DROPPED: usize = 500;

#[test]
fn a_chain_of_transforms_routes_filters_and_casts_records() {
    let dir = Dir::new();
    let kept = dir.path("kept.txt");
    let dropped = dir.path("dropped.txt");
    let output = dir.path("output.txt");
    let offsets = dir.path("offsets.json");
    append(
        &kept,
        &(1..=KEPT).map(|n| format!("{n:06}\n")).collect::<Vec<_>>(),
    );
    append(
        &dropped,
        &(1..=DROPPED)
            .map(|n| format!("dropped {n}\n"))
            .collect::<Vec<_>>(),
    );
    let worker_config = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let kept_source = dir.write_properties(
        "kept.properties",
        &source_props("kept-source", &kept, "numbers-raw")
            .set("topic.creation.default.partitions", 2)
            .set("topic.creation.default.replication.factor", 1)
            .set("transforms", "route,stamp")
            .set(
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            )
            .set("transforms.route.regex", "(.*)-raw")
            .set("transforms.route.replacement", "$1-copy")
            .set("transforms.stamp.type", "InsertHeader")
            .set("transforms.stamp.header", "origin")
            .set("transforms.stamp.value.literal", "kept"),
    );
    let dropped_source = dir.write_properties(
        "dropped.properties",
        &source_props("dropped-source", &dropped, "noise-raw")
            .set("topic.creation.default.partitions", 1)
            .set("topic.creation.default.replication.factor", 1)
            .set("transforms", "drop")
            .set("transforms.drop.type", "Filter")
            .set("transforms.drop.predicate", "isNoise")
            .set("predicates", "isNoise")
            .set(
                "predicates.isNoise.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            )
            .set("predicates.isNoise.pattern", "noise-.*"),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("numbers-sink", &output, "numbers-copy")
            .set("transforms", "unstamped,number")
            .set("transforms.unstamped.type", "Filter")
            .set("transforms.unstamped.predicate", "stamped")
            .set("transforms.unstamped.negate", "true")
            .set("transforms.number.type", "Cast$Value")
            .set("transforms.number.spec", "int64")
            .set("transforms.number.predicate", "stamped")
            .set("predicates", "stamped")
            .set("predicates.stamped.type", "HasHeaderKey")
            .set("predicates.stamped.name", "origin"),
    );

    let worker = Worker::start(
        &dir,
        "worker",
        &worker_config,
        &[&kept_source, &dropped_source, &sink],
    );
    wait_for_lines(&output, KEPT, &[&worker]);
    // The dropped records' offsets are committed although none of them reached Kafka.
    let dropped_end = fs::metadata(&dropped).unwrap().len();
    wait_until(
        "the filtered source's offset reaches the end of its file",
        || {
            fs::read_to_string(&offsets).is_ok_and(|o| {
                o.contains("dropped.txt") && o.contains(&format!("\"position\":{dropped_end}}}"))
            })
        },
        || {
            format!(
                "offsets: {:?}\n{}",
                fs::read_to_string(&offsets),
                worker.logs()
            )
        },
    );
    let logs = worker.stop();

    // Routed to numbers-copy, stamped, and cast from "000042" to 42 by the sink.
    let expected: Vec<String> = (1..=KEPT).map(|n| format!("{n}\n")).collect();
    assert_same_lines_once(&read_lines(&output), &expected);
    assert!(
        !logs.contains("noise-raw\" was created")
            && !read_lines(&output).iter().any(|l| l.starts_with("dropped")),
        "no record of the filtered topic may reach the sink:\n{logs}"
    );
}
