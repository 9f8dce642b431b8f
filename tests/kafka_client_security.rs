//! Kafka client security keys reach librdkafka, built with TLS (OpenSSL) and SASL (PLAIN, SCRAM and
//! OAUTHBEARER built in; GSSAPI with the `kerberos` feature, through Cyrus SASL). The embedded broker speaks neither TLS nor SASL, so
//! each case is shown by the step where the client and the broker part: a TLS handshake, a SCRAM
//! handshake the broker does not support, Kerberos' kinit run before a GSSAPI login. A librdkafka built
//! without them refuses these keys when the client is created instead.

mod common;

use common::{source_props, worker_props, Broker, Dir, Worker};

/// Starts a worker with `security` keys against the broker, and waits until its log shows `reached`.
fn reaches(dir: &Dir, broker: &Broker, label: &str, security: &[(&str, String)], reached: &str) {
    let input = dir.write("input.txt", "a line\n");
    let mut props = worker_props(&dir.path("offsets.json"), Some(broker.bootstrap()));
    for (key, value) in security {
        props = props.set(key, value);
    }
    let worker = dir.write_properties(&format!("{label}.properties"), &props);
    let source = dir.write_properties("source.properties", &source_props("in", &input, "lines"));
    let sluice = Worker::start(dir, label, &worker, &[&source]);
    sluice.wait_for_log(reached);
    let logs = sluice.stop();
    for refusal in [
        "not available at build time",
        "No provider for SASL mechanism",
    ] {
        assert!(!logs.contains(refusal), "{label}: {logs}");
    }
}

#[test]
fn tls_and_sasl_keys_reach_a_librdkafka_built_with_them() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["lines"]);
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem").to_owned();
    reaches(
        &dir,
        &broker,
        "ssl",
        &[("security.protocol", "SSL".into()), ("ssl.ca.location", ca)],
        "in state SSL_HANDSHAKE",
    );
    reaches(
        &dir,
        &broker,
        "scram",
        &[
            ("security.protocol", "SASL_PLAINTEXT".into()),
            ("sasl.mechanism", "SCRAM-SHA-512".into()),
            ("sasl.username", "connect".into()),
            ("sasl.password", "connect-secret".into()),
        ],
        "SASL Handshake not supported by broker (required by mechanism SCRAM-SHA-512)",
    );
}

/// Kerberos logins need the `kerberos` feature (librdkafka built with Cyrus SASL):
/// `cargo test --release --features kerberos --test kafka_client_security`.
#[cfg(feature = "kerberos")]
#[test]
fn gssapi_keys_reach_a_librdkafka_built_with_cyrus_sasl() {
    let dir = Dir::new();
    let broker = Broker::start(&dir, &["lines"]);
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/ca.pem").to_owned();
    let kinit = dir.path("kinit-ran");
    reaches(
        &dir,
        &broker,
        "gssapi",
        &[
            ("security.protocol", "SASL_SSL".into()),
            ("ssl.ca.location", ca),
            ("sasl.mechanism", "GSSAPI".into()),
            ("sasl.kerberos.service.name", "kafka".into()),
            ("sasl.kerberos.principal", "connect@EXAMPLE.COM".into()),
            (
                "sasl.kerberos.keytab",
                dir.path("connect.keytab").display().to_string(),
            ),
            (
                "sasl.kerberos.kinit.cmd",
                format!("touch {}", kinit.display()),
            ),
        ],
        "in state SSL_HANDSHAKE",
    );
    assert!(kinit.exists(), "librdkafka ran kinit for the GSSAPI login");
}
