//! The worker's loop (Kafka Connect calls it the herder): the connectors it runs, by name, each with its
//! tasks; what happens when a task ends, when a connector asks for new task configs or fails, and when
//! an operator creates, changes, stops, resumes, restarts or deletes a connector. Each change stops
//! what it replaces cleanly (tasks flush and commit their offsets) before starting anything new.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{ConnectorContext, ConnectorRequest};
use crate::config::ConfigMap;
use crate::runtime::pause::PauseSwitch;
use crate::runtime::status::TaskStatuses;
use crate::runtime::{ShutdownTrigger, TaskError};

use super::connector_store::ConnectorStore;
use super::control::{
    task_id, Command, ConnectorEntry, ConnectorType, ControlError, State, TargetState, WorkerView,
};
use super::{ConnectorPlan, Plugin, StandaloneWorker, WorkerError};
use crate::runtime::connector_config::ConnectorConfig;

/// How a task ended: its connector, the start it belongs to, its index, and its outcome.
pub(super) type TaskOutcome = (String, u64, usize, Result<(), TaskError>);

/// A connector the worker knows: running, stopped or failed.
pub(super) struct Running {
    pub plugin: Plugin,
    pub config: Arc<ConnectorConfig>,
    /// The config as given (without the defaults filled in): what operators read back and the store keeps.
    pub given: ConfigMap,
    /// Which start of the connector its tasks belong to: outcomes of tasks of an earlier start are old news.
    pub epoch: u64,
    /// One stop signal per task.
    pub triggers: Vec<ShutdownTrigger>,
    /// Per task: still running.
    pub live: Vec<bool>,
    pub task_configs: Vec<ConfigMap>,
    /// `start` succeeded, and `stop` is owed.
    pub started: bool,
    /// Why the connector failed (it raised an error, or could not start): its tasks stay stopped.
    pub failure: Option<String>,
    pub target: TargetState,
    /// Pauses and resumes its tasks.
    pub pause: PauseSwitch,
}

impl Running {
    /// Starts a task for each of these configs, replacing the connector's tasks (all stopped).
    fn spawn_all(
        &mut self,
        worker: &StandaloneWorker,
        configs: Vec<ConfigMap>,
        statuses: &TaskStatuses,
        tasks: &mut JoinSet<TaskOutcome>,
    ) -> Result<(), WorkerError> {
        self.task_configs = configs.clone();
        self.triggers = (0..configs.len()).map(|_| ShutdownTrigger::new()).collect();
        self.live = vec![false; configs.len()];
        worker.spawn_tasks(
            self,
            configs.into_iter().enumerate().collect(),
            statuses,
            tasks,
        )
    }
}

/// A connector's context whose requests reach the worker's loop, tagged with the connector's start.
fn connector_context(
    requests: &mpsc::UnboundedSender<(String, u64, ConnectorRequest)>,
    name: &str,
    epoch: u64,
) -> ConnectorContext {
    let (requests, tagged) = (requests.clone(), name.to_owned());
    ConnectorContext::with_requests(name, move |request| {
        let _ = requests.send((tagged.clone(), epoch, request));
    })
}

/// The connectors of a running worker and their tasks.
pub(super) struct Herder<'w> {
    pub worker: &'w StandaloneWorker,
    pub connectors: BTreeMap<String, Running>,
    pub tasks: JoinSet<TaskOutcome>,
    pub statuses: TaskStatuses,
    /// Operators' view, when the worker is controlled (REST).
    pub view: Option<WorkerView>,
    pub store: Option<ConnectorStore>,
    pub requests: mpsc::UnboundedSender<(String, u64, ConnectorRequest)>,
    /// Why tasks or connectors failed, by task id or connector name: the worker's exit says so. A
    /// restart or a delete clears its connector's.
    pub failures: BTreeMap<String, String>,
    /// Failed tasks of connectors with `task.restart.policy=on-failure`, by connector and task: when
    /// each restarts.
    restarts_due: BTreeMap<(String, usize), Instant>,
    /// Restarts in a row of each task (cleared when an operator restarts it or its connector).
    restarts: BTreeMap<(String, usize), u32>,
    /// The worker is stopping: failed tasks are not restarted.
    stopping: bool,
    next_epoch: u64,
    offsets_bound: bool,
}

