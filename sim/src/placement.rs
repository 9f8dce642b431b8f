//! Where the exactly-once source task runs: an orchestrator (the harness) names one worker at a time, as a
//! cluster manager replaces a worker it believes dead, and a worker starts an instance of the task for each
//! placement that names it. The worker it moved away from is not told: if it was only cut off, its
//! instance runs on as a zombie until the successor's transactional producer fences it.
//!
//! Each placement has a generation, which the worker's instance runs with
//! (`exactly.once.source.generation`), so an instance of an older placement that regains the network
//! does not start. An instance that fails where it is still placed is started again there, under a new
//! generation, as an operator restarts a failed task.
//!
//! Also reads where the task's committed source offsets stand, from the offsets topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::api::{SourceMap, SourceOffset, SourcePartition};

use tokio::sync::watch;

use crate::broker::Logs;
use crate::protocol::Tp;

/// The topic exactly-once source tasks keep their offsets in (the worker's default).
pub const OFFSETS_TOPIC: &str = "connect-offsets";

/// The orchestrator's side: moves the task.
pub struct Orchestrator {
    placed: Arc<watch::Sender<(usize, u64)>>,
}

/// A worker's side: learns when to start an instance, and restarts one that failed.
#[derive(Clone)]
pub struct Placement {
    placed: watch::Receiver<(usize, u64)>,
    orchestrator: Arc<watch::Sender<(usize, u64)>>,
}

/// The task starts on worker 0, generation 0.
pub fn orchestrator() -> (Orchestrator, Placement) {
    let (placed, receiver) = watch::channel((0, 0));
    let placed = Arc::new(placed);
    (
        Orchestrator {
            placed: placed.clone(),
        },
        Placement {
            placed: receiver,
            orchestrator: placed,
        },
    )
}

impl Orchestrator {
    /// Starts the task on `worker` (a new placement even if it ran there before).
    pub fn place(&self, worker: usize) {
        self.placed
            .send_modify(|(owner, generation)| (*owner, *generation) = (worker, *generation + 1));
    }
}

impl Placement {
    /// Waits for a placement on `worker` other than `started`, and returns it; `None` once the
    /// orchestrator is gone.
    pub async fn next_for(&mut self, worker: usize, started: Option<u64>) -> Option<u64> {
        self.placed
            .wait_for(|(owner, generation)| *owner == worker && Some(*generation) != started)
            .await
            .ok()
            .map(|placed| placed.1)
    }

    /// Places the task on `worker` again, under a new generation, if `generation` there is still the
    /// current placement; whether it did.
    pub fn restart(&self, worker: usize, generation: u64) -> bool {
        self.orchestrator.send_if_modified(|placed| {
            let current = *placed == (worker, generation);
            if current {
                placed.1 += 1;
            }
            current
        })
    }
}

/// The committed source offsets (stream to seq) in the offsets topic, as a read_committed reader sees
/// them: keys `["<connector>",{"stream":S}]`, values `{"seq":N}`, the last record of a key winning.
pub fn topic_offsets(logs: &Logs) -> BTreeMap<i64, i64> {
    let mut offsets = BTreeMap::new();
    let partitions = logs.partition_count(OFFSETS_TOPIC).unwrap_or(0);
    for partition in 0..partitions {
        for committed in logs.committed_records(&Tp::new(OFFSETS_TOPIC, partition)) {
            let (Some(key), Some(value)) = (&committed.record.key, &committed.record.value) else {
                continue;
            };
            if let (Some(stream), Some(seq)) = (
                number_after(key, "\"stream\":"),
                number_after(value, "\"seq\":"),
            ) {
                offsets.insert(stream, seq);
            }
        }
    }
    offsets
}

/// The committed source offsets in the offsets topic of a source under test (stream to the last seq
/// each covers, by `covered`), as a read_committed reader sees them: keys `["<connector>",{partition}]`,
/// values `{offset}`, the last record of a key winning.
pub fn topic_offsets_covered(
    logs: &Logs,
    covered: impl Fn(&SourcePartition, &SourceOffset) -> Option<(i64, i64)>,
) -> BTreeMap<i64, i64> {
    let mut last: BTreeMap<Vec<u8>, Option<(i64, i64)>> = BTreeMap::new();
    let partitions = logs.partition_count(OFFSETS_TOPIC).unwrap_or(0);
    for partition in 0..partitions {
        for committed in logs.committed_records(&Tp::new(OFFSETS_TOPIC, partition)) {
            let (Some(key), Some(value)) = (&committed.record.key, &committed.record.value) else {
                continue;
            };
            let position = source_map(key, Some(1))
                .zip(source_map(value, None))
                .and_then(|(partition, offset)| covered(&partition, &offset));
            last.insert(key.clone(), position);
        }
    }
    let mut offsets = BTreeMap::new();
    for (stream, seq) in last.into_values().flatten() {
        offsets.insert(stream, seq);
    }
    offsets
}

/// The JSON object in `json` (at `index` of an array, with an index) as a source map.
fn source_map(json: &[u8], index: Option<usize>) -> Option<SourceMap> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let object = match index {
        Some(index) => value.get(index)?.as_object()?.clone(),
        None => value.as_object()?.clone(),
    };
    Some(SourceMap::new(object))
}

/// The integer right after `field` in JSON text.
fn number_after(json: &[u8], field: &str) -> Option<i64> {
    let text = std::str::from_utf8(json).ok()?;
    let rest = &text[text.find(field)? + field.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
