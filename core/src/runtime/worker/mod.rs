//! The standalone worker: validates connector configs, starts connectors and their tasks on a Kafka
//! backend, and stops them cleanly (flush, commit, leave the group) when its shutdown signal fires.
//! With `exactly.once.source.support=enabled` its source tasks run transactionally, their offsets in
//! `offset.storage.topic`. Before any source task starts, the worker binds its offset file to the Kafka
//! cluster it reaches (its cluster id), so that offsets of one cluster are never applied to another.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::api::{
    ConnectError, Connector, ConnectorPlugin, ExactlyOnceSupport, PluginRegistry, SinkConnector,
    SinkTask, SourceConnector, SourceTask,
};
use crate::config::{ConfigError, ConfigMap};
use crate::fs::{FileSystem, LocalFs};
use crate::kafka::IN_PROCESS_CLUSTER_ID;
use crate::kafka::{Admin, ClientSettings, KafkaBackend, KafkaError};

use super::active_topics::TopicTracker;
use super::connector_config::{
    connector_config_def, sink_config_def, source_config_def, ConnectorConfig, CONNECTOR_CLASS,
    EXACTLY_ONCE_SUPPORT, NAME, OTHER_CONNECTOR_PREFIXES,
};
use super::dead_letter_queue::{DeadLetterQueue, DeadLetterQueueSetup, SourceDeadLetters};
use super::exactly_once_source::{ExactlyOnceSourceRunner, ExactlyOnceSourceSetup};
use super::leave_gate::LeaveGate;
use super::offset_store::{FileOffsetStore, OffsetStoreError};
use super::shutdown::ShutdownTrigger;
use super::sink_task::SinkTaskRunner;
use super::source_offsets::{ConnectorOffsets, SharedOffsetStore};
use super::source_task::{SourceTaskRunner, SourceTaskSetup};
use super::status::{TaskCounter, TaskStatuses};

mod connector_store;
pub mod control;
mod herder;
mod offsets;

use super::worker_config::WorkerConfig;
use super::TaskError;
use connector_store::ConnectorStore;
pub use connector_store::{ConnectorStoreError, StoredConnector};
use control::task_id;
pub use control::{
    worker_control, ConnectorStatus, ConnectorType, ControlError, ControlInbox, OffsetChanges,
    State, StoredOffsets, TargetState, TaskStatus, TopicTrackingOff, WorkerControl, WorkerView,
};
use herder::{Herder, Running, TaskOutcome};

/// How long a worker waits for Kafka to create the offsets topic before giving up on a connector.
const OFFSETS_TOPIC_TIMEOUT: Duration = Duration::from_secs(60);
/// Wait between attempts to create the offsets topic.
const OFFSETS_TOPIC_RETRY: Duration = Duration::from_millis(500);
/// Wait between attempts to learn the cluster id when Kafka does not answer.
const CLUSTER_ID_RETRY: Duration = Duration::from_secs(1);
/// How often a worker still waiting for the cluster id says so again.
const CLUSTER_ID_REMINDER: Duration = Duration::from_secs(60);

/// Why the worker could not start or run a connector.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("connector {connector:?} has an invalid configuration: {source}")]
    Config {
        connector: String,
        #[source]
        source: ConfigError,
    },
    #[error("connector {connector:?}: connector.class {class:?} is not a known connector; known: {known}")]
    UnknownClass {
        connector: String,
        class: String,
        known: String,
    },
    #[error("two connectors are named {0:?}; names must be unique")]
    DuplicateName(String),
    #[error(transparent)]
    OffsetStore(#[from] OffsetStoreError),
    #[error(transparent)]
    ConnectorStore(#[from] ConnectorStoreError),
    /// The offset file holds offsets of another Kafka cluster: they describe what that cluster holds, and
    /// applied to this one they would skip records that never reached it.
    #[error(
        "offset file {} holds source offsets for Kafka cluster {}, but {kafka} is cluster {}. \
         Offsets of one cluster would skip records that never reached another, so the worker does not start. \
         To copy the sources from the beginning to this cluster, move the offset file away; \
         if this cluster holds the same data (a migrated cluster), start the worker once with --rebind-offsets to keep the offsets",
        path.display(), describe_cluster(stored), describe_cluster(actual)
    )]
    OffsetsOfAnotherCluster {
        path: std::path::PathBuf,
        stored: String,
        actual: String,
        kafka: String,
    },
    #[error("cannot create a Kafka client for {kafka}: {source}")]
    KafkaClient {
        kafka: String,
        #[source]
        source: KafkaError,
    },
    #[error("connector {connector:?}: {source}")]
    Kafka {
        connector: String,
        #[source]
        source: KafkaError,
    },
    #[error("connector {connector:?} failed: {source}")]
    Connector {
        connector: String,
        #[source]
        source: ConnectError,
    },
    #[error("every task has failed: {}", .0.join("; "))]
    AllTasksFailed(Vec<String>),
    /// The worker stopped, but some of its tasks had failed (while running, or while stopping: a
    /// final offset commit that failed), so what they read may not be committed.
    #[error("{} of the worker's tasks failed: {}", .0.len(), .0.join("; "))]
    TasksFailed(Vec<String>),
}

