//! The assignors the group's leader member runs between JoinGroup and SyncGroup, as Kafka clients do
//! (the coordinator only relays): Kafka's range assignor for eager groups, and KIP-429's cooperative
//! sticky assignor for groups whose every member speaks `cooperative-sticky`.

use std::collections::BTreeMap;

use crate::protocol::{MemberSubscription, Tp};

/// Every member's partitions for the next generation. `topics` is every topic with its partition count,
/// as the leader's metadata request found them.
pub fn assign(
    cooperative: bool,
    members: &BTreeMap<String, MemberSubscription>,
    topics: &[(String, i32)],
) -> BTreeMap<String, Vec<Tp>> {
    if cooperative {
        cooperative_assignment(members, topics)
    } else {
        range_assignment(members, topics)
    }
}

/// KIP-429's cooperative sticky assignment: balanced per topic, each member keeping what it owns up to its
/// share; a partition moving to another member is withheld this generation while its owner still holds
/// it (the owner revokes it and rejoins, and the rebalance that follows hands it over), so no partition
/// is ever owned twice.
fn cooperative_assignment(
    members: &BTreeMap<String, MemberSubscription>,
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
    members: &'m BTreeMap<String, MemberSubscription>,
    topic: &str,
    count: i32,
) -> Vec<(&'m String, usize)> {
    let consumers: Vec<&String> = members
        .iter()
        .filter(|(_, m)| m.interest.matches(topic))
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

/// Kafka's RangeAssignor: per topic, the members consuming it in member-id order get contiguous ranges,
/// the first `partitions % members` one partition more.
fn range_assignment(
    members: &BTreeMap<String, MemberSubscription>,
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
    use crate::protocol::Interest;

    fn topics() -> Vec<(String, i32)> {
        vec![("t".into(), 4), ("other".into(), 2)]
    }

    fn member(owned: &[i32]) -> MemberSubscription {
        MemberSubscription {
            interest: Interest::Topics(vec!["t".into()]),
            owned: owned.iter().map(|p| Tp::new("t", *p)).collect(),
        }
    }

    fn tps(partitions: &[i32]) -> Vec<Tp> {
        partitions.iter().map(|p| Tp::new("t", *p)).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order_of_subscribed_topics_only() {
        let members = BTreeMap::from([
            ("a".to_owned(), member(&[])),
            ("b".to_owned(), member(&[])),
            ("c".to_owned(), member(&[])),
        ]);
        let got = assign(false, &members, &topics());
        assert_eq!(got["a"], tps(&[0, 1]));
        assert_eq!(got["b"], tps(&[2]));
        assert_eq!(got["c"], tps(&[3]));
    }

    #[test]
    fn cooperative_keeps_owned_partitions_and_withholds_those_moving_away() {
        // a owns everything; b is new: a keeps its share, the rest go to nobody until a gives them up.
        let members = BTreeMap::from([
            ("a".to_owned(), member(&[0, 1, 2, 3])),
            ("b".to_owned(), member(&[])),
        ]);
        let got = assign(true, &members, &topics());
        assert_eq!(got["a"], tps(&[0, 1]));
        assert!(got["b"].is_empty(), "{got:?}");
        // a revoked 2 and 3 and rejoined: now b gets them.
        let members = BTreeMap::from([
            ("a".to_owned(), member(&[0, 1])),
            ("b".to_owned(), member(&[])),
        ]);
        let got = assign(true, &members, &topics());
        assert_eq!(got["a"], tps(&[0, 1]));
        assert_eq!(got["b"], tps(&[2, 3]));
    }

    #[test]
    fn cooperative_is_sticky_when_members_leave() {
        let members = BTreeMap::from([
            ("b".to_owned(), member(&[2])),
            ("c".to_owned(), member(&[3])),
        ]);
        let got = assign(true, &members, &topics());
        assert_eq!(got["b"], tps(&[0, 2]));
        assert_eq!(got["c"], tps(&[1, 3]));
    }
}
