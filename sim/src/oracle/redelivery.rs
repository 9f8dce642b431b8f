//! Which records delivered again the protocol allows. Under at least once a record may come again only
//! when something stopped whoever delivered it from committing it: a crash, a fencing, a lost session, a
//! failed flush. So each copy after the first is judged, per partition at the sink and per stream at the
//! source:
//! - `redelivered-after-commit`: the delivery that wrote the copy began (its consumer was positioned by an
//!   assignment or rewound after a failed flush; a source task instance started) after a commit covering
//!   the record had been accepted: it should have begun past it;
//! - `redelivered-without-fault`: at the sink, the earlier copy had been written, by the partition's
//!   owner, when the delivery that wrote it again began, and that owner was neither thrown out of the group
//!   nor suffered a fault in between (a crash, stop, network fault, take-over, stalled or failed flush,
//!   failed sync; or a broker restart): a partition handed over cleanly is committed first, so nothing of
//!   it should come again.
//!
//! Both sink rules judge deliveries by the partition's owner only.
//!
//! A member thrown out of the group may go on writing what it had fetched until it notices (a zombie): its
//! copies, and what is delivered again after them, are what a lost session allows. The sink consumers'
//! member ids name their worker, so the group's assignments say which worker owned a partition when.
//!
//! When a delivery began: a StoreSink delivery epoch starts when partitions are assigned to it or its flush
//! fails, which the store notes. A FileStreamSink says nothing, so a worker's delivery of a partition is
//! taken to start again where its lines go back to an earlier offset, at some time between its last line
//! before and its first line after; each rule uses the end that makes it weaker. A source task instance
//! starts at the latest when its producer's first record reaches Kafka.
//!
//! A fault's effects outlast it for a while (a member learns it was thrown out at its next heartbeat, a
//! restarted worker's old member lingers until its session expires): a fault excuses what happens up to a
//! session timeout after it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::cluster::{Commit, Ownership};
use super::{Anomaly, AnomalyKind, Positions};
use crate::broker::Logs;
use crate::faults::{Fault, Scheduled};
use crate::protocol::Tp;
use crate::scenario::{Guarantee, Scenario};
use crate::workload::{self, member_worker, Line, Strike, Write};

/// What the sink wrote, each copy with who wrote it and when.
pub enum SinkCopies<'a> {
    /// The destination store's writes, and when each delivery epoch (writer, epoch) began.
    Store {
        writes: &'a [Write],
        epochs: &'a BTreeMap<(String, u64), (Duration, Duration)>,
    },
    /// Every line the FileStreamSinks appended to their output files.
    Lines(&'a [Line]),
}

/// What the judgement reads.
pub struct Evidence<'a> {
    pub scenario: &'a Scenario,
    pub logs: &'a Logs,
    /// The faults injected.
    pub plan: &'a [Scheduled],
    /// The store and disk faults, as they struck.
    pub strikes: &'a [Strike],
    /// Every commit of the sink's group, per partition, in order.
    pub sink_commits: &'a BTreeMap<Tp, Vec<Commit>>,
    /// Who owned which partition of the sink's group when.
    pub sink_ownership: &'a Ownership,
    /// Every source commit, per stream: when, and the seq it covers.
    pub source_commits: &'a BTreeMap<i64, Vec<(Duration, i64)>>,
    pub sink: SinkCopies<'a>,
    /// Records that became visible from zombie instances: no source redeliveries.
    pub zombie_writes: &'a BTreeSet<(Tp, i64)>,
    /// Where each source record is in Kafka.
    pub positions: &'a Positions,
}

/// The copies the guarantee does not allow.
pub fn judge(evidence: &Evidence<'_>) -> Vec<Anomaly> {
    let mut found = Vec::new();
    match evidence.scenario.guarantee {
        Guarantee::ExactlyOnce => {}
        Guarantee::ExactlyOnceSource => judge_sink(evidence, &mut found),
        // Upserts by key make a record written again harmless.
        Guarantee::ExactlyOnceSink | Guarantee::EffectivelyOnce => {
            judge_source(evidence, &mut found)
        }
        Guarantee::AtLeastOnce => {
            judge_source(evidence, &mut found);
            judge_sink(evidence, &mut found);
        }
    }
    found
}

/// A span of time when a worker (every worker, for a broker restart) may have failed to commit what it
/// wrote.
#[derive(Debug, Clone, Copy)]
struct Excuse {
    worker: Option<usize>,
    from: Duration,
    to: Duration,
}

