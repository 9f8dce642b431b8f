//! SequenceSource: a source system of numbered streams. Stream `i` holds the records `stream-i:0`,
//! `stream-i:1`, ... up to `records.per.stream`; a stream is a source partition (`{"stream": i}`) and the
//! sequence number its offset (`{"seq": n}`), so a restarted task resumes after its last committed record.
//!
//! Each started task is one instance, numbered from a counter the harness shares.
//!
//! Some records are poison, as real sources have: every [`REFUSED_BY_SOURCE_EVERY`]th record of a stream
//! holds a value of a type the source's `ByteArrayConverter` refuses (a string), and every
//! [`REFUSED_BY_SINK_EVERY`]th one bytes that are not UTF-8, which reach Kafka but which the sink's
//! `StringConverter` refuses. Both connectors run with `errors.tolerance=all`, so each side skips its
//! poison and commits offsets past it.
//!
//! With `marks=true` some other records carry a header that the scenario's single message transforms act
//! on (see [`Mark`]): the source's chain drops or fails records marked for it, the sink's those marked
//! for it.
//!
//! Every task instance writes what it is told through `commit_record`, and what it polled before each
//! `commit`, to the shared [`SourceReports`], where the oracle checks them. Its `commit.record.reads`
//! key says what its `commit_record` reads ([`CommitRecordReads`]), and so which of the runtime's ways of
//! keeping records in flight a run takes: with `no-data` the task knows a record by its source partition
//! and offset alone; with `nothing` it keeps the default `commit_record`, which the runtime never calls,
//! and reports nothing.
//!
//! Its `bug` key plants a deliberate mistake: `skip-records` advances past some records without sending
//! them (lost), `early-offsets` labels each record with a later record's offset (committed before Kafka
//! has the records it covers), `restart-from-beginning` ignores the committed offsets when a task starts
//! (a restarted task sends every record again).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::{
    CommitRecordReads, ConnectError, Connector, ConnectorContext, ExactlyOnceSupport, Header,
    RecordMetadata, SourceConnector, SourceMap, SourceRecord, SourceTask, SourceTaskContext,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::{Data, Value};

use super::source_outages::SourceOutages;
use super::source_reports::SourceReports;
use crate::coverage::{self, Event};

const TOPIC: &str = "topic";
const STREAMS: &str = "streams";
const RECORDS: &str = "records.per.stream";
const BATCH: &str = "batch.size";
const INTERVAL: &str = "poll.interval.ms";
const BUG: &str = "bug";
const MARKS: &str = "marks";
const READS: &str = "commit.record.reads";
const ASSIGNED: &str = "streams.assigned";

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .required(TOPIC, ConfigType::String, "The topic to write to.")
        .optional(
            STREAMS,
            ConfigType::Int,
            "4",
            "Number of streams (source partitions).",
        )
        .optional(RECORDS, ConfigType::Long, "1000", "Records in each stream.")
        .optional(BATCH, ConfigType::Int, "20", "Records per poll.")
        .optional(
            INTERVAL,
            ConfigType::Long,
            "20",
            "Pause before each poll, in milliseconds.",
        )
        .optional(
            BUG,
            ConfigType::String,
            "none",
            "A deliberate bug: none, skip-records, early-offsets or restart-from-beginning.",
        )
        .optional(
            MARKS,
            ConfigType::Boolean,
            "false",
            "Mark some records with a header for the transforms (see Mark).",
        )
        .optional(
            READS,
            ConfigType::String,
            reads_name(CommitRecordReads::Everything),
            "What commit_record reads: everything, no-data or nothing.",
        )
}

/// The `commit.record.reads` value that asks for `reads`.
pub fn reads_name(reads: CommitRecordReads) -> &'static str {
    match reads {
        CommitRecordReads::Everything => "everything",
        CommitRecordReads::NoData => "no-data",
        CommitRecordReads::Nothing => "nothing",
    }
}

/// Every `commit_record` reading the SequenceSource can take.
pub static ALL_READS: [CommitRecordReads; 3] = [
    CommitRecordReads::Everything,
    CommitRecordReads::NoData,
    CommitRecordReads::Nothing,
];

