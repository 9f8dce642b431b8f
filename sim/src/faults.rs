//! Faults: what can go wrong, and the plan of what will, drawn from the seed.
//!
//! The seed first picks which of the scenario's fault kinds this run uses (each with even odds, its headline
//! kinds with high odds, at least one: swarm testing, so some runs hammer one weakness), then how many
//! faults, which kind each is (each headline kind picked at least once), when it strikes and for how long.
//! A test can also script the plan.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;
use crate::workload::{DirtyPages, WriteError};

/// The kinds of fault a scenario may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    CrashWorker,
    StopWorker,
    HoldNetwork,
    PartitionNetwork,
    StallFlush,
    StallPut,
    FailFlush,
    FailSync,
    FailDirSync,
    FailWrite,
    ShortWrite,
    RestartBroker,
    MoveLeaders,
    MoveCoordinators,
    Latency,
    TakeOver,
    ProduceErrors,
    RotateInput,
    DeleteRecords,
    CrashExternal,
    HoldExternal,
    SlowExternal,
    ErrorsExternal,
}

/// The retriable error a [`Fault::ProduceErrors`] answers produce batches with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProduceError {
    /// `NOT_LEADER_OR_FOLLOWER`: the batch is not appended (a leader is moving).
    NotLeaderOrFollower,
    /// `REQUEST_TIMED_OUT`: the batch is appended but not acknowledged (a follower lags).
    RequestTimedOut,
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Fault {
    /// The worker's process dies (its unsynced state is gone) and starts again after `down`.
    CrashWorker {
        worker: usize,
        #[serde(with = "millis")]
        down: Duration,
    },
    /// The worker stops cleanly (leaving its group) and starts again after `away`.
    StopWorker {
        worker: usize,
        #[serde(with = "millis")]
        away: Duration,
    },
    /// Messages between the worker and the broker are held (a silent death: no FIN, heartbeats lost).
    HoldNetwork {
        worker: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages between the worker and the broker are dropped: connections break and clients reconnect once
    /// the partition heals.
    PartitionNetwork {
        worker: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next flush stalls this long before writing.
    StallFlush {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next put stalls this long.
    StallPut {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next flush of the destination store fails.
    FailFlush,
    /// The next fsync on a simulated disk fails, keeping the dirty pages or dropping them as Linux does.
    FailSync { pages: DirtyPages },
    /// The next fsync of a directory on a simulated disk fails (its new entries stay unsynced).
    FailDirSync,
    /// The next write on a simulated disk fails with an I/O error or a full disk, writing nothing.
    FailWrite { error: WriteError },
    /// The next `writes` writes on a simulated disk write only half of what they were given.
    ShortWrite { writes: u32 },
    /// A broker host restarts: its connections and requests in flight are dropped, data is kept. What it
    /// leads and coordinates is unreachable until the controller fails it over to another broker
    /// `failover` after the crash (if that comes before the broker is back); once back, it is elected
    /// leader of its partitions again.
    RestartBroker {
        broker: usize,
        #[serde(with = "millis")]
        down: Duration,
        #[serde(with = "millis")]
        failover: Duration,
    },
    /// The leadership of these partitions of the pipeline's topic moves to broker `to` (a reassignment):
    /// requests to the old leader are refused with NOT_LEADER_OR_FOLLOWER.
    MoveLeaders { partitions: Vec<i32>, to: usize },
    /// Every group and transaction coordinator moves to broker `to` (their internal partitions'
    /// leadership does): requests to the old one are refused with NOT_COORDINATOR, and requests it held
    /// (a join waiting for the group) are answered so.
    MoveCoordinators { to: usize },
    /// The source task's worker `from` is cut off from the broker (messages held, as in a long GC pause)
    /// for `duration`, and meanwhile the task is started on worker `to`, as an orchestrator replaces a
    /// worker it believes dead. When `from` comes back, its instance is a zombie.
    TakeOver {
        from: usize,
        to: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// For `duration`, the broker answers `percent` of the produce batches for these partitions of the
    /// pipeline's topic with a retriable error; a fault longer than the producer's `delivery.timeout.ms`
    /// makes deliveries fail for good.
    ProduceErrors {
        error: ProduceError,
        partitions: Vec<i32>,
        percent: u8,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Retention deletes the oldest `percent` of the readable records of these partitions of the
    /// pipeline's topic (100: all of them, up to the end), as time-based retention deletes old segments
    /// or an administrator's DeleteRecords does.
    DeleteRecords { partitions: Vec<i32>, percent: u8 },
    /// The file-to-file input is rotated by copy and truncate, once the source has committed every line
    /// in it (the application pauses meanwhile), as logrotate's `copytruncate` does.
    RotateInput,
    /// The hosts of the connector's external system (a test kit run's destination) crash, losing what they
    /// had not made durable, and start again after `down`.
    CrashExternal {
        #[serde(with = "millis")]
        down: Duration,
    },
    /// Messages between the workers and the connector's external system are held for `duration`: the
    /// system is unreachable (requests hang, nothing fails) and then answers everything at once.
    HoldExternal {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages between the workers and the connector's external system take up to `latency` to arrive,
    /// for `duration` (then they arrive without delay).
    SlowExternal {
        #[serde(with = "millis")]
        latency: Duration,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The connector's external system answers requests with errors for `duration`: its model asks
    /// [`kit::answering_errors`](crate::kit::answering_errors) and answers with the system's own error
    /// while it says so.
    ErrorsExternal {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages take up to `max` to arrive, for `duration`.
    Latency {
        #[serde(with = "millis")]
        max: Duration,
        #[serde(with = "millis")]
        duration: Duration,
    },
}

/// A fault and when it strikes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    #[serde(with = "millis")]
    pub at: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

/// Draws the run's faults from the seed's generator.
pub fn plan(scenario: &Scenario, rng: &mut StdRng) -> Vec<Scheduled> {
    if scenario.faults.is_empty() || scenario.max_faults == 0 {
        return Vec::new();
    }
    let mut kinds: Vec<FaultKind> = scenario
        .faults
        .iter()
        .copied()
        .filter(|kind| {
            let odds = match scenario.headline_faults.contains(kind) {
                true => HEADLINE_ODDS,
                false => 0.5,
            };
            rng.random_bool(odds)
        })
        .collect();
    if kinds.is_empty() {
        kinds.push(scenario.faults[rng.random_range(0..scenario.faults.len())]);
    }
    // Each headline kind picked is drawn first, so it strikes at least once.
    let headline: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|kind| scenario.headline_faults.contains(kind))
        .collect();
    let count = rng
        .random_range(1..=scenario.max_faults)
        .max(headline.len());
    let active_ms = scenario.active.as_millis() as u64;
    let mut faults: Vec<Scheduled> = (0..count)
        .map(|i| {
            // Leave the first seconds for the group to form.
            let at = Duration::from_millis(rng.random_range(5_000..active_ms.max(5_001)));
            let kind = match headline.get(i) {
                Some(kind) => *kind,
                None => kinds[rng.random_range(0..kinds.len())],
            };
            Scheduled {
                at,
                fault: draw(kind, scenario, rng),
            }
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    // One fault at a time per host: a second crash of a worker that is already down would only shorten the
    // first, and the plan should say what happens.
    let mut busy_until: Vec<(Target, Duration)> = Vec::new();
    faults.retain(|f| {
        let Some((target, span)) = f.fault.target() else {
            return true;
        };
        if busy_until
            .iter()
            .any(|(t, until)| *t == target && f.at < *until)
        {
            return false;
        }
        busy_until.push((target, f.at + span + SETTLE));
        true
    });
    // The source moves from worker to worker: each take-over starts from wherever the last one left it.
    let mut owner = 0;
    for fault in &mut faults {
        if let Fault::TakeOver { from, to, .. } = &mut fault.fault {
            *from = owner;
            *to = (owner + 1) % scenario.workers.max(1);
            owner = *to;
        }
    }
    faults
}

/// The odds that a seed picks each of its scenario's headline fault kinds (the others: even odds).
const HEADLINE_ODDS: f64 = 0.9;

/// Time a host gets after a fault on it ends before another fault may strike it.
const SETTLE: Duration = Duration::from_secs(5);

/// What a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Worker(usize),
    Broker(usize),
    /// Message latency: one setting for the whole network, so latency faults must not overlap.
    Network,
    /// Where the source task runs: one take-over at a time.
    Source,
    /// The broker's answers to produce requests: one produce fault at a time.
    Produce,
    /// The connector's external system.
    External,
}

impl Fault {
    /// The workers this fault names.
    pub fn workers(&self) -> Vec<usize> {
        match (self, self.target()) {
            (Fault::TakeOver { from, to, .. }, _) => vec![*from, *to],
            (_, Some((Target::Worker(worker), _))) => vec![worker],
            _ => Vec::new(),
        }
    }

    /// What this fault acts on and for how long, if it holds something for a while.
    fn target(&self) -> Option<(Target, Duration)> {
        match *self {
            Fault::CrashWorker { worker, down } => Some((Target::Worker(worker), down)),
            Fault::StopWorker { worker, away } => Some((Target::Worker(worker), away)),
            Fault::HoldNetwork { worker, duration } => Some((Target::Worker(worker), duration)),
            Fault::PartitionNetwork { worker, duration } => {
                Some((Target::Worker(worker), duration))
            }
            Fault::RestartBroker { broker, down, .. } => Some((Target::Broker(broker), down)),
            Fault::Latency { duration, .. } => Some((Target::Network, duration)),
            Fault::TakeOver { duration, .. } => Some((Target::Source, duration)),
            Fault::ProduceErrors { duration, .. } => Some((Target::Produce, duration)),
            Fault::CrashExternal { down } => Some((Target::External, down)),
            Fault::HoldExternal { duration } => Some((Target::External, duration)),
            Fault::SlowExternal { duration, .. } => Some((Target::External, duration)),
            Fault::ErrorsExternal { duration } => Some((Target::External, duration)),
            _ => None,
        }
    }
}

fn draw(kind: FaultKind, scenario: &Scenario, rng: &mut StdRng) -> Fault {
    let worker = rng.random_range(0..scenario.workers.max(1));
    let between = |rng: &mut StdRng, low: Duration, high: Duration| {
        Duration::from_millis(rng.random_range(low.as_millis() as u64..=high.as_millis() as u64))
    };
    let session = scenario.session_timeout;
    let max_poll = scenario.max_poll_interval;
    match kind {
        FaultKind::CrashWorker => Fault::CrashWorker {
            worker,
            down: between(
                rng,
                Duration::from_secs(1),
                (session * 2).max(Duration::from_secs(1)),
            ),
        },
        FaultKind::StopWorker => Fault::StopWorker {
            worker,
            away: between(
                rng,
                Duration::from_secs(1),
                (session * 2).max(Duration::from_secs(1)),
            ),
        },
        FaultKind::HoldNetwork => Fault::HoldNetwork {
            worker,
            // Sometimes shorter than the session (nothing happens), mostly longer (the member is thrown out).
            duration: between(rng, session / 2, session * 2),
        },
        FaultKind::PartitionNetwork => Fault::PartitionNetwork {
            worker,
            duration: between(rng, session / 2, session * 2),
        },
        // Past the session timeout (the heartbeat task keeps the member in), sometimes past max.poll.interval.ms.
        FaultKind::StallFlush => Fault::StallFlush {
            duration: between(rng, session, max_poll + session),
        },
        FaultKind::StallPut => Fault::StallPut {
            duration: between(rng, session, max_poll + session),
        },
        FaultKind::FailFlush => Fault::FailFlush,
        FaultKind::FailSync => Fault::FailSync {
            pages: if rng.random_bool(0.5) {
                DirtyPages::Dropped
            } else {
                DirtyPages::Kept
            },
        },
        FaultKind::FailDirSync => Fault::FailDirSync,
        FaultKind::RotateInput => Fault::RotateInput,
        FaultKind::DeleteRecords => Fault::DeleteRecords {
            partitions: some_partitions(scenario, rng),
            // Often everything written so far: any consumer behind the end then finds its position gone.
            percent: if rng.random_bool(0.5) {
                100
            } else {
                rng.random_range(50..100)
            },
        },
        FaultKind::FailWrite => Fault::FailWrite {
            error: if rng.random_bool(0.5) {
                WriteError::Eio
            } else {
                WriteError::Enospc
            },
        },
        FaultKind::ShortWrite => Fault::ShortWrite {
            writes: rng.random_range(1..=5),
        },
        FaultKind::RestartBroker => {
            let down = between(rng, Duration::from_millis(100), session / 2);
            Fault::RestartBroker {
                broker: rng.random_range(0..scenario.brokers.max(1)),
                down,
                // Often before the broker is back (a controlled shutdown fails over at once), sometimes
                // not at all.
                failover: between(rng, Duration::ZERO, down * 2),
            }
        }
        FaultKind::MoveLeaders => Fault::MoveLeaders {
            partitions: some_partitions(scenario, rng),
            to: rng.random_range(0..scenario.brokers.max(1)),
        },
        FaultKind::MoveCoordinators => Fault::MoveCoordinators {
            to: rng.random_range(0..scenario.brokers.max(1)),
        },
        // Who takes over from whom is settled once the plan is in order.
        FaultKind::TakeOver => Fault::TakeOver {
            from: 0,
            to: 0,
            duration: between(rng, Duration::from_secs(2), session * 2),
        },
        // A few partitions, or all of them; mostly every batch, sometimes a share (so that a batch fails
        // while the next one succeeds); often longer than delivery.timeout.ms.
        FaultKind::ProduceErrors => {
            let partitions = some_partitions(scenario, rng);
            Fault::ProduceErrors {
                error: if rng.random_bool(0.5) {
                    ProduceError::NotLeaderOrFollower
                } else {
                    ProduceError::RequestTimedOut
                },
                partitions,
                percent: if rng.random_bool(0.5) {
                    100
                } else {
                    rng.random_range(20..=80)
                },
                duration: between(rng, Duration::from_secs(1), scenario.delivery_timeout * 2),
            }
        }
        FaultKind::CrashExternal => Fault::CrashExternal {
            down: between(rng, Duration::from_millis(500), session),
        },
        // Sometimes within the session (a slow system), sometimes long past it.
        FaultKind::HoldExternal => Fault::HoldExternal {
            duration: between(rng, Duration::from_secs(1), max_poll + session),
        },
        FaultKind::SlowExternal => Fault::SlowExternal {
            latency: between(rng, Duration::from_millis(50), Duration::from_secs(2)),
            duration: between(rng, Duration::from_secs(1), Duration::from_secs(20)),
        },
        FaultKind::ErrorsExternal => Fault::ErrorsExternal {
            duration: between(rng, Duration::from_millis(500), session),
        },
        FaultKind::Latency => Fault::Latency {
            max: between(rng, Duration::from_millis(5), Duration::from_millis(200)),
            duration: between(rng, Duration::from_secs(1), Duration::from_secs(20)),
        },
    }
}

/// A few partitions of the pipeline's topic, or all of them.
fn some_partitions(scenario: &Scenario, rng: &mut StdRng) -> Vec<i32> {
    match rng.random_range(0..3) {
        0 => (0..scenario.partitions).collect(),
        _ => {
            let count = rng.random_range(1..=scenario.partitions.clamp(1, 3));
            let first = rng.random_range(0..scenario.partitions.max(1));
            (0..count)
                .map(|i| (first + i) % scenario.partitions.max(1))
                .collect()
        }
    }
}

/// Durations in reports and regression files as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
