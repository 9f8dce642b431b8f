//! Control of a running worker from outside its loop: what the REST API asks of it. Reads (connector
//! names, configs, states, task configs) come from a [`WorkerView`] the worker keeps up to date, so they
//! never wait for the worker; changes go to the worker's loop as [`Command`]s and are answered once
//! done, in the order they were asked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{SourceOffset, SourcePartition, TopicPartition};
use crate::config::{ConfigError, ConfigIssue, ConfigMap};

use super::WorkerError;
use crate::runtime::metrics::WorkerMetrics;
use crate::runtime::status::{TaskState, TaskStatuses};

/// Whether a connector reads from a system into Kafka or writes from Kafka to a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorType {
    Source,
    Sink,
}

/// A connector's offsets as operators read them (KIP-875): a source's committed source offsets, or the
/// next Kafka offset of each partition its sink's consumer group committed.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredOffsets {
    Source(Vec<(SourcePartition, SourceOffset)>),
    Sink(BTreeMap<TopicPartition, i64>),
}

/// An operator's change to a connector's offsets: `None` removes a partition's offset.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetChanges {
    Source(Vec<(SourcePartition, Option<SourceOffset>)>),
    Sink(BTreeMap<TopicPartition, Option<i64>>),
}

/// A connector's or task's state, as Kafka Connect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

/// What an operator asked a connector to be: running, paused (its tasks kept, taking no new data), or
/// stopped (its tasks gone, its offsets kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

/// One task's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub id: usize,
    pub state: State,
    /// Why it failed.
    pub trace: Option<String>,
    /// Why a running task makes no progress (blocked in a call past its limit), while it is so.
    pub blocked: Option<String>,
    /// Automatic restarts in a row (`task.restart.policy=on-failure`).
    pub restarts: u32,
}

/// A connector's status and its tasks'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub name: String,
    pub kind: ConnectorType,
    pub state: State,
    pub trace: Option<String>,
    pub tasks: Vec<TaskStatus>,
}

/// What the worker knows of one connector, kept by its loop.
#[derive(Debug, Clone)]
pub(crate) struct ConnectorEntry {
    pub config: ConfigMap,
    pub kind: ConnectorType,
    pub state: State,
    pub trace: Option<String>,
    /// The configs its running tasks were given (none while it is stopped).
    pub task_configs: Vec<ConfigMap>,
    /// By task: its automatic restarts in a row, and whether it waits for the next.
    pub restarts: BTreeMap<usize, (u32, bool)>,
}

/// The worker's connectors as its loop last left them, and its tasks' statuses.
#[derive(Debug, Clone)]
pub struct WorkerView {
    connectors: Arc<Mutex<BTreeMap<String, ConnectorEntry>>>,
    tasks: TaskStatuses,
    /// The id of the Kafka cluster, once the worker learned it.
    cluster: Arc<Mutex<Option<String>>>,
    /// `topic.tracking.enable` and `topic.tracking.allow.reset`.
    topic_tracking: Arc<Mutex<(bool, bool)>>,
    /// The worker has put every connector it starts with in the view.
    ready: Arc<watch::Sender<bool>>,
}

impl Default for WorkerView {
    fn default() -> Self {
        WorkerView {
            connectors: Arc::default(),
            tasks: TaskStatuses::default(),
            cluster: Arc::default(),
            topic_tracking: Arc::new(Mutex::new((true, true))),
            ready: Arc::new(watch::channel(false).0),
        }
    }
}

impl WorkerView {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ConnectorEntry>> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn tasks(&self) -> &TaskStatuses {
        &self.tasks
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &WorkerMetrics {
        self.tasks.metrics()
    }

    /// Completes once the worker has put every connector it starts with in the view (as UNASSIGNED
    /// until started), so that an API served from then on never shows a worker without them.
    pub async fn ready(&self) {
        let _ = self.ready.subscribe().wait_for(|ready| *ready).await;
    }

    pub(crate) fn set_ready(&self) {
        self.ready.send_replace(true);
    }

