//! The REST API over a real listener, as Kafka Connect's clients use it: a FileStream pipeline created,
//! watched, stopped, resumed, changed and deleted over HTTP, still there after the worker restarts;
//! Kafka Connect's status codes and error bodies for bad requests, none of which stops the worker; a
//! failed task shown FAILED with its trace, and restarted.

mod common;

use std::path::Path;

use common::{
    append, numbered_lines, read_lines, short_sessions, sink_props, source_props, wait_until,
    worker_props, Broker, Dir, Props, Worker,
};
use serde_json::{json, Value};

/// An HTTP client that hands back every status instead of failing on 4xx and 5xx.
struct Client {
    agent: ureq::Agent,
    base: String,
}

/// A status code and the body, as JSON when it is JSON.
struct Answer {
    status: u16,
    body: Value,
}

impl Client {
    fn new(base: String) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client { agent, base }
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = response.expect("the worker answers");
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .expect("a readable body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    fn get(&self, path: &str) -> Answer {
        Client::answer(self.agent.get(format!("{}{path}", self.base)).call())
    }

    fn delete(&self, path: &str) -> Answer {
        Client::answer(self.agent.delete(format!("{}{path}", self.base)).call())
    }

    fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        let json = "application/json";
        let response = match method {
            "POST" => self.agent.post(url).content_type(json).send(body),
            "PUT" => self.agent.put(url).content_type(json).send(body),
            "PATCH" => self.agent.patch(url).content_type(json).send(body),
            other => panic!("no {other} with a body"),
        };
        Client::answer(response)
    }

    fn put_empty(&self, path: &str) -> Answer {
        Client::answer(self.agent.put(format!("{}{path}", self.base)).send_empty())
    }

    fn post_empty(&self, path: &str) -> Answer {
        Client::answer(self.agent.post(format!("{}{path}", self.base)).send_empty())
    }
}

fn config_json(props: &Props) -> Value {
    let text = serde_json::to_string(props).expect("props as JSON");
    serde_json::from_str(&text).expect("a JSON object")
}

fn connector_body(props: &Props) -> String {
    let config = config_json(props);
    json!({"name": config["name"], "config": config}).to_string()
}

fn state(client: &Client, connector: &str) -> (String, Vec<String>) {
    let status = client.get(&format!("/connectors/{connector}/status")).body;
    let tasks = status["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| t["state"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        status["connector"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        tasks,
    )
}

fn wait_for_state(client: &Client, worker: &Worker, connector: &str, want: (&str, &[&str])) {
    wait_until(
        &format!("{connector} in state {want:?}"),
        || {
            let (connector_state, tasks) = state(client, connector);
            connector_state == want.0 && tasks == want.1
        },
        || {
            format!(
                "status: {}\n{}",
                client.get(&format!("/connectors/{connector}/status")).body,
                worker.report()
            )
        },
    );
}

fn wait_for_output(output: &Path, lines: usize, worker: &Worker) {
    wait_until(
        &format!("{lines} lines in {}", output.display()),
        || read_lines(output).len() >= lines,
        || worker.report(),
    );
}

