//! Task-level harnesses: fast tests of one task without Kafka or workers. The harness plays the runtime
//! for a single task of the author's connector, drawing the runtime's calls from the seed, on simulated
//! time, against the same model of the external system as [`SimTest`](super::SimTest) (which crashes and is
//! cut off now and then), and checks what the task did with the kit's oracle.
//!
//! - [`sink`]: open, put, pre_commit, close, rebalances, lost partitions, rewinds, restarts and crashes;
//! - [`source`]: poll (sometimes dropped while pending), acknowledgements, commits, and restarts from
//!   the stored offsets.
//!
//! Kafka Connect authors write hand-rolled mock contexts for this. A run of a few hundred steps takes a
//! fraction of a second.

pub mod sink;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use sluice_core::api::{Connector, ConnectorContext};
use sluice_core::config::ConfigMap;

use super::runner::{env_seeds, render_anomalies, replay_command};
use crate::broker::now;
use crate::oracle::{Anomaly, AnomalyKind};

/// The worker host the task runs on (the models map writers to workers by host name).
pub(crate) const WORKER: &str = "worker-0";

/// What the harness did, counted over a sweep: a test can require some so that it cannot pass without
/// reaching them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskStep {
    /// `poll` returned records (a source task).
    Poll,
    /// A pending `poll` was dropped, as the runtime drops it to commit or to stop (a source task).
    PollCancelled,
    /// Kafka acknowledged records, told to the task with `commit_record` (a source task).
    Acknowledged,
    /// `put` took a batch.
    Put,
    /// `put` answered a retriable error: the same records come again.
    PutRetried,
    /// Offsets were committed (a sink's approved by `pre_commit`; a source's up to what Kafka
    /// acknowledged).
    Commit,
    /// `pre_commit` failed: every partition rewinds to its committed offset.
    FlushFailed,
    /// Partitions moved: the revoked ones committed and closed, the new ones opened.
    Rebalance,
    /// Partitions were lost: closed without a commit.
    PartitionsLost,
    /// The task asked to be rewound (`SinkTaskContext::offset`).
    RewindRequested,
    /// The task was stopped cleanly (a last commit, then `close` and `stop`) and a new instance started.
    Restart,
    /// The task's process died: a new instance started, the old one never closed.
    Crash,
    /// The task failed (a non-retriable error); a new instance started.
    TaskFailed,
    /// The external system's hosts crashed (losing what they had not made durable) and came back.
    ExternalCrashed,
    /// The external system was cut off from the task for a while.
    ExternalUnreachable,
    /// Messages between the external system and the task were slow for a while.
    ExternalSlow,
    /// The external system answered requests with errors for a while.
    ExternalErrors,
}

impl TaskStep {
    /// Every step, in the order sweeps list them.
    pub const ALL: [TaskStep; 17] = [
        TaskStep::Poll,
        TaskStep::PollCancelled,
        TaskStep::Acknowledged,
        TaskStep::Put,
        TaskStep::PutRetried,
        TaskStep::Commit,
        TaskStep::FlushFailed,
        TaskStep::Rebalance,
        TaskStep::PartitionsLost,
        TaskStep::RewindRequested,
        TaskStep::Restart,
        TaskStep::Crash,
        TaskStep::TaskFailed,
        TaskStep::ExternalCrashed,
        TaskStep::ExternalUnreachable,
        TaskStep::ExternalSlow,
        TaskStep::ExternalErrors,
    ];

    /// The step's name, as sweeps print it (`put-retried`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStep::Poll => "poll",
            TaskStep::PollCancelled => "poll-cancelled",
            TaskStep::Acknowledged => "acknowledged",
            TaskStep::Put => "put",
            TaskStep::PutRetried => "put-retried",
            TaskStep::Commit => "commit",
            TaskStep::FlushFailed => "flush-failed",
            TaskStep::Rebalance => "rebalance",
            TaskStep::PartitionsLost => "partitions-lost",
            TaskStep::RewindRequested => "rewind-requested",
            TaskStep::Restart => "restart",
            TaskStep::Crash => "crash",
            TaskStep::TaskFailed => "task-failed",
            TaskStep::ExternalCrashed => "external-crashed",
            TaskStep::ExternalUnreachable => "external-unreachable",
            TaskStep::ExternalSlow => "external-slow",
            TaskStep::ExternalErrors => "external-errors",
        }
    }
}

