//! `/connectors`: create, read, change and delete connectors; their status, their tasks' configs and
//! statuses; pause, stop, resume and restart them. Shapes as Kafka Connect's: a connector's info is
//! `{"name", "config", "tasks": [{"connector", "task"}], "type"}`, its status
//! `{"name", "connector": {"state", "worker_id", "trace"?}, "tasks": [{"id", "state", "worker_id",
//! "trace"?}], "type"}`. A task that runs but makes no progress (blocked in a call past
//! `put.flush.limit.ms`) says why in an extra `blocked` field; its state stays Connect's.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sluice_core::config::{ConfigMap, ConfigType};
use sluice_core::runtime::connector_config::plugin_config_groups;
use sluice_core::runtime::{ConnectorStatus, TargetState, TaskStatus};

use super::error::{ApiError, Body};
use super::{Api, Reply};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route(
            "/connectors/{name}/config",
            get(config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
}

/// What the API shows in place of a secret.
const HIDDEN: &str = "[hidden]";

/// The keys of a config whose values are secrets: those of type PASSWORD in its connector's
/// definitions, and client keys that hold passwords (`*.password`, `*sasl.jaas.config`).
fn secret_keys(api: &Api, config: &ConfigMap) -> Vec<String> {
    let declared: Vec<&'static str> = config
        .get("connector.class")
        .and_then(|class| Some((class, api.plugins.lookup(class)?)))
        .map(|(class, plugin)| {
            plugin_config_groups(class, &plugin)
                .iter()
                .flat_map(|(_, def)| def.keys().to_vec())
                .filter(|key| key.kind == ConfigType::Password)
                .map(|key| key.name)
                .collect()
        })
        .unwrap_or_default();
    config
        .keys()
        .filter(|key| {
            declared.contains(&key.as_str())
                || key.ends_with("password")
                || key.ends_with("sasl.jaas.config")
        })
        .cloned()
        .collect()
}

/// A config as the API shows it: secrets as `[hidden]`.
pub(super) fn hide_secrets(api: &Api, mut config: ConfigMap) -> ConfigMap {
    for key in secret_keys(api, &config) {
        config.insert(key, HIDDEN.to_owned());
    }
    config
}

/// A config sent back with `[hidden]` in place of a secret keeps the secret it has (a client that read
/// the config, changed a key and wrote it back).
fn keep_secrets(api: &Api, name: &str, mut config: ConfigMap) -> ConfigMap {
    let Some(current) = api.control.view().config(name) else {
        return config;
    };
    for key in secret_keys(api, &current) {
        if config.get(&key).map(String::as_str) == Some(HIDDEN) {
            if let Some(secret) = current.get(&key) {
                config.insert(key, secret.clone());
            }
        }
    }
    config
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

/// A connector's info: its config and its tasks.
fn info_of(api: &Api, name: &str) -> Reply<Value> {
    let view = api.control.view();
    let (Some(config), Some(kind), Some(tasks)) =
        (view.config(name), view.kind(name), view.task_configs(name))
    else {
        return Err(not_found(name));
    };
    let tasks: Vec<Value> = (0..tasks.len())
        .map(|task| json!({"connector": name, "task": task}))
        .collect();
    let config = hide_secrets(api, config);
    Ok(json!({"name": name, "config": config, "tasks": tasks, "type": kind}))
}

fn task_json(api: &Api, task: &TaskStatus) -> Value {
    let mut body = json!({"id": task.id, "state": task.state, "worker_id": &*api.worker_id});
    if let Some(trace) = &task.trace {
        body["trace"] = json!(trace);
    }
    if let Some(blocked) = &task.blocked {
        body["blocked"] = json!(blocked);
    }
    if task.restarts > 0 {
        body["restarts"] = json!(task.restarts);
    }
    body
}

fn status_json(api: &Api, status: &ConnectorStatus) -> Value {
    let mut connector = json!({"state": status.state, "worker_id": &*api.worker_id});
    if let Some(trace) = &status.trace {
        connector["trace"] = json!(trace);
    }
    let tasks: Vec<Value> = status.tasks.iter().map(|t| task_json(api, t)).collect();
    json!({"name": status.name, "connector": connector, "tasks": tasks, "type": status.kind})
}

fn status_of(api: &Api, name: &str) -> Reply<Value> {
    let status = api
        .control
        .view()
        .status(name)
        .ok_or_else(|| not_found(name))?;
    Ok(status_json(api, &status))
}

/// `GET /connectors[?expand=status&expand=info]`.
async fn list(State(api): State<Api>, RawQuery(query): RawQuery) -> Reply<Json<Value>> {
    let expand: Vec<String> = form_pairs(query.as_deref())
        .into_iter()
        .filter(|(key, _)| key == "expand")
        .map(|(_, value)| value)
        .collect();
    let names = api.control.view().names();
    if expand.is_empty() {
        return Ok(Json(json!(names)));
    }
    let mut all = Map::new();
    for name in names {
        let mut entry = Map::new();
        for what in &expand {
            // A connector deleted meanwhile is left out.
            let value = match what.as_str() {
                "status" => status_of(&api, &name),
                "info" => info_of(&api, &name),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "expand={other} is not one of status, info"
                    )))
                }
            };
            if let Ok(value) = value {
                entry.insert(what.clone(), value);
            }
        }
        all.insert(name, Value::Object(entry));
    }
    Ok(Json(Value::Object(all)))
}

