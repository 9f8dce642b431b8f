//! `sluice standalone`: reads the worker and connector files, connects to Kafka (or starts the embedded
//! broker when `bootstrap.servers` is absent), serves the REST API on `listeners` (connectors created
//! over it are kept next to the offset file) and runs the connectors until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::config::{
    load_connector_file, load_properties_file, ConfigError, ConfigFileError,
};
use sluice_core::kafka::rdkafka::{EmbeddedBroker, RdkafkaBackend};
use sluice_core::kafka::{KafkaBackend, KafkaError};
use sluice_core::runtime::{worker_control, StandaloneWorker, WorkerConfig, WorkerError};
use tokio::net::TcpListener;

use crate::rest;
use crate::rest::auth::{AuthError, Credentials};
use crate::rest::listener::{self, listen_address, Listen, ListenerError};
use crate::rest::loggers::Loggers;
use crate::rest::tls::{self, TlsError, TlsListener};
use crate::signals;

/// Arguments of `sluice standalone`, as `connect-standalone.sh`.
#[derive(clap::Args)]
pub struct Args {
    /// The worker's .properties file.
    worker: PathBuf,
    /// Connector files (.properties, or .json in the REST API's shape); connectors may also be created
    /// over the REST API.
    connectors: Vec<PathBuf>,
    /// The offset file holds offsets of another Kafka cluster, and this cluster holds the same data (it
    /// was migrated): keep the offsets and bind the file to this cluster instead of refusing to start.
    #[arg(long)]
    rebind_offsets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error("{path}: {source}")]
    WorkerConfig { path: PathBuf, source: ConfigError },
    #[error("{path}: {source}")]
    Connector { path: PathBuf, source: WorkerError },
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("cannot start the embedded broker: {0}")]
    Broker(KafkaError),
    #[error("{path}: {source}")]
    Listener {
        path: PathBuf,
        source: ListenerError,
    },
    #[error("{path}: {source}")]
    Auth { path: PathBuf, source: AuthError },
    #[error("{path}: {source}")]
    Tls { path: PathBuf, source: TlsError },
    #[error("cannot serve the REST API on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}: no connector to run: name connector files, or serve the REST API (listeners) to create them")]
    NothingToRun(PathBuf),
}

pub async fn run(args: Args, loggers: Option<Loggers>) -> Result<(), StandaloneError> {
    let worker_props = load_properties_file(&args.worker)?;
    let config =
        WorkerConfig::parse(&worker_props).map_err(|source| StandaloneError::WorkerConfig {
            path: args.worker.clone(),
            source,
        })?;
    for unknown in config.unknown_keys() {
        tracing::warn!(file = %args.worker.display(), "{unknown}");
    }
    // The worker's keys with config provider references filled in.
    let worker_props = config.props().clone();
    let connector_props = args
        .connectors
        .iter()
        .map(|path| load_connector_file(path).map(|props| (path.clone(), props)))
        .collect::<Result<Vec<_>, _>>()?;
    let listen = listen_address(&worker_props).map_err(|source| StandaloneError::Listener {
        path: args.worker.clone(),
        source,
    })?;
    let tls = match listen {
        Some(Listen { https: true, .. }) => Some(tls::server_config(&worker_props).map_err(
            |source| StandaloneError::Tls {
                path: args.worker.clone(),
                source,
            },
        )?),
        _ => None,
    };
    let credentials =
        Credentials::from_worker(&worker_props, std::env::var("KAFKA_OPTS").ok().as_deref())
            .map_err(|source| StandaloneError::Auth {
                path: args.worker.clone(),
                source,
            })?;
    if listen.is_none() && connector_props.is_empty() {
        return Err(StandaloneError::NothingToRun(args.worker));
    }
    let backend = backend(&config)?;
    let admin = match backend.admin() {
        _ if listen.is_none() => None,
        Ok(admin) => Some(admin),
        Err(e) => {
            tracing::warn!(error = %e, "no Kafka admin client: the metrics leave out the sink partitions' lag");
            None
        }
    };
    let worker = StandaloneWorker::new(config, backend, sluice_connectors::builtin_plugins())?
        .rebind_offsets(args.rebind_offsets);
    let plans = connector_props
        .iter()
        .map(|(path, props)| plan(&worker, path, props))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(Listen { address, .. }) = listen else {
        worker.run(plans, signals::terminated()).await?;
        return Ok(());
    };
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StandaloneError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StandaloneError::Bind { address, source })?;
    let (control, inbox) = worker_control();
    let mut api = rest::Api::new(
        control,
        sluice_connectors::builtin_plugins(),
        listener::worker_id(&worker_props, bound),
        loggers,
        admin,
    );
    if let Some(credentials) = credentials {
        api = api.with_basic_auth(credentials);
    }
    let (stopped, stop_serving) = tokio::sync::oneshot::channel::<()>();
    let stop_serving = async {
        let _ = stop_serving.await;
    };
    let (server, scheme) = match tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls)
                .map_err(|source| StandaloneError::Bind { address, source })?;
            let server = tokio::spawn(rest::serve(listener, api, stop_serving));
            (server, "https")
        }
        None => (
            tokio::spawn(rest::serve(listener, api, stop_serving)),
            "http",
        ),
    };
    tracing::info!(url = %format!("{scheme}://{bound}/"), "REST API listening");
    let outcome = worker
        .run_controlled(plans, inbox, signals::terminated())
        .await;
    let _ = stopped.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the REST API stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the REST API panicked"),
    }
    outcome?;
    Ok(())
}

fn plan(
    worker: &StandaloneWorker,
    path: &Path,
    props: &sluice_core::config::ConfigMap,
) -> Result<sluice_core::runtime::ConnectorPlan, StandaloneError> {
    worker
        .plan(props)
        .map_err(|source| StandaloneError::Connector {
            path: path.to_owned(),
            source,
        })
}

fn backend(config: &WorkerConfig) -> Result<Arc<dyn KafkaBackend>, StandaloneError> {
    match config.bootstrap_servers() {
        Some(servers) => Ok(Arc::new(RdkafkaBackend::new(
            servers,
            config.common_client_settings(),
        ))),
        None => {
            let broker = EmbeddedBroker::start(1).map_err(StandaloneError::Broker)?;
            tracing::info!(
                bootstrap_servers = broker.bootstrap_servers(),
                "no bootstrap.servers configured: started the embedded broker"
            );
            Ok(Arc::new(RdkafkaBackend::embedded(Arc::new(broker))))
        }
    }
}
