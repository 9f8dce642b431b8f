//! The oracle: what must hold of a run, checked at every commit where it can be and over everything at the
//! end.
//!
//! Anomalies of the data are named as Jepsen's Kafka workload names them:
//! - `lost`: a source record at or before a committed source offset is not in Kafka;
//! - `unseen`: a record never reached its end: in Kafka but never durable in the destination, or never
//!   sent to Kafka although the source system held it;
//! - `duplicate`: one source record at two Kafka offsets, or one Kafka record written twice to the
//!   destination (counted always; an anomaly as such under [`Guarantee::ExactlyOnce`], and on either side
//!   that [`Guarantee::ExactlyOnceSource`] or [`Guarantee::ExactlyOnceSink`] promises once; elsewhere under
//!   at least once each copy is judged instead, see [`redelivery`]: `redelivered-after-commit` and
//!   `redelivered-without-fault`);
//! - `nonmonotonic`: a task wrote a partition's records out of offset order within one delivery epoch;
//! - `committed-before-durable`: a sink offset committed past what the destination held durably (the
//!   store's writes, or the lines synced in the FileStreamSinks' files), or a source offset committed while
//!   a record it covers was not yet in Kafka (it arrived later; one that never did is `lost`);
//! - `inconsistent`: the destination holds, for a Kafka offset, a value other than Kafka's, or an offset
//!   Kafka does not have;
//! - `zombie-write`: a source task instance's record became visible to read_committed readers (its
//!   transaction committed, or it was appended outside one) after a newer instance of the same task had
//!   initialized its transactional producer: the old instance was a zombie and should have been fenced.
//!   Zombie copies are reported as such and left out of the duplicate count.
//!
//! A sink held to [`Guarantee::EffectivelyOnce`] (its destination applies records as upserts by key) is
//! held to `stale-value` instead of judgments of its copies: each key must end with the latest record of
//! its key ([`upserts`]).
//!
//! A sink with a dead letter queue is held to `dead-letter-missing` (a record its converter refused or
//! its destination rejected is in Kafka but not in the queue) and `dead-letter-unexpected` (a record in
//! the queue that should have been written) ([`dead_letters`]).
//!
//! Where the only faults are slow or failed calls, a member thrown out of the sink's group is
//! `thrown-out-below-limit` unless a call ran past `put.flush.limit.ms` ([`slow_calls`]).
//!
//! A test kit's sink under test is also held to `written-after-close`: a worker made a partition's
//! records durable after the runtime had closed that partition on it (see
//! [`crate::kit::open_partitions`]).
//!
//! The cluster's own invariants are checked as its events happen ([`cluster`]: `stale-commit-accepted`,
//! `committed-offset-regressed`, `partition-owned-twice`), and a run that does not drain within its limit
//! is `not-drained` ([`drain`]).
//!
//! - [`commits`]: the checks made at each commit and cluster event, and the history kept for the end;
//! - [`cluster`]: the group coordinator's invariants;
//! - [`durability`]: how far each partition is durable at the sink's end;
//! - [`redelivery`]: which records delivered again the protocol allows;
//! - [`drain`]: what a run that did not drain is missing;
//! - [`upserts`]: what the keys of an upserting destination end with;
//! - [`reports`]: what source tasks were told of their records (`commit-record-missing`,
//!   `commit-record-wrong`).

pub mod cluster;
pub mod commits;
pub mod dead_letters;
pub mod drain;
pub mod durability;
pub mod redelivery;
pub mod reports;
pub mod retention;
pub mod slow_calls;
pub mod upserts;
pub mod visible;

pub use commits::{CommitChecks, ZombieWrite};
pub use durability::Durability;
pub use retention::RetentionEvidence;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::broker::Logs;
use crate::protocol::Tp;
use crate::scenario::{Guarantee, Scenario};
use crate::workload::{self, InstanceReports, Write};

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
    RedeliveredAfterCommit,
    RedeliveredWithoutFault,
    StaleCommitAccepted,
    CommittedOffsetRegressed,
    PartitionOwnedTwice,
    NotDrained,
    CommitRecordMissing,
    CommitRecordWrong,
    DeletedUnreported,
    WrittenAfterClose,
    StaleValue,
    ThrownOutBelowLimit,
    DeadLetterMissing,
    DeadLetterUnexpected,
    WrongConnectorState,
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
            AnomalyKind::RedeliveredAfterCommit => "redelivered-after-commit",
            AnomalyKind::RedeliveredWithoutFault => "redelivered-without-fault",
            AnomalyKind::StaleCommitAccepted => "stale-commit-accepted",
            AnomalyKind::CommittedOffsetRegressed => "committed-offset-regressed",
            AnomalyKind::PartitionOwnedTwice => "partition-owned-twice",
            AnomalyKind::NotDrained => "not-drained",
            AnomalyKind::CommitRecordMissing => "commit-record-missing",
            AnomalyKind::CommitRecordWrong => "commit-record-wrong",
            AnomalyKind::DeletedUnreported => "deleted-unreported",
            AnomalyKind::WrittenAfterClose => "written-after-close",
            AnomalyKind::StaleValue => "stale-value",
            AnomalyKind::ThrownOutBelowLimit => "thrown-out-below-limit",
            AnomalyKind::DeadLetterMissing => "dead-letter-missing",
            AnomalyKind::DeadLetterUnexpected => "dead-letter-unexpected",
            AnomalyKind::WrongConnectorState => "wrong-connector-state",
        }
    }
}

/// One anomaly found, with a readable account of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub detail: String,
}

