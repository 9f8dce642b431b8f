//! `/connector-plugins`: the plugins this worker runs (connectors; with `connectorsOnly=false`, also
//! transforms and predicates), a connector plugin's config definitions, and config validation with
//! every field's errors, in Kafka Connect's `ConfigInfos` shape.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sluice_core::api::ConnectorPlugin;
use sluice_core::config::{ConfigKey, ConfigMap};
use sluice_core::runtime::connector_config::plugin_config_groups;

use super::connectors::{config_map, hide_secrets};
use super::error::{ApiError, Body};
use super::{Api, Reply};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/connector-plugins", get(list))
        .route("/connector-plugins/{plugin}/config", get(definitions))
        .route("/connector-plugins/{plugin}/config/validate", put(validate))
}

/// `GET /connector-plugins[?connectorsOnly=false]`: every connector class a config may name (aliases
/// included), sorted; transforms and predicates too when asked.
async fn list(State(api): State<Api>, RawQuery(query): RawQuery) -> Reply<Json<Value>> {
    let connectors_only = match super::connectors::form_pairs(query.as_deref())
        .into_iter()
        .find(|(key, _)| key == "connectorsOnly")
        .map(|(_, value)| value)
    {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "connectorsOnly={v} is not true or false"
            )))
        }
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut plugins: Vec<Value> = api
        .plugins
        .classes()
        .iter()
        .filter_map(|class| {
            let kind = match api.plugins.lookup(class)? {
                ConnectorPlugin::Source(_) => "source",
                ConnectorPlugin::Sink(_) => "sink",
            };
            Some(json!({"class": class, "type": kind, "version": version}))
        })
        .collect();
    if !connectors_only {
        for class in api.plugins.transform_classes() {
            plugins.push(json!({"class": class, "type": "transformation", "version": version}));
        }
        for class in api.plugins.predicate_classes() {
            plugins.push(json!({"class": class, "type": "predicate", "version": version}));
        }
    }
    plugins.sort_by(|a, b| a["class"].as_str().cmp(&b["class"].as_str()));
    Ok(Json(json!(plugins)))
}

fn plugin(api: &Api, class: &str) -> Reply<ConnectorPlugin> {
    api.plugins.lookup(class).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Unknown plugin {class}; known: {}",
                api.plugins.classes().join(", ")
            ),
        )
    })
}

/// A key's definition, as Kafka Connect's `ConfigKeyInfo`.
fn definition(key: &ConfigKey, group: &str, order: usize) -> Value {
    json!({
        "name": key.name,
        "type": key.kind.to_string(),
        "required": key.default.is_none(),
        "default_value": key.default,
        "importance": if key.default.is_none() { "HIGH" } else { "MEDIUM" },
        "documentation": key.doc,
        "group": group,
        "width": "NONE",
        "display_name": key.name,
        "dependents": [],
        "order": order,
    })
}

/// Every key of a plugin, in its groups, each with its group and its order in the group.
fn keys(class: &str, plugin: &ConnectorPlugin) -> Vec<(String, usize, ConfigKey)> {
    let mut seen = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    for (group, def) in plugin_config_groups(class, plugin) {
        for (order, key) in def.keys().iter().enumerate() {
            if seen.insert(key.name) {
                all.push((group.clone(), order + 1, key.clone()));
            }
        }
    }
    all
}

/// `GET /connector-plugins/{plugin}/config`: the definitions of every key the plugin accepts.
async fn definitions(State(api): State<Api>, Path(class): Path<String>) -> Reply<Json<Value>> {
    let plugin = plugin(&api, &class)?;
    let all: Vec<Value> = keys(&class, &plugin)
        .iter()
        .map(|(group, order, key)| definition(key, group, *order))
        .collect();
    Ok(Json(json!(all)))
}

/// `PUT /connector-plugins/{plugin}/config/validate`: the config checked as creating the connector
/// would check it; each key's definition, value and errors, and how many errors in all. Password
/// values come back as `[hidden]`.
async fn validate(
    State(api): State<Api>,
    Path(class): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Reply<Json<Value>> {
    let plugin = plugin(&api, &class)?;
    let mut config: ConfigMap = config_map(body)?;
    match config.get("connector.class") {
        Some(named) if !same_plugin(&api, named, &class) => {
            return Err(ApiError::bad_request(format!(
                "connector.class {named} does not match the plugin in the URL ({class})"
            )))
        }
        Some(_) => {}
        None => {
            config.insert("connector.class".into(), class.clone());
        }
    }
    let issues = api.control.validate(config.clone()).await?;
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for issue in issues {
        errors.entry(issue.key).or_default().push(issue.message);
    }
    let error_count: usize = errors.values().map(Vec::len).sum();
    let shown = hide_secrets(&api, config);
    let all = keys(&class, &plugin);
    let mut groups: Vec<String> = Vec::new();
    let mut configs: Vec<Value> = Vec::new();
    for (group, order, key) in &all {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
        configs.push(json!({
            "definition": definition(key, group, *order),
            "value": {
                "name": key.name,
                "value": shown.get(key.name).cloned().or(key.default.map(str::to_owned)),
                "recommended_values": [],
                "errors": errors.remove(key.name).unwrap_or_default(),
                "visible": true,
            },
        }));
    }
    // Errors of keys the plugin does not declare (a transform's, a converter's) are listed too.
    for (name, messages) in errors {
        configs.push(json!({
            "definition": Value::Null,
            "value": {
                "name": name,
                "value": shown.get(&name),
                "recommended_values": [],
                "errors": messages,
                "visible": true,
            },
        }));
    }
    Ok(Json(json!({
        "name": class,
        "error_count": error_count,
        "groups": groups,
        "configs": configs,
    })))
}

/// Whether two class names name the same plugin (a class and its alias).
fn same_plugin(api: &Api, a: &str, b: &str) -> bool {
    match (api.plugins.lookup(a), api.plugins.lookup(b)) {
        (Some(ConnectorPlugin::Source(a)), Some(ConnectorPlugin::Source(b))) => {
            std::sync::Arc::ptr_eq(&a, &b)
        }
        (Some(ConnectorPlugin::Sink(a)), Some(ConnectorPlugin::Sink(b))) => {
            std::sync::Arc::ptr_eq(&a, &b)
        }
        _ => false,
    }
}
