//! The sink task loop (Kafka Connect's `WorkerSinkTask`): consume as a member of the connector's group,
//! convert and `put` records, and commit only offsets that `pre_commit` (by default: after `flush`)
//! declared durable, both periodically and before partitions are given up. A stop commits before the
//! task leaves its group, and waits at its connector's [`LeaveGate`] until the other tasks committed too.
//!
//! A slow `put` or periodic `flush` does not cost the task its partitions, as it does in Kafka Connect:
//! while the call runs, the loop keeps polling with the task's partitions paused ([`KeepAlive`]), so
//! `max.poll.interval.ms` never passes, and a lost membership is noticed at once. Past
//! `put.flush.limit.ms` the call is reported as blocked and polling stops, so that the group hands a
//! hung task's partitions to a live one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::api::{ConnectError, SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use crate::config::ConfigMap;
use crate::kafka::{ConsumedRecord, GroupConsumer, GroupEvent, KafkaError};
use crate::transforms::{Outcome, TransformFailed};

use super::connector_config::{ConnectorConfig, DEFAULT_MAX_POLL_RECORDS};
use super::dead_letter_queue::{DeadLetter, DeadLetterQueue, DATA_EXCEPTION};
use super::keep_alive::{Busy, KeepAlive};
use super::leave_gate::{GatePlace, LeaveGate};
use super::metrics::timed;
use super::pause::PauseSignal;
use super::records::{consumed_content, content};
use super::repeated::Repeated;
use super::retention::{Loss, Skipped};
use super::shutdown::Shutdown;
use super::status::TaskCounter;
use super::tolerance::Failure;
use super::TaskError;

/// How long one poll waits for records before the loop checks its timers again.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long partitions stay paused after a retriable `put` error before their records come again.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// A call of the task, as its `async_trait` methods return it.
type TaskCall<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

/// Records for one `put`, with where each of their partitions starts and where `put` takes it.
#[derive(Default)]
struct Batch {
    records: Vec<SinkRecord>,
    /// Per partition: the offset of its first record in the batch (or of the first skipped one).
    first: BTreeMap<TopicPartition, i64>,
    /// Per partition: the offset after its last record in the batch.
    next: BTreeMap<TopicPartition, i64>,
    /// Offsets the consumer jumped over before records of the batch.
    jumps: Vec<(TopicPartition, Range<i64>)>,
    /// Records that could not be converted or transformed, for the dead letter queue.
    dead_letters: Vec<DeadLetter>,
}

/// Consecutive records of one partition within a poll.
struct Run {
    partition: TopicPartition,
    owned: bool,
    first: i64,
    next: i64,
    /// Where the partition's next record is expected, if the task knows.
    expected: Option<i64>,
}

impl Run {
    /// Records the run's span in the batch (runs of a partition the task does not own are dropped).
    fn close(self, batch: &mut Batch) {
        if self.owned {
            batch
                .first
                .entry(self.partition.clone())
                .or_insert(self.first);
            batch.next.insert(self.partition, self.next);
        }
    }
}

/// Runs one sink task until shutdown or failure.
pub struct SinkTaskRunner {
    id: String,
    /// What the worker's status line says of this task.
    status: TaskCounter,
    task: Box<dyn SinkTask>,
    context: SinkTaskContext,
    config: Arc<ConnectorConfig>,
    consumer: Option<Box<dyn GroupConsumer>>,
    assigned: BTreeSet<TopicPartition>,
    /// Per owned partition: the offset after the last record handed to `put`.
    positions: BTreeMap<TopicPartition, i64>,
    /// Per owned partition: the offset last committed by this task.
    committed: BTreeMap<TopicPartition, i64>,
    /// Per owned partition: the first offset handed to `put` since it was assigned (or rewound), where
    /// delivery restarts after a failed flush while nothing was committed yet.
    starts: BTreeMap<TopicPartition, i64>,
    /// Set after a retriable `put` error: every partition is paused and rewound until then.
    retry_at: Option<Instant>,
    /// The group took every partition away (the member was thrown out): its status says so until it
    /// is given partitions again.
    lost_all: bool,
    /// Partitions the task paused through its context.
    paused_by_task: BTreeSet<TopicPartition>,
    /// The connector's pause, and whether this task's partitions are paused for it now.
    pause: PauseSignal,
    paused_by_operator: bool,
    /// Offsets the group refused to commit while it was rebalancing, committed again if the new
    /// generation gives their partitions back to this task.
    refused: BTreeMap<TopicPartition, i64>,
    /// Where the task waits, when stopping, for its connector's other tasks to commit before leaving.
    gate: GatePlace,
    /// How long it waits there.
    gate_limit: Duration,
    /// Offsets the consumer skipped over, until the log start says whether retention deleted them.
    skipped: Skipped,
    /// Records the converter refused (skipped under `errors.tolerance=all`).
    refused_records: Repeated,
    /// Polls that failed (Kafka unreachable, say).
    poll_failures: Repeated,
    /// The most records handed to one `put` (`max.poll.records`).
    max_poll_records: usize,
    /// Where records that cannot be converted or transformed go under `errors.tolerance=all`.
    dead_letter_queue: Option<DeadLetterQueue>,
    /// Rebalances the consumer announced while `put` or `flush` ran, handled in order before the next
    /// poll.
    deferred: VecDeque<GroupEvent>,
    /// When the task heard of the revocation deferred among them: the rebalance has waited since.
    revocation_heard: Option<Instant>,
}

impl SinkTaskRunner {
    /// Reports this task's state and records to a worker's status line.
    pub(crate) fn with_status(mut self, status: TaskCounter) -> Self {
        self.status = status;
        self
    }

    /// Makes the task, when it stops, wait (at most `limit`) at `gate` for its connector's other tasks to
    /// commit before it leaves the group. Alone, a task has a gate of its own.
    pub fn with_leave_gate(mut self, gate: &LeaveGate, limit: Duration) -> Self {
        self.gate = gate.place();
        self.gate_limit = limit;
        self
    }

