//! `sluice sim`: runs the deterministic simulation from the binary, one line per seed, and the exact command
//! that replays a seed that found an anomaly.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::builder::PossibleValuesParser;
use sluice_core::api::CommitRecordReads;
use sluice_sim::builtin;
use sluice_sim::coverage::Event;
use sluice_sim::kit::SimTest;
use sluice_sim::scenario::Workload;
use sluice_sim::shards::{run_sharded, Flow, SeedResult, Shard};
use sluice_sim::timeline::html;
use sluice_sim::workload::{reads_name, reads_named, SinkMode, ALL_READS};

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
    /// Run the seeds in this many processes at once (each seed alone in its process, as with one);
    /// results are printed in seed order. Default: the machine's cores.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Stop at the first seed that finds an anomaly.
    #[arg(long)]
    fail_fast: bool,
    /// Run only this shard of the seeds and write each seed's result as a line for the process that
    /// started this one (`--jobs` starts such processes).
    #[arg(long, hide = true, value_name = "K/N")]
    shard: Option<Shard>,
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
    /// Run the SequenceSource with a `commit_record` that reads this instead of what each seed picks:
    /// everything, no-data or nothing (the runtime then keeps less of each record in flight).
    #[arg(long, value_parser = PossibleValuesParser::new(ALL_READS.map(reads_name)))]
    reads: Option<String>,
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
    let name = args.scenario.clone().unwrap_or_default();
    let test = builtin::scenario(&name).ok_or_else(|| {
        Failure::Message(format!(
            "unknown scenario {name:?}; known: {}",
            builtin::names().join(", ")
        ))
    })?;
    let scenario = test.scenario();
    if scenario.workload == Workload::Files
        && (args.source_bug.is_some()
            || args.sink_bug.is_some()
            || args.sink_mode.is_some()
            || args.reads.is_some())
    {
        return Err(Failure::Message(format!(
            "--source-bug, --sink-bug, --sink-mode and --reads concern the SequenceSource and StoreSink connectors, which scenario {:?} does not run",
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
    if let Some(reads) = &args.reads {
        planted.push_str(&format!(" --reads {reads}"));
    }
    if let Some(bug) = &args.worker_bug {
        planted.push_str(&format!(" --worker-bug {bug}"));
    }
    if let Some(bug) = &args.broker_bug {
        planted.push_str(&format!(" --broker-bug {bug}"));
    }
    let reads = match args.reads.as_deref() {
        Some(name) => Some(
            reads_named(name)
                .ok_or_else(|| Failure::Message(format!("unknown --reads {name:?}")))?,
        ),
        None => None,
    };
    let test = test.with_scenario(|scenario| {
        if let Some(bug) = &args.source_bug {
            scenario.source_bug = bug_name(bug);
            // A task that reads everything of its records: `early-offsets` labels records with later
            // offsets, and a task that knew its records by their offsets alone would be told of the wrong ones.
            scenario.commit_record_reads = &[CommitRecordReads::Everything];
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
        if let Some(reads) = reads {
            scenario.commit_record_reads = reads;
        }
        if let Some(bug) = &args.worker_bug {
            scenario.worker_bug = bug_name(bug);
        }
        if let Some(bug) = &args.broker_bug {
            scenario.broker_bug = bug_name(bug);
        }
    });
    let one_seed = args.seeds.is_none();
    let seeds = match (args.seed, args.seeds.clone()) {
        (Some(seed), _) => seed..=seed,
        (None, Some(range)) => range,
        (None, None) => 1..=1,
    };
    let run = Run {
        test: &test,
        planted: &planted,
        one_seed,
        args: &args,
    };
    if let Some(shard) = args.shard {
        // A child of a parallel sweep: its results go to the parent, which prints them.
        for seed in shard.seeds(seeds) {
            let result = run.seed(seed)?;
            let stop = args.fail_fast && !result.passed;
            writeln!(out, "{}", result.to_line())?;
            out.flush()?;
            if stop {
                break;
            }
        }
        return Ok(());
    }
    let jobs = args.jobs.unwrap_or_else(cores).min(seed_count(&seeds));
    let mut sweep = Tally::default();
    if jobs <= 1 {
        for seed in seeds {
            let result = run.seed(seed)?;
            if sweep.add(result, out, args.fail_fast)? == Flow::Stop {
                break;
            }
        }
    } else {
        let mut written = Ok(());
        run_sharded(seeds, jobs as usize, child_command, |result| {
            match sweep.add(result, out, args.fail_fast) {
                Ok(flow) => flow,
                Err(e) => {
                    written = Err(e);
                    Flow::Stop
                }
            }
        })
        .map_err(|e| Failure::Message(e.to_string()))?;
        written?;
        eprintln!("{} seed(s) run in {jobs} processes", sweep.runs);
    }
    if args.coverage {
        writeln!(
            out,
            "coverage: seeds that reached each event, of {} (* headline events of {})",
            sweep.runs,
            test.name()
        )?;
        for event in Event::ALL {
            let mark = if test.required().contains(&event) {
                '*'
            } else {
                ' '
            };
            let count = sweep.reached.get(&event).copied().unwrap_or(0);
            writeln!(out, "{mark} {:<30} {count}", event.as_str())?;
        }
    }
    if sweep.failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Message(format!(
            "{} seed(s) found anomalies: {:?}",
            sweep.failed.len(),
            sweep.failed
        )))
    }
}

/// One seed's run, as this command was asked for it.
struct Run<'a> {
    test: &'a SimTest,
    /// The planted bugs' flags, for the replay command.
    planted: &'a str,
    one_seed: bool,
    args: &'a Args,
}

impl Run<'_> {
    /// Runs `seed` and says what it prints: its line, and its report, trace, anomalies, replay
    /// command and timeline as asked.
    fn seed(&self, seed: u64) -> Result<SeedResult, Failure> {
        let report = self
            .test
            .run_seed(seed)
            .map_err(|e| Failure::Message(format!("seed {seed}: {e}")))?;
        let mut output = format!("{}\n", report.summary());
        if self.args.report {
            output.push_str(&report.to_yaml());
        }
        if self.args.trace {
            for line in &report.trace {
                output.push_str(&format!("  {line}\n"));
            }
        }
        if !report.passed() {
            for anomaly in &report.anomalies {
                output.push_str(&format!(
                    "  {}: {}\n",
                    anomaly.kind.as_str(),
                    anomaly.detail
                ));
            }
            output.push_str(&format!(
                "  replay: sluice sim --scenario {} --seed {seed}{} --report\n",
                self.test.name(),
                self.planted
            ));
        }
        if let Some(file) = &self.args.timeline {
            if self.one_seed || !report.passed() {
                let path = timeline_path(file, seed, self.one_seed);
                std::fs::write(&path, html::render(&report.timeline)).map_err(|e| {
                    Failure::Message(format!(
                        "cannot write the timeline to {}: {e}",
                        path.display()
                    ))
                })?;
                output.push_str(&format!("  timeline: {}\n", path.display()));
            }
        }
        Ok(SeedResult {
            seed,
            passed: report.passed(),
            events: report.coverage.keys().copied().collect(),
            faults: report.fault_kinds().into_iter().collect(),
            output,
        })
    }
}