/// A cluster id as the error shows it, saying which one is the in-process embedded broker.
fn describe_cluster(id: &str) -> String {
    if id == IN_PROCESS_CLUSTER_ID {
        format!("{id:?} (the worker's in-process embedded broker, used when bootstrap.servers is not set)")
    } else {
        format!("{id:?}")
    }
}

enum Plugin {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

impl Plugin {
    fn connector(&mut self) -> &mut dyn Connector {
        match self {
            Plugin::Source(connector) => &mut **connector,
            Plugin::Sink(connector) => &mut **connector,
        }
    }
}

/// A connector whose configuration was validated, ready to start.
pub struct ConnectorPlan {
    config: Arc<ConnectorConfig>,
    plugin: Plugin,
    /// The config as given.
    given: ConfigMap,
}

impl ConnectorPlan {
    pub fn name(&self) -> &str {
        self.config.name()
    }
}

/// A standalone worker: one process, source offsets in a local file.
pub struct StandaloneWorker {
    config: WorkerConfig,
    backend: Arc<dyn KafkaBackend>,
    plugins: PluginRegistry,
    offsets: SharedOffsetStore,
    /// Move an offset file bound to another cluster to this one (`--rebind-offsets`).
    rebind_offsets: bool,
    /// Where a controlled worker keeps its connectors (beside the offset file).
    fs: Arc<dyn FileSystem>,
}

/// Logs a progress line for each task: its state, and the records it moved since `last` and their rate.
fn log_progress(statuses: &TaskStatuses, last: &mut tokio::time::Instant) {
    let now = tokio::time::Instant::now();
    for line in statuses.lines(now - *last) {
        tracing::info!("progress: {line}");
    }
    *last = now;
}

impl StandaloneWorker {
    /// Opens the offset file on the machine's filesystem (a corrupt one is an error, never reset).
    pub fn new(
        config: WorkerConfig,
        backend: Arc<dyn KafkaBackend>,
        plugins: PluginRegistry,
    ) -> Result<StandaloneWorker, WorkerError> {
        let offsets = FileOffsetStore::open(Arc::new(LocalFs), &config.offset_file())?;
        Ok(StandaloneWorker::with_offset_store(
            config,
            backend,
            plugins,
            Arc::new(Mutex::new(offsets)),
        ))
    }

    /// A worker keeping source offsets in `offsets` instead of `offset.storage.file.filename`.
    pub fn with_offset_store(
        config: WorkerConfig,
        backend: Arc<dyn KafkaBackend>,
        plugins: PluginRegistry,
        offsets: SharedOffsetStore,
    ) -> StandaloneWorker {
        StandaloneWorker {
            config,
            backend,
            plugins,
            offsets,
            rebind_offsets: false,
            fs: Arc::new(LocalFs),
        }
    }

    /// Keeps the connectors made over the control on `fs` (the machine's filesystem by default; a
    /// simulated worker's disk in the simulation).
    pub fn with_fs(mut self, fs: Arc<dyn FileSystem>) -> StandaloneWorker {
        self.fs = fs;
        self
    }

    /// Binds an offset file that holds another cluster's offsets to the cluster this worker reaches,
    /// keeping them (for a cluster migrated with its data), instead of refusing to start.
    pub fn rebind_offsets(mut self, rebind: bool) -> StandaloneWorker {
        self.rebind_offsets = rebind;
        self
    }

