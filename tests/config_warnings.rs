//! A worker or connector file with a key nothing declares starts (Kafka Connect only warns too), but says
//! so at start, naming the key it most likely misspells: a misspelled key otherwise silently falls back
//! to its default (`bootstrap.server` ran the worker on the embedded broker, committing offsets there).

mod common;

use common::{source_props, worker_props, Dir, Worker};

#[test]
fn misspelled_worker_and_connector_keys_are_reported_with_the_key_they_misspell() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&offsets, None)
            .set("bootstrap.server", "127.0.0.1:1")
            .set("plugin.path", "/usr/share/java"),
    );
    let input = dir.write("input.txt", "one\ntwo\n");
    let source = dir.write_properties(
        "source.properties",
        &source_props("typo-source", &input, "typos").set("batch.sise", "5"),
    );
    let mut sluice = Worker::start(&dir, "typos", &worker, &[&source]);
    sluice.wait_for_log(
        r#"the configuration "bootstrap.server" was supplied but isn't a known config (did you mean "bootstrap.servers"?)"#,
    );
    sluice.wait_for_log(
        r#"the configuration "batch.sise" was supplied but isn't a known config (did you mean "batch.size"?)"#,
    );
    sluice.assert_running();
    let logs = sluice.logs();
    assert!(
        !logs.contains("plugin.path"),
        "a Kafka Connect key Sluice has no use for is not a typo:\n{logs}"
    );
}