/// One seed's run.
#[derive(Debug, Clone)]
pub struct TaskRun {
    /// The seed.
    pub seed: u64,
    /// What the harness did, one line per step, with simulated times.
    pub log: Vec<String>,
    /// How many times each step happened.
    pub steps: BTreeMap<TaskStep, u64>,
    /// What the oracle found.
    pub anomalies: Vec<Anomaly>,
    /// The committed offset of each partition at the end (a source's: the last record each stream's
    /// committed offset covers).
    pub committed: BTreeMap<String, i64>,
}

impl TaskRun {
    /// Whether the oracle found nothing.
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty()
    }
}

/// What a sweep of seeds did.
#[derive(Debug, Clone, Default)]
pub struct TaskSweep {
    /// How many seeds ran.
    pub seeds: u64,
    /// How many seeds reached each step.
    pub reached: BTreeMap<TaskStep, u64>,
}

impl fmt::Display for TaskSweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} seeds; seeds that reached each step:", self.seeds)?;
        for step in TaskStep::ALL {
            let count = self.reached.get(&step).copied().unwrap_or(0);
            writeln!(f, "  {:<22} {count}", step.as_str())?;
        }
        Ok(())
    }
}

/// Why a task test failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskTestError {
    /// A seed found anomalies; here it is, and what shrinking left of it.
    #[error("seed {} failed:\n{}{shrunk}\nreplay: {replay}", .run.seed, render_run(.run))]
    Failed {
        /// The failing seed's run.
        run: Box<TaskRun>,
        /// The shortest run of the seed found that fails the same way.
        shrunk: Box<Shrunk>,
        /// The command that runs it again.
        replay: String,
    },
    /// No seed reached a step the test requires.
    #[error("no seed of {} reached {}: the test never got where it was meant to\n{sweep}", .sweep.seeds, .missing.join(", "))]
    NotReached {
        /// The required steps no seed reached.
        missing: Vec<&'static str>,
        /// What the seeds reached.
        sweep: TaskSweep,
    },
    /// The seed variables are malformed, or the simulation itself failed.
    #[error("{0}")]
    Setup(String),
}

fn render_run(run: &TaskRun) -> String {
    let mut out = render_anomalies(&run.anomalies);
    out.push_str("steps:\n");
    for line in &run.log {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// A failing task run cut down: the same seed takes only its first `steps` steps (each step is the same
/// draw as in the full run, so these are the full run's first steps), without the external system's
/// faults if it fails without them too.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The steps kept, of the failing run's.
    pub steps: usize,
    /// The failing run's steps.
    pub of: usize,
    /// Whether the external system's faults were kept.
    pub external_faults: bool,
    /// The full run's window for the external faults, which a shrunk run keeps.
    pub window: Duration,
    /// The shrunk run.
    pub run: TaskRun,
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replay = if self.external_faults {
            format!(
                ".steps({}).external_faults_within(Duration::from_millis({}))",
                self.steps,
                self.window.as_millis()
            )
        } else {
            format!(".steps({}).without_external_faults()", self.steps)
        };
        if self.steps == self.of && self.external_faults {
            writeln!(
                f,
                "could not be shortened: every shorter run passes (`{replay}`):"
            )?;
        } else {
            writeln!(
                f,
                "shrunk to its first {} steps of {}{} (`{replay}`), which fail the same way:",
                self.steps,
                self.of,
                if self.external_faults {
                    ""
                } else {
                    ", without the external system's faults"
                },
            )?;
        }
        write!(f, "{}", render_run(&self.run))
    }
}

/// What a run's driver found, shared with the harness outside the simulation.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) log: Vec<String>,
    pub(crate) steps: BTreeMap<TaskStep, u64>,
    pub(crate) anomalies: Vec<Anomaly>,
    /// What was committed at the end, by partition.
    pub(crate) committed: BTreeMap<String, i64>,
}

impl Outcome {
    /// Counts `step` and logs `line` at `at`.
    pub(crate) fn note(&mut self, at: Duration, step: TaskStep, line: String) {
        *self.steps.entry(step).or_insert(0) += 1;
        self.log.push(format!("{} ms {line}", at.as_millis()));
    }
}

fn lock(outcome: &Mutex<Outcome>) -> std::sync::MutexGuard<'_, Outcome> {
    outcome.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every task test is told: its name (the replay command names it), the steps per seed, the
