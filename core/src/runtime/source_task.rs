//! The source task loop (Kafka Connect's `WorkerSourceTask`): poll the task, convert and produce its
//! records, and commit source offsets only up to the contiguous prefix Kafka has acknowledged.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::api::{ConnectError, RecordMetadata, SourceRecord, SourceTask, SourceTaskContext};
use crate::config::ConfigMap;
use crate::kafka::{Admin, Delivery, DeliveryReceiver, ProducerHandle};

use super::connector_config::ConnectorConfig;
use super::dead_letter_queue::SourceDeadLetters;
use super::metrics::timed;
use super::pause::PauseSignal;
use super::repeated::Repeated;
use super::shutdown::Shutdown;
use super::source_offsets::ConnectorOffsets;
use super::source_outbox::{source_task_failed, Outbox, OutboxSetup};
use super::status::TaskCounter;
use super::submitted::CommittableOffsets;
use super::topic_creation::TopicCreator;
use super::TaskError;

/// How long to wait before polling again after a retriable poll error.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// Runs one source task until shutdown or failure.
pub struct SourceTaskRunner {
    id: String,
    /// What the worker's status line says of this task.
    status: TaskCounter,
    /// The last poll failed with a retriable error: the status says so until a poll succeeds.
    retrying: bool,
    task: Box<dyn SourceTask>,
    task_config: ConfigMap,
    deliveries: DeliveryReceiver,
    offsets: ConnectorOffsets,
    /// The task's records between its poll and Kafka's acknowledgement.
    outbox: Outbox,
    /// What the last poll returned, not yet queued in the outbox.
    polled: Option<(Result<Vec<SourceRecord>, ConnectError>, Duration)>,
    /// The connector's pause: while paused, the task is not polled.
    pause: PauseSignal,
    /// Offsets taken from the outbox whose write to the store has not succeeded yet.
    uncommitted: CommittableOffsets,
    /// `offset.flush.interval.ms`.
    commit_interval: Duration,
    flush_timeout: Duration,
    /// Records Kafka did not accept.
    undelivered: Repeated,
}

/// What a source task runner needs besides its task.
pub struct SourceTaskSetup {
    pub id: String,
    pub task_config: ConfigMap,
    pub config: Arc<ConnectorConfig>,
    pub producer: ProducerHandle,
    /// Set when the connector may create its topics.
    pub admin: Option<Arc<dyn Admin>>,
    pub offsets: ConnectorOffsets,
    pub flush_timeout: Duration,
    /// The connector's dead letter queue, if it has one.
    pub dead_letters: Option<SourceDeadLetters>,
}

impl SourceTaskRunner {
    /// Reports this task's state and records to a worker's status line.
    pub(crate) fn with_status(mut self, status: TaskCounter) -> SourceTaskRunner {
        self.outbox.set_status(status.clone());
        self.status = status;
        self
    }

    /// Follows its connector's pause.
    pub fn with_pause(mut self, pause: PauseSignal) -> SourceTaskRunner {
        self.pause = pause;
        self
    }

    pub fn new(task: Box<dyn SourceTask>, setup: SourceTaskSetup) -> SourceTaskRunner {
        let commit_interval = setup.config.offset_flush_interval();
        let outbox = Outbox::new(OutboxSetup {
            id: setup.id.clone(),
            config: setup.config,
            producer: setup.producer.producer,
            topics: TopicCreator::new(setup.admin),
            dead_letters: setup.dead_letters,
        });
        SourceTaskRunner {
            status: TaskCounter::default(),
            retrying: false,
            id: setup.id,
            task,
            task_config: setup.task_config,
            deliveries: setup.producer.deliveries,
            offsets: setup.offsets,
            outbox,
            polled: None,
            pause: PauseSignal::never(),
            uncommitted: CommittableOffsets::default(),
            commit_interval,
            flush_timeout: setup.flush_timeout,
            undelivered: Repeated::default(),
        }
    }

