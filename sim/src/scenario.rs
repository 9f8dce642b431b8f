//! Scenarios: the shape of a simulated deployment (workers, partitions, records, timeouts), which faults the
//! seed may choose from, and which guarantee the oracle holds the run to. A [`SimTest`](crate::kit::SimTest)
//! builds one; the built-in ones are in [`crate::builtin`].

use std::time::Duration;

use sluice_core::api::CommitRecordReads;

use crate::faults::FaultKind;
use crate::kit::{SinkUnderTest, SourceUnderTest};
use crate::workload::{self, Mark, Poison, SinkMode};

/// How strictly duplicates are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Records may be delivered again after a crash or a lost session: duplicates are counted.
    AtLeastOnce,
    /// Only clean stops and rebalances happen: a duplicate is an anomaly.
    ExactlyOnce,
    /// Exactly-once source support: each source record is in Kafka once for read_committed readers,
    /// whatever happens (a duplicate there is an anomaly); the sink side stays at least once.
    ExactlyOnceSource,
    /// The sink keeps its offsets in the destination: each Kafka record is written there once, whatever
    /// happens (a duplicate there is an anomaly); the source side stays at least once.
    ExactlyOnceSink,
    /// The sink's destination applies records as upserts by key (told with
    /// [`DurableWrites::upserted`](crate::kit::DurableWrites::upserted)): a record written again is
    /// harmless, whatever the fault, but each key must end with the value of its latest record in Kafka
    /// (`stale-value` otherwise); the source side stays at least once.
    EffectivelyOnce,
}

impl Guarantee {
    /// The guarantee with a sink that keeps its offsets in the destination, so the sink side is exactly once.
    pub fn with_exactly_once_sink(self) -> Guarantee {
        match self {
            Guarantee::AtLeastOnce | Guarantee::ExactlyOnceSink | Guarantee::EffectivelyOnce => {
                Guarantee::ExactlyOnceSink
            }
            Guarantee::ExactlyOnce | Guarantee::ExactlyOnceSource => Guarantee::ExactlyOnce,
        }
    }
}

/// What the pipeline moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// SequenceSource into Kafka, StoreSink out of it.
    Sequences,
    /// FileStreamSource reading a file an application appends to on worker 0's simulated disk, and
    /// FileStreamSink writing a file on each worker's disk.
    Files,
}