fn excuses(plan: &[Scheduled], strikes: &[Strike]) -> Vec<Excuse> {
    let mut excuses: Vec<Excuse> = plan
        .iter()
        .filter_map(|scheduled| {
            let (worker, span) = match scheduled.fault {
                Fault::CrashWorker { worker, down } => (Some(worker), down),
                Fault::StopWorker { worker, away, .. } => (Some(worker), away),
                Fault::HoldNetwork { worker, duration }
                | Fault::PartitionNetwork { worker, duration } => (Some(worker), duration),
                Fault::TakeOver { from, duration, .. } => (Some(from), duration),
                Fault::RestartBroker { down, .. } => (None, down),
                // A commit the old coordinator refused, and the new one did not get in time.
                Fault::MoveCoordinators { .. } => (None, Duration::ZERO),
                // Store and disk faults excuse the worker they struck, when they did (see strikes);
                // latency, and a partition's leader moving, stop nobody from committing.
                _ => return None,
            };
            Some(Excuse {
                worker,
                from: scheduled.at,
                to: scheduled.at + span,
            })
        })
        .collect();
    excuses.extend(strikes.iter().map(|strike| Excuse {
        worker: Some(strike.worker),
        from: strike.from,
        to: strike.to,
    }));
    excuses
}

/// One copy of a record written at the sink's end.
struct Copy {
    tp: Tp,
    offset: i64,
    at: Duration,
    worker: usize,
    writer: String,
    /// The earliest and the latest time the delivery that wrote it may have begun.
    began: (Duration, Duration),
}

fn judge_sink(evidence: &Evidence<'_>, found: &mut Vec<Anomaly>) {
    let copies = match &evidence.sink {
        SinkCopies::Store { writes, epochs } => store_copies(writes, epochs),
        SinkCopies::Lines(lines) => line_copies(lines, evidence),
    };
    let excuses = excuses(evidence.plan, evidence.strikes);
    let aftermath = evidence.scenario.session_timeout;
    let ownership = evidence.sink_ownership;
    let owner = |tp: &Tp, at: Duration| ownership.owner(tp, at);
    let owned_by = |worker: usize, tp: &Tp, at: Duration| {
        owner(tp, at).and_then(member_worker) == Some(worker)
    };
    // Why the earlier copy's writer may not have committed it before the delivery began again.
    let excused = |earlier: &Copy, began: Duration| {
        let Some(member) =
            owner(&earlier.tp, earlier.at).filter(|m| member_worker(m) == Some(earlier.worker))
        else {
            // Not the owner: a zombie's copy.
            return true;
        };
        ownership
            .thrown_out(member)
            .is_some_and(|at| earlier.at <= at && at <= began)
            || excuses.iter().any(|e| {
                e.worker.is_none_or(|w| w == earlier.worker)
                    && e.from <= began
                    && e.to + aftermath >= earlier.at
            })
    };
    let mut last: BTreeMap<(Tp, i64), Copy> = BTreeMap::new();
    for copy in copies {
        let key = (copy.tp.clone(), copy.offset);
        if let Some(earlier) = last.get(&key) {
            let commit = committed_at(evidence.sink_commits, &copy.tp, copy.began.0);
            let (tp, offset, ms) = (&copy.tp, copy.offset, copy.at.as_millis());
            // Only a delivery by the partition's owner must begin at the committed offset: a zombie's
            // position is whatever it had when it lost its session (also a zombie task on the owner's
            // worker, which the copy's worker cannot tell from the owner).
            let by_owner = owned_by(copy.worker, tp, copy.began.1)
                && !ownership.zombie_on_worker(copy.worker, tp, copy.at);
            match commit {
                Some(commit) if by_owner && commit.offset > offset => {
                    found.push(Anomaly {
                        kind: AnomalyKind::RedeliveredAfterCommit,
                        detail: format!(
                            "{} wrote {tp} offset {offset} again at {ms} ms in a delivery begun no earlier than {} ms, after {} had committed offset {} at {} ms",
                            copy.writer,
                            copy.began.0.as_millis(),
                            commit.member,
                            commit.offset,
                            commit.at.as_millis()
                        ),
                    })
                }
                _ if by_owner && earlier.at <= copy.began.0 && !excused(earlier, copy.began.1) => {
                    let committed = commit.map_or("nothing".to_owned(), |c| {
                        format!("offset {} at {} ms", c.offset, c.at.as_millis())
                    });
                    found.push(Anomaly {
                        kind: AnomalyKind::RedeliveredWithoutFault,
                        detail: format!(
                            "{} wrote {tp} offset {offset} again at {ms} ms in a delivery begun by {} ms; {} had written it at {} ms as the partition's owner and suffered no fault since, so handing the partition over should have committed it (committed then: {committed})",
                            copy.writer,
                            copy.began.1.as_millis(),
                            earlier.writer,
                            earlier.at.as_millis()
                        ),
                    });
                }
                _ => {}
            }
        }
        last.insert(key, copy);
    }
}

/// The last commit of `tp` accepted at or before `at`.
fn committed_at<'c>(
    commits: &'c BTreeMap<Tp, Vec<Commit>>,
    tp: &Tp,
    at: Duration,
) -> Option<&'c Commit> {
    let history = commits.get(tp)?;
    let before = history.partition_point(|commit| commit.at <= at);
    before.checked_sub(1).map(|i| &history[i])
}

