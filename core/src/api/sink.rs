//! Sink tasks and their context: receive records, make them durable on `flush`, and tell the runtime
//! which offsets may be committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{ConnectError, SinkRecord, TopicPartition};
use crate::config::ConfigMap;

/// Requests a sink task makes of the runtime; the runtime applies them after each call into the task.
#[derive(Debug, Default)]
pub(crate) struct SinkRequests {
    pub assignment: BTreeSet<TopicPartition>,
    pub rewinds: BTreeMap<TopicPartition, i64>,
    pub pause: BTreeSet<TopicPartition>,
    pub resume: BTreeSet<TopicPartition>,
    pub commit_requested: bool,
    /// How long to wait before a put that failed with a retriable error is tried again.
    pub retry_backoff: Option<std::time::Duration>,
    /// Records the task reported as errant, and why.
    pub errant: Vec<(SinkRecord, String)>,
}

/// What a sink task can ask of the runtime. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct SinkTaskContext {
    config: ConfigMap,
    requests: Arc<Mutex<SinkRequests>>,
}

impl SinkTaskContext {
    /// A context over a task config. The runtime makes one per task; tests of a sink task make their own.
    pub fn new(config: ConfigMap) -> SinkTaskContext {
        SinkTaskContext {
            config,
            requests: Arc::default(),
        }
    }

    /// A context and its runtime side, for a harness that drives a sink task as the runtime does.
    pub fn with_control(config: ConfigMap) -> (SinkTaskContext, SinkTaskControl) {
        let context = SinkTaskContext::new(config);
        let control = SinkTaskControl {
            requests: context.requests.clone(),
        };
        (context, control)
    }

    pub(crate) fn requests(&self) -> MutexGuard<'_, SinkRequests> {
        // A poisoned lock only means a task panicked mid-request; the data is still consistent.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The task's config.
    pub fn configs(&self) -> &ConfigMap {
        &self.config
    }

    /// The partitions currently assigned to this task.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.requests().assignment.clone()
    }

    /// Rewinds (or advances) consumption of a partition: the next record delivered from it has this offset.
    /// Used by sinks that store offsets in the destination, typically from `open`.
    pub fn offset(&self, partition: TopicPartition, offset: i64) {
        self.requests().rewinds.insert(partition, offset);
    }

    /// Stops delivering records of these partitions until `resume`.
    pub fn pause(&self, partitions: &[TopicPartition]) {
        let mut requests = self.requests();
        for p in partitions {
            requests.resume.remove(p);
            requests.pause.insert(p.clone());
        }
    }

    pub fn resume(&self, partitions: &[TopicPartition]) {
        let mut requests = self.requests();
        for p in partitions {
            requests.pause.remove(p);
            requests.resume.insert(p.clone());
        }
    }

    /// How long the runtime waits before it hands over the records of a put that failed with a retriable
    /// error again (Connect's `SinkTaskContext.timeout`); the runtime's own backoff when never called.
    pub fn timeout(&self, after: std::time::Duration) {
        self.requests().retry_backoff = Some(after);
    }

    /// Asks for an offset commit as soon as possible, not waiting for `offset.flush.interval.ms`.
    pub fn request_commit(&self) {
        self.requests().commit_requested = true;
    }

    /// Where the task reports records it cannot write (Kafka's `ErrantRecordReporter`).
    pub fn errant_record_reporter(&self) -> ErrantRecordReporter {
        ErrantRecordReporter {
            requests: self.requests.clone(),
        }
    }
}

/// Reports records a sink task cannot write, one at a time, while the rest of its batch goes on (Kafka's
/// `ErrantRecordReporter`). Under `errors.tolerance=all` the runtime logs each and writes it to the
/// connector's dead letter queue, if it has one, before any offset past it is committed; under
/// `errors.tolerance=none` a report fails the task. Cheap to clone.
#[derive(Clone)]
pub struct ErrantRecordReporter {
    requests: Arc<Mutex<SinkRequests>>,
}

impl ErrantRecordReporter {
    /// Reports `record`, which the task could not write, and why.
    pub fn report(&self, record: &SinkRecord, error: &dyn std::fmt::Display) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .errant
            .push((record.clone(), error.to_string()));
    }
}

/// The runtime's side of a [`SinkTaskContext`]: it tells the task its assignment and takes what the task
/// asked for. The runtime keeps one of its own; [`SinkTaskContext::with_control`] gives one to a harness
/// that drives a task without the runtime. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct SinkTaskControl {
    requests: Arc<Mutex<SinkRequests>>,
}

impl SinkTaskControl {
    fn requests(&self) -> MutexGuard<'_, SinkRequests> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What [`SinkTaskContext::assignment`] answers from now on.
    pub fn set_assignment(&self, partitions: BTreeSet<TopicPartition>) {
        self.requests().assignment = partitions;
    }

    /// The rewinds the task asked for since the last call ([`SinkTaskContext::offset`]).
    pub fn take_rewinds(&self) -> BTreeMap<TopicPartition, i64> {
        std::mem::take(&mut self.requests().rewinds)
    }

    /// The partitions the task asked to pause, and to resume, since the last call.
    pub fn take_pauses(&self) -> (BTreeSet<TopicPartition>, BTreeSet<TopicPartition>) {
        let mut requests = self.requests();
        (
            std::mem::take(&mut requests.pause),
            std::mem::take(&mut requests.resume),
        )
    }

    /// The records the task reported as errant since the last call, and why.
    pub fn take_errant(&self) -> Vec<(SinkRecord, String)> {
        std::mem::take(&mut self.requests().errant)
    }

    /// Whether the task asked for a commit since the last call ([`SinkTaskContext::request_commit`]).
    pub fn take_commit_request(&self) -> bool {
        std::mem::take(&mut self.requests().commit_requested)
    }
}

/// A task that writes records into a destination.
///
/// Offsets passed to `flush` and returned by `pre_commit` are "next offset to read" positions, as in
/// Kafka: a record at offset `o` is covered once `o + 1` is committed.
#[async_trait]
pub trait SinkTask: Send {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError>;

    /// Partitions were assigned to this task; a sink that keeps its own offsets may rewind here.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let _ = partitions;
        Ok(())
    }

    /// Hands over records; the task may buffer them. `ConnectError::Retriable` redelivers the same batch.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError>;

    /// Whether `put` reads the records' headers; asked once, after `start`. A task that never does
    /// says `false`, and then, unless the connector's transforms or error handling need them, its
    /// records come without headers: they are not read out of Kafka at all (librdkafka parses a
    /// record's headers only when asked, at about a fifth of a sink worker's CPU when records are
    /// small).
    fn reads_headers(&self) -> bool {
        true
    }

    /// Makes everything `put` so far durable.
    async fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        let _ = offsets;
        Ok(())
    }

    /// Returns the offsets that may be committed. The default flushes and returns `offsets` unchanged;
    /// an empty map commits nothing.
    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        self.flush(offsets).await?;
        Ok(offsets.clone())
    }

    /// Partitions are being taken away (after their last commit); drop any state kept for them.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let _ = partitions;
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError>;
}
