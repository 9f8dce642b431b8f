//! The runtime test harness: an embedded broker per test, a `StandaloneWorker` running in a tokio task with
//! a oneshot shutdown, helpers to produce, read back and inspect committed offsets, and a global board
//! through which test connectors (built by `fn() -> Box<..>`) find the shared state of their test.

// Every test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_core::api::{PluginRegistry, RecordMetadata, TopicPartition};
use sluice_core::config::ConfigMap;
use sluice_core::fs::LocalFs;
use sluice_core::kafka::rdkafka::{EmbeddedBroker, RdkafkaBackend};
use sluice_core::kafka::{KafkaBackend, KafkaHeader, ProduceRecord};
use sluice_core::runtime::offset_store::FileOffsetStore;
use sluice_core::runtime::OffsetBackingStore;
use sluice_core::runtime::{
    worker_control, ConnectorPlan, StandaloneWorker, WorkerConfig, WorkerError, WorkerView,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(40);

pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const BYTES_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// A config map from literal pairs.
pub fn props(pairs: &[(&str, &str)]) -> ConfigMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Polls `done` every 20 ms until it holds; fails the test with `what` after [`DEADLINE`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shared state of test connectors, found by the `probe` key of their config.
pub struct Probes<T>(Mutex<BTreeMap<String, Arc<T>>>);

impl<T: Default> Probes<T> {
    pub const fn new() -> Probes<T> {
        Probes(Mutex::new(BTreeMap::new()))
    }

    /// A fresh probe under `id`, replacing any earlier one.
    pub fn create(&self, id: &str) -> Arc<T> {
        let probe = Arc::new(T::default());
        self.lock().insert(id.to_owned(), probe.clone());
        probe
    }

    /// The probe a task config names with its `probe` key.
    pub fn of(&self, config: &ConfigMap) -> Arc<T> {
        let id = config
            .get("probe")
            .expect("test connectors need a probe key");
        self.lock()
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("no probe {id:?} was created"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<T>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks a test mutex, ignoring poisoning (a panicking test already failed).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A record read back from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// One test's embedded broker and scratch directory.
pub struct Cluster {
    pub broker: Arc<EmbeddedBroker>,
    pub backend: Arc<RdkafkaBackend>,
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let broker = Arc::new(EmbeddedBroker::start(1).expect("start the embedded broker"));
        Cluster {
            backend: Arc::new(RdkafkaBackend::embedded(broker.clone())),
            broker,
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.broker
            .create_topic(name, partitions, 1)
            .expect("create a topic");
    }

    pub fn offset_file(&self) -> PathBuf {
        self.dir.path().join("offsets.json")
    }

    /// The source offsets the worker stored for `connector`'s partition `partition`, read from the file.
    pub fn stored_source_offset(
        &self,
        connector: &str,
        partition: &sluice_core::api::SourcePartition,
    ) -> Option<serde_json::Value> {
        let store = FileOffsetStore::open(std::sync::Arc::new(LocalFs), &self.offset_file())
            .expect("read the offset file");
        store
            .get(connector, partition)
            .map(|o| serde_json::Value::Object(o.to_map()))
    }

    /// A worker config with string converters, 200 ms offset commits and 6 s consumer sessions (the
    /// embedded broker waits a session timeout before it completes a rebalance after a member left).
    pub fn worker_props(&self) -> ConfigMap {
        props(&[
            ("key.converter", STRING_CONVERTER),
            ("value.converter", STRING_CONVERTER),
            (
                "offset.storage.file.filename",
                &self.offset_file().display().to_string(),
            ),
            ("offset.flush.interval.ms", "200"),
            ("consumer.session.timeout.ms", "6000"),
            ("consumer.heartbeat.interval.ms", "1000"),
        ])
    }

    /// Starts a worker running `connectors` in a tokio task; panics if a connector config is invalid.
    pub fn start_worker(
        &self,
        worker: &ConfigMap,
        plugins: PluginRegistry,
        connectors: &[ConfigMap],
    ) -> RunningWorker {
        let (worker, plans) = self.worker(worker, plugins, connectors);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(plans, async move {
            let _ = stopped.await;
        }));
        RunningWorker {
            stop: Some(stop),
            handle,
        }
    }

    /// A worker on this cluster and its plans for `connectors`.
    fn worker(
        &self,
        worker: &ConfigMap,
        plugins: PluginRegistry,
        connectors: &[ConfigMap],
    ) -> (StandaloneWorker, Vec<ConnectorPlan>) {
        let config = WorkerConfig::parse(worker).expect("a valid worker config");
        let worker = StandaloneWorker::new(config, self.backend.clone(), plugins)
            .expect("open the offset file");
        let plans = connectors
            .iter()
            .map(|c| worker.plan(c).expect("a valid connector config"))
            .collect();
        (worker, plans)
    }

    /// Starts a worker as the REST API runs it (`run_controlled`), and hands back its view: the
    /// connectors' and tasks' statuses as operators read them.
    pub fn start_controlled_worker(
        &self,
        worker: &ConfigMap,
        plugins: PluginRegistry,
        connectors: &[ConfigMap],
    ) -> (RunningWorker, WorkerView) {
        let (worker, plans) = self.worker(worker, plugins, connectors);
        let (control, inbox) = worker_control();
        let view = control.view().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let outcome = worker
                .run_controlled(plans, inbox, async move {
                    let _ = stopped.await;
                })
                .await;
            drop(control);
            outcome
        });
        (
            RunningWorker {
                stop: Some(stop),
                handle,
            },
            view,
        )
    }

    /// Produces `values` to one partition through the backend's producer and waits for their acks.
    pub async fn produce(&self, topic: &str, partition: i32, values: &[&str]) -> Vec<i64> {
        self.produce_with_headers(topic, partition, values, &[])
            .await
    }

    /// Produces `values`, each with `headers`, to one partition and waits for their acks.
    pub async fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        values: &[&str],
        headers: &[KafkaHeader],
    ) -> Vec<i64> {
        let mut handle = self
            .backend
            .producer(&ConfigMap::new())
            .expect("create a producer");
        for (token, value) in values.iter().enumerate() {
            let record = ProduceRecord {
                topic,
                partition: Some(partition),
                key: None,
                value: Some(value.as_bytes()),
                headers,
                timestamp: None,
            };
            handle
                .producer
                .send(&record, token as u64)
                .expect("hand a record to the producer");
        }
        let mut offsets = vec![0; values.len()];
        for _ in values {
            let delivery = tokio::time::timeout(DEADLINE, handle.deliveries.recv())
                .await
                .expect("an acknowledgement in time")
                .expect("the producer is alive");
            let metadata: RecordMetadata = delivery.result.expect("Kafka accepted the record");
            offsets[delivery.token as usize] = metadata.offset;
        }
        offsets
    }

    /// A client of the embedded broker, with auto commits off.
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("group.id", "sluice-test-reader")
            .set("enable.auto.commit", "false");
        config
    }

    /// Reads `count` records from the start of `partitions` partitions of `topic`, without joining a group,
    /// then waits briefly to make sure no more arrive; sorted by partition and offset.
    pub async fn read(&self, topic: &str, partitions: i32, count: usize) -> Vec<Stored> {
        let consumer: StreamConsumer = self.client().create().expect("create a reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("a valid offset");
        }
        consumer.assign(&tpl).expect("assign the partitions");
        let mut records = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let wait = if records.len() < count {
                deadline
            } else {
                tokio::time::Instant::now() + Duration::from_millis(300)
            };
            let message = match tokio::time::timeout_at(wait, consumer.recv()).await {
                Ok(message) => message.expect("read a record"),
                Err(_) if records.len() >= count => break,
                Err(_) => panic!("read only {} of {count} records of {topic}", records.len()),
            };
            records.push(Stored {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: message.timestamp().to_millis(),
            });
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }

    /// The offsets `group` committed for `partitions`, asked without joining the group (joining would
    /// rebalance the sink under test).
    pub fn committed(&self, group: &str, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
        let consumer: BaseConsumer = self
            .client()
            .set("group.id", group)
            .create()
            .expect("create an offset reader");
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(&p.topic, p.partition);
        }
        let committed = tokio::task::block_in_place(|| {
            consumer.committed_offsets(tpl, Duration::from_secs(10))
        })
        .expect("read committed offsets");
        partitions
            .iter()
            .map(|p| {
                match committed
                    .find_partition(&p.topic, p.partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failing test drops the cluster while the worker may still be in a synchronous librdkafka
        // call (a sink's commit on shutdown), which never returns once the broker is gone; the runtime
        // would then wait for it forever instead of reporting the failure. Keep the broker alive.
        if std::thread::panicking() {
            std::mem::forget(self.broker.clone());
        }
    }
}

/// A worker running in a tokio task.
pub struct RunningWorker {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl RunningWorker {
    /// Fires the shutdown signal and waits for the worker to stop cleanly.
    pub async fn stop(mut self) -> Result<(), WorkerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Waits for the worker to stop on its own (every task failed), without signalling it.
    pub async fn join(self) -> Result<(), WorkerError> {
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("the worker stops in time")
            .expect("the worker does not panic")
    }

    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }
}