/// The pairs of a query string.
pub(super) fn form_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A config as a JSON body holds it: strings, or numbers and booleans written as strings.
pub(super) fn config_map(body: Map<String, Value>) -> Reply<ConfigMap> {
    body.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            Value::Number(n) => Ok((key, n.to_string())),
            Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(ApiError::bad_request(format!(
                "config value of {key:?} must be a string, not {other}"
            ))),
        })
        .collect()
}

#[derive(Deserialize)]
struct NewConnector {
    name: Option<String>,
    config: Option<Map<String, Value>>,
    initial_state: Option<String>,
}

/// `POST /connectors`: 201 with the new connector's info; 409 if the name is taken.
async fn create(State(api): State<Api>, Body(body): Body<NewConnector>) -> Reply<Response> {
    let Some(name) = body.name.filter(|n| !n.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "the request body must name the connector (\"name\")",
        ));
    };
    let Some(config) = body.config else {
        return Err(ApiError::bad_request(
            "the request body must hold the connector's config (\"config\")",
        ));
    };
    let mut config = config_map(config)?;
    match config.get("name") {
        Some(other) if *other != name => {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({other}) doesn't match connector name in the request ({name})"
            )))
        }
        _ => {
            config.insert("name".into(), name.clone());
        }
    }
    let target = match body.initial_state.as_deref() {
        None | Some("RUNNING") => TargetState::Started,
        Some("PAUSED") => TargetState::Paused,
        Some("STOPPED") => TargetState::Stopped,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "initial_state {other:?} is not one of RUNNING, PAUSED, STOPPED"
            )))
        }
    };
    api.control.create(config, target).await?;
    Ok((StatusCode::CREATED, Json(info_of(&api, &name)?)).into_response())
}

/// `GET /connectors/{name}`.
async fn info(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    Ok(Json(info_of(&api, &name)?))
}

