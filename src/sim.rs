//! `sluice sim`: runs the deterministic simulation from the binary, one line per seed, and the exact command
//! that replays a seed that found an anomaly.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use sluice_sim::builtin;
use sluice_sim::coverage::Event;
use sluice_sim::scenario::Workload;
use sluice_sim::timeline::html;
use sluice_sim::workload::SinkMode;

#[derive(clap::Args)]
pub struct Args {
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// The scenario to run (see --list).
    #[arg(long, required_unless_present = "list")]
    scenario: Option<String>,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run the seeds A through B, both included (A..B).
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<RangeInclusive<u64>>,
    /// Print each run's full YAML report after its line.
    #[arg(long)]
    report: bool,
    /// Print each run's trace (every fault, group change, commit and write, with simulated times).
    #[arg(long)]
    trace: bool,
    /// Write the run's timeline as a self-contained HTML page to FILE: one lane per host, group and
    /// group member, with faults, rebalances, commits, flushes and anomalies on simulated time. With
    /// --seeds, each seed that found anomalies gets its own page, FILE with `-seed-N` before its
    /// extension.
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// After the runs, print how many seeds reached each runtime event (headline events marked `*`).
    #[arg(long)]
    coverage: bool,
    /// Run the StoreSink in this mode instead of the one each seed picks: buffer, write-in-put or
    /// offsets-in-destination (with it, a record written twice to the destination is an anomaly).
    #[arg(long, value_parser = ["buffer", "write-in-put", "offsets-in-destination"])]
    sink_mode: Option<String>,
    /// Plant a bug in the workload's source connector to watch the oracle catch it: skip-records,
    /// early-offsets or restart-from-beginning.
    #[arg(long, value_parser = ["skip-records", "early-offsets", "restart-from-beginning"])]
    source_bug: Option<String>,
    /// Plant a bug in the workload's sink connector: commit-before-flush, pause-partition, reverse-flush,
    /// write-twice, garble-values, rewind-to-start (in buffer mode unless --sink-mode says otherwise) or
    /// skip-rewind (in offsets-in-destination mode).
    #[arg(long, value_parser = ["commit-before-flush", "pause-partition", "reverse-flush", "write-twice", "garble-values", "skip-rewind", "rewind-to-start"])]
    sink_bug: Option<String>,
    /// Misconfigure the workers of an exactly-once scenario: distinct-group-ids gives each worker its own
    /// group.id, so a moved task's old instance is never fenced (the oracle reports zombie-write).
    #[arg(long, value_parser = ["distinct-group-ids"])]
    worker_bug: Option<String>,
    /// Plant a bug in the simulated broker: accept-stale-commits makes the group coordinator accept offset
    /// commits from members of older generations (the oracle reports stale-commit-accepted).
    #[arg(long, value_parser = ["accept-stale-commits"])]
    broker_bug: Option<String>,
}

/// A planted bug's name for the lifetime a scenario needs (clap has checked it is one of these).
fn bug_name(bug: &str) -> &'static str {
    [
        "skip-records",
        "early-offsets",
        "restart-from-beginning",
        "commit-before-flush",
        "pause-partition",
        "reverse-flush",
        "write-twice",
        "garble-values",
        "skip-rewind",
        "rewind-to-start",
        "distinct-group-ids",
        "accept-stale-commits",
    ]
    .into_iter()
    .find(|known| *known == bug)
    .unwrap_or("none")
}

/// The one sink mode a run uses (clap has checked it is a mode's name).
fn sink_modes(mode: &str) -> &'static [SinkMode] {
    match SinkMode::parse(mode) {
        Some(SinkMode::WriteInPut) => &[SinkMode::WriteInPut],
        Some(SinkMode::OffsetsInDestination) => &[SinkMode::OffsetsInDestination],
        Some(SinkMode::Buffer) | None => &[SinkMode::Buffer],
    }
}

/// Where seed `seed`'s timeline goes: `file` itself for a single seed, `file` with `-seed-N` before its
/// extension in a sweep.
fn timeline_path(file: &Path, seed: u64, one_seed: bool) -> PathBuf {
    if one_seed {
        return file.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "timeline".to_owned());
    let name = match file.extension() {
        Some(extension) => format!("{stem}-seed-{seed}.{}", extension.to_string_lossy()),
        None => format!("{stem}-seed-{seed}"),
    };
    file.with_file_name(name)
}

fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range like 1..200"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not a seed"))?;
    let b: u64 = b
        .trim()
        .trim_start_matches('=')
        .parse()
        .map_err(|_| format!("{b:?} is not a seed"))?;
    if a > b {
        return Err(format!("the range {text:?} is empty"));
    }
    Ok(a..=b)
}

pub fn run_command(args: Args) -> Result<(), String> {
    match run_seeds(args, &mut io::stdout().lock()) {
        // The reader went away (`| head`): nothing left to say.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(Failure::Output(e)) => Err(format!("cannot write to stdout: {e}")),
        Err(Failure::Message(message)) => Err(message),
        Ok(()) => Ok(()),
    }
}