/// What a sweep printed and found so far.
#[derive(Default)]
struct Tally {
    runs: u64,
    reached: BTreeMap<Event, u64>,
    failed: Vec<u64>,
}

impl Tally {
    /// Prints a seed's result and counts it; says whether the sweep goes on.
    fn add(
        &mut self,
        result: SeedResult,
        out: &mut impl Write,
        fail_fast: bool,
    ) -> Result<Flow, Failure> {
        out.write_all(result.output.as_bytes())?;
        out.flush()?;
        self.runs += 1;
        for event in result.events {
            *self.reached.entry(event).or_insert(0) += 1;
        }
        if result.passed {
            return Ok(Flow::Continue);
        }
        self.failed.push(result.seed);
        Ok(if fail_fast {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// How many seeds a range holds (saturating).
fn seed_count(seeds: &RangeInclusive<u64>) -> u64 {
    (seeds.end() - seeds.start()).saturating_add(1)
}

/// The machine's cores (the processes a sweep runs at once unless `--jobs` says).
fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// This command again, for one shard of the seeds: the same arguments, without `--jobs`.
fn child_command(shard: Shard) -> Command {
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sluice"));
    let mut command = Command::new(program);
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--jobs" {
            args.next();
            continue;
        }
        if arg.to_string_lossy().starts_with("--jobs=") {
            continue;
        }
        command.arg(arg);
    }
    command.arg("--shard").arg(shard.to_string());
    command
}
