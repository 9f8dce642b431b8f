//! Coverage: which runtime events a run reached.
//!
//! A seed that passes proves something only if the paths it was meant to exercise ran: a crash that lost
//! unsynced data, a commit refused as stale, a rewind applied. The simulated broker, clients, disks and
//! workload connectors call [`reached`] where such an event happens, and each run's report counts them.
//! Each built-in scenario requires its headline events ([`SimTest::require`](crate::kit::SimTest::require)),
//! and a test fails if its CI seeds never reach one.
//!
//! The collector is process-wide: runs are serialized per process (see `harness::driver`), and each run
//! starts it empty ([`start`]) and takes it at the end ([`finish`]). Events from code running outside a
//! run (a conformance test's own simulation) go nowhere once read by nobody.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A runtime event a seed may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A worker host crashed (its process died; what it had not synced is gone).
    WorkerCrashed,
    /// The group coordinator expired a member's session, or threw it out for not polling in time.
    MemberThrownOut,
    /// The group coordinator refused an offset commit from an older generation or an unknown member.
    CommitRefusedStale,
    /// A sink task's flush (or put) took longer than `max.poll.interval.ms`.
    FlushPastMaxPollInterval,
    /// The group started a rebalance while a sink task was flushing.
    RebalanceDuringFlush,
    /// A crash dropped data written but not yet synced on a simulated disk.
    UnsyncedDataLost,
    /// A transactional producer was fenced by a newer instance of its transactional id.
    ZombieFenced,
    /// A source record's delivery failed for good (the producer gave up on it).
    DeliveryFailed,
    /// A source record's delivery failed for good and no broker can hold it: it was never sent, or every
    /// attempt was refused without being appended (`NOT_LEADER_OR_FOLLOWER` until `delivery.timeout.ms`).
    /// Unlike a delivery that timed out waiting for an answer, the record is not in Kafka: committing
    /// its offset loses it.
    DeliveryFailedUnstored,
    /// A sink task's rewind (`SinkTaskContext` offset reset) moved the consumer's position.
    RewindApplied,
    /// The producer acknowledged a record before an earlier record of the same task.
    OutOfOrderAcknowledgement,
    /// A group member heard no heartbeat answer within `session.timeout.ms` and gave its partitions up
    /// as lost (the client-side session timeout).
    PartitionsLost,
    /// A rebalance gave a partition to another member than the one that owned it before.
    PartitionHandedOver,
    /// A client found a partition's leader on another broker than before (after NOT_LEADER_OR_FOLLOWER or
    /// a lost connection) and sent there.
    LeaderMoved,
    /// A client found its group's or transactional id's coordinator on another broker than before (after
    /// NOT_COORDINATOR or a lost connection).
    CoordinatorMoved,
    /// The source's converter refused a record and the runtime dropped it (`errors.tolerance=all`),
    /// telling the task through `commit_record` without a place in Kafka.
    RecordSkipped,
    /// An exactly-once source instance found a newer generation of its task in the offsets topic and did
    /// not register its transactional id (it would have fenced the live instance).
    OlderGenerationRefused,
    /// The operator started a failed exactly-once source instance again where it is placed.
    FailedSourceRestarted,
    /// A FileStreamSource read ended inside a line: the file's writer had written part of it, and the
    /// source had to keep the part until the rest came.
    PartialLineRead,
    /// The file-to-file input was rotated (copied aside and emptied in place) under the source reading it.
    InputRotated,
    /// A sink consumer's position was before its partition's log start (retention deleted the records
    /// there before it read them), and `auto.offset.reset` moved it to the log start.
    RetentionSkipped,
    /// A group member read a committed offset before its partition's log start: retention deleted
    /// records the group had not committed past (the sink task reports them and goes on from the log
    /// start).
    CommitBeforeLogStart,
    /// A host of a connector's external system (a test kit run's destination) crashed: what it had not
    /// made durable is gone.
    ExternalCrashed,
    /// The connector's external system was unreachable from the workers for a while.
    ExternalUnreachable,
    /// Messages between the workers and the connector's external system were slow for a while.
    ExternalSlow,
    /// The connector's external system answered a request with an error (its model asked
    /// [`kit::answering_errors`](crate::kit::answering_errors) during an `errors-external` fault).
    ExternalErrorAnswered,
    /// A sink task's `put` or flush ran longer than `max.poll.interval.ms` but within
    /// `put.flush.limit.ms`, and its worker's members stayed in the group meanwhile.
    SlowCallKeptMembership,
    /// A sink task reported a record its destination rejects through its `ErrantRecordReporter`.
    ErrantRecordReported,
    /// An operator's REST call (pause, stop, resume, restart, config change) on a connector took effect.
    OperatorCall,
    /// An operator reset a stopped source's offsets over REST; resumed, it read everything again.
    SourceOffsetsReset,
    /// The source's transforms dropped a record (a `Filter`): the task was told it went nowhere.
    SourceRecordFiltered,
    /// A source transform failed on a record under `errors.tolerance=all`: the record was
    /// dead-lettered (or skipped), and the task told it went nowhere.
    SourceTransformFailed,
    /// A source task's poll failed with a retriable error (its source system was down): the runtime
    /// polls again after a backoff.
    PollFailedRetriable,
    /// A source task's poll failed with a fatal error: the task failed.
    PollFailedFatal,
    /// A sink task's `put` failed with a fatal error: the task failed with what it had buffered.
    PutFailedFatal,
    /// A task that failed started again (`task.restart.policy=on-failure`).
    TaskRestartedAfterFailure,
    /// A source task stopped with records it had polled that the runtime never told it of, their offsets
    /// uncommitted: Kafka had not acknowledged them by the end of the stop, had refused them, or (exactly
    /// once) held them in a transaction that did not commit.
    SourceStoppedUntold,
}

