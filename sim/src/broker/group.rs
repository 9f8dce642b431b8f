//! The group coordinator: members, generations, session and rebalance timeouts, the range assignor, and
//! offset commits fenced by generation.
//!
//! It follows Kafka's classic protocol with the assignment computed by the coordinator: a rebalance starts
//! when a member joins, leaves, changes what it consumes or misses its session; every member must rejoin
//! within the rebalance timeout or is removed; then the generation advances and each rejoined member learns
//! its partitions. Eager groups (every member revokes everything before rejoining) get Kafka's range
//! assignment. Cooperative groups (every member speaks `cooperative-sticky`, KIP-429) keep their partitions
//! through the rebalance: the sticky assignment moves as few partitions as it can, and a partition that
//! moves is first only taken from its owner; the owner revokes it and rejoins, and the rebalance that
//! follows gives it to its new owner, so no partition is ever owned twice. Commits are accepted from the current generation, also while a rebalance is
//! pending (members commit what they flush before giving partitions up), and refused from an older one.
//! Time is simulated time since the start, passed in, so the logic is a plain state machine.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use crate::protocol::{ErrorCode, Interest, Tp};

/// Why a member left the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Left,
    SessionExpired,
    /// It did not rejoin within the rebalance timeout.
    MissedRebalance,
}

/// Something the coordinator did, for the run's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Joined(String),
    Departed(String, Departure),
    RebalanceStarted,
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
    pub interest: Interest,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub cooperative: bool,
    pub owned: Vec<Tp>,
}

#[derive(Debug, Clone)]
struct Member {
    interest: Interest,
    cooperative: bool,
    owned: Vec<Tp>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Duration,
    /// Has sent JoinGroup during the pending rebalance.
    rejoined: bool,
    /// The generation this member last got an assignment in, and that assignment: a join waiting for
    /// that generation gets it even if another rebalance has started since.
    completed: Option<(i32, Vec<Tp>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Stable,
    /// Waiting for members to rejoin; completes when all have (and not before `not_before`), or at
    /// `deadline` without those that have not.
    Rebalancing {
        not_before: Duration,
        deadline: Duration,
    },
}

/// What a JoinGroup got: its member id now; the assignment comes once the rebalance completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub member_id: String,
    /// The assignment comes with the generation after this one (see [`Group::assignment_after`]).
    pub generation: i32,
}

/// One consumer group.
#[derive(Debug)]
pub struct Group {
    state: State,
    generation: i32,
    members: BTreeMap<String, Member>,
    assignment: BTreeMap<String, Vec<Tp>>,
    committed: BTreeMap<Tp, i64>,
    next_member: u64,
    initial_delay: Duration,
    /// The last cooperative assignment held partitions back until their owners give them up.
    withheld: bool,
}

