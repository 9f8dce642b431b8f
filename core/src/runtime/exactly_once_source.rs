//! The exactly-once source task loop (Kafka Connect's `ExactlyOnceWorkerSourceTask`, KIP-618): each
//! transaction carries a stretch of the task's records and their source offsets, written to the offsets
//! topic, so records and offsets become visible to read_committed readers together or not at all.
//!
//! The task's producer has `transactional.id = <group.id>-<connector>-<task>`: starting it fences every
//! older instance of the same task and aborts what it left open. A fenced instance is a zombie: it stops
//! at once, without committing or aborting anything. Offsets are read back from the topic, not from the
//! worker's offset file.
//!
//! Registering always wins, so an instance must not register when it is not the one meant to run: it
//! registers at most once, never once told to stop, and, when the worker has a generation
//! (`exactly.once.source.generation`), not if the offsets topic records a newer generation of the task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::api::{
    CommitRecordReads, ConnectError, RecordMetadata, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, SourceTaskContext,
};
use crate::config::ConfigMap;
use crate::kafka::{
    Admin, Delivery, DeliveryReceiver, KafkaError, LogReader, ProduceRecord, TransactionalHandle,
    TransactionalProducer,
};

use super::connector_config::{ConnectorConfig, TransactionBoundary};
use super::dead_letter_queue::{source_dead_letter, SourceDeadLetters};
use super::in_flight::InFlight;
use super::metrics::timed;
use super::offsets_topic::{generation_record, offset_key, offset_value, TopicOffsets};
use super::pause::PauseSignal;
use super::records::{
    convert_error, describe, log_skipped, send_when_room, transform_error, transform_source,
};
use super::repeated::Repeated;
use super::shutdown::Shutdown;
use super::status::TaskCounter;
use super::topic_creation::TopicCreator;
use super::TaskError;

/// How long to wait before polling again after a retriable poll error.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// How long registering the transactional id and reading the offsets topic may take at start, retried
/// while Kafka is unreachable.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a commit or abort may wait for Kafka (the Java producer's `max.block.ms` default): a commit
/// first waits for every record of the transaction.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The delivery token of offset records: no record of the task's carries it.
const OFFSET_TOKEN: u64 = u64::MAX;

/// Where a task's offset records go.
struct OffsetsPlace<'a> {
    producer: &'a dyn TransactionalProducer,
    topic: &'a str,
    connector: &'a str,
}

/// Sends one record of the offsets topic in the open transaction.
async fn send_offset(
    place: OffsetsPlace<'_>,
    partition: &SourcePartition,
    offset: &SourceOffset,
) -> Result<(), KafkaError> {
    let key = offset_key(place.connector, partition);
    let value = offset_value(offset);
    let record = ProduceRecord {
        topic: place.topic,
        partition: None,
        key: Some(&key),
        value: Some(&value),
        headers: &[],
        timestamp: None,
    };
    send_when_room(place.producer, &record, OFFSET_TOKEN).await
}

/// What an exactly-once source task runner needs besides its task.
pub struct ExactlyOnceSourceSetup {
    /// `<connector>-<task>`.
    pub id: String,
    /// The task's number.
    pub task: usize,
    /// `<group.id>-<connector>-<task>`.
    pub transactional_id: String,
    /// The worker's `exactly.once.source.generation`, and a read_uncommitted reader of the offsets topic
    /// that checks it before the id is registered.
    pub generation: Option<(u64, Box<dyn LogReader>)>,
    pub task_config: ConfigMap,
    pub config: Arc<ConnectorConfig>,
    /// A producer with the task's `transactional.id`.
    pub producer: TransactionalHandle,
    /// Reads the offsets topic, read_committed.
    pub reader: Box<dyn LogReader>,
    pub admin: Arc<dyn Admin>,
    /// Whether the connector may create its topics.
    pub creates_topics: bool,
    pub offsets_topic: String,
    /// The connector's dead letter queue, if it has one.
    pub dead_letters: Option<SourceDeadLetters>,
}