    /// Validates a connector config: common keys, the plugin's own keys, converters.
    pub fn plan(&self, props: &ConfigMap) -> Result<ConnectorPlan, WorkerError> {
        let name = props.get(NAME).cloned().unwrap_or_default();
        let config_error = |source| WorkerError::Config {
            connector: name.clone(),
            source,
        };
        let class = props.get(CONNECTOR_CLASS).ok_or_else(|| {
            config_error(ConfigError::single(
                CONNECTOR_CLASS,
                "missing required configuration",
            ))
        })?;
        let plugin = self
            .plugins
            .lookup(class)
            .ok_or_else(|| WorkerError::UnknownClass {
                connector: name.clone(),
                class: class.clone(),
                known: self.plugins.classes().join(", "),
            })?;
        // The connector and its tasks see the references filled in; operators and the store, as given.
        let given = props;
        let resolved = self
            .config
            .providers()
            .resolve(given)
            .map_err(config_error)?;
        let props = &resolved;
        let (mut plugin, extra) = match plugin {
            ConnectorPlugin::Source(make) => (Plugin::Source(make()), source_config_def()),
            ConnectorPlugin::Sink(make) => (Plugin::Sink(make()), sink_config_def()),
        };
        let own = plugin.connector().validate(props);
        let known = connector_config_def()
            .merge(&extra)
            .merge(&plugin.connector().config_def());
        for unknown in known.unknown_keys(props, OTHER_CONNECTOR_PREFIXES) {
            tracing::warn!(connector = %name, "{unknown}");
        }
        let common = ConnectorConfig::parse(props, &extra, &self.config, &self.plugins);
        let mut issues = Vec::new();
        if let Err(e) = &common {
            issues.extend(e.issues.iter().cloned());
        }
        if let Err(e) = own {
            issues.extend(e.issues);
        }
        if let (Ok(config), Plugin::Sink(_)) = (&common, &plugin) {
            if let Err(e) = config.subscription() {
                issues.extend(e.issues);
            }
        }
        if let (Ok(config), Plugin::Source(connector)) = (&common, &plugin) {
            if let Err(e) = self.exactly_once_possible(config, &**connector) {
                issues.extend(e.issues);
            }
        }
        if !issues.is_empty() {
            return Err(config_error(ConfigError { issues }));
        }
        let config = common.map_err(config_error)?;
        Ok(ConnectorPlan {
            config: Arc::new(config),
            plugin,
            given: given.clone(),
        })
    }

    /// `exactly.once.support=required` needs the worker to run sources exactly once and the connector to
    /// say it can.
    fn exactly_once_possible(
        &self,
        config: &ConnectorConfig,
        connector: &dyn SourceConnector,
    ) -> Result<(), ConfigError> {
        if !config.exactly_once_required() {
            return Ok(());
        }
        if !self.config.exactly_once_source() {
            return Err(ConfigError::single(
                EXACTLY_ONCE_SUPPORT,
                "required, but the worker's exactly.once.source.support is not enabled",
            ));
        }
        match connector.exactly_once_support(config.props()) {
            ExactlyOnceSupport::Supported => Ok(()),
            ExactlyOnceSupport::Unsupported => Err(ConfigError::single(
                EXACTLY_ONCE_SUPPORT,
                format!(
                    "required, but connector {} cannot deliver exactly once with this configuration",
                    config.class()
                ),
            )),
        }
    }

    /// Runs the connectors until `shutdown` completes, then stops every task cleanly. A worker whose
    /// every task failed stops on its own: nothing could restart them.
    pub async fn run(
        self,
        plans: Vec<ConnectorPlan>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        self.run_inner(plans, None, shutdown).await
    }

    /// Runs the connectors, and the ones stored by earlier runs, until `shutdown` completes, taking
    /// operators' commands from `inbox` meanwhile (connectors created, changed, stopped, restarted,
    /// deleted: kept in the connector file next to the offset file). It stays up when tasks fail: an
    /// operator can restart them.
    pub async fn run_controlled(
        self,
        plans: Vec<ConnectorPlan>,
        inbox: ControlInbox,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        self.run_inner(plans, Some(inbox), shutdown).await
    }