/// The reading [`reads_name`] spells `name`, alone in a list (as a scenario holds its choices).
pub fn reads_named(name: &str) -> Option<&'static [CommitRecordReads]> {
    ALL_READS
        .iter()
        .find(|&&reads| reads_name(reads) == name)
        .map(std::slice::from_ref)
}

fn parse_reads(name: &str) -> Result<CommitRecordReads, ConnectError> {
    reads_named(name)
        .map(|reads| reads[0])
        .ok_or_else(|| ConnectError::fatal(format!("{READS}: unknown value {name:?}")))
}

/// Every this many records of a stream, one the source's converter refuses.
pub const REFUSED_BY_SOURCE_EVERY: i64 = 97;
/// Every this many records of a stream, one the sink's converter refuses.
pub const REFUSED_BY_SINK_EVERY: i64 = 89;

/// Every this many records of a stream, one a destination that rejects records rejects (in the
/// `dead-letters` scenario): the sink reports it through its `ErrantRecordReporter`.
pub const REJECTED_EVERY: i64 = 41;

/// Whether a destination that rejects records rejects record `seq` of a stream.
pub fn rejected(seq: i64) -> bool {
    seq % REJECTED_EVERY == REJECTED_EVERY / 2
}

/// A record that one side's converter refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poison {
    /// A string where the source's `ByteArrayConverter` takes bytes: it never reaches Kafka.
    RefusedBySource,
    /// Bytes that are not UTF-8: in Kafka, but the sink's `StringConverter` refuses them.
    RefusedBySink,
}

/// Whether record `seq` of a stream is poison, and to whom.
pub fn poison(seq: i64) -> Option<Poison> {
    if seq % REFUSED_BY_SOURCE_EVERY == REFUSED_BY_SOURCE_EVERY - 1 {
        Some(Poison::RefusedBySource)
    } else if seq % REFUSED_BY_SINK_EVERY == REFUSED_BY_SINK_EVERY - 1 {
        Some(Poison::RefusedBySink)
    } else {
        None
    }
}

/// What a scenario's transforms do to a marked record, told by a header (its key is all they test,
/// with `HasHeaderKey`). Only records that are neither poison nor rejected are marked, so a record
/// meets at most one of these fates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The source's `Filter` drops it: never in Kafka, its offset committed all the same.
    SourceDrop,
    /// A source transform fails on it: under `errors.tolerance=all`, dead-lettered by the source (or
    /// skipped, without a queue), never in the topic.
    SourceFail,
    /// The sink's `Filter` drops it: in Kafka, never written, its offset committed all the same.
    SinkDrop,
    /// A sink transform fails on it: in Kafka, dead-lettered by the sink (or skipped).
    SinkFail,
}

impl Mark {
    /// The header a marked record carries.
    pub fn header(self) -> &'static str {
        match self {
            Mark::SourceDrop => "sim.source.drop",
            Mark::SourceFail => "sim.source.fail",
            Mark::SinkDrop => "sim.sink.drop",
            Mark::SinkFail => "sim.sink.fail",
        }
    }

    /// Whether a Kafka record's headers carry a mark for the sink's transforms.
    pub fn for_sink(headers: &[(String, Option<Vec<u8>>)]) -> bool {
        headers
            .iter()
            .any(|(key, _)| key == Mark::SinkDrop.header() || key == Mark::SinkFail.header())
    }
}

/// The mark record `seq` of a stream carries when the source marks records.
pub fn mark(seq: i64) -> Option<Mark> {
    if poison(seq).is_some() || rejected(seq) {
        return None;
    }
    [
        (53, Mark::SourceDrop),
        (13, Mark::SourceFail),
        (61, Mark::SinkDrop),
        (67, Mark::SinkFail),
    ]
    .into_iter()
    .find(|(every, _)| seq % every == every / 2)
    .map(|(_, mark)| mark)
}

/// The byte that makes a record's value invalid UTF-8, after its text.
const NOT_UTF8: u8 = 0xff;

