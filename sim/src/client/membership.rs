//! What a group consumer's polling side, its join task and its heartbeat task share: the member id and
//! generation, whether the member is steady in its group, and whether (and why) its partitions are lost.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Why a member's partitions are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The coordinator no longer knows the member (its session expired there, or it missed a
    /// rebalance), or the member left because the runtime stopped polling.
    Removed,
    /// No heartbeat was answered within `session.timeout.ms`: the member gives its partitions up on its
    /// own, as librdkafka does, since the coordinator has likely given them to another member by now.
    SessionTimedOut,
}

#[derive(Debug, Default)]
pub struct Membership {
    pub member_id: Option<String>,
    /// Adopted from the JoinGroup answer, before the assignment arrives (as librdkafka does).
    pub generation: i32,
    /// In the group with an assignment (not between the start of a rejoin and its SyncGroup answer): the
    /// member heartbeats.
    pub joined: bool,
    /// The coordinator asked members to rejoin.
    pub rejoin: bool,
    /// Owned partitions are lost; the next poll says so.
    pub lost: Option<Loss>,
    pub last_poll: Duration,
    /// The member's own view of its session: when it ends without an answered heartbeat.
    pub session_deadline: Duration,
}

impl Membership {
    /// When the session ends without an answered heartbeat, if it is counting: only while steady,
    /// as librdkafka checks it (`RD_KAFKA_CGRP_JOIN_STATE_STEADY`), not while a rebalance is under way.
    pub fn session_deadline(&self) -> Option<Duration> {
        (self.joined && !self.rejoin).then_some(self.session_deadline)
    }

    /// Out of the group: the member id is forgotten, and what it owned is lost.
    pub fn lose(&mut self, why: Loss) {
        self.lost = Some(why);
        self.joined = false;
        self.member_id = None;
    }
}

/// The membership, shared between the consumer and its tasks.
#[derive(Debug, Clone, Default)]
pub struct SharedMembership(Arc<Mutex<Membership>>);

impl SharedMembership {
    /// Locked; never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Membership> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The consumer's group timeouts.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub session: Duration,
    pub heartbeat: Duration,
    /// Also the rebalance timeout the member joins with, as Kafka clients use it.
    pub max_poll_interval: Duration,
}
