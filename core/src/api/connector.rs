//! Connectors: they copy no data themselves; they validate a job's config and split it into task configs.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use std::collections::BTreeMap;

use super::{ConnectError, SinkTask, SourceOffset, SourcePartition, SourceTask, TopicPartition};
use crate::config::{ConfigDef, ConfigError, ConfigMap};

/// What a connector asks of the runtime through its [`ConnectorContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorRequest {
    /// Ask `task_configs` again, and restart the tasks if they changed.
    Reconfigure,
    /// The connector failed: stop its tasks, with this reason.
    Fail(String),
}

/// Where a context's requests go.
type Requests = Arc<dyn Fn(ConnectorRequest) + Send + Sync>;

/// What a connector can ask of the runtime. Cheap to clone: a connector may keep one in a task of its
/// own that watches its system (Connect's table monitor thread, say).
#[derive(Clone, Default)]
pub struct ConnectorContext {
    name: String,
    requests: Option<Requests>,
}

impl fmt::Debug for ConnectorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorContext")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConnectorContext {
    /// A context whose requests go nowhere (they are logged), for a connector run without a runtime.
    pub fn new(name: impl Into<String>) -> ConnectorContext {
        ConnectorContext {
            name: name.into(),
            requests: None,
        }
    }

    /// A context whose requests the runtime takes with `requests`.
    pub fn with_requests(
        name: impl Into<String>,
        requests: impl Fn(ConnectorRequest) + Send + Sync + 'static,
    ) -> ConnectorContext {
        ConnectorContext {
            name: name.into(),
            requests: Some(Arc::new(requests)),
        }
    }

    /// The connector's `name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the runtime to call `task_configs` again and, if the configs changed, to stop the tasks
    /// cleanly (their offsets committed) and start new ones (Connect's
    /// `requestTaskReconfiguration`): for a connector whose work changed, such as tables that appeared.
    pub fn request_task_reconfiguration(&self) {
        self.request(ConnectorRequest::Reconfigure);
    }

    /// Fails the connector: the runtime stops its tasks and reports `reason` (Connect's `raiseError`).
    pub fn raise_error(&self, reason: impl Into<String>) {
        self.request(ConnectorRequest::Fail(reason.into()));
    }

    fn request(&self, request: ConnectorRequest) {
        match &self.requests {
            Some(requests) => requests(request),
            None => {
                tracing::warn!(connector = %self.name, ?request, "no runtime takes this connector's request")
            }
        }
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

    /// An operator changes the connector's source offsets (KIP-875's `alterOffsets`), while it is stopped:
    /// `None` removes a partition's offset (a reset removes them all). Called before the runtime writes
    /// them: an error refuses the change (say which offset and why; nothing is written). Answers whether
    /// the connector has taken care of everything (`true`: it keeps no offsets of its own elsewhere, or
    /// changed them too) or not (`false`, the default: the operator is told that offsets the connector
    /// keeps in its system, if any, are left as they were).
    fn alter_offsets(
        &self,
        config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool, ConnectError> {
        let _ = (config, offsets);
        Ok(false)
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

    /// An operator changes the offsets of the connector's consumer group (KIP-875's `alterOffsets`),
    /// while it is stopped: the next Kafka offset to deliver per partition, `None` to remove it (a
    /// reset removes them all). As [`SourceConnector::alter_offsets`]: an error refuses the change,
    /// `true` says the connector has taken care of everything, `false` (the default) that offsets it
    /// keeps in its own system, if any, are left as they were.
    fn alter_offsets(
        &self,
        config: &ConfigMap,
        offsets: &BTreeMap<TopicPartition, Option<i64>>,
    ) -> Result<bool, ConnectError> {
        let _ = (config, offsets);
        Ok(false)
    }
}