/// A simulated deployment and what may go wrong in it.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// Worker hosts. Worker 0 runs the source connector and a sink task; the others a sink task each.
    pub workers: usize,
    /// Broker hosts: partition leaders and coordinators are spread over them.
    pub brokers: usize,
    pub workload: Workload,
    /// Partitions of the pipeline's topic.
    pub partitions: i32,
    /// The StoreSink's `tasks.max` on each worker: its tasks on one worker stop together.
    pub sink_tasks: usize,
    /// Source streams, and records in each.
    pub streams: i64,
    pub records_per_stream: i64,
    /// Pause before each source poll.
    pub source_interval: Duration,
    /// Faults are injected during this window; then everything is healed and the pipeline drains.
    pub active: Duration,
    /// How long the pipeline may take to deliver everything after the faults.
    pub drain_limit: Duration,
    /// The fault kinds a seed may pick from (it picks a subset, swarm-style).
    pub faults: &'static [FaultKind],
    /// The fault kinds the scenario is about: a seed picks each with high odds and draws it at least once.
    pub headline_faults: &'static [FaultKind],
    /// How many faults a run injects at most.
    pub max_faults: usize,
    /// The sink consumers' `partition.assignment.strategy` values a seed picks from: `range` (eager
    /// rebalances) or `cooperative-sticky` (incremental, KIP-429).
    pub assignors: &'static [&'static str],
    pub guarantee: Guarantee,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    /// The sink's `put.flush.limit.ms`: how long a `put` or flush may run while its task keeps its
    /// partitions.
    pub put_flush_limit: Duration,
    /// The sink has a dead letter queue (`<topic>-dlq`, with context headers), and its destination
    /// rejects some records, which the sink reports as errant.
    pub dead_letters: bool,
    /// Single message transforms on both sides: the SequenceSource marks some records with headers
    /// (see [`workload::Mark`]), the source's chain drops or fails those marked for it and adds an
    /// `origin` header to the rest, the sink's chain drops records without that header and drops or
    /// fails those marked for it. With `dead_letters` the source has a dead letter queue too
    /// (`<topic>-source-dlq`).
    pub transforms: bool,
    /// `offset.flush.interval.ms`.
    pub commit_interval: Duration,
    /// The source producers' `delivery.timeout.ms` (their `request.timeout.ms` is a third of it, at most
    /// Kafka's 30 s): a fault that outlasts it makes deliveries fail for good.
    pub delivery_timeout: Duration,
    /// The simulation's tick.
    pub tick: Duration,
    /// A planted bug in the source or sink connector (`bug` key), for the oracle's own tests.
    pub source_bug: &'static str,
    pub sink_bug: &'static str,
    /// Workers run source tasks exactly once (`exactly.once.source.support=enabled`). The source then
    /// runs on one worker at a time, which [`FaultKind::TakeOver`] moves as an orchestrator would.
    pub exactly_once: bool,
    /// The source's `transaction.boundary` values a seed picks from (with `exactly_once`).
    pub transaction_boundaries: &'static [&'static str],
    /// The sink consumers' `isolation.level`.
    pub sink_isolation: &'static str,
    /// How the StoreSink makes records durable: the seed picks one of these (a seeded run narrows the list
    /// to the one it picked). With [`SinkMode::OffsetsInDestination`] the sink side is judged exactly once.
    pub sink_modes: &'static [SinkMode],
    /// What the SequenceSource's `commit_record` reads: the seed picks one of these (a seeded run narrows
    /// the list to the one it picked), and with it how the runtime keeps the records in flight.
    pub commit_record_reads: &'static [CommitRecordReads],
    /// Whether a seed may cut a worker off from the brokers just before stopping it (even odds for each
    /// stop of its plan; see [`Fault::StopWorker`](crate::faults::Fault::StopWorker)).
    pub cut_off_stops: bool,
    /// A planted misconfiguration of the workers, for the oracle's own tests: `distinct-group-ids` gives
    /// each worker its own `group.id`, so a task's instances on two workers have different
    /// transactional ids and nothing fences the older one.
    pub worker_bug: &'static str,
    /// A planted bug in the simulated broker, for the oracle's own tests: `accept-stale-commits` makes the
    /// group coordinator accept offset commits from members of older generations.
    pub broker_bug: &'static str,
    /// A connector author's sink and its external system, in place of the StoreSink (see [`crate::kit`]).
    pub sink_under_test: Option<SinkUnderTest>,
    /// A connector author's source and its external system, in place of the SequenceSource.
    pub source_under_test: Option<SourceUnderTest>,
}

impl Scenario {
    const BASE: Scenario = Scenario {
        name: "",
        about: "",
        workers: 3,
        brokers: 3,
        workload: Workload::Sequences,
        partitions: 8,
        sink_tasks: 1,
        streams: 8,
        records_per_stream: 1_250,
        source_interval: Duration::from_millis(100),
        active: Duration::from_secs(60),
        drain_limit: Duration::from_secs(240),
        faults: &[],
        headline_faults: &[],
        max_faults: 0,
        assignors: &["range", "cooperative-sticky"],
        guarantee: Guarantee::AtLeastOnce,
        session_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(3),
        max_poll_interval: Duration::from_secs(30),
        put_flush_limit: Duration::from_secs(40),
        dead_letters: false,
        transforms: false,
        // Not a multiple of the source's poll interval: commits would otherwise always come right before
        // a poll, when the last poll's records have long been acknowledged, and never see a window
        // between a send and its acknowledgement.
        commit_interval: Duration::from_millis(2_030),
        delivery_timeout: Duration::from_secs(120),
        tick: Duration::from_millis(5),
        source_bug: "none",
        sink_bug: "none",
        exactly_once: false,
        transaction_boundaries: &[],
        sink_isolation: "read_uncommitted",
        sink_modes: &[
            SinkMode::Buffer,
            SinkMode::WriteInPut,
            SinkMode::OffsetsInDestination,
        ],
        commit_record_reads: &workload::ALL_READS,
        cut_off_stops: false,
        worker_bug: "none",
        broker_bug: "none",
        sink_under_test: None,
        source_under_test: None,
    };

