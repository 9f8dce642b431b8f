//! Faults: what can go wrong, as data: the kinds a scenario allows, each fault with its parameters, and a
//! plan of faults with the times they strike. [`crate::fault_plan`] draws a plan from the seed; a test can
//! also script one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workload::{DirtyPages, WriteError};

/// The kinds of fault a scenario may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    CrashWorker,
    StopWorker,
    HoldNetwork,
    PartitionNetwork,
    StallFlush,
    StallPut,
    FailFlush,
    FailPoll,
    FailPut,
    FailSync,
    FailDirSync,
    FailWrite,
    ShortWrite,
    RestartBroker,
    MoveLeaders,
    MoveCoordinators,
    Latency,
    TakeOver,
    ProduceErrors,
    RotateInput,
    DeleteRecords,
    CrashExternal,
    HoldExternal,
    SlowExternal,
    ErrorsExternal,
    Operate,
}

/// What an operator does to a connector over the worker's REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// `PUT /connectors/{name}/pause`, then `/resume` after the fault's duration.
    Pause,
    /// `PUT /connectors/{name}/stop`, then `/resume` after the fault's duration.
    Stop,
    /// `POST /connectors/{name}/restart?includeTasks=true`.
    Restart,
    /// `PUT /connectors/{name}/config` with a key changed: the connector and its tasks are replaced.
    ChangeConfig,
    /// A source's offsets reset: stopped, `DELETE /connectors/{name}/offsets`, resumed after the fault's
    /// duration; it reads everything again (duplicates, within at least once).
    ResetOffsets,
}

/// Which of a worker's connectors an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Source,
    Sink,
}