/// The store's writes, each in the delivery epoch it was written in.
fn store_copies(
    writes: &[Write],
    epochs: &BTreeMap<(String, u64), (Duration, Duration)>,
) -> Vec<Copy> {
    let mut first_write: BTreeMap<(&str, u64), Duration> = BTreeMap::new();
    writes
        .iter()
        .map(|write| {
            let first = *first_write
                .entry((write.task.as_str(), write.epoch))
                .or_insert(write.at);
            // An epoch no rewind began (a bug writing twice) began at the latest with its first write.
            let began = epochs
                .get(&(write.task.clone(), write.epoch))
                .copied()
                .unwrap_or((first, first));
            Copy {
                tp: write.tp.clone(),
                offset: write.offset,
                at: write.at,
                worker: write.worker,
                writer: format!("{} (worker-{})", write.task, write.worker),
                began,
            }
        })
        .collect()
}

/// The lines still in the output files, each with the record it holds (lines whose value is at more than
/// one Kafka offset cannot be told apart and are left out) and the span its delivery began in.
fn line_copies(lines: &[Line], evidence: &Evidence<'_>) -> Vec<Copy> {
    let positions = evidence.positions;
    let mut copies = Vec::new();
    // Per (worker, partition): the worker's last line of it so far, and when the delivery it was in began.
    struct Run {
        offset: i64,
        at: Duration,
        began: (Duration, Duration),
    }
    let mut runs: BTreeMap<(usize, Tp), Run> = BTreeMap::new();
    for line in lines {
        let Some([(tp, offset)]) = workload::record_id(line.text.as_bytes())
            .and_then(|id| positions.get(&id))
            .map(Vec::as_slice)
        else {
            continue;
        };
        let run = runs.entry((line.worker, tp.clone())).or_insert(Run {
            offset: *offset,
            at: line.appended,
            began: (Duration::ZERO, line.appended),
        });
        if *offset <= run.offset && run.at < line.appended {
            // Back to an earlier offset: a new delivery began since the last line.
            run.began = (run.at, line.appended);
        }
        run.offset = *offset;
        run.at = line.appended;
        let began = run.began;
        if !line.lost {
            copies.push(Copy {
                tp: tp.clone(),
                offset: *offset,
                at: line.appended,
                worker: line.worker,
                writer: format!("worker-{}'s FileStreamSink", line.worker),
                began,
            });
        }
    }
    copies.sort_by_key(|copy| copy.at);
    copies
}

/// Source records sent again by a task instance that started after their source offset was committed.
fn judge_source(evidence: &Evidence<'_>, found: &mut Vec<Anomaly>) {
    struct Sent {
        at: Duration,
        producer: i64,
        id: (i64, i64),
        tp: Tp,
        offset: i64,
    }
    let topic = evidence.scenario.topic();
    let mut sent = Vec::new();
    for partition in 0..evidence.logs.partition_count(topic).unwrap_or(0) {
        let tp = Tp::new(topic, partition);
        for record in evidence.logs.committed_records(&tp) {
            if evidence
                .zombie_writes
                .contains(&(tp.clone(), record.offset))
            {
                continue;
            }
            if let Some(id) = record
                .record
                .value
                .as_deref()
                .and_then(|value| evidence.scenario.identify(value))
            {
                sent.push(Sent {
                    at: record.visible_at,
                    producer: record.producer_id,
                    id,
                    tp: tp.clone(),
                    offset: record.offset,
                });
            }
        }
    }
    sent.sort_by_key(|s| s.at);
    let mut started: BTreeMap<i64, Duration> = BTreeMap::new();
    for s in &sent {
        started.entry(s.producer).or_insert(s.at);
    }
    let mut seen = BTreeSet::new();
    for s in &sent {
        if seen.insert(s.id) {
            continue;
        }
        let (stream, seq) = s.id;
        let start = started[&s.producer];
        // Commits strictly before its first record: a commit needs an acknowledgement, which comes later.
        let commit = evidence.source_commits.get(&stream).and_then(|commits| {
            let before = commits.partition_point(|(at, _)| *at < start);
            before.checked_sub(1).map(|i| commits[i])
        });
        if let Some((at, committed)) = commit.filter(|(_, committed)| *committed >= seq) {
            found.push(Anomaly {
                kind: AnomalyKind::RedeliveredAfterCommit,
                detail: format!(
                    "stream {stream} seq {seq} reached Kafka again at {} ms ({} offset {}) from a task instance started by {} ms, after the source had committed seq {committed} at {} ms",
                    s.at.as_millis(),
                    s.tp,
                    s.offset,
                    start.as_millis(),
                    at.as_millis()
                ),
            });
        }
    }
}
