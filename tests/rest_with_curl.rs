//! The REST API as an operator drives it from a shell, with `curl`: a FileStream pipeline created,
//! watched (status and metrics), stopped, its source's offsets reset, started again (the file is read
//! again from the start), and still there after the worker restarts.

mod common;

use std::process::Command;

use common::{
    append, numbered_lines, read_lines, sink_props, source_props, wait_until, worker_props, Dir,
    Worker,
};
use serde_json::{json, Value};

/// `curl -X METHOD [-d BODY] URL`: the status code and the body (as JSON when it is JSON).
fn curl(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args(["-s", "-S", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(body) = body {
        command.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = command.output().expect("curl runs (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = code.trim().parse().expect("curl wrote the status code");
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

#[test]
fn an_operator_with_curl_creates_watches_stops_resets_and_restarts_a_pipeline() {
    let dir = Dir::new();
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None),
    );
    let sluice = Worker::start(&dir, "curl", &worker, &[]);
    let base = sluice.rest_url();
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 5);
    append(&input, &lines);
    for props in [
        source_props("files-in", &input, "lines"),
        sink_props("files-out", &output, "lines"),
    ] {
        let (status, body) = curl(
            "POST",
            &format!("{base}/connectors"),
            Some(&props.to_rest_json()),
        );
        assert_eq!(status, 201, "{body}");
    }
    let copied = |count: usize| {
        wait_until(
            &format!("{count} lines copied"),
            || read_lines(&output).len() >= count,
            || sluice.report(),
        )
    };
    copied(5);

    let (status, body) = curl("GET", &format!("{base}/connectors/files-in/status"), None);
    assert_eq!(status, 200);
    assert_eq!(body["connector"]["state"], json!("RUNNING"), "{body}");
    assert_eq!(body["tasks"][0]["state"], json!("RUNNING"), "{body}");
    let written =
        r#"kafka_connect_source_task_source_record_write_total{connector="files-in",task="0"} 5"#;
    wait_until(
        "the metrics counting the 5 lines",
        || {
            let (_, metrics) = curl("GET", &format!("{base}/metrics"), None);
            metrics
                .as_str()
                .is_some_and(|m| m.lines().any(|l| l == written))
        },
        || sluice.report(),
    );

    let (status, _) = curl("PUT", &format!("{base}/connectors/files-in/stop"), None);
    assert_eq!(status, 204);
    let (_, body) = curl("GET", &format!("{base}/connectors/files-in/status"), None);
    assert_eq!(body["connector"]["state"], json!("STOPPED"), "{body}");
    let (status, body) = curl("GET", &format!("{base}/connectors/files-in/offsets"), None);
    assert_eq!(status, 200);
    assert_eq!(
        body["offsets"][0]["offset"]["position"],
        json!(lines.concat().len()),
        "{body}"
    );
    let (status, body) = curl(
        "DELETE",
        &format!("{base}/connectors/files-in/offsets"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (_, body) = curl("GET", &format!("{base}/connectors/files-in/offsets"), None);
    assert_eq!(body, json!({"offsets": []}));
    let (status, _) = curl("PUT", &format!("{base}/connectors/files-in/resume"), None);
    assert_eq!(status, 202);
    copied(10);
    let copy = read_lines(&output);
    for line in &lines {
        assert_eq!(
            copy.iter().filter(|c| *c == line).count(),
            2,
            "{line:?}: read again from the start"
        );
    }
    sluice.stop();

    let sluice = Worker::start(&dir, "curl-again", &worker, &[]);
    let base = sluice.rest_url();
    let (status, body) = curl("GET", &format!("{base}/connectors"), None);
    assert_eq!(status, 200);
    assert_eq!(body, json!(["files-in", "files-out"]));
    sluice.stop();
}