/// Whether a value in Kafka is one the sink's converter refuses.
pub fn refused_by_sink(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_err()
}

/// The record a value in Kafka holds (text `stream-S:N`, perhaps followed by the byte that makes it
/// invalid UTF-8): (S, N).
pub fn parse_value(value: &[u8]) -> Option<(i64, i64)> {
    let text = value.strip_suffix(&[NOT_UTF8]).unwrap_or(value);
    let (stream, seq) = std::str::from_utf8(text)
        .ok()?
        .strip_prefix("stream-")?
        .split_once(':')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// The key and value of record `seq` of stream `stream`.
pub fn record_text(stream: i64, seq: i64) -> (String, String) {
    (format!("stream-{stream}"), format!("stream-{stream}:{seq}"))
}

/// Record `seq`'s value as the task hands it over: bytes, or its poison.
fn record_value(text: String, seq: i64) -> Data {
    match poison(seq) {
        None => Data::schemaless(Value::Bytes(text.into_bytes())),
        Some(Poison::RefusedBySource) => Data::string(text),
        Some(Poison::RefusedBySink) => {
            let mut bytes = text.into_bytes();
            bytes.push(NOT_UTF8);
            Data::schemaless(Value::Bytes(bytes))
        }
    }
}

pub struct SequenceSourceConnector {
    config: ConfigMap,
    /// Numbers task instances across the whole run.
    instances: Arc<AtomicU64>,
    reports: Arc<SourceReports>,
    outages: Arc<SourceOutages>,
}

impl SequenceSourceConnector {
    pub fn new(
        instances: Arc<AtomicU64>,
        reports: Arc<SourceReports>,
        outages: Arc<SourceOutages>,
    ) -> SequenceSourceConnector {
        SequenceSourceConnector {
            config: ConfigMap::new(),
            instances,
            reports,
            outages,
        }
    }
}

#[async_trait]
impl Connector for SequenceSourceConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(config)?;
        if !matches!(
            parsed.string(BUG),
            "none" | "skip-records" | "early-offsets" | "restart-from-beginning"
        ) {
            return Err(ConnectError::fatal(format!(
                "bug: unknown value {:?}",
                parsed.string(BUG)
            )));
        }
        parse_reads(parsed.string(READS))?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        let streams: i64 = self
            .config
            .get(STREAMS)
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        let tasks = (max_tasks.max(1) as i64).min(streams.max(1));
        (0..tasks)
            .map(|t| {
                let mine: Vec<String> = (0..streams)
                    .filter(|s| s % tasks == t)
                    .map(|s| s.to_string())
                    .collect();
                let mut config = self.config.clone();
                config.insert(ASSIGNED.into(), mine.join(","));
                config
            })
            .collect()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for SequenceSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(SequenceSourceTask {
            instances: self.instances.clone(),
            reports: self.reports.clone(),
            outages: self.outages.clone(),
            ..SequenceSourceTask::default()
        })
    }

    /// A stream resumes right after its committed seq.
    fn exactly_once_support(&self, _: &ConfigMap) -> ExactlyOnceSupport {
        ExactlyOnceSupport::Supported
    }
}

#[derive(Default)]
pub struct SequenceSourceTask {
    topic: String,
    records: i64,
    batch: usize,
    interval: Duration,
    bug: String,
    /// Records get their [`Mark`] headers.
    marks: bool,
    reads: CommitRecordReads,
    /// The next sequence number of each stream this task reads.
    next: BTreeMap<i64, i64>,
    instances: Arc<AtomicU64>,
    reports: Arc<SourceReports>,
    outages: Arc<SourceOutages>,
    /// This instance's number.
    instance: u64,
}

