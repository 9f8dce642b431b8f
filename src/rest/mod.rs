//! The REST API of a standalone worker, wire-compatible with Kafka Connect's (port 8083 by default):
//! the same paths, JSON shapes, status codes and `{"error_code": N, "message": "..."}` errors, so that
//! the Confluent CLI, Kafka UI and every script written for Kafka Connect manage Sluice too.
//!
//! - [`listener`]: the `listeners` key, and the socket it binds; [`tls`]: its TLS, for `https://`.
//! - [`connectors`]: `/connectors` and what is under it; [`offsets`]: `/connectors/{name}/offsets`;
//!   [`topics`]: `/connectors/{name}/topics`;
//!   [`plugins`]: `/connector-plugins`.
//! - [`loggers`]: `/admin/loggers`, log levels changed at run time.
//! - [`metrics`]: `/metrics`, for Prometheus.
//! - [`auth`]: basic authentication (Kafka's `BasicAuthSecurityRestExtension`).
//! - [`error`]: the error body, and Kafka Connect's answers to bad requests.

pub mod auth;
mod connectors;
mod error;
pub mod listener;
pub mod loggers;
mod metrics;
mod offsets;
mod plugins;
pub mod tls;
mod topics;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sluice_core::api::PluginRegistry;
use sluice_core::kafka::Admin;
use sluice_core::runtime::WorkerControl;

use error::ApiError;

/// What every handler reaches: the worker, its plugins, the id it reports as `worker_id`, its log
/// levels (when the process's log filter can be changed), and Kafka's admin client (for the sink
/// partitions' lag in the metrics).
#[derive(Clone)]
pub struct Api {
    control: WorkerControl,
    plugins: Arc<PluginRegistry>,
    worker_id: Arc<str>,
    loggers: Option<loggers::Loggers>,
    admin: Option<Arc<dyn Admin>>,
    /// Who may call the API, when basic authentication is on.
    credentials: Option<Arc<auth::Credentials>>,
}

impl Api {
    pub fn new(
        control: WorkerControl,
        plugins: PluginRegistry,
        worker_id: String,
        loggers: Option<loggers::Loggers>,
        admin: Option<Arc<dyn Admin>>,
    ) -> Api {
        Api {
            control,
            plugins: Arc::new(plugins),
            worker_id: worker_id.into(),
            loggers,
            admin,
            credentials: None,
        }
    }

    /// Lets in only requests with these users' credentials.
    pub fn with_basic_auth(mut self, credentials: auth::Credentials) -> Api {
        self.credentials = Some(Arc::new(credentials));
        self
    }
}

/// Every route, with Kafka Connect's answers to unknown paths (404) and wrong methods (405).
pub fn router(api: Api) -> Router {
    let credentials = api.credentials.clone();
    let routes = Router::new()
        .route("/", get(root))
        .merge(connectors::routes())
        .merge(offsets::routes())
        .merge(plugins::routes())
        .merge(loggers::routes())
        .merge(metrics::routes())
        .merge(topics::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(api);
    match credentials {
        Some(credentials) => routes.layer(axum::middleware::from_fn_with_state(
            credentials,
            auth::require,
        )),
        None => routes,
    }
}

/// `GET /`: the worker's version and the Kafka cluster it works with (null until a source connector
/// bound the worker's offsets to it).
async fn root(State(api): State<Api>) -> Json<serde_json::Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("SLUICE_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": api.control.view().kafka_cluster_id(),
    }))
}

/// Serves the API on `listener` (plain TCP, or [`tls::TlsListener`]) until `shutdown` completes.
pub async fn serve<L>(
    listener: L,
    api: Api,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    // Connections wait in the listener's backlog until the worker shows the connectors it starts with.
    api.control.view().ready().await;
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A handler's answer: a JSON body, or an error in Kafka Connect's shape.
type Reply<T> = Result<T, ApiError>;
