//! `/metrics` over a real listener: a FileStream pipeline's scrape parses with Prometheus' own
//! OpenMetrics parser (its Python client's, run as a separate process), its counters match the lines
//! the pipeline moved, the sink's lag falls back to zero once it has caught up, a deleted connector's
//! metrics are gone; and each task logs a progress line with its records and rate.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{
    append, numbered_lines, read_lines, sink_props, source_props, wait_until, worker_props, Dir,
    Props, Worker,
};
use serde_json::Value;

/// One sample of a scrape: its name (with the `_total`, `_count`, `_bucket` suffix), labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Value,
    value: f64,
}

/// The scrape's samples, as Prometheus' OpenMetrics parser reads them; a scrape it refuses fails the
/// test with the parser's reason.
fn parse(text: &str) -> Vec<Sample> {
    const PARSER: &str = "
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({'name': s.name, 'labels': s.labels, 'value': s.value}))
";
    let mut python = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    python
        .stdin
        .take()
        .expect("a pipe")
        .write_all(text.as_bytes())
        .expect("the parser reads the scrape");
    let out = python.wait_with_output().expect("the parser ends");
    assert!(
        out.status.success(),
        "Prometheus' parser refused the scrape (pip install prometheus-client if it is missing):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let sample: Value = serde_json::from_str(line).expect("the parser prints JSON");
            Sample {
                name: sample["name"].as_str().unwrap_or_default().to_owned(),
                labels: sample["labels"].clone(),
                value: sample["value"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// A scrape: its content type and samples.
fn scrape(base: &str) -> (String, Vec<Sample>) {
    let mut response = ureq::get(format!("{base}/metrics"))
        .call()
        .expect("the worker serves /metrics");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.body_mut().read_to_string().expect("a text body");
    (content_type, parse(&text))
}

/// The value of the sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels[*k] == *v))
        .map(|s| s.value)
}

fn create(base: &str, props: &Props) {
    let response = ureq::post(format!("{base}/connectors"))
        .content_type("application/json")
        .send(props.to_rest_json())
        .expect("the connector is created");
    assert_eq!(response.status().as_u16(), 201);
}

#[test]
fn a_scrape_parses_and_its_counters_match_the_records_moved() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, None).set("status.log.interval.ms", 500),
    );
    let sluice = Worker::start(&dir, "metrics", &worker, &[]);
    let base = sluice.rest_url();
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 50);
    append(&input, &lines[..40]);
    create(&base, &source_props("files-in", &input, "lines"));
    create(&base, &sink_props("files-out", &output, "lines"));
    let source = [("connector", "files-in"), ("task", "0")];
    let sink = [("connector", "files-out"), ("task", "0")];
    // The sink's lag in each partition of its topic.
    let lags = |samples: &[Sample]| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| {
                s.name == "kafka_connect_sink_task_partition_lag"
                    && s.labels["connector"] == "files-out"
                    && s.labels["topic"] == "lines"
            })
            .map(|s| s.value)
            .collect()
    };
    let caught_up = |moved: f64| {
        move |samples: &[Sample]| {
            let lags = lags(samples);
            // The source counts a write when it takes the acknowledgement, which waits while its
            // task waits in `poll` for more lines: the sink can see a record first.
            value(
                samples,
                "kafka_connect_sink_task_sink_record_send_total",
                &sink,
            ) == Some(moved)
                && value(
                    samples,
                    "kafka_connect_source_task_source_record_write_total",
                    &source,
                ) == Some(moved)
                && !lags.is_empty()
                && lags.iter().all(|lag| *lag == 0.0)
        }
    };
    let mut samples = Vec::new();
    wait_until(
        "the source's and the sink's metrics at 40 records and no lag",
        || {
            samples = scrape(&base).1;
            caught_up(40.0)(&samples)
        },
        || sluice.report(),
    );
    assert_eq!(read_lines(&output).len(), 40);
    let counter = |samples: &[Sample], name: &str, labels: &[(&str, &str)]| {
        value(samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
    };
    for (name, labels) in [
        (
            "kafka_connect_source_task_source_record_poll_total",
            &source,
        ),
        (
            "kafka_connect_source_task_source_record_write_total",
            &source,
        ),
        ("kafka_connect_sink_task_sink_record_read_total", &sink),
        ("kafka_connect_sink_task_sink_record_send_total", &sink),
    ] {
        assert_eq!(counter(&samples, name, labels), 40.0, "{name}");
    }
    assert!(
        counter(
            &samples,
            "kafka_connect_sink_task_put_batch_seconds_count",
            &sink
        ) >= 1.0
    );
    assert!(
        counter(
            &samples,
            "kafka_connect_connector_task_batch_size_sum",
            &sink
        ) == 40.0,
        "the sink's batches add up to its records"
    );
    let partitions = counter(&samples, "kafka_connect_sink_task_partition_count", &sink);
    assert!(
        partitions >= 1.0 && lags(&samples).len() as f64 <= partitions,
        "a lag for each partition the sink has read from, of the {partitions} it was assigned"
    );
    assert!(counter(&samples, "kafka_connect_sink_task_rebalance_total", &sink) >= 1.0);
    assert_eq!(
        counter(
            &samples,
            "kafka_connect_task_error_total_record_errors_total",
            &sink
        ),
        0.0
    );
    assert_eq!(
        counter(&samples, "kafka_connect_worker_connector_count", &[]),
        2.0
    );
    assert_eq!(
        counter(&samples, "kafka_connect_worker_task_count", &[]),
        2.0
    );
    assert_eq!(
        counter(
            &samples,
            "kafka_connect_worker_connector_task_count",
            &[("connector", "files-in"), ("state", "RUNNING")]
        ),
        1.0
    );
    wait_until(
        "offset commits of both tasks counted",
        || {
            let samples = scrape(&base).1;
            [&source, &sink].iter().all(|task| {
                value(
                    &samples,
                    "kafka_connect_connector_task_offset_commit_success_total",
                    *task,
                )
                .is_some_and(|commits| commits >= 1.0)
            })
        },
        || sluice.report(),
    );

    // Ten more lines: the counters follow.
    append(&input, &lines[40..]);
    wait_until(
        "the source's and the sink's metrics at 50 records and no lag",
        || {
            samples = scrape(&base).1;
            caught_up(50.0)(&samples)
        },
        || sluice.report(),
    );
    assert_eq!(
        counter(
            &samples,
            "kafka_connect_source_task_source_record_write_total",
            &source
        ),
        50.0
    );
    let (content_type, _) = scrape(&base);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );

    // Deleted: the sink's metrics are gone, the source's stay.
    let deleted = ureq::delete(format!("{base}/connectors/files-out"))
        .call()
        .expect("the connector is deleted");
    assert_eq!(deleted.status().as_u16(), 204);
    let samples = scrape(&base).1;
    assert!(
        samples.iter().all(|s| s.labels["connector"] != "files-out"),
        "{samples:?}"
    );
    assert_eq!(
        value(
            &samples,
            "kafka_connect_source_task_source_record_poll_total",
            &source
        ),
        Some(50.0)
    );
    assert_eq!(
        value(&samples, "kafka_connect_worker_connector_count", &[]),
        Some(1.0)
    );

    sluice.wait_for_log("progress: files-in-0 running, ");
    let logs = sluice.stop();
    let progress: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split_once("progress: files-in-0 ").map(|(_, rest)| rest))
        .collect();
    let records: u64 = progress
        .iter()
        .filter_map(|p| {
            p.split(", ")
                .nth(1)?
                .strip_suffix(" records")?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        records, 50,
        "the progress lines add up to the lines read:\n{logs}"
    );
    assert!(
        progress.iter().all(|p| p.ends_with("/s")),
        "each progress line has its rate:\n{logs}"
    );
}
