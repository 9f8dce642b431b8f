//! The cluster's own invariants, checked as the journal records each of its events, and the history of
//! every group's offset commits and partition ownership (the redelivery rules read them):
//! - `stale-commit-accepted`: the coordinator accepted an offset commit from a member that is not in the
//!   group's current generation (an older generation's, or one no longer in the group);
//! - `committed-offset-regressed`: a group's committed offset for a partition moved backwards (nothing in
//!   the simulation resets offsets);
//! - `partition-owned-twice`: a rebalance gave one partition to two members, or to one member while another
//!   member of the new generation still reported owning it (a cooperative rebalance must first take it
//!   from its owner).
//!
//! The generation and its members are followed from the group changes alone, independently of the
//! coordinator's own bookkeeping.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Anomaly, AnomalyKind};
use crate::broker::{ClusterEvent, Departure, GroupChange};
use crate::protocol::Tp;

/// An offset commit the coordinator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub at: Duration,
    pub offset: i64,
    pub member: String,
}

/// Who owned which partition of a group when: each completed generation's assignment from its
/// completion on, until a member departs or the next generation completes.
#[derive(Debug, Default, Clone)]
pub struct Ownership {
    /// When each generation completed, and its assignment.
    generations: Vec<(Duration, BTreeMap<String, Vec<Tp>>)>,
    /// When each member departed, and why.
    departures: BTreeMap<String, (Duration, Departure)>,
}

impl Ownership {
    /// Every member that departed: when, and why.
    pub fn departures(&self) -> impl Iterator<Item = (&str, Duration, Departure)> {
        self.departures
            .iter()
            .map(|(member, (at, why))| (member.as_str(), *at, *why))
    }

    /// The member that owned `tp` at `at`.
    pub fn owner(&self, tp: &Tp, at: Duration) -> Option<&str> {
        let completed = self.generations.partition_point(|(when, _)| *when <= at);
        let (_, assignment) = self.generations.get(completed.checked_sub(1)?)?;
        let (member, _) = assignment
            .iter()
            .find(|(_, partitions)| partitions.contains(tp))?;
        match self.departures.get(member) {
            Some((departed, _)) if *departed <= at => None,
            _ => Some(member),
        }
    }

    /// Whether a copy of `tp` that a task on `worker` made durable at `at` may be a zombie's, although
    /// a member on `worker` owns `tp` then: another member on the same worker (another task) owned `tp`
    /// when it departed, before `at`, while the owner was already in the group (so the two are different
    /// tasks, and the departed one may still be finishing a stalled call). Any departure counts: a
    /// member past `max.poll.interval.ms` leaves the group as a clean stop does, and a task that writes
    /// after the runtime closed its partitions is caught as `written-after-close`.
    pub fn zombie_on_worker(&self, worker: usize, tp: &Tp, at: Duration) -> bool {
        let Some(owner) = self.owner(tp, at) else {
            return false;
        };
        let Some(owner_joined) = self.first_generation(owner) else {
            return false;
        };
        self.departures.iter().any(|(member, (when, _))| {
            member != owner
                && *when <= at
                && owner_joined < *when
                && crate::workload::member_worker(member) == Some(worker)
                && self.owner(tp, when.saturating_sub(Duration::from_millis(1))) == Some(member)
        })
    }

    /// When the first generation that had `member` completed.
    fn first_generation(&self, member: &str) -> Option<Duration> {
        self.generations
            .iter()
            .find(|(_, assignment)| assignment.contains_key(member))
            .map(|(when, _)| *when)
    }

    /// When `member` was thrown out of the group (its session expired or it missed a rebalance).
    pub fn thrown_out(&self, member: &str) -> Option<Duration> {
        match self.departures.get(member) {
            Some((at, Departure::SessionExpired | Departure::MissedRebalance)) => Some(*at),
            _ => None,
        }
    }
}

/// One group as its events show it.
#[derive(Debug, Default)]
struct GroupView {
    /// The generation the last rebalance completed, and its members still in the group.
    generation: Option<i32>,
    members: BTreeSet<String>,
    /// Every accepted commit, per partition, in order.
    commits: BTreeMap<Tp, Vec<Commit>>,
    ownership: Ownership,
}