#[test]
fn a_pipeline_is_created_watched_stopped_resumed_changed_and_deleted_over_http() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(&offsets, None)),
    );
    let sluice = Worker::start(&dir, "rest", &worker, &[]);
    let client = Client::new(sluice.rest_url());

    let root = client.get("/");
    assert_eq!(root.status, 200);
    assert_eq!(root.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(client.get("/connectors").body, json!([]));

    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let first = numbered_lines(0, 50);
    append(&input, &first);
    let source = source_props("files-in", &input, "lines");
    let created = client.send("POST", "/connectors", &connector_body(&source));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "files-in");
    assert_eq!(created.body["type"], "source");
    assert_eq!(
        created.body["config"],
        config_json(&source),
        "the config as given, without defaults"
    );
    assert_eq!(
        created.body["tasks"],
        json!([{"connector": "files-in", "task": 0}])
    );
    let again = client.send("POST", "/connectors", &connector_body(&source));
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error_code"], 409);
    assert_eq!(again.body["message"], "Connector files-in already exists");

    let sink = sink_props("files-out", &output, "lines");
    let created = client.send(
        "PUT",
        "/connectors/files-out/config",
        &config_json(&sink).to_string(),
    );
    assert_eq!(created.status, 201, "PUT creates: {}", created.body);
    assert_eq!(created.body["type"], "sink");
    wait_for_output(&output, first.len(), &sluice);

    wait_for_state(&client, &sluice, "files-in", ("RUNNING", &["RUNNING"]));
    let status = client.get("/connectors/files-out/status").body;
    assert_eq!(status["name"], "files-out");
    assert_eq!(status["type"], "sink");
    assert_eq!(
        status["connector"]["worker_id"],
        status["tasks"][0]["worker_id"]
    );
    assert!(
        client
            .base
            .ends_with(status["connector"]["worker_id"].as_str().unwrap_or("?")),
        "the worker id is the address it serves: {status}"
    );
    let expanded = client.get("/connectors?expand=status&expand=info").body;
    assert_eq!(
        expanded["files-in"]["status"]["connector"]["state"],
        "RUNNING"
    );
    assert_eq!(expanded["files-out"]["info"]["config"], config_json(&sink));
    assert_eq!(
        client.get("/connectors").body,
        json!(["files-in", "files-out"])
    );
    let tasks = client.get("/connectors/files-in/tasks").body;
    assert_eq!(tasks[0]["id"], json!({"connector": "files-in", "task": 0}));
    assert_eq!(tasks[0]["config"]["file"], input.display().to_string());
    let task = client.get("/connectors/files-in/tasks/0/status");
    assert_eq!(
        (
            task.status,
            task.body["id"].clone(),
            task.body["state"].clone()
        ),
        (200, json!(0), json!("RUNNING"))
    );
    assert_eq!(
        client.get("/connectors/files-in/config").body,
        config_json(&source)
    );

    // Stopped: its task goes (offsets committed); resumed, it reads on from where it stopped.
    let stopped = client.put_empty("/connectors/files-in/stop");
    assert_eq!(stopped.status, 204);
    let status = client.get("/connectors/files-in/status").body;
    assert_eq!(status["connector"]["state"], "STOPPED");
    assert_eq!(status["tasks"], json!([]));
    let second = numbered_lines(50, 50);
    append(&input, &second);
    assert_eq!(client.put_empty("/connectors/files-in/resume").status, 202);
    wait_for_state(&client, &sluice, "files-in", ("RUNNING", &["RUNNING"]));
    wait_for_output(&output, 100, &sluice);
    common::assert_same_lines_once(
        &read_lines(&output),
        &[first.clone(), second.clone()].concat(),
    );

    // A changed config restarts the connector with it; a null removes a key.
    let patched = client.send(
        "PATCH",
        "/connectors/files-in/config",
        &json!({"batch.size": "7", "tasks.max": null}).to_string(),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["config"]["batch.size"], "7");
    assert!(patched.body["config"].get("tasks.max").is_none());
    let replaced = client.send(
        "PUT",
        "/connectors/files-in/config",
        &config_json(&source).to_string(),
    );
    assert_eq!(replaced.status, 200, "PUT replaces: {}", replaced.body);
    assert_eq!(
        client.post_empty("/connectors/files-in/restart").status,
        204
    );
    let restarted = client.post_empty("/connectors/files-in/restart?includeTasks=true");
    assert_eq!(restarted.status, 202);
    assert_eq!(restarted.body["name"], "files-in");
    assert_eq!(
        client
            .post_empty("/connectors/files-in/tasks/0/restart")
            .status,
        204
    );
    let third = numbered_lines(100, 50);
    append(&input, &third);
    wait_for_output(&output, 150, &sluice);

    // Deleted: gone from the API; a restart of the worker brings back the other one, and only it.
    assert_eq!(client.delete("/connectors/files-out").status, 204);
    assert_eq!(client.get("/connectors/files-out").status, 404);
    assert_eq!(client.get("/connectors").body, json!(["files-in"]));
    let logs = sluice.stop();
    assert!(
        logs.contains("connector deleted connector=files-out"),
        "{logs}"
    );

    let sluice = Worker::start(&dir, "rest-again", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    assert_eq!(client.get("/connectors").body, json!(["files-in"]));
    assert_eq!(
        client.get("/connectors/files-in/config").body,
        config_json(&source)
    );
    wait_for_state(&client, &sluice, "files-in", ("RUNNING", &["RUNNING"]));
    sluice.stop();
    common::assert_same_lines_once(&read_lines(&output), &[first, second, third].concat());
}

