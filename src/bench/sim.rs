//! `sluice bench sim`: how fast the deterministic simulation runs, scenario by scenario, on one core
//! (a simulation is one thread): seeds per minute and simulated seconds per wall second, medians of
//! several rounds over the same seeds, against the targets (the `pipeline` scenario at 1,000 seeds per
//! minute and 1,000 times real time, every other scenario within 2x of that), and, as a baseline run
//! in the same process, `pipeline` on one broker instead of three.

use std::time::{Duration, Instant};

use sluice_sim::builtin;
use sluice_sim::kit::SimTest;

use super::harness::median;
use super::history::{record, verdict, Entry, HistoryArgs};
use super::BenchError;

/// Arguments of `sluice bench sim`.
#[derive(clap::Args)]
pub struct Args {
    /// Seeds per round, 1 to N.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Rounds over the same seeds; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure only this scenario (see `sluice sim --list`); default: every one.
    #[arg(long)]
    scenario: Option<String>,
}

/// The standard scenario and its targets.
const STANDARD: &str = "pipeline";
const SEEDS_PER_MINUTE_TARGET: f64 = 1000.0;
const SIMULATED_PER_WALL_TARGET: f64 = 1000.0;
/// How far below the standard scenario's targets the other scenarios may be.
const OTHERS_WITHIN: f64 = 2.0;

/// One round over the seeds.
struct Round {
    wall: Duration,
    simulated: Duration,
}

/// A scenario's medians.
struct Speed {
    seeds_per_minute: f64,
    simulated_per_wall: f64,
}

pub fn run(args: Args, history: &HistoryArgs) -> Result<(), BenchError> {
    if args.seeds == 0 || args.rounds == 0 {
        return Err(BenchError::Failed(
            "--seeds and --rounds must be positive".into(),
        ));
    }
    let tests: Vec<SimTest> = match &args.scenario {
        Some(name) => vec![builtin::scenario(name).ok_or_else(|| {
            BenchError::Failed(format!(
                "unknown scenario {name:?}; known: {}",
                builtin::names().join(", ")
            ))
        })?],
        None => builtin::scenarios(),
    };
    println!(
        "sluice bench sim: seeds 1..{}, {} rounds, one core",
        args.seeds, args.rounds
    );
    let mut entry = Entry::new(
        "sim",
        &[
            ("seeds", args.seeds.to_string()),
            ("rounds", args.rounds.to_string()),
            (
                "scenario",
                args.scenario.clone().unwrap_or_else(|| "all".to_owned()),
            ),
        ],
    );
    let mut missed = Vec::new();
    for test in &tests {
        let speed = measure(test, &args)?;
        let name = test.name();
        let within = if name == STANDARD { 1.0 } else { OTHERS_WITHIN };
        let (seeds_target, simulated_target) = (
            SEEDS_PER_MINUTE_TARGET / within,
            SIMULATED_PER_WALL_TARGET / within,
        );
        println!(
            "{name:<22} {:>6.0} seeds/min (target {seeds_target:.0}: {:.2}x)  {:>6.0} simulated s per wall s (target {simulated_target:.0}: {:.2}x)",
            speed.seeds_per_minute,
            speed.seeds_per_minute / seeds_target,
            speed.simulated_per_wall,
            speed.simulated_per_wall / simulated_target,
        );
        entry.speed(format!("{name}_seeds_per_minute"), speed.seeds_per_minute);
        entry.speed(
            format!("{name}_simulated_per_wall"),
            speed.simulated_per_wall,
        );
        if speed.seeds_per_minute < seeds_target || speed.simulated_per_wall < simulated_target {
            missed.push(name);
        }
        if name == STANDARD {
            let one_broker = test.clone().with_scenario(|s| s.brokers = 1);
            let baseline = measure(&one_broker, &args)?;
            println!(
                "{:<22} {:>6.0} seeds/min, {:>6.0} simulated s per wall s: three brokers run at {:.2}x of one",
                "  (baseline: 1 broker)",
                baseline.seeds_per_minute,
                baseline.simulated_per_wall,
                speed.seeds_per_minute / baseline.seeds_per_minute,
            );
        }
    }
    record(history, &entry)?;
    verdict(&missed)
}

/// Runs the seeds `args.rounds` times; the medians of the rounds.
fn measure(test: &SimTest, args: &Args) -> Result<Speed, BenchError> {
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        let mut simulated = Duration::ZERO;
        for seed in 1..=args.seeds {
            let report = test
                .run_seed(seed)
                .map_err(|e| BenchError::Failed(format!("{} seed {seed}: {e}", test.name())))?;
            simulated += Duration::from_millis(report.simulated_ms);
        }
        rounds.push(Round {
            wall: started.elapsed(),
            simulated,
        });
    }
    let seeds = args.seeds as f64;
    Ok(Speed {
        seeds_per_minute: median(rounds.iter().map(|r| seeds * 60.0 / r.wall.as_secs_f64())),
        simulated_per_wall: median(
            rounds
                .iter()
                .map(|r| r.simulated.as_secs_f64() / r.wall.as_secs_f64()),
        ),
    })
}
