//! The REST API's security over a real listener: TLS (`https://` listeners with Kafka's PEM keys,
//! client certificates required), basic authentication as Kafka's
//! `BasicAuthSecurityRestExtension` (its JAAS file and credentials file), a 401 with Kafka Connect's
//! body for every request without valid credentials; config providers filling in `${...}` references
//! that operators read back as written; and a worker that refuses to start when its security settings
//! cannot be honoured.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::{run_to_exit, source_props, worker_props, Dir, Worker};
use serde_json::{json, Value};

/// A status, a header and the JSON body of a request sent with `authorization` (if any).
fn call(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    let request = match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    };
    let mut response = agent
        .run(
            request
                .body(body.unwrap_or_default().to_owned())
                .expect("a request"),
        )
        .expect("the worker answers");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[test]
fn basic_authentication_lets_in_only_known_users_with_their_passwords() {
    let dir = Dir::new();
    let users = dir.write(
        "users.properties",
        "# who may manage connectors\nadmin: s3cret\noperator=other-pass\n",
    );
    let jaas = dir.write(
        "connect.jaas",
        format!(
            "KafkaConnect {{\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n  file=\"{}\";\n}};\n",
            users.display()
        ),
    );
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None)
            .set(
                "rest.extension.classes",
                "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension",
            )
            .set("java.security.auth.login.config", jaas.display()),
    );
    let sluice = Worker::start(&dir, "basic-auth", &worker, &[]);
    let base = sluice.rest_url();
    let connectors = format!("{base}/connectors");
    let refused = json!({"error_code": 401, "message": "User cannot access the resource."});

    for authorization in [
        None,
        Some(basic("admin", "wrong")),
        Some(basic("nobody", "s3cret")),
        Some("Basic not-base64!".to_owned()),
        Some("Bearer abc".to_owned()),
    ] {
        let (status, challenge, body) = call("GET", &connectors, authorization.as_deref(), None);
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(body, refused, "{authorization:?}");
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"KafkaConnect\""));
    }
    for path in ["/", "/metrics", "/connector-plugins", "/no-such-path"] {
        let (status, _, _) = call("GET", &format!("{base}{path}"), None, None);
        assert_eq!(status, 401, "{path} without credentials");
    }
    let input = dir.write("input.txt", "");
    let create = source_props("files-in", &input, "lines").to_rest_json();
    let (status, _, _) = call("POST", &connectors, None, Some(&create));
    assert_eq!(status, 401, "nothing is created without credentials");

    let admin = basic("admin", "s3cret");
    let (status, _, body) = call("GET", &connectors, Some(&admin), None);
    assert_eq!((status, body), (200, json!([])));
    let (status, _, body) = call("POST", &connectors, Some(&admin), Some(&create));
    assert_eq!(status, 201, "{body}");
    let operator = basic("operator", "other-pass");
    let (status, _, body) = call("GET", &connectors, Some(&operator), None);
    assert_eq!((status, body), (200, json!(["files-in"])));
    let logs = sluice.stop();
    assert!(!logs.contains("s3cret"), "a password in the log:\n{logs}");
}

