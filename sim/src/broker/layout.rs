//! Which broker does what: the leader of each partition, and through the leaders of the internal topics'
//! partitions, the coordinator of each group and transactional id.
//!
//! Kafka places a group's coordinator on the leader of the `__consumer_offsets` partition its name hashes
//! to, and a transactional id's on the leader of its `__transaction_state` partition, so a coordinator
//! moves exactly when that partition's leadership does: one mechanism covers both. Every partition has a
//! preferred leader (its first replica); a move (a reassignment, an election after its leader failed)
//! overrides it until the preferred leader is elected again. A broker that is down leads nothing it could
//! answer for: until the controller fails its partitions over, they have no reachable leader, and clients
//! are told so (`LEADER_NOT_AVAILABLE`, `COORDINATOR_NOT_AVAILABLE`).

use std::collections::{BTreeMap, BTreeSet};

use sluice_core::hash::fnv1a64;

use crate::protocol::{CoordinatorKind, Tp};

/// The internal topic whose partition leaders coordinate groups (`offsets.topic.num.partitions` = 50).
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
/// The internal topic whose partition leaders coordinate transactions
/// (`transaction.state.log.num.partitions` = 50).
pub const TRANSACTION_STATE: &str = "__transaction_state";
const INTERNAL_PARTITIONS: i32 = 50;

/// Leaders and coordinators over `brokers` brokers, numbered from 0.
#[derive(Debug, Clone)]
pub struct Layout {
    brokers: i32,
    /// Leaders other than the preferred one.
    moved: BTreeMap<Tp, i32>,
    down: BTreeSet<i32>,
}

impl Layout {
    pub fn new(brokers: i32) -> Layout {
        Layout {
            brokers: brokers.max(1),
            moved: BTreeMap::new(),
            down: BTreeSet::new(),
        }
    }

    /// The partition's leader, whether it is up or not.
    pub fn leader(&self, tp: &Tp) -> i32 {
        self.moved
            .get(tp)
            .copied()
            .unwrap_or_else(|| self.preferred(tp))
    }

    /// The leader clients can reach: `None` while it is down and not failed over.
    pub fn live_leader(&self, tp: &Tp) -> Option<i32> {
        Some(self.leader(tp)).filter(|leader| !self.down.contains(leader))
    }

    /// The first replica: spread over the brokers by topic and partition, as Kafka's replica placement
    /// spreads them.
    pub fn preferred(&self, tp: &Tp) -> i32 {
        let start = (fnv1a64(tp.topic.as_bytes()) % self.brokers as u64) as i32;
        (start + tp.partition).rem_euclid(self.brokers)
    }

    /// The internal partition whose leader coordinates `key`.
    pub fn coordinator_partition(kind: CoordinatorKind, key: &str) -> Tp {
        let topic = match kind {
            CoordinatorKind::Group => CONSUMER_OFFSETS,
            CoordinatorKind::Transaction => TRANSACTION_STATE,
        };
        let partition = (fnv1a64(key.as_bytes()) % INTERNAL_PARTITIONS as u64) as i32;
        Tp::new(topic, partition)
    }

    /// The coordinator of `key`, whether it is up or not.
    pub fn coordinator(&self, kind: CoordinatorKind, key: &str) -> i32 {
        self.leader(&Layout::coordinator_partition(kind, key))
    }

    /// Makes `to` the partition's leader; returns the leader before, if it changed.
    pub fn move_leader(&mut self, tp: &Tp, to: i32) -> Option<i32> {
        let from = self.leader(tp);
        if from == to || !(0..self.brokers).contains(&to) {
            return None;
        }
        if self.preferred(tp) == to {
            self.moved.remove(tp);
        } else {
            self.moved.insert(tp.clone(), to);
        }
        Some(from)
    }

    /// Partitions among `candidates` (the topics' partitions) and the internal ones that `broker` leads.
    pub fn led_by(&self, broker: i32, candidates: impl IntoIterator<Item = Tp>) -> Vec<Tp> {
        let internal = [CONSUMER_OFFSETS, TRANSACTION_STATE]
            .into_iter()
            .flat_map(|topic| (0..INTERNAL_PARTITIONS).map(move |p| Tp::new(topic, p)));
        candidates
            .into_iter()
            .chain(internal)
            .filter(|tp| self.leader(tp) == broker)
            .collect()
    }

    /// Partitions whose preferred leader is `broker` but which another broker leads now.
    pub fn moved_away_from(&self, broker: i32) -> Vec<Tp> {
        self.moved
            .keys()
            .filter(|tp| self.preferred(tp) == broker)
            .cloned()
            .collect()
    }

    /// A live broker other than `broker`, for its partitions to fail over to: the next one up.
    pub fn successor(&self, broker: i32) -> Option<i32> {
        (1..self.brokers)
            .map(|step| (broker + step) % self.brokers)
            .find(|b| !self.down.contains(b))
    }

    pub fn set_down(&mut self, broker: i32, down: bool) {
        if down {
            self.down.insert(broker);
        } else {
            self.down.remove(&broker);
        }
    }

    pub fn is_down(&self, broker: i32) -> bool {
        self.down.contains(&broker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinator_moves_with_its_internal_partition() {
        let mut layout = Layout::new(3);
        let before = layout.coordinator(CoordinatorKind::Group, "connect-sink");
        let partition = Layout::coordinator_partition(CoordinatorKind::Group, "connect-sink");
        let to = (before + 1) % 3;
        assert_eq!(layout.move_leader(&partition, to), Some(before));
        assert_eq!(
            layout.coordinator(CoordinatorKind::Group, "connect-sink"),
            to
        );
        assert_eq!(layout.moved_away_from(before), vec![partition.clone()]);
        layout.move_leader(&partition, before);
        assert!(layout.moved_away_from(before).is_empty());
    }

    #[test]
    fn a_down_leader_is_not_live_until_its_partitions_fail_over() {
        let mut layout = Layout::new(3);
        let tp = Tp::new("events", 0);
        let leader = layout.leader(&tp);
        layout.set_down(leader, true);
        assert_eq!(layout.live_leader(&tp), None);
        let successor = layout.successor(leader).expect("two brokers are up");
        assert_ne!(successor, leader);
        layout.move_leader(&tp, successor);
        assert_eq!(layout.live_leader(&tp), Some(successor));
    }

    #[test]
    fn leaders_spread_over_the_brokers() {
        let layout = Layout::new(3);
        let leaders: BTreeSet<i32> = (0..3)
            .map(|p| layout.leader(&Tp::new("events", p)))
            .collect();
        assert_eq!(leaders.len(), 3);
    }
}
