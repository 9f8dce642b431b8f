//! The source task runtime on a real (embedded) broker: acknowledgements reach `commit_record`, only
//! acknowledged source offsets are stored and handed back on restart, records reach Kafka as sent, and
//! `errors.tolerance` decides what an unconvertible record does, polling waits while the records in flight
//! span the bound (in both loops); with exactly-once source support, offsets go to the offsets topic and
//! come back from it.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{lock, props, Cluster, Probes, BYTES_CONVERTER, JSON_CONVERTER};
use serde_json::json;
use sluice_core::api::{
    CommitRecordReads, ConnectError, Connector, ConnectorContext, ConnectorPlugin, Header,
    PluginRegistry, RecordMetadata, SourceConnector, SourceMap, SourceOffset, SourcePartition,
    SourceRecord, SourceTask, SourceTaskContext,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::{Data, Schema, SchemaBuilder, SchemaType, Struct, Value};
use sluice_core::runtime::{StandaloneWorker, WorkerConfig, WorkerError};

/// What a test hands to, and sees of, its source task.
#[derive(Default)]
struct SourceProbe {
    /// Records the next `poll` returns.
    queue: Mutex<VecDeque<SourceRecord>>,
    /// Source partitions whose stored offsets the task reads when it starts.
    watched: Mutex<Vec<SourcePartition>>,
    /// Per start: what the offset storage reader returned for each watched partition.
    restored: Mutex<Vec<Vec<Option<SourceOffset>>>>,
    acks: Mutex<Vec<(SourceRecord, Option<RecordMetadata>)>>,
    commits: AtomicUsize,
    stops: AtomicUsize,
    /// What the task says its `commit_record` reads.
    reads: Mutex<CommitRecordReads>,
    /// At most this many records per `poll` when set.
    per_poll: AtomicUsize,
}

impl SourceProbe {
    fn push(&self, records: impl IntoIterator<Item = SourceRecord>) {
        lock(&self.queue).extend(records);
    }

    fn acks(&self) -> Vec<(SourceRecord, Option<RecordMetadata>)> {
        lock(&self.acks).clone()
    }
}

static PROBES: Probes<SourceProbe> = Probes::new();

#[derive(Default)]
struct ProbeSourceConnector {
    config: ConfigMap,
}

#[async_trait]
impl Connector for ProbeSourceConnector {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().required("probe", ConfigType::String, "Probe id.")
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone()]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for ProbeSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(ProbeSourceTask::default())
    }
}

#[derive(Default)]
struct ProbeSourceTask {
    probe: Option<Arc<SourceProbe>>,
}

impl ProbeSourceTask {
    fn probe(&self) -> &SourceProbe {
        self.probe.as_deref().expect("started")
    }
}

