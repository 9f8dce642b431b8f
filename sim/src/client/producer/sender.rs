//! The producer's background sender: places queued records on partitions, sends their batches in
//! produce requests to each partition's leader (up to `max.in.flight.requests.per.connection`
//! unanswered at once on each leader's pipelined connection), and turns the answers into delivery
//! reports: acknowledgements, retries, and failures once `delivery.timeout.ms` has passed. A batch
//! refused because its broker no longer leads the partition, or lost with its connection, makes the
//! sender look the leader up again before retrying it.
//!
//! A batch whose records expire after it was sent may be in the log or not: numbering on could make the
//! broker take a later batch for a retry of it, so an idempotent producer then waits for its requests in
//! flight to be answered and starts over under a new producer id (librdkafka bumps the epoch instead).
//! A transactional producer's failures make the transaction abortable; the records not sent yet fail
//! with it, and its abort starts a new epoch.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::api::RecordMetadata;
use sluice_core::hash::fnv1a64;
use sluice_core::kafka::{Delivery, DeliverySender, KafkaError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ack_order::AckOrder;
use super::partition::{Batch, PartitionQueue, Pending};
use super::{Queued, Shared};
use crate::client::connection::{code_error, unexpected};
use crate::client::pipeline::{Answer, Pipeline};
use crate::client::routing::{unknown_broker, Router};
use crate::coverage::{self, Event};
use crate::protocol::{CoordinatorKind, ErrorCode, ProduceBatch, Request, Response, Tp};

/// Records per batch (one partition's share of a request).
const MAX_BATCH: usize = 500;

/// The producer's request settings.
pub(super) struct Limits {
    /// `max.in.flight.requests.per.connection`.
    pub(super) max_in_flight: usize,
    /// `request.timeout.ms`: an answer later than this breaks the connection, and its batches are retried.
    pub(super) request_timeout: Duration,
    /// `retry.backoff.ms`.
    pub(super) retry_backoff: Duration,
}

/// A record whose topic's partitions are not known yet.
struct Unplaced {
    topic: String,
    partition: Option<i32>,
    pending: Pending,
}

/// A produce request waiting for its answer.
struct SentRequest {
    batches: Vec<(Tp, Batch)>,
    sent_at: Instant,
}

/// The produce connection to one broker, and its requests waiting for answers.
struct Link {
    /// The id its answers carry (answers of a connection dropped before are stale).
    id: u64,
    address: String,
    pipeline: Pipeline,
    requests: VecDeque<SentRequest>,
}

/// Who the produce requests come from.
struct Identity {
    producer_id: i64,
    epoch: i16,
    transactional_id: Option<String>,
}

/// What woke the sender.
enum Wake {
    Answer(Option<Answer>),
    Work,
    Timer,
}

pub(super) struct Sender {
    shared: Arc<Shared>,
    limits: Limits,
    /// Metadata, InitProducerId and AddPartitionsToTxn, one at a time; and where the leaders are.
    control: Router,
    /// Produce requests, per leader.
    links: BTreeMap<i32, Link>,
    answered: mpsc::UnboundedSender<Answer>,
    answers: mpsc::UnboundedReceiver<Answer>,
    next_link: u64,
    deliveries: DeliverySender,
    /// The idempotent producer's id, once it has one.
    producer_id: Option<i64>,
    /// The epoch the partitions' sequence numbers count in.
    epoch: i16,
    partitions: BTreeMap<Tp, PartitionQueue>,
    unplaced: VecDeque<Unplaced>,
    /// Partition counts of the topics produced to.
    topics: BTreeMap<String, i32>,
    round_robin: i32,
    /// A sent batch expired or failed for good: start over under a new producer id once nothing is in
    /// flight, sending nothing until then.
    start_over: bool,
    /// After a failed connection, InitProducerId, AddPartitionsToTxn or metadata request: not before this.
    backoff_until: Option<Instant>,
    /// Why the last of those failed.
    last_error: Option<KafkaError>,
    order: AckOrder,
    next_index: u64,
}

impl Sender {
    pub(super) fn new(
        shared: Arc<Shared>,
        limits: Limits,
        control: Router,
        deliveries: DeliverySender,
    ) -> Sender {
        let (answered, answers) = mpsc::unbounded_channel();
        Sender {
            shared,
            limits,
            control,
            links: BTreeMap::new(),
            answered,
            answers,
            next_link: 0,
            deliveries,
            producer_id: None,
            epoch: 0,
            partitions: BTreeMap::new(),
            unplaced: VecDeque::new(),
            topics: BTreeMap::new(),
            round_robin: 0,
            start_over: false,
            backoff_until: None,
            last_error: None,
            order: AckOrder::default(),
            next_index: 0,
        }
    }

    pub(super) async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            let work = shared.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            self.take_queued();
            let now = Instant::now();
            let timed_out: Vec<i32> = self
                .links
                .iter()
                .filter(|(_, link)| {
                    link.requests
                        .front()
                        .is_some_and(|r| now >= r.sent_at + self.limits.request_timeout)
                })
                .map(|(broker, _)| *broker)
                .collect();
            for broker in timed_out {
                let error = KafkaError::Timeout(format!(
                    "no response from broker {broker} within {:?}",
                    self.limits.request_timeout
                ));
                self.connection_lost(broker, error);
            }
            self.expire(now);
            self.give_up_if_transaction_failed();
            if self.start_over && self.in_flight() == 0 {
                self.start_over = false;
                self.producer_id = None;
                for partition in self.partitions.values_mut() {
                    partition.renumber();
                }
            }
            if !self.unplaced.is_empty() && !self.backing_off(now) {
                self.place_unplaced().await;
            }
            self.send_requests().await;
            if self.shared.closed.load(Ordering::SeqCst) && self.is_idle() {
                return;
            }
            let wake = self.next_wake();
            let waiting = self.in_flight() > 0;
            let woken = tokio::select! {
                biased;
                answer = self.answers.recv(), if waiting => Wake::Answer(answer),
                () = &mut work => Wake::Work,
                () = sleep_until(wake) => Wake::Timer,
            };
            if let Wake::Answer(Some((link, answer))) = woken {
                self.on_answer(link, answer);
            }
        }
    }

    /// Produce requests waiting for their answers, on every connection.
    fn in_flight(&self) -> usize {
        self.links.values().map(|link| link.requests.len()).sum()
    }

    fn is_idle(&self) -> bool {
        self.in_flight() == 0
            && self.unplaced.is_empty()
            && self.partitions.values().all(PartitionQueue::is_empty)
    }

    fn backing_off(&self, now: Instant) -> bool {
        self.backoff_until.is_some_and(|until| now < until)
    }

    fn back_off(&mut self, error: KafkaError) {
        self.backoff_until = Some(Instant::now() + self.limits.retry_backoff);
        self.last_error = Some(error);
    }

    /// Moves newly sent records onto their partitions, or aside until their topic is known.
    fn take_queued(&mut self) {
        let queued: Vec<Queued> = self.shared.lock().drain(..).collect();
        if queued.is_empty() {
            return;
        }
        // Records without key or partition go to one partition per burst, as a sticky partitioner does.
        self.round_robin = self.round_robin.wrapping_add(1);
        for queued in queued {
            let pending = Pending {
                token: queued.token,
                index: self.next_index,
                record: queued.record,
                deadline: queued.deadline,
                maybe_stored: false,
            };
            self.next_index += 1;
            self.place(queued.topic, queued.partition, pending);
        }
    }

    fn place(&mut self, topic: String, partition: Option<i32>, pending: Pending) {
        let Some(&count) = self.topics.get(&topic) else {
            self.unplaced.push_back(Unplaced {
                topic,
                partition,
                pending,
            });
            return;
        };
        let partition = match (partition, &pending.record.key) {
            (Some(p), _) => p,
            // FNV-1a where Kafka's Java client uses murmur2: the spread is what matters here.
            (None, Some(key)) => (fnv1a64(key) % count as u64) as i32,
            (None, None) => self.round_robin.rem_euclid(count),
        };
        self.partitions
            .entry(Tp::new(topic, partition))
            .or_default()
            .push(pending);
    }

    /// Asks for the partition counts of the topics records wait for, then places those records.
    async fn place_unplaced(&mut self) {
        let missing: Vec<String> = self
            .unplaced
            .iter()
            .map(|u| u.topic.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match self.control.metadata(Some(missing), true).await {
            Ok(topics) => self.topics.extend(topics),
            Err(e) => return self.back_off(e),
        }
        for unplaced in std::mem::take(&mut self.unplaced) {
            self.place(unplaced.topic, unplaced.partition, unplaced.pending);
        }
        if let Some(first) = self.unplaced.front() {
            let error = KafkaError::Backend(format!("topic {:?} does not exist", first.topic));
            self.back_off(error);
        }
    }

    /// Fails the records whose `delivery.timeout.ms` has passed.
    fn expire(&mut self, now: Instant) {
        let mut failed = Vec::new();
        for partition in self.partitions.values_mut() {
            if partition.next_deadline().is_none_or(|d| d > now) {
                continue;
            }
            let expired = partition.expire(now);
            self.start_over |= expired.numbered && self.shared.txn.is_none();
            failed.push((expired.records, partition.last_error.clone()));
        }
        let mut unplaced = Vec::new();
        while self
            .unplaced
            .front()
            .is_some_and(|u| u.pending.deadline <= now)
        {
            unplaced.extend(self.unplaced.pop_front().map(|u| u.pending));
        }
        failed.push((unplaced, self.last_error.clone()));
        for (records, last) in failed {
            let error = KafkaError::Timeout(match last {
                Some(e) => format!("delivery.timeout.ms passed; last error: {e}"),
                None => "delivery.timeout.ms passed".into(),
            });
            self.fail(records, &error);
        }
    }

    /// A transaction that cannot commit any more takes its records not yet sent with it.
    fn give_up_if_transaction_failed(&mut self) {
        let Some(error) = self.shared.txn.as_ref().and_then(|txn| txn.failure()) else {
            return;
        };
        let mut records: Vec<Pending> = self.unplaced.drain(..).map(|u| u.pending).collect();
        for partition in self.partitions.values_mut() {
            records.extend(partition.drain());
        }
        self.fail(records, &error);
    }

    /// Sends produce requests while a partition has a batch to send and its leader's connection has
    /// room in flight.
    async fn send_requests(&mut self) {
        while !self.start_over {
            let now = Instant::now();
            if self.backing_off(now) {
                return;
            }
            let ready: Vec<Tp> = self
                .partitions
                .iter()
                .filter(|(_, p)| p.sendable(now, self.limits.max_in_flight))
                .map(|(tp, _)| tp.clone())
                .collect();
            if ready.is_empty() {
                return;
            }
            let leaders = match self.control.leaders(&ready).await {
                Ok(leaders) => leaders,
                Err(e) => return self.back_off(e),
            };
            let mut shares: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
            for (tp, leader) in leaders {
                let room = self
                    .links
                    .get(&leader)
                    .is_none_or(|link| link.requests.len() < self.limits.max_in_flight);
                if room {
                    shares.entry(leader).or_default().push(tp);
                }
            }
            let Some((leader, share)) = shares.pop_first() else {
                // Every partition with a batch waits for room, or for a leader to be elected.
                if self.in_flight() == 0 {
                    self.back_off(KafkaError::Backend("no leader available".into()));
                }
                return;
            };
            let Some(identity) = self.identity().await else {
                return;
            };
            if !self.connect(leader).await {
                return;
            }
            if !self.add_to_transaction(&share).await {
                return;
            }
            let batches: Vec<(Tp, Batch)> = share
                .into_iter()
                .filter_map(|tp| {
                    let batch = self
                        .partitions
                        .get_mut(&tp)?
                        .next_batch(MAX_BATCH, identity.epoch)?;
                    Some((tp, batch))
                })
                .collect();
            let request = Request::Produce {
                producer_id: identity.producer_id,
                epoch: identity.epoch,
                transactional_id: identity.transactional_id,
                batches: batches
                    .iter()
                    .map(|(tp, batch)| ProduceBatch {
                        tp: tp.clone(),
                        base_sequence: batch.base_sequence,
                        records: batch.records.iter().map(|p| p.record.clone()).collect(),
                    })
                    .collect(),
            };
            let Some(link) = self.links.get_mut(&leader) else {
                return;
            };
            let sent = link.pipeline.send(&request).await;
            link.requests.push_back(SentRequest {
                batches,
                sent_at: now,
            });
            if let Err(e) = sent {
                self.connection_lost(leader, e);
                return;
            }
        }
    }

    /// Connects to broker `leader` unless connected; false (backing off) if that failed.
    async fn connect(&mut self, leader: i32) -> bool {
        if self.links.contains_key(&leader) {
            return true;
        }
        let Some(address) = self.control.address(leader) else {
            self.back_off(unknown_broker(leader));
            return false;
        };
        self.next_link += 1;
        let id = self.next_link;
        let connected = Pipeline::connect(
            &address,
            self.limits.request_timeout,
            id,
            self.answered.clone(),
        )
        .await;
        match connected {
            Ok(pipeline) => {
                let link = Link {
                    id,
                    address,
                    pipeline,
                    requests: VecDeque::new(),
                };
                self.links.insert(leader, link);
                true
            }
            Err(e) => {
                self.back_off(e);
                false
            }
        }
    }

    /// The producer id and epoch to send with: the transaction's, or the idempotent producer's (asked
    /// for once, and again after starting over).
    async fn identity(&mut self) -> Option<Identity> {
        if let Some(txn) = &self.shared.txn {
            let producer = match txn.producer() {
                Ok(producer) => producer,
                Err(e) => {
                    self.back_off(e);
                    return None;
                }
            };
            if producer.epoch != self.epoch {
                // Batches numbered in the old epoch belong to a transaction that is over.
                self.epoch = producer.epoch;
                let mut stale = Vec::new();
                for partition in self.partitions.values_mut() {
                    stale.extend(partition.new_epoch());
                }
                self.fail(
                    stale,
                    &KafkaError::Backend("the transaction was aborted".into()),
                );
            }
            return Some(Identity {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                transactional_id: Some(producer.transactional_id),
            });
        }
        if self.producer_id.is_none() {
            let request = Request::InitProducerId {
                transactional_id: None,
                transaction_timeout_ms: 0,
                current: None,
            };
            match self.control.call_any(&request, Duration::ZERO).await {
                Ok(Response::ProducerId { producer_id, .. }) => {
                    self.producer_id = Some(producer_id)
                }
                Ok(other) => self.back_off(unexpected(other)),
                Err(e) => self.back_off(e),
            }
        }
        self.producer_id.map(|producer_id| Identity {
            producer_id,
            epoch: 0,
            transactional_id: None,
        })
    }

    /// Adds the partitions about to get their first batch of the transaction to it; false if that failed.
    async fn add_to_transaction(&mut self, partitions: &[Tp]) -> bool {
        let Some(txn) = &self.shared.txn else {
            return true;
        };
        let new = txn.not_added(partitions.iter());
        if new.is_empty() {
            return true;
        }
        let producer = match txn.producer() {
            Ok(producer) => producer,
            Err(e) => {
                self.back_off(e);
                return false;
            }
        };
        let transactional_id = producer.transactional_id.clone();
        let request = Request::AddPartitionsToTxn {
            producer,
            partitions: new.clone(),
        };
        let answer = self
            .control
            .call_coordinator(
                CoordinatorKind::Transaction,
                &transactional_id,
                &request,
                Duration::ZERO,
            )
            .await;
        match answer {
            Ok(Response::Done) => {
                txn.added(new);
                true
            }
            Ok(other) => {
                let error = unexpected(other);
                if let KafkaError::ProducerFenced(_) = error {
                    txn.fail(error.clone());
                }
                self.back_off(error);
                false
            }
            Err(e) => {
                self.back_off(e);
                false
            }
        }
    }

    /// The connection to broker `broker` broke or timed out: every request in flight on it is
    /// unanswered, and its batches are retried (the broker recognizes those it appended), after the
    /// leaders of their partitions are looked up again.
    fn connection_lost(&mut self, broker: i32, error: KafkaError) {
        let Some(link) = self.links.remove(&broker) else {
            return;
        };
        for request in link.requests {
            for (tp, batch) in request.batches {
                self.control.forget_leader(&tp);
                self.on_batch(tp, batch, Err(Refusal::Retriable(error.clone())));
            }
        }
    }

    /// An answer on the connection `id` (ignored if that connection was dropped since).
    fn on_answer(&mut self, id: u64, answer: Option<Response>) {
        let Some((&broker, link)) = self.links.iter_mut().find(|(_, link)| link.id == id) else {
            return;
        };
        let Some(answer) = answer else {
            let error = KafkaError::Backend(format!("broker {}: connection closed", link.address));
            return self.connection_lost(broker, error);
        };
        let Some(request) = link.requests.pop_front() else {
            return;
        };
        match answer {
            Response::Produced { results } => {
                for (i, (tp, batch)) in request.batches.into_iter().enumerate() {
                    let result = results
                        .get(i)
                        .copied()
                        .unwrap_or(Err(ErrorCode::UnknownTopicOrPartition));
                    self.on_batch(tp, batch, result.map_err(Refusal::Code));
                }
            }
            Response::Error(code) => {
                for (tp, batch) in request.batches {
                    self.on_batch(tp, batch, Err(Refusal::Code(code)));
                }
            }
            other => {
                let error = unexpected(other);
                for (tp, batch) in request.batches {
                    self.on_batch(tp, batch, Err(Refusal::Retriable(error.clone())));
                }
            }
        }
    }

    /// One batch's outcome: acknowledged, back in line for a retry, or failed.
    fn on_batch(&mut self, tp: Tp, mut batch: Batch, outcome: Result<i64, Refusal>) {
        let (retriable, maybe_appended) = match &outcome {
            Ok(_) => (false, false),
            Err(Refusal::Code(code)) => (
                code.is_retriable_produce_error(),
                *code == ErrorCode::RequestTimedOut,
            ),
            Err(Refusal::Retriable(_)) => (true, true),
        };
        if maybe_appended {
            for pending in &mut batch.records {
                pending.maybe_stored = true;
            }
        }
        let error = match outcome {
            Ok(base_offset) => {
                if let Some(partition) = self.partitions.get_mut(&tp) {
                    partition.answered();
                    partition.settled(batch.base_sequence);
                }
                return self.acknowledge(&tp, batch, base_offset);
            }
            Err(Refusal::Code(code)) => {
                if code == ErrorCode::NotLeaderOrFollower {
                    self.control.forget_leader(&tp);
                }
                code_error(code)
            }
            Err(Refusal::Retriable(e)) => e,
        };
        let current = self.shared.txn.as_ref().is_none_or(|txn| {
            txn.failure().is_none() && txn.producer().is_ok_and(|p| p.epoch == batch.epoch)
        });
        let Some(partition) = self.partitions.get_mut(&tp) else {
            return self.fail(batch.records, &error);
        };
        if retriable && current {
            partition.failed(batch, error, Instant::now() + self.limits.retry_backoff);
            return;
        }
        partition.answered();
        partition.settled(batch.base_sequence);
        // The broker did not take the batch, and the next ones would not follow it.
        self.start_over |= self.shared.txn.is_none();
        self.fail(batch.records, &error);
    }

    fn acknowledge(&mut self, tp: &Tp, batch: Batch, base_offset: i64) {
        let count = batch.records.len();
        let mut overtook = false;
        let mut acknowledged = Vec::with_capacity(count);
        for (n, pending) in batch.records.into_iter().enumerate() {
            overtook |= self.order.report(pending.index);
            let metadata = RecordMetadata {
                partition: tp.partition,
                offset: base_offset + n as i64,
                timestamp: Some(pending.record.timestamp),
            };
            acknowledged.push(Delivery {
                token: pending.token,
                result: Ok(metadata),
            });
        }
        self.deliveries.send(acknowledged);
        if overtook {
            coverage::reached(Event::OutOfOrderAcknowledgement);
        }
        self.shared.reported(count);
    }

    /// Reports records as failed for good; a transaction they were in cannot commit.
    fn fail(&mut self, records: Vec<Pending>, error: &KafkaError) {
        if records.is_empty() {
            return;
        }
        coverage::reached(Event::DeliveryFailed);
        match &self.shared.txn {
            Some(txn) => txn.fail(error.clone()),
            None if records.iter().any(|p| !p.maybe_stored) => {
                coverage::reached(Event::DeliveryFailedUnstored);
            }
            None => {}
        }
        let count = records.len();
        let failed = records
            .into_iter()
            .map(|pending| {
                self.order.report(pending.index);
                Delivery {
                    token: pending.token,
                    result: Err(error.clone()),
                }
            })
            .collect();
        self.deliveries.send(failed);
        self.shared.reported(count);
    }

    /// The next moment something is due: a request's timeout, a partition's retry, a record's deadline,
    /// the end of a backoff.
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let requests = self
            .links
            .values()
            .filter_map(|link| link.requests.front())
            .map(|r| r.sent_at + self.limits.request_timeout)
            .min();
        let partitions = self.partitions.values().flat_map(|p| {
            let retry = p.retry_at().filter(|_| !p.is_empty());
            [p.next_deadline(), retry]
        });
        let unplaced = self.unplaced.front().map(|u| u.pending.deadline);
        let backoff = self.backoff_until.filter(|_| !self.is_idle());
        // What is due now was done before waiting, or waits for an answer: only the future wakes.
        requests
            .into_iter()
            .chain(partitions.flatten())
            .chain(unplaced)
            .chain(backoff)
            .filter(|at| *at > now)
            .min()
    }
}

/// Why a batch was not acknowledged.
enum Refusal {
    /// The broker's error code for it.
    Code(ErrorCode),
    /// No answer (connection lost, request timed out) or an unexpected one: retried.
    Retriable(KafkaError),
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
