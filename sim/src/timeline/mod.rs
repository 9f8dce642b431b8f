//! A run's timeline, for a person to read: one lane per host (brokers, workers, the external system's
//! hosts), per consumer group and per group member, with the faults, restarts, rebalances and generations,
//! commits, flushes and anomalies on simulated time, and the records each anomaly involves.
//!
//! The harness fills a [`TimelineBuilder`] as the run goes; [`html::render`] turns the finished
//! [`Timeline`] into a self-contained page (`sluice sim --timeline FILE.html`, and the test kit's runner
//! for a failing seed).

pub mod html;
mod records;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::oracle::Anomaly;
use crate::workload::Write;

pub use records::involved_records;

/// What a lane follows. Lanes are shown in this order, then in the order they first appeared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaneKind {
    /// A broker host.
    Broker,
    /// A worker host: its faults, restarts, source commits and sink flushes.
    Worker,
    /// A host of the connector's external system (a test kit's model).
    External,
    /// The cluster as a whole: topics, leader and coordinator moves, transactions, deleted records.
    Kafka,
    /// The sink's destination, the source's system and the simulated disks: the faults armed there.
    Destination,
    /// A consumer group: its rebalances and generations.
    Group,
    /// A member of a consumer group: when it joined and left, what it was assigned and committed.
    Member,
    /// The oracle: the anomalies it found.
    Oracle,
}

/// What a mark shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarkKind {
    /// A fault injected (a bar when it lasts).
    Fault,
    /// A host started again, a network healed, a fault ended.
    Recovery,
    /// A worker or task started, stopped or failed.
    Lifecycle,
    /// A group began rebalancing, or a member joined or left.
    Rebalance,
    /// A group's new generation, with its members and assignment.
    Generation,
    /// An offset commit (sink group or source).
    Commit,
    /// Records made durable in the destination.
    Flush,
    /// Something the cluster did.
    Cluster,
    /// An anomaly the oracle found.
    Anomaly,
}

/// One thing that happened, on one lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// Simulated milliseconds since the run began.
    pub at_ms: u64,
    /// When the thing ended, for one that lasted (a fault's hold or downtime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// What the mark shows.
    pub kind: MarkKind,
    /// A short label.
    pub label: String,
    /// The whole account, shown on hover and in the page's event list.
    pub detail: String,
}

/// One lane and its marks, in time order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lane {
    /// The host's, group's or member's name.
    pub name: String,
    /// What the lane follows.
    pub kind: LaneKind,
    /// What happened on it, in time order.
    pub marks: Vec<Mark>,
}

/// An anomaly as the timeline shows it: when it was found (if the oracle found it as it happened), and
/// the records it names with every write of them to the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineAnomaly {
    /// The anomaly's kind (`lost`, `stale-value`...).
    pub kind: String,
    /// The oracle's account of it.
    pub detail: String,
    /// The records named in the anomaly's account (`stream-S:N` or `TOPIC-P@OFFSET`).
    pub records: Vec<String>,
    /// Each write of those records to the destination: `at ms: task (worker) wrote TOPIC-P@OFFSET`.
    pub writes: Vec<String>,
}

/// A run's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The scenario (or kit test) that ran.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Simulated milliseconds the run took.
    pub end_ms: u64,
    /// The lanes, in [`LaneKind`] order.
    pub lanes: Vec<Lane>,
    /// Every anomaly of the run.
    pub anomalies: Vec<TimelineAnomaly>,
}

/// The first and last offsets of a partition a flush wrote, and how many records.
type Span = (i64, i64, usize);

/// Milliseconds of a simulated instant.
pub fn ms(at: Duration) -> u64 {
    at.as_millis() as u64
}

/// Collects a run's lanes and marks as it goes.
#[derive(Debug, Default)]
pub struct TimelineBuilder {
    lanes: Vec<Lane>,
    by_name: BTreeMap<String, usize>,
    /// Anomalies the oracle found as they happened, by their account: when.
    found: BTreeMap<String, Duration>,
}

