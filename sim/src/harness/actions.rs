//! Faults applied to the simulation, and what heals them: crashes and restarts, network holds and
//! partitions, broker restarts, latency, store and disk faults, produce errors and take-overs of the source task.

use std::time::Duration;

use super::hosts::WorkerHost;
use super::journal::{lock, millis, SharedJournal};
use super::operator_calls::Call;
use crate::broker::{Cluster, ProduceErrors};
use crate::coverage::{self, Event};
use crate::faults::{Fault, Operation, ProduceError, Role};
use crate::kit::OpenPartitions;
use crate::placement::Orchestrator;
use crate::protocol::{ErrorCode, Tp};
use crate::workload::input_file::InputRotations;
use crate::workload::{DestinationStore, DiskFaults, SourceOutages, StoreFault};

/// What to do at a point in simulated time.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Inject(Fault),
    /// Start a crashed or stopped worker again.
    Restart(usize),
    Release(usize),
    Repair(usize),
    /// The controller fails a crashed broker's partitions and coordinators over to another.
    FailOver(usize),
    BrokerUp(usize),
    LatencyOff,
    ProduceErrorsOff,
    /// Start the external system's crashed hosts again.
    ExternalUp,
    /// Let messages between the workers and the external system through again.
    ReleaseExternal,
    /// Messages between the workers and the external system arrive without delay again.
    ExternalFast,
    /// The external system stops answering with errors.
    ExternalErrorsOff,
    /// The operator resumes what it paused or stopped on the worker.
    EndOperation(usize, Role, Operation),
}

/// What faults act on.
pub(super) struct Targets<'a> {
    pub(super) workers: &'a [WorkerHost],
    /// The broker hosts' names, in broker id order.
    pub(super) brokers: &'a [String],
    pub(super) store: &'a DestinationStore,
    pub(super) disk: &'a DiskFaults,
    pub(super) rotations: &'a InputRotations,
    pub(super) outages: &'a SourceOutages,
    pub(super) journal: &'a SharedJournal,
    pub(super) orchestrator: &'a Orchestrator,
    pub(super) cluster: &'a Cluster,
    /// The pipeline's topic, which produce errors hit.
    pub(super) topic: &'a str,
    /// The hosts of the sink's external system (a test kit run's).
    pub(super) external: &'a [String],
    pub(super) open_partitions: &'a OpenPartitions,
}

