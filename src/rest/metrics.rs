//! `/metrics`: the worker's metrics in the OpenMetrics text format Prometheus scrapes (Kafka Connect's
//! metric groups, named `kafka_connect_<group>_<metric>`; see `sluice_core::runtime::metrics`), with the
//! connectors' task counts by state and each sink partition's lag read at the scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sluice_core::runtime::metrics::ConnectorCounts;
use sluice_core::runtime::WorkerView;

use super::Api;

/// OpenMetrics' media type, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the ends of the sink partitions' logs: past it, the lag is left out of
/// this scrape rather than the scrape failing.
const LOG_ENDS_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> Router<Api> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(api): State<Api>) -> impl IntoResponse {
    let view = api.control.view();
    let metrics = view.metrics();
    let partitions: Vec<_> = metrics.sink_partitions().into_iter().collect();
    let mut log_ends = BTreeMap::new();
    if let (Some(admin), false) = (&api.admin, partitions.is_empty()) {
        match tokio::time::timeout(LOG_ENDS_TIMEOUT, admin.end_offsets(&partitions)).await {
            Ok(Ok(ends)) => log_ends = ends,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no sink lag in this scrape: the log ends are unknown")
            }
            Err(_) => tracing::debug!(
                timeout = ?LOG_ENDS_TIMEOUT,
                "no sink lag in this scrape: Kafka did not tell the log ends in time"
            ),
        }
    }
    let text = metrics.encode(&connector_counts(view), &log_ends);
    ([(CONTENT_TYPE, OPENMETRICS)], text)
}

/// Each connector's tasks by state, and their automatic restarts in a row, from its status.
fn connector_counts(view: &WorkerView) -> Vec<ConnectorCounts> {
    view.names()
        .iter()
        .filter_map(|name| view.status(name))
        .map(|status| {
            let mut counts = ConnectorCounts {
                connector: status.name.clone(),
                ..ConnectorCounts::default()
            };
            for task in &status.tasks {
                let state = serde_json::to_value(task.state)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *counts.tasks_by_state.entry(state).or_default() += 1;
                counts.restarts.insert(task.id, task.restarts);
            }
            counts
        })
        .collect()
}