#[test]
fn bad_requests_get_kafka_connects_answers_and_the_worker_runs_on() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let mut sluice = Worker::start(&dir, "bad-requests", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let input = dir.write("input.txt", "one\n");

    let cases: Vec<(Answer, u16, &str)> = vec![
        (
            client.send("POST", "/connectors", "{\"name\": "),
            400,
            "not valid JSON",
        ),
        (
            client.send("POST", "/connectors", "[1, 2]"),
            400,
            "expected shape",
        ),
        (
            client.send("POST", "/connectors", "{\"config\": {}}"),
            400,
            "must name the connector",
        ),
        (
            client.send(
                "POST",
                "/connectors",
                &json!({"name": "x", "config": {"connector.class": "NoSuchConnector"}}).to_string(),
            ),
            400,
            "NoSuchConnector",
        ),
        (
            client.send(
                "POST",
                "/connectors",
                &json!({"name": "x", "config": {"connector.class": "FileStreamSource", "tasks.max": "zero"}})
                    .to_string(),
            ),
            400,
            "contains the following 2 error(s)",
        ),
        (
            client.send(
                "POST",
                "/connectors",
                &json!({"name": "x", "config": {"connector.class": "FileStreamSource", "topic": {"a": 1}}})
                    .to_string(),
            ),
            400,
            "\"topic\" must be a string",
        ),
        (
            client.send(
                "POST",
                "/connectors",
                &json!({"name": "x", "initial_state": "SLEEPING", "config": config_json(&source_props("x", &input, "t"))})
                    .to_string(),
            ),
            400,
            "SLEEPING",
        ),
        (
            client.send(
                "PUT",
                "/connectors/x/config",
                &config_json(&source_props("y", &input, "t")).to_string(),
            ),
            400,
            "doesn't match connector name in the URL (x)",
        ),
        (client.get("/connectors/nope"), 404, "Connector nope not found"),
        (client.get("/connectors/nope/status"), 404, "Connector nope not found"),
        (client.get("/connectors/nope/config"), 404, "Connector nope not found"),
        (client.get("/connectors/nope/tasks"), 404, "Connector nope not found"),
        (client.delete("/connectors/nope"), 404, "Connector nope not found"),
        (client.put_empty("/connectors/nope/stop"), 404, "Connector nope not found"),
        (client.post_empty("/connectors/nope/restart"), 404, "Connector nope not found"),
        (client.get("/no/such/path"), 404, "Not Found"),
        (client.delete("/connectors"), 405, "Method Not Allowed"),
        (client.post_empty("/connectors/nope/status"), 405, "Method Not Allowed"),
    ];
    for (answer, status, says) in &cases {
        assert_eq!(answer.status, *status, "{}", answer.body);
        assert_eq!(answer.body["error_code"], *status, "{}", answer.body);
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }

    let source = source_props("reader", &input, "t");
    assert_eq!(
        client
            .send("POST", "/connectors", &connector_body(&source))
            .status,
        201
    );
    let cases = [
        (
            client.get("/connectors/reader/tasks/7/status"),
            404,
            "Task 7 of connector reader not found",
        ),
        (
            client.get("/connectors/reader/tasks/x/status"),
            404,
            "Task x of connector reader not found",
        ),
        (
            client.post_empty("/connectors/reader/tasks/3/restart"),
            404,
            "Task 3 of connector reader not found",
        ),
        (
            client.post_empty("/connectors/reader/restart?includeTasks=maybe"),
            400,
            "includeTasks=maybe",
        ),
        (
            client.get("/connectors?expand=everything"),
            400,
            "expand=everything",
        ),
    ];
    for (answer, status, says) in &cases {
        assert_eq!(answer.status, *status, "{}", answer.body);
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
    sluice.assert_running();
    assert_eq!(client.get("/").status, 200);
    let logs = sluice.stop();
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_failed_task_shows_failed_with_its_trace_and_restarts() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let input = dir.write("input.txt", "one\ntwo\n");
    let source = dir.write_properties("source.properties", &source_props("lines-in", &input, "t"));
    let sluice = Worker::start(&dir, "failing", &worker, &[&source]);
    let client = Client::new(sluice.rest_url());
    // The sink's directory does not exist yet: its task fails when it opens the file.
    let missing = dir.path("later");
    let output = missing.join("out.txt");
    let sink = sink_props("lines-out", &output, "t");
    assert_eq!(
        client
            .send("POST", "/connectors", &connector_body(&sink))
            .status,
        201
    );
    wait_for_state(&client, &sluice, "lines-out", ("RUNNING", &["FAILED"]));
    let task = client.get("/connectors/lines-out/tasks/0/status").body;
    let trace = task["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("out.txt"),
        "the trace says what failed: {task}"
    );

    std::fs::create_dir(&missing).expect("create the directory");
    let restarted =
        client.post_empty("/connectors/lines-out/restart?includeTasks=true&onlyFailed=true");
    assert_eq!(restarted.status, 202, "{}", restarted.body);
    wait_for_state(&client, &sluice, "lines-out", ("RUNNING", &["RUNNING"]));
    wait_for_output(&output, 2, &sluice);
    let status = client.get("/connectors/lines-out/tasks/0/status").body;
    assert!(
        status.get("trace").is_none(),
        "a running task has no trace: {status}"
    );
    // The failure was restarted away: the stop is clean.
    sluice.stop();
}

#[test]
fn plugins_list_their_config_and_validate_configs_field_by_field() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let sluice = Worker::start(&dir, "plugins", &worker, &[]);
    let client = Client::new(sluice.rest_url());

    let plugins = client.get("/connector-plugins").body;
    let classes: Vec<&str> = plugins
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert!(
        classes.contains(&"org.apache.kafka.connect.file.FileStreamSourceConnector")
            && classes.contains(&"io.confluent.connect.jdbc.JdbcSinkConnector"),
        "{plugins}"
    );
    let everything = client.get("/connector-plugins?connectorsOnly=false").body;
    assert!(
        everything
            .as_array()
            .expect("a list")
            .iter()
            .any(|p| p["type"] == "transformation"),
        "transforms listed: {everything}"
    );

    let definitions = client.get("/connector-plugins/FileStreamSource/config");
    assert_eq!(definitions.status, 200);
    let file = definitions
        .body
        .as_array()
        .expect("a list")
        .iter()
        .find(|d| d["name"] == "file")
        .cloned()
        .expect("the file key is defined");
    assert_eq!(file["type"], "STRING");
    assert!(file["documentation"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(client.get("/connector-plugins/NoSuch/config").status, 404);

    let invalid = client.send(
        "PUT",
        "/connector-plugins/FileStreamSource/config/validate",
        &json!({"name": "v", "tasks.max": "zero"}).to_string(),
    );
    assert_eq!(invalid.status, 200, "{}", invalid.body);
    assert_eq!(invalid.body["error_count"], 2, "{}", invalid.body);
    let errors_of = |body: &Value, key: &str| -> Vec<String> {
        body["configs"]
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["value"]["name"] == key)
            .map(|c| {
                c["value"]["errors"]
                    .as_array()
                    .expect("errors")
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        errors_of(&invalid.body, "tasks.max").len(),
        1,
        "{}",
        invalid.body
    );
    assert_eq!(
        errors_of(&invalid.body, "topic").len(),
        1,
        "{}",
        invalid.body
    );
    assert!(errors_of(&invalid.body, "name").is_empty());
    let valid = client.send(
        "PUT",
        "/connector-plugins/org.apache.kafka.connect.file.FileStreamSourceConnector/config/validate",
        &json!({"name": "v", "connector.class": "FileStreamSource", "topic": "t"}).to_string(),
    );
    assert_eq!(valid.body["error_count"], 0, "{}", valid.body);
    assert!(valid.body["groups"]
        .as_array()
        .expect("groups")
        .contains(&json!("Common")));
    let mismatched = client.send(
        "PUT",
        "/connector-plugins/FileStreamSource/config/validate",
        &json!({"name": "v", "connector.class": "FileStreamSink"}).to_string(),
    );
    assert_eq!(mismatched.status, 400, "{}", mismatched.body);
    assert!(
        client.get("/connectors").body == json!([]),
        "validation creates nothing"
    );
    sluice.stop();
}

#[test]
fn passwords_are_hidden_in_answers_and_kept_when_sent_back_hidden() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let sluice = Worker::start(&dir, "secrets", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let db = dir.path("copy.db");
    let config = json!({
        "connector.class": "JdbcSinkConnector",
        "connection.url": format!("jdbc:sqlite:{}", db.display()),
        "connection.password": "s3cret",
        "topics": "orders",
    });
    let created = client.send(
        "POST",
        "/connectors",
        &json!({"name": "copy", "config": config, "initial_state": "STOPPED"}).to_string(),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["config"]["connection.password"], "[hidden]");
    let shown = client.get("/connectors/copy/config").body;
    assert_eq!(shown["connection.password"], "[hidden]");
    assert_eq!(
        client.get("/connectors/copy/status").body["connector"]["state"],
        "STOPPED"
    );
    // Read, change a key, write back: the password stays what it was.
    let mut changed = shown.clone();
    changed["batch.size"] = json!("10");
    let put = client.send("PUT", "/connectors/copy/config", &changed.to_string());
    assert_eq!(put.status, 200, "{}", put.body);
    let stored = std::fs::read_to_string(dir.path("offsets.json.connectors.json"))
        .expect("the stored connectors");
    assert!(stored.contains("\"s3cret\""), "{stored}");
    assert!(!stored.contains("[hidden]"), "{stored}");
    let logs = sluice.stop();
    assert!(
        !logs.contains("s3cret"),
        "the password is never logged:\n{logs}"
    );
}

#[test]
fn log_levels_change_while_the_worker_runs() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let input = dir.write("input.txt", "one\n");
    let output = dir.path("output.txt");
    let sink = dir.write_properties("sink.properties", &sink_props("out", &output, "t"));
    let source = dir.write_properties("source.properties", &source_props("in", &input, "t"));
    let sluice = Worker::start(&dir, "loggers", &worker, &[&source, &sink]);
    let client = Client::new(sluice.rest_url());
    wait_for_output(&output, 1, &sluice);
    assert_eq!(
        client.get("/admin/loggers").body,
        json!({"root": {"level": "INFO"}})
    );
    const LOGGER: &str = "sluice_core::runtime::sink_task";
    assert!(
        !sluice.logs().contains("committed sink offsets"),
        "no DEBUG lines yet"
    );

    let set = client.send(
        "PUT",
        &format!("/admin/loggers/{LOGGER}"),
        &json!({"level": "DEBUG"}).to_string(),
    );
    assert_eq!((set.status, set.body.clone()), (200, json!([LOGGER])));
    assert_eq!(
        client.get(&format!("/admin/loggers/{LOGGER}")).body,
        json!({"level": "DEBUG"})
    );
    let all = client.get("/admin/loggers").body;
    assert_eq!(all[LOGGER]["level"], "DEBUG", "{all}");
    assert!(all[LOGGER]["last_modified"].as_i64().is_some(), "{all}");
    append(&input, &["two\n".to_owned()]);
    sluice.wait_for_log("committed sink offsets");
    let logs = sluice.logs();
    assert!(
        !logs.contains("committed source offsets"),
        "other loggers stay at INFO"
    );

    let bad = client.send(
        "PUT",
        &format!("/admin/loggers/{LOGGER}"),
        &json!({"level": "LOUD"}).to_string(),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body["message"]
        .as_str()
        .unwrap_or_default()
        .contains("LOUD"));
    sluice.stop();
}

#[test]
fn a_failed_task_restarts_on_its_own_with_the_opt_in_policy() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(&offsets, None)),
    );
    let input = dir.write("input.txt", "one\ntwo\n");
    let source = dir.write_properties("source.properties", &source_props("in", &input, "t"));
    let missing = dir.path("later");
    let output = missing.join("out.txt");
    let sink = dir.write_properties(
        "sink.properties",
        &sink_props("out", &output, "t")
            .set("task.restart.policy", "on-failure")
            .set("task.restart.backoff.ms", 300)
            .set("task.restart.backoff.max.ms", 1_000),
    );
    let sluice = Worker::start(&dir, "auto-restart", &worker, &[&source, &sink]);
    let client = Client::new(sluice.rest_url());
    // Its file cannot be opened: it fails, and is restarted again and again, its restarts counted.
    wait_until(
        "three automatic restarts",
        || client.get("/connectors/out/tasks/0/status").body["restarts"].as_u64() >= Some(3),
        || sluice.report(),
    );
    let status = client.get("/connectors/out/tasks/0/status").body;
    assert!(
        ["RESTARTING", "FAILED", "RUNNING"].contains(&status["state"].as_str().unwrap_or_default()),
        "{status}"
    );
    assert!(sluice
        .logs()
        .contains("restarting the failed task after a backoff"));
    // Once it can open its file, a restart sticks and it writes what it missed.
    std::fs::create_dir(&missing).expect("create the directory");
    wait_for_output(&output, 2, &sluice);
    wait_for_state(&client, &sluice, "out", ("RUNNING", &["RUNNING"]));
    sluice.stop();
}

