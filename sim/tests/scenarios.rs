//! Every scenario under a fixed set of seeds: no anomaly, and a report that matches its snapshot.
//!
//! `SLUICE_SEED=<n>` replays one seed instead, `SLUICE_SEEDS=<n>` runs seeds 1 to n (neither compares
//! snapshots).

use sluice_sim::builtin;

/// The seeds every `cargo test` runs, with their reports snapshotted.
const FIXED_SEEDS: [u64; 3] = [1, 2, 3];

fn seeds() -> (Vec<u64>, bool) {
    if let Ok(seed) = std::env::var("SLUICE_SEED") {
        let seed = seed.trim().parse().expect("SLUICE_SEED is a number");
        return (vec![seed], false);
    }
    if let Ok(count) = std::env::var("SLUICE_SEEDS") {
        let count: u64 = count.trim().parse().expect("SLUICE_SEEDS is a number");
        return ((1..=count).collect(), false);
    }
    (FIXED_SEEDS.to_vec(), true)
}

fn check(name: &str) {
    let scenario = builtin::scenario(name).expect("a known scenario");
    let (seeds, snapshot) = seeds();
    for seed in seeds {
        let report = scenario.run_seed(seed).expect("the simulation runs");
        assert!(
            report.passed(),
            "{}\nreplay: SLUICE_SEED={seed} cargo test -p sluice-sim --test scenarios {}\n{}",
            report.summary(),
            name.replace('-', "_"),
            report.to_yaml()
        );
        if snapshot {
            insta::assert_yaml_snapshot!(format!("{name}-seed{seed}"), report, {
                ".wall_ms" => "[wall-clock]",
            });
        }
    }
}

#[test]
fn pipeline() {
    check("pipeline");
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
fn file_to_file() {
    check("file-to-file");
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