/// seeds, the steps some seed must reach, and whether the external system suffers faults.
#[derive(Debug, Clone)]
pub struct Settings {
    name: &'static str,
    steps: usize,
    seeds: RangeInclusive<u64>,
    required: Vec<TaskStep>,
    external_faults: bool,
    /// When the external faults may strike, if not within [`active`](Settings::active): a shrunk run
    /// takes fewer steps, and keeps the full run's window so that its faults strike when they did.
    fault_window: Option<Duration>,
}

impl Settings {
    /// 200 steps per seed, seeds 1 to 100, the external system crashing, cut off, slow and answering
    /// errors now and then.
    pub(crate) fn new(name: &'static str) -> Settings {
        Settings {
            name,
            steps: 200,
            seeds: 1..=100,
            required: Vec::new(),
            external_faults: true,
            fault_window: None,
        }
    }

    /// How long the steps may take, roughly: the external faults strike within it.
    fn active(&self) -> Duration {
        self.fault_window
            .unwrap_or(Duration::from_secs(self.steps as u64 / 2 + 10))
    }
}

/// What the task harnesses ([`SinkTaskTest`](sink::SinkTaskTest),
/// [`SourceTaskTest`](source::SourceTaskTest)) share: the seeds, the steps, what must be reached, and
/// running as a `#[test]`.
pub trait TaskHarness: Sized + Clone {
    /// The test's settings.
    fn settings(&mut self) -> &mut Settings;

    /// Runs one seed.
    fn run_seed(&self, seed: u64) -> Result<TaskRun, TaskTestError>;

    /// The settings, to read.
    fn settings_ref(&self) -> &Settings;

    /// Takes `steps` steps per seed before draining.
    fn steps(mut self, steps: usize) -> Self {
        self.settings().steps = steps;
        self
    }

    /// The seeds to run unless `SLUICE_SEED` or `SLUICE_SEEDS` says otherwise.
    fn seeds(mut self, seeds: RangeInclusive<u64>) -> Self {
        self.settings().seeds = seeds;
        self
    }

    /// Fails the test if no seed reaches these steps.
    fn require(mut self, steps: &[TaskStep]) -> Self {
        self.settings().required.extend_from_slice(steps);
        self
    }

    /// Leaves the external system alone (no crashes, holds, slowness or errors).
    fn without_external_faults(mut self) -> Self {
        self.settings().external_faults = false;
        self
    }

    /// Draws the external system's faults within `window` of simulated time, instead of a window that
    /// grows with the steps; a shrunk run keeps its full run's window this way, so its faults strike
    /// when they did.
    fn external_faults_within(mut self, window: Duration) -> Self {
        self.settings().fault_window = Some(window);
        self
    }

    /// Runs the seeds; the first failing one is the error, shrunk, and a sweep that never reached a
    /// required step fails too.
    fn run(&self) -> Result<TaskSweep, TaskTestError> {
        let settings = self.settings_ref();
        sweep(
            settings.name,
            &settings.seeds,
            &settings.required,
            |seed| self.run_seed(seed),
            |run| self.shrink(run),
        )
    }

    /// The shortest prefix of `failed`'s run that still fails the same way (some anomaly of the same
    /// kind), without the external faults if it can: first without them, then the fewest steps by
    /// bisection. A try that cannot run counts as one that does not fail.
    fn shrink(&self, failed: &TaskRun) -> Shrunk {
        let kinds: BTreeSet<AnomalyKind> = failed.anomalies.iter().map(|a| a.kind).collect();
        let settings = self.settings_ref();
        let of = settings.steps;
        let window = settings.active();
        let attempt = |steps: usize, external_faults: bool| {
            let mut test = self.clone();
            let settings = test.settings();
            settings.steps = steps;
            settings.external_faults = external_faults && settings.external_faults;
            settings.fault_window = Some(window);
            let run = test.run_seed(failed.seed).ok()?;
            let same = run.anomalies.iter().any(|a| kinds.contains(&a.kind));
            same.then_some(run)
        };
        let mut external_faults = settings.external_faults;
        let mut best = failed.clone();
        if external_faults {
            if let Some(run) = attempt(of, false) {
                external_faults = false;
                best = run;
            }
        }
        let (mut passes, mut fails) = (0, of);
        if let Some(run) = attempt(0, external_faults) {
            fails = 0;
            best = run;
        }
        while fails > passes + 1 {
            let mid = passes + (fails - passes) / 2;
            match attempt(mid, external_faults) {
                Some(run) => {
                    fails = mid;
                    best = run;
                }
                None => passes = mid,
            }
        }
        Shrunk {
            steps: fails,
            of,
            external_faults,
            window,
            run: best,
        }
    }

