//! The source task loop (Kafka Connect's `WorkerSourceTask`): poll the task, convert and produce its
//! records, and commit source offsets only up to the contiguous prefix Kafka has acknowledged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::api::{ConnectError, RecordMetadata, SourceRecord, SourceTask, SourceTaskContext};
use crate::config::ConfigMap;
use crate::kafka::{Admin, Delivery, Producer, ProducerHandle};

use super::connector_config::ConnectorConfig;
use super::dead_letter_queue::{source_dead_letter, SourceDeadLetters};
use super::in_flight::InFlight;
use super::metrics::timed;
use super::pause::PauseSignal;
use super::records::{
    convert_error, describe, log_skipped, send_when_room, transform_error, transform_source,
};
use super::repeated::Repeated;
use super::shutdown::Shutdown;
use super::source_offsets::ConnectorOffsets;
use super::status::TaskCounter;
use super::submitted::{CommittableOffsets, Submitted, SubmittedRecords};
use super::topic_creation::TopicCreator;
use super::TaskError;

/// Records handed to the producer and not yet acknowledged, at most: bounds memory, and the source
/// waits for acknowledgements past it.
const MAX_IN_FLIGHT: usize = 16_384;

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
    config: Arc<ConnectorConfig>,
    producer: Box<dyn Producer>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    offsets: ConnectorOffsets,
    submitted: SubmittedRecords,
    in_flight: InFlight,
    /// Whether the task's `commit_record` reads keys and values (asked after `start`).
    commit_record_reads_data: bool,
    /// The connector's pause: while paused, the task is not polled.
    pause: PauseSignal,
    /// Offsets taken from `submitted` whose write to the store has not succeeded yet.
    uncommitted: CommittableOffsets,
    topics: TopicCreator,
    flush_timeout: Duration,
    /// Records the converter refused (skipped under `errors.tolerance=all`).
    refused: Repeated,
    /// Records Kafka did not accept.
    undelivered: Repeated,
    /// Where records that cannot be transformed or converted go, if anywhere.
    dead_letters: Option<SourceDeadLetters>,
    /// Tokens of the dead letters in flight: their acknowledgement commits their record's offset.
    dead_letter_tokens: BTreeSet<u64>,
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
        self.status = status;
        self
    }

    /// Follows its connector's pause.
    pub fn with_pause(mut self, pause: PauseSignal) -> SourceTaskRunner {
        self.pause = pause;
        self
    }

    pub fn new(task: Box<dyn SourceTask>, setup: SourceTaskSetup) -> SourceTaskRunner {
        SourceTaskRunner {
            status: TaskCounter::default(),
            retrying: false,
            id: setup.id,
            task,
            task_config: setup.task_config,
            config: setup.config,
            producer: setup.producer.producer,
            deliveries: setup.producer.deliveries,
            offsets: setup.offsets,
            submitted: SubmittedRecords::new(),
            in_flight: InFlight::default(),
            commit_record_reads_data: true,
            pause: PauseSignal::never(),
            uncommitted: CommittableOffsets::default(),
            topics: TopicCreator::new(setup.admin),
            flush_timeout: setup.flush_timeout,
            refused: Repeated::default(),
            undelivered: Repeated::default(),
            dead_letters: setup.dead_letters,
            dead_letter_tokens: BTreeSet::new(),
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
        self.commit_record_reads_data = self.task.commit_record_reads_data();
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
        let period = self.config.offset_flush_interval();
        let mut commit_timer = interval_at(Instant::now() + period, period);
        commit_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            // Acknowledgements arrive in bursts: serve every one that is ready before building the
            // select's futures again (the task's poll future among them) for the next.
            self.take_deliveries().await?;
            let room = self.in_flight.len() < MAX_IN_FLIGHT;
            let paused = self.pause.is_paused();
            // Acknowledgements wake the loop only when there is no room to poll (or no polling): a
            // poll they cancelled would start over, and a task that waits inside `poll` (for its next
            // interval, or for data) would fall behind each time the producer heard from a broker.
            tokio::select! {
                biased;
                () = shutdown.recv() => return Ok(()),
                _ = commit_timer.tick() => {
                    self.take_deliveries().await?;
                    self.commit_offsets().await?;
                }
                // A pause drops a pending poll (polls are cancel-safe); a resume polls again.
                () = self.pause.changed() => {}
                Some(delivery) = self.deliveries.recv(), if !room || paused => self.on_delivery(delivery).await?,
                (batch, took) = timed(self.task.poll()), if room && !paused => match batch {
                    Ok(records) => {
                        self.status.metrics().polled(records.len(), took);
                        if std::mem::take(&mut self.retrying) {
                            self.status.blocked(None);
                        }
                        self.send_batch(records).await?
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::warn!(task = %self.id, error = %e, "retriable poll error");
                        self.retrying = true;
                        self.status.blocked(Some(format!("retrying poll after a retriable error ({e})")));
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                    Err(e) => return Err(self.fail("poll", e)),
                },
            }
        }
    }

    /// Serves every delivery report that has arrived.
    async fn take_deliveries(&mut self) -> Result<(), TaskError> {
        while let Ok(delivery) = self.deliveries.try_recv() {
            self.on_delivery(delivery).await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self, records: Vec<SourceRecord>) -> Result<(), TaskError> {
        for record in records {
            let retry = self.config.retry_policy();
            let sent =
                match transform_source(&self.config.transforms, &record, &retry, &self.id).await {
                    Ok(Some(sent)) => sent,
                    Ok(None) => {
                        self.skip(&record);
                        continue;
                    }
                    Err(e) if self.config.tolerates_errors() => {
                        let message = e.to_string();
                        self.skip_or_dead_letter(record, "TRANSFORMATION", &e.class, &message)
                            .await?;
                        continue;
                    }
                    Err(e) => {
                        let error = transform_error(&record, &e);
                        return Err(self.fail("transform", ConnectError::fatal(error)));
                    }
                };
            self.topics
                .ensure(&self.id, &self.config, &sent.topic)
                .await?;
            self.status.used_topic(&sent.topic);
            let converters = self.config.converters();
            let produced = match converters.to_kafka(&sent) {
                Ok(produced) => produced,
                Err((stage, e)) if self.config.tolerates_errors() => {
                    drop(sent);
                    let message = e.to_string();
                    self.skip_or_dead_letter(record, stage, e.converter(), &message)
                        .await?;
                    continue;
                }
                Err((_, e)) => {
                    let error = convert_error(&sent, &e);
                    return Err(self.fail("convert", ConnectError::fatal(error)));
                }
            };
            let token = self.in_flight.next_token();
            send_when_room(&*self.producer, &produced.produce_record(), token)
                .await
                .map_err(|e| TaskError::Send {
                    task: self.id.clone(),
                    record: describe(&sent),
                    source: e,
                })?;
            drop(produced);
            drop(sent);
            let handle = self.track(&record);
            // Kept for `commit_record`: whole if the task reads the data, its data freed now otherwise.
            let kept = match self.commit_record_reads_data {
                true => record,
                false => record.without_data(),
            };
            self.in_flight.insert(kept, handle);
        }
        Ok(())
    }

    /// A record that cannot be transformed or converted, under `errors.tolerance=all`: written to the
    /// dead letter queue if the connector has one (its offset committed once Kafka acknowledged the dead
    /// letter), skipped otherwise.
    async fn skip_or_dead_letter(
        &mut self,
        record: SourceRecord,
        stage: &'static str,
        class: &str,
        message: &str,
    ) -> Result<(), TaskError> {
        log_skipped(
            &self.config,
            &self.id,
            &record,
            stage,
            class,
            message,
            &mut self.refused,
        );
        self.status.metrics().skipped_for_error();
        let Some(queue) = &self.dead_letters else {
            self.skip(&record);
            return Ok(());
        };
        let converters = self.config.converters();
        let letter = source_dead_letter(queue, &converters, &record, stage, class, message);
        self.topics
            .ensure(&self.id, &self.config, &letter.topic)
            .await?;
        let token = self.in_flight.next_token();
        send_when_room(&*self.producer, &letter.produce_record(), token)
            .await
            .map_err(|e| TaskError::Send {
                task: self.id.clone(),
                record: format!("the dead letter of {}", describe(&record)),
                source: e,
            })?;
        self.dead_letter_tokens.insert(token);
        let handle = self.track(&record);
        self.in_flight.insert(record, handle);
        Ok(())
    }

    /// A record that goes nowhere (dropped by a transform, or skipped as bad): its offset is committed
    /// and the task told, without metadata.
    fn skip(&mut self, record: &SourceRecord) {
        if let Some(handle) = self.track(record) {
            self.submitted.ack(handle);
        }
        commit_record(&self.id, &mut *self.task, record, None);
    }

    /// Registers a record whose offset is to be committed once acknowledged. Records without a source
    /// partition (stdin, say) have no offset to commit and are not tracked, as in Kafka Connect.
    fn track(&mut self, record: &SourceRecord) -> Option<Submitted> {
        if record.source_partition.is_empty() {
            return None;
        }
        Some(self.submitted.submit(
            record.source_partition.clone(),
            record.source_offset.clone(),
        ))
    }

    async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), TaskError> {
        let dead_letter = self.dead_letter_tokens.remove(&delivery.token);
        let SourceTaskRunner {
            id,
            task,
            submitted,
            in_flight,
            status,
            undelivered,
            ..
        } = self;
        let acknowledged = in_flight.acknowledge(delivery.token, |record, handle| {
            match delivery.result {
                Ok(metadata) => {
                    if let Some(handle) = handle {
                        submitted.ack(handle);
                    }
                    if dead_letter {
                        // The record itself went nowhere: its dead letter is what Kafka stored.
                        commit_record(id, &mut **task, record, None);
                        status.metrics().dead_lettered(1, true);
                    } else {
                        commit_record(id, &mut **task, record, Some(&metadata));
                        status.moved(1);
                        status.metrics().written(1);
                    }
                    Ok(())
                }
                Err(e) => {
                    if let Some(more) = undelivered.happened() {
                        tracing::error!(task = %id, record = %describe(record), error = %e, more_since_last_line = more, "Kafka did not accept a record");
                    }
                    Err(TaskError::Kafka {
                        task: id.clone(),
                        source: e,
                    })
                }
            }
        });
        acknowledged.unwrap_or(Ok(()))
    }

    /// Writes the offsets of the acknowledged prefix to the offset store, then tells the task.
    async fn commit_offsets(&mut self) -> Result<(), TaskError> {
        self.uncommitted =
            std::mem::take(&mut self.uncommitted).updated_with(self.submitted.committable());
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
        if let Err(e) = self.producer.flush(self.flush_timeout).await {
            tracing::warn!(task = %self.id, error = %e, "producer flush on stop failed");
        }
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, self.deliveries.recv()).await {
                Ok(Some(delivery)) => {
                    // Counted (and logged at a bounded rate) by `on_delivery`, summarised below.
                    let _ = self.on_delivery(delivery).await;
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(task = %self.id, outstanding = self.in_flight.len(),
                        "stopping with unacknowledged records; their offsets stay uncommitted");
                    break;
                }
            }
        }
        let undelivered = self.undelivered.take_unlogged();
        if undelivered > 0 {
            tracing::error!(task = %self.id, records = undelivered, "more records Kafka did not accept; their offsets stay uncommitted");
        }
        let refused = self.refused.take_unlogged();
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
        tracing::error!(task = %self.id, stage, error = %error, "source task failed");
        TaskError::Connector {
            task: self.id.clone(),
            stage,
            source: error,
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
