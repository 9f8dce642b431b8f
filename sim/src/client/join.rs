//! One round of the classic group protocol, run as a task of its own so that it survives across polls
//! (as librdkafka's background thread runs it): JoinGroup; if this member leads, the assignment from
//! every member's subscription (its assignor, over the topics a metadata request finds); SyncGroup.
//!
//! The member id and generation are adopted as soon as the JoinGroup answer arrives, as librdkafka does,
//! so a commit sent before the SyncGroup answer carries the new generation (and the coordinator refuses
//! it with REBALANCE_IN_PROGRESS until the leader's assignment is in). The member is steady again (it
//! heartbeats, and its session restarts) once its SyncGroup is answered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::kafka::KafkaError;

use super::assignor;
use super::connection::unexpected;
use super::membership::SharedMembership;
use super::routing::Router;
use crate::broker::now;
use crate::protocol::{CoordinatorKind, ErrorCode, MemberSubscription, Request, Response, Tp};

/// How a round ended.
#[derive(Debug)]
pub enum Round {
    /// The member's partitions in its new generation.
    Assigned(Vec<Tp>),
    /// The coordinator no longer knows this member or its generation: it joins again as a new member.
    Fenced,
    /// Join again: a new rebalance began before the assignment arrived, or the broker could not be
    /// reached (`backoff`: wait a little first).
    Retry { backoff: bool },
}

/// What a member joins with.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group: String,
    pub client_id: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub cooperative: bool,
    pub subscription: MemberSubscription,
}

/// Runs one round through `router` (connections of its own: the answers wait for the whole group).
pub async fn round(
    router: Arc<Router>,
    request: JoinRequest,
    membership: SharedMembership,
) -> Result<Round, KafkaError> {
    let wait = request.rebalance_timeout;
    let join = Request::JoinGroup {
        group: request.group.clone(),
        member_id: membership.lock().member_id.clone(),
        client_id: request.client_id,
        session_timeout_ms: request.session_timeout.as_millis() as u64,
        rebalance_timeout_ms: request.rebalance_timeout.as_millis() as u64,
        cooperative: request.cooperative,
        subscription: request.subscription,
    };
    let group = request.group.clone();
    let coordinator = |request: Request| {
        let router = router.clone();
        let group = group.clone();
        async move {
            router
                .call_coordinator(CoordinatorKind::Group, &group, &request, wait)
                .await
        }
    };
    let (member_id, generation, assignments) = match coordinator(join).await {
        Ok(Response::Joined {
            member_id,
            generation,
            leader,
            cooperative,
            members,
        }) => {
            {
                let mut m = membership.lock();
                m.member_id = Some(member_id.clone());
                m.generation = generation;
            }
            let assignments = if leader == member_id {
                match leads(&router, cooperative, members).await {
                    Ok(assignments) => assignments,
                    Err(e) => return Ok(unreachable_broker(&request.group, &e)),
                }
            } else {
                Vec::new()
            };
            (member_id, generation, assignments)
        }
        Ok(Response::Error(ErrorCode::UnknownMemberId)) => return Ok(Round::Fenced),
        Ok(other) => return Err(unexpected(other)),
        Err(e) => return Ok(unreachable_broker(&request.group, &e)),
    };
    let sync = Request::SyncGroup {
        group: request.group.clone(),
        member_id,
        generation,
        assignments,
    };
    match coordinator(sync).await {
        Ok(Response::Synced { assignment }) => {
            let mut m = membership.lock();
            if m.generation == generation {
                m.joined = true;
                m.rejoin = false;
                m.lost = None;
                m.session_deadline = now() + request.session_timeout;
            }
            Ok(Round::Assigned(assignment))
        }
        Ok(Response::Error(ErrorCode::RebalanceInProgress)) => Ok(Round::Retry { backoff: false }),
        Ok(Response::Error(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration)) => {
            Ok(Round::Fenced)
        }
        Ok(other) => Err(unexpected(other)),
        Err(e) => Ok(unreachable_broker(&request.group, &e)),
    }
}

/// The leader's part: every member's partitions, by the group's assignor over the topics there are now.
async fn leads(
    router: &Router,
    cooperative: bool,
    members: Vec<(String, MemberSubscription)>,
) -> Result<Vec<(String, Vec<Tp>)>, KafkaError> {
    let topics = router.metadata(None, false).await?;
    let members: BTreeMap<String, MemberSubscription> = members.into_iter().collect();
    Ok(assignor::assign(cooperative, &members, &topics)
        .into_iter()
        .collect())
}

fn unreachable_broker(group: &str, error: &KafkaError) -> Round {
    tracing::debug!(%group, %error, "joining the group failed; retrying");
    Round::Retry { backoff: true }
}
