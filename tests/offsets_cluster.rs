//! The offset file names the Kafka cluster its source offsets belong to. A worker that reaches another
//! cluster refuses to start, naming both, instead of resuming from offsets that describe what another
//! cluster holds: a typo (`bootstrap.server`) once ran the worker on the in-process embedded broker, and
//! once it was fixed, every line read during the typo was silently never sent to the real cluster.

mod common;

use std::fs;
use std::time::Duration;

use common::{
    append, numbered_lines, read_lines, sink_props, source_props, wait_until, worker_props, Broker,
    Dir, Worker,
};

/// The cluster the offset file names.
fn file_cluster(offsets: &std::path::Path) -> Option<String> {
    let text = fs::read_to_string(offsets).ok()?;
    let root: serde_json::Value = serde_json::from_str(&text).ok()?;
    root.get("cluster")?.as_str().map(str::to_owned)
}

#[test]
fn offsets_of_another_cluster_are_refused_and_kept_only_when_asked() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let input = dir.path("input.txt");
    let first = numbered_lines(0, 20);
    append(&input, &first);
    let source = dir.write_properties("source.properties", &source_props("src", &input, "lines"));

    // The typo: the worker runs on its in-process embedded broker and commits offsets there.
    let typo = dir.write_properties(
        "typo.properties",
        &worker_props(&offsets, None).set("bootstrap.server", "127.0.0.1:9092"),
    );
    let embedded = Worker::start(&dir, "typo", &typo, &[&source]);
    let end = fs::metadata(&input).expect("input").len().to_string();
    wait_until(
        "the source committed the whole file on the embedded broker",
        || fs::read_to_string(&offsets).is_ok_and(|text| text.contains(&end)),
        || embedded.report(),
    );
    embedded.stop();
    assert_eq!(file_cluster(&offsets).as_deref(), Some("sluice-embedded"));
    let committed = fs::read(&offsets).expect("offset file");

    // Fixed: the worker reaches another cluster and refuses to start.
    let broker = Broker::start(&dir, &["lines"]);
    let fixed = dir.write_properties(
        "fixed.properties",
        &worker_props(&offsets, Some(broker.bootstrap())),
    );
    let refused = Worker::start(&dir, "fixed", &fixed, &[&source]);
    let (status, logs) = refused.exit_within(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{logs}");
    for part in [
        offsets.display().to_string().as_str(),
        "\"sluice-embedded\" (the worker's in-process embedded broker",
        "is cluster \"mockCluster",
        broker.bootstrap(),
        "move the offset file away",
        "--rebind-offsets",
    ] {
        assert!(logs.contains(part), "the error names {part:?}:\n{logs}");
    }
    assert!(
        !logs.contains("source task started"),
        "no source task ran:\n{logs}"
    );
    assert_eq!(
        fs::read(&offsets).expect("offset file"),
        committed,
        "the offset file is untouched"
    );

    // Asked to keep them (the cluster holds the same data): the source resumes after the 20 lines.
    let output = dir.path("output.txt");
    let sink = dir.write_properties("sink.properties", &sink_props("snk", &output, "lines"));
    let rebound = Worker::start_with(
        &dir,
        "rebound",
        &["--rebind-offsets"],
        &fixed,
        &[&source, &sink],
    );
    let second = numbered_lines(20, 10);
    rebound.wait_for_log("source offsets rebound to another Kafka cluster");
    append(&input, &second);
    wait_until(
        "the sink wrote the lines appended after the rebind",
        || read_lines(&output).len() >= second.len(),
        || rebound.report(),
    );
    rebound.stop();
    assert_eq!(
        read_lines(&output),
        second,
        "the first 20 lines were not read again"
    );
    let cluster = file_cluster(&offsets).expect("the file names a cluster");
    assert!(cluster.starts_with("mockCluster"), "{cluster}");

    // From now on the file belongs to this cluster: the worker starts without the flag.
    let again = Worker::start(&dir, "again", &fixed, &[&source]);
    again.wait_for_log("source task started");
    let logs = again.stop();
    assert!(!logs.contains("rebound"), "{logs}");
}
