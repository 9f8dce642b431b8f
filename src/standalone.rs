//! `sluice standalone`: reads the worker and connector files, connects to Kafka (or starts the embedded
//! broker when `bootstrap.servers` is absent) and runs the connectors until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::config::{
    load_connector_file, load_properties_file, ConfigError, ConfigFileError,
};
use sluice_core::kafka::rdkafka::{EmbeddedBroker, RdkafkaBackend};
use sluice_core::kafka::{KafkaBackend, KafkaError};
use sluice_core::runtime::{StandaloneWorker, WorkerConfig, WorkerError};

use crate::signals;

/// Arguments of `sluice standalone`, as `connect-standalone.sh`.
#[derive(clap::Args)]
pub struct Args {
    /// The worker's .properties file.
    worker: PathBuf,
    /// One or more connector files (.properties, or .json in the REST API's shape).
    #[arg(required = true)]
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
}

pub async fn run(args: Args) -> Result<(), StandaloneError> {
    let worker_props = load_properties_file(&args.worker)?;
    let config =
        WorkerConfig::parse(&worker_props).map_err(|source| StandaloneError::WorkerConfig {
            path: args.worker.clone(),
            source,
        })?;
    for unknown in config.unknown_keys() {
        tracing::warn!(file = %args.worker.display(), "{unknown}");
    }
    let connector_props = args
        .connectors
        .iter()
        .map(|path| load_connector_file(path).map(|props| (path.clone(), props)))
        .collect::<Result<Vec<_>, _>>()?;
    let backend = backend(&config)?;
    let worker = StandaloneWorker::new(config, backend, sluice_connectors::builtin_plugins())?
        .rebind_offsets(args.rebind_offsets);
    let plans = connector_props
        .iter()
        .map(|(path, props)| plan(&worker, path, props))
        .collect::<Result<Vec<_>, _>>()?;
    worker.run(plans, signals::terminated()).await?;
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
