//! The built-in scenarios of `sluice sim --list`, written with the test kit's public API ([`SimTest`]) as a
//! connector author writes a test: the same builder, fault kinds, guarantees and required events, and
//! nothing the kit does not offer every crate. Each one's required events are its headline: the runtime
//! paths its faults exist to reach, which its CI seeds must reach (`tests/headlines.rs`).

use std::time::Duration;

use crate::coverage::Event;
use crate::faults::FaultKind;
use crate::kit::SimTest;
use crate::scenario::Guarantee;

/// Every built-in scenario.
pub fn scenarios() -> Vec<SimTest> {
    vec![
        file_to_file(),
        pipeline(),
        sink_group_rebalance(),
        slow_flush(),
        dead_letters(),
        crash_restart_storm(),
        exactly_once_source(),
        retention(),
        operator_calls(),
    ]
}

/// The built-in scenario called `name`.
pub fn scenario(name: &str) -> Option<SimTest> {
    scenarios().into_iter().find(|test| test.name() == name)
}

/// The names of the built-in scenarios, for a person who gave an unknown one.
pub fn names() -> Vec<&'static str> {
    scenarios().iter().map(SimTest::name).collect()
}

fn file_to_file() -> SimTest {
    SimTest::files("file-to-file")
        .about("FileStreamSource to Kafka to FileStreamSink on simulated disks, with the input rotated by copy and truncate, crashes (unsynced writes are lost), failed fsyncs (the dirty pages kept, or dropped as Linux does) of files and directories, failed and short writes, restarts, network holds, broker restarts, leader and coordinator moves and retriable produce errors, some outlasting delivery.timeout.ms")
        .faults(
            &[
                FaultKind::CrashWorker,
                FaultKind::StopWorker,
                FaultKind::HoldNetwork,
                FaultKind::RestartBroker,
                FaultKind::MoveLeaders,
                FaultKind::MoveCoordinators,
                FaultKind::FailSync,
                FaultKind::FailDirSync,
                FaultKind::FailWrite,
                FaultKind::ShortWrite,
                FaultKind::Latency,
                FaultKind::ProduceErrors,
                FaultKind::RotateInput,
            ],
            8,
        )
        .headline_faults(&[
            FaultKind::CrashWorker,
            FaultKind::HoldNetwork,
            FaultKind::RotateInput,
        ])
        .require(&[
            Event::WorkerCrashed,
            Event::MemberThrownOut,
            Event::UnsyncedDataLost,
            Event::PartialLineRead,
            Event::InputRotated,
        ])
        .with_scenario(|s| s.delivery_timeout = Duration::from_secs(15))
}

fn operator_calls() -> SimTest {
    SimTest::runtime("operator-calls")
        .about("an operator pauses, stops, resumes, restarts and reconfigures the source and the sinks over the REST API (the worker's control), and resets the stopped source's offsets, while workers stop, crash and lose the network and the sink group rebalances; nothing may be lost (a reset source reads everything again: duplicates, within at least once), and each connector must show the state asked for after every call and when its worker stops (wrong-connector-state)")
        .faults(
            &[
                FaultKind::Operate,
                FaultKind::StopWorker,
                FaultKind::CrashWorker,
                FaultKind::HoldNetwork,
                FaultKind::Latency,
            ],
            10,
        )
        .headline_faults(&[FaultKind::Operate])
        .require(&[Event::OperatorCall])
        .with_scenario(|s| s.cut_off_stops = true)
}

fn pipeline() -> SimTest {
    SimTest::runtime("pipeline")
        .about("source to Kafka to sink on three workers and three brokers, with message latency only; nothing may be lost or duplicated")
        .faults(&[FaultKind::Latency], 2)
        .require(&[Event::OutOfOrderAcknowledgement, Event::RecordSkipped])
        .guarantee(Guarantee::ExactlyOnce)
}

fn sink_group_rebalance() -> SimTest {
    SimTest::runtime("sink-group-rebalance")
        .about("workers leave and rejoin the sink group cleanly; revoked partitions are committed before they move, so nothing is duplicated with eager rebalances; with cooperative ones a stop that races a rebalance's completion has its last commit refused and is delivered again, so those runs are held to at least once (guarantee_relaxed in the report)")
        .faults(&[FaultKind::StopWorker, FaultKind::Latency], 5)
        .headline_faults(&[FaultKind::StopWorker])
        .require(&[Event::PartitionHandedOver])
        .guarantee(Guarantee::ExactlyOnce)
        .with_scenario(|s| s.sink_tasks = 2)
}

fn slow_flush() -> SimTest {
    SimTest::runtime("slow-flush")
        .about("flushes and puts stall past session.timeout.ms, often past max.poll.interval.ms: within put.flush.limit.ms the runtime polls meanwhile and no member may be thrown out (thrown-out-below-limit); past it the task stops polling, its member is thrown out and its partitions move")
        .faults(
            &[FaultKind::StallFlush, FaultKind::StallPut, FaultKind::FailFlush],
            5,
        )
        .headline_faults(&[FaultKind::StallFlush])
        .require(&[
            Event::FlushPastMaxPollInterval,
            Event::SlowCallKeptMembership,
            Event::MemberThrownOut,
            Event::RebalanceDuringFlush,
        ])
}

