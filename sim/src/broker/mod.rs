//! The simulated Kafka cluster: partition logs, group coordinators, the transaction coordinator, which
//! broker leads and coordinates what, and the server each broker host runs to answer clients over
//! `turmoil::net`.
//!
//! [`Cluster`] is the cluster's state, shared by its brokers. It lives outside the broker hosts, so
//! restarting a host (a broker bounce) drops its connections and requests in flight but keeps
//! acknowledged data, committed offsets, group membership and transaction state, as a replicated cluster
//! does; its partitions and coordinators fail over to another broker ([`Layout`]). The harness reads it to check what Kafka holds, and
//! watches what it does through a [`ClusterObserver`].

mod group;
mod layout;
mod log;
mod produce_errors;
mod server;
mod txn;

pub use group::{Departure, GroupChange};
pub use layout::{Layout, CONSUMER_OFFSETS, TRANSACTION_STATE};
#[cfg(test)]
pub(crate) use log::test_batch;
pub use log::{Committed, Entry, Logs, Visibility};
pub use produce_errors::ProduceErrors;
pub use server::serve;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::protocol::{CoordinatorKind, Tp};
use group::Group;
use produce_errors::ProduceFaults;
use txn::Transactions;

/// The port the simulated broker listens on.
pub const BROKER_PORT: u16 = 9092;

/// Broker settings, as `server.properties` would give them.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Each broker's advertised listener (`host:port`), in broker id order: how many brokers there are.
    pub listeners: Vec<String>,
    /// The cluster id metadata answers carry.
    pub cluster_id: String,
    /// `num.partitions`: partitions of an automatically created topic.
    pub default_partitions: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// How often the coordinator checks sessions and rebalance deadlines.
    pub coordinator_tick: Duration,
    /// A planted bug, for the oracle's own tests: the coordinator accepts every offset commit, also from a
    /// member of an older generation or one no longer in the group.
    pub accept_stale_commits: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listeners: vec![format!("broker:{BROKER_PORT}")],
            cluster_id: "sim-cluster".to_owned(),
            default_partitions: 1,
            auto_create_topics: true,
            initial_rebalance_delay: Duration::from_secs(3),
            coordinator_tick: Duration::from_millis(100),
            accept_stale_commits: false,
        }
    }
}

/// Something the cluster did that the harness traces or checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    TopicCreated {
        topic: String,
        partitions: i32,
    },
    /// A partition's leadership moved (with an internal partition's, the coordinators it carries).
    LeaderMoved {
        tp: Tp,
        from: i32,
        to: i32,
    },
    Group {
        group: String,
        change: GroupChange,
    },
    Committed {
        group: String,
        member_id: String,
        generation: i32,
        offsets: Vec<(Tp, i64)>,
    },
    /// A transactional producer (re)initialized: every older epoch of its id is fenced from now on.
    ProducerInitialized {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
    },
    /// Retention (or an administrator's DeleteRecords) deleted a partition's records at these offsets.
    RecordsDeleted {
        tp: Tp,
        deleted: Range<i64>,
    },
    /// A transaction committed or aborted (`timed_out`: by the coordinator, past `transaction.timeout.ms`).
    TransactionEnded {
        transactional_id: String,
        producer_id: i64,
        epoch: i16,
        committed: bool,
        timed_out: bool,
        partitions: Vec<Tp>,
    },
}

/// Watches the cluster; called synchronously, so a check sees the cluster's logs as of the event.
pub trait ClusterObserver: Send {
    fn on_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs);
}

/// The cluster's state: logs and groups.
pub struct ClusterState {
    pub logs: Logs,
    pub layout: Layout,
    groups: BTreeMap<String, Group>,
    transactions: Transactions,
    produce_faults: ProduceFaults,
    /// `group.initial.rebalance.delay.ms`, for groups a transaction's offsets create.
    initial_rebalance_delay: Duration,
    observer: Option<Box<dyn ClusterObserver>>,
}

impl ClusterState {
    /// Whether `broker` may answer for `tp`.
    fn leads(&self, broker: i32, tp: &Tp) -> bool {
        self.layout.leader(tp) == broker
    }

    /// Whether `broker` may answer for this group or transactional id.
    fn coordinates(&self, broker: i32, kind: CoordinatorKind, key: &str) -> bool {
        self.layout.coordinator(kind, key) == broker
    }

