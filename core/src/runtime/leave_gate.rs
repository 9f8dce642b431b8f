//! The sink tasks of one connector share a consumer group. When the worker stops, each commits its last
//! offsets and then leaves the group; a task that left first would start a rebalance, during which the
//! group refuses the others' commits (the embedded broker as soon as the group is rejoining, Kafka once
//! the new generation formed), and their flushed records would be delivered again after the restart. The
//! gate holds every task's departure until all of them have committed, or until a time limit.
//!
//! A stop can still race a rebalance another member started (a sibling still joining, another worker
//! leaving): the group then refuses a commit until its new generation forms. The refused offsets are
//! handed to the gate, and whichever task at the gate owns their partition in the new generation
//! commits them: what one task flushed is durable in the connector's destination, whichever task reports
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::api::TopicPartition;

/// One per sink connector: counts its tasks that have yet to commit their last offsets, and keeps the
/// stopping tasks' offsets the group refused.
#[derive(Debug, Clone)]
pub struct LeaveGate {
    waiting: Arc<watch::Sender<usize>>,
    refused: Arc<Mutex<BTreeMap<TopicPartition, i64>>>,
}

impl LeaveGate {
    pub fn new() -> LeaveGate {
        LeaveGate {
            waiting: Arc::new(watch::channel(0).0),
            refused: Arc::default(),
        }
    }

    /// A place at the gate for one task, held until the task arrives (or drops it: a task that failed
    /// holds nobody up).
    pub fn place(&self) -> GatePlace {
        self.waiting.send_modify(|waiting| *waiting += 1);
        GatePlace {
            gate: self.clone(),
            arrived: false,
        }
    }
}

impl Default for LeaveGate {
    fn default() -> Self {
        LeaveGate::new()
    }
}

/// One task's place at its connector's [`LeaveGate`].
#[derive(Debug)]
pub struct GatePlace {
    gate: LeaveGate,
    arrived: bool,
}

impl GatePlace {
    /// This task has committed what it could; the offsets the group refused are handed over.
    pub fn arrive(&mut self, refused: BTreeMap<TopicPartition, i64>) {
        self.refused().extend(refused);
        if !std::mem::replace(&mut self.arrived, true) {
            self.gate.waiting.send_modify(|waiting| *waiting -= 1);
        }
    }

    /// Whether every task of the connector has arrived and no refused offset is left to commit.
    pub fn open(&self) -> bool {
        *self.gate.waiting.borrow() == 0 && self.refused().is_empty()
    }

    /// The refused offsets of the partitions in `owned`, for this task to commit.
    pub fn refused_of(&self, owned: &BTreeSet<TopicPartition>) -> BTreeMap<TopicPartition, i64> {
        self.refused()
            .iter()
            .filter(|(partition, _)| owned.contains(*partition))
            .map(|(partition, offset)| (partition.clone(), *offset))
            .collect()
    }

    /// These refused offsets are committed now.
    pub fn committed(&self, offsets: &BTreeMap<TopicPartition, i64>) {
        let mut refused = self.refused();
        for (partition, offset) in offsets {
            if refused.get(partition) == Some(offset) {
                refused.remove(partition);
            }
        }
    }

    fn refused(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, i64>> {
        self.gate.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for GatePlace {
    fn drop(&mut self) {
        self.arrive(BTreeMap::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    #[test]
    fn the_gate_opens_once_everyone_has_arrived() {
        let gate = LeaveGate::new();
        let mut first = gate.place();
        let mut second = gate.place();
        first.arrive(BTreeMap::new());
        assert!(!first.open(), "the second task has not committed yet");
        second.arrive(BTreeMap::new());
        assert!(first.open() && second.open());
    }

    #[test]
    fn a_task_that_is_gone_holds_nobody_up() {
        let gate = LeaveGate::new();
        let mut staying = gate.place();
        drop(gate.place());
        staying.arrive(BTreeMap::new());
        assert!(staying.open());
    }

    #[test]
    fn refused_offsets_go_to_whoever_owns_their_partition() {
        let gate = LeaveGate::new();
        let mut refused_by = gate.place();
        let owner = gate.place();
        refused_by.arrive(BTreeMap::from([(tp(0), 10), (tp(1), 20)]));
        drop(owner);
        assert!(!refused_by.open(), "refused offsets are left");
        let place = gate.place();
        let mine = place.refused_of(&BTreeSet::from([tp(1), tp(2)]));
        assert_eq!(mine, BTreeMap::from([(tp(1), 20)]));
        place.committed(&mine);
        assert_eq!(
            place.refused_of(&BTreeSet::from([tp(0), tp(1)])),
            BTreeMap::from([(tp(0), 10)])
        );
    }
}
