//! `/connectors/{name}/offsets` (KIP-875): read a connector's offsets, change them, or reset them while
//! it is stopped. A source's are `{"partition": {its source partition}, "offset": {its source offset}}`,
//! a sink's `{"partition": {"kafka_topic": T, "kafka_partition": P}, "offset": {"kafka_offset": N}}`;
//! a `null` offset removes one.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sluice_core::api::{SourceMap, TopicPartition};
use sluice_core::runtime::{ConnectorType, OffsetChanges, StoredOffsets};

use super::error::{ApiError, Body};
use super::{Api, Reply};

pub fn routes() -> Router<Api> {
    Router::new().route(
        "/connectors/{name}/offsets",
        get(offsets).patch(alter).delete(reset),
    )
}

/// `GET /connectors/{name}/offsets`.
async fn offsets(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    let entries: Vec<Value> = match api.control.offsets(&name).await? {
        StoredOffsets::Source(offsets) => offsets
            .into_iter()
            .map(|(partition, offset)| json!({"partition": partition, "offset": offset}))
            .collect(),
        StoredOffsets::Sink(offsets) => offsets
            .into_iter()
            .map(|(tp, offset)| {
                json!({
                    "partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition},
                    "offset": {"kafka_offset": offset},
                })
            })
            .collect(),
    };
    Ok(Json(json!({ "offsets": entries })))
}

/// `PATCH /connectors/{name}/offsets`: 200 with a message.
async fn alter(
    State(api): State<Api>,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> Reply<Json<Value>> {
    let kind = api.control.view().kind(&name).ok_or_else(|| {
        ApiError::from(sluice_core::runtime::ControlError::NotFound(name.clone()))
    })?;
    let changes = parse_changes(kind, &body)?;
    let handled = api.control.alter_offsets(&name, changes).await?;
    Ok(message(handled, "altered"))
}

/// `DELETE /connectors/{name}/offsets`: 200 with a message.
async fn reset(State(api): State<Api>, Path(name): Path<String>) -> Reply<Json<Value>> {
    let handled = api.control.reset_offsets(&name).await?;
    Ok(message(handled, "reset"))
}

/// Kafka Connect's answers: plain when the connector took care of everything, with a warning when
/// offsets it may keep in its own system were left alone.
fn message(handled: bool, done: &str) -> Json<Value> {
    let message = match handled {
        true => format!("The offsets for this connector have been {done} successfully"),
        false => format!(
            "The Connect framework-managed offsets for this connector have been {done} successfully. However, if this connector manages offsets externally, they will need to be manually {done} in the system that the connector uses."
        ),
    };
    Json(json!({ "message": message }))
}

/// The body `{"offsets": [{"partition": {...}, "offset": {...} | null}, ...]}` as changes of a
/// connector of this kind; every problem named with the entry it is in.
fn parse_changes(kind: ConnectorType, body: &Value) -> Reply<OffsetChanges> {
    let entries = match body.get("offsets") {
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(ApiError::bad_request("\"offsets\" must be an array")),
        None => {
            return Err(ApiError::bad_request(
                "The body must have an \"offsets\" array: {\"offsets\": [{\"partition\": {...}, \"offset\": {...}}]}",
            ))
        }
    };
    if entries.is_empty() {
        return Err(ApiError::bad_request(
            "The offsets to alter must not be empty",
        ));
    }
    let mut source = Vec::new();
    let mut sink = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = |what: String| ApiError::bad_request(format!("offsets[{i}]: {what}"));
        let partition = match entry.get("partition") {
            Some(Value::Object(partition)) => partition,
            Some(Value::Null) | None => {
                return Err(at("the partition may not be null or missing".into()))
            }
            Some(_) => return Err(at("the partition must be a JSON object".into())),
        };
        let offset = match entry.get("offset") {
            Some(Value::Object(offset)) => Some(offset),
            Some(Value::Null) | None => None,
            Some(_) => return Err(at("the offset must be a JSON object or null".into())),
        };
        match kind {
            ConnectorType::Source => source.push((
                SourceMap::new(partition.clone()),
                offset.map(|o| SourceMap::new(o.clone())),
            )),
            ConnectorType::Sink => {
                let (tp, offset) = sink_entry(partition, offset).map_err(at)?;
                sink.insert(tp, offset);
            }
        }
    }
    Ok(match kind {
        ConnectorType::Source => OffsetChanges::Source(source),
        ConnectorType::Sink => OffsetChanges::Sink(sink),
    })
}

/// A sink's partition and offset, as Kafka Connect's `SinkUtils.parseSinkConnectorOffsets` reads them.
fn sink_entry(
    partition: &Map<String, Value>,
    offset: Option<&Map<String, Value>>,
) -> Result<(TopicPartition, Option<i64>), String> {
    let topic = match partition.get("kafka_topic") {
        Some(Value::String(topic)) if !topic.is_empty() => topic.clone(),
        _ => return Err("a sink partition needs a non-empty string \"kafka_topic\"".into()),
    };
    let number = partition
        .get("kafka_partition")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p >= 0)
        .ok_or("a sink partition needs a non-negative integer \"kafka_partition\"")?;
    let offset = match offset {
        None => None,
        Some(offset) => Some(
            offset
                .get("kafka_offset")
                .and_then(Value::as_i64)
                .filter(|o| *o >= 0)
                .ok_or("a sink offset needs a non-negative integer \"kafka_offset\"")?,
        ),
    };
    Ok((TopicPartition::new(topic, number), offset))
}