    /// Runs the test and panics with the failure, as a `#[test]` should.
    fn check(&self) {
        match self.run() {
            Ok(sweep) => println!("{sweep}"),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The connector's config as a task test gives it: the author's, with `name` and `connector.class`.
pub(crate) fn connector_config(config: &ConfigMap, name: &str, class: &str) -> ConfigMap {
    let mut config = config.clone();
    config.insert("name".to_owned(), name.to_owned());
    config
        .entry("connector.class".to_owned())
        .or_insert_with(|| class.to_owned());
    config
}

/// Starts the connector and asks it for one task's config (its own config if it gives none).
pub(crate) async fn start_connector(
    connector: &mut dyn Connector,
    config: &ConfigMap,
) -> Result<ConfigMap, String> {
    let name = config.get("name").cloned().unwrap_or_default();
    connector
        .start(config, ConnectorContext::new(name))
        .await
        .map_err(|e| e.to_string())?;
    Ok(connector
        .task_configs(1)
        .into_iter()
        .next()
        .unwrap_or_else(|| config.clone()))
}

/// The run's log, as its driver writes it inside the simulation.
#[derive(Clone)]
pub(crate) struct Journal(std::sync::Arc<Mutex<Outcome>>);

impl Journal {
    /// Counts `step` and logs `line`, now.
    pub(crate) fn note(&self, step: TaskStep, line: impl Into<String>) {
        lock(&self.0).note(now(), step, line.into());
    }

    /// Logs `line`, now.
    pub(crate) fn log(&self, line: impl Into<String>) {
        lock(&self.0)
            .log
            .push(format!("{} ms {}", now().as_millis(), line.into()));
    }

    /// An anomaly found as the run goes.
    pub(crate) fn anomaly(&self, kind: AnomalyKind, detail: String) {
        lock(&self.0).anomalies.push(Anomaly { kind, detail });
    }

    pub(crate) fn outcome(&self) -> std::sync::MutexGuard<'_, Outcome> {
        lock(&self.0)
    }
}

/// Runs the seeds of a task test: the first failing one is the error, and a sweep that never reached a
/// required step fails too.
fn sweep(
    name: &str,
    seeds: &RangeInclusive<u64>,
    required: &[TaskStep],
    mut run_seed: impl FnMut(u64) -> Result<TaskRun, TaskTestError>,
    mut shrink: impl FnMut(&TaskRun) -> Shrunk,
) -> Result<TaskSweep, TaskTestError> {
    let seeds = env_seeds(seeds).map_err(|e| TaskTestError::Setup(e.to_string()))?;
    let mut sweep = TaskSweep::default();
    for seed in seeds {
        let run = run_seed(seed)?;
        sweep.seeds += 1;
        for step in run.steps.keys() {
            *sweep.reached.entry(*step).or_insert(0) += 1;
        }
        if !run.passed() {
            return Err(TaskTestError::Failed {
                replay: replay_command(name, seed),
                shrunk: Box::new(shrink(&run)),
                run: Box::new(run),
            });
        }
    }
    let missing: Vec<&'static str> = required
        .iter()
        .filter(|step| !sweep.reached.contains_key(step))
        .map(|step| step.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(TaskTestError::NotReached { missing, sweep });
    }
    Ok(sweep)
}

/// A fault of the external system's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ExternalFault {
    /// The hosts crash (losing what they had not made durable) and start again.
    Crash,
    /// Messages between them and the task are held, then delivered.
    Hold,
    /// Messages between them and the task take up to this long.
    Slow(Duration),
    /// The model answers requests with errors ([`crate::kit::answering_errors`]).
    Errors,
}

impl ExternalFault {
    fn step(self) -> TaskStep {
        match self {
            ExternalFault::Crash => TaskStep::ExternalCrashed,
            ExternalFault::Hold => TaskStep::ExternalUnreachable,
            ExternalFault::Slow(_) => TaskStep::ExternalSlow,
            ExternalFault::Errors => TaskStep::ExternalErrors,
        }
    }

