//! How fast the simulation runs: the standard scenario (`pipeline`: 3 workers, 8 partitions, 10,000 records,
//! 60 simulated seconds of faults and then the drain) under a range of seeds, one after another on one core.
//! Prints the median wall time per seed, seeds per minute and simulated seconds per wall second against the
//! targets (60 seeds per minute, 100 simulated seconds per wall second), and against a baseline measured
//! in the same process: the same scenario on one broker.
//!
//! `cargo bench -p sluice-sim` (`SLUICE_BENCH_SEEDS=<n>` to change the number of seeds, 30 by default).

use std::time::{Duration, Instant};

use sluice_sim::builtin;
use sluice_sim::kit::SimTest;

const SEEDS_PER_MINUTE_TARGET: f64 = 60.0;
const SIMULATED_PER_WALL_TARGET: f64 = 100.0;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// One pass over the seeds: median wall seconds per seed, median simulated seconds per wall second,
/// total wall and simulated time.
#[allow(clippy::disallowed_methods)] // a benchmark measures the wall clock, outside any simulation
fn measure(test: &SimTest, seeds: u64) -> (f64, f64, Duration, Duration) {
    let mut walls = Vec::new();
    let mut rates = Vec::new();
    let mut simulated_total = Duration::ZERO;
    let started = Instant::now();
    for seed in 1..=seeds {
        let start = Instant::now();
        let report = test.run_seed(seed).expect("the simulation runs");
        let wall = start.elapsed();
        let simulated = Duration::from_millis(report.simulated_ms);
        simulated_total += simulated;
        walls.push(wall.as_secs_f64());
        rates.push(simulated.as_secs_f64() / wall.as_secs_f64());
        assert!(report.passed(), "{}", report.summary());
    }
    (
        median(walls),
        median(rates),
        started.elapsed(),
        simulated_total,
    )
}

fn main() {
    let seeds: u64 = std::env::var("SLUICE_BENCH_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let test = builtin::scenario("pipeline").expect("the standard scenario exists");
    // The baseline, in the same process: the same scenario on one broker, as the simulation had before
    // it had several.
    let one_broker = test.clone().with_scenario(|s| s.brokers = 1);
    let (baseline_per_seed, baseline_rate, _, _) = measure(&one_broker, seeds);
    let (per_seed, simulated_per_wall, total, simulated_total) = measure(&test, seeds);
    let scenario = test.scenario();
    let seeds_per_minute = 60.0 / per_seed;
    println!(
        "standard scenario ({}): {} workers, {} brokers, {} partitions, {} records, {} seeds",
        scenario.name,
        scenario.workers,
        scenario.brokers,
        scenario.partitions,
        scenario.total_records(),
        seeds
    );
    println!(
        "median wall time per seed: {:.0} ms (all seeds: {:.1} s wall for {:.0} simulated s)",
        per_seed * 1000.0,
        total.as_secs_f64(),
        simulated_total.as_secs_f64()
    );
    println!(
        "seeds per minute: {seeds_per_minute:.0} (target {SEEDS_PER_MINUTE_TARGET:.0}: {:.1}x; one broker: {:.0}, {:.2}x of it)",
        seeds_per_minute / SEEDS_PER_MINUTE_TARGET,
        60.0 / baseline_per_seed,
        baseline_per_seed / per_seed
    );
    println!(
        "simulated seconds per wall second (median): {simulated_per_wall:.0} (target {SIMULATED_PER_WALL_TARGET:.0}: {:.1}x; one broker: {baseline_rate:.0}, {:.2}x of it)",
        simulated_per_wall / SIMULATED_PER_WALL_TARGET,
        simulated_per_wall / baseline_rate
    );
}
