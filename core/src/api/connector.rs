//! Connectors: they copy no data themselves; they validate a job's config and split it into task configs.

use async_trait::async_trait;

use super::{ConnectError, SinkTask, SourceTask};
use crate::config::{ConfigDef, ConfigError, ConfigMap};

/// What a connector can ask of the runtime.
#[derive(Debug, Clone, Default)]
pub struct ConnectorContext {
    name: String,
}

impl ConnectorContext {
    pub fn new(name: impl Into<String>) -> ConnectorContext {
        ConnectorContext { name: name.into() }
    }

    /// The connector's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What every connector does, as Kafka Connect's `Connector`: validate its config, start, split the job
/// into task configs, stop. [`SourceConnector`] and [`SinkConnector`] add the kind of task it runs.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The keys this connector accepts, beyond the runtime's own (`name`, `tasks.max`, converters...).
    fn config_def(&self) -> ConfigDef;

    /// Checks a config without starting anything: one issue per bad key.
    fn validate(&self, config: &ConfigMap) -> Result<(), ConfigError> {
        self.config_def().parse(config).map(drop)
    }

    /// Starts the connector with its (validated) config.
    async fn start(
        &mut self,
        config: &ConfigMap,
        context: ConnectorContext,
    ) -> Result<(), ConnectError>;

    /// Splits the job into at most `max_tasks` task configs.
    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap>;

    async fn stop(&mut self) -> Result<(), ConnectError>;
}

/// A connector that reads from an external system into Kafka.
pub trait SourceConnector: Connector {
    /// A new, unstarted task of this connector (Connect's `taskClass()`).
    fn create_task(&self) -> Box<dyn SourceTask>;

    /// Whether this connector's tasks, run with exactly-once source support, deliver each record exactly
    /// once under `config` (Connect's `exactlyOnceSupport`): they must resume exactly from the offsets
    /// the runtime gives back. `exactly.once.support=required` refuses to start a connector that says no.
    fn exactly_once_support(&self, config: &ConfigMap) -> ExactlyOnceSupport {
        let _ = config;
        ExactlyOnceSupport::Unsupported
    }
}

/// A source connector's answer to [`SourceConnector::exactly_once_support`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactlyOnceSupport {
    Supported,
    Unsupported,
}

/// A connector that writes records from Kafka topics into an external system.
pub trait SinkConnector: Connector {
    /// A new, unstarted task of this connector (Connect's `taskClass()`).
    fn create_task(&self) -> Box<dyn SinkTask>;
}