pub(super) fn apply(
    sim: &mut turmoil::Sim<'_>,
    action: Action,
    now: Duration,
    targets: &Targets<'_>,
    schedule: &mut Vec<(Duration, Action)>,
) {
    let Targets {
        workers,
        brokers,
        store,
        disk,
        rotations,
        outages,
        journal,
        orchestrator,
        cluster,
        topic,
        external,
        open_partitions,
    } = targets;
    lock(journal)
        .trace
        .push(format!("{} {action:?}", millis(now)));
    match action {
        Action::Inject(fault) => match fault {
            Fault::CrashWorker { worker, down } => {
                sim.crash(workers[worker].name.as_str());
                open_partitions.crashed(worker);
                coverage::reached(Event::WorkerCrashed);
                if disk.crashed(&workers[worker].name) {
                    coverage::reached(Event::UnsyncedDataLost);
                }
                schedule.push((now + down, Action::Restart(worker)));
            }
            Fault::StopWorker {
                worker,
                away,
                cut_off,
            } => {
                if cut_off {
                    for broker in *brokers {
                        sim.partition(workers[worker].name.as_str(), broker.as_str());
                    }
                    schedule.push((now + away, Action::Repair(worker)));
                }
                let _ = workers[worker].stop.send(true);
                schedule.push((now + away, Action::Restart(worker)));
            }
            Fault::HoldNetwork { worker, duration } => {
                for broker in *brokers {
                    sim.hold(workers[worker].name.as_str(), broker.as_str());
                }
                schedule.push((now + duration, Action::Release(worker)));
            }
            Fault::PartitionNetwork { worker, duration } => {
                for broker in *brokers {
                    sim.partition(workers[worker].name.as_str(), broker.as_str());
                }
                schedule.push((now + duration, Action::Repair(worker)));
            }
            Fault::Operate {
                worker,
                connector,
                operation,
                duration,
            } => {
                workers[worker]
                    .calls
                    .send(Call::Begin(connector, operation));
                if matches!(
                    operation,
                    Operation::Pause | Operation::Stop | Operation::ResetOffsets
                ) {
                    schedule.push((
                        now + duration,
                        Action::EndOperation(worker, connector, operation),
                    ));
                }
            }
            Fault::StallFlush { duration } => store.arm(StoreFault::StallFlush(duration)),
            Fault::StallPut { duration } => store.arm(StoreFault::StallPut(duration)),
            Fault::FailFlush => store.arm(StoreFault::FailFlush),
            Fault::FailPut => store.arm(StoreFault::FailPut),
            Fault::FailPoll { fatal, duration } => outages.fail(now, duration, fatal),
            Fault::FailSync { pages } => disk.fail_next_sync(pages),
            Fault::FailDirSync => disk.fail_next_dir_sync(),
            Fault::RotateInput => rotations.request(),
            Fault::FailWrite { error } => disk.fail_next_write(error),
            Fault::ShortWrite { writes } => disk.shorten_writes(writes),
            Fault::RestartBroker {
                broker,
                down,
                failover,
            } => {
                sim.crash(brokers[broker].as_str());
                cluster.broker_down(broker as i32);
                if failover < down {
                    schedule.push((now + failover, Action::FailOver(broker)));
                }
                schedule.push((now + down, Action::BrokerUp(broker)));
            }
            Fault::MoveLeaders { partitions, to } => {
                for partition in partitions {
                    cluster.move_leader(&Tp::new(*topic, partition), to as i32, now);
                }
            }
            Fault::DeleteRecords {
                partitions,
                percent,
            } => {
                for partition in partitions {
                    cluster.delete_records(&Tp::new(*topic, partition), percent, now);
                }
            }
            Fault::MoveCoordinators { to } => {
                cluster.move_coordinators(to as i32, now);
            }
            Fault::CrashExternal { down } => {
                for host in *external {
                    sim.crash(host.as_str());
                }
                if !external.is_empty() {
                    coverage::reached(Event::ExternalCrashed);
                }
                schedule.push((now + down, Action::ExternalUp));
            }
            Fault::HoldExternal { duration } => {
                for host in *external {
                    for worker in *workers {
                        sim.hold(worker.name.as_str(), host.as_str());
                    }
                }
                if !external.is_empty() {
                    coverage::reached(Event::ExternalUnreachable);
                }
                schedule.push((now + duration, Action::ReleaseExternal));
            }
            Fault::SlowExternal { latency, duration } => {
                for host in *external {
                    for worker in *workers {
                        sim.set_link_max_message_latency(
                            worker.name.as_str(),
                            host.as_str(),
                            latency,
                        );
                    }
                }
                if !external.is_empty() {
                    coverage::reached(Event::ExternalSlow);
                }
                schedule.push((now + duration, Action::ExternalFast));
            }
            Fault::ErrorsExternal { duration } => {
                crate::kit::errors::answer_with_errors(true);
                schedule.push((now + duration, Action::ExternalErrorsOff));
            }
            Fault::Latency { max, duration } => {
                sim.set_max_message_latency(max);
                schedule.push((now + duration, Action::LatencyOff));
            }
            Fault::TakeOver { from, to, duration } => {
                for broker in *brokers {
                    sim.hold(workers[from].name.as_str(), broker.as_str());
                }
                schedule.push((now + duration, Action::Release(from)));
                orchestrator.place(to);
            }
            Fault::ProduceErrors {
                error,
                partitions,
                percent,
                duration,
            } => {
                cluster.start_produce_errors(ProduceErrors {
                    topic: (*topic).to_owned(),
                    partitions,
                    error: match error {
                        ProduceError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
                        ProduceError::RequestTimedOut => ErrorCode::RequestTimedOut,
                    },
                    percent,
                });
                schedule.push((now + duration, Action::ProduceErrorsOff));
            }
        },
        Action::Restart(worker) => {
            let host = workers[worker].name.as_str();
            let stopping = *workers[worker].stop.borrow();
            match (stopping, sim.is_host_running(host)) {
                // Still stopping cleanly: come back when it has.
                (true, true) => {
                    schedule.push((now + Duration::from_millis(500), Action::Restart(worker)))
                }
                // Already up: restarting it would crash it.
                (false, true) => {}
                (_, false) => {
                    let _ = workers[worker].stop.send(false);
                    sim.bounce(host);
                }
            }
        }
        Action::Release(worker) => {
            for broker in *brokers {
                sim.release(workers[worker].name.as_str(), broker.as_str());
            }
        }
        Action::Repair(worker) => {
            for broker in *brokers {
                sim.repair(workers[worker].name.as_str(), broker.as_str());
            }
        }
        Action::FailOver(broker) => {
            cluster.fail_over(broker as i32, now);
        }
        Action::BrokerUp(broker) => {
            sim.bounce(brokers[broker].as_str());
            cluster.broker_up(broker as i32, now);
        }
        Action::LatencyOff => sim.set_max_message_latency(Duration::ZERO),
        Action::ProduceErrorsOff => cluster.stop_produce_errors(),
        Action::ReleaseExternal => {
            for host in *external {
                for worker in *workers {
                    sim.release(worker.name.as_str(), host.as_str());
                }
            }
        }
        Action::ExternalFast => {
            for host in *external {
                for worker in *workers {
                    sim.set_link_max_message_latency(
                        worker.name.as_str(),
                        host.as_str(),
                        Duration::ZERO,
                    );
                }
            }
        }
        Action::ExternalErrorsOff => crate::kit::errors::answer_with_errors(false),
        Action::EndOperation(worker, connector, operation) => {
            workers[worker].calls.send(Call::End(connector, operation))
        }
        Action::ExternalUp => {
            for host in *external {
                if !sim.is_host_running(host.as_str()) {
                    sim.bounce(host.as_str());
                }
            }
        }
    }
}