    /// Moves a partition's leadership at `at`; the groups it coordinates are loaded afresh on their new
    /// coordinator, which restarts their members' session timers (as Kafka's `onGroupLoaded` does).
    fn move_leader(&mut self, tp: &Tp, to: i32, at: Duration) -> bool {
        let Some(from) = self.layout.move_leader(tp, to) else {
            return false;
        };
        let mut carries = false;
        if *tp.topic == *CONSUMER_OFFSETS {
            for (name, group) in &mut self.groups {
                if Layout::coordinator_partition(CoordinatorKind::Group, name) == *tp {
                    group.loaded(at);
                    carries = true;
                }
            }
        }
        if *tp.topic == *TRANSACTION_STATE {
            carries = self
                .transactions
                .ids()
                .any(|id| Layout::coordinator_partition(CoordinatorKind::Transaction, id) == *tp);
        }
        // An internal partition that coordinates nothing the cluster knows moves silently.
        let internal = *tp.topic == *CONSUMER_OFFSETS || *tp.topic == *TRANSACTION_STATE;
        if internal && !carries {
            return true;
        }
        self.emit_at(
            at,
            ClusterEvent::LeaderMoved {
                tp: tp.clone(),
                from,
                to,
            },
        );
        true
    }

    /// Every partition `broker` leads: of the topics, and of the internal topics.
    fn led_by(&self, broker: i32) -> Vec<Tp> {
        let topics = self
            .logs
            .topics()
            .into_iter()
            .flat_map(|(topic, count)| (0..count).map(move |p| Tp::new(topic.clone(), p)));
        self.layout.led_by(broker, topics)
    }

    /// Committed offsets of a group.
    pub fn committed(&self, group: &str) -> BTreeMap<Tp, i64> {
        self.groups
            .get(group)
            .map(|g| g.committed().clone())
            .unwrap_or_default()
    }

    /// Whether a group has members (an admin may change only a group without).
    fn group_has_members(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(Group::has_members)
    }