impl TimelineBuilder {
    /// Declares a lane, so that it is shown even if nothing happens on it.
    pub fn lane(&mut self, kind: LaneKind, name: &str) -> &mut Lane {
        let index = match self.by_name.get(name) {
            Some(index) => *index,
            None => {
                self.lanes.push(Lane {
                    name: name.to_owned(),
                    kind,
                    marks: Vec::new(),
                });
                self.by_name.insert(name.to_owned(), self.lanes.len() - 1);
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[index]
    }

    /// Adds a mark at `at` to the lane (declared if new).
    pub fn mark(
        &mut self,
        lane: (LaneKind, &str),
        at: Duration,
        kind: MarkKind,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.add(lane, at, None, kind, label.into(), detail.into());
    }

    /// Adds a mark that lasts from `at` to `until`.
    pub fn span(
        &mut self,
        lane: (LaneKind, &str),
        at: Duration,
        until: Duration,
        kind: MarkKind,
        label: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.add(lane, at, Some(until), kind, label.into(), detail.into());
    }

    fn add(
        &mut self,
        lane: (LaneKind, &str),
        at: Duration,
        until: Option<Duration>,
        kind: MarkKind,
        label: String,
        detail: String,
    ) {
        self.lane(lane.0, lane.1).marks.push(Mark {
            at_ms: ms(at),
            until_ms: until.map(ms),
            kind,
            label,
            detail,
        });
    }

    /// The oracle found `anomaly` at `at` (a check made as the run went): it is marked then.
    pub fn anomaly_found(&mut self, at: Duration, anomaly: &Anomaly) {
        self.found.entry(anomaly.detail.clone()).or_insert(at);
    }

    /// The destination's writes as flushes on their workers' lanes: one mark per task and instant, with
    /// the partitions and offsets it made durable.
    pub fn flushes(&mut self, writes: &[Write]) {
        let mut batches: BTreeMap<(Duration, usize, &str), BTreeMap<String, Span>> =
            BTreeMap::new();
        for write in writes {
            let offsets = batches
                .entry((write.at, write.worker, write.task.as_str()))
                .or_default()
                .entry(write.tp.to_string())
                .or_insert((write.offset, write.offset, 0));
            offsets.0 = offsets.0.min(write.offset);
            offsets.1 = offsets.1.max(write.offset);
            offsets.2 += 1;
        }
        for ((at, worker, task), partitions) in batches {
            let count: usize = partitions.values().map(|(_, _, n)| n).sum();
            let ranges: Vec<String> = partitions
                .iter()
                .map(|(tp, (first, last, _))| format!("{tp}@{first}..={last}"))
                .collect();
            self.mark(
                (LaneKind::Worker, &format!("worker-{worker}")),
                at,
                MarkKind::Flush,
                format!("wrote {count}"),
                format!("{task} made {count} records durable: {}", ranges.join(", ")),
            );
        }
    }

    /// The finished timeline: lanes in [`LaneKind`] order, marks in time order; the anomalies with the
    /// records they name and those records' writes. Each anomaly is marked on the oracle's lane when it
    /// was found if the oracle found it as the run went, else when its account says it happened
    /// (`at N ms`), else at the end of the run.
    pub fn finish(
        mut self,
        scenario: &str,
        seed: u64,
        end: Duration,
        anomalies: &[Anomaly],
        writes: &[Write],
    ) -> Timeline {
        let mut shown = Vec::new();
        for anomaly in anomalies {
            let records = involved_records(&anomaly.detail);
            let record_writes = records::writes_of(&records, writes);
            let at = self
                .found
                .get(&anomaly.detail)
                .copied()
                .or_else(|| records::stated_time(&anomaly.detail))
                .unwrap_or(end);
            self.mark(
                (LaneKind::Oracle, "oracle"),
                at,
                MarkKind::Anomaly,
                anomaly.kind.as_str(),
                anomaly.detail.clone(),
            );
            shown.push(TimelineAnomaly {
                kind: anomaly.kind.as_str().to_owned(),
                detail: anomaly.detail.clone(),
                records,
                writes: record_writes,
            });
        }
        let mut lanes = self.lanes;
        lanes.sort_by_key(|lane| lane.kind);
        for lane in &mut lanes {
            lane.marks.sort_by_key(|mark| mark.at_ms);
        }
        Timeline {
            scenario: scenario.to_owned(),
            seed,
            end_ms: ms(end),
            lanes,
            anomalies: shown,
        }
    }
}