    /// Starts the task and runs it until `shutdown` fires or it fails; then waits for outstanding
    /// acknowledgements, commits offsets and stops the task.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let context =
            SourceTaskContext::new(self.task_config.clone(), Arc::new(self.offsets.clone()));
        self.task
            .start(context)
            .await
            .map_err(|e| self.fail("start", e))?;
        self.outbox.keep_for(self.task.commit_record_reads());
        tracing::info!(task = %self.id, "source task started");
        let outcome = self.run_until_stopped(&mut shutdown).await;
        let finished = self.finish().await;
        if let Err(e) = self.task.stop().await {
            tracing::warn!(task = %self.id, error = %e, "source task stop failed");
        }
        tracing::info!(task = %self.id, "source task stopped");
        outcome.and(finished)
    }

    async fn run_until_stopped(&mut self, shutdown: &mut Shutdown) -> Result<(), TaskError> {
        let period = self.commit_interval;
        let mut commit_timer = interval_at(Instant::now() + period, period);
        commit_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // Acknowledgements arrive in bursts: serve every one that is ready before building the
            // select's futures again (the task's poll future among them) for the next.
            self.take_deliveries().await?;
            self.tell_skipped();
            if let Some((polled, took)) = self.polled.take() {
                self.on_polled(polled, took).await?;
            }
            let paused = self.pause.is_paused();
            let room = self.outbox.has_room();
            let poll = room && !paused;
            let send = self.outbox.has_unsent();
            // The task is polled for its next batch while its last one is sent: the send runs while
            // the poll waits (for its database, its file), and only one batch is ever waiting. A poll
            // that returned keeps its records in `polled` at once: the send beside it may still be
            // waiting when another branch wins, and what a finished poll returned must not be dropped.
            // Acknowledgements wake the loop only when there is no room to poll (or no polling): a
            // poll they cancelled would start over, and a task that waits inside `poll` (for its next
            // interval, or for data) would fall behind each time the producer heard from a broker.
            let task = &mut *self.task;
            let outbox = &mut self.outbox;
            let slot = &mut self.polled;
            let polled_and_sent = async {
                let polling = async {
                    if poll {
                        *slot = Some(timed(task.poll()).await);
                    }
                };
                let ((), sent) = tokio::join!(polling, outbox.send_unsent());
                sent
            };
            tokio::select! {
                biased;
                () = shutdown.recv() => return Ok(()),
                _ = commit_timer.tick() => {
                    self.take_deliveries().await?;
                    self.commit_offsets().await?;
                }
                // A pause drops a pending poll (polls are cancel-safe); a resume polls again.
                () = self.pause.changed() => {}
                Some(delivery) = self.deliveries.recv(), if !room || paused => self.on_one_delivery(delivery)?,
                sent = polled_and_sent, if poll || send => sent?,
            }
        }
    }

    /// Queues a poll's records for sending, or waits out a retriable poll error, or fails.
    async fn on_polled(
        &mut self,
        polled: Result<Vec<SourceRecord>, ConnectError>,
        took: Duration,
    ) -> Result<(), TaskError> {
        match polled {
            Ok(records) => {
                self.status.metrics().polled(records.len(), took);
                if std::mem::take(&mut self.retrying) {
                    self.status.blocked(None);
                }
                self.outbox.push(records);
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(task = %self.id, error = %e, "retriable poll error");
                self.retrying = true;
                self.status
                    .blocked(Some(format!("retrying poll after a retriable error ({e})")));
                tokio::time::sleep(RETRY_BACKOFF).await;
                Ok(())
            }
            Err(e) => Err(self.fail("poll", e)),
        }
    }

    /// Serves every delivery report that has arrived.
    async fn take_deliveries(&mut self) -> Result<(), TaskError> {
        let mut counts = Acknowledgements::default();
        let mut served = Ok(());
        while let Some(delivery) = self.deliveries.try_recv() {
            served = self.on_delivery(delivery, &mut counts);
            if served.is_err() {
                break;
            }
        }
        counts.report(&self.status);
        served
    }

    /// Serves one delivery report that arrived alone.
    fn on_one_delivery(&mut self, delivery: Delivery) -> Result<(), TaskError> {
        let mut counts = Acknowledgements::default();
        let served = self.on_delivery(delivery, &mut counts);
        counts.report(&self.status);
        served
    }

    /// Tells the task of its records that went nowhere (their offsets are committable).
    fn tell_skipped(&mut self) {
        for record in self.outbox.take_skipped() {
            commit_record(&self.id, &mut *self.task, &record, None);
        }
    }

    /// Marks a record acknowledged (its offset committable) and tells the task, or fails if Kafka
    /// refused it.
    fn on_delivery(
        &mut self,
        delivery: Delivery,
        counts: &mut Acknowledgements,
    ) -> Result<(), TaskError> {
        let Some(acknowledged) = self
            .outbox
            .delivered(delivery.token, delivery.result.is_ok())
        else {
            return Ok(());
        };
        let told = acknowledged.record.as_ref();
        match delivery.result {
            Ok(metadata) => {
                if acknowledged.dead_letter {
                    // The record itself went nowhere: its dead letter is what Kafka stored.
                    if let Some(record) = told {
                        commit_record(&self.id, &mut *self.task, record, None);
                    }
                    counts.dead_lettered += 1;
                } else {
                    if let Some(record) = told {
                        commit_record(&self.id, &mut *self.task, record, Some(&metadata));
                    }
                    counts.written += 1;
                }
                Ok(())
            }
            Err(e) => {
                if let Some(more) = self.undelivered.happened() {
                    let record = acknowledged.refused.unwrap_or_default();
                    tracing::error!(task = %self.id, record = %record, error = %e, more_since_last_line = more, "Kafka did not accept a record");
                }
                Err(TaskError::Kafka {
                    task: self.id.clone(),
                    source: e,
                })
            }
        }
    }

    /// Writes the offsets of the acknowledged prefix to the offset store, then tells the task.
    async fn commit_offsets(&mut self) -> Result<(), TaskError> {
        // A record's offset is committed only after the task heard of the record.
        self.tell_skipped();
        self.uncommitted = std::mem::take(&mut self.uncommitted)
            .updated_with(self.outbox.submitted().committable());
        if self.uncommitted.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let outcome = self.offsets.commit(&self.uncommitted.offsets);
        self.status
            .metrics()
            .committed(outcome.is_ok(), started.elapsed());
        if let Err(e) = outcome {
            tracing::error!(task = %self.id, error = %e, "failed to commit source offsets; will retry");
            return Ok(());
        }
        let committed = std::mem::take(&mut self.uncommitted);
        tracing::debug!(
            task = %self.id,
            partitions = committed.offsets.len(),
            records = committed.committable_messages,
            waiting = committed.uncommittable_messages,
            "committed source offsets"
        );
        if let Err(e) = self.task.commit().await {
            tracing::warn!(task = %self.id, error = %e, "task commit failed");
        }
        Ok(())
    }

    /// Waits (up to `offset.flush.timeout.ms`) for outstanding acknowledgements, then commits.
    async fn finish(&mut self) -> Result<(), TaskError> {
        let deadline = Instant::now() + self.flush_timeout;
        if let Err(e) = self.outbox.flush(self.flush_timeout).await {
            tracing::warn!(task = %self.id, error = %e, "producer flush on stop failed");
        }
        while self.outbox.in_flight() > 0 {
            match tokio::time::timeout_at(deadline, self.deliveries.recv()).await {
                Ok(Some(delivery)) => {
                    // Counted (and logged at a bounded rate) by `on_delivery`, summarised below.
                    let _ = self.on_one_delivery(delivery);
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(task = %self.id, outstanding = self.outbox.in_flight(),
                        "stopping with unacknowledged records; their offsets stay uncommitted");
                    break;
                }
            }
        }
        let undelivered = self.undelivered.take_unlogged();
        if undelivered > 0 {
            tracing::error!(task = %self.id, records = undelivered, "more records Kafka did not accept; their offsets stay uncommitted");
        }
        let refused = self.outbox.refused_unlogged();
        if refused > 0 {
            tracing::warn!(task = %self.id, records = refused, "more records skipped because they cannot be converted");
        }
        self.commit_offsets().await?;
        if self.uncommitted.is_empty() {
            Ok(())
        } else {
            Err(TaskError::OffsetCommit {
                task: self.id.clone(),
            })
        }
    }

    fn fail(&self, stage: &'static str, error: ConnectError) -> TaskError {
        source_task_failed(&self.id, stage, error)
    }
}

/// Records Kafka acknowledged in a burst of delivery reports, counted once for the burst.
#[derive(Default)]
struct Acknowledgements {
    written: u64,
    dead_lettered: usize,
}

impl Acknowledgements {
    fn report(self, status: &TaskCounter) {
        if self.written > 0 {
            status.moved(self.written);
            status.metrics().written(self.written);
        }
        if self.dead_lettered > 0 {
            status.metrics().dead_lettered(self.dead_lettered, true);
        }
    }
}

/// Tells the task Kafka stored its record (or that the record was skipped, without metadata).
fn commit_record(
    id: &str,
    task: &mut dyn SourceTask,
    record: &SourceRecord,
    metadata: Option<&RecordMetadata>,
) {
    if let Err(e) = task.commit_record(record, metadata) {
        tracing::warn!(task = %id, error = %e, "commit_record failed");
    }
}
