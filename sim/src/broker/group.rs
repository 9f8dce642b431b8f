//! The group coordinator: members, generations, session and rebalance timeouts, the JoinGroup and
//! SyncGroup phases, and offset commits fenced by generation.
//!
//! It follows Kafka's classic protocol (`GroupCoordinator`): a rebalance starts when a member joins,
//! leaves, changes its subscription or misses its session (PreparingRebalance); every member must rejoin
//! within the rebalance timeout or is removed; then the generation advances and each rejoined member gets
//! its JoinGroup answer, the leader with every member's subscription (CompletingRebalance). The leader
//! computes the assignment and sends it in its SyncGroup; the group is then Stable and each member's
//! SyncGroup is answered with its partitions. A member that has not sent its SyncGroup within the
//! rebalance timeout is removed, which starts another rebalance. The coordinator never assigns anything
//! itself. Heartbeats and commits are answered per state as Kafka answers them: a heartbeat is told
//! REBALANCE_IN_PROGRESS while members rejoin; a commit of the current generation is accepted while
//! members rejoin (they commit what they flush before giving partitions up) and refused with
//! REBALANCE_IN_PROGRESS between JoinGroup and the leader's SyncGroup; an older generation's is refused.
//! Time is simulated time since the start, passed in, so the logic is a plain state machine.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::coverage::{self, Event};
use crate::protocol::{ErrorCode, LeaveReason, MemberSubscription, Tp};

/// Why a member left the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Left,
    /// It left because its application did not poll within `max.poll.interval.ms`.
    PollTimeout,
    SessionExpired,
    /// It did not rejoin, or did not send its SyncGroup, within the rebalance timeout.
    MissedRebalance,
}

/// Something the coordinator did, for the run's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Joined(String),
    Departed(String, Departure),
    RebalanceStarted,
    /// The join phase ended: a new generation with these members, whose commits the coordinator accepts
    /// from now on (except between a member's JoinGroup answer and the leader's SyncGroup).
    JoinPhaseEnded {
        generation: i32,
        members: Vec<String>,
    },
    /// The leader's SyncGroup gave the generation its assignment.
    Completed {
        generation: i32,
        assignment: BTreeMap<String, Vec<Tp>>,
        /// What each member reported owning when it joined this generation (members owning nothing are
        /// left out): a partition assigned to one member while another still owns it is owned twice.
        owned: BTreeMap<String, Vec<Tp>>,
    },
}

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub member_id: Option<String>,
    pub client_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub cooperative: bool,
    pub subscription: MemberSubscription,
}

#[derive(Debug, Clone)]
struct Member {
    subscription: MemberSubscription,
    cooperative: bool,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Duration,
    /// Has sent JoinGroup during the pending rebalance.
    rejoined: bool,
    /// Has sent SyncGroup in the current generation.
    synced: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    /// Waiting for members to rejoin; the join phase ends when all have (and not before `not_before`),
    /// or at `deadline` without those that have not.
    PreparingRebalance {
        not_before: Duration,
        deadline: Duration,
    },
    /// The generation has its members; waiting for the leader's SyncGroup.
    CompletingRebalance,
    Stable,
}

/// What every JoinGroup of a generation is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAnswer {
    pub generation: i32,
    pub leader: String,
    pub cooperative: bool,
    /// Every member's subscription: given to the leader only.
    pub members: BTreeMap<String, MemberSubscription>,
}

/// What a JoinGroup got at once: its member id; the answer comes with the generation after `after`
/// (see [`Group::join_answer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub member_id: String,
    pub after: i32,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    state: State,
    generation: i32,
    members: BTreeMap<String, Member>,
    /// The member that computes the assignment: the first to join, or the next in id order once it is
    /// gone, as Kafka picks it.
    leader: Option<String>,
    /// The current generation's JoinGroup answer (its members as they joined).
    joined: Option<JoinAnswer>,
    /// The current generation's assignment, once the leader has sent it.
    assignment: BTreeMap<String, Vec<Tp>>,
    /// Members that have not sent SyncGroup by then are removed.
    sync_deadline: Option<Duration>,
    committed: BTreeMap<Tp, i64>,
    /// Each partition's member in the last generation that assigned it, to see partitions move.
    owners: BTreeMap<Tp, String>,
    next_member: u64,
    initial_delay: Duration,
}

