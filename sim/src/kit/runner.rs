//! The runner for `cargo test`: a [`SimTest`] runs a connector under test over many seeds, each with the
//! faults and choices it draws, and fails with what a person needs to act on a failure: the seed, the
//! anomalies with the records involved, the fault plan shrunk to the faults that matter, and the command
//! that replays it, and writes the shrunk run's timeline as an HTML page ([`crate::timeline`]).
//!
//! Environment:
//! - `SLUICE_SEED=N` runs seed N only; `SLUICE_SEEDS=N` runs seeds 1 to N, `SLUICE_SEEDS=A..B` seeds A to
//!   B (inclusive), in place of the test's own count;
//! - `SLUICE_JOBS=N` runs the seeds in N processes at once (the test binary again, for one shard of the
//!   seeds each; by default the machine's cores when `SLUICE_SEED` or `SLUICE_SEEDS` is set, else one,
//!   as `cargo test` runs tests side by side already); results are taken in seed order, and the first
//!   failing seed is run again here to be shrunk;
//! - `SLUICE_CHECK_DETERMINISM=1` runs each seed twice and fails if the two traces differ (in one
//!   process);
//! - `SLUICE_TIMELINE_DIR=DIR` puts failures' timelines in DIR (by default `target/<profile>/sluice-timelines/`).
//!
//! A failure's shrunk plan is saved in the crate's `sim-regressions/<test>.yaml` (as proptest keeps
//! `proptest-regressions/`), and every later run of the test replays the saved plans first: commit the
//! file, and the bug stays caught.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::destination::SinkUnderTest;
use super::shrink::{kinds, same_failure, shrink};
use super::source::SourceUnderTest;
use crate::coverage::Event;
use crate::faults::{FaultKind, Scheduled};
use crate::harness::{choose, run, run_planned, RunError};
use crate::oracle::Anomaly;
use crate::report::Report;
use crate::scenario::{Guarantee, Scenario, Workload};
use crate::shards::{run_sharded, Flow, SeedResult, Shard, ShardError};
use crate::timeline::html;

/// Seeds a test runs when neither it nor the environment says.
const DEFAULT_SEEDS: u64 = 20;

/// The faults a sink test draws from unless it says otherwise: every Kafka-side fault a sink task meets,
/// a `put` failing for good (the task restarted by `task.restart.policy=on-failure`), and crashes of its
/// external system.
pub const SINK_FAULTS: &[FaultKind] = &[
    FaultKind::CrashWorker,
    FaultKind::StopWorker,
    FaultKind::HoldNetwork,
    FaultKind::PartitionNetwork,
    FaultKind::RestartBroker,
    FaultKind::MoveCoordinators,
    FaultKind::StallFlush,
    FaultKind::StallPut,
    FaultKind::FailFlush,
    FaultKind::FailPut,
    FaultKind::CrashExternal,
    FaultKind::HoldExternal,
    FaultKind::SlowExternal,
    FaultKind::ErrorsExternal,
    FaultKind::Latency,
];

/// The faults a source test draws from unless it says otherwise: every Kafka-side fault a source task
/// meets (produce errors outlasting `delivery.timeout.ms` among them), and crashes of its external system.
pub const SOURCE_FAULTS: &[FaultKind] = &[
    FaultKind::CrashWorker,
    FaultKind::StopWorker,
    FaultKind::HoldNetwork,
    FaultKind::PartitionNetwork,
    FaultKind::RestartBroker,
    FaultKind::MoveLeaders,
    FaultKind::ProduceErrors,
    FaultKind::CrashExternal,
    FaultKind::HoldExternal,
    FaultKind::SlowExternal,
    FaultKind::ErrorsExternal,
    FaultKind::Latency,
];

/// The faults an exactly-once source test draws from ([`SimTest::exactly_once_source`]): the task moved
/// away from a worker that is cut off, workers crashing, stopping and losing the network, brokers
/// restarting, coordinators moving, and the external system crashing and answering errors.
pub const EXACTLY_ONCE_SOURCE_FAULTS: &[FaultKind] = &[
    FaultKind::TakeOver,
    FaultKind::CrashWorker,
    FaultKind::StopWorker,
    FaultKind::PartitionNetwork,
    FaultKind::RestartBroker,
    FaultKind::MoveCoordinators,
    FaultKind::CrashExternal,
    FaultKind::ErrorsExternal,
    FaultKind::Latency,
];