impl<'w> Herder<'w> {
    pub fn new(
        worker: &'w StandaloneWorker,
        statuses: TaskStatuses,
        view: Option<WorkerView>,
        store: Option<ConnectorStore>,
        requests: mpsc::UnboundedSender<(String, u64, ConnectorRequest)>,
        offsets_bound: bool,
    ) -> Herder<'w> {
        let herder = Herder {
            worker,
            connectors: BTreeMap::new(),
            tasks: JoinSet::new(),
            statuses,
            view,
            store,
            requests,
            failures: BTreeMap::new(),
            restarts_due: BTreeMap::new(),
            restarts: BTreeMap::new(),
            stopping: false,
            next_epoch: 0,
            offsets_bound,
        };
        herder.note_cluster();
        herder
    }

    /// Shows operators the Kafka cluster the offsets are bound to, once they are.
    fn note_cluster(&self) {
        if let (Some(view), true) = (&self.view, self.offsets_bound) {
            let store = self
                .worker
                .offsets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            view.set_kafka_cluster_id(store.cluster().map(str::to_owned));
        }
    }

    /// Whether operators can act on failures (restart a connector): then a worker whose every task
    /// failed stays up.
    pub fn controlled(&self) -> bool {
        self.view.is_some()
    }

    /// Starts a connector (or only records it, stopped). A connector that cannot start is an error of
    /// the worker when it is not controlled; a controlled worker keeps it, FAILED, with the reason.
    pub async fn start(
        &mut self,
        plan: ConnectorPlan,
        target: TargetState,
    ) -> Result<(), WorkerError> {
        let ConnectorPlan {
            config,
            plugin,
            given,
        } = plan;
        let name = config.name().to_owned();
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let mut running = Running {
            plugin,
            config,
            given,
            epoch,
            triggers: Vec::new(),
            live: Vec::new(),
            task_configs: Vec::new(),
            started: false,
            failure: None,
            target,
            pause: PauseSwitch::new(target == TargetState::Paused),
        };
        if target != TargetState::Stopped {
            let started = self.start_running(&mut running).await;
            if let Err(e) = started {
                if !self.controlled() {
                    self.connectors.insert(name.clone(), running);
                    self.stop_connector(&name).await;
                    return Err(e);
                }
                tracing::error!(connector = %name, error = %e, "connector failed to start");
                running.failure = Some(e.to_string());
                self.failures.insert(name.clone(), e.to_string());
            }
        }
        self.connectors.insert(name.clone(), running);
        self.show(&name);
        Ok(())
    }

    /// Starts the connector and its tasks.
    async fn start_running(&mut self, running: &mut Running) -> Result<(), WorkerError> {
        let name = running.config.name().to_owned();
        if matches!(running.plugin, Plugin::Source(_)) {
            if !self.offsets_bound {
                self.worker.bind_offsets().await?;
                self.offsets_bound = true;
                self.note_cluster();
            }
            if self.worker.config.exactly_once_source() {
                self.worker.ensure_offsets_topic(&name).await?;
            }
        }
        let context = connector_context(&self.requests, &name, running.epoch);
        running
            .plugin
            .connector()
            .start(running.config.props(), context)
            .await
            .map_err(|source| WorkerError::Connector {
                connector: name.clone(),
                source,
            })?;
        running.started = true;
        let configs = running
            .plugin
            .connector()
            .task_configs(running.config.tasks_max());
        if let Err(e) = running.spawn_all(self.worker, configs, &self.statuses, &mut self.tasks) {
            // Tasks already spawned stop with their triggers; their outcomes come back as usual.
            for trigger in &running.triggers {
                trigger.fire();
            }
            return Err(e);
        }
        Ok(())
    }

    /// Stops a connector's tasks (each flushes and commits) and waits for them; handles other tasks'
    /// endings meanwhile.
    async fn stop_tasks(&mut self, name: &str, which: &[usize]) {
        let Some(running) = self.connectors.get(name) else {
            return;
        };
        for &task in which {
            if let Some(trigger) = running.triggers.get(task) {
                trigger.fire();
            }
        }
        while self.connectors.get(name).is_some_and(|r| {
            which
                .iter()
                .any(|&t| r.live.get(t).copied().unwrap_or(false))
        }) {
            let Some(outcome) = self.tasks.join_next().await else {
                break;
            };
            self.ended(outcome);
        }
    }

    /// Stops a connector's tasks, then the connector.
    pub async fn stop_connector(&mut self, name: &str) {
        let all: Vec<usize> = match self.connectors.get(name) {
            Some(running) => (0..running.live.len()).collect(),
            None => return,
        };
        self.stop_tasks(name, &all).await;
        if let Some(running) = self.connectors.get_mut(name) {
            if std::mem::take(&mut running.started) {
                if let Err(e) = running.plugin.connector().stop().await {
                    tracing::warn!(connector = %name, error = %e, "connector stop failed");
                }
            }
        }
    }

    /// Stops every connector (the worker is stopping).
    pub async fn stop_all(&mut self) {
        self.stopping = true;
        self.restarts_due.clear();
        for running in self.connectors.values() {
            for trigger in &running.triggers {
                trigger.fire();
            }
        }
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            self.stop_connector(&name).await;
        }
    }

    /// A task ended: logs a failure and keeps it for the worker's exit.
    pub fn ended(&mut self, outcome: Result<TaskOutcome, tokio::task::JoinError>) {
        match outcome {
            Ok((name, epoch, task, result)) => {
                let Some(running) = self.connectors.get_mut(&name) else {
                    return;
                };
                if running.epoch != epoch {
                    return;
                }
                if let Some(live) = running.live.get_mut(task) {
                    *live = false;
                }
                if let Err(e) = result {
                    tracing::error!(error = %e, "task failed");
                    self.failures.insert(task_id(&name, task), e.to_string());
                    self.schedule_restart(&name, task);
                }
                self.show(&name);
            }
            Err(e) => {
                tracing::error!(error = %e, "task panicked or was aborted");
                self.failures.insert(
                    format!("panic {e}"),
                    format!("a task panicked or was aborted: {e}"),
                );
            }
        }
    }

    /// Whether every task of every running connector has ended, and at least one failed.
    pub fn all_failed(&self) -> bool {
        self.tasks.is_empty() && !self.failures.is_empty()
    }

    /// A connector's request: new task configs replace its tasks if they changed; a failure stops
    /// its tasks for good (until an operator restarts it).
    pub async fn take_request(&mut self, name: String, epoch: u64, request: ConnectorRequest) {
        let Some(running) = self.connectors.get_mut(&name) else {
            return;
        };
        if running.epoch != epoch || running.failure.is_some() || !running.started {
            return;
        }
        match request {
            ConnectorRequest::Reconfigure => {
                let configs = running
                    .plugin
                    .connector()
                    .task_configs(running.config.tasks_max());
                if configs == running.task_configs {
                    return;
                }
                tracing::info!(connector = %name, tasks = configs.len(), "task configs changed: restarting the connector's tasks with them");
                self.replace_tasks(&name, configs).await;
            }
            ConnectorRequest::Fail(reason) => {
                tracing::error!(connector = %name, %reason, "connector failed; stopping its tasks");
                self.failures
                    .insert(name.clone(), format!("connector {name} failed: {reason}"));
                running.failure = Some(reason);
                let all: Vec<usize> = (0..running.live.len()).collect();
                self.stop_tasks(&name, &all).await;
            }
        }
        self.show(&name);
    }

    /// Stops a connector's tasks and starts new ones with these configs.
    async fn replace_tasks(&mut self, name: &str, configs: Vec<ConfigMap>) {
        let all: Vec<usize> = match self.connectors.get(name) {
            Some(running) => (0..running.live.len()).collect(),
            None => return,
        };
        self.stop_tasks(name, &all).await;
        for task in &all {
            self.statuses.remove(&task_id(name, *task));
            self.statuses.metrics().forget(name, *task);
        }
        self.restarts_due
            .retain(|(connector, _), _| connector != name);
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let Some(running) = self.connectors.get_mut(name) else {
            return;
        };
        running.epoch = epoch;
        if let Err(e) = running.spawn_all(self.worker, configs, &self.statuses, &mut self.tasks) {
            tracing::error!(connector = %name, error = %e, "cannot start the connector's tasks");
            running.failure = Some(e.to_string());
            self.failures.insert(name.to_owned(), e.to_string());
        }
    }

    /// Carries out an operator's command and answers it.
    pub async fn take_command(&mut self, command: Command) {
        match command {
            Command::Put {
                config,
                replace,
                initial,
                reply,
            } => {
                let _ = reply.send(self.put(config, replace, initial).await);
            }
            Command::Delete { name, reply } => {
                let _ = reply.send(self.delete(&name).await);
            }
            Command::Target {
                name,
                target,
                reply,
            } => {
                let _ = reply.send(self.set_target(&name, target).await);
            }
            Command::Restart {
                name,
                include_tasks,
                only_failed,
                reply,
            } => {
                let _ = reply.send(self.restart(&name, include_tasks, only_failed).await);
            }
            Command::RestartTask { name, task, reply } => {
                let _ = reply.send(self.restart_task(&name, task).await);
            }
            Command::Offsets { name, reply } => {
                let _ = reply.send(self.offsets(&name).await);
            }
            Command::AlterOffsets {
                name,
                changes,
                reply,
            } => {
                let _ = reply.send(self.alter_offsets(&name, changes).await);
            }
            Command::Validate { config, reply } => {
                let _ = reply.send(match self.plan(&config) {
                    Ok(_) => Ok(Vec::new()),
                    Err(ControlError::Invalid(e)) => Ok(e.issues),
                    Err(e) => Err(e),
                });
            }
        }
    }

    fn plan(&self, config: &ConfigMap) -> Result<ConnectorPlan, ControlError> {
        self.worker.plan(config).map_err(|e| match e {
            WorkerError::Config { source, .. } => ControlError::Invalid(source),
            other => ControlError::Worker(other),
        })
    }

    async fn put(
        &mut self,
        config: ConfigMap,
        replace: bool,
        initial: TargetState,
    ) -> Result<bool, ControlError> {
        let plan = self.plan(&config)?;
        let name = plan.name().to_owned();
        let existing = self.connectors.get(&name).map(|r| r.target);
        if existing.is_some() && !replace {
            return Err(ControlError::Exists(name));
        }
        if existing.is_some() {
            tracing::info!(connector = %name, "connector config changed: restarting it");
            self.forget(&name).await;
        } else {
            tracing::info!(connector = %name, "connector created");
        }
        let target = existing.unwrap_or(initial);
        self.start(plan, target).await?;
        self.persist();
        Ok(existing.is_none())
    }

    /// Stops a connector and removes it from the worker (not from the store).
    async fn forget(&mut self, name: &str) {
        self.stop_connector(name).await;
        if let Some(running) = self.connectors.remove(name) {
            for task in 0..running.live.len() {
                self.statuses.remove(&task_id(name, task));
                self.statuses.metrics().forget(name, task);
            }
            self.statuses.active_topics().reset(name);
        }
        self.failures
            .retain(|key, _| key != name && !is_task_of(key, name));
        self.restarts_due
            .retain(|(connector, _), _| connector != name);
        self.restarts.retain(|(connector, _), _| connector != name);
    }

    async fn delete(&mut self, name: &str) -> Result<(), ControlError> {
        if !self.connectors.contains_key(name) {
            return Err(ControlError::NotFound(name.to_owned()));
        }
        self.forget(name).await;
        if let Some(view) = &self.view {
            view.lock().remove(name);
        }
        tracing::info!(connector = %name, "connector deleted");
        self.persist();
        Ok(())
    }

    async fn set_target(&mut self, name: &str, target: TargetState) -> Result<(), ControlError> {
        let Some(running) = self.connectors.get(name) else {
            return Err(ControlError::NotFound(name.to_owned()));
        };
        if running.target == target {
            return Ok(());
        }
        if running.target != TargetState::Stopped && target != TargetState::Stopped {
            // Between running and paused the tasks stay: they only stop or start taking data.
            let paused = target == TargetState::Paused;
            match paused {
                true => tracing::info!(connector = %name, "pausing the connector's tasks"),
                false => tracing::info!(connector = %name, "resuming the connector's tasks"),
            }
            if let Some(running) = self.connectors.get_mut(name) {
                running.target = target;
                running.pause.set(paused);
            }
            self.show(name);
            self.persist();
            return Ok(());
        }
        let config = running.given.clone();
        match target {
            TargetState::Stopped => {
                tracing::info!(connector = %name, "stopping the connector and its tasks")
            }
            TargetState::Paused => {
                tracing::info!(connector = %name, "starting the connector with its tasks paused")
            }
            TargetState::Started => tracing::info!(connector = %name, "resuming the connector"),
        }
        let plan = self.plan(&config)?;
        self.forget(name).await;
        self.start(plan, target).await?;
        self.persist();
        Ok(())
    }

    async fn restart(
        &mut self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<(), ControlError> {
        let Some(running) = self.connectors.get(name) else {
            return Err(ControlError::NotFound(name.to_owned()));
        };
        if running.target == TargetState::Stopped {
            return Ok(());
        }
        let (config, target) = (running.given.clone(), running.target);
        if running.failure.is_some() || !running.started {
            // A failed connector has no tasks left: it starts afresh, tasks and all (paused if it was).
            tracing::info!(connector = %name, "restarting the failed connector");
            let plan = self.plan(&config)?;
            self.forget(name).await;
            self.start(plan, target).await?;
            return Ok(());
        }
        if !only_failed {
            tracing::info!(connector = %name, "restarting the connector");
            let plan = self.plan(&config)?;
            if self.restart_instance(name, plan).await? {
                // Its task configs changed: every task was restarted with them.
                return Ok(());
            }
        }
        if include_tasks {
            let tasks: Vec<usize> = (0..running_tasks(self, name))
                .filter(|&task| !only_failed || self.failures.contains_key(&task_id(name, task)))
                .collect();
            self.reset_restarts(name, &tasks);
            self.restart_tasks(name, &tasks).await;
        }
        Ok(())
    }

    /// Replaces a running connector's instance with a new one, its tasks left running unless its new
    /// task configs differ (then they are replaced, and this says so).
    async fn restart_instance(
        &mut self,
        name: &str,
        plan: ConnectorPlan,
    ) -> Result<bool, ControlError> {
        let Some(running) = self.connectors.get_mut(name) else {
            return Err(ControlError::NotFound(name.to_owned()));
        };
        if std::mem::take(&mut running.started) {
            if let Err(e) = running.plugin.connector().stop().await {
                tracing::warn!(connector = %name, error = %e, "connector stop failed");
            }
        }
        running.plugin = plan.plugin;
        running.given = plan.given;
        let context = connector_context(&self.requests, name, running.epoch);
        let started = running
            .plugin
            .connector()
            .start(running.config.props(), context)
            .await;
        if let Err(e) = started {
            let why = e.to_string();
            tracing::error!(connector = %name, error = %why, "connector failed to start");
            running.failure = Some(why.clone());
            self.failures.insert(name.to_owned(), why);
            let all: Vec<usize> = (0..running.live.len()).collect();
            self.stop_tasks(name, &all).await;
            self.show(name);
            return Ok(true);
        }
        running.started = true;
        let configs = running
            .plugin
            .connector()
            .task_configs(running.config.tasks_max());
        if configs == running.task_configs {
            return Ok(false);
        }
        self.replace_tasks(name, configs).await;
        self.show(name);
        Ok(true)
    }

    async fn restart_task(&mut self, name: &str, task: usize) -> Result<(), ControlError> {
        if !self.connectors.contains_key(name) {
            return Err(ControlError::NotFound(name.to_owned()));
        }
        if task >= running_tasks(self, name) {
            return Err(ControlError::TaskNotFound {
                connector: name.to_owned(),
                task,
            });
        }
        self.reset_restarts(name, &[task]);
        self.restart_tasks(name, &[task]).await;
        Ok(())
    }

    /// Stops these tasks of a connector and starts them again with their configs.
    async fn restart_tasks(&mut self, name: &str, tasks: &[usize]) {
        if tasks.is_empty() {
            return;
        }
        tracing::info!(connector = %name, ?tasks, "restarting tasks");
        self.stop_tasks(name, tasks).await;
        for &task in tasks {
            self.failures.remove(&task_id(name, task));
            self.restarts_due.remove(&(name.to_owned(), task));
        }
        let Some(running) = self.connectors.get_mut(name) else {
            return;
        };
        let restarted: Vec<(usize, ConfigMap)> = tasks
            .iter()
            .filter_map(|&task| Some((task, running.task_configs.get(task)?.clone())))
            .collect();
        if let Err(e) = self
            .worker
            .spawn_tasks(running, restarted, &self.statuses, &mut self.tasks)
        {
            tracing::error!(connector = %name, error = %e, "cannot restart the tasks");
            self.failures.insert(name.to_owned(), e.to_string());
        }
    }
}

