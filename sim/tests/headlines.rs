//! Coverage that cannot be vacuous: each scenario's CI seeds reach every one of its headline events (the
//! runtime paths its faults exist to exercise). A scenario whose seeds all pass without, say, a crash
//! proves nothing about crashes; this fails when a change to the faults, the planning or the runtime stops
//! the seeds from getting there.

use std::collections::BTreeSet;

use sluice_sim::builtin;
use sluice_sim::coverage::Event;

/// Seeds 1 to this many are the CI seeds; each scenario runs them until its headline events are reached.
const CI_SEEDS: u64 = 20;

fn check(name: &str) {
    let scenario = builtin::scenario(name).expect("a known scenario");
    let mut reached: BTreeSet<Event> = BTreeSet::new();
    for seed in 1..=CI_SEEDS {
        if scenario.required().iter().all(|e| reached.contains(e)) {
            return;
        }
        let report = scenario.run_seed(seed).expect("the simulation runs");
        assert!(
            report.passed(),
            "{}\nreplay: sluice sim --scenario {name} --seed {seed} --report",
            report.summary()
        );
        reached.extend(report.coverage.keys().copied());
    }
    let missing: Vec<&str> = scenario
        .required()
        .iter()
        .filter(|e| !reached.contains(e))
        .map(|e| e.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: seeds 1..={CI_SEEDS} never reached the headline events {missing:?} (see: sluice sim --scenario {name} --seeds 1..{CI_SEEDS} --coverage)"
    );
}

#[test]
fn file_to_file() {
    check("file-to-file");
}

#[test]
fn sink_group_rebalance() {
    check("sink-group-rebalance");
}

#[test]
fn slow_flush() {
    check("slow-flush");
}

#[test]
fn dead_letters() {
    check("dead-letters");
}

#[test]
fn crash_restart_storm() {
    check("crash-restart-storm");
}

#[test]
fn exactly_once_source() {
    check("exactly-once-source");
}

#[test]
fn retention() {
    check("retention");
}

#[test]
fn operator_calls() {
    check("operator-calls");
}

#[test]
fn every_scenario_with_faults_beyond_latency_has_headline_events() {
    for scenario in builtin::scenarios() {
        let only_latency = scenario
            .scenario()
            .faults
            .iter()
            .all(|kind| *kind == sluice_sim::faults::FaultKind::Latency);
        assert!(
            only_latency || !scenario.required().is_empty(),
            "{} injects faults but names no headline event",
            scenario.name()
        );
    }
}