    /// The connectors a controlled worker starts with: the stored ones (made or changed over REST, with
    /// their target state), then the given ones the store does not name.
    fn starting_set(
        &self,
        store: &ConnectorStore,
        plans: Vec<ConnectorPlan>,
    ) -> Result<Vec<(ConnectorPlan, TargetState)>, WorkerError> {
        let stored = store.load()?;
        let mut set = Vec::new();
        for (name, connector) in &stored {
            let plan = self.plan(&connector.config)?;
            if plans.iter().any(|p| p.name() == name) {
                tracing::warn!(connector = %name, file = %store.path().display(), "the connector's config was changed over the REST API since its file was read: running the changed one");
            }
            set.push((plan, connector.target));
        }
        for plan in plans {
            if !stored.contains_key(plan.name()) {
                set.push((plan, TargetState::Started));
            }
        }
        Ok(set)
    }

    async fn run_inner(
        self,
        plans: Vec<ConnectorPlan>,
        inbox: Option<ControlInbox>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        let mut names = std::collections::BTreeSet::new();
        for plan in &plans {
            if !names.insert(plan.name().to_owned()) {
                return Err(WorkerError::DuplicateName(plan.name().to_owned()));
            }
        }
        let (store, plans) = match &inbox {
            Some(_) => {
                let store = ConnectorStore::beside(self.fs.clone(), &self.config.offset_file());
                let set = self.starting_set(&store, plans)?;
                (Some(store), set)
            }
            None => (
                None,
                plans
                    .into_iter()
                    .map(|plan| (plan, TargetState::Started))
                    .collect(),
            ),
        };
        let (view, mut commands) = match inbox {
            Some(inbox) => (Some(inbox.view), Some(inbox.commands)),
            None => (None, None),
        };
        if let Some(view) = &view {
            view.set_topic_tracking(
                self.config.topic_tracking(),
                self.config.topic_tracking_reset(),
            );
            show_starting(view, &plans);
        }
        tracing::info!(kafka = %self.backend.describe(), connectors = plans.len(), "worker starting");
        tokio::pin!(shutdown);
        let sources = plans.iter().any(|(plan, target)| {
            matches!(plan.plugin, Plugin::Source(_)) && *target != TargetState::Stopped
        });
        if sources {
            tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("worker stopped before its connectors started");
                    return Ok(());
                }
                bound = self.bind_offsets() => bound?,
            }
        }
        let statuses = view.as_ref().map(|v| v.tasks().clone()).unwrap_or_default();
        let (requests, mut requested) = tokio::sync::mpsc::unbounded_channel();
        let mut herder = Herder::new(&self, statuses.clone(), view, store, requests, sources);
        // A stop wins over starting: a connector still waiting for Kafka (its offsets topic, say) is
        // given up, so nothing of it reaches Kafka once the worker was told to stop.
        let mut stopped_while_starting = false;
        for (plan, target) in plans {
            let outcome = tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!("worker told to stop while its connectors were starting");
                    stopped_while_starting = true;
                    break;
                }
                outcome = herder.start(plan, target) => outcome,
            };
            if let Err(e) = outcome {
                herder.stop_all().await;
                return Err(e);
            }
        }
        let period = self.config.status_interval();
        let mut status_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        status_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_lines = tokio::time::Instant::now();
        let all_failed = if stopped_while_starting {
            false
        } else {
            loop {
                let next_restart = herder.next_restart();
                tokio::select! {
                    () = &mut shutdown => break false,
                    _ = status_timer.tick() => log_progress(&statuses, &mut last_lines),
                    Some(outcome) = herder.tasks.join_next(), if !herder.tasks.is_empty() => {
                        herder.ended(outcome);
                        if !herder.controlled() && herder.all_failed() {
                            break true;
                        }
                    }
                    Some((name, epoch, request)) = requested.recv() => {
                        herder.take_request(name, epoch, request).await;
                    }
                    Some(command) = next_command(&mut commands) => {
                        herder.take_command(command).await;
                    }
                    () = restart_at(next_restart) => herder.restart_due().await,
                }
            }
        };
        tracing::info!("worker stopping");
        let limit = self.config.shutdown_timeout() + self.config.offset_flush_timeout();
        if tokio::time::timeout(limit, herder.stop_all())
            .await
            .is_err()
        {
            tracing::error!(?limit, "tasks did not stop in time; abandoning them");
            herder.failures.insert(
                String::new(),
                format!("tasks still running after {limit:?} were abandoned"),
            );
            herder.tasks.abort_all();
        }
        log_progress(&statuses, &mut last_lines);
        tracing::info!("worker stopped");
        let failures: Vec<String> = herder.failures.into_values().collect();
        match (all_failed, failures.is_empty()) {
            (true, _) => Err(WorkerError::AllTasksFailed(failures)),
            (false, true) => Ok(()),
            (false, false) => Err(WorkerError::TasksFailed(failures)),
        }
    }

    /// Learns the id of the cluster the worker reaches, waiting for Kafka as long as it takes, and binds
    /// the offset file to it.
    async fn bind_offsets(&self) -> Result<(), WorkerError> {
        let kafka = self.backend.describe();
        let admin = self
            .backend
            .admin()
            .map_err(|source| WorkerError::KafkaClient {
                kafka: kafka.clone(),
                source,
            })?;
        let mut said: Option<tokio::time::Instant> = None;
        let cluster = loop {
            match admin.cluster_id().await {
                Ok(id) => break id,
                Err(e) => {
                    if said.is_none_or(|at| at.elapsed() >= CLUSTER_ID_REMINDER) {
                        tracing::warn!(%kafka, error = %e, "cannot learn the Kafka cluster's id, which source offsets are bound to; source connectors start once Kafka answers; retrying");
                        said = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(CLUSTER_ID_RETRY).await;
                }
            }
        };
        let mut store = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        let before = store.cluster().map(str::to_owned);
        store
            .bind_cluster(&cluster, self.rebind_offsets)
            .map_err(|e| match e {
                OffsetStoreError::OtherCluster {
                    path,
                    stored,
                    actual,
                } => WorkerError::OffsetsOfAnotherCluster {
                    path,
                    stored,
                    actual,
                    kafka,
                },
                other => other.into(),
            })?;
        match before {
            None => tracing::info!(%cluster, "source offsets are bound to this Kafka cluster"),
            Some(old) if old != cluster => {
                tracing::warn!(from = %old, to = %cluster, "source offsets rebound to another Kafka cluster (--rebind-offsets)")
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Creates `offset.storage.topic` if it does not exist, as Kafka Connect's distributed worker does,
    /// waiting up to [`OFFSETS_TOPIC_TIMEOUT`] for Kafka to be reachable.
    async fn ensure_offsets_topic(&self, connector: &str) -> Result<(), WorkerError> {
        let topic = self.config.offsets_topic();
        let admin = self
            .backend
            .admin()
            .map_err(|e| kafka_error(connector, e))?;
        let deadline = tokio::time::Instant::now() + OFFSETS_TOPIC_TIMEOUT;
        loop {
            match admin.create_topic(&topic).await {
                Ok(true) => {
                    tracing::info!(topic = %topic.name, partitions = topic.partitions, "created the offsets topic");
                    return Ok(());
                }
                Ok(false) => return Ok(()),
                Err(e @ KafkaError::Config { .. }) => return Err(kafka_error(connector, e)),
                Err(e) if tokio::time::Instant::now() + OFFSETS_TOPIC_RETRY >= deadline => {
                    return Err(kafka_error(connector, e))
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, error = %e, "cannot create the offsets topic yet; retrying");
                    tokio::time::sleep(OFFSETS_TOPIC_RETRY).await;
                }
            }
        }
    }

    /// Creates a runner for each of a connector's `tasks` (index and config) and spawns it with a
    /// stop trigger of its own; its outcome comes back tagged with the connector's name and start.
    fn spawn_tasks(
        &self,
        running: &mut Running,
        tasks: Vec<(usize, ConfigMap)>,
        statuses: &TaskStatuses,
        spawned: &mut JoinSet<TaskOutcome>,
    ) -> Result<(), WorkerError> {
        let config = running.config.clone();
        let name = config.name();
        let plugin = &running.plugin;
        let creates_topics =
            matches!(plugin, Plugin::Source(_)) && self.config.topic_creation_enabled();
        let exactly_once = matches!(plugin, Plugin::Source(_)) && self.config.exactly_once_source();
        let admin = match creates_topics || exactly_once {
            true => Some(self.backend.admin().map_err(|e| kafka_error(name, e))?),
            false => None,
        };
        let gate = LeaveGate::new();
        for (index, task_config) in tasks {
            let id = task_id(name, index);
            let kind = match plugin {
                Plugin::Source(_) => ConnectorType::Source,
                Plugin::Sink(_) => ConnectorType::Sink,
            };
            let topics = match self.config.topic_tracking() {
                true => statuses.active_topics().tracker(name),
                false => TopicTracker::default(),
            };
            let status = statuses.counter(&id, statuses.metrics().task(name, index, kind), topics);
            let trigger = ShutdownTrigger::new();
            let stop = trigger.subscribe();
            let run: std::pin::Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>> =
                match (plugin, &admin) {
                    (Plugin::Source(connector), Some(admin)) if exactly_once => {
                        let runner = self
                            .exactly_once_runner(
                                ExactlyOnceTask {
                                    id,
                                    index,
                                    task: connector.create_task(),
                                    task_config,
                                    creates_topics,
                                },
                                &config,
                                admin,
                            )?
                            .with_status(status.clone())
                            .with_pause(running.pause.signal());
                        Box::pin(runner.run(stop))
                    }
                    (Plugin::Source(connector), _) => {
                        let runner = self
                            .source_runner(
                                id,
                                connector.create_task(),
                                task_config,
                                &config,
                                &admin,
                            )?
                            .with_status(status.clone())
                            .with_pause(running.pause.signal());
                        Box::pin(runner.run(stop))
                    }
                    (Plugin::Sink(connector), _) => {
                        let runner = self
                            .sink_runner(id, connector.create_task(), task_config, &config)?
                            .with_status(status.clone())
                            .with_pause(running.pause.signal())
                            .with_leave_gate(&gate, self.config.shutdown_timeout());
                        Box::pin(runner.run(stop))
                    }
                };
            if let Some(slot) = running.triggers.get_mut(index) {
                *slot = trigger;
            }
            if let Some(live) = running.live.get_mut(index) {
                *live = true;
            }
            spawned.spawn(reporting(
                (name.to_owned(), running.epoch, index),
                status,
                run,
            ));
        }
        Ok(())
    }

    fn source_runner(
        &self,
        id: String,
        task: Box<dyn SourceTask>,
        task_config: ConfigMap,
        config: &Arc<ConnectorConfig>,
        admin: &Option<Arc<dyn Admin>>,
    ) -> Result<SourceTaskRunner, WorkerError> {
        let id_for_dead_letters = id.clone();
        let mut settings = config.producer_settings(&self.config);
        settings
            .entry("client.id".into())
            .or_insert_with(|| format!("connector-producer-{id}"));
        let producer = self
            .backend
            .producer(&settings)
            .map_err(|e| kafka_error(config.name(), e))?;
        Ok(SourceTaskRunner::new(
            task,
            SourceTaskSetup {
                id,
                task_config,
                config: config.clone(),
                producer,
                admin: admin.clone(),
                offsets: ConnectorOffsets::new(self.offsets.clone(), config.name()),
                flush_timeout: self.config.offset_flush_timeout(),
                dead_letters: source_dead_letters(config, &id_for_dead_letters),
            },
        ))
    }

    /// A task with its own transactional producer, `transactional.id = <group.id>-<connector>-<task>`.
    fn exactly_once_runner(
        &self,
        task: ExactlyOnceTask,
        config: &Arc<ConnectorConfig>,
        admin: &Arc<dyn Admin>,
    ) -> Result<ExactlyOnceSourceRunner, WorkerError> {
        let name = config.name();
        let mut settings = config.producer_settings(&self.config);
        settings
            .entry("client.id".into())
            .or_insert_with(|| format!("connector-producer-{}", task.id));
        let transactional_id = format!("{}-{name}-{}", self.config.group_id(), task.index);
        let producer = self
            .backend
            .transactional_producer(&settings, &transactional_id)
            .map_err(|e| kafka_error(name, e))?;
        let reader = |isolation: &str| {
            let settings =
                ClientSettings::from([("isolation.level".to_owned(), isolation.to_owned())]);
            self.backend
                .log_reader(&settings)
                .map_err(|e| kafka_error(name, e))
        };
        let generation = match self.config.source_generation() {
            Some(generation) => Some((generation, reader("read_uncommitted")?)),
            None => None,
        };
        let dead_letters = source_dead_letters(config, &task.id);
        Ok(ExactlyOnceSourceRunner::new(
            task.task,
            ExactlyOnceSourceSetup {
                id: task.id,
                task: task.index,
                transactional_id,
                generation,
                task_config: task.task_config,
                config: config.clone(),
                producer,
                reader: reader("read_committed")?,
                admin: admin.clone(),
                creates_topics: task.creates_topics,
                offsets_topic: self.config.offsets_topic().name,
                dead_letters,
            },
        ))
    }

    fn sink_runner(
        &self,
        id: String,
        task: Box<dyn SinkTask>,
        task_config: ConfigMap,
        config: &Arc<ConnectorConfig>,
    ) -> Result<SinkTaskRunner, WorkerError> {
        let name = config.name();
        let subscription = config
            .subscription()
            .map_err(|source| WorkerError::Config {
                connector: name.to_owned(),
                source,
            })?;
        let mut settings = config.consumer_settings(&self.config);
        settings
            .entry("client.id".into())
            .or_insert_with(|| format!("connector-consumer-{id}"));
        let consumer = self
            .backend
            .group_consumer(&settings, &format!("connect-{name}"), &subscription)
            .map_err(|e| kafka_error(name, e))?;
        let runner = SinkTaskRunner::new(id.clone(), task, task_config, config.clone(), consumer)
            .with_max_poll_records(config.max_poll_records());
        let Some((topic, replication_factor, context_headers)) = config.dead_letter_queue() else {
            return Ok(runner);
        };
        let mut settings = config.producer_settings(&self.config);
        settings
            .entry("client.id".into())
            .or_insert_with(|| format!("connector-dlq-producer-{id}"));
        let producer = self
            .backend
            .producer(&settings)
            .map_err(|e| kafka_error(name, e))?;
        let admin = self.backend.admin().map_err(|e| kafka_error(name, e))?;
        Ok(
            runner.with_dead_letter_queue(DeadLetterQueue::new(DeadLetterQueueSetup {
                topic: topic.to_owned(),
                replication_factor,
                context_headers,
                connector: name.to_owned(),
                task: id,
                producer,
                admin,
            })),
        )
    }
}

/// One task of an exactly-once source connector, before its runner exists.
struct ExactlyOnceTask {
    id: String,
    index: usize,
    task: Box<dyn SourceTask>,
    task_config: ConfigMap,
    creates_topics: bool,
}

/// A source task's dead letter queue, when its connector has one.
fn source_dead_letters(config: &ConnectorConfig, task: &str) -> Option<SourceDeadLetters> {
    let (topic, _, context_headers) = config.dead_letter_queue()?;
    Some(SourceDeadLetters {
        topic: topic.into(),
        context_headers,
        connector: config.name().to_owned(),
        task: task.to_owned(),
    })
}

fn kafka_error(connector: &str, source: KafkaError) -> WorkerError {
    WorkerError::Kafka {
        connector: connector.to_owned(),
        source,
    }
}

/// Shows operators the connectors a worker starts with, UNASSIGNED (or STOPPED) until started, and
/// lets its API answer.
fn show_starting(view: &WorkerView, plans: &[(ConnectorPlan, TargetState)]) {
    let mut shown = view.lock();
    for (plan, target) in plans {
        let kind = match plan.plugin {
            Plugin::Sink(_) => ConnectorType::Sink,
            Plugin::Source(_) => ConnectorType::Source,
        };
        let state = match target {
            TargetState::Stopped => State::Stopped,
            TargetState::Started | TargetState::Paused => State::Unassigned,
        };
        shown.insert(
            plan.name().to_owned(),
            control::ConnectorEntry {
                config: plan.given.clone(),
                kind,
                state,
                trace: None,
                task_configs: Vec::new(),
                restarts: BTreeMap::new(),
            },
        );
    }
    drop(shown);
    view.set_ready();
}

/// Runs a task, then records in its status how it ended.
async fn reporting(
    (connector, epoch, task): (String, u64, usize),
    status: TaskCounter,
    run: impl Future<Output = Result<(), TaskError>>,
) -> TaskOutcome {
    let outcome = run.await;
    status.ended(outcome.as_ref().err().map(ToString::to_string));
    (connector, epoch, task, outcome)
}

/// Completes when the next automatic restart is due (never, if none is).
async fn restart_at(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The next operator's command, if the worker is controlled (otherwise never).
async fn next_command(
    commands: &mut Option<tokio::sync::mpsc::UnboundedReceiver<control::Command>>,
) -> Option<control::Command> {
    match commands {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}