impl Group {
    /// A new, empty group; its first rebalance waits `initial_delay` for more members
    /// (`group.initial.rebalance.delay.ms`).
    pub fn new(initial_delay: Duration) -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            members: BTreeMap::new(),
            assignment: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_member: 0,
            initial_delay,
            withheld: false,
        }
    }

    pub fn committed(&self) -> &BTreeMap<Tp, i64> {
        &self.committed
    }

    /// A JoinGroup. An unknown member id is refused (the client then joins as a new member).
    pub fn join(
        &mut self,
        now: Duration,
        joiner: Joiner,
        changes: &mut Vec<GroupChange>,
    ) -> Result<JoinOutcome, ErrorCode> {
        let id = match joiner.member_id.as_deref() {
            Some(id) => {
                let member = self.members.get_mut(id).ok_or(ErrorCode::UnknownMemberId)?;
                let changed = member.interest != joiner.interest;
                member.interest = joiner.interest;
                member.session_timeout = joiner.session_timeout;
                member.rebalance_timeout = joiner.rebalance_timeout;
                member.cooperative = joiner.cooperative;
                member.owned = joiner.owned;
                member.last_seen = now;
                if !changed && !self.withheld && self.state == State::Stable {
                    // A stable member asking again gets the current generation back.
                    return Ok(JoinOutcome {
                        member_id: id.to_owned(),
                        generation: self.generation - 1,
                    });
                }
                self.start_rebalance(now, changes);
                id.to_owned()
            }
            None => {
                self.next_member += 1;
                let id = format!("{}-{}", joiner.client_id, self.next_member);
                self.members.insert(
                    id.clone(),
                    Member {
                        interest: joiner.interest,
                        cooperative: joiner.cooperative,
                        owned: joiner.owned,
                        session_timeout: joiner.session_timeout,
                        rebalance_timeout: joiner.rebalance_timeout,
                        last_seen: now,
                        rejoined: false,
                        completed: None,
                    },
                );
                changes.push(GroupChange::Joined(id.clone()));
                self.start_rebalance(now, changes);
                id
            }
        };
        if let Some(member) = self.members.get_mut(&id) {
            member.rejoined = true;
        }
        Ok(JoinOutcome {
            member_id: id,
            generation: self.generation,
        })
    }

    /// The member's assignment once the group has moved past `generation`; `Err` if it was removed.
    pub fn assignment_after(
        &self,
        member_id: &str,
        generation: i32,
    ) -> Result<Option<(i32, Vec<Tp>)>, ErrorCode> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        Ok(member
            .completed
            .clone()
            .filter(|(completed, _)| *completed > generation))
    }

    pub fn heartbeat(
        &mut self,
        now: Duration,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ErrorCode> {
        let rebalancing = matches!(self.state, State::Rebalancing { .. });
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        member.last_seen = now;
        if rebalancing {
            return Err(ErrorCode::RebalanceInProgress);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        Ok(())
    }

    pub fn leave(
        &mut self,
        now: Duration,
        member_id: &str,
        changes: &mut Vec<GroupChange>,
    ) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        self.remove(now, member_id, Departure::Left, changes);
        Ok(())
    }

    /// Commits offsets for a member of the current generation.
    pub fn commit(
        &mut self,
        member_id: &str,
        generation: i32,
        offsets: &[(Tp, i64)],
    ) -> Result<(), ErrorCode> {
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        for (tp, offset) in offsets {
            self.committed.insert(tp.clone(), *offset);
        }
        Ok(())
    }

    /// Applies offsets a transaction committed (TxnOffsetCommit): no generation check, as the producer's
    /// epoch fenced its zombies.
    pub fn apply_offsets(&mut self, offsets: &BTreeMap<Tp, i64>) {
        self.committed
            .extend(offsets.iter().map(|(tp, offset)| (tp.clone(), *offset)));
    }

    /// Removes members whose session expired and completes or times out a pending rebalance.
    /// `topics` is every topic with its partition count, for the assignor.
    pub fn tick(
        &mut self,
        now: Duration,
        topics: &[(String, i32)],
        changes: &mut Vec<GroupChange>,
    ) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.rejoined || !matches!(self.state, State::Rebalancing { .. }))
            .filter(|(_, m)| now.saturating_sub(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove(now, &id, Departure::SessionExpired, changes);
        }
        if let State::Rebalancing {
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
                self.complete(now, topics, changes);
            }
        }
    }

    /// Starts a rebalance when a topic a member consumes appears or grows.
    pub fn topics_changed(&mut self, now: Duration, topic: &str, changes: &mut Vec<GroupChange>) {
        let interested = self
            .members
            .values()
            .any(|m| interest_matches(&m.interest, topic));
        if interested && self.state == State::Stable {
            self.start_rebalance(now, changes);
        }
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
        if self.members.is_empty() {
            self.state = State::Empty;
            self.generation += 1;
            self.assignment.clear();
        } else {
            self.start_rebalance(now, changes);
        }
    }

    fn start_rebalance(&mut self, now: Duration, changes: &mut Vec<GroupChange>) {
        if matches!(self.state, State::Rebalancing { .. }) {
            return;
        }
        let delay = match self.state {
            State::Empty => self.initial_delay,
            _ => Duration::ZERO,
        };
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = State::Rebalancing {
            not_before: now + delay,
            deadline: now + timeout.max(delay),
        };
        for member in self.members.values_mut() {
            member.rejoined = false;
        }
        changes.push(GroupChange::RebalanceStarted);
    }

    fn complete(
        &mut self,
        now: Duration,
        topics: &[(String, i32)],
        changes: &mut Vec<GroupChange>,
    ) {
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.assignment.clear();
            return;
        }
        let cooperative = self.members.values().all(|m| m.cooperative);
        self.assignment = if cooperative {
            cooperative_assignment(&self.members, topics)
        } else {
            range_assignment(&self.members, topics)
        };
        let assigned: usize = self.assignment.values().map(Vec::len).sum();
        let wanted: usize = topics
            .iter()
            .filter(|(topic, _)| {
                self.members
                    .values()
                    .any(|m| interest_matches(&m.interest, topic))
            })
            .map(|(_, count)| *count as usize)
            .sum();
        self.withheld = assigned < wanted;
        self.state = State::Stable;
        // A member's session restarts when it gets its assignment, as Kafka's does.
        for (id, member) in &mut self.members {
            member.rejoined = false;
            member.last_seen = now;
            let assignment = self.assignment.get(id).cloned().unwrap_or_default();
            member.completed = Some((self.generation, assignment));
        }
        let owned = self
            .members
            .iter()
            .filter(|(_, member)| !member.owned.is_empty())
            .map(|(id, member)| (id.clone(), member.owned.clone()))
            .collect();
        changes.push(GroupChange::Completed {
            generation: self.generation,
            assignment: self.assignment.clone(),
            owned,
        });
    }
}

