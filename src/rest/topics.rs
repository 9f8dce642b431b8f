//! `/connectors/{name}/topics`: the topics a connector has used (Kafka Connect's active topics,
//! KIP-558), and their reset. With `topic.tracking.enable=false` both answer 403, and the reset does
//! too with `topic.tracking.allow.reset=false`, as Kafka Connect does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use sluice_core::runtime::{ControlError, TopicTrackingOff};

use super::error::ApiError;
use super::{Api, Reply};

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/connectors/{name}/topics", get(active_topics))
        .route("/connectors/{name}/topics/reset", put(reset))
}

fn unknown(name: String) -> ApiError {
    ApiError::from(ControlError::NotFound(name))
}

fn forbidden(off: TopicTrackingOff) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, off.to_string())
}

/// `GET /connectors/{name}/topics`: `{"NAME": {"topics": [...]}}`.
async fn active_topics(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    let topics = api
        .control
        .view()
        .active_topics(&name)
        .ok_or_else(|| unknown(name.clone()))?
        .map_err(forbidden)?;
    Ok(Json(json!({ name: { "topics": topics } })))
}

/// `PUT /connectors/{name}/topics/reset`: 202, the set emptied.
async fn reset(State(api): State<Api>, Path(name): Path<String>) -> Reply<StatusCode> {
    api.control
        .view()
        .reset_active_topics(&name)
        .ok_or_else(|| unknown(name.clone()))?
        .map_err(forbidden)?;
    Ok(StatusCode::ACCEPTED)
}
