//! The oracle: what must hold of a run, checked at every commit where it can be and over everything at the
//! end.
//!
//! Anomalies are named as Jepsen's Kafka workload names them:
//! - `lost`: a source record at or before a committed source offset is not in Kafka;
//! - `unseen`: a record never reached its end: in Kafka but never durable in the destination, or never
//!   sent to Kafka although the source system held it;
//! - `duplicate`: one source record at two Kafka offsets, or one Kafka record written twice to the
//!   destination (counted always; an anomaly under [`Guarantee::ExactlyOnce`], and on either side that
//!   [`Guarantee::ExactlyOnceSource`] or [`Guarantee::ExactlyOnceSink`] promises once);
//! - `nonmonotonic`: a task wrote a partition's records out of offset order within one delivery epoch;
//! - `committed-before-durable`: a sink offset committed past what the destination held durably, or a source
//!   offset committed while a record it covers was not yet in Kafka (it arrived later; one that never did
//!   is `lost`);
//! - `inconsistent`: the destination holds, for a Kafka offset, a value other than Kafka's, or an offset
//!   Kafka does not have;
//! - `zombie-write`: a source task instance's record became visible to read_committed readers (its
//!   transaction committed, or it was appended outside one) after a newer instance of the same task had
//!   initialized its transactional producer: the old instance was a zombie and should have been fenced.
//!   Zombie copies are reported as such and left out of the duplicate count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::broker::{ClusterEvent, Logs};
use crate::protocol::Tp;
use crate::scenario::{Guarantee, Scenario, Workload};
use crate::workload::{DestinationStore, Write, INSTANCE_HEADER};

/// The kinds of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    Lost,
    Unseen,
    Duplicate,
    Nonmonotonic,
    CommittedBeforeDurable,
    Inconsistent,
    ZombieWrite,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::Nonmonotonic => "nonmonotonic",
            AnomalyKind::CommittedBeforeDurable => "committed-before-durable",
            AnomalyKind::Inconsistent => "inconsistent",
            AnomalyKind::ZombieWrite => "zombie-write",
        }
    }
}

/// One anomaly found, with a readable account of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub detail: String,
}

/// Where each source record landed in Kafka, as a read_committed reader sees it (records of aborted or
/// still open transactions are not there): (stream, seq) to Kafka positions.
pub fn kafka_positions(logs: &Logs, topic: &str) -> BTreeMap<(i64, i64), Vec<(Tp, i64)>> {
    let mut positions: BTreeMap<(i64, i64), Vec<(Tp, i64)>> = BTreeMap::new();
    for (name, partitions) in logs.topics() {
        if name != topic {
            continue;
        }
        for partition in 0..partitions {
            let tp = Tp::new(topic, partition);
            for committed in logs.committed_records(&tp) {
                if let Some(id) = committed.record.value.as_deref().and_then(parse_value) {
                    positions
                        .entry(id)
                        .or_default()
                        .push((tp.clone(), committed.offset));
                }
            }
        }
    }
    positions
}

/// The offset after the longest prefix of `tp`'s records that is durable in the destination. Transaction
/// markers and aborted records are no records; records of open transactions are (a sink reading
/// uncommitted data may have written them, and whether they should be there is judged at the end).
pub fn durable_end(logs: &Logs, store: &DestinationStore, tp: &Tp) -> i64 {
    // Every offset below the contiguous durable run is durable: only what follows needs looking at.
    let from = store.contiguous_end(tp);
    store
        .first_missing(tp, logs.live_offsets_from(tp, from))
        .unwrap_or_else(|| logs.live_end(tp).max(from))
}

/// A record's place in its source: `stream-S:N` is (S, N); an input file's `line-N` is (0, N).
pub fn parse_value(value: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(value).ok()?;
    if let Some(line) = text.strip_prefix("line-") {
        return Some((0, line.trim_end().parse().ok()?));
    }
    let (stream, seq) = text.strip_prefix("stream-")?.split_once(':')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// Checks at the moment of each commit.
pub struct CommitChecks {
    /// The destination store's durability is known at each commit; a sink's files are read at the end.
    sink_durability: bool,
    sink_group: String,
    topic: String,
    store: Arc<DestinationStore>,
    pub anomalies: Vec<Anomaly>,
    /// Per stream, the highest seq such that it and every seq before it were in Kafka at a commit.
    verified: BTreeMap<i64, i64>,
    /// (stream, first seq missing from Kafka, committed seq) seen at source commits, judged at the end.
    early: BTreeSet<(i64, i64, i64)>,
    /// When each transactional producer epoch (producer id, epoch) was initialized.
    inits: BTreeMap<(i64, i16), Duration>,
}

/// A record that became visible from a zombie instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZombieWrite {
    pub tp: Tp,
    pub offset: i64,
    pub detail: String,
}