    /// Forgets a group and its offsets.
    fn delete_group(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// Applies a committed transaction's (or an admin's) offsets to a group.
    fn commit_offsets(&mut self, group: &str, offsets: &BTreeMap<Tp, i64>) {
        let delay = self.initial_rebalance_delay;
        self.groups
            .entry(group.to_owned())
            .or_insert_with(|| Group::new(delay))
            .apply_offsets(offsets);
    }

    fn emit(&mut self, event: ClusterEvent) {
        self.emit_at(now(), event);
    }

    fn emit_at(&mut self, at: Duration, event: ClusterEvent) {
        if let Some(observer) = &mut self.observer {
            observer.on_event(at, &event, &self.logs);
        }
    }

    fn emit_group(&mut self, group: &str, changes: Vec<GroupChange>) {
        for change in changes {
            self.emit(ClusterEvent::Group {
                group: group.to_owned(),
                change,
            });
        }
    }
}

/// A simulated Kafka cluster, shared by the broker host and the harness.
pub struct Cluster {
    config: BrokerConfig,
    state: Mutex<ClusterState>,
    /// Woken when records are appended (fetches long-poll on it).
    appended: Notify,
    /// Woken when a group changes (joins wait on it).
    groups_changed: Notify,
}

impl Cluster {
    pub fn new(config: BrokerConfig) -> Cluster {
        let initial_rebalance_delay = config.initial_rebalance_delay;
        let brokers = i32::try_from(config.listeners.len()).unwrap_or(i32::MAX);
        Cluster {
            config,
            state: Mutex::new(ClusterState {
                logs: Logs::default(),
                layout: Layout::new(brokers),
                groups: BTreeMap::new(),
                transactions: Transactions::default(),
                produce_faults: ProduceFaults::default(),
                initial_rebalance_delay,
                observer: None,
            }),
            appended: Notify::new(),
            groups_changed: Notify::new(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Installs the observer that sees every event from now on.
    pub fn observe(&self, observer: Box<dyn ClusterObserver>) {
        self.lock().observer = Some(observer);
    }

    /// The state, locked. Never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a topic (for scenario setup, as `kafka-topics --create` would).
    pub fn create_topic(&self, name: &str, partitions: i32) -> bool {
        let mut state = self.lock();
        let created = state.logs.create(name, partitions).unwrap_or(false);
        if created {
            topic_created(&mut state, name, partitions);
        }
        created
    }

    /// Answers a share of the produce batches for some partitions with a retriable error until
    /// [`Cluster::stop_produce_errors`].
    pub fn start_produce_errors(&self, errors: ProduceErrors) {
        self.lock().produce_faults.start(errors);
    }

    pub fn stop_produce_errors(&self) {
        self.lock().produce_faults.stop();
    }

    /// Moves a partition's leadership to broker `to` (a reassignment or an election) at simulated time
    /// `at` (the harness acts from outside the simulation's hosts); with an internal partition, the
    /// coordinators it carries move too. Requests waiting on the old leader are answered that it no
    /// longer leads.
    pub fn move_leader(&self, tp: &Tp, to: i32, at: Duration) -> bool {
        let moved = self.lock().move_leader(tp, to, at);
        if moved {
            self.leadership_changed();
        }
        moved
    }

    /// Retention deletes the oldest `percent` of a partition's readable records; returns the new log
    /// start.
    pub fn delete_records(&self, tp: &Tp, percent: u8, at: Duration) -> Option<i64> {
        let mut state = self.lock();
        let start = state.logs.start_offset(tp).ok()?;
        let end = state.logs.end_offset(tp).ok()?;
        let before = start + (end - start) * i64::from(percent.min(100)) / 100;
        let new_start = state.logs.delete_records(tp, before).ok()?;
        if new_start > start {
            state.emit_at(
                at,
                ClusterEvent::RecordsDeleted {
                    tp: tp.clone(),
                    deleted: start..new_start,
                },
            );
        }
        Some(new_start)
    }

    /// Moves the coordinator of every group and transactional id the cluster knows to broker `to` at
    /// `at`; returns how many moved.
    pub fn move_coordinators(&self, to: i32, at: Duration) -> usize {
        let mut state = self.lock();
        let mut partitions: Vec<Tp> = state
            .groups
            .keys()
            .map(|g| Layout::coordinator_partition(CoordinatorKind::Group, g))
            .chain(
                state
                    .transactions
                    .ids()
                    .map(|id| Layout::coordinator_partition(CoordinatorKind::Transaction, id)),
            )
            .collect();
        partitions.sort();
        partitions.dedup();
        let moved = partitions
            .iter()
            .filter(|tp| state.move_leader(tp, to, at))
            .count();
        drop(state);
        if moved > 0 {
            self.leadership_changed();
        }
        moved
    }

    /// Broker `broker` went down (its host crashed): what it leads is unreachable until
    /// [`Cluster::fail_over`].
    pub fn broker_down(&self, broker: i32) {
        self.lock().layout.set_down(broker, true);
        self.leadership_changed();
    }

    /// The controller noticed broker `broker` is gone (at `at`): another live broker takes over
    /// everything it leads. Returns how many partitions moved.
    pub fn fail_over(&self, broker: i32, at: Duration) -> usize {
        let mut state = self.lock();
        let Some(successor) = state.layout.successor(broker) else {
            return 0;
        };
        let moved = state
            .led_by(broker)
            .iter()
            .filter(|tp| state.move_leader(tp, successor, at))
            .count();
        drop(state);
        self.leadership_changed();
        moved
    }

    /// Broker `broker` is back (at `at`); its preferred leaderships return to it (a preferred leader
    /// election).
    pub fn broker_up(&self, broker: i32, at: Duration) -> usize {
        let mut state = self.lock();
        state.layout.set_down(broker, false);
        let moved = state
            .layout
            .moved_away_from(broker)
            .iter()
            .filter(|tp| state.move_leader(tp, broker, at))
            .count();
        drop(state);
        self.leadership_changed();
        moved
    }

    /// Wakes the requests that wait on a leader or coordinator, so that one that moved is answered so.
    fn leadership_changed(&self) {
        self.appended.notify_waiters();
        self.groups_changed.notify_waiters();
    }

    /// Runs the transaction coordinator's timer once on `broker`: aborts the transactions it
    /// coordinates that are past their timeout.
    pub fn tick_transactions(&self, broker: i32) {
        let expired = txn::expire(&mut self.lock(), broker);
        if expired {
            self.appended.notify_waiters();
        }
    }

    /// Runs the group coordinator's timers once on `broker`, for the groups it coordinates: session
    /// expiry and rebalance deadlines.
    pub fn tick_groups(&self, broker: i32) {
        let now = now();
        let mut state = self.lock();
        let names: Vec<String> = state
            .groups
            .keys()
            .filter(|g| state.coordinates(broker, CoordinatorKind::Group, g))
            .cloned()
            .collect();
        let mut any = false;
        for name in names {
            let mut changes = Vec::new();
            if let Some(group) = state.groups.get_mut(&name) {
                group.tick(now, &mut changes);
            }
            any |= !changes.is_empty();
            state.emit_group(&name, changes);
        }
        drop(state);
        if any {
            self.groups_changed.notify_waiters();
        }
    }
}

/// Records a new topic and starts a rebalance of every group consuming it.
fn topic_created(state: &mut ClusterState, name: &str, partitions: i32) {
    state.emit(ClusterEvent::TopicCreated {
        topic: name.to_owned(),
        partitions,
    });
    let now = now();
    let groups: Vec<String> = state.groups.keys().cloned().collect();
    for group in groups {
        let mut changes = Vec::new();
        if let Some(g) = state.groups.get_mut(&group) {
            g.topics_changed(now, name, &mut changes);
        }
        state.emit_group(&group, changes);
    }
}

/// Simulated time since the simulation started (zero outside one).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}
