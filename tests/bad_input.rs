//! Bad configuration makes `sluice standalone` exit non-zero at once, without a panic, with an `error:`
//! line naming the key or file at fault, and without writing an offset file or a sink file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{run_to_exit, sink_props, source_props, worker_props, Dir, Props};

/// A scratch directory with a valid worker file (embedded broker) and the paths a run could write.
struct Setup {
    dir: Dir,
    worker: PathBuf,
    offsets: PathBuf,
    input: PathBuf,
    output: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = Dir::new();
        let offsets = dir.path("offsets.json");
        let worker = dir.write_properties("worker.properties", &worker_props(&offsets, None));
        let input = dir.write("input.txt", "one\ntwo\n");
        let output = dir.path("output.txt");
        Setup {
            dir,
            worker,
            offsets,
            input,
            output,
        }
    }

    fn source(&self) -> Props {
        source_props("bad-source", &self.input, "bad")
    }

    fn sink(&self) -> Props {
        sink_props("bad-sink", &self.output, "bad")
    }

    fn properties(&self, name: &str, props: &Props) -> PathBuf {
        self.dir.write_properties(name, props)
    }

    /// Runs `sluice standalone WORKER CONNECTORS...`, expecting a clean failure whose message contains
    /// every one of `mentions`; returns the stderr.
    fn fails(&self, worker: &Path, connectors: &[&Path], mentions: &[&str]) -> String {
        let mut args = vec![Path::new("standalone"), worker];
        args.extend_from_slice(connectors);
        let exit = run_to_exit(&self.dir, &args);
        let stderr = exit.stderr;
        assert!(
            !exit.status.success(),
            "sluice should fail on bad input but exited with {}; stderr:\n{stderr}",
            exit.status
        );
        assert_eq!(
            exit.status.code(),
            Some(1),
            "sluice should exit with status 1, not be killed; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "sluice panicked:\n{stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no `error:` line on stderr:\n{stderr}"));
        for mention in mentions {
            assert!(
                error.contains(mention),
                "the error should mention {mention:?}: {error}"
            );
        }
        stderr
    }

    /// Nothing was written: no offset file, no sink file.
    fn assert_no_state(&self) {
        assert!(
            !self.offsets.exists(),
            "a failed start must not create the offset file"
        );
        assert!(
            !self.output.exists(),
            "a failed start must not create the sink's file"
        );
    }
}

#[test]
fn source_without_topic_names_the_key() {
    let setup = Setup::new();
    let source = setup.properties("source.properties", &setup.source().remove("topic"));
    setup.fails(&setup.worker, &[&source], &["topic:", "source.properties"]);
    setup.assert_no_state();
}

#[test]
fn unknown_connector_class_is_named() {
    let setup = Setup::new();
    let sink = setup.properties(
        "sink.properties",
        &setup
            .sink()
            .set("connector.class", "com.example.NoSuchConnector"),
    );
    setup.fails(&setup.worker, &[&sink], &["com.example.NoSuchConnector"]);
    setup.assert_no_state();
}

#[test]
fn unknown_transform_class_is_named_with_the_known_ones() {
    let setup = Setup::new();
    let sink = setup.properties(
        "sink.properties",
        &setup
            .sink()
            .set("transforms", "shout")
            .set("transforms.shout.type", "com.example.Uppercase"),
    );
    setup.fails(
        &setup.worker,
        &[&sink],
        &[
            "transforms.shout.type",
            "com.example.Uppercase",
            "InsertField$Value",
            "RegexRouter",
        ],
    );
    setup.assert_no_state();
}

#[test]
fn a_transform_without_its_required_key_and_an_undeclared_predicate_are_named() {
    let setup = Setup::new();
    let source = setup.properties(
        "source.properties",
        &setup
            .source()
            .set("transforms", "route")
            .set(
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            )
            .set("transforms.route.regex", "(.*)")
            .set("transforms.route.predicate", "isTest"),
    );
    setup.fails(
        &setup.worker,
        &[&source],
        &[
            "transforms.route.replacement",
            "transforms.route.predicate",
            "isTest",
        ],
    );
    setup.assert_no_state();
}

#[test]
fn non_numeric_tasks_max_names_the_key() {
    let setup = Setup::new();
    let sink = setup.properties("sink.properties", &setup.sink().set("tasks.max", "abc"));
    setup.fails(&setup.worker, &[&sink], &["tasks.max", "abc"]);
    setup.assert_no_state();
}

#[test]
fn one_bad_connector_starts_none_and_writes_nothing() {
    let setup = Setup::new();
    let source = setup.properties("source.properties", &setup.source());
    let sink = setup.properties("sink.properties", &setup.sink().set("tasks.max", "abc"));
    setup.fails(&setup.worker, &[&source, &sink], &["tasks.max"]);
    setup.assert_no_state();
}

#[test]
fn missing_worker_file_is_named() {
    let setup = Setup::new();
    let sink = setup.properties("sink.properties", &setup.sink());
    let missing = setup.dir.path("no-such-worker.properties");
    setup.fails(&missing, &[&sink], &[&missing.display().to_string()]);
    setup.assert_no_state();
}

#[test]
fn unreadable_worker_file_is_named() {
    let setup = Setup::new();
    let sink = setup.properties("sink.properties", &setup.sink());
    // A directory cannot be read as a file, even by root (tests may run as root, which ignores modes).
    let unreadable = setup.dir.path("worker.d");
    fs::create_dir(&unreadable).unwrap();
    setup.fails(&unreadable, &[&sink], &[&unreadable.display().to_string()]);
    setup.assert_no_state();
}

#[test]
fn worker_without_offset_file_names_the_key() {
    let setup = Setup::new();
    let worker = setup.properties(
        "no-offsets.properties",
        &worker_props(&setup.offsets, None).remove("offset.storage.file.filename"),
    );
    let sink = setup.properties("sink.properties", &setup.sink());
    setup.fails(
        &worker,
        &[&sink],
        &["offset.storage.file.filename", "no-offsets.properties"],
    );
    setup.assert_no_state();
}

#[test]
fn missing_connector_file_is_named() {
    let setup = Setup::new();
    let missing = setup.dir.path("no-such-connector.properties");
    setup.fails(
        &setup.worker,
        &[&missing],
        &[&missing.display().to_string()],
    );
    setup.assert_no_state();
}

#[test]
fn malformed_json_connector_file_is_named() {
    let setup = Setup::new();
    let json = setup.dir.write(
        "sink.json",
        r#"{"name": "bad-sink", "config": {"topics": "bad",}"#,
    );
    setup.fails(
        &setup.worker,
        &[&json],
        &[&json.display().to_string(), "JSON"],
    );
    setup.assert_no_state();
}

#[test]
fn corrupt_offset_file_is_named_and_left_unchanged() {
    let setup = Setup::new();
    let corrupt = b"{\"version\":1,\"checksum\":\"0000\",\"offsets\":[\n{\"key\":[\"bad-source\"";
    fs::write(&setup.offsets, corrupt).unwrap();
    let source = setup.properties("source.properties", &setup.source());
    let sink = setup.properties("sink.properties", &setup.sink());
    setup.fails(
        &setup.worker,
        &[&source, &sink],
        &[&setup.offsets.display().to_string(), "corrupt"],
    );
    assert_eq!(
        fs::read(&setup.offsets).unwrap(),
        corrupt,
        "the corrupt offset file must be left as it was"
    );
    assert!(
        !setup.output.exists(),
        "a failed start must not create the sink's file"
    );
}

#[test]
fn offset_file_with_a_wrong_checksum_is_refused() {
    let setup = Setup::new();
    let tampered = "{\"version\":1,\"checksum\":\"0000000000000000\",\"offsets\":[\n\
                    {\"key\":[\"bad-source\",{\"filename\":\"x\"}],\"value\":{\"position\":5}}\n]}";
    fs::write(&setup.offsets, tampered).unwrap();
    let source = setup.properties("source.properties", &setup.source());
    setup.fails(
        &setup.worker,
        &[&source],
        &[&setup.offsets.display().to_string()],
    );
    assert_eq!(
        fs::read_to_string(&setup.offsets).unwrap(),
        tampered,
        "the offset file must be left as it was"
    );
}

#[test]
fn empty_bootstrap_servers_is_an_error_not_the_embedded_broker() {
    let setup = Setup::new();
    let worker = setup.properties(
        "worker.properties",
        &worker_props(&setup.offsets, None).set("bootstrap.servers", ""),
    );
    let source = setup.properties("source.properties", &setup.source());
    setup.fails(
        &worker,
        &[&source],
        &["bootstrap.servers", "empty", "worker.properties"],
    );
    setup.assert_no_state();
}