impl CommitChecks {
    pub fn new(scenario: &Scenario, store: Arc<DestinationStore>) -> CommitChecks {
        CommitChecks {
            sink_durability: scenario.workload == Workload::Sequences,
            sink_group: scenario.sink_group(),
            topic: scenario.topic().to_owned(),
            store,
            anomalies: Vec::new(),
            verified: BTreeMap::new(),
            early: BTreeSet::new(),
            inits: BTreeMap::new(),
        }
    }

    /// A sink commit may not pass the destination's durable prefix; a producer's initialization fences
    /// its task's older instances.
    pub fn on_cluster_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs) {
        if let ClusterEvent::ProducerInitialized {
            producer_id, epoch, ..
        } = event
        {
            self.inits.entry((*producer_id, *epoch)).or_insert(at);
            return;
        }
        let ClusterEvent::Committed {
            group,
            member_id,
            offsets,
            ..
        } = event
        else {
            return;
        };
        if *group != self.sink_group || !self.sink_durability {
            return;
        }
        for (tp, offset) in offsets {
            let durable = durable_end(logs, &self.store, tp);
            if *offset > durable {
                self.anomalies.push(Anomaly {
                    kind: AnomalyKind::CommittedBeforeDurable,
                    detail: format!(
                        "{member_id} committed {tp} at offset {offset}, but the destination held only offsets below {durable} durably"
                    ),
                });
            }
        }
    }

    /// A source commit of `seq` for `stream` needs every record up to it in Kafka. What is missing now is
    /// judged at the end: a record that arrived later was committed before it was durable, one that never
    /// did is lost.
    pub fn on_source_commit(&mut self, logs: &Logs, commits: &[(i64, i64)]) {
        let positions = kafka_positions(logs, &self.topic);
        for &(stream, seq) in commits {
            let verified = self.verified.entry(stream).or_insert(-1);
            while *verified < seq && positions.contains_key(&(stream, *verified + 1)) {
                *verified += 1;
            }
            if *verified < seq {
                self.early.insert((stream, *verified + 1, seq));
            }
        }
    }

    /// Records of the topic that became visible from zombie instances. An instance (the number a
    /// source task stamps on its records) started when its transactional producer was first
    /// initialized; a newer instance of the same task (one writing the same stream) fences it from then on.
    pub fn zombie_writes(&self, logs: &Logs) -> Vec<ZombieWrite> {
        struct Seen {
            tp: Tp,
            offset: i64,
            id: (i64, i64),
            instance: String,
            visible_at: Duration,
        }
        let mut seen = Vec::new();
        let mut started: BTreeMap<String, Duration> = BTreeMap::new();
        let mut writers: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        let partitions = logs.partition_count(&self.topic).unwrap_or(0);
        for partition in 0..partitions {
            let tp = Tp::new(self.topic.as_str(), partition);
            for committed in logs.committed_records(&tp) {
                let record = committed.record;
                let (Some(id), Some(instance)) = (
                    record.value.as_deref().and_then(parse_value),
                    record
                        .headers
                        .iter()
                        .find(|(key, _)| key == INSTANCE_HEADER)
                        .and_then(|(_, value)| value.as_deref())
                        .map(|value| String::from_utf8_lossy(value).into_owned()),
                ) else {
                    continue;
                };
                if let Some(at) = self.inits.get(&(committed.producer_id, committed.epoch)) {
                    let first = started.entry(instance.clone()).or_insert(*at);
                    *first = (*first).min(*at);
                }
                writers.entry(id.0).or_default().insert(instance.clone());
                seen.push(Seen {
                    tp: tp.clone(),
                    offset: committed.offset,
                    id,
                    instance,
                    visible_at: committed.visible_at,
                });
            }
        }
        let mut zombies = Vec::new();
        for record in seen {
            let Some(mine) = started.get(&record.instance) else {
                continue;
            };
            let successor = writers[&record.id.0]
                .iter()
                .filter_map(|other| started.get(other).map(|at| (*at, other)))
                .filter(|(at, _)| at > mine && *at < record.visible_at)
                .min();
            if let Some((at, other)) = successor {
                zombies.push(ZombieWrite {
                    detail: format!(
                        "instance {} wrote stream {} seq {} ({} offset {}), visible at {} ms, after instance {other} took over at {} ms",
                        record.instance,
                        record.id.0,
                        record.id.1,
                        record.tp,
                        record.offset,
                        record.visible_at.as_millis(),
                        at.as_millis()
                    ),
                    tp: record.tp,
                    offset: record.offset,
                });
            }
        }
        zombies
    }

    /// Every anomaly found at commits, now that Kafka's final contents are known.
    pub fn anomalies(&self, logs: &Logs) -> Vec<Anomaly> {
        let positions = kafka_positions(logs, &self.topic);
        let mut found = self.anomalies.clone();
        found.extend(self.zombie_writes(logs).into_iter().map(|zombie| Anomaly {
            kind: AnomalyKind::ZombieWrite,
            detail: zombie.detail,
        }));
        let mut judged = BTreeSet::new();
        for &(stream, missing, committed) in &self.early {
            if positions.contains_key(&(stream, missing)) && judged.insert((stream, missing)) {
                found.push(Anomaly {
                    kind: AnomalyKind::CommittedBeforeDurable,
                    detail: format!(
                        "source offset seq={committed} of stream {stream} was committed before Kafka acknowledged seq {missing}"
                    ),
                });
            }
        }
        cap(found)
    }
}