    /// A scenario with the defaults every built-in one starts from: three workers and three brokers, 8
    /// partitions, 10,000 records from 8 streams, 60 s of faults, at least once, no faults allowed.
    pub fn base(name: &'static str) -> Scenario {
        Scenario {
            name,
            ..Scenario::BASE
        }
    }

    /// How many simulated hosts a run has: the brokers, the workers and the external systems' hosts.
    /// turmoil steps every one of them at every tick, busy or not.
    pub fn hosts(&self) -> usize {
        let sink_hosts = self
            .sink_under_test
            .as_ref()
            .map_or(0, |under_test| under_test.system.hosts().len());
        let source_hosts = self
            .source_under_test
            .as_ref()
            .map_or(0, |under_test| under_test.system.hosts().len());
        self.brokers.max(1) + self.workers + sink_hosts + source_hosts
    }

    pub fn total_records(&self) -> i64 {
        self.streams * self.records_per_stream
    }

    /// Whether record `seq` of every stream is one the source's converter refuses (skipped, never in
    /// Kafka; its offset is committed all the same).
    pub fn refused_by_source(&self, seq: i64) -> bool {
        self.workload == Workload::Sequences
            && self.source_under_test.is_none()
            && workload::poison(seq) == Some(Poison::RefusedBySource)
    }

    /// The mark record `seq` of every stream carries for the transforms, if the scenario has them.
    pub fn mark(&self, seq: i64) -> Option<Mark> {
        (self.transforms
            && self.workload == Workload::Sequences
            && self.source_under_test.is_none())
        .then(|| workload::mark(seq))
        .flatten()
    }

    /// Whether record `seq` of every stream never reaches the pipeline's topic: the source's converter
    /// refuses it, or its transforms drop it or fail on it (its offset is committed all the same).
    pub fn kept_out_of_kafka(&self, seq: i64) -> bool {
        self.refused_by_source(seq)
            || matches!(self.mark(seq), Some(Mark::SourceDrop | Mark::SourceFail))
    }

    /// Whether record `seq` of every stream has a dead letter in the source's queue.
    pub fn source_dead_lettered(&self, seq: i64) -> bool {
        self.source_dead_letter_topic().is_some()
            && (self.refused_by_source(seq) || self.mark(seq) == Some(Mark::SourceFail))
    }

    /// Whether record `seq` of every stream is in Kafka but never written by the sink: its converter
    /// refuses it, its destination rejects it, or its transforms drop it or fail on it.
    pub fn kept_out_of_destination(&self, seq: i64) -> bool {
        self.sink_dead_lettered(seq) || self.mark(seq) == Some(Mark::SinkDrop)
    }

    /// Whether record `seq` of every stream is skipped by the sink as an error: its converter refuses
    /// it, its destination rejects it, or a sink transform fails on it (each dead-lettered, when the
    /// sink has a queue).
    pub fn sink_dead_lettered(&self, seq: i64) -> bool {
        self.refused_by_sink(seq)
            || self.rejected_by_destination(seq)
            || self.mark(seq) == Some(Mark::SinkFail)
    }

