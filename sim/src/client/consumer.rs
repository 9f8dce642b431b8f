//! The simulated group consumer: a Kafka consumer-group member of the classic group protocol.
//!
//! Groups are eager (every partition is revoked before rejoining) or, with
//! `partition.assignment.strategy=cooperative-sticky`, cooperative (KIP-429: a member keeps consuming while
//! the group rebalances and gives up only the partitions that move). A round of the group protocol
//! (JoinGroup, the leader's assignment, SyncGroup: `join.rs`) runs as a task of its own that the next poll
//! picks up again, as the Java client's join survives across polls. A heartbeat task (`heartbeat.rs`)
//! keeps the session while the runtime is busy, leaves the group when it has not polled for
//! `max.poll.interval.ms`, and gives the partitions up as lost when no heartbeat is answered within
//! `session.timeout.ms`. When the coordinator announces an eager rebalance, the next poll revokes every
//! owned partition and the poll after that rejoins. A member thrown out (or timed out, or gone for not
//! polling) reports its partitions lost at the next poll; its commits are refused as fenced.
//!
//! `poll` is cancel-safe: the runtime polls inside `select!`, so every state change happens after the last
//! await of the step that causes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{
    ClientSettings, ConsumedRecord, GroupConsumer, GroupEvent, KafkaError, Subscription,
};
use tokio::task::JoinHandle;

use super::connection::{code_error, unexpected};
use super::fetcher::{Answered, Fetcher};
use super::heartbeat::heartbeats;
use super::join::{round, JoinRequest, Round};
use super::membership::{Loss, Membership, SharedMembership, Timeouts};
use super::routing::Router;
use super::settings::{isolation, millis, text};
use crate::broker::now;
use crate::coverage::{self, Event};
use crate::protocol::{
    CoordinatorKind, ErrorCode, FetchedRecord, Interest, LeaveReason, MemberSubscription, Request,
    Response, Tp,
};

/// Wait before retrying after the broker could not be reached.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

pub struct SimGroupConsumer {
    router: Router,
    /// Joins wait for the whole group: they get connections of their own.
    join_router: Arc<Router>,
    /// Fetches stay on their way across polls: connections of their own too.
    fetcher: Fetcher,
    pending_join: Option<JoinHandle<Result<Round, KafkaError>>>,
    group: String,
    client_id: String,
    interest: Interest,
    timeouts: Timeouts,
    reset_to_latest: bool,
    membership: SharedMembership,
    heartbeat: Option<JoinHandle<()>>,
    owned: BTreeSet<Tp>,
    positions: BTreeMap<Tp, i64>,
    /// Partitions whose position a fetch found outside the log, with that position: they start again
    /// where `auto.offset.reset` says, not at the committed offset.
    out_of_range: BTreeMap<Tp, i64>,
    paused: BTreeSet<Tp>,
    /// Speaks the cooperative protocol (`partition.assignment.strategy=cooperative-sticky`).
    cooperative: bool,
    /// Partitions reported `Revoked`: they go at the next poll.
    revoking: Vec<Tp>,
    /// Partitions a cooperative rebalance added, reported once the revoked ones are gone.
    pending_assigned: Vec<Tp>,
    /// Whether records are handed over with their headers.
    headers: bool,
}