fn dead_letters() -> SimTest {
    SimTest::runtime("dead-letters")
        .about("the source and the sink have dead letter queues and single message transforms: the source's converter refuses some records and its transforms drop or fail on others (Filter, ExtractField with HasHeaderKey predicates), the sink's converter refuses some, its transforms drop or fail on others and its destination rejects others, which the task reports through its ErrantRecordReporter, while puts and flushes stall (some past put.flush.limit.ms), flushes fail, workers crash and lose the network; every source record must end in the topic, dropped, or in the source's queue (its offset committed only once its dead letter is in Kafka), every record of the topic in the destination, dropped, or in the sink's queue (found by its context headers), none in both, none lost")
        .faults(
            &[
                FaultKind::StallPut,
                FaultKind::StallFlush,
                FaultKind::FailFlush,
                FaultKind::CrashWorker,
                FaultKind::HoldNetwork,
                FaultKind::Latency,
            ],
            6,
        )
        .headline_faults(&[FaultKind::StallPut, FaultKind::CrashWorker])
        .require(&[
            Event::ErrantRecordReported,
            Event::WorkerCrashed,
            Event::FlushPastMaxPollInterval,
            Event::SourceRecordFiltered,
            Event::SourceTransformFailed,
        ])
        .with_scenario(|s| {
            s.dead_letters = true;
            s.transforms = true;
        })
}

fn crash_restart_storm() -> SimTest {
    SimTest::runtime("crash-restart-storm")
        .about("workers crash and restart, lose the network (held or partitioned) long enough to expire their sessions, brokers restart (their partitions failing over) and partition leaders move, the brokers answer produce requests with retriable errors, some outlasting delivery.timeout.ms; the source's offset file sees failed fsyncs of itself and its directory, and failed and short writes; the source system fails polls (down for a while, or refusing a task for good) and the destination fails a put for good, the failed tasks restarting by task.restart.policy=on-failure")
        .faults(
            &[
                FaultKind::CrashWorker,
                FaultKind::StopWorker,
                FaultKind::HoldNetwork,
                FaultKind::PartitionNetwork,
                FaultKind::RestartBroker,
                FaultKind::MoveLeaders,
                FaultKind::MoveCoordinators,
                FaultKind::FailFlush,
                FaultKind::FailPoll,
                FaultKind::FailPut,
                FaultKind::FailSync,
                FaultKind::FailDirSync,
                FaultKind::FailWrite,
                FaultKind::ShortWrite,
                FaultKind::Latency,
                FaultKind::ProduceErrors,
            ],
            8,
        )
        .headline_faults(&[
            FaultKind::CrashWorker,
            FaultKind::HoldNetwork,
            FaultKind::MoveLeaders,
            FaultKind::ProduceErrors,
            FaultKind::FailPoll,
            FaultKind::FailPut,
        ])
        .require(&[
            Event::WorkerCrashed,
            Event::MemberThrownOut,
            Event::CommitRefusedStale,
            Event::RewindApplied,
            Event::PartitionsLost,
            Event::DeliveryFailed,
            Event::DeliveryFailedUnstored,
            Event::LeaderMoved,
            Event::PollFailedRetriable,
            Event::PollFailedFatal,
            Event::PutFailedFatal,
            Event::TaskRestartedAfterFailure,
        ])
        .with_scenario(|s| s.delivery_timeout = Duration::from_secs(15))
}

fn exactly_once_source() -> SimTest {
    SimTest::runtime("exactly-once-source")
        .about("exactly-once source support: the source task's worker is cut off from the broker while an orchestrator starts the task on another worker; the old instance comes back as a zombie and must be fenced; workers crash and restart, brokers restart, group and transaction coordinators move; read_committed sinks")
        .exactly_once_source()
        .faults(
            &[
                FaultKind::TakeOver,
                FaultKind::CrashWorker,
                FaultKind::StopWorker,
                FaultKind::PartitionNetwork,
                FaultKind::RestartBroker,
                FaultKind::MoveLeaders,
                FaultKind::MoveCoordinators,
                FaultKind::Latency,
            ],
            8,
        )
        .headline_faults(&[
            FaultKind::TakeOver,
            FaultKind::CrashWorker,
            FaultKind::MoveCoordinators,
        ])
        .require(&[
            Event::ZombieFenced,
            Event::WorkerCrashed,
            Event::CoordinatorMoved,
            Event::RecordSkipped,
        ])
}

fn retention() -> SimTest {
    SimTest::runtime("retention")
        .about("retention deletes the oldest records of the pipeline's topic (often all of them so far) while sink workers stop, crash or lose the network; a sink consumer whose position or committed offset is before the log start skips to it (auto.offset.reset=earliest), and the records no sink task wrote count as deleted, not lost")
        .faults(
            &[
                FaultKind::DeleteRecords,
                FaultKind::StopWorker,
                FaultKind::CrashWorker,
                FaultKind::HoldNetwork,
                FaultKind::Latency,
            ],
            6,
        )
        .headline_faults(&[FaultKind::DeleteRecords, FaultKind::HoldNetwork])
        .require(&[Event::RetentionSkipped, Event::CommitBeforeLogStart])
}