/// Every group's view, and the invariants checked against it.
#[derive(Debug, Default)]
pub struct GroupInvariants {
    groups: BTreeMap<String, GroupView>,
}

impl GroupInvariants {
    /// Follows one cluster event; what it breaks goes to `found`.
    pub fn on_event(&mut self, at: Duration, event: &ClusterEvent, found: &mut Vec<Anomaly>) {
        match event {
            ClusterEvent::Group { group, change } => {
                let view = self.groups.entry(group.clone()).or_default();
                match change {
                    GroupChange::Departed(member, why) => {
                        view.members.remove(member);
                        view.ownership.departures.insert(member.clone(), (at, *why));
                    }
                    GroupChange::Completed {
                        generation,
                        assignment,
                        owned,
                    } => {
                        check_owners(group, *generation, assignment, owned, found);
                        view.generation = Some(*generation);
                        view.members = assignment.keys().cloned().collect();
                        view.ownership.generations.push((at, assignment.clone()));
                    }
                    GroupChange::JoinPhaseEnded {
                        generation,
                        members,
                    } => {
                        view.generation = Some(*generation);
                        view.members = members.iter().cloned().collect();
                    }
                    GroupChange::Joined(_) | GroupChange::RebalanceStarted => {}
                }
            }
            ClusterEvent::Committed {
                group,
                member_id,
                generation,
                offsets,
            } => {
                let view = self.groups.entry(group.clone()).or_default();
                if view.generation != Some(*generation) || !view.members.contains(member_id) {
                    let current = view
                        .generation
                        .map_or("none yet".to_owned(), |g| g.to_string());
                    let membership = if view.members.contains(member_id) {
                        "a member of it"
                    } else {
                        "not a member of it"
                    };
                    found.push(Anomaly {
                        kind: AnomalyKind::StaleCommitAccepted,
                        detail: format!(
                            "group {group} accepted {member_id}'s commit {offsets:?} made in generation {generation}, at {} ms; the group's generation is {current} and {member_id} is {membership}",
                            at.as_millis()
                        ),
                    });
                }
                for (tp, offset) in offsets {
                    let history = view.commits.entry(tp.clone()).or_default();
                    if let Some(last) = history.last().filter(|last| last.offset > *offset) {
                        found.push(Anomaly {
                            kind: AnomalyKind::CommittedOffsetRegressed,
                            detail: format!(
                                "group {group}: {member_id} committed {tp} at offset {offset} at {} ms, after {} had committed offset {} at {} ms",
                                at.as_millis(),
                                last.member,
                                last.offset,
                                last.at.as_millis()
                            ),
                        });
                    }
                    history.push(Commit {
                        at,
                        offset: *offset,
                        member: member_id.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Every commit a group's coordinator accepted, per partition, in order.
    pub fn commits(&self, group: &str) -> Option<&BTreeMap<Tp, Vec<Commit>>> {
        self.groups.get(group).map(|view| &view.commits)
    }

    /// Who owned which of a group's partitions when.
    pub fn ownership(&self, group: &str) -> Option<&Ownership> {
        self.groups.get(group).map(|view| &view.ownership)
    }
}

/// A partition assigned to two members, or to one while another member still owns it.
fn check_owners(
    group: &str,
    generation: i32,
    assignment: &BTreeMap<String, Vec<Tp>>,
    owned: &BTreeMap<String, Vec<Tp>>,
    found: &mut Vec<Anomaly>,
) {
    let mut owner: BTreeMap<&Tp, &String> = BTreeMap::new();
    for (member, partitions) in assignment {
        for tp in partitions {
            if let Some(other) = owner.insert(tp, member) {
                found.push(Anomaly {
                    kind: AnomalyKind::PartitionOwnedTwice,
                    detail: format!(
                        "group {group} generation {generation} assigned {tp} to both {other} and {member}"
                    ),
                });
            }
        }
    }
    for (holder, partitions) in owned {
        if !assignment.contains_key(holder) {
            continue;
        }
        for tp in partitions {
            if let Some(member) = owner.get(tp).filter(|member| **member != holder) {
                found.push(Anomaly {
                    kind: AnomalyKind::PartitionOwnedTwice,
                    detail: format!(
                        "group {group} generation {generation} assigned {tp} to {member} while {holder}, also a member, still owned it"
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(
        generation: i32,
        assignment: &[(&str, &[i32])],
        owned: &[(&str, &[i32])],
    ) -> ClusterEvent {
        let map = |pairs: &[(&str, &[i32])]| {
            pairs
                .iter()
                .map(|(member, partitions)| {
                    (
                        (*member).to_owned(),
                        partitions.iter().map(|p| Tp::new("t", *p)).collect(),
                    )
                })
                .collect()
        };
        ClusterEvent::Group {
            group: "g".into(),
            change: GroupChange::Completed {
                generation,
                assignment: map(assignment),
                owned: map(owned),
            },
        }
    }

    fn commit(member: &str, generation: i32, offset: i64) -> ClusterEvent {
        ClusterEvent::Committed {
            group: "g".into(),
            member_id: member.into(),
            generation,
            offsets: vec![(Tp::new("t", 0), offset)],
        }
    }

    fn kinds(events: &[ClusterEvent]) -> Vec<AnomalyKind> {
        let mut invariants = GroupInvariants::default();
        let mut found = Vec::new();
        for (i, event) in events.iter().enumerate() {
            invariants.on_event(Duration::from_secs(i as u64), event, &mut found);
        }
        found.into_iter().map(|a| a.kind).collect()
    }

    #[test]
    fn commits_of_the_current_generation_moving_forward_are_fine() {
        let events = [
            completed(1, &[("a", &[0]), ("b", &[1])], &[]),
            commit("a", 1, 5),
            commit("a", 1, 9),
        ];
        assert_eq!(kinds(&events), Vec::new());
    }

    #[test]
    fn a_commit_from_an_older_generation_or_a_departed_member_is_stale() {
        let events = [
            completed(1, &[("a", &[0]), ("b", &[1])], &[]),
            completed(2, &[("a", &[0, 1])], &[]),
            commit("b", 1, 5),
            ClusterEvent::Group {
                group: "g".into(),
                change: GroupChange::Departed("a".into(), crate::broker::Departure::Left),
            },
            commit("a", 2, 6),
        ];
        assert_eq!(
            kinds(&events),
            vec![
                AnomalyKind::StaleCommitAccepted,
                AnomalyKind::StaleCommitAccepted
            ]
        );
    }

    #[test]
    fn a_committed_offset_moving_backwards_regresses() {
        let events = [
            completed(1, &[("a", &[0])], &[]),
            commit("a", 1, 9),
            commit("a", 1, 4),
        ];
        assert_eq!(kinds(&events), vec![AnomalyKind::CommittedOffsetRegressed]);
    }

    #[test]
    fn ownership_follows_the_assignments_until_a_member_departs() {
        let mut invariants = GroupInvariants::default();
        let mut found = Vec::new();
        let at = Duration::from_secs;
        invariants.on_event(
            at(1),
            &completed(1, &[("a", &[0]), ("b", &[1])], &[]),
            &mut found,
        );
        invariants.on_event(
            at(5),
            &ClusterEvent::Group {
                group: "g".into(),
                change: GroupChange::Departed("a".into(), Departure::SessionExpired),
            },
            &mut found,
        );
        invariants.on_event(at(7), &completed(2, &[("b", &[0, 1])], &[]), &mut found);
        let ownership = invariants.ownership("g").unwrap();
        let tp = Tp::new("t", 0);
        assert_eq!(ownership.owner(&tp, at(0)), None);
        assert_eq!(ownership.owner(&tp, at(3)), Some("a"));
        assert_eq!(ownership.owner(&tp, at(6)), None);
        assert_eq!(ownership.owner(&tp, at(8)), Some("b"));
        assert_eq!(ownership.thrown_out("a"), Some(at(5)));
        assert_eq!(ownership.thrown_out("b"), None);
    }

    #[test]
    fn a_partition_given_while_another_member_owns_it_is_owned_twice() {
        let events = [
            completed(1, &[("a", &[0]), ("b", &[0])], &[]),
            completed(2, &[("a", &[]), ("b", &[0])], &[("a", &[0])]),
            // A member that left keeps nothing.
            completed(3, &[("b", &[0])], &[("a", &[0])]),
        ];
        assert_eq!(
            kinds(&events),
            vec![
                AnomalyKind::PartitionOwnedTwice,
                AnomalyKind::PartitionOwnedTwice
            ]
        );
    }
}