impl SimGroupConsumer {
    pub fn new(
        broker: &str,
        settings: &ClientSettings,
        group: &str,
        subscription: &Subscription,
    ) -> Result<SimGroupConsumer, KafkaError> {
        let request_timeout = millis(settings, "request.timeout.ms", 30_000)?;
        let interest = match subscription {
            Subscription::Topics(topics) => Interest::Topics(topics.clone()),
            Subscription::Pattern(pattern) => {
                regex::Regex::new(pattern).map_err(|e| KafkaError::Config {
                    key: "topics.regex".into(),
                    message: e.to_string(),
                })?;
                Interest::Pattern(pattern.clone())
            }
        };
        let strategies: Vec<&str> = text(settings, "partition.assignment.strategy", "range")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        // The group uses the first protocol every member supports: cooperative only when it is all there is.
        let cooperative = !strategies.is_empty()
            && strategies
                .iter()
                .all(|s| *s == "cooperative-sticky" || s.ends_with("CooperativeStickyAssignor"));
        let reset = text(settings, "auto.offset.reset", "earliest");
        let reset_to_latest = match reset {
            "earliest" | "smallest" | "beginning" => false,
            "latest" | "largest" | "end" => true,
            other => {
                return Err(KafkaError::Config {
                    key: "auto.offset.reset".into(),
                    message: format!("{other:?} is not earliest or latest"),
                })
            }
        };
        let router = Router::new(broker, request_timeout);
        let isolation = isolation(settings)?;
        Ok(SimGroupConsumer {
            join_router: Arc::new(router.sibling()),
            fetcher: Fetcher::new(router.sibling(), isolation),
            router,
            pending_join: None,
            group: group.to_owned(),
            client_id: text(settings, "client.id", "consumer").to_owned(),
            interest,
            timeouts: Timeouts {
                session: millis(settings, "session.timeout.ms", 45_000)?,
                // A zero interval would spin: at least a millisecond.
                heartbeat: millis(settings, "heartbeat.interval.ms", 3_000)?
                    .max(Duration::from_millis(1)),
                max_poll_interval: millis(settings, "max.poll.interval.ms", 300_000)?,
            },
            reset_to_latest,
            membership: SharedMembership::default(),
            heartbeat: None,
            owned: BTreeSet::new(),
            positions: BTreeMap::new(),
            out_of_range: BTreeMap::new(),
            paused: BTreeSet::new(),
            cooperative,
            revoking: Vec::new(),
            pending_assigned: Vec::new(),
            headers: true,
        })
    }

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock()
    }

    /// Forgets every owned partition (and a join round that finished meanwhile: its assignment was for the
    /// member id now gone).
    fn give_up_all(&mut self) -> Vec<TopicPartition> {
        if let Some(join) = self.pending_join.take() {
            join.abort();
        }
        let parts: Vec<TopicPartition> = self.owned.iter().map(to_core).collect();
        self.owned.clear();
        self.positions.clear();
        self.out_of_range.clear();
        self.paused.clear();
        self.revoking.clear();
        self.pending_assigned.clear();
        parts
    }

    /// Starts a round of the group protocol in a task of its own, unless one is on its way; starts the
    /// heartbeat task with the first.
    fn start_join(&mut self) {
        if self.pending_join.is_some() {
            return;
        }
        if self.heartbeat.is_none() {
            self.heartbeat = Some(tokio::spawn(heartbeats(
                self.router.sibling(),
                self.group.clone(),
                self.timeouts.clone(),
                self.membership.clone(),
            )));
        }
        self.membership().joined = false;
        let request = JoinRequest {
            group: self.group.clone(),
            client_id: self.client_id.clone(),
            session_timeout: self.timeouts.session,
            rebalance_timeout: self.timeouts.max_poll_interval,
            cooperative: self.cooperative,
            subscription: MemberSubscription {
                interest: self.interest.clone(),
                owned: self.owned.iter().cloned().collect(),
            },
        };
        self.pending_join = Some(tokio::spawn(round(
            self.join_router.clone(),
            request,
            self.membership.clone(),
        )));
    }

    /// Waits for the join on its way (starting one if none is) and reports what it brought.
    async fn join(&mut self) -> Result<GroupEvent, KafkaError> {
        self.start_join();
        match self.complete_join().await? {
            Some(assignment) => Ok(self.assignment_event(assignment)),
            None => Ok(GroupEvent::Records(Vec::new())),
        }
    }

    /// Waits for the round on its way and returns the assignment it brought; `None` when the member must
    /// join again.
    async fn complete_join(&mut self) -> Result<Option<Vec<Tp>>, KafkaError> {
        let Some(pending) = self.pending_join.as_mut() else {
            return Ok(None);
        };
        let outcome = match pending.await {
            Ok(outcome) => outcome,
            Err(e) => Err(KafkaError::Backend(format!("the join task failed: {e}"))),
        };
        self.pending_join = None;
        match outcome? {
            Round::Assigned(assignment) => Ok(Some(assignment)),
            Round::Fenced => {
                // Thrown out while the round was on its way (a cooperative member still holds partitions):
                // they are lost, and the next poll says so before joining afresh.
                let mut m = self.membership();
                m.member_id = None;
                if !self.owned.is_empty() {
                    m.lost = Some(Loss::Removed);
                }
                Ok(None)
            }
            Round::Retry { backoff } => {
                if backoff {
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                Ok(None)
            }
        }
    }

    /// The event an assignment makes: all of it (eager), or what changed (cooperative).
    fn assignment_event(&mut self, assignment: Vec<Tp>) -> GroupEvent {
        if self.cooperative {
            return self.incremental(assignment);
        }
        self.owned = assignment.iter().cloned().collect();
        GroupEvent::Assigned(assignment.iter().map(to_core).collect())
    }

    /// A cooperative assignment as events: first the partitions taken away (kept until the next poll, after
    /// which the member rejoins so they can go to their new owner), then those added.
    fn incremental(&mut self, assignment: Vec<Tp>) -> GroupEvent {
        let assigned: BTreeSet<Tp> = assignment.into_iter().collect();
        let revoked: Vec<Tp> = self.owned.difference(&assigned).cloned().collect();
        let added: Vec<Tp> = assigned.difference(&self.owned).cloned().collect();
        if !revoked.is_empty() {
            self.membership().rejoin = true;
            self.revoking = revoked.clone();
            self.pending_assigned = added;
            return GroupEvent::Revoked(revoked.iter().map(to_core).collect());
        }
        self.owned.extend(added.iter().cloned());
        match added.is_empty() {
            true => GroupEvent::Records(Vec::new()),
            false => GroupEvent::Assigned(added.iter().map(to_core).collect()),
        }
    }

    /// Drops the partitions reported revoked; returns those a cooperative rebalance added meanwhile.
    fn finish_revocation(&mut self) -> Vec<Tp> {
        for tp in std::mem::take(&mut self.revoking) {
            self.owned.remove(&tp);
            self.positions.remove(&tp);
            self.out_of_range.remove(&tp);
            self.paused.remove(&tp);
        }
        let added = std::mem::take(&mut self.pending_assigned);
        self.owned.extend(added.iter().cloned());
        added
    }

    /// Positions of owned partitions that have none yet: the committed offset, else (and for a position
    /// a fetch found outside the log) where `auto.offset.reset` says: the log start or the end.
    async fn initialize_positions(&mut self) -> Result<(), KafkaError> {
        let (out_of_range, missing): (Vec<Tp>, Vec<Tp>) = self
            .owned
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .partition(|tp| self.out_of_range.contains_key(tp));
        if missing.is_empty() && out_of_range.is_empty() {
            return Ok(());
        }
        let committed = match missing.is_empty() {
            true => Vec::new(),
            false => self.fetch_committed(&missing).await?,
        };
        let mut to_reset = out_of_range;
        to_reset.extend(
            committed
                .iter()
                .filter(|(_, offset)| offset.is_none())
                .map(|(tp, _)| tp.clone()),
        );
        let reset = self.reset_points(to_reset).await?;
        for (tp, offset) in committed {
            if let Some(position) = offset.or_else(|| reset.get(&tp).copied()) {
                self.positions.insert(tp, position);
            }
        }
        for (tp, was) in std::mem::take(&mut self.out_of_range) {
            if !self.owned.contains(&tp) {
                // Given up since: whoever owns it next starts at the committed offset.
                continue;
            }
            let Some(&position) = reset.get(&tp) else {
                self.out_of_range.insert(tp, was);
                continue;
            };
            if position > was {
                tracing::warn!(group = %self.group, %tp, from = was, to = position, "position before the log start: records deleted by retention are skipped (auto.offset.reset)");
                coverage::reached(Event::RetentionSkipped);
            }
            self.positions.insert(tp, position);
        }
        Ok(())
    }

    /// Where `auto.offset.reset` starts these partitions: their log start (earliest) or end (latest).
    async fn reset_points(&self, partitions: Vec<Tp>) -> Result<BTreeMap<Tp, i64>, KafkaError> {
        let mut reset = BTreeMap::new();
        if partitions.is_empty() {
            return Ok(reset);
        }
        let latest = self.reset_to_latest;
        let answers = self
            .router
            .call_leaders(partitions, Duration::ZERO, |partitions| match latest {
                true => Request::EndOffsets { partitions },
                false => Request::StartOffsets { partitions },
            })
            .await;
        for (_, answer) in answers {
            match answer? {
                Response::EndOffsets { offsets } | Response::StartOffsets { offsets } => {
                    reset.extend(offsets)
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok(reset)
    }

    async fn fetch_committed(
        &self,
        partitions: &[Tp],
    ) -> Result<Vec<(Tp, Option<i64>)>, KafkaError> {
        let request = Request::OffsetFetch {
            group: self.group.clone(),
            partitions: partitions.to_vec(),
        };
        match self.coordinator(&request).await? {
            Response::Committed { offsets } => Ok(offsets),
            other => Err(unexpected(other)),
        }
    }

    async fn fetch(
        &mut self,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<GroupEvent, KafkaError> {
        if let Err(e) = self.initialize_positions().await {
            tracing::debug!(group = %self.group, error = %e, "cannot read committed offsets; retrying");
            tokio::time::sleep(RETRY_BACKOFF).await;
            return Ok(GroupEvent::Records(Vec::new()));
        }
        let positions: Vec<(Tp, i64)> = self
            .owned
            .iter()
            .filter(|tp| !self.paused.contains(*tp))
            .filter_map(|tp| self.positions.get(tp).map(|p| (tp.clone(), *p)))
            .collect();
        if positions.is_empty() {
            tokio::time::sleep(max_wait).await;
            return Ok(GroupEvent::Records(Vec::new()));
        }
        let wanted: BTreeMap<Tp, i64> = positions.into_iter().collect();
        if let Err(e) = self.fetcher.send(&wanted, max_records, max_wait).await {
            tracing::debug!(group = %self.group, error = %e, "cannot find the partitions' leaders");
        }
        if self.fetcher.is_idle() {
            tokio::time::sleep(RETRY_BACKOFF).await;
            return Ok(GroupEvent::Records(Vec::new()));
        }
        let answers = self.fetcher.answers(max_wait).await;
        let mut records = Vec::new();
        let mut next = Vec::new();
        let failed = answers
            .iter()
            .filter(|a| {
                matches!(
                    a.answer,
                    Err(_) | Ok(Response::Error(ErrorCode::NotLeaderOrFollower))
                )
            })
            .count();
        let all_failed = failed > 0 && failed == answers.len();
        for Answered { sent, answer } in answers {
            // Only partitions still where the fetch began: the others moved on (or back) meanwhile.
            let current = |tp: &Tp| {
                self.positions.get(tp) == sent.get(tp)
                    && self.owned.contains(tp)
                    && !self.paused.contains(tp)
            };
            match answer {
                Ok(Response::Fetched {
                    records: fetched,
                    next: moved,
                    out_of_range,
                }) => {
                    records.extend(fetched.into_iter().filter(|r| current(&r.tp)));
                    next.extend(moved.into_iter().filter(|(tp, _)| current(tp)));
                    // Before the log start (deleted by retention) or past the end (a seek too far):
                    // those partitions start again where `auto.offset.reset` says.
                    let gone: Vec<Tp> = out_of_range.into_iter().filter(|tp| current(tp)).collect();
                    for tp in gone {
                        if let Some(was) = self.positions.remove(&tp) {
                            self.out_of_range.insert(tp, was);
                        }
                    }
                }
                Ok(Response::Error(ErrorCode::NotLeaderOrFollower)) | Err(_) => {}
                Ok(other) => return Err(unexpected(other)),
            }
        }
        if all_failed {
            tracing::debug!(group = %self.group, "fetch failed; retrying");
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        Ok(GroupEvent::Records(self.consume(records, next)))
    }

    /// Fetched records as the runtime gets them, moving the positions past them (and past the markers
    /// and aborted records the broker skipped).
    fn consume(
        &mut self,
        records: Vec<FetchedRecord>,
        next: Vec<(Tp, i64)>,
    ) -> Vec<ConsumedRecord> {
        let mut out = Vec::with_capacity(records.len());
        for fetched in records {
            // Records of a partition paused, or positioned elsewhere, since the fetch was built are dropped.
            // Offsets may skip ahead: transaction markers and aborted records are never returned.
            if self
                .positions
                .get(&fetched.tp)
                .is_none_or(|position| fetched.offset < *position)
                || self.paused.contains(&fetched.tp)
            {
                continue;
            }
            self.positions
                .insert(fetched.tp.clone(), fetched.offset + 1);
            let topic = fetched.tp.topic.clone();
            out.push(super::consumed(fetched, topic, self.headers));
        }
        // Past the markers and aborted records the broker skipped, which are never returned.
        for (tp, next) in next {
            if self.paused.contains(&tp) {
                continue;
            }
            if let Some(position) = self.positions.get_mut(&tp) {
                *position = (*position).max(next);
            }
        }
        out
    }

    /// Sends a request to the group's coordinator.
    async fn coordinator(&self, request: &Request) -> Result<Response, KafkaError> {
        self.router
            .call_coordinator(CoordinatorKind::Group, &self.group, request, Duration::ZERO)
            .await
    }
}

#[async_trait]
impl GroupConsumer for SimGroupConsumer {
    async fn poll(
        &mut self,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<GroupEvent, KafkaError> {
        self.membership().last_poll = now();
        let added = self.finish_revocation();
        if !added.is_empty() {
            return Ok(GroupEvent::Assigned(added.iter().map(to_core).collect()));
        }
        let (joined, rejoin, lost) = {
            let mut m = self.membership();
            (m.joined, m.rejoin, m.lost.take())
        };
        if let Some(loss) = lost {
            let parts = self.give_up_all();
            if !parts.is_empty() {
                if loss == Loss::SessionTimedOut {
                    coverage::reached(Event::PartitionsLost);
                }
                return Ok(GroupEvent::Lost(parts));
            }
        }
        let lost = lost.is_some();
        if joined && rejoin && !self.owned.is_empty() && !self.cooperative {
            // Eager: everything goes before rejoining.
            self.revoking = self.owned.iter().cloned().collect();
            return Ok(GroupEvent::Revoked(
                self.owned.iter().map(to_core).collect(),
            ));
        }
        if !joined || rejoin || lost {
            self.start_join();
        }
        let joining = self.pending_join.as_ref().is_some_and(|j| !j.is_finished());
        if self.cooperative && joining && !self.owned.is_empty() {
            // Cooperative: keep consuming what is owned while the group rebalances.
            return self.fetch(max_records, max_wait).await;
        }
        if !joined || rejoin || lost || self.pending_join.is_some() {
            return self.join().await;
        }
        self.fetch(max_records, max_wait).await
    }

    async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), KafkaError> {
        // The generation is the one the last JoinGroup answer brought, even before its assignment is in
        // (as librdkafka's): revoked partitions are committed in the generation that revoked them
        // (KIP-429).
        let (member_id, generation) = {
            let m = self.membership();
            match (&m.member_id, m.lost) {
                (Some(id), None) => (id.clone(), m.generation),
                _ => return Err(KafkaError::Fenced("not a member of the group".into())),
            }
        };
        let request = Request::OffsetCommit {
            group: self.group.clone(),
            member_id,
            generation,
            offsets: offsets.iter().map(|(tp, o)| (from_core(tp), *o)).collect(),
        };
        match self.coordinator(&request).await? {
            Response::Done => Ok(()),
            // The coordinator knows the member (it checks that first): a generation formed with it
            // while this commit carried the one before, as when the commit overtook the JoinGroup answer.
            Response::Error(ErrorCode::IllegalGeneration) => Err(KafkaError::RebalanceInProgress(
                ErrorCode::IllegalGeneration.to_string(),
            )),
            Response::Error(code) => Err(code_error(code)),
            other => Err(unexpected(other)),
        }
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError> {
        let wanted: Vec<Tp> = partitions.iter().map(from_core).collect();
        let committed = self.fetch_committed(&wanted).await?;
        Ok(committed
            .into_iter()
            .map(|(tp, o)| (to_core(&tp), o))
            .collect())
    }

    async fn log_start_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let tps = partitions.iter().map(from_core).collect();
        let answers = self
            .router
            .call_leaders(tps, Duration::ZERO, |partitions| Request::StartOffsets {
                partitions,
            })
            .await;
        let mut starts = BTreeMap::new();
        for (_, answer) in answers {
            match answer? {
                Response::StartOffsets { offsets } => {
                    starts.extend(offsets.iter().map(|(tp, start)| (to_core(tp), *start)))
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok(starts)
    }

    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> Result<(), KafkaError> {
        let tp = from_core(partition);
        if !self.owned.contains(&tp) {
            return Err(KafkaError::Backend(format!(
                "cannot seek {partition}: not assigned"
            )));
        }
        self.out_of_range.remove(&tp);
        self.positions.insert(tp, offset);
        Ok(())
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        self.paused.extend(partitions.iter().map(from_core));
        Ok(())
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError> {
        for tp in partitions {
            self.paused.remove(&from_core(tp));
        }
        Ok(())
    }

    fn read_headers(&mut self, read: bool) {
        self.headers = read;
    }

    async fn close(mut self: Box<Self>) -> Result<(), KafkaError> {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if let Some(join) = self.pending_join.take() {
            join.abort();
        }
        let member_id = self.membership().member_id.take();
        if let Some(member_id) = member_id {
            let request = Request::LeaveGroup {
                group: self.group.clone(),
                member_id,
                reason: LeaveReason::Closing,
            };
            match self.coordinator(&request).await? {
                Response::Done | Response::Error(ErrorCode::UnknownMemberId) => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(())
    }
}

impl Drop for SimGroupConsumer {
    fn drop(&mut self) {
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
        }
        if let Some(join) = self.pending_join.take() {
            join.abort();
        }
    }
}

fn to_core(tp: &Tp) -> TopicPartition {
    TopicPartition::new(&*tp.topic, tp.partition)
}

fn from_core(tp: &TopicPartition) -> Tp {
    Tp::new(tp.topic.clone(), tp.partition)
}