/// A simulation test of a connector: the scenario it runs in, the seeds, and what must happen.
#[derive(Debug, Clone)]
pub struct SimTest {
    scenario: Scenario,
    seeds: RangeInclusive<u64>,
    required: Vec<Event>,
    regressions: Option<PathBuf>,
    check_determinism: bool,
    /// Processes to run the seeds in, unless the environment says (`SLUICE_JOBS`).
    jobs: Option<usize>,
}

/// One saved failure: the seed (which fixes the run's other choices) and its shrunk fault plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// The seed: it fixes the scenario's other choices (assignor, ...) and the simulation's randomness.
    pub seed: u64,
    /// The faults, and when they strike.
    pub plan: Vec<Scheduled>,
}

/// A seed that failed, and what shrinking left of its plan.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The run as the seed drew it.
    pub report: Report,
    /// The shrunk plan, which fails in the same way.
    pub shrunk: Regression,
    /// The run of the shrunk plan.
    pub shrunk_report: Report,
    /// The command that runs the failing seed again.
    pub replay: String,
    /// The HTML timeline of the shrunk plan's run ([`crate::timeline`]), or why it could not be written.
    pub timeline: Result<PathBuf, String>,
}

/// What a sweep of seeds found.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Seeds run.
    pub seeds: u64,
    /// How many seeds reached each event.
    pub events: BTreeMap<Event, u64>,
    /// How many seeds drew each kind of fault.
    pub faults: BTreeMap<String, u64>,
    /// How many processes ran the seeds.
    pub processes: usize,
}

