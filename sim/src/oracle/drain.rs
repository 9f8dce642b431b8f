//! Whether the pipeline drained: everything the source holds committed by the source (so in Kafka),
//! durable at the sink's end and committed by the sink's group. A run that is still short of that when its
//! drain limit passes is `not-drained`, with what is missing.

use std::collections::BTreeMap;
use std::ops::Range;

use super::durability::Durability;
use super::retention;
use crate::broker::Logs;
use crate::protocol::Tp;
use crate::scenario::Scenario;

/// What the drain check looks at.
pub struct DrainState<'a> {
    pub scenario: &'a Scenario,
    pub logs: &'a Logs,
    /// Committed seq per stream.
    pub source_committed: &'a BTreeMap<i64, i64>,
    /// The sink group's committed offsets.
    pub sink_committed: &'a BTreeMap<Tp, i64>,
    pub durability: &'a Durability,
    /// The ranges sink tasks reported as deleted by retention so far.
    pub reported: &'a [(Tp, Range<i64>)],
}

/// What is missing for the pipeline to have drained, one line each (nothing: it drained).
pub fn shortfalls(state: &DrainState<'_>) -> Vec<String> {
    let scenario = state.scenario;
    let last = scenario.records_per_stream - 1;
    let mut missing = Vec::new();
    for stream in 0..scenario.streams {
        match state.source_committed.get(&stream) {
            Some(seq) if *seq >= last => {}
            Some(seq) => missing.push(format!(
                "stream {stream}: the source committed seq {seq} of {last}"
            )),
            None => missing.push(format!(
                "stream {stream}: the source committed nothing of seq 0 to {last}"
            )),
        }
    }
    for partition in 0..scenario.partitions {
        let tp = Tp::new(scenario.topic(), partition);
        // Where a sink that read everything commits: control markers and aborted records after the last
        // record are never delivered to it.
        let end = state.logs.committed_end(&tp);
        let durable = state.durability.durable_end(state.logs, &tp);
        if durable < end {
            missing.push(format!(
                "{tp}: the destination holds records durably only below offset {durable} of {end}"
            ));
        }
        // Records retention deleted are owed to nobody, but the user must hear of those the group had
        // committed offsets short of: a group offset behind a log start at the end is caught up once a
        // sink task said what was deleted (or moved the offset). A group that never committed an offset
        // of the partition owes nothing once everything was deleted.
        let start = state.logs.start_offset(&tp).unwrap_or(0);
        match state.sink_committed.get(&tp) {
            Some(offset) if *offset >= end => {}
            Some(offset)
                if start >= end
                    && (*offset..start).all(|o| retention::within(state.reported, &tp, o)) => {}
            Some(offset) => missing.push(format!(
                "{tp}: the sink group committed offset {offset} of {end}"
            )),
            None if start >= end => {}
            None => missing.push(format!(
                "{tp}: the sink group committed nothing of offsets 0 to {end}"
            )),
        }
    }
    missing
}
