//! `/admin/loggers`: the log levels of a running worker, read and changed without a restart, as Kafka
//! Connect's (KIP-495). A logger is a target prefix of Sluice's log lines (`sluice_core::runtime::sink_task`,
//! `sluice_connectors::jdbc`) or `root`, the level of everything else; levels are Kafka's (TRACE, DEBUG,
//! INFO, WARN, ERROR, FATAL as ERROR, OFF).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing_subscriber::{reload, EnvFilter, Registry};

use super::error::{ApiError, Body};
use super::{Api, Reply};

/// The worker's log filter, and the levels set over the API.
#[derive(Clone)]
pub struct Loggers {
    handle: reload::Handle<EnvFilter, Registry>,
    state: Arc<Mutex<LoggerLevels>>,
}

struct LoggerLevels {
    /// The filter the worker started with (`SLUICE_LOG`, or its default), for `root`.
    base: String,
    /// Levels set over the API, by logger, with when (ms since the epoch).
    set: BTreeMap<String, (String, i64)>,
}

impl Loggers {
    /// The loggers of a filter installed with `handle`, which started as `base`.
    pub fn new(handle: reload::Handle<EnvFilter, Registry>, base: String) -> Loggers {
        Loggers {
            handle,
            state: Arc::new(Mutex::new(LoggerLevels {
                base,
                set: BTreeMap::new(),
            })),
        }
    }

    fn levels(&self) -> std::sync::MutexGuard<'_, LoggerLevels> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every logger with a level: `root` and those set over the API.
    fn all(&self) -> Value {
        let levels = self.levels();
        let mut all = serde_json::Map::new();
        all.insert("root".into(), json!({"level": root_level(&levels)}));
        for (name, (level, at)) in &levels.set {
            if name != "root" {
                all.insert(name.clone(), json!({"level": level, "last_modified": at}));
            }
        }
        Value::Object(all)
    }

    /// Sets `logger` to `level` and applies the filter; the loggers it changed.
    fn set(&self, logger: &str, level: &str) -> Result<Vec<String>, ApiError> {
        directive_level(level)?;
        let mut levels = self.levels();
        let now = epoch_millis();
        levels
            .set
            .insert(logger.to_owned(), (level.to_ascii_uppercase(), now));
        let filter = filter_of(&levels);
        self.handle
            .reload(filter)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(vec![logger.to_owned()])
    }
}

/// The level `root` stands at: the one set over the API, or the base filter's default.
fn root_level(levels: &LoggerLevels) -> String {
    if let Some((level, _)) = levels.set.get("root") {
        return level.clone();
    }
    levels
        .base
        .split(',')
        .find(|d| !d.contains('='))
        .map(|d| d.trim().to_ascii_uppercase())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "ERROR".to_owned())
}

/// The filter of every level set: the base, then root's level, then each logger's.
fn filter_of(levels: &LoggerLevels) -> EnvFilter {
    let mut directives: Vec<String> = levels
        .base
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect();
    for (name, (level, _)) in &levels.set {
        let level = directive_level(level).unwrap_or("info");
        match name.as_str() {
            "root" => directives.push(level.to_owned()),
            target => directives.push(format!("{target}={level}")),
        }
    }
    EnvFilter::new(directives.join(","))
}

/// A Kafka level as a filter directive's.
fn directive_level(level: &str) -> Result<&'static str, ApiError> {
    Ok(match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        "OFF" => "off",
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid log level '{other}'; one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF"
            )))
        }
    })
}

fn epoch_millis() -> i64 {
    // The REST API runs in production only, never simulated.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/admin/loggers", get(list))
        .route("/admin/loggers/{logger}", get(level).put(set_level))
}

fn loggers(api: &Api) -> Reply<&Loggers> {
    api.loggers.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this worker's log levels cannot be changed at run time",
        )
    })
}

/// `GET /admin/loggers`.
async fn list(State(api): State<Api>) -> Reply<Json<Value>> {
    Ok(Json(loggers(&api)?.all()))
}

/// `GET /admin/loggers/{logger}`: its level, or root's when it has none of its own.
async fn level(State(api): State<Api>, Path(logger): Path<String>) -> Reply<Json<Value>> {
    let loggers = loggers(&api)?;
    let levels = loggers.levels();
    let level = match levels.set.get(&logger) {
        Some((level, _)) => level.clone(),
        None => root_level(&levels),
    };
    Ok(Json(json!({"level": level})))
}

#[derive(Deserialize)]
struct NewLevel {
    level: Option<String>,
}

/// `PUT /admin/loggers/{logger}` with `{"level": "DEBUG"}`: the loggers it changed.
async fn set_level(
    State(api): State<Api>,
    Path(logger): Path<String>,
    Body(body): Body<NewLevel>,
) -> Reply<Json<Value>> {
    let Some(level) = body.level else {
        return Err(ApiError::bad_request(
            "the request body must give the \"level\"",
        ));
    };
    let changed = loggers(&api)?.set(&logger, &level)?;
    tracing::info!(%logger, %level, "log level changed");
    Ok(Json(json!(changed)))
}