/// Why a test failed.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A seed failed; here it is, shrunk.
    #[error("{0}")]
    Failed(Box<Failure>),
    /// A plan saved in the regression file fails again.
    #[error("a saved regression ({file}, seed {seed}) fails again:\n{report}")]
    RegressionFails {
        /// The regression file.
        file: String,
        /// The saved seed.
        seed: u64,
        /// The failing run, for a person.
        report: String,
    },
    /// `SLUICE_CHECK_DETERMINISM=1`: a seed's second run differed from its first.
    #[error("seed {seed} is not deterministic: trace {first} then {second}; replay with {replay}")]
    NotDeterministic {
        /// The seed.
        seed: u64,
        /// The first run's trace hash.
        first: String,
        /// The second run's trace hash.
        second: String,
        /// The command that runs the seed again.
        replay: String,
    },
    /// No seed reached an event the test requires.
    #[error("no seed of {seeds} reached {}: the test never got where it was meant to, so its passing proves nothing\n{}", .missing.join(", "), render_sweep(.sweep))]
    NotReached {
        /// How many seeds ran.
        seeds: u64,
        /// The required events no seed reached.
        missing: Vec<&'static str>,
        /// What the seeds drew and reached.
        sweep: Sweep,
    },
    /// The regression file cannot be read or written.
    #[error("the regression file {file}: {reason}")]
    RegressionFile {
        /// The regression file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The simulation itself failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The processes of a parallel sweep failed.
    #[error("a sweep over several processes failed: {0}")]
    Shards(#[from] ShardError),
    /// `SLUICE_SEED`, `SLUICE_SEEDS` or `SLUICE_JOBS` makes no sense.
    #[error("{variable}={value:?}: {reason}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SimTest {
    /// A test of a sink connector: the kit's source feeds 1,200 records (4 streams of 300, spread over
    /// about 35 s) through a topic of 4 partitions to the sink on three workers, with faults from
    /// [`SINK_FAULTS`] for 40 simulated seconds, held to at least once. `name` names the test in reports
    /// and its regression file.
    pub fn sink(name: &'static str, under_test: SinkUnderTest) -> SimTest {
        SimTest::of(Scenario {
            about: "a connector author's sink under the test kit",
            partitions: 4,
            streams: 4,
            records_per_stream: 300,
            source_interval: Duration::from_millis(500),
            active: Duration::from_secs(40),
            faults: SINK_FAULTS,
            max_faults: 6,
            sink_modes: &[],
            sink_under_test: Some(under_test),
            ..Scenario::base(name)
        })
    }

    /// A test of a source connector: its system makes 1,200 records appear (4 streams of 300, one
    /// record of each stream every 100 ms), which the connector copies into the topic [`SimTest::topic`]
    /// names, on worker 0 of three; Sluice's own StoreSink takes them out of Kafka. Faults come from
    /// [`SOURCE_FAULTS`] for 40 simulated seconds, with `delivery.timeout.ms` at 15 s; the run is held to
    /// at least once.
    pub fn source(name: &'static str, under_test: SourceUnderTest) -> SimTest {
        SimTest::of(Scenario {
            about: "a connector author's source under the test kit",
            partitions: 4,
            streams: 4,
            records_per_stream: 300,
            source_interval: Duration::from_millis(100),
            active: Duration::from_secs(40),
            faults: SOURCE_FAULTS,
            max_faults: 6,
            delivery_timeout: Duration::from_secs(15),
            source_under_test: Some(under_test),
            ..Scenario::base(name)
        })
    }

    /// A test of Sluice's own runtime with the kit's own connectors on both sides: its numbered source
    /// (`SequenceSource`: 10,000 records from 8 streams, a poll every 100 ms, some records poison) into a
    /// topic of 8 partitions, and its `StoreSink` out of it, in the mode each seed picks, on three workers
    /// and three brokers; no faults until [`faults`](SimTest::faults) allows some; held to at least once.
    /// The built-in scenarios of `sluice sim` start here ([`crate::builtin`]).
    pub fn runtime(name: &'static str) -> SimTest {
        SimTest::of(Scenario::base(name))
    }

    /// A test of Sluice's FileStream connectors on simulated disks: `FileStreamSource` reads a file an
    /// application appends 10,000 lines to on worker 0's disk, and `FileStreamSink` writes a file on each
    /// worker's disk; otherwise as [`runtime`](SimTest::runtime).
    pub fn files(name: &'static str) -> SimTest {
        SimTest::of(Scenario {
            workload: Workload::Files,
            streams: 1,
            records_per_stream: 10_000,
            sink_modes: &[],
            ..Scenario::base(name)
        })
    }

    /// A test of any scenario, with the default seeds and nothing required.
    fn of(scenario: Scenario) -> SimTest {
        SimTest {
            scenario,
            seeds: 1..=DEFAULT_SEEDS,
            required: Vec::new(),
            regressions: None,
            check_determinism: false,
            jobs: None,
        }
    }

    /// The topic the source under test writes to and the sink under test reads.
    pub fn topic(&self) -> &'static str {
        self.scenario.topic()
    }

    /// What the test is about, for a person choosing one (`sluice sim --list`).
    pub fn about(mut self, about: &'static str) -> SimTest {
        self.scenario.about = about;
        self
    }

    /// The test's name: it names its reports, replay commands and regression file.
    pub fn name(&self) -> &'static str {
        self.scenario.name
    }

    /// The events some seed must reach ([`require`](SimTest::require)).
    pub fn required(&self) -> &[Event] {
        &self.required
    }

    /// The guarantee the run is held to.
    pub fn guarantee(mut self, guarantee: Guarantee) -> SimTest {
        self.scenario.guarantee = guarantee;
        self
    }

    /// Runs a source under test with exactly-once source support (`exactly.once.source.support`): its
    /// task runs on one worker at a time, in transactions (`transaction.boundary` poll or interval, as
    /// the seed picks), with its offsets in the offsets topic; an orchestrator moves it to another
    /// worker while the old one is cut off ([`FaultKind::TakeOver`]), and the old instance must be
    /// fenced. The run is held to [`Guarantee::ExactlyOnceSource`]: each record in Kafka once for
    /// read_committed readers. Faults come from [`EXACTLY_ONCE_SOURCE_FAULTS`]: call it before
    /// [`faults`](SimTest::faults) and [`headline_faults`](SimTest::headline_faults), which it replaces.
    pub fn exactly_once_source(mut self) -> SimTest {
        self.scenario.exactly_once = true;
        self.scenario.transaction_boundaries = &["poll", "interval"];
        self.scenario.sink_isolation = "read_committed";
        // A transaction per poll costs several round trips: the source runs slower than at least once.
        self.scenario.drain_limit = self.scenario.drain_limit.max(Duration::from_secs(240));
        self.scenario.guarantee = Guarantee::ExactlyOnceSource;
        self.scenario.faults = EXACTLY_ONCE_SOURCE_FAULTS;
        self.scenario.headline_faults = &[FaultKind::TakeOver];
        self
    }

    /// The fault kinds a seed picks from, and how many faults a run has at most.
    pub fn faults(mut self, kinds: &'static [FaultKind], max: usize) -> SimTest {
        self.scenario.faults = kinds;
        self.scenario.max_faults = max;
        self
    }

    /// Fault kinds each seed picks with high odds and draws at least once.
    pub fn headline_faults(mut self, kinds: &'static [FaultKind]) -> SimTest {
        self.scenario.headline_faults = kinds;
        self
    }

    /// Seeds to run, unless the environment says (`SLUICE_SEED`, `SLUICE_SEEDS`).
    pub fn seeds(mut self, seeds: RangeInclusive<u64>) -> SimTest {
        self.seeds = seeds;
        self
    }

    /// Events some seed must reach (`sometimes` assertions): a sweep that reaches none of them fails.
    pub fn require(mut self, events: &[Event]) -> SimTest {
        self.required.extend_from_slice(events);
        self
    }

    /// Runs each seed twice and fails if the two runs differ, as `SLUICE_CHECK_DETERMINISM=1` does.
    pub fn check_determinism(mut self) -> SimTest {
        self.check_determinism = true;
        self
    }

    /// Runs the seeds in `jobs` processes at once, unless `SLUICE_JOBS` says otherwise.
    pub fn jobs(mut self, jobs: usize) -> SimTest {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Keeps regression files in `dir` instead of the crate's `sim-regressions/`.
    pub fn regressions_in(mut self, dir: impl Into<PathBuf>) -> SimTest {
        self.regressions = Some(dir.into());
        self
    }

    /// Changes anything else of the scenario: workers, brokers, partitions, records, timeouts.
    pub fn with_scenario(mut self, change: impl FnOnce(&mut Scenario)) -> SimTest {
        change(&mut self.scenario);
        self
    }

    /// The scenario the test runs.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs the test and panics with the failure, as a `#[test]` should.
    pub fn check(&self) {
        match self.run() {
            Ok(sweep) => println!("{}", render_sweep(&sweep)),
            Err(e) => panic!("{e}"),
        }
    }

    /// Replays the saved regressions, then runs the seeds; the first failure is shrunk and saved.
    pub fn run(&self) -> Result<Sweep, TestError> {
        self.run_shard()?;
        self.replay_regressions()?;
        let mut sweep = Sweep::default();
        if let Some(report) = self.first_failure(&mut sweep)? {
            let failure = self.shrink(report)?;
            self.save(&failure.shrunk)?;
            return Err(TestError::Failed(Box::new(failure)));
        }
        let missing: Vec<&'static str> = self
            .required
            .iter()
            .filter(|event| !sweep.events.contains_key(event))
            .map(|event| event.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(TestError::NotReached {
                seeds: sweep.seeds,
                missing,
                sweep,
            });
        }
        Ok(sweep)
    }

    /// The first failing seed of the test's seeds, shrunk; nothing is saved. For tests that plant a bug
    /// and expect the simulation to find it.
    pub fn find_failure(&self) -> Result<Option<Failure>, TestError> {
        self.run_shard()?;
        match self.first_failure(&mut Sweep::default())? {
            Some(report) => Ok(Some(self.shrink(report)?)),
            None => Ok(None),
        }
    }

    /// Runs the seeds, in seed order, until one fails: its report. Counts each seed in `sweep`.
    fn first_failure(&self, sweep: &mut Sweep) -> Result<Option<Report>, TestError> {
        let seeds = self.seed_range()?;
        let determinism = self.check_determinism
            || std::env::var("SLUICE_CHECK_DETERMINISM").is_ok_and(|v| v == "1");
        let jobs = env_jobs(self.jobs)?.min(seeds.clone().count().max(1));
        // A parallel sweep starts this test again in the test binary, found by its thread's name.
        let test = libtest_name();
        if let (Some(test), false, 2..) = (test, determinism, jobs) {
            sweep.processes = jobs;
            let mut failed = None;
            let range = format!("{}..{}", seeds.start(), seeds.end());
            run_sharded(
                seeds,
                jobs,
                |shard| {
                    let program = std::env::current_exe().unwrap_or_default();
                    let mut command = std::process::Command::new(program);
                    command
                        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                        .env("SLUICE_SHARD", format!("{}:{shard}", self.scenario.name))
                        .env("SLUICE_SEEDS", &range)
                        .env_remove("SLUICE_SEED");
                    command
                },
                |result| {
                    sweep.count(&result);
                    if result.passed {
                        return Flow::Continue;
                    }
                    failed = Some(result.seed);
                    Flow::Stop
                },
            )?;
            // Runs are deterministic: the failing seed fails here again, to be shrunk.
            return match failed {
                Some(seed) => Ok(Some(self.run_seed(seed)?)),
                None => Ok(None),
            };
        }
        sweep.processes = 1;
        for seed in seeds {
            let report = self.run_seed(seed)?;
            if determinism {
                let again = self.run_seed(seed)?;
                if again.trace_hash != report.trace_hash {
                    return Err(TestError::NotDeterministic {
                        seed,
                        first: report.trace_hash,
                        second: again.trace_hash,
                        replay: self.replay_command(seed),
                    });
                }
            }
            sweep.count(&seed_result(&report));
            if !report.passed() {
                return Ok(Some(report));
            }
        }
        Ok(None)
    }

    /// In a child process of a parallel sweep of this test: runs this process's shard of the seeds,
    /// prints each result for the parent, up to the first failure, and ends the process (the rest of
    /// the `#[test]` is the parent's). Returns only if this process is not such a child.
    fn run_shard(&self) -> Result<(), TestError> {
        let Some(shard) = env_shard(self.scenario.name)? else {
            return Ok(());
        };
        let mut out = std::io::stdout().lock();
        for seed in shard.seeds(self.seed_range()?) {
            let result = seed_result(&self.run_seed(seed)?);
            // The test binary may have begun a line: the result gets one of its own.
            let written = writeln!(out, "\n{}", result.to_line()).and_then(|()| out.flush());
            if written.is_err() || !result.passed {
                break;
            }
        }
        std::process::exit(0)
    }

    /// Runs one seed with the faults it draws.
    pub fn run_seed(&self, seed: u64) -> Result<Report, RunError> {
        run(&self.scenario, seed)
    }

    /// Runs one seed with its other choices but `plan` for faults.
    pub fn run_plan(&self, seed: u64, plan: Vec<Scheduled>) -> Result<Report, RunError> {
        run_planned(&choose(&self.scenario, seed).scenario, seed, plan)
    }

    /// Runs the scenario exactly as configured, with `plan` for faults: where it allows several
    /// assignors, transaction boundaries or sink modes, the first of each, not the seed's pick (the seed
    /// still drives the simulation). For tests that pin every choice.
    pub fn run_exact(&self, seed: u64, plan: Vec<Scheduled>) -> Result<Report, RunError> {
        run_planned(&self.scenario, seed, plan)
    }

    fn shrink(&self, report: Report) -> Result<Failure, TestError> {
        let seed = report.seed;
        let failed = kinds(&report);
        let mut error = None;
        let mut last = None;
        let plan = shrink(report.faults.clone(), &mut |plan| match self
            .run_plan(seed, plan.to_vec())
        {
            Ok(run) if same_failure(&failed, &run) => {
                last = Some(run);
                true
            }
            Ok(_) => false,
            Err(e) => {
                error = Some(e);
                false
            }
        });
        if let Some(e) = error {
            return Err(e.into());
        }
        // The shrunk plan's own run (the last failing one tried may have been another plan).
        let shrunk_report = match last {
            Some(run) if run.faults == plan => run,
            _ => self.run_plan(seed, plan.clone())?,
        };
        Ok(Failure {
            replay: self.replay_command(seed),
            timeline: self.write_timeline(&shrunk_report),
            shrunk: Regression { seed, plan },
            shrunk_report,
            report,
        })
    }

    /// Writes `report`'s timeline as `<test>-seed-N.html` in `SLUICE_TIMELINE_DIR`, or else in
    /// `sluice-timelines/` beside the test binary's `deps/` folder (`target/<profile>/`).
    fn write_timeline(&self, report: &Report) -> Result<PathBuf, String> {
        let dir = match std::env::var_os("SLUICE_TIMELINE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.parent()?.join("sluice-timelines")))
                .unwrap_or_else(|| std::env::temp_dir().join("sluice-timelines")),
        };
        let name: String = self
            .test_name()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}-seed-{}.html", report.seed));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, html::render(&report.timeline)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    fn seed_range(&self) -> Result<RangeInclusive<u64>, TestError> {
        env_seeds(&self.seeds)
    }

    /// `SLUICE_SEED=N cargo test -p CRATE TEST -- --exact`.
    fn replay_command(&self, seed: u64) -> String {
        replay_command(self.scenario.name, seed)
    }

    /// The running `#[test]`'s name (libtest names its thread after it), or the scenario's.
    fn test_name(&self) -> String {
        test_name(self.scenario.name)
    }

    fn regression_file(&self) -> PathBuf {
        let dir = self.regressions.clone().unwrap_or_else(|| {
            let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_owned());
            Path::new(&crate_dir).join("sim-regressions")
        });
        dir.join(format!("{}.yaml", self.scenario.name))
    }

    /// The saved regressions of this test.
    pub fn regressions(&self) -> Result<Vec<Regression>, TestError> {
        let file = self.regression_file();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(TestError::RegressionFile {
                    file: file.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        serde_yaml::from_str::<Option<Vec<Regression>>>(&text)
            .map(Option::unwrap_or_default)
            .map_err(|e| TestError::RegressionFile {
                file: file.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Replays every saved regression: each must pass now.
    pub fn replay_regressions(&self) -> Result<(), TestError> {
        for regression in self.regressions()? {
            let report = self.run_plan(regression.seed, regression.plan.clone())?;
            if !report.passed() {
                return Err(TestError::RegressionFails {
                    file: self.regression_file().display().to_string(),
                    seed: regression.seed,
                    report: render_report(&report),
                });
            }
        }
        Ok(())
    }

    /// Adds `regression` to the test's regression file (once).
    pub fn save(&self, regression: &Regression) -> Result<(), TestError> {
        let file = self.regression_file();
        let failed = |reason: String| TestError::RegressionFile {
            file: file.display().to_string(),
            reason,
        };
        let mut saved = self.regressions()?;
        if saved.contains(regression) {
            return Ok(());
        }
        saved.push(regression.clone());
        let yaml = serde_yaml::to_string(&saved).map_err(|e| failed(e.to_string()))?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        }
        let text = format!("{REGRESSION_HEADER}{yaml}");
        std::fs::write(&file, text).map_err(|e| failed(e.to_string()))
    }
}

/// The seeds to run: `SLUICE_SEED` (one), else `SLUICE_SEEDS` (`N`: 1 to N; `A..B`: A to B), else the
/// test's own.
/// The seeds `SLUICE_SEED` or `SLUICE_SEEDS` name, or else `default`.
pub(crate) fn env_seeds(default: &RangeInclusive<u64>) -> Result<RangeInclusive<u64>, TestError> {
    seed_range(
        std::env::var("SLUICE_SEED").ok().as_deref(),
        std::env::var("SLUICE_SEEDS").ok().as_deref(),
        default,
    )
}

fn seed_range(
    seed: Option<&str>,
    seeds: Option<&str>,
    own: &RangeInclusive<u64>,
) -> Result<RangeInclusive<u64>, TestError> {
    if let Some(value) = seed {
        let seed = value.trim().parse().map_err(|_| TestError::Environment {
            variable: "SLUICE_SEED",
            value: value.to_owned(),
            reason: "not a seed (a whole number)",
        })?;
        return Ok(seed..=seed);
    }
    let Some(value) = seeds else {
        return Ok(own.clone());
    };
    let bad = |reason| TestError::Environment {
        variable: "SLUICE_SEEDS",
        value: value.to_owned(),
        reason,
    };
    let number = |text: &str| text.trim().parse::<u64>();
    match value.split_once("..") {
        Some((from, to)) => {
            let two = "A..B needs two whole numbers";
            let from = number(from).map_err(|_| bad(two))?;
            let to = number(to.trim_start_matches('=')).map_err(|_| bad(two))?;
            if from > to {
                return Err(bad("A..B needs A <= B"));
            }
            Ok(from..=to)
        }
        None => match number(value) {
            Ok(count) if count > 0 => Ok(1..=count),
            _ => Err(bad("a count of seeds, or A..B")),
        },
    }
}

const REGRESSION_HEADER: &str = "# Failures the simulation found and shrank: a seed (which fixes the run's other choices) and the\n# faults that matter. Every run of the test replays these first. Keep this file under version control.\n";

impl Sweep {
    fn count(&mut self, result: &SeedResult) {
        self.seeds += 1;
        for event in &result.events {
            *self.events.entry(*event).or_insert(0) += 1;
        }
        for kind in &result.faults {
            *self.faults.entry(kind.clone()).or_insert(0) += 1;
        }
    }
}

/// What a sweep keeps of a seed's run.
fn seed_result(report: &Report) -> SeedResult {
    SeedResult {
        seed: report.seed,
        passed: report.passed(),
        events: report.coverage.keys().copied().collect(),
        faults: report.fault_kinds().into_iter().collect(),
        output: report.summary(),
    }
}

/// The processes a sweep runs in: the test's or `SLUICE_JOBS`, else the machine's cores when the
/// environment names the seeds (a person's sweep), else one.
fn env_jobs(own: Option<usize>) -> Result<usize, TestError> {
    if let Ok(value) = std::env::var("SLUICE_JOBS") {
        return match value.trim().parse::<usize>() {
            Ok(jobs) if jobs > 0 => Ok(jobs),
            _ => Err(TestError::Environment {
                variable: "SLUICE_JOBS",
                value,
                reason: "a number of processes (1 or more)",
            }),
        };
    }
    if let Some(jobs) = own {
        return Ok(jobs);
    }
    let named =
        std::env::var_os("SLUICE_SEED").is_some() || std::env::var_os("SLUICE_SEEDS").is_some();
    Ok(match named {
        true => std::thread::available_parallelism().map_or(1, |n| n.get()),
        false => 1,
    })
}

/// The shard of the seeds this process runs for the parent of a parallel sweep of the test `name`
/// (`SLUICE_SHARD=NAME:K/N`); none if this process is not such a child, or is one for another test.
fn env_shard(name: &str) -> Result<Option<Shard>, TestError> {
    let Ok(value) = std::env::var("SLUICE_SHARD") else {
        return Ok(None);
    };
    let Some((test, shard)) = value.rsplit_once(':') else {
        return Err(TestError::Environment {
            variable: "SLUICE_SHARD",
            value,
            reason: "TEST:K/N (set by a parallel sweep for its child processes)",
        });
    };
    if test != name {
        return Ok(None);
    }
    match shard.parse() {
        Ok(shard) => Ok(Some(shard)),
        Err(_) => Err(TestError::Environment {
            variable: "SLUICE_SHARD",
            value,
            reason: "TEST:K/N (set by a parallel sweep for its child processes)",
        }),
    }
}

/// The running `#[test]`'s full name, if libtest runs it (on a thread named after it).
fn libtest_name() -> Option<String> {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(str::to_owned)
}

/// How many seeds drew each fault and reached each event.
pub fn render_sweep(sweep: &Sweep) -> String {
    let mut out = format!(
        "{} seeds in {} process(es)\nfaults drawn (seeds):",
        sweep.seeds, sweep.processes
    );
    for (kind, seeds) in &sweep.faults {
        out.push_str(&format!(" {kind}={seeds}"));
    }
    out.push_str("\nevents reached (seeds):");
    for (event, seeds) in &sweep.events {
        out.push_str(&format!(" {}={seeds}", event.as_str()));
    }
    out
}

/// The running `#[test]`'s name (libtest names its thread after it), or else `default`.
pub(crate) fn test_name(default: &str) -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or(default)
        .to_owned()
}

/// `SLUICE_SEED=N cargo test --release -p CRATE TEST -- --exact`, for the running test.
pub(crate) fn replay_command(default_test: &str, seed: u64) -> String {
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "<crate>".to_owned());
    format!(
        "SLUICE_SEED={seed} cargo test --release -p {package} {} -- --exact",
        test_name(default_test)
    )
}

/// A run's anomalies, one per line, under a heading.
pub(crate) fn render_anomalies(anomalies: &[Anomaly]) -> String {
    let mut out = String::from("anomalies:\n");
    for anomaly in anomalies {
        out.push_str(&format!(
            "  {}: {}\n",
            anomaly.kind.as_str(),
            anomaly.detail
        ));
    }
    out
}

/// A failing run for a person: its summary, anomalies and fault plan.
fn render_report(report: &Report) -> String {
    let mut out = format!("{}\n", report.summary());
    out.push_str(&render_anomalies(&report.anomalies));
    out.push_str("faults:\n");
    out.push_str(&render_plan(&report.faults));
    out
}

fn render_plan(plan: &[Scheduled]) -> String {
    if plan.is_empty() {
        return "  (none)\n".to_owned();
    }
    let yaml = serde_yaml::to_string(plan).unwrap_or_default();
    yaml.lines().map(|line| format!("  {line}\n")).collect()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} failed ({} faults):\n{}",
            self.report.seed,
            self.report.faults.len(),
            render_report(&self.report)
        )?;
        writeln!(
            f,
            "shrunk to {} faults, which fail the same way:\n{}",
            self.shrunk.plan.len(),
            render_report(&self.shrunk_report)
        )?;
        match &self.timeline {
            Ok(path) => writeln!(f, "timeline of the shrunk run: {}", path.display())?,
            Err(e) => writeln!(f, "timeline of the shrunk run: {e}")?,
        }
        write!(f, "replay: {}", self.replay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(seed: Option<&str>, seeds: Option<&str>) -> String {
        match seed_range(seed, seeds, &(1..=20)) {
            Err(e) => e.to_string(),
            Ok(range) => panic!("{seed:?} {seeds:?} gave {range:?}"),
        }
    }

    #[test]
    fn seeds_come_from_the_environment_or_the_test() {
        assert_eq!(seed_range(None, None, &(1..=20)).unwrap(), 1..=20);
        assert_eq!(
            seed_range(Some("7"), Some("500"), &(1..=20)).unwrap(),
            7..=7
        );
        assert_eq!(seed_range(None, Some("500"), &(1..=20)).unwrap(), 1..=500);
        assert_eq!(
            seed_range(None, Some("100..199"), &(1..=20)).unwrap(),
            100..=199
        );
        assert_eq!(seed_range(None, Some("3..=5"), &(1..=20)).unwrap(), 3..=5);
    }

    #[test]
    fn bad_seed_variables_say_what_is_wrong() {
        assert_eq!(
            bad(Some("x"), None),
            "SLUICE_SEED=\"x\": not a seed (a whole number)"
        );
        assert_eq!(
            bad(None, Some("0")),
            "SLUICE_SEEDS=\"0\": a count of seeds, or A..B"
        );
        assert_eq!(
            bad(None, Some("9..2")),
            "SLUICE_SEEDS=\"9..2\": A..B needs A <= B"
        );
        assert_eq!(
            bad(None, Some("a..b")),
            "SLUICE_SEEDS=\"a..b\": A..B needs two whole numbers"
        );
    }
}