/// The entries of `GET /connectors/{name}/offsets`.
fn offsets_of(client: &Client, connector: &str) -> Vec<Value> {
    let answer = client.get(&format!("/connectors/{connector}/offsets"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["offsets"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no offsets array: {}", answer.body))
}

#[test]
fn offsets_are_read_changed_and_reset_over_http_while_connectors_are_stopped() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(&offsets, None)),
    );
    let sluice = Worker::start(&dir, "offsets", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 20);
    append(&input, &lines);
    let length = lines.concat().len() as u64;
    for props in [
        source_props("files-in", &input, "lines"),
        sink_props("files-out", &output, "lines"),
    ] {
        let created = client.send("POST", "/connectors", &connector_body(&props));
        assert_eq!(created.status, 201, "{}", created.body);
    }
    wait_for_output(&output, lines.len(), &sluice);

    let file = input.display().to_string();
    wait_until(
        "the source's offset at the end of its file",
        || {
            offsets_of(&client, "files-in")
                .first()
                .is_some_and(|o| o["offset"]["position"] == length)
        },
        || format!("{:?}", offsets_of(&client, "files-in")),
    );
    let source = offsets_of(&client, "files-in");
    assert_eq!(source.len(), 1, "{source:?}");
    assert_eq!(source[0]["partition"], json!({"filename": file}));
    let committed = |client: &Client| -> u64 {
        offsets_of(client, "files-out")
            .iter()
            .map(|o| o["offset"]["kafka_offset"].as_u64().unwrap_or(0))
            .sum()
    };
    wait_until(
        "the sink's group offsets past every record",
        || committed(&client) == lines.len() as u64,
        || format!("{:?}", offsets_of(&client, "files-out")),
    );
    let sink = offsets_of(&client, "files-out");
    assert!(sink
        .iter()
        .all(|o| o["partition"]["kafka_topic"] == "lines"
            && o["partition"]["kafka_partition"].is_u64()));

    let to_start =
        json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": 0}}]});
    let running = client.send(
        "PATCH",
        "/connectors/files-in/offsets",
        &to_start.to_string(),
    );
    assert_eq!(running.status, 400, "{}", running.body);
    assert!(
        running.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Connectors must be in the STOPPED state")),
        "{}",
        running.body
    );
    for name in ["files-in", "files-out"] {
        assert_eq!(
            client.put_empty(&format!("/connectors/{name}/stop")).status,
            204
        );
    }
    wait_for_state(&client, &sluice, "files-out", ("STOPPED", &[]));

    for (body, says) in [
        (json!({"offsets": 3}), "\"offsets\" must be an array"),
        (json!({"offsets": []}), "must not be empty"),
        (
            json!({"offsets": [{"offset": {"position": 0}}]}),
            "offsets[0]: the partition",
        ),
        (
            json!({"offsets": [{"partition": {"file": file}, "offset": {"position": 0}}]}),
            "has no \"filename\"",
        ),
        (
            json!({"offsets": [{"partition": {"filename": file}, "offset": {"position": -5}}]}),
            "non-negative integer \"position\"",
        ),
    ] {
        let refused = client.send("PATCH", "/connectors/files-in/offsets", &body.to_string());
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert!(
            refused.body["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{body}: {}",
            refused.body
        );
    }
    assert_eq!(
        offsets_of(&client, "files-in"),
        source,
        "refused changes change nothing"
    );

    let altered = client.send(
        "PATCH",
        "/connectors/files-in/offsets",
        &to_start.to_string(),
    );
    assert_eq!(altered.status, 200, "{}", altered.body);
    assert_eq!(
        altered.body["message"],
        "The offsets for this connector have been altered successfully"
    );
    assert_eq!(
        offsets_of(&client, "files-in")[0]["offset"],
        json!({"position": 0})
    );
    let reset = client.delete("/connectors/files-in/offsets");
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(
        reset.body["message"],
        "The offsets for this connector have been reset successfully"
    );
    assert_eq!(offsets_of(&client, "files-in"), Vec::<Value>::new());

    let rewind: Vec<Value> = sink
        .iter()
        .map(|o| json!({"partition": o["partition"], "offset": {"kafka_offset": 0}}))
        .collect();
    let rewound = client.send(
        "PATCH",
        "/connectors/files-out/offsets",
        &json!({ "offsets": rewind }).to_string(),
    );
    assert_eq!(rewound.status, 200, "{}", rewound.body);
    assert_eq!(committed(&client), 0);
    // The embedded broker (librdkafka's mock cluster) has no DeleteGroups: a sink's offsets cannot be
    // removed there, only set; the answer says so and nothing changes.
    let reset = client.delete("/connectors/files-out/offsets");
    assert_eq!(reset.status, 500, "{}", reset.body);
    assert!(
        reset.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("embedded broker does not support DeleteGroups")),
        "{}",
        reset.body
    );
    assert_eq!(committed(&client), 0);
    let bad_sink = json!({"offsets": [{"partition": {"kafka_topic": "lines"}, "offset": {"kafka_offset": 0}}]});
    let refused = client.send(
        "PATCH",
        "/connectors/files-out/offsets",
        &bad_sink.to_string(),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);

    // Started again: the source reads its file from the start, the sink its topic from offset 0.
    for name in ["files-in", "files-out"] {
        assert_eq!(
            client
                .put_empty(&format!("/connectors/{name}/resume"))
                .status,
            202
        );
    }
    wait_for_output(&output, lines.len() * 3, &sluice);
    let copied = read_lines(&output);
    assert_eq!(copied.len(), lines.len() * 3, "{copied:?}");
    for line in &lines {
        assert_eq!(copied.iter().filter(|c| *c == line).count(), 3, "{line}");
    }
    sluice.stop();
}