enum Failure {
    Output(io::Error),
    Message(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn run_seeds(args: Args, out: &mut impl Write) -> Result<(), Failure> {
    if args.list {
        for test in builtin::scenarios() {
            writeln!(out, "{:<22} {}", test.name(), test.scenario().about)?;
        }
        return Ok(());
    }
    let name = args.scenario.unwrap_or_default();
    let test = builtin::scenario(&name).ok_or_else(|| {
        Failure::Message(format!(
            "unknown scenario {name:?}; known: {}",
            builtin::names().join(", ")
        ))
    })?;
    let scenario = test.scenario();
    if scenario.workload == Workload::Files
        && (args.source_bug.is_some() || args.sink_bug.is_some() || args.sink_mode.is_some())
    {
        return Err(Failure::Message(format!(
            "--source-bug, --sink-bug and --sink-mode concern the SequenceSource and StoreSink connectors, which scenario {:?} does not run",
            scenario.name
        )));
    }
    if !scenario.exactly_once && args.worker_bug.is_some() {
        return Err(Failure::Message(format!(
            "--worker-bug misconfigures exactly-once source support, which scenario {:?} does not use",
            scenario.name
        )));
    }
    let mut planted = String::new();
    if let Some(bug) = &args.source_bug {
        planted.push_str(&format!(" --source-bug {bug}"));
    }
    if let Some(bug) = &args.sink_bug {
        planted.push_str(&format!(" --sink-bug {bug}"));
    }
    if let Some(mode) = &args.sink_mode {
        planted.push_str(&format!(" --sink-mode {mode}"));
    }
    if let Some(bug) = &args.worker_bug {
        planted.push_str(&format!(" --worker-bug {bug}"));
    }
    if let Some(bug) = &args.broker_bug {
        planted.push_str(&format!(" --broker-bug {bug}"));
    }
    let test = test.with_scenario(|scenario| {
        if let Some(bug) = &args.source_bug {
            scenario.source_bug = bug_name(bug);
        }
        if let Some(bug) = &args.sink_bug {
            scenario.sink_bug = bug_name(bug);
            // Each planted bug has the mode it is written for (commit-before-flush approves the buffer;
            // skip-rewind leaves out the rewind of the sink that keeps its offsets).
            scenario.sink_modes = sink_modes(match bug.as_str() {
                "skip-rewind" => "offsets-in-destination",
                _ => "buffer",
            });
        }
        if let Some(mode) = &args.sink_mode {
            scenario.sink_modes = sink_modes(mode);
        }
        if let Some(bug) = &args.worker_bug {
            scenario.worker_bug = bug_name(bug);
        }
        if let Some(bug) = &args.broker_bug {
            scenario.broker_bug = bug_name(bug);
        }
    });
    let one_seed = args.seeds.is_none();
    let seeds = match (args.seed, args.seeds) {
        (Some(seed), _) => seed..=seed,
        (None, Some(range)) => range,
        (None, None) => 1..=1,
    };
    let mut failed = Vec::new();
    let mut reached: BTreeMap<Event, u64> = BTreeMap::new();
    let mut runs = 0;
    for seed in seeds {
        let report = test
            .run_seed(seed)
            .map_err(|e| Failure::Message(format!("seed {seed}: {e}")))?;
        writeln!(out, "{}", report.summary())?;
        runs += 1;
        for event in report.coverage.keys() {
            *reached.entry(*event).or_insert(0) += 1;
        }
        if args.report {
            write!(out, "{}", report.to_yaml())?;
        }
        if args.trace {
            for line in &report.trace {
                writeln!(out, "  {line}")?;
            }
        }
        if !report.passed() {
            for anomaly in &report.anomalies {
                writeln!(out, "  {}: {}", anomaly.kind.as_str(), anomaly.detail)?;
            }
            writeln!(
                out,
                "  replay: sluice sim --scenario {} --seed {seed}{planted} --report",
                test.name()
            )?;
            failed.push(seed);
        }
        if let Some(file) = &args.timeline {
            if one_seed || !report.passed() {
                let path = timeline_path(file, seed, one_seed);
                std::fs::write(&path, html::render(&report.timeline)).map_err(|e| {
                    Failure::Message(format!(
                        "cannot write the timeline to {}: {e}",
                        path.display()
                    ))
                })?;
                writeln!(out, "  timeline: {}", path.display())?;
            }
        }
        out.flush()?;
    }
    if args.coverage {
        writeln!(
            out,
            "coverage: seeds that reached each event, of {runs} (* headline events of {})",
            test.name()
        )?;
        for event in Event::ALL {
            let mark = if test.required().contains(&event) {
                '*'
            } else {
                ' '
            };
            let count = reached.get(&event).copied().unwrap_or(0);
            writeln!(out, "{mark} {:<30} {count}", event.as_str())?;
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "{} seed(s) found anomalies: {failed:?}",
            failed.len()
        )))
    }
}