/// Runs one source task exactly once until shutdown, failure or fencing.
pub struct ExactlyOnceSourceRunner {
    id: String,
    task_number: usize,
    transactional_id: String,
    generation: Option<(u64, Box<dyn LogReader>)>,
    /// What the worker's status line says of this task.
    status: TaskCounter,
    /// The last poll failed with a retriable error: the status says so until a poll succeeds.
    retrying: bool,
    task: Box<dyn SourceTask>,
    task_config: ConfigMap,
    config: Arc<ConnectorConfig>,
    producer: Box<dyn TransactionalProducer>,
    deliveries: DeliveryReceiver,
    reader: Box<dyn LogReader>,
    admin: Arc<dyn Admin>,
    offsets_topic: String,
    in_flight: InFlight<SourceRecord>,
    /// What the task's `commit_record` reads (asked after `start`).
    commit_record_reads: CommitRecordReads,
    /// The connector's pause: while paused, the task is not polled.
    pause: PauseSignal,
    /// A transaction is open.
    open: bool,
    /// The last source offset of each source partition in the open transaction, by the partition's JSON.
    offsets: BTreeMap<String, (SourcePartition, SourceOffset)>,
    /// Records of the open transaction Kafka acknowledged (or skipped), told to the task once it commits.
    acknowledged: Vec<(SourceRecord, Option<RecordMetadata>)>,
    topics: TopicCreator,
    /// Records the converter refused (skipped under `errors.tolerance=all`).
    refused: Repeated,
    /// Where records that cannot be transformed or converted go, if anywhere.
    dead_letters: Option<SourceDeadLetters>,
}

impl ExactlyOnceSourceRunner {
    /// Reports this task's state and records to a worker's status line.
    pub(crate) fn with_status(mut self, status: TaskCounter) -> Self {
        self.status = status;
        self
    }

    /// Follows its connector's pause.
    pub fn with_pause(mut self, pause: PauseSignal) -> Self {
        self.pause = pause;
        self
    }

    pub fn new(task: Box<dyn SourceTask>, setup: ExactlyOnceSourceSetup) -> Self {
        ExactlyOnceSourceRunner {
            status: TaskCounter::default(),
            retrying: false,
            id: setup.id,
            task_number: setup.task,
            transactional_id: setup.transactional_id,
            generation: setup.generation,
            task,
            task_config: setup.task_config,
            config: setup.config,
            producer: setup.producer.producer,
            deliveries: setup.producer.deliveries,
            reader: setup.reader,
            topics: TopicCreator::new(setup.creates_topics.then(|| setup.admin.clone())),
            admin: setup.admin,
            offsets_topic: setup.offsets_topic,
            in_flight: InFlight::default(),
            commit_record_reads: CommitRecordReads::Everything,
            pause: PauseSignal::never(),
            open: false,
            offsets: BTreeMap::new(),
            acknowledged: Vec::new(),
            refused: Repeated::default(),
            dead_letters: setup.dead_letters,
        }
    }