    /// The id of the Kafka cluster the worker reaches, once it learned it (its first source connector
    /// binds the offset file to it).
    pub fn kafka_cluster_id(&self) -> Option<String> {
        self.cluster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_kafka_cluster_id(&self, id: Option<String>) {
        *self.cluster.lock().unwrap_or_else(|e| e.into_inner()) = id;
    }

    pub(crate) fn set_topic_tracking(&self, enabled: bool, allow_reset: bool) {
        *self
            .topic_tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (enabled, allow_reset);
    }

    /// The topics the connector's tasks used since it was created or its set reset (KIP-558); `None`
    /// for an unknown connector.
    pub fn active_topics(&self, name: &str) -> Option<Result<Vec<String>, TopicTrackingOff>> {
        self.lock().get(name)?;
        let (enabled, _) = *self
            .topic_tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(match enabled {
            true => Ok(self.tasks.active_topics().of(name)),
            false => Err(TopicTrackingOff::Tracking),
        })
    }

    /// Empties the connector's active topics; `None` for an unknown connector.
    pub fn reset_active_topics(&self, name: &str) -> Option<Result<(), TopicTrackingOff>> {
        self.lock().get(name)?;
        let (enabled, allow_reset) = *self
            .topic_tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(match (enabled, allow_reset) {
            (false, _) => Err(TopicTrackingOff::Tracking),
            (true, false) => Err(TopicTrackingOff::Reset),
            (true, true) => {
                self.tasks.active_topics().reset(name);
                Ok(())
            }
        })
    }

    /// The connectors' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn config(&self, name: &str) -> Option<ConfigMap> {
        self.lock().get(name).map(|c| c.config.clone())
    }

    pub fn kind(&self, name: &str) -> Option<ConnectorType> {
        self.lock().get(name).map(|c| c.kind)
    }

    /// The configs of the connector's tasks, in task order.
    pub fn task_configs(&self, name: &str) -> Option<Vec<ConfigMap>> {
        self.lock().get(name).map(|c| c.task_configs.clone())
    }

    pub fn status(&self, name: &str) -> Option<ConnectorStatus> {
        let entry = self.lock().get(name)?.clone();
        let tasks = (0..entry.task_configs.len())
            .map(|id| {
                let (state, trace, blocked) = match self.tasks.state(&task_id(name, id)) {
                    // A running task of a paused connector takes no data: PAUSED, as in Kafka Connect.
                    Some((TaskState::Running, _)) if entry.state == State::Paused => {
                        (State::Paused, None, None)
                    }
                    Some((TaskState::Running, blocked)) => (State::Running, None, blocked),
                    Some((TaskState::Failed(why), _)) => (State::Failed, Some(why), None),
                    Some((TaskState::Stopped, _)) => (State::Stopped, None, None),
                    None => (State::Unassigned, None, None),
                };
                let (restarts, waiting) = entry.restarts.get(&id).copied().unwrap_or((0, false));
                // A failed task waiting for its automatic restart is RESTARTING, with its failure.
                let state = match (state, waiting) {
                    (State::Failed, true) => State::Restarting,
                    (state, _) => state,
                };
                TaskStatus {
                    id,
                    state,
                    trace,
                    blocked,
                    restarts,
                }
            })
            .collect();
        Some(ConnectorStatus {
            name: name.to_owned(),
            kind: entry.kind,
            state: entry.state,
            trace: entry.trace,
            tasks,
        })
    }
}

/// Why active topics cannot be read or reset, in Kafka Connect's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicTrackingOff {
    #[error("Topic tracking is disabled.")]
    Tracking,
    #[error("Topic tracking reset is disabled.")]
    Reset,
}

/// A task's id: its connector's name and its index.
pub(crate) fn task_id(connector: &str, task: usize) -> String {
    format!("{connector}-{task}")
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("Connector {0} not found")]
    NotFound(String),
    #[error("Task {task} of connector {connector} not found")]
    TaskNotFound { connector: String, task: usize },
    #[error("Connector {0} already exists")]
    Exists(String),
    #[error("{0}")]
    Invalid(ConfigError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error("the worker is stopping")]
    Stopping,
    /// Offsets change only while the connector is stopped (Kafka's words).
    #[error("Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{0}/stop' endpoint")]
    NotStopped(String),
    /// Offsets that do not fit the connector (refused by it, or of the wrong kind).
    #[error("{0}")]
    BadOffsets(String),
    /// The offsets could not be read or written.
    #[error("the offsets of connector {connector} could not be {doing}: {reason}")]
    Offsets {
        connector: String,
        doing: &'static str,
        reason: String,
    },
}