/// The retriable error a [`Fault::ProduceErrors`] answers produce batches with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProduceError {
    /// `NOT_LEADER_OR_FOLLOWER`: the batch is not appended (a leader is moving).
    NotLeaderOrFollower,
    /// `REQUEST_TIMED_OUT`: the batch is appended but not acknowledged (a follower lags).
    RequestTimedOut,
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Fault {
    /// The worker's process dies (its unsynced state is gone) and starts again after `down`.
    CrashWorker {
        worker: usize,
        #[serde(with = "millis")]
        down: Duration,
    },
    /// The worker stops cleanly (leaving its group) and starts again after `away`. If `cut_off`, it has
    /// just lost the brokers (its messages dropped, as in [`Fault::PartitionNetwork`]) when it is told to
    /// stop, as an operator stops a worker that cannot reach Kafka: its tasks stop with records
    /// unacknowledged (their produce requests lost, or their answers) and commits that reach no broker,
    /// and give up after their timeouts. The network heals after `away`, also if the worker is still
    /// stopping then (it starts once it has stopped).
    StopWorker {
        worker: usize,
        #[serde(with = "millis")]
        away: Duration,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cut_off: bool,
    },
    /// Messages between the worker and the broker are held (a silent death: no FIN, heartbeats lost).
    HoldNetwork {
        worker: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages between the worker and the broker are dropped: connections break and clients reconnect once
    /// the partition heals.
    PartitionNetwork {
        worker: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next flush stalls this long before writing.
    StallFlush {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next put stalls this long.
    StallPut {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next flush of the destination store fails.
    FailFlush,
    /// The source system fails the SequenceSource's polls: for `duration` with a retriable error (the
    /// runtime polls again after a backoff), or, if `fatal`, the next one for good (the task fails, and
    /// its `task.restart.policy` restarts it).
    FailPoll {
        fatal: bool,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The next `put` of the StoreSink fails for good: the task fails with what it buffered, and its
    /// `task.restart.policy` restarts it.
    FailPut,
    /// The next fsync on a simulated disk fails, keeping the dirty pages or dropping them as Linux does.
    FailSync { pages: DirtyPages },
    /// The next fsync of a directory on a simulated disk fails (its new entries stay unsynced).
    FailDirSync,
    /// The next write on a simulated disk fails with an I/O error or a full disk, writing nothing.
    FailWrite { error: WriteError },
    /// The next `writes` writes on a simulated disk write only half of what they were given.
    ShortWrite { writes: u32 },
    /// A broker host restarts: its connections and requests in flight are dropped, data is kept. What it
    /// leads and coordinates is unreachable until the controller fails it over to another broker
    /// `failover` after the crash (if that comes before the broker is back); once back, it is elected
    /// leader of its partitions again.
    RestartBroker {
        broker: usize,
        #[serde(with = "millis")]
        down: Duration,
        #[serde(with = "millis")]
        failover: Duration,
    },
    /// The leadership of these partitions of the pipeline's topic moves to broker `to` (a reassignment):
    /// requests to the old leader are refused with NOT_LEADER_OR_FOLLOWER.
    MoveLeaders { partitions: Vec<i32>, to: usize },
    /// Every group and transaction coordinator moves to broker `to` (their internal partitions'
    /// leadership does): requests to the old one are refused with NOT_COORDINATOR, and requests it held
    /// (a join waiting for the group) are answered so.
    MoveCoordinators { to: usize },
    /// The source task's worker `from` is cut off from the broker (messages held, as in a long GC pause)
    /// for `duration`, and meanwhile the task is started on worker `to`, as an orchestrator replaces a
    /// worker it believes dead. When `from` comes back, its instance is a zombie.
    TakeOver {
        from: usize,
        to: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// For `duration`, the broker answers `percent` of the produce batches for these partitions of the
    /// pipeline's topic with a retriable error; a fault longer than the producer's `delivery.timeout.ms`
    /// makes deliveries fail for good.
    ProduceErrors {
        error: ProduceError,
        partitions: Vec<i32>,
        percent: u8,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Retention deletes the oldest `percent` of the readable records of these partitions of the
    /// pipeline's topic (100: all of them, up to the end), as time-based retention deletes old segments
    /// or an administrator's DeleteRecords does.
    DeleteRecords { partitions: Vec<i32>, percent: u8 },
    /// The file-to-file input is rotated by copy and truncate, once the source has committed every line
    /// in it (the application pauses meanwhile), as logrotate's `copytruncate` does.
    RotateInput,
    /// The hosts of the connector's external system (a test kit run's destination) crash, losing what they
    /// had not made durable, and start again after `down`.
    CrashExternal {
        #[serde(with = "millis")]
        down: Duration,
    },
    /// Messages between the workers and the connector's external system are held for `duration`: the
    /// system is unreachable (requests hang, nothing fails) and then answers everything at once.
    HoldExternal {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages between the workers and the connector's external system take up to `latency` to arrive,
    /// for `duration` (then they arrive without delay).
    SlowExternal {
        #[serde(with = "millis")]
        latency: Duration,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// The connector's external system answers requests with errors for `duration`: its model asks
    /// [`kit::answering_errors`](crate::kit::answering_errors) and answers with the system's own error
    /// while it says so.
    ErrorsExternal {
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// An operator works on one of the worker's connectors through its REST API (the worker's control):
    /// see [`Operation`]; what it undoes (a pause, a stop) is undone after `duration`.
    Operate {
        worker: usize,
        connector: Role,
        operation: Operation,
        #[serde(with = "millis")]
        duration: Duration,
    },
    /// Messages take up to `max` to arrive, for `duration`.
    Latency {
        #[serde(with = "millis")]
        max: Duration,
        #[serde(with = "millis")]
        duration: Duration,
    },
}

/// A fault and when it strikes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    #[serde(with = "millis")]
    pub at: Duration,
    #[serde(flatten)]
    pub fault: Fault,
}

/// What a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Worker(usize),
    Broker(usize),
    /// Message latency: one setting for the whole network, so latency faults must not overlap.
    Network,
    /// Where the source task runs: one take-over at a time.
    Source,
    /// The broker's answers to produce requests: one produce fault at a time.
    Produce,
    /// The connector's external system.
    External,
    /// A worker's connectors, which an operator works on one call at a time.
    Connectors(usize),
}

impl Fault {
    /// The workers this fault names.
    pub fn workers(&self) -> Vec<usize> {
        match (self, self.target()) {
            (Fault::TakeOver { from, to, .. }, _) => vec![*from, *to],
            (_, Some((Target::Worker(worker) | Target::Connectors(worker), _))) => vec![worker],
            _ => Vec::new(),
        }
    }

    /// What this fault acts on and for how long, if it holds something for a while.
    pub(crate) fn target(&self) -> Option<(Target, Duration)> {
        match *self {
            Fault::CrashWorker { worker, down } => Some((Target::Worker(worker), down)),
            Fault::StopWorker { worker, away, .. } => Some((Target::Worker(worker), away)),
            Fault::HoldNetwork { worker, duration } => Some((Target::Worker(worker), duration)),
            Fault::PartitionNetwork { worker, duration } => {
                Some((Target::Worker(worker), duration))
            }
            Fault::RestartBroker { broker, down, .. } => Some((Target::Broker(broker), down)),
            Fault::Latency { duration, .. } => Some((Target::Network, duration)),
            Fault::TakeOver { duration, .. } => Some((Target::Source, duration)),
            Fault::ProduceErrors { duration, .. } => Some((Target::Produce, duration)),
            Fault::CrashExternal { down } => Some((Target::External, down)),
            Fault::HoldExternal { duration } => Some((Target::External, duration)),
            Fault::SlowExternal { duration, .. } => Some((Target::External, duration)),
            Fault::ErrorsExternal { duration } => Some((Target::External, duration)),
            Fault::Operate {
                worker, duration, ..
            } => Some((Target::Connectors(worker), duration)),
            _ => None,
        }
    }
}

/// Durations in reports and regression files as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
