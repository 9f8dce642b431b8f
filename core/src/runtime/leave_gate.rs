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
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::TopicPartition;

/// One per sink connector: counts its tasks that have yet to commit their last offsets, and keeps the
/// stopping tasks' offsets the group refused.
#[derive(Debug, Clone)]
pub struct LeaveGate {
    state: Arc<watch::Sender<GateState>>,
}

/// What a gate holds; its changes wake the tasks waiting at it.
#[derive(Debug, Default)]
pub struct GateState {
    /// Tasks that have not arrived.
    waiting: usize,
    /// Refused offsets not committed yet, by partition.
    refused: BTreeMap<TopicPartition, i64>,
}

impl LeaveGate {
    pub fn new() -> LeaveGate {
        LeaveGate {
            state: Arc::new(watch::channel(GateState::default()).0),
        }
    }

    /// A place at the gate for one task, held until the task arrives (or drops it: a task that failed
    /// holds nobody up).
    pub fn place(&self) -> GatePlace {
        self.state.send_modify(|state| state.waiting += 1);
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
        let arriving = !std::mem::replace(&mut self.arrived, true);
        if arriving || !refused.is_empty() {
            self.gate.state.send_modify(|state| {
                state.refused.extend(refused);
                if arriving {
                    state.waiting -= 1;
                }
            });
        }
    }

    /// Whether every task of the connector has arrived and no refused offset is left to commit.
    pub fn open(&self) -> bool {
        let state = self.gate.state.borrow();
        state.waiting == 0 && state.refused.is_empty()
    }

    /// Completes when the gate changes: a task arrived, or refused offsets came or were committed.
    pub fn changes(&self) -> watch::Receiver<GateState> {
        self.gate.state.subscribe()
    }

    /// The refused offsets of the partitions in `owned`, for this task to commit.
    pub fn refused_of(&self, owned: &BTreeSet<TopicPartition>) -> BTreeMap<TopicPartition, i64> {
        self.gate
            .state
            .borrow()
            .refused
            .iter()
            .filter(|(partition, _)| owned.contains(*partition))
            .map(|(partition, offset)| (partition.clone(), *offset))
            .collect()
    }

    /// These refused offsets are committed now.
    pub fn committed(&self, offsets: &BTreeMap<TopicPartition, i64>) {
        self.gate.state.send_modify(|state| {
            for (partition, offset) in offsets {
                if state.refused.get(partition) == Some(offset) {
                    state.refused.remove(partition);
                }
            }
        });
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
