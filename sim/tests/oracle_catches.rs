//! The oracle is not vacuous: for each kind of anomaly, a connector with a planted bug runs under the
//! simulation, and the oracle reports exactly that kind, with the seed that replays it.

use std::collections::BTreeSet;

use sluice_sim::oracle::AnomalyKind;
use sluice_sim::{run_planned, Scenario};

const SEED: u64 = 11;

fn kinds_found(source_bug: &'static str, sink_bug: &'static str) -> BTreeSet<AnomalyKind> {
    let scenario = Scenario {
        source_bug,
        sink_bug,
        drain_limit: std::time::Duration::from_secs(20),
        ..Scenario::named("pipeline").expect("a known scenario")
    };
    let report = run_planned(&scenario, SEED, Vec::new()).expect("the simulation runs");
    assert_eq!(report.seed, SEED);
    assert!(
        report.summary().contains(&format!("seed={SEED} ANOMALY")),
        "{}",
        report.summary()
    );
    report.anomalies.iter().map(|a| a.kind).collect()
}

#[test]
fn a_source_that_skips_records_loses_them() {
    assert_eq!(
        kinds_found("skip-records", "none"),
        BTreeSet::from([AnomalyKind::Lost])
    );
}

#[test]
fn a_source_that_commits_ahead_of_kafka_commits_before_durable() {
    assert_eq!(
        kinds_found("early-offsets", "none"),
        BTreeSet::from([AnomalyKind::CommittedBeforeDurable])
    );
}

#[test]
fn a_sink_that_approves_offsets_before_writing_commits_before_durable() {
    assert_eq!(
        kinds_found("none", "commit-before-flush"),
        BTreeSet::from([AnomalyKind::CommittedBeforeDurable])
    );
}

#[test]
fn a_sink_that_never_reads_a_partition_leaves_records_unseen() {
    assert_eq!(
        kinds_found("none", "pause-partition"),
        BTreeSet::from([AnomalyKind::Unseen])
    );
}

#[test]
fn a_sink_that_writes_twice_duplicates() {
    assert_eq!(
        kinds_found("none", "write-twice"),
        BTreeSet::from([AnomalyKind::Duplicate])
    );
}

#[test]
fn a_sink_that_writes_backwards_is_nonmonotonic() {
    assert_eq!(
        kinds_found("none", "reverse-flush"),
        BTreeSet::from([AnomalyKind::Nonmonotonic])
    );
}

#[test]
fn a_sink_that_alters_values_is_inconsistent() {
    assert_eq!(
        kinds_found("none", "garble-values"),
        BTreeSet::from([AnomalyKind::Inconsistent])
    );
}
