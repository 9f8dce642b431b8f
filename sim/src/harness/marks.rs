//! What the harness's actions and the cluster's events look like on the run's timeline
//! ([`crate::timeline`]): which lane each lands on, its label and its account.

use std::time::Duration;

use super::actions::Action;
use super::hosts::{broker_name, worker_name};
use crate::broker::{ClusterEvent, GroupChange};
use crate::faults::Fault;
use crate::timeline::{LaneKind, MarkKind, TimelineBuilder};

/// The lane of the cluster as a whole.
const KAFKA: (LaneKind, &str) = (LaneKind::Kafka, "kafka");
/// The lane of the sink's destination store.
const DESTINATION: (LaneKind, &str) = (LaneKind::Destination, "destination");
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
        }
        | Fault::HoldNetwork {
            worker: index,
            duration: lasts,
        }
        | Fault::PartitionNetwork {
            worker: index,
            duration: lasts,
        } => span(timeline, (LaneKind::Worker, &worker(*index)), *lasts),
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
        Fault::StallFlush { .. } | Fault::StallPut { .. } | Fault::FailFlush => timeline.mark(
            DESTINATION,
            now,
            MarkKind::Fault,
            label,
            format!("armed for the next one: {detail}"),
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

/// Marks what the cluster did: group changes on the group's and its members' lanes, commits on the
/// member's, the rest on the cluster's.
pub(super) fn cluster_event(timeline: &mut TimelineBuilder, at: Duration, event: &ClusterEvent) {
    match event {
        ClusterEvent::Group { group, change } => {
            let group_lane = format!("group {group}");
            let group_lane = (LaneKind::Group, group_lane.as_str());
            match change {
                GroupChange::Joined(member) => {
                    timeline.mark(
                        group_lane,
                        at,
                        MarkKind::Rebalance,
                        "join",
                        format!("{member} joins {group}"),
                    );
                    timeline.mark(
                        (LaneKind::Member, &format!("member {member}")),
                        at,
                        MarkKind::Rebalance,
                        "joined",
                        format!("{member} joins {group}"),
                    );
                }
                GroupChange::Departed(member, why) => {
                    let detail = format!("{member} leaves {group}: {why:?}");
                    timeline.mark(group_lane, at, MarkKind::Rebalance, "leave", detail.clone());
                    timeline.mark(
                        (LaneKind::Member, &format!("member {member}")),
                        at,
                        MarkKind::Rebalance,
                        format!("{why:?}"),
                        detail,
                    );
                }
                GroupChange::RebalanceStarted => timeline.mark(
                    group_lane,
                    at,
                    MarkKind::Rebalance,
                    "rebalance",
                    format!("{group} starts rebalancing"),
                ),
                GroupChange::JoinPhaseEnded {
                    generation,
                    members,
                } => timeline.mark(
                    group_lane,
                    at,
                    MarkKind::Rebalance,
                    format!("joined {generation}"),
                    format!(
                        "{group}'s join phase ends: generation {generation} with {}",
                        members.join(", ")
                    ),
                ),
                GroupChange::Completed {
                    generation,
                    assignment,
                    ..
                } => {
                    let shares: Vec<String> = assignment
                        .iter()
                        .map(|(member, tps)| format!("{member}: {}", names(tps)))
                        .collect();
                    timeline.mark(
                        group_lane,
                        at,
                        MarkKind::Generation,
                        format!("gen {generation}"),
                        format!("{group} generation {generation}: {}", shares.join("; ")),
                    );
                    for (member, tps) in assignment {
                        timeline.mark(
                            (LaneKind::Member, &format!("member {member}")),
                            at,
                            MarkKind::Generation,
                            format!("gen {generation}"),
                            format!("generation {generation} assigns {member} {}", names(tps)),
                        );
                    }
                }
            }
        }
        ClusterEvent::Committed {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let offsets: Vec<String> = offsets
                .iter()
                .map(|(tp, offset)| format!("{tp}@{offset}"))
                .collect();
            timeline.mark(
                (LaneKind::Member, &format!("member {member_id}")),
                at,
                MarkKind::Commit,
                "commit",
                format!(
                    "{member_id} (generation {generation}) commits to {group}: {}",
                    offsets.join(", ")
                ),
            );
        }
        ClusterEvent::TransactionEnded {
            transactional_id,
            committed,
            timed_out,
            partitions,
            ..
        } => {
            let lane = format!("transactions {transactional_id}");
            let (kind, label) = match (committed, timed_out) {
                (true, _) => (MarkKind::Commit, "commit"),
                (false, false) => (MarkKind::Cluster, "abort"),
                (false, true) => (MarkKind::Fault, "timed out"),
            };
            timeline.mark(
                (LaneKind::Kafka, &lane),
                at,
                kind,
                label,
                format!("{event:?} over {}", names(partitions)),
            );
        }
        ClusterEvent::ProducerInitialized {
            transactional_id, ..
        } => {
            let lane = format!("transactions {transactional_id}");
            timeline.mark(
                (LaneKind::Kafka, &lane),
                at,
                MarkKind::Lifecycle,
                "init",
                format!("{event:?}"),
            );
        }
        ClusterEvent::TopicCreated { .. }
        | ClusterEvent::LeaderMoved { .. }
        | ClusterEvent::RecordsDeleted { .. } => timeline.mark(
            KAFKA,
            at,
            MarkKind::Cluster,
            cluster_label(event),
            format!("{event:?}"),
        ),
    }
}

fn cluster_label(event: &ClusterEvent) -> &'static str {
    match event {
        ClusterEvent::TopicCreated { .. } => "topic",
        ClusterEvent::LeaderMoved { .. } => "leader moved",
        _ => "records deleted",
    }
}

fn names(tps: &[crate::protocol::Tp]) -> String {
    if tps.is_empty() {
        return "nothing".to_owned();
    }
    tps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