impl Event {
    /// Every event, in report order (keep in step with the enum).
    pub const ALL: [Event; 37] = [
        Event::WorkerCrashed,
        Event::MemberThrownOut,
        Event::CommitRefusedStale,
        Event::FlushPastMaxPollInterval,
        Event::RebalanceDuringFlush,
        Event::UnsyncedDataLost,
        Event::ZombieFenced,
        Event::DeliveryFailed,
        Event::DeliveryFailedUnstored,
        Event::RewindApplied,
        Event::OutOfOrderAcknowledgement,
        Event::PartitionsLost,
        Event::PartitionHandedOver,
        Event::LeaderMoved,
        Event::CoordinatorMoved,
        Event::RecordSkipped,
        Event::OlderGenerationRefused,
        Event::FailedSourceRestarted,
        Event::PartialLineRead,
        Event::InputRotated,
        Event::RetentionSkipped,
        Event::CommitBeforeLogStart,
        Event::ExternalCrashed,
        Event::ExternalUnreachable,
        Event::ExternalSlow,
        Event::ExternalErrorAnswered,
        Event::SlowCallKeptMembership,
        Event::ErrantRecordReported,
        Event::OperatorCall,
        Event::SourceOffsetsReset,
        Event::SourceRecordFiltered,
        Event::SourceTransformFailed,
        Event::PollFailedRetriable,
        Event::PollFailedFatal,
        Event::PutFailedFatal,
        Event::TaskRestartedAfterFailure,
        Event::SourceStoppedUntold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::WorkerCrashed => "worker-crashed",
            Event::MemberThrownOut => "member-thrown-out",
            Event::CommitRefusedStale => "commit-refused-stale",
            Event::FlushPastMaxPollInterval => "flush-past-max-poll-interval",
            Event::RebalanceDuringFlush => "rebalance-during-flush",
            Event::UnsyncedDataLost => "unsynced-data-lost",
            Event::ZombieFenced => "zombie-fenced",
            Event::DeliveryFailed => "delivery-failed",
            Event::DeliveryFailedUnstored => "delivery-failed-unstored",
            Event::RewindApplied => "rewind-applied",
            Event::OutOfOrderAcknowledgement => "out-of-order-acknowledgement",
            Event::PartitionsLost => "partitions-lost",
            Event::PartitionHandedOver => "partition-handed-over",
            Event::LeaderMoved => "leader-moved",
            Event::CoordinatorMoved => "coordinator-moved",
            Event::RecordSkipped => "record-skipped",
            Event::OlderGenerationRefused => "older-generation-refused",
            Event::FailedSourceRestarted => "failed-source-restarted",
            Event::PartialLineRead => "partial-line-read",
            Event::InputRotated => "input-rotated",
            Event::RetentionSkipped => "retention-skipped",
            Event::CommitBeforeLogStart => "commit-before-log-start",
            Event::ExternalCrashed => "external-crashed",
            Event::ExternalUnreachable => "external-unreachable",
            Event::ExternalSlow => "external-slow",
            Event::ExternalErrorAnswered => "external-error-answered",
            Event::SlowCallKeptMembership => "slow-call-kept-membership",
            Event::ErrantRecordReported => "errant-record-reported",
            Event::OperatorCall => "operator-call",
            Event::SourceOffsetsReset => "source-offsets-reset",
            Event::SourceRecordFiltered => "source-record-filtered",
            Event::SourceTransformFailed => "source-transform-failed",
            Event::PollFailedRetriable => "poll-failed-retriable",
            Event::PollFailedFatal => "poll-failed-fatal",
            Event::PutFailedFatal => "put-failed-fatal",
            Event::TaskRestartedAfterFailure => "task-restarted-after-failure",
            Event::SourceStoppedUntold => "source-stopped-untold",
        }
    }
}

/// How many times a run reached each event.
pub type Coverage = BTreeMap<Event, u64>;

static CURRENT: Mutex<Coverage> = Mutex::new(BTreeMap::new());

fn current() -> std::sync::MutexGuard<'static, Coverage> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records that the current run reached `event`.
pub fn reached(event: Event) {
    *current().entry(event).or_insert(0) += 1;
}

/// Starts a run's coverage empty.
pub(crate) fn start() {
    current().clear();
}

/// What the run reached.
pub(crate) fn finish() -> Coverage {
    std::mem::take(&mut *current())
}
