//! The author's side of a sink test: the external system the connector writes to, described by a trait the
//! author implements ([`ExternalSink`]), and the ledger it tells what became durable ([`DurableWrites`]).
//!
//! The system runs on simulated hosts of its own, reached over turmoil's network, and keeps what it made
//! durable outside those hosts (as a database keeps its files on a disk): a crash of a host
//! ([`FaultKind::CrashExternal`](crate::faults::FaultKind::CrashExternal)) loses what the host held in
//! memory and nothing else. Each write that becomes durable is mapped back to the Kafka record it holds
//! (topic, partition, offset) and told to [`DurableWrites`], with the worker that wrote it; from that the
//! oracle checks every sink commit against what was durable when it was made, finds records never
//! written or written wrongly, and judges every record written again.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_core::api::ConnectorPlugin;
use sluice_core::config::ConfigMap;

use crate::broker::now;
use crate::protocol::Tp;
use crate::workload::{member_worker, DestinationStore};

/// The external system a sink connector writes to, as the simulation runs it.
///
/// One value serves every run of a test: [`build`](ExternalSink::build) starts a fresh system each time.
pub trait ExternalSink: Send + Sync + 'static {
    /// Adds the system's hosts to the simulation (with `sim.host`). What the system makes durable, it
    /// tells `durable`. State that must survive a crash of a host lives outside the host's closure.
    fn build(&self, sim: &mut turmoil::Sim<'_>, durable: DurableWrites);

    /// The names of the hosts `build` adds: a
    /// [`CrashExternal`](crate::faults::Fault::CrashExternal) fault crashes and restarts them.
    fn hosts(&self) -> Vec<String>;

    /// For a sink that keeps files on the workers' disks ([`worker_disk`](super::worker_disk)): a sync
    /// by worker `worker` of `path`, a file it appends to (`FileSystem::open_append`), made these
    /// `lines` durable. Tell `durable` which records they hold ([`DurableWrites::written_as`], with the
    /// path as the writer). Files written whole (`create`, then `rename`) are not told, nor are synced
    /// lines a truncation cuts off. By default nothing: the system is elsewhere.
    fn synced(&self, durable: &DurableWrites, worker: usize, path: &str, lines: &[String]) {
        let _ = (durable, worker, path, lines);
    }
}

/// The connector under test and its external system.
#[derive(Clone)]
pub struct SinkUnderTest {
    /// The class name the connector is registered under.
    pub class: String,
    /// Makes the connector, with what it needs to reach its system (a [`SimDialer`](super::SimDialer)).
    pub plugin: ConnectorPlugin,
    /// The connector's config; the kit adds `name`, `topics` and the consumer's client id, and
    /// `errors.tolerance=all` unless the config sets it.
    pub config: ConfigMap,
    /// The model of the system the connector writes to.
    pub system: Arc<dyn ExternalSink>,
}

impl fmt::Debug for SinkUnderTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkUnderTest")
            .field("class", &self.class)
            .field("config", &self.config)
            .field("hosts", &self.system.hosts())
            .finish()
    }
}

/// Where an external system says what it made durable; cheap to clone.
///
/// The connector does not say when it rewinds, so a writer's delivery of a partition is seen to begin
/// again where its writes go back to an earlier offset, at some time between its last write before and
/// its first write after.
#[derive(Debug, Clone)]
pub struct DurableWrites {
    store: Arc<DestinationStore>,
    deliveries: Arc<Mutex<Deliveries>>,
}

#[derive(Debug, Default)]
struct Deliveries {
    /// Per (writer, partition): the last offset written and when, and the delivery it was in.
    last: BTreeMap<(String, Tp), (i64, Duration, u64)>,
    /// Per writer: the deliveries begun so far.
    begun: BTreeMap<String, u64>,
}

/// The worker of writes from hosts that are not workers.
const UNKNOWN_WORKER: usize = usize::MAX;

impl DurableWrites {
    pub(crate) fn new(store: Arc<DestinationStore>) -> DurableWrites {
        DurableWrites {
            store,
            deliveries: Arc::default(),
        }
    }

    fn deliveries(&self) -> MutexGuard<'_, Deliveries> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record at `topic`/`partition`/`offset`, whose value is `value`, is durable in the system now;
    /// the connection that wrote it came from `peer` (a worker host's address and the connection's port,
    /// which tells the tasks of a worker apart). Call it inside the simulation, once per write made
    /// durable: a record written twice is told twice.
    pub fn written(&self, peer: SocketAddr, topic: &str, partition: i32, offset: i64, value: &str) {
        let worker = worker_at(peer.ip()).unwrap_or(UNKNOWN_WORKER);
        let writer = match worker {
            UNKNOWN_WORKER => format!("{peer} (no worker)"),
            worker => format!("worker-{worker} via {peer}"),
        };
        self.record(writer, worker, topic, partition, offset, value);
    }

    /// As [`written`](DurableWrites::written), for a destination that applies records as upserts by
    /// key: its `key` holds this record from now on, replacing what it held. Runs held to
    /// [`Guarantee::EffectivelyOnce`](crate::scenario::Guarantee::EffectivelyOnce) check that each key
    /// ends with the latest record of its key.
    pub fn upserted(
        &self,
        peer: SocketAddr,
        key: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) {
        self.written(peer, topic, partition, offset, value);
        self.store
            .upsert(key, Tp::new(topic, partition), offset, value);
    }

    /// As [`written_by`](DurableWrites::written_by), with the writer named (a task's own file, say):
    /// writers are told apart by name, so two tasks of one worker are two writers.
    pub fn written_as(
        &self,
        worker: usize,
        writer: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) {
        self.record(
            format!("worker-{worker} {writer}"),
            worker,
            topic,
            partition,
            offset,
            value,
        );
    }

    /// As [`written`](DurableWrites::written), for a system that knows the writing worker but not its
    /// connection: the worker's tasks count as one writer.
    pub fn written_by(&self, worker: usize, topic: &str, partition: i32, offset: i64, value: &str) {
        self.record(
            format!("worker-{worker}"),
            worker,
            topic,
            partition,
            offset,
            value,
        );
    }

    fn record(
        &self,
        writer: String,
        worker: usize,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) {
        let tp = Tp::new(topic, partition);
        let at = now();
        let mut deliveries = self.deliveries();
        let Deliveries { last, begun } = &mut *deliveries;
        let key = (writer.clone(), tp.clone());
        let delivery = match last.get(&key) {
            Some((previous, _, delivery)) if offset > *previous => *delivery,
            seen => {
                let count = begun.entry(writer.clone()).or_insert_with(|| {
                    self.store.name_writer(&writer, worker);
                    0
                });
                *count += 1;
                let from = seen.map_or(Duration::ZERO, |(_, previous_at, _)| *previous_at);
                self.store.rewound_between(&writer, *count, from, at);
                *count
            }
        };
        last.insert(key, (offset, at, delivery));
        drop(deliveries);
        self.store
            .write(&writer, delivery, [(tp, offset, value.to_owned())]);
    }
}

/// The index of the worker host at `address`, inside the simulation.
pub fn worker_at(address: IpAddr) -> Option<usize> {
    member_worker(&turmoil::reverse_lookup(address)?)
}
