//! The StoreSink's modes under one crash that makes the runtime deliver records again: a sink writing in
//! `put` writes some twice (what at least once allows), a sink keeping its offsets in the destination
//! rewinds past them and writes every record once, and the same sink without its rewind (as if the runtime
//! ignored the request) is caught writing duplicates.

use std::collections::BTreeSet;
use std::time::Duration;

use sluice_sim::coverage::Event;
use sluice_sim::faults::{Fault, Scheduled};
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::workload::SinkMode;
use sluice_sim::{builtin, Guarantee, Report};

/// `crash-restart-storm` seed 4's plan: worker 1 crashes 21.9 s in, for 7.9 s.
const SEED: u64 = 4;

fn crash_once(modes: &'static [SinkMode], sink_bug: &'static str) -> Report {
    let scenario = builtin::scenario("crash-restart-storm")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.assignors = &["range"];
            s.sink_modes = modes;
            s.sink_bug = sink_bug;
        });
    let plan = vec![Scheduled {
        at: Duration::from_millis(21_859),
        fault: Fault::CrashWorker {
            worker: 1,
            down: Duration::from_millis(7_882),
        },
    }];
    let report = scenario.run_exact(SEED, plan).expect("the simulation runs");
    assert!(
        report.coverage.contains_key(&Event::WorkerCrashed),
        "{}",
        report.summary()
    );
    report
}

#[test]
fn a_sink_writing_in_put_writes_records_again_after_a_crash() {
    let report = crash_once(&[SinkMode::WriteInPut], "none");
    assert!(report.passed(), "{}", report.to_yaml());
    assert_eq!(report.guarantee, Guarantee::AtLeastOnce);
    assert!(report.records.sink_duplicates > 0, "{}", report.summary());
}

#[test]
fn a_sink_keeping_its_offsets_in_the_destination_writes_each_record_once() {
    let report = crash_once(&[SinkMode::OffsetsInDestination], "none");
    assert_eq!(report.guarantee, Guarantee::ExactlyOnceSink);
    assert!(report.passed(), "{}", report.to_yaml());
    assert_eq!(report.records.sink_duplicates, 0);
    assert!(report.records.skipped_by_sink > 0, "{}", report.summary());
    assert_eq!(
        report.records.delivered + report.records.skipped_by_sink,
        report.records.in_kafka
    );
    assert!(
        report.coverage.contains_key(&Event::RewindApplied),
        "{}",
        report.to_yaml()
    );
}

#[test]
fn a_sink_whose_rewind_is_skipped_writes_duplicates() {
    let report = crash_once(&[SinkMode::OffsetsInDestination], "skip-rewind");
    let kinds: BTreeSet<AnomalyKind> = report.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([AnomalyKind::Duplicate]),
        "{}",
        report.to_yaml()
    );
    assert!(!report.coverage.contains_key(&Event::RewindApplied));
}