/// `DELETE /connectors/{name}`: 204.
async fn delete(State(api): State<Api>, Path(name): Path<String>) -> Reply<StatusCode> {
    api.control.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /connectors/{name}/config`.
async fn config(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<ConfigMap>> {
    api.control
        .view()
        .config(&name)
        .map(|config| Json(hide_secrets(&api, config)))
        .ok_or_else(|| not_found(&name))
}

/// `PUT /connectors/{name}/config`: creates (201) or replaces (200) the connector's config.
async fn put_config(
    State(api): State<Api>,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Response> {
    let mut config = config_map(body)?;
    match config.get("name") {
        Some(other) if *other != name => {
            return Err(ApiError::bad_request(format!(
                "Connector name configuration ({other}) doesn't match connector name in the URL ({name})"
            )))
        }
        _ => {
            config.insert("name".into(), name.clone());
        }
    }
    let config = keep_secrets(&api, &name, config);
    let created = api.control.put(config).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(info_of(&api, &name)?)).into_response())
}

/// `PATCH /connectors/{name}/config`: changes the keys given; a null value removes its key.
async fn patch_config(
    State(api): State<Api>,
    Path(name): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Json<Value>> {
    let mut config = api
        .control
        .view()
        .config(&name)
        .ok_or_else(|| not_found(&name))?;
    let mut removed = Vec::new();
    let mut changes = Map::new();
    for (key, value) in body {
        match value {
            Value::Null => removed.push(key),
            value => {
                changes.insert(key, value);
            }
        }
    }
    for key in removed {
        config.remove(&key);
    }
    config.extend(config_map(changes)?);
    if config.get("name").is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "Connector name configuration ({}) doesn't match connector name in the URL ({name})",
            config["name"]
        )));
    }
    config.insert("name".into(), name.clone());
    let config = keep_secrets(&api, &name, config);
    api.control.put(config).await?;
    Ok(Json(info_of(&api, &name)?))
}

/// `GET /connectors/{name}/status`.
async fn status(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    Ok(Json(status_of(&api, &name)?))
}

/// `GET /connectors/{name}/tasks`: each task's id and config.
async fn tasks(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    let configs = api
        .control
        .view()
        .task_configs(&name)
        .ok_or_else(|| not_found(&name))?;
    let tasks: Vec<Value> = configs
        .into_iter()
        .enumerate()
        .map(|(task, config)| {
            let config = hide_secrets(&api, config);
            json!({"id": {"connector": name, "task": task}, "config": config})
        })
        .collect();
    Ok(Json(json!(tasks)))
}

fn task_index(name: &str, task: &str) -> Reply<usize> {
    task.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {task} of connector {name} not found"),
        )
    })
}

/// `GET /connectors/{name}/tasks/{task}/status`.
async fn task_status(
    State(api): State<Api>,
    Path((name, task)): Path<(String, String)>,
) -> Reply<Json<Value>> {
    let index = task_index(&name, &task)?;
    let status = api
        .control
        .view()
        .status(&name)
        .ok_or_else(|| not_found(&name))?;
    let task = status.tasks.get(index).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {index} of connector {name} not found"),
        )
    })?;
    Ok(Json(task_json(&api, task)))
}

/// `POST /connectors/{name}/tasks/{task}/restart`: 204.
async fn restart_task(
    State(api): State<Api>,
    Path((name, task)): Path<(String, String)>,
) -> Reply<StatusCode> {
    let index = task_index(&name, &task)?;
    api.control.restart_task(&name, index).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /connectors/{name}/restart?includeTasks=&onlyFailed=`: 204 when only the connector is
/// restarted; 202 with the status after the restart otherwise.
async fn restart(
    State(api): State<Api>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply<Response> {
    let pairs: BTreeMap<String, String> = form_pairs(query.as_deref()).into_iter().collect();
    let flag = |key: &str| -> Reply<bool> {
        match pairs.get(key).map(String::as_str) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "{key}={v} is not true or false"
            ))),
        }
    };
    let (include_tasks, only_failed) = (flag("includeTasks")?, flag("onlyFailed")?);
    api.control
        .restart(&name, include_tasks, only_failed)
        .await?;
    if !include_tasks && !only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(status_of(&api, &name)?)).into_response())
}

/// `PUT /connectors/{name}/stop`: 204; the connector's tasks stop (offsets committed) and free
/// everything they held.
async fn stop(State(api): State<Api>, Path(name): Path<String>) -> Reply<StatusCode> {
    api.control.set_target(&name, TargetState::Stopped).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /connectors/{name}/pause`: 202; the tasks stay, taking no new data.
async fn pause(State(api): State<Api>, Path(name): Path<String>) -> Reply<StatusCode> {
    api.control.set_target(&name, TargetState::Paused).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `PUT /connectors/{name}/resume`: 202.
async fn resume(State(api): State<Api>, Path(name): Path<String>) -> Reply<StatusCode> {
    api.control.set_target(&name, TargetState::Started).await?;
    Ok(StatusCode::ACCEPTED)
}