#[async_trait]
impl SourceTask for ProbeSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let probe = PROBES.of(context.configs());
        let reader = context.offset_storage_reader();
        let restored = lock(&probe.watched)
            .iter()
            .map(|p| reader.offset(p))
            .collect();
        lock(&probe.restored).push(restored);
        self.probe = Some(probe);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let batch: Vec<SourceRecord> = {
            let mut queue = lock(&self.probe().queue);
            let limit = match self.probe().per_poll.load(Ordering::SeqCst) {
                0 => queue.len(),
                n => n.min(queue.len()),
            };
            queue.drain(..limit).collect()
        };
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(batch)
    }

    async fn commit(&mut self) -> Result<(), ConnectError> {
        self.probe().commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn commit_record(
        &mut self,
        record: &SourceRecord,
        metadata: Option<&RecordMetadata>,
    ) -> Result<(), ConnectError> {
        lock(&self.probe().acks).push((record.clone(), metadata.copied()));
        Ok(())
    }

    fn commit_record_reads(&self) -> CommitRecordReads {
        *lock(&self.probe().reads)
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.probe().stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn registry() -> PluginRegistry {
    let mut plugins = PluginRegistry::new();
    plugins.register(
        "test.ProbeSourceConnector",
        ConnectorPlugin::source(|| Box::new(ProbeSourceConnector::default())),
    );
    plugins
}

fn source(name: &str) -> ConfigMap {
    props(&[
        ("name", name),
        ("connector.class", "ProbeSource"),
        ("probe", name),
    ])
}

fn file(name: &str) -> SourcePartition {
    SourceMap::single("file", name)
}

fn position(i: i64) -> SourceOffset {
    SourceMap::single("position", i)
}

/// Line `i` of file `name`, as a string record for `topic`.
fn line(name: &str, i: i64, topic: &str) -> SourceRecord {
    SourceRecord::new(
        file(name),
        position(i),
        topic,
        Data::string(format!("{name}-{i}")),
    )
}

fn text(bytes: &Option<Vec<u8>>) -> &str {
    std::str::from_utf8(bytes.as_deref().expect("not null")).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_record_reports_where_kafka_stored_each_record_once() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 3);
    let probe = PROBES.create("acks");
    probe.push((0..30).map(|i| {
        let mut record = line("a", i, "lines");
        record.kafka_partition = Some((i % 3) as i32);
        record
    }));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("acks")]);
    common::wait_until("30 acknowledgements", || probe.acks().len() >= 30).await;
    let stored = cluster.read("lines", 3, 30).await;
    worker.stop().await.expect("a clean stop");

    let acks = probe.acks();
    assert_eq!(
        acks.len(),
        30,
        "commit_record must be called once per record"
    );
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (i, (record, metadata)) in acks.iter().enumerate() {
        let metadata = metadata.unwrap_or_else(|| panic!("ack {i} has no metadata"));
        assert_eq!(Some(metadata.partition), record.kafka_partition);
        let at = stored
            .iter()
            .find(|s| s.partition == metadata.partition && s.offset == metadata.offset)
            .unwrap_or_else(|| panic!("nothing stored where ack {i} says: {metadata:?}"));
        assert_eq!(
            Some(text(&at.value)),
            record.value.value.as_str(),
            "Kafka holds another record where commit_record says this one is"
        );
        // The timestamp is not compared with the stored one: the embedded broker (librdkafka's mock
        // cluster) answers every produce request with a log-append time of 1234, which librdkafka
        // reports in place of the record's own; a real broker answers -1 for a CreateTime topic.
        assert!(metadata.timestamp.is_some(), "ack {i} has no timestamp");
        per_partition
            .entry(metadata.partition)
            .or_default()
            .push(metadata.offset);
    }
    let mut positions: Vec<i64> = acks
        .iter()
        .map(|(r, _)| {
            r.source_offset
                .get("position")
                .and_then(|p| p.as_i64())
                .expect("position")
        })
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (0..30).collect::<Vec<_>>(), "each record once");
    for (partition, offsets) in per_partition {
        assert_eq!(
            offsets,
            (0..10).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_reads_no_data_in_commit_record_is_told_of_records_without_it() {
    let cluster = Cluster::start();
    cluster.create_topic("lean", 1);
    let probe = PROBES.create("lean");
    *lock(&probe.reads) = CommitRecordReads::NoData;
    probe.push((0..10).map(|i| SourceRecord {
        key: Data::string(format!("key-{i}")),
        headers: vec![Header {
            key: "trace".into(),
            value: Data::string(format!("t-{i}")),
        }],
        ..line("a", i, "lean")
    }));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("lean")]);
    common::wait_until("10 acknowledgements", || probe.acks().len() >= 10).await;
    let stored = cluster.read("lean", 1, 10).await;
    worker.stop().await.expect("a clean stop");

    for (i, (record, metadata)) in probe.acks().iter().enumerate() {
        assert_eq!(
            (&record.key, &record.value, record.headers.len()),
            (&Data::NULL, &Data::NULL, 0),
            "ack {i}: the data was to be dropped once sent"
        );
        assert_eq!(record.source_offset, position(i as i64), "ack {i}");
        assert_eq!(&*record.topic, "lean");
        let metadata = metadata.unwrap_or_else(|| panic!("ack {i} has no metadata"));
        let at = &stored[metadata.offset as usize];
        assert_eq!(text(&at.value), format!("a-{i}"), "Kafka holds the data");
        assert_eq!(at.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(at.headers.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_commit_record_reads_nothing_is_not_told_and_its_offsets_commit() {
    let cluster = Cluster::start();
    cluster.create_topic("untold", 1);
    let probe = PROBES.create("untold");
    *lock(&probe.reads) = CommitRecordReads::Nothing;
    probe.push((0..10).map(|i| line("a", i, "untold")));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("untold")]);
    common::wait_until("the last record's offset in the offset file", || {
        cluster.stored_source_offset("untold", &file("a")) == Some(json!({"position": 9}))
    })
    .await;
    let stored = cluster.read("untold", 1, 10).await;
    worker.stop().await.expect("a clean stop");

    let values: Vec<&str> = stored.iter().map(|r| text(&r.value)).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("a-{i}")).collect();
    assert_eq!(values, expected);
    assert!(
        probe.acks().is_empty(),
        "commit_record was called: {:?}",
        probe.acks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_offsets_are_stored_and_given_to_a_restarted_task() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let probe = PROBES.create("resume");
    *lock(&probe.watched) = vec![file("a"), file("b")];
    probe.push((0..10).map(|i| line("a", i, "lines")));
    probe.push((0..3).map(|i| line("b", i, "lines")));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("resume")]);
    // Offsets are committed periodically while the task runs, not only when it stops.
    common::wait_until("the offsets of both files in the offset file", || {
        cluster.stored_source_offset("resume", &file("a")) == Some(json!({"position": 9}))
            && cluster.stored_source_offset("resume", &file("b")) == Some(json!({"position": 2}))
    })
    .await;
    assert!(worker.is_running());
    common::wait_until("commit() after the stored commit", || {
        probe.commits.load(Ordering::SeqCst) >= 1
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(lock(&probe.restored).as_slice(), [vec![None, None]]);

    let restarted = PROBES.create("resume");
    *lock(&restarted.watched) = vec![file("a"), file("b"), file("c")];
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("resume")]);
    common::wait_until("the restarted task", || {
        !lock(&restarted.restored).is_empty()
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        lock(&restarted.restored).as_slice(),
        [vec![Some(position(9)), Some(position(2)), None]]
    );
}

/// The task is polled for its next batch while the last one is sent; a commit of offsets can interrupt
/// a send that waits for room in the producer's queue. No batch a poll returned may be lost to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_polled_while_sends_wait_for_room_all_arrive() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let probe = PROBES.create("crowded");
    probe.per_poll.store(100, Ordering::SeqCst);
    probe.push((0..3000).map(|i| line("a", i, "lines")));
    let mut props = cluster.worker_props();
    props.insert("offset.flush.interval.ms".into(), "5".into());
    props.insert("producer.queue.buffering.max.messages".into(), "20".into());
    let worker = cluster.start_worker(&props, registry(), &[source("crowded")]);
    common::wait_until("every record acknowledged", || probe.acks().len() >= 3000).await;
    let stored = cluster.read("lines", 1, 3000).await;
    let values: std::collections::BTreeSet<String> =
        stored.iter().map(|r| text(&r.value).to_owned()).collect();
    assert_eq!(values.len(), 3000, "records lost or duplicated");
    assert_eq!(
        cluster.stored_source_offset("crowded", &file("a")),
        Some(json!({"position": 2999}))
    );
    worker.stop().await.expect("a clean stop");
    assert!(
        probe.commits.load(Ordering::SeqCst) >= 1,
        "offsets were committed while the sends waited"
    );
}

