//! The report of one run: what was injected, what flowed, what the oracle found, and a hash of the run's
//! trace that changes whenever the run does.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, Serializer};
use sluice_core::api::CommitRecordReads;
use sluice_core::hash::{fnv1a64_extend, FNV1A64_START};

use crate::coverage::Coverage;
use crate::faults::Scheduled;
use crate::oracle::{Anomaly, Tally};
use crate::scenario::Guarantee;
use crate::timeline::Timeline;
use crate::workload::{self, SinkMode};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub guarantee: Guarantee,
    /// Why the run holds a weaker guarantee than its scenario's, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guarantee_relaxed: Option<String>,
    /// The sink consumers' `partition.assignment.strategy`.
    pub assignor: String,
    /// How the StoreSink made records durable (workloads with a StoreSink).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink_mode: Option<SinkMode>,
    /// What the SequenceSource's `commit_record` read, when less than everything.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "reads_by_name"
    )]
    pub commit_record_reads: Option<CommitRecordReads>,
    /// The source's `transaction.boundary`, with exactly-once source support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_boundary: Option<String>,
    pub faults: Vec<Scheduled>,
    /// Simulated time the run took, in milliseconds.
    pub simulated_ms: u64,
    pub records: Tally,
    pub anomalies: Vec<Anomaly>,
    pub final_offsets: FinalOffsets,
    /// How many times the run reached each runtime event (see [`crate::coverage`]).
    pub coverage: Coverage,
    /// FNV-1a 64 of the run's trace: every fault, group change, commit and destination write, with times.
    pub trace_hash: String,
    /// Wall-clock time the run took (redacted in snapshots).
    pub wall_ms: u64,
    /// The trace itself, one line per event (not part of the YAML report).
    #[serde(skip)]
    pub trace: Vec<String>,
    /// The run drawn for a person: lanes of hosts, groups and members (not part of the YAML report; see
    /// [`crate::timeline::html::render`]).
    #[serde(skip)]
    pub timeline: Timeline,
}

/// A `commit_record` reading as the SequenceSource's `commit.record.reads` spells it.
fn reads_by_name<S: Serializer>(
    reads: &Option<CommitRecordReads>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match reads {
        Some(reads) => serializer.serialize_str(workload::reads_name(*reads)),
        None => serializer.serialize_none(),
    }
}

/// Offsets at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FinalOffsets {
    /// Committed source offset (seq) per stream.
    pub source: BTreeMap<String, i64>,
    /// Committed sink offset per partition.
    pub sink: BTreeMap<String, i64>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The kinds of fault the run drew, as reports name them (`crash-worker`).
    pub fn fault_kinds(&self) -> BTreeSet<String> {
        self.faults
            .iter()
            .map(|scheduled| {
                serde_yaml::to_value(&scheduled.fault)
                    .ok()
                    .and_then(|value| value.get("kind")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".to_owned())
            })
            .collect()
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# report could not be rendered: {e}\n"))
    }

    /// One line: seed, verdict, counts and trace hash.
    pub fn summary(&self) -> String {
        let verdict = if self.passed() {
            "ok".to_owned()
        } else {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for anomaly in &self.anomalies {
                // A capped list ends with "... and N more" for the kind.
                let more = anomaly
                    .detail
                    .strip_prefix("... and ")
                    .and_then(|rest| rest.strip_suffix(" more"))
                    .and_then(|n| n.parse::<usize>().ok());
                *kinds.entry(anomaly.kind.as_str()).or_insert(0) += more.unwrap_or(1);
            }
            let kinds: Vec<String> = kinds.into_iter().map(|(k, n)| format!("{k}x{n}")).collect();
            format!("ANOMALY {}", kinds.join(","))
        };
        format!(
            "scenario={} seed={} {verdict} assignor={}{}{} faults={} kafka={} delivered={} duplicates={} simulated={}s trace={}",
            self.scenario,
            self.seed,
            self.assignor,
            self.sink_mode
                .map(|mode| format!(" sink={}", mode.as_str()))
                .unwrap_or_default(),
            self.commit_record_reads
                .map(|reads| format!(" reads={}", workload::reads_name(reads)))
                .unwrap_or_default(),
            self.faults.len(),
            self.records.in_kafka,
            self.records.delivered,
            self.records.kafka_duplicates + self.records.sink_duplicates,
            self.simulated_ms / 1000,
            self.trace_hash
        )
    }
}

/// FNV-1a 64, incrementally.
#[derive(Debug, Clone, Copy)]
pub struct TraceHash(u64);

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(FNV1A64_START)
    }
}

impl TraceHash {
    pub fn add(&mut self, line: &str) {
        self.0 = fnv1a64_extend(fnv1a64_extend(self.0, line.as_bytes()), b"\n");
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
