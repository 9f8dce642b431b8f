//! The operator: a source task whose record Kafka refused for good fails (Kafka Connect's
//! `errors.tolerance=none`), and a failed task stays failed until someone restarts it. The harness does,
//! as an operator or a restart policy would: it watches worker 0's source tasks and restarts the worker
//! when one stops without the worker or the operator having asked for it (an operator's stop, restart
//! or config change of the source stops its tasks too); the new task resumes from its committed
//! offsets.

use async_trait::async_trait;
use sluice_core::api::{
    CommitRecordReads, ConnectError, ConnectorPlugin, ExactlyOnceSupport, PluginRegistry,
    RecordMetadata, SourceConnector, SourceRecord, SourceTask, SourceTaskContext,
};
use sluice_core::config::ConfigMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::delegate::delegate_connector;

/// Raised when a watched task fails; one per run of a worker.
#[derive(Clone)]
pub(super) struct TaskFailures {
    raised: Arc<watch::Sender<bool>>,
    /// The worker's stop signal: a task stopped while it is set was asked to stop.
    stopping: watch::Receiver<bool>,
    /// Set while an operator's call on the source is under way: its tasks stopping is expected.
    operating: Arc<AtomicBool>,
}

impl TaskFailures {
    pub(super) fn new(stopping: watch::Receiver<bool>, operating: Arc<AtomicBool>) -> TaskFailures {
        TaskFailures {
            raised: Arc::new(watch::channel(false).0),
            stopping,
            operating,
        }
    }

    fn task_stopped(&self) {
        if !*self.stopping.borrow() && !self.operating.load(Ordering::Acquire) {
            self.raised.send_replace(true);
        }
    }

    /// Whether a watched task has failed.
    pub(super) fn raised(&self) -> bool {
        *self.raised.borrow()
    }

    /// Completes when a watched task fails.
    pub(super) async fn wait(&self) {
        let mut raised = self.raised.subscribe();
        let _ = raised.wait_for(|raised| *raised).await;
    }

    /// Replaces the source connector `class` in `registry` by one whose tasks report their failures here.
    pub(super) fn watch(&self, registry: &mut PluginRegistry, class: &str) {
        let Some(ConnectorPlugin::Source(make)) = registry.lookup(class) else {
            return;
        };
        let failures = self.clone();
        registry.register(
            class,
            ConnectorPlugin::source(move || {
                Box::new(Watched {
                    inner: make(),
                    failures: failures.clone(),
                })
            }),
        );
    }
}

/// A source connector whose tasks are watched.
struct Watched {
    inner: Box<dyn SourceConnector>,
    failures: TaskFailures,
}

delegate_connector!(Watched);

impl SourceConnector for Watched {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(WatchedTask {
            inner: self.inner.create_task(),
            failures: self.failures.clone(),
        })
    }

    fn exactly_once_support(&self, config: &ConfigMap) -> ExactlyOnceSupport {
        self.inner.exactly_once_support(config)
    }
}

/// A source task that reports a stop its worker did not ask for.
struct WatchedTask {
    inner: Box<dyn SourceTask>,
    failures: TaskFailures,
}

#[async_trait]
impl SourceTask for WatchedTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        self.inner.start(context).await
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        self.inner.poll().await
    }

    async fn commit(&mut self) -> Result<(), ConnectError> {
        self.inner.commit().await
    }

    fn commit_record(
        &mut self,
        record: &SourceRecord,
        metadata: Option<&RecordMetadata>,
    ) -> Result<(), ConnectError> {
        self.inner.commit_record(record, metadata)
    }

    fn commit_record_reads(&self) -> CommitRecordReads {
        self.inner.commit_record_reads()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.failures.task_stopped();
        self.inner.stop().await
    }
}
