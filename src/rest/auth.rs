//! HTTP basic authentication of the REST API, as Kafka's `BasicAuthSecurityRestExtension`: turned on by
//! naming it in `rest.extension.classes`, with the users and passwords of a properties file
//! (`user=password` or `user: password` per line). Kafka finds that file through JAAS: the
//! `KafkaConnect` entry of the file `-Djava.security.auth.login.config=PATH` names (in `KAFKA_OPTS`),
//! `org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required file="...";`.
//! Sluice reads the same JAAS file (from `KAFKA_OPTS`, or the worker key
//! `java.security.auth.login.config`), or the credentials file named by its own key
//! `rest.basic.auth.credentials.file`.
//!
//! Every request must then carry `Authorization: Basic ...` with a known user and its password; any
//! other gets 401 with Kafka Connect's message and a `WWW-Authenticate` challenge. The file is read
//! once, at start: a worker that cannot read it does not start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sluice_core::config::{load_properties_file, ConfigFileError, ConfigMap};

use super::error::ApiError;

/// The worker key naming Kafka Connect REST extensions.
pub const REST_EXTENSIONS: &str = "rest.extension.classes";
/// Sluice's own key: the credentials file, without a JAAS file.
pub const CREDENTIALS_FILE: &str = "rest.basic.auth.credentials.file";
/// The JAAS file, as a worker key (Kafka takes it as a JVM system property).
pub const JAAS_CONFIG: &str = "java.security.auth.login.config";

const BASIC_AUTH_EXTENSION: &str =
    "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension";
const LOGIN_MODULE: &str = "PropertyFileLoginModule";

/// Kafka Connect's answer to a request without valid credentials.
const UNAUTHORIZED: &str = "User cannot access the resource.";

/// Why basic authentication cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{REST_EXTENSIONS}: {0:?} is a Java REST extension; Sluice has only {BASIC_AUTH_EXTENSION} built in")]
    UnknownExtension(String),
    #[error("{REST_EXTENSIONS} names BasicAuthSecurityRestExtension but no credentials file is given: set {CREDENTIALS_FILE}, or point {JAAS_CONFIG} (the worker key, or -Djava.security.auth.login.config in KAFKA_OPTS) at a JAAS file with a KafkaConnect entry")]
    NoCredentials,
    #[error("{path}: cannot read the JAAS file: {source}")]
    JaasUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the JAAS file has no KafkaConnect entry with {LOGIN_MODULE} and its file=\"...\" option")]
    NoLoginModule { path: PathBuf },
    #[error("the credentials file: {0}")]
    Credentials(#[from] ConfigFileError),
    #[error("{0}: the credentials file names no user")]
    NoUsers(PathBuf),
}

/// The users allowed in, with their passwords.
#[derive(Debug)]
pub struct Credentials {
    users: BTreeMap<String, String>,
}

impl Credentials {
    /// The credentials basic authentication checks, when the worker's keys turn it on: `None` when they
    /// do not. `kafka_opts` is the `KAFKA_OPTS` environment variable, where Kafka's scripts take JVM
    /// options.
    pub fn from_worker(
        worker: &ConfigMap,
        kafka_opts: Option<&str>,
    ) -> Result<Option<Credentials>, AuthError> {
        let extensions: Vec<&str> = worker
            .get(REST_EXTENSIONS)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(unknown) = extensions
            .iter()
            .find(|c| **c != BASIC_AUTH_EXTENSION && **c != "BasicAuthSecurityRestExtension")
        {
            return Err(AuthError::UnknownExtension((*unknown).to_owned()));
        }
        if extensions.is_empty() {
            return Ok(None);
        }
        let file = match worker.get(CREDENTIALS_FILE) {
            Some(file) => PathBuf::from(file),
            None => {
                let jaas = worker
                    .get(JAAS_CONFIG)
                    .map(PathBuf::from)
                    .or_else(|| kafka_opts.and_then(jaas_from_opts))
                    .ok_or(AuthError::NoCredentials)?;
                credentials_in_jaas(&jaas)?
            }
        };
        let users: BTreeMap<String, String> = load_properties_file(&file)?.into_iter().collect();
        if users.is_empty() {
            return Err(AuthError::NoUsers(file));
        }
        Ok(Some(Credentials { users }))
    }

    /// Whether the request's `Authorization` header names a user with its password.
    fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(encoded) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|known| same(known.as_bytes(), password.as_bytes()))
    }
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The JAAS file a `-Djava.security.auth.login.config=PATH` option names.
fn jaas_from_opts(opts: &str) -> Option<PathBuf> {
    opts.split_whitespace()
        .find_map(|opt| opt.strip_prefix("-Djava.security.auth.login.config="))
        .map(|path| PathBuf::from(path.trim_matches('"')))
}

/// The `file` option of the `PropertyFileLoginModule` in the JAAS file's `KafkaConnect` entry.
fn credentials_in_jaas(path: &Path) -> Result<PathBuf, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::JaasUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let missing = || AuthError::NoLoginModule {
        path: path.to_owned(),
    };
    let entry = text
        .find("KafkaConnect")
        .map(|at| &text[at..])
        .and_then(|rest| Some(&rest[..rest.find("};")?]))
        .ok_or_else(missing)?;
    let module = entry.find(LOGIN_MODULE).ok_or_else(missing)?;
    let options = &entry[module..];
    let file = options.find("file=").ok_or_else(missing)?;
    let value = options[file + "file=".len()..].trim_start();
    let value = value.strip_prefix('"').ok_or_else(missing)?;
    let end = value.find('"').ok_or_else(missing)?;
    Ok(PathBuf::from(&value[..end]))
}

/// Lets a request through only with valid credentials.
pub async fn require(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    if credentials.allow(request.headers()) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"KafkaConnect\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        headers
    }

    #[test]
    fn only_a_known_user_with_its_password_is_allowed() {
        let credentials = Credentials {
            users: BTreeMap::from([("admin".into(), "s3cret:too".into())]),
        };
        assert!(credentials.allow(&header("admin", "s3cret:too")));
        assert!(!credentials.allow(&header("admin", "s3cret")));
        assert!(!credentials.allow(&header("other", "s3cret:too")));
        assert!(!credentials.allow(&HeaderMap::new()));
        let mut garbage = HeaderMap::new();
        garbage.insert(AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(!credentials.allow(&garbage));
    }

    #[test]
    fn the_jaas_file_is_found_in_kafka_opts_and_names_the_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let jaas = dir.path().join("connect.jaas");
        std::fs::write(
            &jaas,
            "KafkaServer { x required; };\nKafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n  file=\"/etc/connect/users.properties\";\n};\n",
        )
        .unwrap();
        let opts = format!(
            "-Xmx1g -Djava.security.auth.login.config={}",
            jaas.display()
        );
        assert_eq!(jaas_from_opts(&opts), Some(jaas.clone()));
        assert_eq!(
            credentials_in_jaas(&jaas).unwrap(),
            PathBuf::from("/etc/connect/users.properties")
        );
        std::fs::write(&jaas, "KafkaConnect { SomeOtherModule required; };").unwrap();
        assert!(matches!(
            credentials_in_jaas(&jaas),
            Err(AuthError::NoLoginModule { .. })
        ));
    }
}