    /// Whether record `seq` of every stream is one the sink's converter refuses (in Kafka, skipped by
    /// the sink).
    pub fn refused_by_sink(&self, seq: i64) -> bool {
        self.workload == Workload::Sequences
            && self.source_under_test.is_none()
            && workload::poison(seq) == Some(Poison::RefusedBySink)
    }

    /// Whether record `seq` of every stream is one the destination rejects (in Kafka, reported as errant
    /// by the sink and sent to its dead letter queue).
    pub fn rejected_by_destination(&self, seq: i64) -> bool {
        self.dead_letters
            && self.workload == Workload::Sequences
            && self.source_under_test.is_none()
            && self.sink_under_test.is_none()
            && workload::rejected(seq)
    }

    /// The sink's dead letter queue, if it has one.
    pub fn dead_letter_topic(&self) -> Option<String> {
        self.dead_letters.then(|| format!("{}-dlq", self.topic()))
    }

    /// The source's dead letter queue, if it has one (with transforms and dead letters).
    pub fn source_dead_letter_topic(&self) -> Option<String> {
        (self.dead_letters && self.transforms).then(|| format!("{}-source-dlq", self.topic()))
    }

    /// The source record (stream, seq) a Kafka record's value holds: as the source under test's model
    /// [identifies](crate::kit::ExternalSource::identify) it, or else as the built-in workloads write
    /// them (see [`workload::record_id`]).
    pub fn identify(&self, value: &[u8]) -> Option<(i64, i64)> {
        match &self.source_under_test {
            Some(under_test) => under_test.system.identify(value),
            None => workload::record_id(value),
        }
    }

    /// The assignor this run's sink consumers use: the first allowed one (a seeded run narrows the list
    /// to the one its seed picked).
    pub fn assignor(&self) -> &'static str {
        self.assignors.first().copied().unwrap_or("range")
    }

    /// The StoreSink's mode: the first allowed one (None when the workload has no StoreSink).
    pub fn sink_mode(&self) -> Option<SinkMode> {
        if self.sink_under_test.is_some() {
            return None;
        }
        match self.workload {
            Workload::Sequences => {
                Some(self.sink_modes.first().copied().unwrap_or(SinkMode::Buffer))
            }
            Workload::Files => None,
        }
    }

    /// What the SequenceSource's `commit_record` reads: the first allowed one (None when the workload
    /// has no SequenceSource).
    pub fn commit_record_reads(&self) -> Option<CommitRecordReads> {
        match (self.workload, &self.source_under_test) {
            (Workload::Sequences, None) => Some(
                self.commit_record_reads
                    .first()
                    .copied()
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    /// The source's `transaction.boundary`: the first allowed one (a seeded run narrows the list to the
    /// one its seed picked).
    pub fn transaction_boundary(&self) -> &'static str {
        self.transaction_boundaries
            .first()
            .copied()
            .unwrap_or("poll")
    }

    /// The topic the pipeline writes and reads.
    pub fn topic(&self) -> &'static str {
        match self.workload {
            Workload::Sequences => "sequences",
            Workload::Files => "lines",
        }
    }

    /// The sink connector's name.
    pub fn sink_name(&self) -> &'static str {
        if self.sink_under_test.is_some() {
            return "sink-under-test";
        }
        match self.workload {
            Workload::Sequences => "store-sink",
            Workload::Files => "file-sink",
        }
    }

    /// The sink connector's consumer group.
    pub fn sink_group(&self) -> String {
        format!("connect-{}", self.sink_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_counts_brokers_and_workers() {
        let scenario = Scenario::base("hosts");
        assert_eq!(scenario.hosts(), 6);
        let one_broker = Scenario {
            brokers: 1,
            workers: 2,
            ..scenario
        };
        assert_eq!(one_broker.hosts(), 3);
        let no_brokers_named = Scenario {
            brokers: 0,
            ..one_broker
        };
        assert_eq!(no_brokers_named.hosts(), 3, "a run has at least one broker");
    }
}