#[async_trait]
impl SourceTask for SequenceSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(context.configs())?;
        self.topic = parsed.string(TOPIC).to_owned();
        self.records = parsed.long(RECORDS);
        self.batch = parsed.int(BATCH).max(1) as usize;
        self.interval = Duration::from_millis(parsed.long(INTERVAL).max(0) as u64);
        self.bug = parsed.string(BUG).to_owned();
        self.marks = parsed.boolean(MARKS);
        self.reads = parse_reads(parsed.string(READS))?;
        self.instance = self.instances.fetch_add(1, Ordering::SeqCst);
        self.outages.started();
        let assigned = context.configs().get(ASSIGNED).cloned().unwrap_or_default();
        for stream in assigned
            .split(',')
            .filter_map(|s| s.trim().parse::<i64>().ok())
        {
            let stored = context
                .offset_storage_reader()
                .offset(&SourceMap::single("stream", stream))
                .and_then(|offset| offset.get("seq").and_then(|s| s.as_i64()));
            let resume = match self.bug.as_str() {
                "restart-from-beginning" => 0,
                _ => stored.map_or(0, |seq| seq + 1),
            };
            self.next.insert(stream, resume);
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        tokio::time::sleep(self.interval).await;
        self.outages.poll(crate::broker::now())?;
        let mut out = Vec::new();
        let streams: Vec<i64> = self.next.keys().copied().collect();
        'fill: loop {
            let mut progressed = false;
            for &stream in &streams {
                if out.len() >= self.batch {
                    break 'fill;
                }
                let seq = self.next[&stream];
                if seq >= self.records {
                    continue;
                }
                self.next.insert(stream, seq + 1);
                progressed = true;
                if self.bug == "skip-records" && seq % 50 == 49 && seq + 1 < self.records {
                    continue;
                }
                let labelled = match self.bug.as_str() {
                    "early-offsets" => (seq + 5).min(self.records - 1),
                    _ => seq,
                };
                let (key, value) = record_text(stream, seq);
                let mut record = SourceRecord::new(
                    SourceMap::single("stream", stream),
                    SourceMap::single("seq", labelled),
                    self.topic.as_str(),
                    record_value(value, seq),
                );
                record.key = Data::string(key);
                if let Some(mark) = mark(seq).filter(|_| self.marks) {
                    record.headers.push(Header {
                        key: mark.header().to_owned(),
                        value: Data::string(""),
                    });
                }
                self.reports.polled(self.instance, (stream, seq));
                out.push(record);
            }
            if !progressed {
                break;
            }
        }
        Ok(out)
    }

    async fn commit(&mut self) -> Result<(), ConnectError> {
        self.reports.committed(self.instance);
        Ok(())
    }

    fn commit_record(
        &mut self,
        record: &SourceRecord,
        metadata: Option<&RecordMetadata>,
    ) -> Result<(), ConnectError> {
        let id = match (&record.value.value, self.reads) {
            (Value::Bytes(bytes), _) => parse_value(bytes),
            (Value::String(text), _) => parse_value(text.as_bytes()),
            // The runtime keeps no record's data for a task that reads none: its place is all it has.
            (Value::Null, CommitRecordReads::NoData) => record_place(record),
            _ => None,
        };
        let id = id.ok_or_else(|| ConnectError::fatal("commit_record: not a record of mine"))?;
        if metadata.is_none() {
            coverage::reached(Event::RecordSkipped);
            let marked = |mark: Mark| record.headers.iter().any(|h| h.key == mark.header());
            if marked(Mark::SourceDrop) {
                coverage::reached(Event::SourceRecordFiltered);
            } else if marked(Mark::SourceFail) {
                coverage::reached(Event::SourceTransformFailed);
            }
        }
        self.reports
            .told(self.instance, id, metadata.map(|m| (m.partition, m.offset)));
        Ok(())
    }

    fn commit_record_reads(&self) -> CommitRecordReads {
        self.reads
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        // The runtime has waited for acknowledgements and committed what it could (a task that reads
        // nothing is never told anything).
        if self.reads != CommitRecordReads::Nothing && self.reports.untold(self.instance) > 0 {
            coverage::reached(Event::SourceStoppedUntold);
        }
        Ok(())
    }
}

/// The record at a source partition and offset of this source: (stream, seq).
fn record_place(record: &SourceRecord) -> Option<(i64, i64)> {
    let stream = record.source_partition.get("stream")?.as_i64()?;
    let seq = record.source_offset.get("seq")?.as_i64()?;
    Some((stream, seq))
}
