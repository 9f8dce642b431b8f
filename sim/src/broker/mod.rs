//! The simulated Kafka cluster: partition logs, group coordinators, the transaction coordinator, and the
//! server that answers clients over `turmoil::net`.
//!
//! [`Cluster`] is the cluster's state. It lives outside the broker host, so restarting the host (a broker
//! bounce) drops connections and requests in flight but keeps acknowledged data, committed offsets,
//! group membership and transaction state, as a replicated cluster does. The harness reads it to check what Kafka holds, and
//! watches what it does through a [`ClusterObserver`].

mod group;
mod log;
mod produce_errors;
mod server;
mod txn;

pub use group::{Departure, GroupChange};
pub use log::{Committed, Entry, Logs, Visibility};
pub use produce_errors::ProduceErrors;
pub use server::serve;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::protocol::Tp;
use group::Group;
use produce_errors::ProduceFaults;
use txn::Transactions;

/// The port the simulated broker listens on.
pub const BROKER_PORT: u16 = 9092;

/// Broker settings, as `server.properties` would give them.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
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
    groups: BTreeMap<String, Group>,
    transactions: Transactions,
    produce_faults: ProduceFaults,
    /// `group.initial.rebalance.delay.ms`, for groups a transaction's offsets create.
    initial_rebalance_delay: Duration,
    observer: Option<Box<dyn ClusterObserver>>,
}

impl ClusterState {
    /// Committed offsets of a group.
    pub fn committed(&self, group: &str) -> BTreeMap<Tp, i64> {
        self.groups
            .get(group)
            .map(|g| g.committed().clone())
            .unwrap_or_default()
    }

    /// Applies a committed transaction's offsets to a group.
    fn commit_offsets(&mut self, group: &str, offsets: &BTreeMap<Tp, i64>) {
        let delay = self.initial_rebalance_delay;
        self.groups
            .entry(group.to_owned())
            .or_insert_with(|| Group::new(delay))
            .apply_offsets(offsets);
    }

    fn emit(&mut self, event: ClusterEvent) {
        if let Some(observer) = &mut self.observer {
            observer.on_event(now(), &event, &self.logs);
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
        Cluster {
            config,
            state: Mutex::new(ClusterState {
                logs: Logs::default(),
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

    /// Runs the transaction coordinator's timer once: aborts transactions past their timeout.
    pub fn tick_transactions(&self) {
        let expired = txn::expire(&mut self.lock());
        if expired {
            self.appended.notify_waiters();
        }
    }

    /// Runs the coordinators' timers once: session expiry and rebalance deadlines.
    pub fn tick_groups(&self) {
        let now = now();
        let mut state = self.lock();
        let names: Vec<String> = state.groups.keys().cloned().collect();
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