#[test]
fn a_worker_whose_rest_security_cannot_be_set_up_does_not_start() {
    let dir = Dir::new();
    let offsets = dir.path("offsets.json");
    let empty_users = dir.write("users.properties", "# nobody yet\n");
    let other_jaas = dir.write("other.jaas", "KafkaServer { SomeModule required; };\n");
    for (label, props, expected) in [
        (
            "unknown extension",
            worker_props(&offsets, None)
                .set("rest.extension.classes", "com.example.AuditExtension"),
            "\"com.example.AuditExtension\" is a Java REST extension",
        ),
        (
            "no credentials",
            worker_props(&offsets, None)
                .set("rest.extension.classes", "BasicAuthSecurityRestExtension"),
            "no credentials file is given",
        ),
        (
            "no KafkaConnect entry",
            worker_props(&offsets, None)
                .set("rest.extension.classes", "BasicAuthSecurityRestExtension")
                .set("java.security.auth.login.config", other_jaas.display()),
            "the JAAS file has no KafkaConnect entry",
        ),
        (
            "no users",
            worker_props(&offsets, None)
                .set("rest.extension.classes", "BasicAuthSecurityRestExtension")
                .set("rest.basic.auth.credentials.file", empty_users.display()),
            "the credentials file names no user",
        ),
        (
            "a provider without its class",
            worker_props(&offsets, None).set("config.providers", "vault"),
            "config.providers.vault.class: missing",
        ),
        (
            "a worker key whose reference cannot be resolved",
            worker_props(&offsets, None)
                .set("config.providers", "env")
                .set(
                    "config.providers.env.class",
                    "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                )
                .set(
                    "offset.flush.interval.ms",
                    "${env:SLUICE_TEST_SURELY_UNSET}",
                ),
            "offset.flush.interval.ms: ${env:SLUICE_TEST_SURELY_UNSET}: the environment variable",
        ),
        (
            "an https listener without a certificate",
            worker_props(&offsets, None).set("listeners", "https://127.0.0.1:0"),
            "an https listener needs a certificate and its key",
        ),
        (
            "a JKS keystore",
            worker_props(&offsets, None)
                .set("listeners", "https://127.0.0.1:0")
                .set("listeners.https.ssl.keystore.type", "JKS")
                .set("listeners.https.ssl.keystore.location", "/etc/connect.jks"),
            "listeners.https.ssl.keystore.type=JKS: Sluice reads PEM keystores and truststores only",
        ),
        (
            "client certificates without a truststore",
            worker_props(&offsets, None)
                .set("listeners", "https://127.0.0.1:0")
                .set(
                    "listeners.https.ssl.keystore.location",
                    tls_fixture("server-keystore.pem").display(),
                )
                .set("listeners.https.ssl.client.auth", "required"),
            "listeners.https.ssl.truststore.location: client authentication needs the CAs",
        ),
        (
            "missing credentials file",
            worker_props(&offsets, None)
                .set("rest.extension.classes", "BasicAuthSecurityRestExtension")
                .set(
                    "rest.basic.auth.credentials.file",
                    dir.path("missing.properties").display(),
                ),
            "missing.properties",
        ),
    ] {
        let worker = dir.write_properties("worker.properties", &props);
        let exit = run_to_exit(&dir, &[Path::new("standalone"), &worker]);
        assert_eq!(exit.status.code(), Some(1), "{label}: {}", exit.stderr);
        assert!(
            exit.stderr.contains("worker.properties") && exit.stderr.contains(expected),
            "{label}: {}",
            exit.stderr
        );
    }
}

#[test]
fn config_providers_fill_in_references_that_operators_read_back_as_written() {
    let dir = Dir::new();
    let input = dir.write("input.txt", "first\nsecond\n");
    let output = dir.path("output.txt");
    let secrets = dir.write(
        "secrets.properties",
        "listeners=http://127.0.0.1:0\ntopic=lines\n",
    );
    let paths = dir.path("paths");
    std::fs::create_dir_all(&paths).expect("a directory");
    std::fs::write(paths.join("input"), input.display().to_string()).expect("a file");
    // The worker inherits the test's environment.
    std::env::set_var("SLUICE_TEST_OUTPUT_FILE", output.display().to_string());
    let worker = dir.write_properties(
        "worker.properties",
        &worker_props(&dir.path("offsets.json"), None)
            .set("config.providers", "file,env,directory")
            .set(
                "config.providers.file.class",
                "org.apache.kafka.common.config.provider.FileConfigProvider",
            )
            .set(
                "config.providers.env.class",
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            )
            .set(
                "config.providers.env.param.allowlist.pattern",
                "SLUICE_TEST_.*",
            )
            .set(
                "config.providers.directory.class",
                "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
            )
            .set(
                "config.providers.directory.param.allowed.paths",
                dir.path("").display(),
            )
            .set(
                "listeners",
                format!("${{file:{}:listeners}}", secrets.display()),
            ),
    );
    let sluice = Worker::start(&dir, "providers", &worker, &[]);
    let base = sluice.rest_url();
    let topic = format!("${{file:{}:topic}}", secrets.display());
    let file = format!("${{directory:{}:input}}", paths.display());
    let source = source_props("files-in", Path::new("unused"), "unused")
        .set("file", &file)
        .set("topic", &topic);
    let sink = common::sink_props("files-out", Path::new("unused"), "unused")
        .set("file", "${env:SLUICE_TEST_OUTPUT_FILE}")
        .set("topics", &topic);
    for props in [&source, &sink] {
        let (status, _, body) = call(
            "POST",
            &format!("{base}/connectors"),
            None,
            Some(&props.to_rest_json()),
        );
        assert_eq!(status, 201, "{body}");
    }
    common::wait_for_lines(&output, 2, &[&sluice]);
    let mut copied = common::read_lines(&output);
    copied.sort();
    assert_eq!(copied, ["first\n", "second\n"]);

    let (_, _, config) = call(
        "GET",
        &format!("{base}/connectors/files-in/config"),
        None,
        None,
    );
    assert_eq!(config["file"], json!(file), "the config as written");
    let (_, _, tasks) = call(
        "GET",
        &format!("{base}/connectors/files-in/tasks"),
        None,
        None,
    );
    assert_eq!(tasks[0]["config"]["file"], json!(file), "{tasks}");
    assert_eq!(tasks[0]["config"]["topic"], json!(topic), "{tasks}");

    let unresolvable = source_props("bad", Path::new("unused"), "lines")
        .set("file", "${env:SLUICE_TEST_SURELY_UNSET}")
        .set("topic", "${env:HOME}");
    let (status, _, body) = call(
        "POST",
        &format!("{base}/connectors"),
        None,
        Some(&unresolvable.to_rest_json()),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("file: ${env:SLUICE_TEST_SURELY_UNSET}: the environment variable SLUICE_TEST_SURELY_UNSET is not set")
            && message.contains("topic: ${env:HOME}: HOME is not in the provider's allowlist.pattern"),
        "{message}"
    );
    sluice.stop();
}

/// A file of `fixtures/tls` (made by its `make.sh`).
fn tls_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

/// A client that trusts the test CA and presents `client` (certificate and key files), if given.
fn tls_client(client: Option<(&str, &str)>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let read = |name: &str| std::fs::read(tls_fixture(name)).expect("a fixture");
    let ca = Certificate::from_pem(&read("ca.pem")).expect("the CA");
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
    if let Some((cert, key)) = client {
        let cert = Certificate::from_pem(&read(cert)).expect("a certificate");
        let key = PrivateKey::from_pem(&read(key)).expect("a key");
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[cert], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .build()
        .into()
}

fn https_worker(dir: &Dir, label: &str, extra: &[(&str, String)]) -> Worker {
    let mut props = worker_props(&dir.path("offsets.json"), None)
        .set("listeners", "https://127.0.0.1:0")
        .set("listeners.https.ssl.keystore.type", "PEM");
    for (key, value) in extra {
        props = props.set(key, value);
    }
    let worker = dir.write_properties(&format!("{label}.properties"), &props);
    Worker::start(dir, label, &worker, &[])
}

#[test]
fn an_https_listener_serves_the_api_over_tls_and_can_require_client_certificates() {
    let dir = Dir::new();
    let keystore = tls_fixture("server-keystore.pem").display().to_string();
    let sluice = https_worker(
        &dir,
        "https",
        &[("listeners.https.ssl.keystore.location", keystore)],
    );
    let base = sluice.rest_url_of("https");
    let mut answer = tls_client(None)
        .get(format!("{base}/connectors"))
        .call()
        .expect("an answer over TLS");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.body_mut().read_to_string().unwrap(), "[]");
    let untrusting = ureq::get(format!("{base}/connectors")).call();
    assert!(
        untrusting.is_err(),
        "a client that does not trust the CA gets no answer"
    );
    let plain = ureq::get(base.replace("https://", "http://") + "/connectors").call();
    assert!(plain.is_err(), "plain HTTP gets no answer from a TLS port");
    sluice.stop();

    // Client certificates required, the certificate and key inline as Kafka's PEM keys.
    let read = |name: &str| std::fs::read_to_string(tls_fixture(name)).expect("a fixture");
    let sluice = https_worker(
        &dir,
        "mutual-tls",
        &[
            // As a `.properties` value continued over lines gives them: the lines joined.
            (
                "listeners.https.ssl.keystore.key",
                read("server.key").replace('\n', " "),
            ),
            (
                "listeners.https.ssl.keystore.certificate.chain",
                read("server.crt").replace('\n', " "),
            ),
            ("listeners.https.ssl.client.auth", "required".into()),
            (
                "listeners.https.ssl.truststore.location",
                tls_fixture("ca.pem").display().to_string(),
            ),
        ],
    );
    let base = sluice.rest_url_of("https");
    let connectors = format!("{base}/connectors");
    let signed = tls_client(Some(("client.crt", "client.key")))
        .get(&connectors)
        .call()
        .expect("a client with a certificate the CA signed is answered");
    assert_eq!(signed.status().as_u16(), 200);
    assert!(
        tls_client(None).get(&connectors).call().is_err(),
        "a client without a certificate gets no answer"
    );
    assert!(
        tls_client(Some(("stranger.crt", "stranger.key")))
            .get(&connectors)
            .call()
            .is_err(),
        "a client whose certificate the CA did not sign gets no answer"
    );
    sluice.stop();
}
