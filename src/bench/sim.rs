//! `sluice bench sim`: how fast the deterministic simulation runs, scenario by scenario, on one core
//! (a simulation is one thread): seeds per minute and simulated seconds per wall second, medians of
//! several rounds over the same seeds, against the targets (the `pipeline` scenario at 1,000 seeds per
//! minute and 1,000 times real time, every other scenario within 2x of that), and, as baselines run
//! in the same process, `pipeline` on one broker instead of three, and turmoil's floor: as many idle
//! hosts stepped as many times, the most any scenario of `pipeline`'s shape can reach on the machine.

use std::time::{Duration, Instant};

use sluice_sim::builtin;
use sluice_sim::kit::SimTest;
use sluice_sim::scenario::Scenario;
use sluice_sim::turmoil;

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
    /// The simulated time of a seed, on average (the same in every round: the runs are deterministic).
    simulated_per_seed: Duration,
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
            let scenario = test.scenario();
            let floor = turmoil_floor(scenario, speed.simulated_per_seed, &args)?;
            println!(
                "{:<22} {:>6.0} seeds/min: {} idle hosts stepped {} times each at its {} ms tick; {name} runs at {:.2}x of it",
                "  (floor: turmoil)",
                floor,
                scenario.hosts(),
                steps(scenario, speed.simulated_per_seed),
                scenario.tick.as_millis(),
                speed.seeds_per_minute / floor,
            );
            entry.speed(format!("{name}_floor_seeds_per_minute"), floor);
            if floor < seeds_target {
                println!(
                    "{:<22} the target is above turmoil's floor here: no scenario with {name}'s hosts, tick and simulated time can meet it on this machine",
                    ""
                );
            }
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
    let simulated_per_seed = rounds
        .first()
        .map_or(Duration::ZERO, |round| round.simulated.div_f64(seeds));
    Ok(Speed {
        simulated_per_seed,
        seeds_per_minute: median(rounds.iter().map(|r| seeds * 60.0 / r.wall.as_secs_f64())),
        simulated_per_wall: median(
            rounds
                .iter()
                .map(|r| r.simulated.as_secs_f64() / r.wall.as_secs_f64()),
        ),
    })
}

/// How many steps turmoil takes for `simulated` at the scenario's tick.
fn steps(scenario: &Scenario, simulated: Duration) -> u128 {
    (simulated.as_nanos() / scenario.tick.as_nanos().max(1)).max(1)
}

/// turmoil's own cost of a scenario's shape, in seeds per minute (medians of the rounds): as many
/// hosts, each idle (its software waits forever), stepped as many times at the same tick. turmoil steps
/// every host at every tick, busy or not (a `block_on` of each host's runtime, its clock, its links), so
/// no scenario of that shape runs faster on this machine, however little its hosts do.
fn turmoil_floor(scenario: &Scenario, simulated: Duration, args: &Args) -> Result<f64, BenchError> {
    let steps = steps(scenario, simulated);
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        for seed in 1..=args.seeds {
            // Hosts alone (no client) never end a simulation, nor fail it by running too long.
            let mut sim = turmoil::Builder::new()
                .rng_seed(seed)
                .tick_duration(scenario.tick)
                .build();
            for host in 0..scenario.hosts() {
                sim.host(
                    format!("idle-{host}"),
                    std::future::pending::<turmoil::Result>,
                );
            }
            for _ in 0..steps {
                sim.step()
                    .map_err(|e| BenchError::Failed(format!("turmoil's floor: {e}")))?;
            }
        }
        rounds.push(args.seeds as f64 * 60.0 / started.elapsed().as_secs_f64());
    }
    Ok(median(rounds.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_steps_the_scenarios_hosts_for_its_simulated_time() {
        let scenario = Scenario {
            brokers: 1,
            workers: 1,
            ..Scenario::base("floor")
        };
        assert_eq!(steps(&scenario, Duration::from_secs(60)), 12_000);
        assert_eq!(steps(&scenario, Duration::ZERO), 1);
        let args = Args {
            seeds: 2,
            rounds: 1,
            scenario: None,
        };
        let floor = turmoil_floor(&scenario, Duration::from_millis(500), &args).unwrap();
        assert!(floor.is_finite() && floor > 0.0, "{floor} seeds per minute");
    }
}
