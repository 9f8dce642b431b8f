//! What the cluster's events look like on the run's timeline ([`crate::timeline`]): group changes on
//! the group's and its members' lanes, commits on the member's, the rest on the cluster's.

use std::time::Duration;

use crate::broker::{ClusterEvent, GroupChange};
use crate::timeline::{LaneKind, MarkKind, TimelineBuilder};

/// The lane of the cluster as a whole.
pub(super) const KAFKA: (LaneKind, &str) = (LaneKind::Kafka, "kafka");

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