/// How many tasks a connector has (configs given).
fn running_tasks(herder: &Herder<'_>, name: &str) -> usize {
    herder
        .connectors
        .get(name)
        .map_or(0, |r| r.task_configs.len())
}

/// Whether `key` (of [`Herder::failures`]) is the id of a task of `connector`.
fn is_task_of(key: &str, connector: &str) -> bool {
    key.strip_prefix(connector)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|index| index.parse::<usize>().is_ok())
}

impl Herder<'_> {
    /// A task failed: with `task.restart.policy=on-failure`, it restarts after its backoff.
    fn schedule_restart(&mut self, name: &str, task: usize) {
        let Some(running) = self.connectors.get(name) else {
            return;
        };
        if self.stopping || running.failure.is_some() || running.target == TargetState::Stopped {
            return;
        }
        let key = (name.to_owned(), task);
        let attempt = self.restarts.get(&key).copied().unwrap_or(0) + 1;
        let Some(backoff) = running.config.restart_backoff(attempt) else {
            return;
        };
        tracing::warn!(task = %task_id(name, task), ?backoff, attempt, "restarting the failed task after a backoff (task.restart.policy=on-failure)");
        self.restarts.insert(key.clone(), attempt);
        self.restarts_due.insert(key, Instant::now() + backoff);
    }

    /// When the next automatic restart is due, if one is.
    pub fn next_restart(&self) -> Option<Instant> {
        self.restarts_due.values().min().copied()
    }

    /// Restarts the failed tasks whose backoff is over.
    pub async fn restart_due(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, usize)> = self
            .restarts_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(key, _)| key.clone())
            .collect();
        for (name, task) in due {
            self.restarts_due.remove(&(name.clone(), task));
            let attempts = self.restarts.get(&(name.clone(), task)).copied();
            self.restart_tasks(&name, &[task]).await;
            // An automatic restart counts on: only an operator's restart starts the count afresh.
            if let Some(attempts) = attempts {
                self.restarts.insert((name.clone(), task), attempts);
            }
            self.show(&name);
        }
    }

    /// An operator restarted these tasks: their count of automatic restarts starts afresh.
    fn reset_restarts(&mut self, name: &str, tasks: &[usize]) {
        for &task in tasks {
            self.restarts.remove(&(name.to_owned(), task));
        }
    }

    /// Writes the connectors' configs and target states to the store, if the worker keeps one.
    fn persist(&mut self) {
        let Some(store) = &mut self.store else {
            return;
        };
        let connectors = self
            .connectors
            .iter()
            .map(|(name, r)| (name.clone(), (r.given.clone(), r.target)))
            .collect();
        if let Err(e) = store.save(connectors) {
            tracing::error!(error = %e, "cannot save the connectors' configs; changes made over REST are lost at the next restart");
        }
    }

    /// Shows a connector as it now is to operators.
    pub fn show(&self, name: &str) {
        let Some(view) = &self.view else {
            return;
        };
        let Some(running) = self.connectors.get(name) else {
            view.lock().remove(name);
            return;
        };
        let (state, trace) = match (&running.failure, running.target) {
            (Some(why), _) => (State::Failed, Some(why.clone())),
            (None, TargetState::Stopped) => (State::Stopped, None),
            (None, TargetState::Paused) => (State::Paused, None),
            (None, TargetState::Started) => (State::Running, None),
        };
        let kind = match running.plugin {
            Plugin::Sink(_) => ConnectorType::Sink,
            _ => ConnectorType::Source,
        };
        let restarts = (0..running.task_configs.len())
            .filter_map(|task| {
                let key = (name.to_owned(), task);
                let attempts = self.restarts.get(&key).copied()?;
                Some((task, (attempts, self.restarts_due.contains_key(&key))))
            })
            .collect();
        view.lock().insert(
            name.to_owned(),
            ConnectorEntry {
                config: running.given.clone(),
                kind,
                state,
                trace,
                task_configs: running
                    .task_configs
                    .iter()
                    .map(|task| with_references(task, &running.given))
                    .collect(),
                restarts,
            },
        );
    }
}

/// A task's config as operators read it: where the connector's config holds a config provider
/// reference, the task's value of that key shows the reference instead of the secret it stands for
/// (Kafka Connect's reverse transform).
fn with_references(task: &ConfigMap, given: &ConfigMap) -> ConfigMap {
    let mut shown = task.clone();
    for (key, value) in given.iter().filter(|(_, v)| v.contains("${")) {
        if let Some(slot) = shown.get_mut(key) {
            slot.clone_from(value);
        }
    }
    shown
}