/// At most five anomalies of each kind, then one line saying how many more there were.
pub fn cap(anomalies: Vec<Anomaly>) -> Vec<Anomaly> {
    let mut counts: BTreeMap<AnomalyKind, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    for anomaly in anomalies {
        let n = counts.entry(anomaly.kind).or_insert(0);
        *n += 1;
        if *n <= 5 {
            kept.push(anomaly);
        }
    }
    for (kind, n) in counts {
        if n > 5 {
            kept.push(Anomaly {
                kind,
                detail: format!("... and {} more", n - 5),
            });
        }
    }
    kept
}

/// Counts for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Records the source system holds.
    pub source_records: i64,
    /// Records in Kafka's topic (with duplicates).
    pub in_kafka: i64,
    /// Distinct source records whose offsets the source committed.
    pub source_committed: i64,
    /// Distinct Kafka records durable in the destination.
    pub delivered: i64,
    /// Source records at more than one Kafka offset (extra copies).
    pub kafka_duplicates: i64,
    /// Kafka records written to the destination more than once (extra copies).
    pub sink_duplicates: i64,
}

/// Where the sink's records ended up.
pub enum Destination<'a> {
    /// The destination store: every write, with its partition and offset.
    Store(&'a [Write]),
    /// The lines of every worker's output file.
    Lines(&'a [String]),
}

/// What the oracle needs at the end of a run.
pub struct FinalState<'a> {
    pub scenario: &'a Scenario,
    pub logs: &'a Logs,
    /// Committed seq per stream.
    pub source_committed: &'a BTreeMap<i64, i64>,
    pub destination: Destination<'a>,
    /// Records that became visible from zombie instances: reported as `zombie-write`, not as duplicates.
    pub zombie_writes: &'a BTreeSet<(Tp, i64)>,
}

/// The end-of-run checks.
pub fn check_final(state: &FinalState<'_>) -> (Tally, Vec<Anomaly>) {
    let scenario = state.scenario;
    let topic = scenario.topic();
    let positions = kafka_positions(state.logs, topic);
    let mut anomalies = Vec::new();
    let mut tally = Tally {
        source_records: scenario.total_records(),
        ..Tally::default()
    };
    let mut first = |kind: AnomalyKind, detail: String| anomalies.push(Anomaly { kind, detail });

    // Source side: committed records are in Kafka; everything reached Kafka by the end.
    for stream in 0..scenario.streams {
        let committed = state.source_committed.get(&stream).copied().unwrap_or(-1);
        tally.source_committed += committed + 1;
        for seq in 0..scenario.records_per_stream {
            // Zombie copies are zombie writes, not duplicates; a record only zombies wrote is still there.
            let copies = positions.get(&(stream, seq)).map_or(0, |at| {
                at.iter()
                    .filter(|position| !state.zombie_writes.contains(*position))
                    .count()
                    .max(1)
            }) as i64;
            tally.kafka_duplicates += (copies - 1).max(0);
            if copies > 0 {
                continue;
            }
            if seq <= committed {
                first(
                    AnomalyKind::Lost,
                    format!("stream {stream} seq {seq} is at or before the committed source offset {committed} but not in Kafka"));
            } else {
                first(
                    AnomalyKind::Unseen,
                    format!("stream {stream} seq {seq} never reached Kafka"),
                );
            }
        }
    }
    tally.in_kafka = positions.values().map(|p| p.len() as i64).sum();

    let example = match &state.destination {
        Destination::Store(writes) => {
            check_store(writes, state.logs, &positions, &mut tally, &mut first)
        }
        Destination::Lines(lines) => check_lines(lines, scenario, &mut tally, &mut first),
    };
    let exactly_once_into_kafka = matches!(
        scenario.guarantee,
        Guarantee::ExactlyOnce | Guarantee::ExactlyOnceSource
    );
    if exactly_once_into_kafka && tally.kafka_duplicates > 0 {
        first(
            AnomalyKind::Duplicate,
            format!(
                "{} source records were written to Kafka more than once",
                tally.kafka_duplicates
            ),
        );
    }
    let exactly_once_out_of_kafka = matches!(
        scenario.guarantee,
        Guarantee::ExactlyOnce | Guarantee::ExactlyOnceSink
    );
    if exactly_once_out_of_kafka && tally.sink_duplicates > 0 {
        first(
            AnomalyKind::Duplicate,
            format!(
                "{} records were written to the destination more than once (e.g. {})",
                tally.sink_duplicates,
                example.unwrap_or_default()
            ),
        );
    }
    (tally, cap(anomalies))
}