/// How long a paused connector is watched for data it must not move: several times what a running
/// pipeline takes to move a line on this machine.
const PAUSE_WATCH: std::time::Duration = std::time::Duration::from_secs(3);

#[test]
fn a_paused_connector_keeps_its_tasks_but_moves_no_data_until_resumed() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(&offsets, None)),
    );
    let sluice = Worker::start(&dir, "pause", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let copy = dir.path("copy.txt");
    let lines = numbered_lines(0, 30);
    append(&input, &lines[..10]);
    for props in [
        source_props("files-in", &input, "lines"),
        sink_props("files-out", &output, "lines"),
    ] {
        let created = client.send("POST", "/connectors", &connector_body(&props));
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let mut paused_copy = config_json(&sink_props("files-copy", &copy, "lines"));
    paused_copy["name"] = json!("files-copy");
    let body = json!({"name": "files-copy", "config": paused_copy, "initial_state": "PAUSED"});
    let created = client.send("POST", "/connectors", &body.to_string());
    assert_eq!(created.status, 201, "{}", created.body);
    wait_for_output(&output, 10, &sluice);
    wait_for_state(&client, &sluice, "files-copy", ("PAUSED", &["PAUSED"]));
    assert!(
        read_lines(&copy).is_empty(),
        "created paused, it copies nothing"
    );

    // The sink paused: the source goes on into Kafka, nothing reaches the file.
    assert_eq!(client.put_empty("/connectors/files-out/pause").status, 202);
    wait_for_state(&client, &sluice, "files-out", ("PAUSED", &["PAUSED"]));
    append(&input, &lines[10..20]);
    let end_of = |count: usize| lines[..count].concat().len() as u64;
    let source_at = |client: &Client| {
        offsets_of(client, "files-in")
            .first()
            .map(|o| o["offset"]["position"].clone())
    };
    wait_until(
        "the source past 20 lines",
        || source_at(&client) == Some(json!(end_of(20))),
        || sluice.report(),
    );
    std::thread::sleep(PAUSE_WATCH);
    assert_eq!(
        read_lines(&output).len(),
        10,
        "a paused sink delivers nothing"
    );
    assert_eq!(client.put_empty("/connectors/files-out/resume").status, 202);
    wait_for_output(&output, 20, &sluice);
    wait_for_state(&client, &sluice, "files-out", ("RUNNING", &["RUNNING"]));

    // The source paused: it reads nothing new until resumed.
    assert_eq!(client.put_empty("/connectors/files-in/pause").status, 202);
    wait_for_state(&client, &sluice, "files-in", ("PAUSED", &["PAUSED"]));
    append(&input, &lines[20..]);
    std::thread::sleep(PAUSE_WATCH);
    assert_eq!(
        source_at(&client),
        Some(json!(end_of(20))),
        "a paused source reads nothing"
    );
    assert_eq!(read_lines(&output).len(), 20);
    assert_eq!(client.put_empty("/connectors/files-in/resume").status, 202);
    wait_for_output(&output, 30, &sluice);
    let mut copied = read_lines(&output);
    copied.sort();
    assert_eq!(copied, lines, "every line once");

    assert_eq!(
        client.put_empty("/connectors/files-copy/resume").status,
        202
    );
    wait_for_output(&copy, 30, &sluice);
    assert_eq!(read_lines(&copy).len(), 30);

    // Paused again, it stays paused across a restart of the worker.
    assert_eq!(client.put_empty("/connectors/files-copy/pause").status, 202);
    wait_for_state(&client, &sluice, "files-copy", ("PAUSED", &["PAUSED"]));
    sluice.stop();
    let sluice = Worker::start(&dir, "pause-again", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    wait_for_state(&client, &sluice, "files-in", ("RUNNING", &["RUNNING"]));
    wait_for_state(&client, &sluice, "files-copy", ("PAUSED", &["PAUSED"]));
    sluice.stop();
}

#[test]
fn active_topics_are_tracked_reset_and_refused_as_the_worker_says() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
    let sluice = Worker::start(&dir, "topics", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    append(&input, &numbered_lines(0, 5));
    let sink = sink_props("files-out", &output, "unused")
        .remove("topics")
        .set("topics.regex", "li.*");
    for props in [source_props("files-in", &input, "lines"), sink] {
        let created = client.send("POST", "/connectors", &connector_body(&props));
        assert_eq!(created.status, 201, "{}", created.body);
    }
    wait_for_output(&output, 5, &sluice);
    for name in ["files-in", "files-out"] {
        let topics = client.get(&format!("/connectors/{name}/topics"));
        assert_eq!(topics.status, 200);
        assert_eq!(topics.body, json!({ name: {"topics": ["lines"]} }));
    }
    assert_eq!(client.get("/connectors/nope/topics").status, 404);
    assert_eq!(
        client.put_empty("/connectors/nope/topics/reset").status,
        404
    );

    let reset = client.put_empty("/connectors/files-in/topics/reset");
    assert_eq!(reset.status, 202, "{}", reset.body);
    assert_eq!(
        client.get("/connectors/files-in/topics").body,
        json!({"files-in": {"topics": []}})
    );
    assert_eq!(
        client.get("/connectors/files-out/topics").body,
        json!({"files-out": {"topics": ["lines"]}}),
        "another connector's set stays"
    );
    append(&input, &numbered_lines(5, 1));
    wait_for_output(&output, 6, &sluice);
    wait_until(
        "the source's topic tracked again",
        || {
            client.get("/connectors/files-in/topics").body
                == json!({"files-in": {"topics": ["lines"]}})
        },
        || sluice.report(),
    );
    sluice.stop();

    for (label, key, refused) in [
        (
            "no-reset",
            "topic.tracking.allow.reset",
            "Topic tracking reset is disabled.",
        ),
        (
            "no-tracking",
            "topic.tracking.enable",
            "Topic tracking is disabled.",
        ),
    ] {
        let worker = dir.write_properties(
            &format!("{label}.properties"),
            &worker_props(&offsets, None).set(key, "false"),
        );
        let sluice = Worker::start(&dir, label, &worker, &[]);
        let client = Client::new(sluice.rest_url());
        // The connectors made over REST are still there.
        let reset = client.put_empty("/connectors/files-in/topics/reset");
        assert_eq!(reset.status, 403, "{label}");
        assert_eq!(reset.body, json!({"error_code": 403, "message": refused}));
        let topics = client.get("/connectors/files-in/topics");
        match key {
            "topic.tracking.enable" => {
                assert_eq!(topics.status, 403);
                assert_eq!(topics.body["message"], json!(refused));
            }
            _ => assert_eq!(topics.status, 200),
        }
        sluice.stop();
    }
}

#[test]
fn an_exactly_once_sources_offsets_are_read_and_reset_in_the_offsets_topic() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["connect-offsets:1", "lines:1"]);
    let worker = dir.write_properties(
        "worker.properties",
        &short_sessions(worker_props(
            &dir.path("offsets.json"),
            Some(broker.bootstrap()),
        ))
        .set("exactly.once.source.support", "enabled")
        .set("offset.storage.topic", "connect-offsets"),
    );
    let sluice = Worker::start(&dir, "eos-offsets", &worker, &[]);
    let client = Client::new(sluice.rest_url());
    let input = dir.path("input.txt");
    let output = dir.path("output.txt");
    let lines = numbered_lines(0, 10);
    append(&input, &lines);
    for props in [
        source_props("files-in", &input, "lines"),
        sink_props("files-out", &output, "lines"),
    ] {
        let created = client.send("POST", "/connectors", &connector_body(&props));
        assert_eq!(created.status, 201, "{}", created.body);
    }
    wait_for_output(&output, 10, &sluice);
    let end = json!(lines.concat().len());
    assert_eq!(client.put_empty("/connectors/files-in/stop").status, 204);
    wait_for_state(&client, &sluice, "files-in", ("STOPPED", &[]));
    let read = offsets_of(&client, "files-in");
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0]["offset"]["position"], end, "{read:?}");

    let reset = client.delete("/connectors/files-in/offsets");
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert!(offsets_of(&client, "files-in").is_empty());
    assert_eq!(client.put_empty("/connectors/files-in/resume").status, 202);
    wait_for_output(&output, 20, &sluice);
    let copied = read_lines(&output);
    for line in &lines {
        assert_eq!(copied.iter().filter(|c| *c == line).count(), 2, "{line}");
    }
    wait_until(
        "the source's offset back at the end of its file",
        || {
            offsets_of(&client, "files-in")
                .first()
                .map(|o| o["offset"]["position"].clone())
                == Some(end.clone())
        },
        || sluice.report(),
    );
    sluice.stop();
}