/// A change the worker's loop makes, with where its answer goes.
pub(crate) enum Command {
    /// A new connector; with `replace`, an existing one of the name is stopped and started with this
    /// config. Answers whether it was created (not replaced).
    Put {
        config: ConfigMap,
        replace: bool,
        /// What a created connector starts as (a replaced one keeps its own).
        initial: TargetState,
        reply: oneshot::Sender<Result<bool, ControlError>>,
    },
    Delete {
        name: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Target {
        name: String,
        target: TargetState,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Restart {
        name: String,
        /// Restart the connector's tasks too.
        include_tasks: bool,
        /// Only what failed.
        only_failed: bool,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    RestartTask {
        name: String,
        task: usize,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    Offsets {
        name: String,
        reply: oneshot::Sender<Result<StoredOffsets, ControlError>>,
    },
    /// Changes (`Some`) or resets (`None`) a stopped connector's offsets; answers whether the
    /// connector took care of offsets it keeps elsewhere.
    AlterOffsets {
        name: String,
        changes: Option<OffsetChanges>,
        reply: oneshot::Sender<Result<bool, ControlError>>,
    },
    /// Validates a connector config as creating it would, without creating it: every key's error.
    Validate {
        config: ConfigMap,
        reply: oneshot::Sender<Result<Vec<ConfigIssue>, ControlError>>,
    },
}

/// The handle the REST API holds: reads from the view, sends changes to the worker's loop.
#[derive(Clone)]
pub struct WorkerControl {
    commands: mpsc::UnboundedSender<Command>,
    view: WorkerView,
}

/// The worker's end of a [`WorkerControl`], given to [`super::StandaloneWorker::run_controlled`].
pub struct ControlInbox {
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) view: WorkerView,
}

/// A control handle and the inbox of the worker it controls.
pub fn worker_control() -> (WorkerControl, ControlInbox) {
    let (commands, inbox) = mpsc::unbounded_channel();
    let view = WorkerView::default();
    (
        WorkerControl {
            commands,
            view: view.clone(),
        },
        ControlInbox {
            commands: inbox,
            view,
        },
    )
}

impl WorkerControl {
    pub fn view(&self) -> &WorkerView {
        &self.view
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> Command,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| ControlError::Stopping)?;
        answer.await.map_err(|_| ControlError::Stopping)?
    }

    /// Creates a connector (`name` in the config), running or stopped; refused if one has the name.
    pub async fn create(
        &self,
        config: ConfigMap,
        initial: TargetState,
    ) -> Result<(), ControlError> {
        self.ask(|reply| Command::Put {
            config,
            replace: false,
            initial,
            reply,
        })
        .await
        .map(|_| ())
    }

    /// Creates a connector or replaces the config of the one of that name (restarting it). True if
    /// it was created.
    pub async fn put(&self, config: ConfigMap) -> Result<bool, ControlError> {
        self.ask(|reply| Command::Put {
            config,
            replace: true,
            initial: TargetState::Started,
            reply,
        })
        .await
    }

    /// Stops a connector and its tasks and forgets it (its source offsets stay).
    pub async fn delete(&self, name: &str) -> Result<(), ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Delete { name, reply }).await
    }

    /// Stops a connector's tasks and the connector (STOPPED), pauses them (PAUSED), or runs them again
    /// (RUNNING).
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<(), ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Target {
            name,
            target,
            reply,
        })
        .await
    }

    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Restart {
            name,
            include_tasks,
            only_failed,
            reply,
        })
        .await
    }

    /// What is wrong with a connector config, key by key, as creating it would find (nothing: it is
    /// valid).
    pub async fn validate(&self, config: ConfigMap) -> Result<Vec<ConfigIssue>, ControlError> {
        self.ask(|reply| Command::Validate { config, reply }).await
    }

    /// A connector's committed offsets.
    pub async fn offsets(&self, name: &str) -> Result<StoredOffsets, ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::Offsets { name, reply }).await
    }

    /// Changes a stopped connector's offsets; true if the connector took care of offsets it keeps in
    /// its own system (or has none).
    pub async fn alter_offsets(
        &self,
        name: &str,
        changes: OffsetChanges,
    ) -> Result<bool, ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::AlterOffsets {
            name,
            changes: Some(changes),
            reply,
        })
        .await
    }

    /// Removes every offset of a stopped connector: it starts over as if new.
    pub async fn reset_offsets(&self, name: &str) -> Result<bool, ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::AlterOffsets {
            name,
            changes: None,
            reply,
        })
        .await
    }

    pub async fn restart_task(&self, name: &str, task: usize) -> Result<(), ControlError> {
        let name = name.to_owned();
        self.ask(|reply| Command::RestartTask { name, task, reply })
            .await
    }
}