    /// Follows its connector's pause.
    pub fn with_pause(mut self, pause: PauseSignal) -> Self {
        self.pause = pause;
        self
    }

    /// Hands at most `records` records to one `put` (Kafka's `max.poll.records`).
    pub fn with_max_poll_records(mut self, records: usize) -> Self {
        self.max_poll_records = records;
        self
    }

    /// Writes records that cannot be converted or transformed to a dead letter queue (with
    /// `errors.tolerance=all`) instead of only skipping them.
    pub fn with_dead_letter_queue(mut self, queue: DeadLetterQueue) -> Self {
        self.dead_letter_queue = Some(queue);
        self
    }

    pub fn new(
        id: String,
        task: Box<dyn SinkTask>,
        task_config: ConfigMap,
        config: Arc<ConnectorConfig>,
        consumer: Box<dyn GroupConsumer>,
    ) -> SinkTaskRunner {
        SinkTaskRunner {
            status: TaskCounter::default(),
            id,
            task,
            context: SinkTaskContext::new(task_config),
            config,
            consumer: Some(consumer),
            assigned: BTreeSet::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            starts: BTreeMap::new(),
            retry_at: None,
            lost_all: false,
            paused_by_task: BTreeSet::new(),
            pause: PauseSignal::never(),
            paused_by_operator: false,
            refused: BTreeMap::new(),
            gate: LeaveGate::new().place(),
            gate_limit: Duration::ZERO,
            skipped: Skipped::default(),
            refused_records: Repeated::default(),
            poll_failures: Repeated::default(),
            max_poll_records: DEFAULT_MAX_POLL_RECORDS,
            dead_letter_queue: None,
            deferred: VecDeque::new(),
            revocation_heard: None,
        }
    }

    fn consumer(&mut self) -> &mut dyn GroupConsumer {
        // Taken only by `run` after the loop is over.
        &mut **self
            .consumer
            .as_mut()
            .expect("consumer is present until the task stops")
    }

    /// Whether anything looks at the records' headers: the task, a transform or predicate, the dead
    /// letter queue (which keeps a record as it was consumed) or the error log's record contents.
    fn headers_needed(&self) -> bool {
        self.task.reads_headers()
            || !self.config.transforms.is_empty()
            || self.dead_letter_queue.is_some()
            || self.config.error_log().include_messages
    }

    /// Starts the task and runs it until `shutdown` fires or it fails; then commits what was flushed,
    /// closes the partitions, stops the task and leaves the group.
    pub async fn run(mut self, mut shutdown: Shutdown) -> Result<(), TaskError> {
        if let Err(e) = self.task.start(self.context.clone()).await {
            return Err(self.fail("start", e));
        }
        tracing::info!(task = %self.id, "sink task started");
        let headers = self.headers_needed();
        self.consumer().read_headers(headers);
        let outcome = self.run_until_stopped(&mut shutdown).await;
        self.close_deferred_losses().await;
        let owned: Vec<_> = self.assigned.iter().cloned().collect();
        if outcome.is_ok() {
            // Only this last commit's refusals are still this task's to report.
            self.refused.clear();
            self.skipped.compare_all_at_next_commit();
            self.commit(&owned).await;
        }
        if let Err(e) = self.task.close(&owned).await {
            tracing::warn!(task = %self.id, error = %e, "sink task close failed");
        }
        if let Err(e) = self.task.stop().await {
            tracing::warn!(task = %self.id, error = %e, "sink task stop failed");
        }
        if outcome.is_ok() && !self.wait_at_gate().await {
            tracing::warn!(task = %self.id, limit = ?self.gate_limit, "leaving the group before every task of the connector committed");
        }
        if let Some(consumer) = self.consumer.take() {
            if let Err(e) = consumer.close().await {
                tracing::warn!(task = %self.id, error = %e, "leaving the group failed");
            }
        }
        self.status.metrics().ended();
        tracing::info!(task = %self.id, "sink task stopped");
        outcome
    }

    /// Closes, when the task stops, the partitions it lost during its last call (and opened before).
    async fn close_deferred_losses(&mut self) {
        let mut never_opened = BTreeSet::new();
        let mut lost = Vec::new();
        for event in std::mem::take(&mut self.deferred) {
            match event {
                GroupEvent::Assigned(partitions) => never_opened.extend(partitions),
                GroupEvent::Lost(partitions) => {
                    lost.extend(partitions.into_iter().filter(|p| !never_opened.remove(p)))
                }
                GroupEvent::Revoked(_) | GroupEvent::Records(_) => {}
            }
        }
        if lost.is_empty() {
            return;
        }
        if let Err(e) = self.task.close(&lost).await {
            tracing::warn!(task = %self.id, error = %e, "sink task close failed");
        }
    }

