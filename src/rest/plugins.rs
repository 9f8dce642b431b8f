//! `/connector-plugins`: the connector classes this worker runs, each with its type and version.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sluice_core::api::ConnectorPlugin;

use super::Api;

pub fn routes() -> Router<Api> {
    Router::new().route("/connector-plugins", get(list))
}

/// `GET /connector-plugins`: every class a connector config may name (aliases included), sorted.
async fn list(State(api): State<Api>, RawQuery(_query): RawQuery) -> Json<Value> {
    let mut plugins: Vec<Value> = api
        .plugins
        .classes()
        .iter()
        .filter_map(|class| {
            let kind = match api.plugins.lookup(class)? {
                ConnectorPlugin::Source(_) => "source",
                ConnectorPlugin::Sink(_) => "sink",
            };
            Some(json!({"class": class, "type": kind, "version": env!("CARGO_PKG_VERSION")}))
        })
        .collect();
    plugins.sort_by(|a, b| a["class"].as_str().cmp(&b["class"].as_str()));
    Json(json!(plugins))
}