/// Source records, (stream, seq), each with the Kafka positions it is at.
pub type Positions = BTreeMap<(i64, i64), Vec<(Tp, i64)>>;

/// Where each source record landed in Kafka, as a read_committed reader sees it (records of aborted or
/// still open transactions are not there): (stream, seq), as the scenario identifies it, to Kafka
/// positions. Built once at the end of a run, for every check that needs it.
pub fn kafka_positions(logs: &Logs, scenario: &Scenario) -> Positions {
    let topic = scenario.topic();
    let mut positions = Positions::new();
    for (name, partitions) in logs.topics() {
        if name != topic {
            continue;
        }
        for partition in 0..partitions {
            let tp = Tp::new(topic, partition);
            for committed in logs.committed_records(&tp) {
                if let Some(id) = committed
                    .record
                    .value
                    .as_deref()
                    .and_then(|value| scenario.identify(value))
                {
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
    /// Source records the source's converter refused or its transforms dropped or failed on: skipped
    /// before Kafka.
    pub skipped_by_source: i64,
    /// Records in Kafka the sink's converter refused, its destination rejected or its transforms
    /// dropped or failed on: skipped, not written to the destination.
    pub skipped_by_sink: i64,
    /// Records in the sink's dead letter queue (with duplicates).
    #[serde(skip_serializing_if = "is_zero")]
    pub dead_lettered: i64,
    /// Records in the source's dead letter queue (with duplicates).
    #[serde(skip_serializing_if = "is_zero")]
    pub source_dead_lettered: i64,
    /// Distinct Kafka records durable in the destination.
    pub delivered: i64,
    /// Source records at more than one Kafka offset (extra copies).
    pub kafka_duplicates: i64,
    /// Kafka records written to the destination more than once (extra copies).
    pub sink_duplicates: i64,
    /// Kafka records retention deleted before any sink task wrote them (not written, not owed).
    #[serde(skip_serializing_if = "is_zero")]
    pub deleted_unwritten: i64,
}

fn is_zero(count: &i64) -> bool {
    *count == 0
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
    /// Where each source record is in Kafka ([`kafka_positions`]).
    pub positions: &'a Positions,
    /// What each source task instance was told through `commit_record` and `commit`.
    pub reports: &'a BTreeMap<u64, InstanceReports>,
    /// Which records retention deleted while the sink's group owed them, and which a sink task reported.
    pub retention: RetentionEvidence<'a>,
}

/// The end-of-run checks.
pub fn check_final(state: &FinalState<'_>) -> (Tally, Vec<Anomaly>) {
    let scenario = state.scenario;
    let positions = state.positions;
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
            if scenario.kept_out_of_kafka(seq) {
                tally.skipped_by_source += 1;
                if copies > 0 {
                    first(
                        AnomalyKind::Inconsistent,
                        format!("stream {stream} seq {seq} is in Kafka, but the source's converter refuses it or its transforms drop it"),
                    );
                }
                continue;
            }
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
    reports::check(
        scenario,
        state.reports,
        positions,
        state.source_committed,
        &mut first,
    );

    let example = match &state.destination {
        Destination::Store(writes) => {
            let mut deleted = BTreeSet::new();
            let example = check_store(
                scenario,
                writes,
                state.logs,
                positions,
                &mut tally,
                &mut deleted,
                &mut first,
            );
            retention::check(&deleted, state.retention, &mut first);
            for anomaly in
                dead_letters::check(scenario, state.logs, positions, &deleted, &mut tally)
            {
                first(anomaly.kind, anomaly.detail);
            }
            for anomaly in dead_letters::check_source(scenario, state.logs, &mut tally) {
                first(anomaly.kind, anomaly.detail);
            }
            example
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
    (tally, anomalies)
}

type Report<'r> = &'r mut dyn FnMut(AnomalyKind, String);

/// Every Kafka record durable in the destination store; copies counted; order within a delivery epoch.
/// Returns an example of a record written more than once; adds to `deleted` the records retention
/// deleted before any sink task wrote them.
fn check_store(
    scenario: &Scenario,
    writes: &[Write],
    logs: &Logs,
    positions: &BTreeMap<(i64, i64), Vec<(Tp, i64)>>,
    tally: &mut Tally,
    deleted: &mut BTreeSet<(Tp, i64)>,
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
    // Records the sink's converter refuses or its transforms drop or fail on are skipped, not written;
    // those the destination rejects are reported as errant (all but the dropped go to the dead letter
    // queue, if there is one).
    let (refused, kafka_records): (Vec<_>, Vec<_>) = positions
        .iter()
        .flat_map(|((_, seq), copies)| {
            let refused = scenario.kept_out_of_destination(*seq);
            copies
                .iter()
                .map(move |position| (refused, position.clone()))
        })
        .partition(|(refused, _)| *refused);
    tally.skipped_by_sink = refused.len() as i64;
    for (_, (tp, offset)) in &refused {
        if written.contains_key(&(tp.clone(), *offset)) {
            report(
                AnomalyKind::Inconsistent,
                format!("{tp} offset {offset} was written, though the sink's converter refuses it, its destination rejects it or its transforms drop it"),
            );
        }
    }
    let kafka_records: BTreeSet<(Tp, i64)> = kafka_records
        .into_iter()
        .map(|(_, position)| position)
        .collect();
    for (tp, offset) in &kafka_records {
        if written.contains_key(&(tp.clone(), *offset)) {
            continue;
        }
        if logs.start_offset(tp).is_ok_and(|start| *offset < start) {
            tally.deleted_unwritten += 1;
            deleted.insert((tp.clone(), *offset));
        } else {
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
        match workload::record_id(line.as_bytes()) {
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
