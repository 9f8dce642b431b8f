//! The plan of what will go wrong in a run, drawn from the seed.
//!
//! The seed first picks which of the scenario's fault kinds this run uses (each with even odds, its headline
//! kinds with high odds, at least one: swarm testing, so some runs hammer one weakness), then how many
//! faults, which kind each is (each headline kind picked at least once), when it strikes and for how long.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use crate::faults::{Fault, FaultKind, Operation, ProduceError, Role, Scheduled, Target};
use crate::scenario::Scenario;
use crate::workload::{DirtyPages, WriteError};

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

fn draw(kind: FaultKind, scenario: &Scenario, rng: &mut StdRng) -> Fault {
    let worker = rng.random_range(0..scenario.workers.max(1));
    let between = |rng: &mut StdRng, low: Duration, high: Duration| {
        Duration::from_millis(rng.random_range(low.as_millis() as u64..=high.as_millis() as u64))
    };
    let session = scenario.session_timeout;
    let max_poll = scenario.max_poll_interval;
    // A stall of put or flush: half of them within put.flush.limit.ms (past the session timeout, often
    // past max.poll.interval.ms: the runtime keeps the member in), half past it by max.poll.interval.ms
    // (the member is thrown out).
    let limit = scenario.put_flush_limit;
    let stall = |rng: &mut StdRng| {
        if rng.random_bool(0.5) {
            between(rng, session, limit)
        } else {
            between(rng, limit + max_poll, limit + max_poll + session)
        }
    };
    match kind {
        FaultKind::Operate => {
            // Worker 0 runs the source, unless exactly-once sources are placed elsewhere.
            let source = worker == 0 && !scenario.exactly_once && rng.random_bool(0.5);
            let operations: &[Operation] = match source {
                true => &[
                    Operation::Pause,
                    Operation::Stop,
                    Operation::Restart,
                    Operation::ChangeConfig,
                    Operation::ResetOffsets,
                ],
                false => &[
                    Operation::Pause,
                    Operation::Stop,
                    Operation::Restart,
                    Operation::ChangeConfig,
                ],
            };
            Fault::Operate {
                worker,
                connector: match source {
                    true => Role::Source,
                    false => Role::Sink,
                },
                operation: operations[rng.random_range(0..operations.len())],
                duration: between(rng, Duration::from_secs(1), session * 2),
            }
        }
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
            // Drawn after the plan, where the scenario allows it (see `driver::choose`).
            cut_off: false,
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
        FaultKind::StallFlush => Fault::StallFlush {
            duration: stall(rng),
        },
        FaultKind::StallPut => Fault::StallPut {
            duration: stall(rng),
        },
        FaultKind::FailFlush => Fault::FailFlush,
        // Mostly an outage of a few seconds to past the session, sometimes a refusal for good.
        FaultKind::FailPoll => Fault::FailPoll {
            fatal: rng.random_bool(0.3),
            duration: between(rng, Duration::from_secs(1), session * 2),
        },
        FaultKind::FailPut => Fault::FailPut,
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
        // A few partitions, or all of them. A third of the time they have no leader for longer than
        // delivery.timeout.ms (every batch refused unappended, so deliveries fail for good with
        // records Kafka does not hold); otherwise either error, mostly on every batch, sometimes on a
        // share (so that a batch fails while the next one succeeds), often past delivery.timeout.ms.
        FaultKind::ProduceErrors => {
            let partitions = some_partitions(scenario, rng);
            let timeout = scenario.delivery_timeout;
            if rng.random_bool(1.0 / 3.0) {
                return Fault::ProduceErrors {
                    error: ProduceError::NotLeaderOrFollower,
                    partitions,
                    percent: 100,
                    duration: between(rng, timeout + Duration::from_secs(1), timeout * 2),
                };
            }
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
                duration: between(rng, Duration::from_secs(1), timeout * 2),
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