/// A source loop stops polling once the records in flight span 12,288; the one batch being sent and the
/// one polled beside it may go on top.
const IN_FLIGHT_SPAN: usize = 12_288;

/// Runs the probe source `name` with `worker` and `connector` props, its producer holding every record
/// for 4 s, and checks that the loop polls no further than the bound while nothing is acknowledged,
/// then that every record arrives.
async fn polls_no_further_than_the_bound(
    cluster: &Cluster,
    name: &str,
    mut worker_props: ConfigMap,
    connector: ConfigMap,
) {
    cluster.create_topic("lines", 1);
    let probe = PROBES.create(name);
    probe.per_poll.store(1000, Ordering::SeqCst);
    probe.push((0..20_000).map(|i| line("a", i, "lines")));
    // The producer holds every record for 4 s: nothing is acknowledged until then.
    worker_props.insert("producer.linger.ms".into(), "4000".into());
    worker_props.insert("producer.batch.num.messages".into(), "100000".into());
    let worker = cluster.start_worker(&worker_props, registry(), &[connector]);
    let polled = || 20_000 - lock(&probe.queue).len();
    common::wait_until("polls up to the bound", || polled() >= IN_FLIGHT_SPAN).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        probe.acks().is_empty(),
        "the producer acknowledged a record before its linger ran out"
    );
    assert!(
        polled() <= IN_FLIGHT_SPAN + 2 * 1000,
        "polled {} records with none acknowledged",
        polled()
    );
    common::wait_until("every record acknowledged", || probe.acks().len() >= 20_000).await;
    worker.stop().await.expect("a clean stop");
    let stored = cluster.read("lines", 1, 20_000).await;
    assert_eq!(stored.len(), 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_waits_while_the_records_in_flight_span_the_bound() {
    let cluster = Cluster::start();
    let worker = cluster.worker_props();
    polls_no_further_than_the_bound(&cluster, "bounded", worker, source("bounded")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_polling_waits_while_the_records_in_flight_span_the_bound() {
    let cluster = Cluster::start();
    let worker = exactly_once_props(&cluster);
    // One transaction for the whole test: no commit flushes the producer before its linger ends.
    let mut connector = source("bounded-eos");
    connector.extend(props(&[
        ("transaction.boundary", "interval"),
        ("transaction.boundary.interval.ms", "6000"),
    ]));
    polls_no_further_than_the_bound(&cluster, "bounded-eos", worker, connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_record_holds_back_its_source_partition() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let probe = PROBES.create("held-back");
    *lock(&probe.watched) = vec![file("a"), file("b")];
    // Record a-5 goes to a partition the topic does not have: Kafka never acknowledges it, the task
    // fails, and file a's offset may not pass position 4, whatever was acknowledged after it.
    probe.push((0..3).map(|i| line("b", i, "lines")));
    probe.push((0..10).map(|i| {
        let mut record = line("a", i, "lines");
        if i == 5 {
            record.kafka_partition = Some(7);
        }
        record
    }));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("held-back")]);
    let outcome = worker.join().await;
    assert!(
        matches!(outcome, Err(WorkerError::AllTasksFailed(_))),
        "the task fails on a record Kafka refused: {outcome:?}"
    );
    assert_eq!(probe.stops.load(Ordering::SeqCst), 1);
    assert_eq!(
        cluster.stored_source_offset("held-back", &file("a")),
        Some(json!({"position": 4}))
    );
    assert_eq!(
        cluster.stored_source_offset("held-back", &file("b")),
        Some(json!({"position": 2}))
    );
    assert!(
        probe
            .acks()
            .iter()
            .all(|(r, m)| m.is_some() && r.source_offset != position(5)),
        "only acknowledged records are reported: {:?}",
        probe.acks()
    );

    let restarted = PROBES.create("held-back");
    *lock(&restarted.watched) = vec![file("a")];
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("held-back")]);
    common::wait_until("the restarted task", || {
        !lock(&restarted.restored).is_empty()
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        lock(&restarted.restored).as_slice(),
        [vec![Some(position(4))]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_keys_headers_and_timestamps_arrive_as_sent() {
    let cluster = Cluster::start();
    cluster.create_topic("keyed", 3);
    let probe = PROBES.create("keyed");
    let int32 = Arc::new(Schema::primitive(SchemaType::Int32));
    let boolean = Arc::new(Schema::primitive(SchemaType::Boolean));
    // Odd records carry no headers: the producer names their topic by a handle of its own, the
    // others go through rdkafka's send, and each partition's order holds across the two.
    let records: Vec<SourceRecord> = (0..12)
        .map(|i| SourceRecord {
            kafka_partition: Some((i % 3) as i32),
            key: Data::string(format!("key-{i}")),
            headers: if i % 2 == 1 {
                Vec::new()
            } else {
                vec![
                    Header {
                        key: "trace".into(),
                        value: Data::string(format!("t-{i}")),
                    },
                    Header {
                        key: "raw".into(),
                        value: Data::schemaless(vec![0u8, 255, i as u8]),
                    },
                    Header {
                        key: "empty".into(),
                        value: Data::NULL,
                    },
                    Header {
                        key: "attempt".into(),
                        value: Data::new(Some(int32.clone()), Value::Int32(i as i32 - 5)),
                    },
                    Header {
                        key: "retry".into(),
                        value: Data::new(Some(boolean.clone()), Value::Boolean(i % 2 == 0)),
                    },
                ]
            },
            timestamp: Some(1_700_000_000_000 + i),
            ..line("k", i, "keyed")
        })
        .collect();
    probe.push(records.clone());
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("keyed")]);
    common::wait_until("12 acknowledgements", || probe.acks().len() >= 12).await;
    let stored = cluster.read("keyed", 3, 12).await;
    worker.stop().await.expect("a clean stop");

    assert_eq!(stored.len(), 12);
    for (i, record) in records.iter().enumerate() {
        let i = i as i64;
        let found = stored
            .iter()
            .find(|s| s.value.as_deref() == Some(format!("k-{i}").as_bytes()))
            .unwrap_or_else(|| panic!("record {i} is not in Kafka"));
        assert_eq!(Some(found.partition), record.kafka_partition, "record {i}");
        assert_eq!(text(&found.key), format!("key-{i}"));
        if i % 2 == 1 {
            assert!(found.headers.is_empty(), "record {i}: {:?}", found.headers);
            assert_eq!(found.timestamp, Some(1_700_000_000_000 + i));
            continue;
        }
        assert_eq!(
            found.headers,
            [
                ("trace".to_owned(), Some(format!("t-{i}").into_bytes())),
                // Sluice writes bytes as they are (Kafka's SimpleHeaderConverter would base64 them).
                ("raw".to_owned(), Some(vec![0u8, 255, i as u8])),
                ("empty".to_owned(), None),
                // As Kafka's default SimpleHeaderConverter writes them: the value's string form.
                ("attempt".to_owned(), Some((i - 5).to_string().into_bytes())),
                (
                    "retry".to_owned(),
                    Some((i % 2 == 0).to_string().into_bytes())
                ),
            ],
            "record {i}"
        );
        assert_eq!(found.timestamp, Some(1_700_000_000_000 + i));
    }
    // Per partition, records keep the order they were sent in.
    for partition in 0..3 {
        let values: Vec<&str> = stored
            .iter()
            .filter(|s| s.partition == partition)
            .map(|s| text(&s.value))
            .collect();
        let sent: Vec<String> = (0..12)
            .filter(|i| i % 3 == i64::from(partition))
            .map(|i| format!("k-{i}"))
            .collect();
        assert_eq!(values, sent, "partition {partition}");
    }
}

/// librdkafka makes no handle for a topic name longer than 512 bytes: the record goes through
/// rdkafka's own send, whose refusal fails the task naming the record, and the records before it
/// still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_librdkafka_refuses_fails_the_task_naming_the_record() {
    let cluster = Cluster::start();
    cluster.create_topic("named", 1);
    let probe = PROBES.create("long-name");
    let too_long = "t".repeat(600);
    probe.push([
        line("long-name", 0, "named"),
        line("long-name", 1, &too_long),
    ]);
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("long-name")]);
    let outcome = worker.join().await;
    let Err(WorkerError::AllTasksFailed(failures)) = outcome else {
        panic!("the only task fails, and with it the worker: {outcome:?}");
    };
    assert!(
        failures[0].contains(&format!(
            "Kafka did not take the record for topic {too_long}"
        )),
        "the failure names the record: {failures:?}"
    );
    let stored = cluster.read("named", 1, 1).await;
    assert_eq!(text(&stored[0].value), "long-name-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_converter_writes_the_schema_and_payload_envelope() {
    let cluster = Cluster::start();
    cluster.create_topic("users", 1);
    let schema = Arc::new(
        SchemaBuilder::struct_()
            .name("com.example.User")
            .field("id", Schema::primitive(SchemaType::Int32))
            .field("name", Schema::primitive(SchemaType::String))
            .field("email", Schema::optional(SchemaType::String))
            .build(),
    );
    let mut user = Struct::new(schema.clone());
    user.put("id", Value::Int32(42));
    user.put("name", Value::from("Ada"));
    let probe = PROBES.create("json");
    probe.push([SourceRecord::new(
        file("users"),
        position(0),
        "users",
        Data::new(Some(schema), Value::Struct(user)),
    )]);
    let mut worker_props = cluster.worker_props();
    worker_props.insert("value.converter".into(), JSON_CONVERTER.into());
    let worker = cluster.start_worker(&worker_props, registry(), &[source("json")]);
    let stored = cluster.read("users", 1, 1).await;
    worker.stop().await.expect("a clean stop");

    let envelope: serde_json::Value =
        serde_json::from_slice(stored[0].value.as_deref().expect("a value")).expect("JSON");
    assert_eq!(
        envelope,
        json!({
            "schema": {
                "type": "struct",
                "fields": [
                    {"type": "int32", "optional": false, "field": "id"},
                    {"type": "string", "optional": false, "field": "name"},
                    {"type": "string", "optional": true, "field": "email"}
                ],
                "optional": false,
                "name": "com.example.User"
            },
            "payload": {"id": 42, "name": "Ada", "email": null}
        })
    );
}