impl Group {
    /// A new, empty group; its first rebalance waits `initial_delay` for more members
    /// (`group.initial.rebalance.delay.ms`).
    pub fn new(initial_delay: Duration) -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            members: BTreeMap::new(),
            leader: None,
            joined: None,
            assignment: BTreeMap::new(),
            sync_deadline: None,
            committed: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_member: 0,
            initial_delay,
        }
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    pub fn committed(&self) -> &BTreeMap<Tp, i64> {
        &self.committed
    }

    /// A JoinGroup. An unknown member id is refused (the client then joins as a new member). A member
    /// whose subscription is unchanged gets the current generation's answer again, unless it is the
    /// leader of a stable group (Kafka lets the leader's JoinGroup start a rebalance).
    pub fn join(
        &mut self,
        now: Duration,
        joiner: Joiner,
        changes: &mut Vec<GroupChange>,
    ) -> Result<JoinOutcome, ErrorCode> {
        let id = match joiner.member_id {
            Some(id) => {
                let member = self
                    .members
                    .get_mut(&id)
                    .ok_or(ErrorCode::UnknownMemberId)?;
                let changed = member.subscription != joiner.subscription
                    || member.cooperative != joiner.cooperative;
                member.subscription = joiner.subscription;
                member.cooperative = joiner.cooperative;
                member.session_timeout = joiner.session_timeout;
                member.rebalance_timeout = joiner.rebalance_timeout;
                member.last_seen = now;
                let leads = self.leader.as_deref() == Some(id.as_str());
                let current = match self.state {
                    State::CompletingRebalance => !changed,
                    State::Stable => !changed && !leads,
                    State::Empty | State::PreparingRebalance { .. } => false,
                };
                if current {
                    return Ok(JoinOutcome {
                        member_id: id,
                        after: self.generation - 1,
                    });
                }
                id
            }
            None => {
                self.next_member += 1;
                let id = format!("{}-{}", joiner.client_id, self.next_member);
                self.members.insert(
                    id.clone(),
                    Member {
                        subscription: joiner.subscription,
                        cooperative: joiner.cooperative,
                        session_timeout: joiner.session_timeout,
                        rebalance_timeout: joiner.rebalance_timeout,
                        last_seen: now,
                        rejoined: false,
                        synced: false,
                    },
                );
                self.leader.get_or_insert_with(|| id.clone());
                changes.push(GroupChange::Joined(id.clone()));
                id
            }
        };
        self.start_rebalance(now, changes);
        if let Some(member) = self.members.get_mut(&id) {
            member.rejoined = true;
        }
        Ok(JoinOutcome {
            member_id: id,
            after: self.generation,
        })
    }

    /// The JoinGroup answer for a member waiting for a generation after `after`: `None` while its join
    /// phase has not ended, `Err` if the member was removed.
    pub fn join_answer(
        &self,
        member_id: &str,
        after: i32,
    ) -> Result<Option<JoinAnswer>, ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        let Some(joined) = self
            .joined
            .as_ref()
            .filter(|j| j.generation > after && j.members.contains_key(member_id))
        else {
            return Ok(None);
        };
        let mut answer = joined.clone();
        if answer.leader != member_id {
            answer.members.clear();
        }
        Ok(Some(answer))
    }

    /// A SyncGroup: the leader's gives the generation its assignment and makes the group stable.
    pub fn sync(
        &mut self,
        now: Duration,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Vec<Tp>)>,
        changes: &mut Vec<GroupChange>,
    ) -> Result<(), ErrorCode> {
        self.validate(member_id, generation)?;
        match self.state {
            State::Empty => return Err(ErrorCode::UnknownMemberId),
            State::PreparingRebalance { .. } => return Err(ErrorCode::RebalanceInProgress),
            State::CompletingRebalance | State::Stable => {}
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.synced = true;
            member.last_seen = now;
        }
        let leads = self.leader.as_deref() == Some(member_id);
        if self.state == State::CompletingRebalance && leads {
            let mut given: BTreeMap<String, Vec<Tp>> = assignments.into_iter().collect();
            self.assignment = self
                .members
                .keys()
                .map(|id| (id.clone(), given.remove(id).unwrap_or_default()))
                .collect();
            self.state = State::Stable;
            self.note_owners();
            let owned = self
                .members
                .iter()
                .filter(|(_, member)| !member.subscription.owned.is_empty())
                .map(|(id, member)| (id.clone(), member.subscription.owned.clone()))
                .collect();
            changes.push(GroupChange::Completed {
                generation: self.generation,
                assignment: self.assignment.clone(),
                owned,
            });
        }
        if self.members.values().all(|m| m.synced) {
            self.sync_deadline = None;
        }
        Ok(())
    }

    /// A member's assignment in `generation` once the leader has sent it: `None` until then.
    pub fn assignment_of(
        &self,
        member_id: &str,
        generation: i32,
    ) -> Result<Option<Vec<Tp>>, ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            // A rebalance began (and its join phase ended) while this SyncGroup waited.
            return Err(ErrorCode::RebalanceInProgress);
        }
        match self.state {
            State::Empty => Err(ErrorCode::UnknownMemberId),
            State::PreparingRebalance { .. } => Err(ErrorCode::RebalanceInProgress),
            State::CompletingRebalance => Ok(None),
            State::Stable => Ok(Some(
                self.assignment.get(member_id).cloned().unwrap_or_default(),
            )),
        }
    }

    pub fn heartbeat(
        &mut self,
        now: Duration,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ErrorCode> {
        self.validate(member_id, generation)?;
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_seen = now;
        }
        match self.state {
            State::Empty => Err(ErrorCode::UnknownMemberId),
            State::PreparingRebalance { .. } => Err(ErrorCode::RebalanceInProgress),
            State::CompletingRebalance | State::Stable => Ok(()),
        }
    }

    pub fn leave(
        &mut self,
        now: Duration,
        member_id: &str,
        reason: LeaveReason,
        changes: &mut Vec<GroupChange>,
    ) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        let why = match reason {
            LeaveReason::Closing => Departure::Left,
            LeaveReason::PollTimeout => Departure::PollTimeout,
        };
        self.remove(now, member_id, why, changes);
        Ok(())
    }

    /// Commits offsets for a member of the current generation; a commit counts as a heartbeat.
    pub fn commit(
        &mut self,
        now: Duration,
        member_id: &str,
        generation: i32,
        offsets: &[(Tp, i64)],
    ) -> Result<(), ErrorCode> {
        self.validate(member_id, generation)
            .inspect_err(|_| coverage::reached(Event::CommitRefusedStale))?;
        match self.state {
            State::Empty => return Err(ErrorCode::UnknownMemberId),
            // The member has its JoinGroup answer but not its assignment yet (Kafka's words: "we should
            // not receive a commit request if the group has not completed rebalance").
            State::CompletingRebalance => return Err(ErrorCode::RebalanceInProgress),
            State::PreparingRebalance { .. } | State::Stable => {}
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_seen = now;
        }
        for (tp, offset) in offsets {
            self.committed.insert(tp.clone(), *offset);
        }
        Ok(())
    }

    /// The group was loaded on a new coordinator: every member's session counts from now, as Kafka's
    /// `onGroupLoaded` schedules each member's next heartbeat expiration afresh.
    pub fn loaded(&mut self, now: Duration) {
        for member in self.members.values_mut() {
            member.last_seen = now;
        }
    }

    /// Applies offsets a transaction committed (TxnOffsetCommit): no generation check, as the producer's
    /// epoch fenced its zombies.
    pub fn apply_offsets(&mut self, offsets: &BTreeMap<Tp, i64>) {
        self.committed
            .extend(offsets.iter().map(|(tp, offset)| (tp.clone(), *offset)));
    }

    /// Removes members whose session expired or who missed their SyncGroup, and ends a join phase whose
    /// members are all in or whose deadline passed.
    pub fn tick(&mut self, now: Duration, changes: &mut Vec<GroupChange>) {
        let state = self.state;
        // Members waiting for their JoinGroup or SyncGroup answer are kept alive, as Kafka keeps them.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| match state {
                State::PreparingRebalance { .. } => !m.rejoined,
                State::CompletingRebalance => !m.synced,
                State::Empty | State::Stable => true,
            })
            .filter(|(_, m)| now.saturating_sub(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(now, &id, Departure::SessionExpired, changes);
        }
        if self.sync_deadline.is_some_and(|deadline| now >= deadline) {
            let unsynced: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| !m.synced)
                .map(|(id, _)| id.clone())
                .collect();
            self.sync_deadline = None;
            for id in unsynced {
                self.remove(now, &id, Departure::MissedRebalance, changes);
            }
        }
        if let State::PreparingRebalance {
            not_before,
            deadline,
        } = self.state
        {
            let all_in = self.members.values().all(|m| m.rejoined);
            if now >= deadline || (all_in && now >= not_before) {
                let late: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(_, m)| !m.rejoined)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in late {
                    self.members.remove(&id);
                    changes.push(GroupChange::Departed(id, Departure::MissedRebalance));
                }
                self.end_join_phase(now, changes);
            }
        }
    }

    /// Starts a rebalance when a topic a member consumes appears or grows (standing in for the members'
    /// own metadata refresh, which would make them rejoin).
    pub fn topics_changed(&mut self, now: Duration, topic: &str, changes: &mut Vec<GroupChange>) {
        let interested = self
            .members
            .values()
            .any(|m| m.subscription.interest.matches(topic));
        // The assignment in force, or the one the leader is computing from metadata that may predate
        // the topic, leaves it out; a rebalance under way will see it.
        let assigning = matches!(self.state, State::CompletingRebalance | State::Stable);
        if interested && assigning {
            self.start_rebalance(now, changes);
        }
    }

    /// Kafka's checks before a member's request: it must be a member, of the current generation.
    /// Records the new assignment's owners; a partition that moved from one member to another was handed
    /// over (its old owner gave it up, committing first, and the new one resumes from that commit).
    fn note_owners(&mut self) {
        for (member, partitions) in &self.assignment {
            for tp in partitions {
                let before = self.owners.insert(tp.clone(), member.clone());
                if before.is_some_and(|before| before != *member) {
                    coverage::reached(Event::PartitionHandedOver);
                }
            }
        }
    }

    fn validate(&self, member_id: &str, generation: i32) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    fn remove(
        &mut self,
        now: Duration,
        member_id: &str,
        why: Departure,
        changes: &mut Vec<GroupChange>,
    ) {
        self.members.remove(member_id);
        changes.push(GroupChange::Departed(member_id.to_owned(), why));
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation += 1;
            self.joined = None;
            self.assignment.clear();
            self.sync_deadline = None;
        } else {
            self.start_rebalance(now, changes);
        }
    }

    fn start_rebalance(&mut self, now: Duration, changes: &mut Vec<GroupChange>) {
        if matches!(self.state, State::PreparingRebalance { .. }) {
            return;
        }
        let delay = match self.state {
            State::Empty => self.initial_delay,
            _ => Duration::ZERO,
        };
        self.state = State::PreparingRebalance {
            not_before: now + delay,
            deadline: now + self.rebalance_timeout().max(delay),
        };
        self.sync_deadline = None;
        for member in self.members.values_mut() {
            member.rejoined = false;
            member.synced = false;
        }
        changes.push(GroupChange::RebalanceStarted);
    }

    /// The longest rebalance timeout of the members: how long the coordinator waits for joins and syncs.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Ends the join phase: the next generation with the members that rejoined, waiting for the leader.
    fn end_join_phase(&mut self, now: Duration, changes: &mut Vec<GroupChange>) {
        self.generation += 1;
        self.assignment.clear();
        if self.members.is_empty() {
            self.state = State::Empty;
            self.joined = None;
            self.leader = None;
            return;
        }
        changes.push(GroupChange::JoinPhaseEnded {
            generation: self.generation,
            members: self.members.keys().cloned().collect(),
        });
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        self.joined = Some(JoinAnswer {
            generation: self.generation,
            leader,
            cooperative: self.members.values().all(|m| m.cooperative),
            members: self
                .members
                .iter()
                .map(|(id, m)| (id.clone(), m.subscription.clone()))
                .collect(),
        });
        self.state = State::CompletingRebalance;
        self.sync_deadline = Some(now + self.rebalance_timeout());
        // A member's session restarts when it gets its JoinGroup answer, as Kafka's does.
        for member in self.members.values_mut() {
            member.rejoined = false;
            member.synced = false;
            member.last_seen = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Interest;

    const SESSION: Duration = Duration::from_secs(10);
    const REBALANCE: Duration = Duration::from_secs(30);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn subscription(owned: &[i32]) -> MemberSubscription {
        MemberSubscription {
            interest: Interest::Topics(vec!["t".into()]),
            owned: owned.iter().map(|p| Tp::new("t", *p)).collect(),
        }
    }

    fn join(group: &mut Group, now: Duration, id: Option<&str>, owned: &[i32]) -> JoinOutcome {
        let joiner = Joiner {
            member_id: id.map(str::to_owned),
            client_id: "c".into(),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
            cooperative: false,
            subscription: subscription(owned),
        };
        group.join(now, joiner, &mut Vec::new()).unwrap()
    }

    /// Ends the join phase at `now` and returns the generation.
    fn end_join(group: &mut Group, now: Duration, outcome: &JoinOutcome) -> i32 {
        group.tick(now, &mut Vec::new());
        group
            .join_answer(&outcome.member_id, outcome.after)
            .unwrap()
            .expect("the join phase has ended")
            .generation
    }

    fn assignment(partitions: &[(&str, &[i32])]) -> Vec<(String, Vec<Tp>)> {
        partitions
            .iter()
            .map(|(id, ps)| {
                (
                    id.to_string(),
                    ps.iter().map(|p| Tp::new("t", *p)).collect(),
                )
            })
            .collect()
    }

    /// A group of `a` (leader) and `b`, stable in the generation returned.
    fn stable_pair(group: &mut Group) -> (String, String, i32) {
        let a = join(group, secs(0), None, &[]);
        let b = join(group, secs(0), None, &[]);
        let generation = end_join(group, secs(0), &a);
        let (a, b) = (a.member_id, b.member_id);
        let split = assignment(&[(&a, &[0, 1]), (&b, &[2, 3])]);
        group
            .sync(secs(0), &a, generation, split, &mut Vec::new())
            .unwrap();
        group
            .sync(secs(0), &b, generation, Vec::new(), &mut Vec::new())
            .unwrap();
        (a, b, generation)
    }

    #[test]
    fn the_leader_gets_every_subscription_and_its_sync_assigns_the_followers() {
        let mut group = Group::new(secs(3));
        let a = join(&mut group, secs(0), None, &[]);
        let b = join(&mut group, secs(1), None, &[]);
        group.tick(secs(2), &mut Vec::new());
        assert_eq!(group.join_answer(&a.member_id, a.after), Ok(None));
        let generation = end_join(&mut group, secs(3), &a);
        let to_leader = group.join_answer(&a.member_id, a.after).unwrap().unwrap();
        let to_follower = group.join_answer(&b.member_id, b.after).unwrap().unwrap();
        assert_eq!(to_leader.leader, a.member_id);
        assert_eq!(to_follower.leader, a.member_id);
        assert_eq!(to_leader.members.len(), 2);
        assert!(to_follower.members.is_empty());
        // The follower syncs first and waits for the leader's assignment.
        let mut changes = Vec::new();
        group
            .sync(secs(4), &b.member_id, generation, Vec::new(), &mut changes)
            .unwrap();
        assert_eq!(group.assignment_of(&b.member_id, generation), Ok(None));
        let split = assignment(&[(&a.member_id, &[0, 1]), (&b.member_id, &[2, 3])]);
        group
            .sync(secs(5), &a.member_id, generation, split, &mut changes)
            .unwrap();
        assert_eq!(
            group.assignment_of(&b.member_id, generation),
            Ok(Some(vec![Tp::new("t", 2), Tp::new("t", 3)]))
        );
        assert!(matches!(
            changes.as_slice(),
            [GroupChange::Completed { generation: g, assignment, .. }] if *g == generation && assignment.len() == 2
        ));
    }

    #[test]
    fn heartbeats_and_commits_are_answered_per_phase_as_kafka_answers_them() {
        let mut group = Group::new(Duration::ZERO);
        let (a, b, old) = stable_pair(&mut group);
        let offsets = [(Tp::new("t", 0), 7)];
        // PreparingRebalance: told to rejoin; the current generation still commits.
        let c = join(&mut group, secs(1), None, &[]);
        assert_eq!(
            group.heartbeat(secs(1), &a, old),
            Err(ErrorCode::RebalanceInProgress)
        );
        group.commit(secs(1), &a, old, &offsets).unwrap();
        assert_eq!(group.committed().get(&Tp::new("t", 0)), Some(&7));
        // CompletingRebalance: the new generation heartbeats but may not commit yet; the old is fenced.
        let a_again = join(&mut group, secs(2), Some(&a), &[]);
        join(&mut group, secs(2), Some(&b), &[]);
        let new = end_join(&mut group, secs(2), &a_again);
        assert_eq!(
            group
                .join_answer(&c.member_id, c.after)
                .unwrap()
                .unwrap()
                .generation,
            new
        );
        assert_eq!(group.heartbeat(secs(2), &a, new), Ok(()));
        assert_eq!(
            group.heartbeat(secs(2), &a, old),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            group.commit(secs(2), &a, new, &offsets),
            Err(ErrorCode::RebalanceInProgress)
        );
        assert_eq!(
            group.commit(secs(2), &a, old, &offsets),
            Err(ErrorCode::IllegalGeneration)
        );
        // Stable again once the leader has synced.
        group
            .sync(secs(3), &a, new, Vec::new(), &mut Vec::new())
            .unwrap();
        group
            .commit(secs(3), &a, new, &[(Tp::new("t", 0), 9)])
            .unwrap();
        assert_eq!(group.committed().get(&Tp::new("t", 0)), Some(&9));
    }

    #[test]
    fn an_expired_member_is_removed_and_its_commits_are_fenced() {
        let mut group = Group::new(Duration::ZERO);
        let (a, b, generation) = stable_pair(&mut group);
        for s in 1..=11 {
            group.heartbeat(secs(s), &a, generation).unwrap();
            group.tick(secs(s), &mut Vec::new());
        }
        let mut changes = Vec::new();
        group.tick(secs(11), &mut changes);
        assert_eq!(
            group.heartbeat(secs(11), &b, generation),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(
            group.commit(secs(11), &b, generation, &[(Tp::new("t", 2), 5)]),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(
            group.heartbeat(secs(11), &a, generation),
            Err(ErrorCode::RebalanceInProgress)
        );
    }

    #[test]
    fn a_member_that_does_not_sync_in_time_is_removed_and_the_group_rebalances() {
        let mut group = Group::new(Duration::ZERO);
        let a = join(&mut group, secs(0), None, &[]);
        let b = join(&mut group, secs(0), None, &[]);
        let generation = end_join(&mut group, secs(0), &a);
        // b syncs and waits; the leader a never sends its assignment (it heartbeats meanwhile).
        group
            .sync(
                secs(1),
                &b.member_id,
                generation,
                Vec::new(),
                &mut Vec::new(),
            )
            .unwrap();
        let mut changes = Vec::new();
        for s in 1..=30 {
            group.heartbeat(secs(s), &a.member_id, generation).unwrap();
            group.tick(secs(s), &mut changes);
        }
        assert!(changes.contains(&GroupChange::Departed(
            a.member_id.clone(),
            Departure::MissedRebalance
        )));
        assert_eq!(
            group.assignment_of(&b.member_id, generation),
            Err(ErrorCode::RebalanceInProgress)
        );
        // b rejoins and now leads the group alone.
        let b_again = join(&mut group, secs(31), Some(&b.member_id), &[]);
        end_join(&mut group, secs(31), &b_again);
        let answer = group
            .join_answer(&b.member_id, b_again.after)
            .unwrap()
            .unwrap();
        assert_eq!(answer.leader, b.member_id);
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_removed() {
        let mut group = Group::new(Duration::ZERO);
        let (a, b, generation) = stable_pair(&mut group);
        let b_again = join(&mut group, secs(1), Some(&b), &[2]);
        let mut changes = Vec::new();
        for s in 2..40 {
            group.heartbeat(secs(s), &a, generation).ok();
            group.tick(secs(s), &mut changes);
        }
        assert!(changes.contains(&GroupChange::Departed(
            a.clone(),
            Departure::MissedRebalance
        )));
        let answer = group.join_answer(&b, b_again.after).unwrap().unwrap();
        assert_eq!(answer.leader, b);
        assert_eq!(answer.members.len(), 1);
    }

    #[test]
    fn only_a_changed_subscription_or_the_leader_rejoining_starts_a_rebalance() {
        let mut group = Group::new(Duration::ZERO);
        let (a, b, generation) = stable_pair(&mut group);
        let mut changes = Vec::new();
        // A follower asking again with the same subscription gets the current generation back.
        let same = join(&mut group, secs(1), Some(&b), &[]);
        let answer = group.join_answer(&b, same.after).unwrap().unwrap();
        assert_eq!(answer.generation, generation);
        assert_eq!(group.heartbeat(secs(1), &a, generation), Ok(()));
        // A follower that gave partitions up (a cooperative revocation) starts one.
        join(&mut group, secs(2), Some(&b), &[3]);
        assert_eq!(
            group.heartbeat(secs(2), &a, generation),
            Err(ErrorCode::RebalanceInProgress)
        );
        let a_again = join(&mut group, secs(2), Some(&a), &[]);
        let next = end_join(&mut group, secs(2), &a_again);
        group
            .sync(secs(2), &a, next, Vec::new(), &mut changes)
            .unwrap();
        // The leader asking again starts one even with the same subscription.
        join(&mut group, secs(3), Some(&a), &[]);
        assert_eq!(
            group.heartbeat(secs(3), &b, next),
            Err(ErrorCode::RebalanceInProgress)
        );
    }
}