    /// Fences older instances, reads the committed offsets, starts the task and runs it until `shutdown`
    /// fires or it fails; then commits what is open (unless fenced) and stops the task. A stop that comes
    /// while the instance is still preparing ends it there, without a (further) InitProducerId.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        let Some(offsets) = self.prepare(&mut shutdown).await? else {
            tracing::info!(task = %self.id, "exactly-once source task stopped before it started");
            return Ok(());
        };
        let context = SourceTaskContext::new(self.task_config.clone(), Arc::new(offsets));
        self.task
            .start(context)
            .await
            .map_err(|e| self.fail("start", e))?;
        self.commit_record_reads = self.task.commit_record_reads();
        tracing::info!(task = %self.id, "exactly-once source task started");
        let mut outcome = self.run_until_stopped(&mut shutdown).await;
        if outcome.is_ok() {
            outcome = self.commit().await;
        }
        if let Err(TaskError::Fenced { .. }) = &outcome {
            tracing::error!(
                task = %self.id,
                transactional_id = %self.transactional_id,
                "FENCED: another instance of this task registered its transactional.id with Kafka, so this one stops without committing (Kafka aborts its open transaction). If no other worker should run this connector, restart this one"
            );
        } else if outcome.is_err() && self.open {
            // Records already in Kafka stay invisible to read_committed readers.
            if let Err(e) = self.producer.abort_transaction(TRANSACTION_TIMEOUT).await {
                tracing::warn!(task = %self.id, error = %e, "could not abort the transaction");
            }
        }
        if let Err(e) = self.task.stop().await {
            tracing::warn!(task = %self.id, error = %e, "source task stop failed");
        }
        tracing::info!(task = %self.id, "exactly-once source task stopped");
        outcome
    }

    /// Registers the transactional id (fencing zombies), then reads this connector's committed offsets;
    /// retried while Kafka cannot be reached, up to [`START_TIMEOUT`]. `None` if `shutdown` fired first.
    ///
    /// The id is registered once: an instance that retried the registration after it succeeded would
    /// fence whichever instance replaced it meanwhile. A stop wins over every retry, so an instance
    /// told to stop while cut off never registers when the network heals. With a generation, the
    /// instance first looks for a newer one in the offsets topic, and records its own once registered.
    async fn prepare(
        &mut self,
        shutdown: &mut Shutdown,
    ) -> Result<Option<TopicOffsets>, TaskError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut registered = false;
        loop {
            let attempt = async {
                if !registered {
                    if let Some(newer) = self.newer_generation_before_registering().await? {
                        return Ok(Err(newer));
                    }
                    self.producer.init_transactions(START_TIMEOUT).await?;
                    registered = true;
                }
                let offsets = TopicOffsets::read(
                    &mut *self.reader,
                    &*self.admin,
                    &self.offsets_topic,
                    self.config.name(),
                    START_TIMEOUT,
                )
                .await?;
                if let Some(newer) = self.newer_generation(&offsets) {
                    return Ok(Err(newer));
                }
                self.record_generation(&offsets).await?;
                Ok(Ok(offsets))
            };
            let outcome = tokio::select! {
                biased;
                () = shutdown.recv() => return Ok(None),
                outcome = attempt => outcome,
            };
            match outcome {
                Ok(Ok(offsets)) => return Ok(Some(offsets)),
                Ok(Err(newer)) => return Err(self.superseded(newer)),
                Err(e @ KafkaError::ProducerFenced(_)) => return Err(self.kafka_error(e)),
                Err(e) if Instant::now() + RETRY_BACKOFF >= deadline => {
                    return Err(self.kafka_error(e))
                }
                Err(e) => {
                    tracing::warn!(task = %self.id, error = %e, "cannot start the task's transactions yet; retrying");
                    tokio::select! {
                        biased;
                        () = shutdown.recv() => return Ok(None),
                        () = tokio::time::sleep(RETRY_BACKOFF) => {}
                    }
                }
            }
        }
    }

    /// A generation of this task newer than the worker's, as the offsets topic holds it before this
    /// instance registers: read_uncommitted, so a newer instance's record counts from the moment it is
    /// written, and no open transaction of the instance about to be fenced holds the read up.
    async fn newer_generation_before_registering(&mut self) -> Result<Option<u64>, KafkaError> {
        let Some((_, reader)) = &mut self.generation else {
            return Ok(None);
        };
        let seen = TopicOffsets::read(
            &mut **reader,
            &*self.admin,
            &self.offsets_topic,
            self.config.name(),
            START_TIMEOUT,
        )
        .await?;
        Ok(self.newer_generation(&seen))
    }

    fn newer_generation(&self, offsets: &TopicOffsets) -> Option<u64> {
        let (mine, _) = self.generation.as_ref()?;
        offsets
            .generation(self.task_number)
            .filter(|recorded| recorded > mine)
    }

    /// Records this instance's generation in the offsets topic, in a transaction of its own, unless the
    /// topic already holds it.
    async fn record_generation(&mut self, offsets: &TopicOffsets) -> Result<(), KafkaError> {
        let Some((generation, _)) = &self.generation else {
            return Ok(());
        };
        if offsets.generation(self.task_number) == Some(*generation) {
            return Ok(());
        }
        let (partition, value) = generation_record(self.task_number, *generation);
        self.producer.begin_transaction()?;
        let written = async {
            let place = OffsetsPlace {
                producer: &*self.producer,
                topic: &self.offsets_topic,
                connector: self.config.name(),
            };
            send_offset(place, &partition, &value).await?;
            self.producer.commit_transaction(TRANSACTION_TIMEOUT).await
        };
        if let Err(e) = written.await {
            if let Err(abort) = self.producer.abort_transaction(TRANSACTION_TIMEOUT).await {
                tracing::debug!(task = %self.id, error = %abort, "could not abort the generation's transaction");
            }
            return Err(e);
        }
        tracing::info!(task = %self.id, generation, "recorded this task's generation in the offsets topic");
        Ok(())
    }

    fn superseded(&self, newer: u64) -> TaskError {
        let generation = self.generation.as_ref().map_or(0, |(g, _)| *g);
        let error = TaskError::Superseded {
            task: self.id.clone(),
            generation,
            newer,
        };
        tracing::error!(task = %self.id, error = %error, "not starting: a newer generation of this task runs elsewhere");
        error
    }

    async fn run_until_stopped(&mut self, shutdown: &mut Shutdown) -> Result<(), TaskError> {
        let boundary = self.config.transaction_boundary();
        let period = match boundary {
            TransactionBoundary::Interval(period) => period,
            TransactionBoundary::Poll => self.config.offset_flush_interval(),
        };
        let mut boundary_timer = interval_at(Instant::now() + period, period);
        boundary_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let by_interval = matches!(boundary, TransactionBoundary::Interval(_));
        loop {
            while let Some(delivery) = self.deliveries.try_recv() {
                self.on_delivery(delivery)?;
            }
            let room = self.in_flight.has_room();
            let paused = self.pause.is_paused();
            // Acknowledgements wake the loop only when there is no room to poll, or no polling (a poll
            // they cancelled would start over; see the at-least-once loop).
            tokio::select! {
                biased;
                () = shutdown.recv() => return Ok(()),
                _ = boundary_timer.tick(), if by_interval => self.commit().await?,
                () = self.pause.changed() => {}
                Some(delivery) = self.deliveries.recv(), if !room || paused => self.on_delivery(delivery)?,
                (batch, took) = timed(self.task.poll()), if room && !paused => match batch {
                    Ok(records) => {
                        self.status.metrics().polled(records.len(), took);
                        if std::mem::take(&mut self.retrying) {
                            self.status.blocked(None);
                        }
                        self.send_batch(records).await?;
                        if !by_interval {
                            self.commit().await?;
                        }
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

    async fn send_batch(&mut self, records: Vec<SourceRecord>) -> Result<(), TaskError> {
        for record in records {
            let retry = self.config.retry_policy();
            let sent =
                match transform_source(&self.config.transforms, &record, &retry, &self.id).await {
                    Ok(Some(sent)) => sent,
                    Ok(None) => {
                        self.begin()?;
                        self.skip(record);
                        continue;
                    }
                    Err(e) if self.config.tolerates_errors() => {
                        self.begin()?;
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
            self.begin()?;
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
                .map_err(|e| match e {
                    fenced @ KafkaError::ProducerFenced(_) => self.kafka_error(fenced),
                    source => TaskError::Send {
                        task: self.id.clone(),
                        record: describe(&sent),
                        source,
                    },
                })?;
            drop(produced);
            drop(sent);
            self.track_offset(&record);
            // Kept for `commit_record`: whole if the task reads the data, its data freed now otherwise.
            let kept = match self.commit_record_reads {
                CommitRecordReads::Everything => record,
                CommitRecordReads::NoData | CommitRecordReads::Nothing => record.without_data(),
            };
            self.in_flight.insert(token, kept);
        }
        while let Some(delivery) = self.deliveries.try_recv() {
            self.on_delivery(delivery)?;
        }
        Ok(())
    }

    /// A record that cannot be transformed or converted, under `errors.tolerance=all`: its dead letter
    /// goes into this transaction with its offset if the connector has a dead letter queue; otherwise it
    /// is skipped.
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
            self.skip(record);
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
            .map_err(|e| match e {
                fenced @ KafkaError::ProducerFenced(_) => self.kafka_error(fenced),
                source => TaskError::Send {
                    task: self.id.clone(),
                    record: format!("the dead letter of {}", describe(&record)),
                    source,
                },
            })?;
        self.status.metrics().dead_lettered(1, true);
        self.track_offset(&record);
        self.in_flight.insert(token, record);
        Ok(())
    }

    /// A record that goes nowhere (dropped by a transform, or skipped as bad): its offset goes into
    /// this transaction, and the task is told at its commit, without metadata.
    fn skip(&mut self, record: SourceRecord) {
        self.track_offset(&record);
        self.acknowledged.push((record, None));
    }

    /// Opens a transaction if none is.
    fn begin(&mut self) -> Result<(), TaskError> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| self.kafka_error(e))?;
            self.open = true;
        }
        Ok(())
    }

    /// The record's offset goes into this transaction. Records without a source partition have none.
    fn track_offset(&mut self, record: &SourceRecord) {
        if record.source_partition.is_empty() {
            return;
        }
        self.offsets.insert(
            record.source_partition.to_string(),
            (
                record.source_partition.clone(),
                record.source_offset.clone(),
            ),
        );
    }

    fn on_delivery(&mut self, delivery: Delivery) -> Result<(), TaskError> {
        let Some(record) = self.in_flight.take(delivery.token) else {
            return Ok(());
        };
        match delivery.result {
            Ok(metadata) => {
                self.acknowledged.push((record, Some(metadata)));
                self.status.moved(1);
                self.status.metrics().written(1);
                Ok(())
            }
            Err(e) => {
                tracing::error!(task = %self.id, record = %describe(&record), error = %e, "Kafka did not accept a record");
                Err(self.kafka_error(e))
            }
        }
    }

    /// Writes the transaction's source offsets to the offsets topic and commits it: its records and
    /// offsets become visible together. Then tells the task.
    async fn commit(&mut self) -> Result<(), TaskError> {
        if !self.open {
            return Ok(());
        }
        let (committed, took) = timed(self.commit_transaction()).await;
        self.status.metrics().committed(committed.is_ok(), took);
        committed
    }

    /// The transaction's offsets written and the transaction committed, then the task told.
    async fn commit_transaction(&mut self) -> Result<(), TaskError> {
        let offsets = std::mem::take(&mut self.offsets);
        for (partition, offset) in offsets.values() {
            let place = OffsetsPlace {
                producer: &*self.producer,
                topic: &self.offsets_topic,
                connector: self.config.name(),
            };
            send_offset(place, partition, offset)
                .await
                .map_err(|e| self.kafka_error(e))?;
        }
        self.producer
            .commit_transaction(TRANSACTION_TIMEOUT)
            .await
            .map_err(|e| self.kafka_error(e))?;
        self.open = false;
        while let Some(delivery) = self.deliveries.try_recv() {
            self.on_delivery(delivery)?;
        }
        tracing::debug!(task = %self.id, partitions = offsets.len(), records = self.acknowledged.len(), "committed a transaction");
        let acknowledged = std::mem::take(&mut self.acknowledged);
        if self.commit_record_reads != CommitRecordReads::Nothing {
            for (record, metadata) in acknowledged {
                if let Err(e) = self.task.commit_record(&record, metadata.as_ref()) {
                    tracing::warn!(task = %self.id, error = %e, "commit_record failed");
                }
            }
        }
        if let Err(e) = self.task.commit().await {
            tracing::warn!(task = %self.id, error = %e, "task commit failed");
        }
        Ok(())
    }

    fn kafka_error(&self, error: KafkaError) -> TaskError {
        match error {
            KafkaError::ProducerFenced(reason) => TaskError::Fenced {
                task: self.id.clone(),
                reason,
            },
            source => TaskError::Kafka {
                task: self.id.clone(),
                source,
            },
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