/// Bytes, then a string ByteArrayConverter cannot write, then bytes again.
fn mixed_records(name: &str) -> Vec<SourceRecord> {
    let bytes = |i: i64| {
        SourceRecord::new(
            file(name),
            position(i),
            "blobs",
            Data::schemaless(format!("blob-{i}").into_bytes()),
        )
    };
    vec![bytes(0), line(name, 1, "blobs"), bytes(2)]
}

fn bytes_source(name: &str, tolerance: Option<&str>) -> ConfigMap {
    let mut config = source(name);
    config.insert("value.converter".into(), BYTES_CONVERTER.into());
    if let Some(tolerance) = tolerance {
        config.insert("errors.tolerance".into(), tolerance.into());
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tolerance_all_skips_an_unconvertible_record() {
    let cluster = Cluster::start();
    cluster.create_topic("blobs", 1);
    let probe = PROBES.create("tolerant");
    probe.push(mixed_records("tolerant"));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[bytes_source("tolerant", Some("all"))],
    );
    common::wait_until("three commit_record calls", || probe.acks().len() >= 3).await;
    // The task keeps running: a later record still goes through.
    probe.push([SourceRecord::new(
        file("tolerant"),
        position(3),
        "blobs",
        Data::schemaless(b"blob-3".to_vec()),
    )]);
    let stored = cluster.read("blobs", 1, 3).await;
    common::wait_until("the skipped record's offset to be committed", || {
        cluster.stored_source_offset("tolerant", &file("tolerant")) == Some(json!({"position": 3}))
    })
    .await;
    assert!(worker.is_running());
    worker.stop().await.expect("a clean stop");

    let values: Vec<&str> = stored.iter().map(|s| text(&s.value)).collect();
    assert_eq!(values, ["blob-0", "blob-2", "blob-3"]);
    let acks = probe.acks();
    let skipped: Vec<_> = acks.iter().filter(|(_, m)| m.is_none()).collect();
    assert_eq!(skipped.len(), 1, "one skipped record: {acks:?}");
    assert_eq!(skipped[0].0.source_offset, position(1));
    assert_eq!(acks.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tolerance_none_fails_the_task_on_an_unconvertible_record() {
    let cluster = Cluster::start();
    cluster.create_topic("blobs", 1);
    let probe = PROBES.create("strict");
    probe.push(mixed_records("strict"));
    let worker = cluster.start_worker(
        &cluster.worker_props(),
        registry(),
        &[bytes_source("strict", None)],
    );
    let outcome = worker.join().await;
    let Err(WorkerError::AllTasksFailed(failures)) = outcome else {
        panic!("the only task fails, and with it the worker: {outcome:?}");
    };
    assert!(
        failures[0].contains(
            r#"the record for topic blobs from source partition {"file":"strict"} at offset {"position":1}"#
        ),
        "the failure names the record: {failures:?}"
    );
    assert_eq!(probe.stops.load(Ordering::SeqCst), 1);
    let stored = cluster.read("blobs", 1, 1).await;
    let values: Vec<&str> = stored.iter().map(|s| text(&s.value)).collect();
    assert_eq!(
        values,
        ["blob-0"],
        "nothing after the bad record is produced"
    );
    assert_eq!(
        cluster.stored_source_offset("strict", &file("strict")),
        Some(json!({"position": 0})),
        "the record before the bad one was acknowledged and its offset stored"
    );
}

/// Records without a source partition (a stdin reader's) are produced and reported to `commit_record`,
/// but have no offset to store, as in Kafka Connect; tracked partitions next to them still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_source_partition_are_not_tracked() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let probe = PROBES.create("untracked");
    let unpartitioned = (0..3).map(|i| {
        SourceRecord::new(
            SourceMap::default(),
            SourceMap::default(),
            "lines",
            Data::string(format!("stdin-{i}")),
        )
    });
    probe.push(unpartitioned);
    probe.push((0..2).map(|i| line("a", i, "lines")));
    let worker = cluster.start_worker(&cluster.worker_props(), registry(), &[source("untracked")]);
    common::wait_until("file a's offset in the offset file", || {
        cluster.stored_source_offset("untracked", &file("a")) == Some(json!({"position": 1}))
    })
    .await;
    common::wait_until("commit_record for every record", || probe.acks().len() == 5).await;
    worker.stop().await.expect("a clean stop");
    assert!(probe.acks().iter().all(|(_, metadata)| metadata.is_some()));
    assert_eq!(
        cluster.stored_source_offset("untracked", &SourceMap::default()),
        None,
        "an empty source partition was stored"
    );
}

/// A worker running source tasks exactly once, with a 3-partition offsets topic the embedded broker can
/// hold (one replica).
fn exactly_once_props(cluster: &Cluster) -> ConfigMap {
    let mut worker = cluster.worker_props();
    worker.extend(props(&[
        ("exactly.once.source.support", "enabled"),
        ("offset.storage.partitions", "3"),
        ("offset.storage.replication.factor", "1"),
    ]));
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_offsets_go_to_the_offsets_topic_and_come_back_on_restart() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let probe = PROBES.create("eos");
    *lock(&probe.watched) = vec![file("a")];
    probe.push((0..10).map(|i| line("a", i, "lines")));
    let worker = cluster.start_worker(&exactly_once_props(&cluster), registry(), &[source("eos")]);
    common::wait_until("10 records committed", || probe.acks().len() >= 10).await;
    worker.stop().await.expect("a clean stop");

    let stored = cluster.read("lines", 1, 10).await;
    let values: Vec<&str> = stored.iter().map(|s| text(&s.value)).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("a-{i}")).collect();
    assert_eq!(values, expected);
    let offsets = cluster.read("connect-offsets", 3, 1).await;
    let last = offsets.last().expect("an offset record");
    assert_eq!(text(&last.key), r#"["eos",{"file":"a"}]"#);
    assert_eq!(text(&last.value), r#"{"position":9}"#);
    assert_eq!(
        cluster.stored_source_offset("eos", &file("a")),
        None,
        "exactly-once offsets never go to the offset file"
    );

    let restarted = PROBES.create("eos");
    *lock(&restarted.watched) = vec![file("a")];
    let worker = cluster.start_worker(&exactly_once_props(&cluster), registry(), &[source("eos")]);
    common::wait_until("the restarted task", || {
        !lock(&restarted.restored).is_empty()
    })
    .await;
    worker.stop().await.expect("a clean stop");
    assert_eq!(
        lock(&restarted.restored).as_slice(),
        [vec![Some(position(9))]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_keys_are_validated_by_name() {
    let cluster = Cluster::start();
    let plan_error = |worker: ConfigMap, extra: &[(&str, &str)]| {
        let config = WorkerConfig::parse(&worker).expect("a valid worker config");
        let worker = StandaloneWorker::new(config, cluster.backend.clone(), registry())
            .expect("open the offset file");
        let mut connector = source("checked");
        connector.extend(props(extra));
        match worker.plan(&connector) {
            Err(WorkerError::Config { source, .. }) => source.issues,
            Err(other) => panic!("not a config error: {other}"),
            Ok(_) => panic!("{extra:?} was accepted"),
        }
    };
    let issues = plan_error(
        cluster.worker_props(),
        &[("exactly.once.support", "required")],
    );
    assert_eq!(issues[0].key, "exactly.once.support");
    assert!(issues[0].message.contains("exactly.once.source.support"));
    let issues = plan_error(
        exactly_once_props(&cluster),
        &[("exactly.once.support", "required")],
    );
    assert_eq!(issues[0].key, "exactly.once.support");
    assert!(
        issues[0].message.contains("cannot deliver exactly once"),
        "the probe connector does not say it can: {}",
        issues[0].message
    );
    let issues = plan_error(
        exactly_once_props(&cluster),
        &[("transaction.boundary", "connector")],
    );
    assert_eq!(issues[0].key, "transaction.boundary");
    assert!(issues[0].message.contains("not supported"));
}

/// A worker with `exactly.once.source.generation` records it for each exactly-once task in the offsets
/// topic; a worker of an older generation does not start the task (it would register the transactional
/// id and fence the newer instance), and says why; the same generation (a restart) and a newer one do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_an_older_generation_does_not_start_the_task() {
    let cluster = Cluster::start();
    cluster.create_topic("lines", 1);
    let with_generation = |generation: &str| {
        let mut worker = exactly_once_props(&cluster);
        worker.insert("exactly.once.source.generation".into(), generation.into());
        worker
    };
    let first = PROBES.create("eos-gen");
    *lock(&first.watched) = vec![file("a")];
    first.push((0..3).map(|i| line("a", i, "lines")));
    let worker = cluster.start_worker(&with_generation("5"), registry(), &[source("eos-gen")]);
    common::wait_until("3 records committed", || first.acks().len() >= 3).await;
    worker.stop().await.expect("a clean stop");
    let offsets = cluster.read("connect-offsets", 3, 2).await;
    let recorded: Vec<(&str, &str)> = offsets
        .iter()
        .map(|s| (text(&s.key), text(&s.value)))
        .collect();
    assert!(
        recorded.contains(&(r#"["eos-gen",{"sluice.task":0}]"#, r#"{"generation":5}"#)),
        "{recorded:?}"
    );

    let older = PROBES.create("eos-gen");
    older.push([line("a", 3, "lines")]);
    let worker = cluster.start_worker(&with_generation("4"), registry(), &[source("eos-gen")]);
    let outcome = worker.join().await;
    let Err(WorkerError::AllTasksFailed(failures)) = outcome else {
        panic!("the older generation's task must not run: {outcome:?}");
    };
    assert!(
        failures[0].contains("shows generation 5")
            && failures[0].contains("exactly.once.source.generation=4"),
        "{failures:?}"
    );
    assert!(
        lock(&older.restored).is_empty(),
        "the task was never started"
    );

    // The same generation, as a restarted worker has, and a newer one, both start the task.
    for generation in ["5", "6"] {
        let started = PROBES.create("eos-gen");
        *lock(&started.watched) = vec![file("a")];
        let worker = cluster.start_worker(
            &with_generation(generation),
            registry(),
            &[source("eos-gen")],
        );
        common::wait_until("the task of a generation as new as the topic's", || {
            !lock(&started.restored).is_empty()
        })
        .await;
        worker.stop().await.expect("a clean stop");
        assert_eq!(
            lock(&started.restored).as_slice(),
            [vec![Some(position(2))]],
            "generation {generation}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconvertible_record_goes_to_the_dead_letter_queue_in_the_transaction_of_its_offset() {
    let cluster = Cluster::start();
    cluster.create_topic("blobs", 1);
    cluster.create_topic("blobs-dlq", 1);
    let probe = PROBES.create("eos-dlq");
    *lock(&probe.watched) = vec![file("eos-dlq")];
    probe.push(mixed_records("eos-dlq"));
    let mut config = bytes_source("eos-dlq", Some("all"));
    for (key, value) in [
        ("errors.deadletterqueue.topic.name", "blobs-dlq"),
        ("errors.deadletterqueue.context.headers.enable", "true"),
    ] {
        config.insert(key.into(), value.into());
    }
    let worker = cluster.start_worker(&exactly_once_props(&cluster), registry(), &[config]);
    common::wait_until("three records committed", || probe.acks().len() >= 3).await;
    worker.stop().await.expect("a clean stop");

    let stored = cluster.read("blobs", 1, 2).await;
    let values: Vec<&str> = stored.iter().map(|s| text(&s.value)).collect();
    assert_eq!(values, ["blob-0", "blob-2"]);
    let dead = cluster.read("blobs-dlq", 1, 1).await;
    // ByteArrayConverter cannot write a string: the dead letter keeps it through JsonConverter.
    let letter = text(&dead[0].value);
    assert!(letter.contains(r#""payload":"eos-dlq-1""#), "{letter}");
    let stage = dead[0]
        .headers
        .iter()
        .find(|(k, _)| k == "__connect.errors.stage")
        .and_then(|(_, v)| v.clone());
    assert_eq!(stage.as_deref(), Some(&b"VALUE_CONVERTER"[..]));
    let offsets = cluster.read("connect-offsets", 3, 1).await;
    assert_eq!(
        text(&offsets.last().expect("an offset").value),
        r#"{"position":2}"#
    );
}