    fn strike(self, sim: &mut turmoil::Sim<'_>, hosts: &[String]) {
        for host in hosts {
            match self {
                ExternalFault::Crash => sim.crash(host.as_str()),
                ExternalFault::Hold => sim.hold(WORKER, host.as_str()),
                ExternalFault::Slow(latency) => {
                    sim.set_link_max_message_latency(WORKER, host.as_str(), latency)
                }
                ExternalFault::Errors => crate::kit::errors::answer_with_errors(true),
            }
        }
    }

    fn heal(self, sim: &mut turmoil::Sim<'_>, hosts: &[String]) {
        for host in hosts {
            match self {
                ExternalFault::Crash => sim.bounce(host.as_str()),
                ExternalFault::Hold => sim.release(WORKER, host.as_str()),
                ExternalFault::Slow(_) => {
                    sim.set_link_max_message_latency(WORKER, host.as_str(), Duration::ZERO)
                }
                ExternalFault::Errors => crate::kit::errors::answer_with_errors(false),
            }
        }
    }
}

/// Runs one seed of a task test: a simulation with the external system (`build` adds its `hosts`) and
/// the driver (made with the run's journal) on the worker host, the external faults the seed draws,
/// until the driver is done; what it found.
pub(crate) fn run_driver<F>(
    seed: u64,
    settings: &Settings,
    build: impl FnOnce(&mut turmoil::Sim<'_>),
    hosts: &[String],
    driver: impl FnOnce(Journal) -> F,
) -> Result<Outcome, TaskTestError>
where
    F: std::future::Future<Output = ()> + 'static,
{
    let shared = std::sync::Arc::new(Mutex::new(Outcome::default()));
    let active = settings.active();
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(active + Duration::from_secs(600))
        .build();
    build(&mut sim);
    let run = driver(Journal(shared.clone()));
    sim.client(WORKER, async move {
        run.await;
        Ok(())
    });
    simulate(
        &mut sim,
        seed,
        hosts,
        settings.external_faults.then_some(active),
        &shared,
    )?;
    let outcome = std::mem::take(&mut *lock(&shared));
    Ok(outcome)
}

/// Runs the simulation to its end. With `faults_within`, the seed draws up to two faults of the external
/// system's hosts in that time (a crash; a hold of the messages between them and the task; slow
/// messages; errors answered), each healed after up to 8 s.
fn simulate(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    hosts: &[String],
    faults_within: Option<Duration>,
    shared: &Mutex<Outcome>,
) -> Result<(), TaskTestError> {
    crate::kit::errors::answer_with_errors(false);
    let mut rng = StdRng::seed_from_u64(seed ^ EXTERNAL_FAULTS);
    let mut faults: Vec<(Duration, ExternalFault, Duration)> = Vec::new();
    if let Some(active) = faults_within.filter(|_| !hosts.is_empty()) {
        for _ in 0..rng.random_range(0..=2) {
            let at = Duration::from_millis(rng.random_range(0..active.as_millis() as u64));
            let fault = match rng.random_range(0..4) {
                0 => ExternalFault::Crash,
                1 => ExternalFault::Hold,
                2 => ExternalFault::Slow(Duration::from_millis(rng.random_range(50..2_000))),
                _ => ExternalFault::Errors,
            };
            let lasts = Duration::from_millis(rng.random_range(100..8_000));
            faults.push((at, fault, lasts));
        }
        faults.sort();
    }
    let mut healing: Vec<(Duration, ExternalFault)> = Vec::new();
    loop {
        let elapsed = sim.elapsed();
        while faults.first().is_some_and(|(at, _, _)| *at <= elapsed) {
            let (at, fault, lasts) = faults.remove(0);
            fault.strike(sim, hosts);
            let step = fault.step();
            lock(shared).note(
                at,
                step,
                format!("{} for {} ms", step.as_str(), lasts.as_millis()),
            );
            healing.push((at + lasts, fault));
        }
        let (healed, still): (Vec<_>, Vec<_>) = healing
            .into_iter()
            .partition(|(until, _)| *until <= elapsed);
        healing = still;
        for (_, fault) in healed {
            fault.heal(sim, hosts);
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(TaskTestError::Setup(format!("seed {seed}: {e}"))),
        }
    }
    crate::kit::errors::answer_with_errors(false);
    Ok(())
}

/// Mixed into the seed for the external faults' draws.
const EXTERNAL_FAULTS: u64 = 0x005e_ed0f_fa17;