    /// Stays in the group until every task of the connector has committed and the offsets the group
    /// refused (while a rebalance was under way) are committed by whoever owns their partitions now, for
    /// at most the gate's limit. It keeps polling, so that a rebalance completes; the records it gets
    /// are left for whoever reads the partitions next. Returns whether the gate opened.
    async fn wait_at_gate(&mut self) -> bool {
        self.gate.arrive(std::mem::take(&mut self.refused));
        let deadline = Instant::now() + self.gate_limit;
        let mut changes = self.gate.changes();
        loop {
            let mine = self.gate.refused_of(&self.assigned);
            if !mine.is_empty() && self.consumer().commit(&mine).await.is_ok() {
                tracing::info!(task = %self.id, offsets = ?mine, "committed offsets refused during the rebalance");
                self.gate.committed(&mine);
            }
            if self.gate.open() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // A poll may wait for a rebalance to complete: not past the deadline, nor once the gate
            // changed.
            let max_poll_records = self.max_poll_records;
            let consumer = self
                .consumer
                .as_mut()
                .expect("consumer is present until the task stops");
            let polled = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return self.gate.open();
                    }
                    continue;
                }
                () = tokio::time::sleep_until(deadline) => return false,
                polled = consumer.poll(max_poll_records, POLL_WAIT) => polled,
            };
            match polled {
                Ok(GroupEvent::Assigned(partitions)) => self.assigned.extend(partitions),
                Ok(GroupEvent::Revoked(partitions) | GroupEvent::Lost(partitions)) => {
                    for partition in &partitions {
                        self.assigned.remove(partition);
                    }
                }
                Ok(GroupEvent::Records(_)) => {}
                Err(e) => {
                    tracing::debug!(task = %self.id, error = %e, "poll while stopping failed")
                }
            }
        }
    }

    async fn run_until_stopped(&mut self, shutdown: &mut Shutdown) -> Result<(), TaskError> {
        let period = self.config.offset_flush_interval();
        let mut commit_timer = interval_at(Instant::now() + period, period);
        commit_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Some(event) = self.deferred.pop_front() {
                self.on_event(event).await?;
                continue;
            }
            if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                self.resume_after_retry()?;
            }
            self.follow_pause()?;
            if std::mem::take(&mut self.context.requests().commit_requested) {
                let owned: Vec<_> = self.assigned.iter().cloned().collect();
                self.commit_polling(&owned).await?;
            }
            let max_poll_records = self.max_poll_records;
            let consumer = self
                .consumer
                .as_mut()
                .expect("consumer is present until the task stops");
            tokio::select! {
                biased;
                () = shutdown.recv() => return Ok(()),
                _ = commit_timer.tick() => {
                    let owned: Vec<_> = self.assigned.iter().cloned().collect();
                    self.commit_polling(&owned).await?;
                    // The next commit comes a period after this one ended: a commit slower than the
                    // period must not keep the loop from polling.
                    commit_timer.reset();
                }
                () = self.pause.changed() => {}
                event = consumer.poll(max_poll_records, POLL_WAIT) => match event {
                    Ok(event) => self.on_event(event).await?,
                    Err(e) => {
                        if let Some(more) = self.poll_failures.happened() {
                            tracing::warn!(task = %self.id, error = %e, more_since_last_line = more, "consumer poll failed");
                        }
                    }
                },
            }
        }
    }

    /// Handles one consumer event, and counts the rebalances among them.
    async fn on_event(&mut self, event: GroupEvent) -> Result<(), TaskError> {
        let rebalance = match &event {
            GroupEvent::Assigned(_) => Some(Vec::new()),
            GroupEvent::Revoked(partitions) | GroupEvent::Lost(partitions) => {
                Some(partitions.clone())
            }
            GroupEvent::Records(_) => None,
        };
        let outcome = self.handle(event).await;
        if let Some(gone) = rebalance {
            let metrics = self.status.metrics();
            metrics.unassigned(gone.iter().filter(|p| !self.assigned.contains(*p)));
            metrics.rebalanced(self.assigned.len());
        }
        outcome
    }

    /// What one consumer event does to the task.
    async fn handle(&mut self, event: GroupEvent) -> Result<(), TaskError> {
        match event {
            GroupEvent::Assigned(partitions) => {
                tracing::info!(task = %self.id, ?partitions, "partitions assigned");
                if std::mem::take(&mut self.lost_all) {
                    self.status.blocked(None);
                }
                self.assigned.extend(partitions.iter().cloned());
                self.context.requests().assignment = self.assigned.clone();
                if let Err(e) = self.task.open(&partitions).await {
                    return Err(self.fail("open", e));
                }
                let rewinds = self.context.requests().rewinds.clone();
                self.pass_records_deleted_by_retention(&partitions, &rewinds)
                    .await;
                let rewound: BTreeSet<TopicPartition> = rewinds.into_keys().collect();
                self.apply_requests()?;
                if self.paused_by_operator {
                    self.consumer()
                        .pause(&partitions)
                        .map_err(|e| self.kafka(e))?;
                }
                self.commit_refused(&partitions, &rewound).await
            }
            GroupEvent::Revoked(partitions) => {
                tracing::info!(task = %self.id, ?partitions, "partitions revoked");
                self.commit_revoked(&partitions).await?;
                // Those given up while the flush ran are closed with the loss that gave them up.
                let still_owned: Vec<_> = partitions
                    .into_iter()
                    .filter(|p| self.assigned.contains(p))
                    .collect();
                self.release(&still_owned).await
            }
            GroupEvent::Lost(partitions) => self.lose(&partitions).await,
            GroupEvent::Records(records) if records.is_empty() => Ok(()),
            GroupEvent::Records(records) if self.paused_by_operator => self.unread(&records),
            GroupEvent::Records(records) => {
                self.status.metrics().read(records.len());
                // Records come in runs of one topic: note each run's once.
                let mut last: Option<&str> = None;
                for record in &records {
                    if last != Some(&*record.topic) {
                        self.status.used_topic(&record.topic);
                        last = Some(&record.topic);
                    }
                }
                let mut batch = self.convert(records).await?;
                self.write_dead_letters(std::mem::take(&mut batch.dead_letters))
                    .await?;
                self.put(batch).await?;
                self.handle_errant_records().await?;
                if self.skipped.due() {
                    self.compare_with_log_starts(&[]).await;
                }
                Ok(())
            }
        }
    }

    /// Says so when records of newly assigned partitions were deleted by retention before this group
    /// read them, which Kafka Connect passes over without a word, and goes on from the log start: the
    /// consumer is sought there and the task's position is the log start, so the next commit moves the
    /// group's offset past the deleted records even if no record comes after them. Where reading
    /// started was the task's rewind, or else the committed offset.
    async fn pass_records_deleted_by_retention(
        &mut self,
        partitions: &[TopicPartition],
        rewinds: &BTreeMap<TopicPartition, i64>,
    ) {
        let consumer = self.consumer();
        let found = async {
            let committed = consumer.committed(partitions).await?;
            let starts = consumer.log_start_offsets(partitions).await?;
            Ok::<_, KafkaError>((committed, starts))
        };
        let (committed, starts) = match found.await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(task = %self.id, error = %e, "cannot compare where reading starts with the log start");
                return;
            }
        };
        for (partition, committed) in committed {
            let Some(from) = rewinds.get(&partition).copied().or(committed) else {
                continue;
            };
            let Some(&start) = starts.get(&partition) else {
                continue;
            };
            self.skipped.expect(partition.clone(), from.max(start));
            if from < start {
                Loss {
                    partition: partition.clone(),
                    deleted: from..start,
                    next: start,
                }
                .report(&self.id);
                if let Err(e) = self.consumer().seek(&partition, start) {
                    tracing::debug!(task = %self.id, %partition, error = %e, "cannot seek to the log start; the consumer resets there itself");
                }
                if rewinds.contains_key(&partition) {
                    self.context
                        .requests()
                        .rewinds
                        .insert(partition.clone(), start);
                }
                self.positions.insert(partition.clone(), start);
                self.starts.insert(partition, start);
            }
        }
    }

    /// Compares where the task reads with the log starts, and reports what retention deleted before the
    /// task read it: the offsets the consumer jumped over, and (every few seconds) the positions of the
    /// partitions in `to_commit` idle since the last commit, which retention may have passed with no
    /// record after the deleted ones, so no jump shows them. Such a position moves to the log start, so that the commit
    /// passes the deleted records. Jumps whose log start cannot be found now wait for the next try.
    async fn compare_with_log_starts(&mut self, to_commit: &[TopicPartition]) {
        // A partition the task has put nothing of yet is where its first record is expected.
        let positions: BTreeMap<TopicPartition, i64> = to_commit
            .iter()
            .filter_map(|p| {
                let position = self
                    .positions
                    .get(p)
                    .copied()
                    .or_else(|| self.skipped.expected(p));
                position.map(|o| (p.clone(), o))
            })
            .collect();
        let idle = self.skipped.idle(&positions);
        let mut partitions = self.skipped.start_check();
        partitions.extend(idle.iter().cloned());
        partitions.sort();
        partitions.dedup();
        if partitions.is_empty() {
            return;
        }
        let starts = match self.consumer().log_start_offsets(&partitions).await {
            Ok(starts) => starts,
            Err(e) => {
                tracing::debug!(task = %self.id, error = %e, "cannot compare where the task reads with the log start; tried again before the next commit");
                return;
            }
        };
        for loss in self.skipped.explain(&starts) {
            loss.report(&self.id);
        }
        for partition in &idle {
            let (Some(&position), Some(&start)) = (positions.get(partition), starts.get(partition))
            else {
                continue;
            };
            if position >= start {
                continue;
            }
            Loss {
                partition: partition.clone(),
                deleted: position..start,
                next: start,
            }
            .report(&self.id);
            if let Err(e) = self.consumer().seek(partition, start) {
                tracing::debug!(task = %self.id, %partition, error = %e, "cannot seek to the log start; the consumer resets there itself");
            }
            self.positions.insert(partition.clone(), start);
        }
    }

    async fn convert(&mut self, records: Vec<ConsumedRecord>) -> Result<Batch, TaskError> {
        let config = self.config.clone();
        let converters = config.converters();
        // Without retries a record goes through the transforms in place, with no future around it.
        let retrying = config.retry_policy().retries();
        let mut batch = Batch {
            records: Vec::with_capacity(records.len()),
            ..Batch::default()
        };
        // Records come in runs of one partition: look the partition up once per run.
        let mut run: Option<Run> = None;
        for record in records {
            let same = run.as_ref().is_some_and(|r| {
                r.partition.partition == record.partition && *r.partition.topic == *record.topic
            });
            if !same {
                if let Some(done) = run.take() {
                    done.close(&mut batch);
                }
                let partition = TopicPartition::new(&*record.topic, record.partition);
                let expected = batch
                    .next
                    .get(&partition)
                    .or_else(|| self.positions.get(&partition))
                    .copied()
                    .or_else(|| self.skipped.expected(&partition));
                run = Some(Run {
                    owned: self.assigned.contains(&partition),
                    partition,
                    first: record.offset,
                    next: record.offset,
                    expected,
                });
            }
            let Some(current) = run.as_mut().filter(|r| r.owned) else {
                continue;
            };
            let offset = record.offset;
            if let Some(expected) = current.expected.filter(|expected| offset > *expected) {
                batch
                    .jumps
                    .push((current.partition.clone(), expected..offset));
            }
            current.next = offset + 1;
            current.expected = Some(offset + 1);
            // A record dropped by a transform or skipped as bad is not put, and its offset is
            // committed with the batch's (a bad one's once the dead letter queue has it).
            let raw = (self.dead_letter_queue.is_some() || self.config.error_log().each)
                .then(|| record.clone());
            let refused = match converters.to_sink(record) {
                Ok(mut sink_record) => {
                    let transformed = if retrying {
                        self.transform_retrying(sink_record).await?
                    } else {
                        config
                            .transforms
                            .apply(&mut sink_record)
                            .map(|outcome| (outcome == Outcome::Keep).then_some(sink_record))
                    };
                    match transformed {
                        Ok(Some(kept)) => {
                            batch.records.push(kept);
                            None
                        }
                        Ok(None) => None,
                        Err(e) => Some(("TRANSFORMATION", e.class.clone(), e.to_string())),
                    }
                }
                Err((stage, e)) => Some((stage, e.converter().to_owned(), e.to_string())),
            };
            if let Some((stage, class, message)) = refused {
                let TopicPartition { topic, partition } = &current.partition;
                let origin =
                    format!("the record at topic {topic} partition {partition} offset {offset}");
                if !self.config.tolerates_errors() {
                    let verb = match stage {
                        "TRANSFORMATION" => "transform",
                        _ => "convert",
                    };
                    let error = format!("cannot {verb} {origin}: {message}");
                    return Err(self.fail(verb, ConnectError::fatal(error)));
                }
                let failure = Failure {
                    task: &self.id,
                    stage,
                    class: &class,
                    error: &message,
                    record: &origin,
                };
                self.config.error_log().skipped(
                    &failure,
                    || raw.as_ref().map(consumed_content).unwrap_or_default(),
                    &mut self.refused_records,
                );
                self.status.metrics().skipped_for_error();
                if let Some(record) = raw.filter(|_| self.dead_letter_queue.is_some()) {
                    batch.dead_letters.push(DeadLetter {
                        record,
                        stage,
                        class,
                        error_kind: DATA_EXCEPTION,
                        message,
                    });
                }
            }
        }
        if let Some(done) = run {
            done.close(&mut batch);
        }
        Ok(batch)
    }

    /// A record through the connector's transforms when `errors.retry.*` ask for retries: `None` when
    /// one dropped it. A retriable failure is tried again on a fresh copy, the task staying in its
    /// group meanwhile.
    async fn transform_retrying(
        &mut self,
        record: SinkRecord,
    ) -> Result<Result<Option<SinkRecord>, TransformFailed>, TaskError> {
        let retry = self.config.retry_policy();
        let kept =
            |(outcome, record): (Outcome, SinkRecord)| (outcome == Outcome::Keep).then_some(record);
        let chain = self.config.transforms.clone();
        let mut copy = record.clone();
        match chain.apply(&mut copy) {
            Err(e) if e.is_retriable() => {}
            done => return Ok(done.map(|outcome| kept((outcome, copy)))),
        }
        let task = self.id.clone();
        let retried = async move {
            retry
                .run(
                    &task,
                    "TRANSFORMATION",
                    || {
                        let mut copy = record.clone();
                        chain.apply(&mut copy).map(|outcome| (outcome, copy))
                    },
                    TransformFailed::is_retriable,
                )
                .await
        };
        let outcome = self
            .call_polling("transform", None, move |_| Box::pin(retried))
            .await?;
        Ok(outcome.map(kept))
    }

    /// The records the task reported as errant: under `errors.tolerance=all` each is logged and goes to
    /// the dead letter queue, if any, serialized again by the connector's converters (acknowledged
    /// before this returns, so before any offset past it is committed); otherwise the task fails.
    async fn handle_errant_records(&mut self) -> Result<(), TaskError> {
        let errant = std::mem::take(&mut self.context.requests().errant);
        let Some((first, reason)) = errant.first() else {
            return Ok(());
        };
        let describe = |record: &SinkRecord| {
            format!(
                "the record at topic {} partition {} offset {}",
                record.topic, record.partition, record.kafka_offset
            )
        };
        if !self.config.tolerates_errors() {
            let error = format!(
                "the task reported {} as errant: {reason} (errors.tolerance=none fails the task; all skips the record)",
                describe(first)
            );
            return Err(self.fail("put", ConnectError::fatal(error)));
        }
        let converters = self.config.converters();
        let mut letters = Vec::new();
        for (record, reason) in errant {
            let failure = Failure {
                task: &self.id,
                stage: "TASK_PUT",
                class: self.config.class(),
                error: &reason,
                record: &describe(&record),
            };
            self.config.error_log().skipped(
                &failure,
                || content(&record.key, &record.value, &record.headers),
                &mut self.refused_records,
            );
            self.status.metrics().skipped_for_error();
            if self.dead_letter_queue.is_some() {
                letters.push(DeadLetter {
                    record: converters.to_consumed(&record),
                    stage: "TASK_PUT",
                    class: self.config.class().to_owned(),
                    error_kind: "org.apache.kafka.connect.errors.ConnectException",
                    message: reason,
                });
            }
        }
        self.write_dead_letters(letters).await
    }

    /// Writes a batch's dead letters and waits until Kafka has them, before the batch goes on: no
    /// offset past them is committed before they are durable. A queue Kafka refuses fails the task.
    async fn write_dead_letters(&mut self, letters: Vec<DeadLetter>) -> Result<(), TaskError> {
        let Some(queue) = self.dead_letter_queue.as_mut() else {
            return Ok(());
        };
        let count = letters.len();
        let written = queue.write(letters).await;
        if count > 0 {
            self.status.metrics().dead_lettered(count, written.is_ok());
        }
        written.map_err(|e| {
            tracing::error!(task = %self.id, error = %e, "sink task failed: its dead letters could not be written");
            TaskError::Connector {
                task: self.id.clone(),
                stage: "dead letter queue",
                source: ConnectError::fatal(e.to_string()),
            }
        })
    }

    /// Hands a batch to the task. On a retriable error, rewinds its partitions to the batch's first
    /// records and pauses every partition for a while; the consumer keeps polling meanwhile, so the
    /// task stays in its group, and the same records come again once the pause is over.
    async fn put(&mut self, mut batch: Batch) -> Result<(), TaskError> {
        let count = batch.records.len() as u64;
        let result = if batch.records.is_empty() {
            Ok(())
        } else {
            tracing::trace!(task = %self.id, records = batch.records.len(), "put");
            let records = std::mem::take(&mut batch.records);
            let (put, took) = timed(self.call_polling("put", None, |task| task.put(records))).await;
            self.status.metrics().put(count as usize, took);
            put?
        };
        // Partitions lost while `put` ran are released: what the batch did for them is not theirs to keep.
        for spans in [&mut batch.first, &mut batch.next] {
            spans.retain(|partition, _| self.assigned.contains(partition));
        }
        match result {
            Ok(()) => {
                self.status.moved(count);
                for (partition, first) in batch.first {
                    self.starts.entry(partition).or_insert(first);
                }
                for (partition, next) in &batch.next {
                    self.status.metrics().position(partition, *next);
                }
                self.positions.extend(batch.next);
                for (partition, jump) in batch.jumps {
                    if self.assigned.contains(&partition) {
                        self.skipped.note(partition, jump);
                    }
                }
                self.apply_requests()
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(task = %self.id, error = %e, "put will be retried");
                self.status.metrics().retried();
                for (tp, offset) in &batch.first {
                    self.consumer()
                        .seek(tp, *offset)
                        .map_err(|e| self.kafka(e))?;
                }
                let owned: Vec<_> = self.assigned.iter().cloned().collect();
                self.consumer().pause(&owned).map_err(|e| self.kafka(e))?;
                let backoff = self
                    .context
                    .requests()
                    .retry_backoff
                    .unwrap_or(RETRY_BACKOFF);
                self.retry_at = Some(Instant::now() + backoff);
                self.status.blocked(Some(format!(
                    "retrying put after a retriable error ({e}), backing off {backoff:?}"
                )));
                Ok(())
            }
            Err(e) => Err(self.fail("put", e)),
        }
    }

    /// Pauses every assigned partition when the connector is paused, and resumes them (but those the
    /// task paused itself, and all of them while a retry's backoff lasts) when it resumes.
    fn follow_pause(&mut self) -> Result<(), TaskError> {
        let paused = self.pause.is_paused();
        if paused == self.paused_by_operator {
            return Ok(());
        }
        self.paused_by_operator = paused;
        let owned: Vec<_> = self.assigned.iter().cloned().collect();
        if paused {
            tracing::info!(task = %self.id, "paused: no records are delivered until the connector resumes");
            return self.consumer().pause(&owned).map_err(|e| self.kafka(e));
        }
        tracing::info!(task = %self.id, "resumed");
        if self.retry_at.is_some() {
            return Ok(());
        }
        let resume: Vec<_> = owned
            .into_iter()
            .filter(|p| !self.paused_by_task.contains(p))
            .collect();
        self.consumer().resume(&resume).map_err(|e| self.kafka(e))
    }

    /// Records fetched before a pause took hold are not delivered: each partition is sought back to its
    /// first, to be fetched again after the resume.
    fn unread(&mut self, records: &[ConsumedRecord]) -> Result<(), TaskError> {
        let mut first: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for record in records {
            let tp = TopicPartition::new(&*record.topic, record.partition);
            let offset = first.entry(tp).or_insert(record.offset);
            *offset = (*offset).min(record.offset);
        }
        for (tp, offset) in first {
            if self.assigned.contains(&tp) {
                self.consumer()
                    .seek(&tp, offset)
                    .map_err(|e| self.kafka(e))?;
            }
        }
        Ok(())
    }

    /// Ends the pause after a retriable error, keeping the partitions the task paused itself (and all
    /// of them while the connector is paused).
    fn resume_after_retry(&mut self) -> Result<(), TaskError> {
        self.retry_at = None;
        self.status.blocked(None);
        if self.paused_by_operator {
            return Ok(());
        }
        let resume: Vec<_> = self
            .assigned
            .iter()
            .filter(|p| !self.paused_by_task.contains(*p))
            .cloned()
            .collect();
        self.consumer().resume(&resume).map_err(|e| self.kafka(e))
    }

    /// Applies what the task asked through its context: rewinds, pauses and resumes.
    fn apply_requests(&mut self) -> Result<(), TaskError> {
        let (rewinds, pause, resume) = {
            let mut requests = self.context.requests();
            (
                std::mem::take(&mut requests.rewinds),
                std::mem::take(&mut requests.pause),
                std::mem::take(&mut requests.resume),
            )
        };
        for (tp, offset) in rewinds {
            if !self.assigned.contains(&tp) {
                continue;
            }
            self.consumer()
                .seek(&tp, offset)
                .map_err(|e| self.kafka(e))?;
            self.starts.insert(tp.clone(), offset);
            self.positions.insert(tp, offset);
        }
        let pause: Vec<_> = pause
            .into_iter()
            .filter(|p| self.assigned.contains(p))
            .collect();
        let resume: Vec<_> = resume
            .into_iter()
            .filter(|p| self.assigned.contains(p))
            .collect();
        self.paused_by_task.extend(pause.iter().cloned());
        for p in &resume {
            self.paused_by_task.remove(p);
        }
        if !pause.is_empty() {
            self.consumer().pause(&pause).map_err(|e| self.kafka(e))?;
        }
        if !resume.is_empty() {
            self.consumer().resume(&resume).map_err(|e| self.kafka(e))?;
        }
        Ok(())
    }

    /// Asks the task what may be committed for these partitions (the default flushes first) and commits
    /// it synchronously. A commit rejected after a rebalance is logged, not fatal: the records will be
    /// redelivered to whoever owns the partitions now.
    /// Retention losses are reported first. Offsets past a jump the log start has not explained yet are
    /// not committed: the jump may be records retention deleted, to be reported by this task or, after a
    /// crash, by the next owner.
    async fn commit(&mut self, partitions: &[TopicPartition]) {
        let Some(current) = self.committable(partitions).await else {
            return;
        };
        let (approved, took) = timed(self.task.pre_commit(&current)).await;
        self.status.metrics().flushed(took);
        self.commit_approved(approved).await;
    }

    /// Commits as [`commit`](Self::commit) does, but keeps the task in its group while the flush runs.
    async fn commit_polling(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        self.flush_and_commit(partitions, None).await
    }

    /// Commits revoked partitions before they go. The rebalance waits for the flush, for half of
    /// `max.poll.interval.ms` at most: then the partitions are given up uncommitted ([`KeepAlive`]).
    async fn commit_revoked(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        let heard = self.revocation_heard.take().unwrap_or_else(Instant::now);
        self.flush_and_commit(partitions, Some((partitions, heard)))
            .await
    }

    async fn flush_and_commit(
        &mut self,
        partitions: &[TopicPartition],
        revoking: Option<(&[TopicPartition], Instant)>,
    ) -> Result<(), TaskError> {
        let Some(current) = self.committable(partitions).await else {
            return Ok(());
        };
        let (approved, took) = timed(self.call_polling("flush", revoking, |task| {
            Box::pin(async move { task.pre_commit(&current).await })
        }))
        .await;
        self.status.metrics().flushed(took);
        self.commit_approved(approved?).await;
        Ok(())
    }

    /// The positions of these partitions that may be committed: past every jump the log start explains.
    async fn committable(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Option<BTreeMap<TopicPartition, i64>> {
        self.compare_with_log_starts(partitions).await;
        let current: BTreeMap<_, _> = partitions
            .iter()
            .filter(|p| !self.skipped.unexplained(p))
            .filter_map(|p| self.positions.get(p).map(|o| (p.clone(), *o)))
            .collect();
        (!current.is_empty()).then_some(current)
    }

    /// Commits what `pre_commit` approved, of the partitions the task still owns; a failed flush rewinds
    /// to the last committed offsets instead.
    async fn commit_approved(
        &mut self,
        approved: Result<BTreeMap<TopicPartition, i64>, ConnectError>,
    ) {
        let approved = match approved {
            Ok(approved) => approved,
            Err(e) => {
                tracing::error!(task = %self.id, error = %e, "flush failed; rewinding to the last committed offsets");
                // The flush may have lost what the task buffered for any partition, not only for those
                // being committed (a cooperative rebalance commits just the partitions it takes away).
                let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
                self.rewind_uncommitted(assigned.iter());
                return;
            }
        };
        if let Err(e) = self.handle_errant_records().await {
            tracing::error!(task = %self.id, error = %e, "records reported as errant were not handled; rewinding to the last committed offsets");
            let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
            self.rewind_uncommitted(assigned.iter());
            return;
        }
        let to_commit: BTreeMap<_, _> = approved
            .into_iter()
            .filter(|(p, o)| self.assigned.contains(p) && self.committed.get(p) != Some(o))
            .collect();
        if to_commit.is_empty() {
            return;
        }
        let (committed, took) = timed(self.consumer().commit(&to_commit)).await;
        self.status.metrics().committed(committed.is_ok(), took);
        match committed {
            Ok(()) => {
                tracing::debug!(task = %self.id, offsets = ?to_commit, "committed sink offsets");
                // A refused offset is older than this one: never to be made again.
                for partition in to_commit.keys() {
                    self.refused.remove(partition);
                }
                self.committed.extend(to_commit);
            }
            Err(KafkaError::Fenced(reason)) => {
                tracing::warn!(task = %self.id, reason, "offset commit rejected: the group has rebalanced");
            }
            Err(KafkaError::RebalanceInProgress(reason)) => {
                tracing::warn!(task = %self.id, reason, "offset commit refused while the group rebalances; retried in the new generation if the partitions stay with the connector's tasks");
                self.refused.extend(to_commit);
            }
            Err(e) => tracing::error!(task = %self.id, error = %e, "offset commit failed"),
        }
    }

    /// The group refused offsets while it rebalanced: where the new generation gives their partitions
    /// back to this task, commits them in it and resumes after them, instead of delivering the flushed
    /// records again. Partitions the task rewound itself in `open` keep their rewind.
    async fn commit_refused(
        &mut self,
        assigned: &[TopicPartition],
        rewound: &BTreeSet<TopicPartition>,
    ) -> Result<(), TaskError> {
        let refused = std::mem::take(&mut self.refused);
        let retry: BTreeMap<TopicPartition, i64> = assigned
            .iter()
            .filter(|p| !rewound.contains(*p))
            .filter_map(|p| refused.get(p).map(|offset| (p.clone(), *offset)))
            .collect();
        if retry.is_empty() {
            return Ok(());
        }
        // The records before a refused offset were flushed: whether or not Kafka takes the offset now,
        // they need not be delivered again. Refused again, the offset is committed with the next commit.
        let committed = match self.consumer().commit(&retry).await {
            Ok(()) => {
                tracing::info!(task = %self.id, offsets = ?retry, "committed the offsets refused during the rebalance");
                true
            }
            Err(e) => {
                tracing::warn!(task = %self.id, error = %e, "offsets refused during the rebalance were refused again; they are committed with the next commit");
                false
            }
        };
        for (partition, offset) in retry {
            self.consumer()
                .seek(&partition, offset)
                .map_err(|e| self.kafka(e))?;
            self.starts.insert(partition.clone(), offset);
            self.positions.insert(partition.clone(), offset);
            if committed {
                self.committed.insert(partition, offset);
            }
        }
        Ok(())
    }

    /// After a failed flush the task may have lost what `put` gave it since the last commit: deliver
    /// those records again, as Kafka Connect does (it rewinds every partition it has committed).
    fn rewind_uncommitted<'a>(&mut self, partitions: impl Iterator<Item = &'a TopicPartition>) {
        for partition in partitions {
            let Some(&to) = self
                .committed
                .get(partition)
                .or_else(|| self.starts.get(partition))
            else {
                continue;
            };
            match self.consumer().seek(partition, to) {
                Ok(()) => {
                    self.positions.insert(partition.clone(), to);
                }
                Err(e) => tracing::error!(task = %self.id, %partition, error = %e, "rewind failed"),
            }
        }
    }

    /// Runs one of the task's calls while polling its consumer ([`KeepAlive`]), then deals with what the
    /// group did meanwhile.
    /// `revoking`: the partitions whose revocation the call is made for, if it is.
    async fn call_polling<T>(
        &mut self,
        call: &'static str,
        revoking: Option<(&[TopicPartition], Instant)>,
        work: impl for<'t> FnOnce(&'t mut dyn SinkTask) -> TaskCall<'t, T>,
    ) -> Result<T, TaskError> {
        let (assigned, paused_by_task) = (&self.assigned, &self.paused_by_task);
        let retrying = self.retry_at.is_some();
        let pause = move || {
            if retrying {
                return Vec::new();
            }
            assigned
                .iter()
                .filter(|p| !paused_by_task.contains(*p))
                .cloned()
                .collect()
        };
        let keep_alive = KeepAlive {
            consumer: &mut **self
                .consumer
                .as_mut()
                .expect("consumer is present until the task stops"),
            task: &self.id,
            status: &self.status,
            poll_failures: &mut self.poll_failures,
            max_poll_records: self.max_poll_records,
            pause: &pause,
            limit: self.config.put_flush_limit(),
            max_poll_interval: self.config.max_poll_interval(),
            revoking: revoking.map(|(partitions, heard)| (partitions.to_vec(), heard)),
            quiet: !self.deferred.is_empty(),
        };
        let (output, mut busy) = keep_alive.run(call, work(&mut *self.task)).await;
        if revoking.is_some() && busy.events.is_empty() {
            // Still the revocation the call was made for (no poll ran): its caller goes on with it.
            busy.held = None;
        }
        self.after_busy(busy)?;
        Ok(output)
    }

    /// After a call the loop polled through: partitions lost (or given up) meanwhile leave the task's
    /// books at once, so nothing done for them during the call is kept or committed; the others are
    /// sought back to records the consumer returned meanwhile and resumed; the group's changes are
    /// handled next, in order (the losses close their partitions in the task).
    fn after_busy(&mut self, busy: Busy) -> Result<(), TaskError> {
        let Busy {
            paused,
            received,
            events,
            held,
        } = busy;
        // What is left to do: assignments not lost again before the call returned (never opened, those
        // need nothing), and losses of partitions the task had opened.
        let mut changes: Vec<GroupEvent> = Vec::new();
        let mut forgot = false;
        for event in events {
            match event {
                GroupEvent::Assigned(partitions) => changes.push(GroupEvent::Assigned(partitions)),
                GroupEvent::Lost(partitions) => {
                    let mut opened = Vec::new();
                    for partition in partitions {
                        let mut pending = false;
                        for change in &mut changes {
                            if let GroupEvent::Assigned(assigned) = change {
                                let before = assigned.len();
                                assigned.retain(|p| *p != partition);
                                pending |= assigned.len() < before;
                            }
                        }
                        if !pending && self.assigned.contains(&partition) {
                            self.forget(&partition);
                            forgot = true;
                            opened.push(partition);
                        }
                    }
                    if !opened.is_empty() {
                        changes.push(GroupEvent::Lost(opened));
                    }
                }
                GroupEvent::Revoked(_) | GroupEvent::Records(_) => {}
            }
        }
        changes.retain(|change| !matches!(change, GroupEvent::Assigned(p) if p.is_empty()));
        if forgot {
            self.context.requests().assignment = self.assigned.clone();
        }
        // Owned: assigned before the call, or meanwhile.
        let owned = |partition: &TopicPartition| {
            self.assigned.contains(partition)
                || changes.iter().any(
                    |change| matches!(change, GroupEvent::Assigned(p) if p.contains(partition)),
                )
        };
        let seeks: Vec<_> = received.into_iter().filter(|(p, _)| owned(p)).collect();
        let resume: Vec<_> = paused.into_iter().filter(|p| owned(p)).collect();
        for (partition, offset) in seeks {
            self.consumer()
                .seek(&partition, offset)
                .map_err(|e| self.kafka(e))?;
        }
        if !resume.is_empty() {
            self.consumer().resume(&resume).map_err(|e| self.kafka(e))?;
        }
        self.deferred.extend(changes);
        if let Some((partitions, heard)) = held {
            self.deferred.push_back(GroupEvent::Revoked(partitions));
            self.revocation_heard = Some(heard);
        }
        Ok(())
    }

    /// Gives up partitions the group took away without a revocation: their uncommitted records will be
    /// redelivered to whoever owns them now.
    async fn lose(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        tracing::warn!(task = %self.id, ?partitions, "partitions lost; their uncommitted records will be redelivered elsewhere");
        // Someone else may have owned them since: a refused offset is no longer this task's to commit.
        self.refused.clear();
        self.release(partitions).await?;
        if self.assigned.is_empty() {
            self.lost_all = true;
            self.status.blocked(Some(
                "lost its partitions (out of its group: session timeout or max.poll.interval.ms); rejoining".into(),
            ));
        }
        Ok(())
    }

    /// Forgets partitions and closes them in the task.
    async fn release(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        for p in partitions {
            self.forget(p);
        }
        self.context.requests().assignment = self.assigned.clone();
        // A slow close keeps the task in its group as a slow put does: the revocation is committed.
        let closing = partitions.to_vec();
        let closed = self
            .call_polling("close", None, |task| {
                Box::pin(async move { task.close(&closing).await })
            })
            .await?;
        closed.map_err(|e| self.fail("close", e))
    }

    /// Drops what the task knows of a partition it no longer owns.
    fn forget(&mut self, partition: &TopicPartition) {
        self.assigned.remove(partition);
        self.positions.remove(partition);
        self.committed.remove(partition);
        self.starts.remove(partition);
        self.paused_by_task.remove(partition);
        self.skipped.forget(partition);
    }

    fn kafka(&self, source: KafkaError) -> TaskError {
        tracing::error!(task = %self.id, error = %source, "sink task failed");
        TaskError::Kafka {
            task: self.id.clone(),
            source,
        }
    }

    fn fail(&self, stage: &'static str, error: ConnectError) -> TaskError {
        tracing::error!(task = %self.id, stage, error = %error, "sink task failed");
        TaskError::Connector {
            task: self.id.clone(),
            stage,
            source: error,
        }
    }
}
