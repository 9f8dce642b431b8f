//! What the harness's actions (faults injected and healed) look like on the run's timeline
//! ([`crate::timeline`]): which lane each lands on, its label and its account.

use std::time::Duration;

use super::actions::Action;
use super::cluster_marks::KAFKA;
use super::names::{broker_name, worker_name};
use crate::faults::{Fault, Operation};
use crate::timeline::{LaneKind, MarkKind, TimelineBuilder};

/// The lane of the sink's destination store.
const DESTINATION: (LaneKind, &str) = (LaneKind::Destination, "destination");
/// The lane of the SequenceSource's source system (its outages).
const SOURCE_SYSTEM: (LaneKind, &str) = (LaneKind::Destination, "source system");
/// The lane of the simulated disks' faults.
const DISKS: (LaneKind, &str) = (LaneKind::Destination, "disks");

/// Marks a fault injected, or its healing, at `now`. `external` names the external system's hosts.
pub(super) fn action(
    timeline: &mut TimelineBuilder,
    now: Duration,
    action: &Action,
    external: &[String],
) {
    let worker = |index: usize| (LaneKind::Worker, worker_name(index));
    let broker = |index: usize| (LaneKind::Broker, broker_name(index));
    match action {
        Action::Inject(fault) => inject(timeline, now, fault, external),
        Action::Restart(index) => {
            let (kind, name) = worker(*index);
            timeline.mark(
                (kind, &name),
                now,
                MarkKind::Recovery,
                "start",
                format!("{name} starts again"),
            );
        }
        Action::Release(index) | Action::Repair(index) => {
            let (kind, name) = worker(*index);
            timeline.mark(
                (kind, &name),
                now,
                MarkKind::Recovery,
                "network back",
                format!("{name} reaches the brokers again"),
            );
        }
        Action::FailOver(index) => timeline.mark(
            KAFKA,
            now,
            MarkKind::Cluster,
            "fail-over",
            format!(
                "the controller moves {}'s partitions and coordinators",
                broker_name(*index)
            ),
        ),
        Action::BrokerUp(index) => {
            let (kind, name) = broker(*index);
            timeline.mark(
                (kind, &name),
                now,
                MarkKind::Recovery,
                "up",
                format!("{name} is up again"),
            );
        }
        Action::LatencyOff => timeline.mark(
            KAFKA,
            now,
            MarkKind::Recovery,
            "latency off",
            "messages are no longer delayed",
        ),
        Action::ProduceErrorsOff => timeline.mark(
            KAFKA,
            now,
            MarkKind::Recovery,
            "produce errors off",
            "the brokers stop answering produce requests with errors",
        ),
        Action::EndOperation(index, connector, _) => {
            let (kind, name) = worker(*index);
            timeline.mark(
                (kind, &name),
                now,
                MarkKind::Recovery,
                "resume",
                format!("the operator resumes {name}'s {connector:?} connector"),
            );
        }
        Action::ExternalUp
        | Action::ReleaseExternal
        | Action::ExternalFast
        | Action::ExternalErrorsOff => {
            for host in external {
                timeline.mark(
                    (LaneKind::External, host),
                    now,
                    MarkKind::Recovery,
                    "back",
                    format!("{host} is reachable again"),
                );
            }
        }
    }
}

/// Marks a fault on the lanes it strikes: a bar for one that lasts.
fn inject(timeline: &mut TimelineBuilder, now: Duration, fault: &Fault, external: &[String]) {
    let label = fault_name(fault);
    let detail = format!("{fault:?}");
    let worker = |index: usize| worker_name(index);
    let span = |timeline: &mut TimelineBuilder, lane: (LaneKind, &str), lasts: Duration| {
        timeline.span(
            lane,
            now,
            now + lasts,
            MarkKind::Fault,
            label.clone(),
            detail.clone(),
        )
    };
    match fault {
        Fault::CrashWorker {
            worker: index,
            down: lasts,
        }
        | Fault::StopWorker {
            worker: index,
            away: lasts,
            ..
        }
        | Fault::HoldNetwork {
            worker: index,
            duration: lasts,
        }
        | Fault::PartitionNetwork {
            worker: index,
            duration: lasts,
        } => span(timeline, (LaneKind::Worker, &worker(*index)), *lasts),
        Fault::Operate {
            worker: index,
            duration,
            operation,
            ..
        } => match operation {
            Operation::Pause | Operation::Stop | Operation::ResetOffsets => {
                span(timeline, (LaneKind::Worker, &worker(*index)), *duration)
            }
            Operation::Restart | Operation::ChangeConfig => timeline.mark(
                (LaneKind::Worker, &worker(*index)),
                now,
                MarkKind::Fault,
                label,
                detail,
            ),
        },
        Fault::TakeOver { from, to, duration } => {
            span(timeline, (LaneKind::Worker, &worker(*from)), *duration);
            timeline.mark(
                (LaneKind::Worker, &worker(*to)),
                now,
                MarkKind::Fault,
                "source placed here",
                format!(
                    "the orchestrator starts the exactly-once source on {} while {} is cut off",
                    worker(*to),
                    worker(*from)
                ),
            );
        }
        Fault::RestartBroker { broker, down, .. } => {
            span(timeline, (LaneKind::Broker, &broker_name(*broker)), *down)
        }
        Fault::StallFlush { .. } | Fault::StallPut { .. } | Fault::FailFlush | Fault::FailPut => {
            timeline.mark(
                DESTINATION,
                now,
                MarkKind::Fault,
                label,
                format!("armed for the next one: {detail}"),
            )
        }
        Fault::FailPoll {
            fatal: false,
            duration,
        } => span(timeline, SOURCE_SYSTEM, *duration),
        Fault::FailPoll { fatal: true, .. } => timeline.mark(
            SOURCE_SYSTEM,
            now,
            MarkKind::Fault,
            label,
            format!("armed for the next poll: {detail}"),
        ),
        Fault::FailSync { .. }
        | Fault::FailDirSync
        | Fault::FailWrite { .. }
        | Fault::ShortWrite { .. }
        | Fault::RotateInput => timeline.mark(DISKS, now, MarkKind::Fault, label, detail),
        Fault::Latency { duration, .. } | Fault::ProduceErrors { duration, .. } => {
            span(timeline, KAFKA, *duration)
        }
        Fault::MoveLeaders { .. }
        | Fault::MoveCoordinators { .. }
        | Fault::DeleteRecords { .. } => timeline.mark(KAFKA, now, MarkKind::Fault, label, detail),
        Fault::CrashExternal { down: lasts }
        | Fault::HoldExternal { duration: lasts }
        | Fault::SlowExternal {
            duration: lasts, ..
        }
        | Fault::ErrorsExternal { duration: lasts } => {
            for host in external {
                span(timeline, (LaneKind::External, host), *lasts);
            }
        }
    }
}

/// The fault's kind as plans write it (`crash-worker`).
fn fault_name(fault: &Fault) -> String {
    serde_yaml::to_value(fault)
        .ok()
        .and_then(|value| {
            value
                .get("kind")
                .and_then(|kind| kind.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| "fault".to_owned())
}