/// KIP-429's cooperative sticky assignment: balanced per topic, each member keeping what it owns up to its
/// share; a partition moving to another member is withheld this generation while its owner still holds it.
fn cooperative_assignment(
    members: &BTreeMap<String, Member>,
    topics: &[(String, i32)],
) -> BTreeMap<String, Vec<Tp>> {
    let mut assignment: BTreeMap<String, Vec<Tp>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    let owner: BTreeMap<&Tp, &String> = members
        .iter()
        .flat_map(|(id, m)| m.owned.iter().map(move |tp| (tp, id)))
        .collect();
    for (topic, count) in topics {
        let shares = shares(members, topic, *count);
        let consumers: Vec<&String> = shares.iter().map(|(id, _)| *id).collect();
        let share = |i: usize| shares[i].1;
        let mut target: BTreeMap<&String, Vec<Tp>> = BTreeMap::new();
        let mut free = Vec::new();
        for p in 0..*count {
            let tp = Tp::new(topic.clone(), p);
            match owner.get(&tp) {
                Some(id) if consumers.contains(id) => target.entry(*id).or_default().push(tp),
                _ => free.push(tp),
            }
        }
        for (i, id) in consumers.iter().enumerate() {
            let kept = target.entry(*id).or_default();
            if kept.len() > share(i) {
                free.extend(kept.drain(share(i)..));
            }
        }
        free.sort();
        let mut free = free.into_iter();
        for (i, id) in consumers.iter().enumerate() {
            let kept = target.entry(*id).or_default();
            while kept.len() < share(i) {
                match free.next() {
                    Some(tp) => kept.push(tp),
                    None => break,
                }
            }
        }
        for (id, partitions) in target {
            let mine = assignment.entry(id.clone()).or_default();
            for tp in partitions {
                // Still owned by another member: it gives the partition up first.
                let held_elsewhere = owner.get(&tp).is_some_and(|owner| *owner != id);
                if !held_elsewhere {
                    mine.push(tp);
                }
            }
        }
    }
    for partitions in assignment.values_mut() {
        partitions.sort();
    }
    assignment
}

