//! A group consumer's heartbeat task, as librdkafka's background thread (and the Java client's heartbeat
//! thread) runs it: a heartbeat every `heartbeat.interval.ms` while the member holds an assignment, so a slow
//! `put` or `flush` does not lose the session.
//!
//! It also enforces two timeouts in the client. When the runtime has not polled for
//! `max.poll.interval.ms`, the member leaves the group. When no heartbeat has been answered for
//! `session.timeout.ms` (the coordinator cannot be reached, or does not answer), the member gives its
//! partitions up as lost and forgets its member id, as librdkafka does (`rd_kafka_cgrp_session_timeout_check`):
//! by then the coordinator has likely expired the session and handed the partitions to another member,
//! so keeping them until the network heals would let two members own them. Like librdkafka, it counts
//! the session from the last answered heartbeat (or the assignment), and only while steady (holding its
//! assignment with no rebalance under way).

use std::time::Duration;

use tokio::time::Instant;

use super::membership::{Loss, SharedMembership, Timeouts};
use super::routing::Router;
use crate::broker::now;
use crate::coverage::{self, Event};
use crate::protocol::{CoordinatorKind, ErrorCode, LeaveReason, Request, Response};

/// Heartbeats until aborted; marks the membership for rejoin or as lost as the coordinator answers, or
/// does not.
pub async fn heartbeats(
    router: Router,
    group: String,
    timeouts: Timeouts,
    membership: SharedMembership,
) {
    loop {
        // Wake for the next heartbeat, or sooner when the session would end before it.
        let wait = match membership.lock().session_deadline() {
            Some(deadline) => timeouts.heartbeat.min(deadline.saturating_sub(now())),
            None => timeouts.heartbeat,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        let (member_id, generation, deadline) = {
            let m = membership.lock();
            match (&m.member_id, m.joined) {
                (Some(id), true) => (id.clone(), m.generation, m.session_deadline()),
                _ => continue,
            }
        };
        if now().saturating_sub(membership.lock().last_poll) > timeouts.max_poll_interval {
            tracing::warn!(
                %group,
                max_poll_interval = ?timeouts.max_poll_interval,
                "no poll within max.poll.interval.ms: leaving the group"
            );
            let request = Request::LeaveGroup {
                group: group.clone(),
                member_id,
                reason: LeaveReason::PollTimeout,
            };
            coverage::reached(Event::MemberThrownOut);
            // Whether or not the coordinator hears it, the member is out: its partitions are lost.
            let _ = router
                .call_coordinator(CoordinatorKind::Group, &group, &request, Duration::ZERO)
                .await;
            membership.lock().lose(Loss::Removed);
            continue;
        }
        // A rebalance under way (the member still to revoke and rejoin) stops the session's clock.
        let left = deadline.map_or(Duration::MAX, |deadline| deadline.saturating_sub(now()));
        if left.is_zero() {
            session_timed_out(&group, &timeouts, &membership);
            continue;
        }
        let request = Request::Heartbeat {
            group: group.clone(),
            member_id,
            generation,
        };
        let call =
            router.call_coordinator(CoordinatorKind::Group, &group, &request, Duration::ZERO);
        let response = match deadline {
            Some(_) => tokio::time::timeout_at(Instant::now() + left, call).await,
            None => Ok(call.await),
        };
        let Ok(response) = response else {
            // Unanswered until the session's end (the heartbeat is dropped with its connection).
            let steady = {
                let m = membership.lock();
                m.session_deadline().is_some() && m.generation == generation
            };
            if steady {
                session_timed_out(&group, &timeouts, &membership);
            }
            continue;
        };
        let mut m = membership.lock();
        if m.generation != generation || !m.joined {
            continue;
        }
        match response {
            Ok(Response::Done) => m.session_deadline = now() + timeouts.session,
            Ok(Response::Error(ErrorCode::RebalanceInProgress)) => {
                m.session_deadline = now() + timeouts.session;
                m.rejoin = true;
            }
            Ok(Response::Error(ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration)) => {
                tracing::warn!(%group, "this member was removed from the group: its partitions are lost");
                m.lose(Loss::Removed);
            }
            Ok(other) => tracing::warn!(%group, response = ?other, "unexpected heartbeat response"),
            Err(e) => tracing::debug!(%group, error = %e, "heartbeat failed"),
        }
    }
}

fn session_timed_out(group: &str, timeouts: &Timeouts, membership: &SharedMembership) {
    tracing::warn!(
        %group,
        session_timeout = ?timeouts.session,
        "no heartbeat answered within session.timeout.ms: the partitions are lost; rejoining"
    );
    membership.lock().lose(Loss::SessionTimedOut);
}