type Report<'r> = &'r mut dyn FnMut(AnomalyKind, String);

/// Every Kafka record durable in the destination store; copies counted; order within a delivery epoch.
/// Returns an example of a record written more than once.
fn check_store(
    writes: &[Write],
    logs: &Logs,
    positions: &BTreeMap<(i64, i64), Vec<(Tp, i64)>>,
    tally: &mut Tally,
    report: Report<'_>,
) -> Option<String> {
    let mut written: BTreeMap<(Tp, i64), usize> = BTreeMap::new();
    let mut last: BTreeMap<(&str, u64, &Tp), i64> = BTreeMap::new();
    // What a read_committed reader sees of each partition written: offset to value.
    let mut visible: BTreeMap<&Tp, BTreeMap<i64, &[u8]>> = BTreeMap::new();
    for write in writes {
        *written.entry((write.tp.clone(), write.offset)).or_insert(0) += 1;
        let in_kafka = visible
            .entry(&write.tp)
            .or_insert_with(|| {
                logs.committed_records(&write.tp)
                    .map(|c| (c.offset, c.record.value.as_deref().unwrap_or_default()))
                    .collect()
            })
            .get(&write.offset)
            .copied();
        match in_kafka {
            Some(value) if value == write.value.as_bytes() => {}
            Some(value) => report(
                AnomalyKind::Inconsistent,
                format!(
                    "{} wrote {:?} for {} offset {}, where Kafka holds {:?}",
                    write.task,
                    write.value,
                    write.tp,
                    write.offset,
                    String::from_utf8_lossy(value)
                ),
            ),
            None => report(
                AnomalyKind::Inconsistent,
                format!(
                    "{} wrote {} offset {}, which Kafka does not have for read_committed readers",
                    write.task, write.tp, write.offset
                ),
            ),
        }
        let key = (write.task.as_str(), write.epoch, &write.tp);
        if let Some(previous) = last.get(&key) {
            if write.offset <= *previous {
                report(
                    AnomalyKind::Nonmonotonic,
                    format!(
                        "{} wrote {} offset {} after offset {} in delivery epoch {}",
                        write.task, write.tp, write.offset, previous, write.epoch
                    ),
                );
            }
        }
        last.insert(key, write.offset);
    }
    let kafka_records: BTreeSet<(Tp, i64)> = positions
        .values()
        .flat_map(|copies| copies.iter().cloned())
        .collect();
    for (tp, offset) in &kafka_records {
        if !written.contains_key(&(tp.clone(), *offset)) {
            report(
                AnomalyKind::Unseen,
                format!("{tp} offset {offset} is in Kafka but never reached the destination"),
            );
        }
    }
    tally.delivered = written.len() as i64;
    tally.sink_duplicates = written.values().map(|n| (*n as i64) - 1).sum();
    written
        .iter()
        .find(|(_, n)| **n > 1)
        .map(|((tp, o), n)| format!("{tp} offset {o} {n} times"))
}

/// Every input line in some worker's output file; copies counted. Returns an example of a line written
/// more than once.
fn check_lines(
    lines: &[String],
    scenario: &Scenario,
    tally: &mut Tally,
    report: Report<'_>,
) -> Option<String> {
    let mut copies: BTreeMap<i64, usize> = BTreeMap::new();
    for line in lines {
        match parse_value(line.as_bytes()) {
            Some((0, n)) => *copies.entry(n).or_insert(0) += 1,
            _ => report(
                AnomalyKind::Unseen,
                format!("an output file holds {line:?}, which is no input line"),
            ),
        }
    }
    for n in 0..scenario.records_per_stream {
        if !copies.contains_key(&n) {
            report(
                AnomalyKind::Unseen,
                format!("input line {n} never reached an output file"),
            );
        }
    }
    tally.delivered = copies.len() as i64;
    tally.sink_duplicates = copies.values().map(|n| (*n as i64) - 1).sum();
    copies
        .iter()
        .find(|(_, n)| **n > 1)
        .map(|(line, n)| format!("line {line} {n} times"))
}