/// The members consuming `topic`, in member-id order, each with how many of its `count` partitions it
/// gets: an even split, the first `count % members` one more (as Kafka's assignors balance).
fn shares<'m>(
    members: &'m BTreeMap<String, Member>,
    topic: &str,
    count: i32,
) -> Vec<(&'m String, usize)> {
    let consumers: Vec<&String> = members
        .iter()
        .filter(|(_, m)| interest_matches(&m.interest, topic))
        .map(|(id, _)| id)
        .collect();
    let n = consumers.len().max(1) as i32;
    let (each, extra) = (count / n, count % n);
    consumers
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, (each + i32::from((i as i32) < extra)) as usize))
        .collect()
}

fn interest_matches(interest: &Interest, topic: &str) -> bool {
    match interest {
        Interest::Topics(topics) => topics.iter().any(|t| t == topic),
        Interest::Pattern(pattern) => Regex::new(&format!("^(?:{pattern})$"))
            .map(|re| re.is_match(topic))
            .unwrap_or(false),
    }
}

/// Kafka's RangeAssignor: per topic, the members consuming it in member-id order get contiguous ranges,
/// the first `partitions % members` one partition more.
fn range_assignment(
    members: &BTreeMap<String, Member>,
    topics: &[(String, i32)],
) -> BTreeMap<String, Vec<Tp>> {
    let mut assignment: BTreeMap<String, Vec<Tp>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    for (topic, count) in topics {
        let mut next = 0;
        for (id, take) in shares(members, topic, *count) {
            let parts = assignment.entry(id.clone()).or_default();
            parts.extend((next..next + take as i32).map(|p| Tp::new(topic.clone(), p)));
            next += take as i32;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);
    const REBALANCE: Duration = Duration::from_secs(30);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn join(group: &mut Group, now: Duration, id: Option<&str>) -> (String, i32) {
        join_as(group, now, id, false, Vec::new())
    }

    fn join_as(
        group: &mut Group,
        now: Duration,
        id: Option<&str>,
        cooperative: bool,
        owned: Vec<Tp>,
    ) -> (String, i32) {
        let mut changes = Vec::new();
        let joiner = Joiner {
            member_id: id.map(str::to_owned),
            client_id: "c".into(),
            interest: Interest::Topics(vec!["t".into()]),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
            cooperative,
            owned,
        };
        let JoinOutcome {
            member_id,
            generation,
        } = group.join(now, joiner, &mut changes).unwrap();
        (member_id, generation)
    }

    fn topics() -> Vec<(String, i32)> {
        vec![("t".into(), 4)]
    }

    #[test]
    fn two_members_split_the_partitions_after_the_initial_delay() {
        let mut group = Group::new(secs(3));
        let mut changes = Vec::new();
        let (a, ga) = join(&mut group, secs(0), None);
        let (b, _) = join(&mut group, secs(1), None);
        group.tick(secs(2), &topics(), &mut changes);
        assert_eq!(group.assignment_after(&a, ga), Ok(None));
        group.tick(secs(3), &topics(), &mut changes);
        let (generation, first) = group.assignment_after(&a, ga).unwrap().unwrap();
        let (_, second) = group.assignment_after(&b, ga).unwrap().unwrap();
        assert_eq!(generation, 1);
        assert_eq!(first, vec![Tp::new("t", 0), Tp::new("t", 1)]);
        assert_eq!(second, vec![Tp::new("t", 2), Tp::new("t", 3)]);
    }

    #[test]
    fn an_expired_member_is_removed_and_its_commits_are_fenced() {
        let mut group = Group::new(Duration::ZERO);
        let mut changes = Vec::new();
        let (a, ga) = join(&mut group, secs(0), None);
        group.tick(secs(0), &topics(), &mut changes);
        let (generation, _) = group.assignment_after(&a, ga).unwrap().unwrap();
        let (b, gb) = join(&mut group, secs(1), None);
        // a keeps heartbeating and rejoins; b goes silent after joining.
        assert_eq!(
            group.heartbeat(secs(2), &a, generation),
            Err(ErrorCode::RebalanceInProgress)
        );
        let (_, ga2) = join(&mut group, secs(2), Some(&a));
        group.tick(secs(2), &topics(), &mut changes);
        let (g2, _) = group.assignment_after(&b, gb).unwrap().unwrap();
        assert_eq!(group.assignment_after(&a, ga2).unwrap().unwrap().0, g2);
        assert_eq!(
            group.commit(&a, generation, &[(Tp::new("t", 0), 5)]),
            Err(ErrorCode::IllegalGeneration)
        );
        group.heartbeat(secs(10), &a, g2).unwrap();
        group.tick(secs(13), &topics(), &mut changes);
        assert!(group.assignment_after(&b, 0).is_err());
        assert!(changes.contains(&GroupChange::Departed(b.clone(), Departure::SessionExpired)));
        assert_eq!(
            group.commit(&b, g2, &[(Tp::new("t", 2), 5)]),
            Err(ErrorCode::UnknownMemberId)
        );
    }

    #[test]
    fn commits_from_the_current_generation_are_accepted_while_a_rebalance_is_pending() {
        let mut group = Group::new(Duration::ZERO);
        let mut changes = Vec::new();
        let (a, ga) = join(&mut group, secs(0), None);
        group.tick(secs(0), &topics(), &mut changes);
        let (generation, _) = group.assignment_after(&a, ga).unwrap().unwrap();
        join(&mut group, secs(1), None);
        group
            .commit(&a, generation, &[(Tp::new("t", 0), 7)])
            .unwrap();
        assert_eq!(group.committed().get(&Tp::new("t", 0)), Some(&7));
    }

    #[test]
    fn a_cooperative_group_moves_a_partition_only_after_its_owner_gave_it_up() {
        let mut group = Group::new(Duration::ZERO);
        let mut changes = Vec::new();
        let (a, ga) = join_as(&mut group, secs(0), None, true, Vec::new());
        group.tick(secs(0), &topics(), &mut changes);
        let (_, all) = group.assignment_after(&a, ga).unwrap().unwrap();
        assert_eq!(all.len(), 4);
        // b joins; a rejoins still owning everything: a keeps two, and the other two go to nobody yet.
        let (b, gb) = join_as(&mut group, secs(1), None, true, Vec::new());
        let (_, ga) = join_as(&mut group, secs(1), Some(&a), true, all.clone());
        group.tick(secs(1), &topics(), &mut changes);
        let (_, kept) = group.assignment_after(&a, ga).unwrap().unwrap();
        let (_, none_yet) = group.assignment_after(&b, gb).unwrap().unwrap();
        assert_eq!(kept, vec![Tp::new("t", 0), Tp::new("t", 1)]);
        assert!(none_yet.is_empty(), "{none_yet:?}");
        // a revokes the two it lost and rejoins: now b gets them.
        let (_, ga) = join_as(&mut group, secs(2), Some(&a), true, kept.clone());
        let (_, gb) = join_as(&mut group, secs(2), Some(&b), true, Vec::new());
        group.tick(secs(2), &topics(), &mut changes);
        assert_eq!(group.assignment_after(&a, ga).unwrap().unwrap().1, kept);
        assert_eq!(
            group.assignment_after(&b, gb).unwrap().unwrap().1,
            vec![Tp::new("t", 2), Tp::new("t", 3)]
        );
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_removed() {
        let mut group = Group::new(Duration::ZERO);
        let mut changes = Vec::new();
        let (a, ga) = join(&mut group, secs(0), None);
        group.tick(secs(0), &topics(), &mut changes);
        group.assignment_after(&a, ga).unwrap().unwrap();
        let (b, gb) = join(&mut group, secs(1), None);
        for s in 2..40 {
            group.heartbeat(secs(s), &a, 1).ok();
            group.tick(secs(s), &topics(), &mut changes);
        }
        assert!(group.assignment_after(&a, 0).is_err());
        let (_, only) = group.assignment_after(&b, gb).unwrap().unwrap();
        assert_eq!(only.len(), 4);
    }
}
