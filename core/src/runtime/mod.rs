//! The standalone worker runtime: source and sink task loops, offset tracking and offset storage.
//!
//! - [`worker`]: starts connectors and tasks, stops them cleanly.
//! - [`source_task`] / [`sink_task`]: the task loops; [`exactly_once_source`]: the transactional source loop;
//!   [`leave_gate`]: a connector's sink tasks leave their group only once all of them committed.
//! - [`submitted`], [`in_flight`]: which source records Kafka acknowledged, and so which offsets may be committed.
//! - [`offset_store`], [`source_offsets`]: the source offset file; [`offsets_topic`]: exactly-once tasks'
//!   offsets in `offset.storage.topic`.
//! - [`active_topics`]: the topics each connector used (KIP-558).
//! - [`pause`]: an operator's pause of a connector's tasks; [`metrics`]: the worker's Prometheus metrics.
//! - [`worker_config`], [`connector_config`]: the worker's and every connector's common keys.

pub mod active_topics;
pub mod connector_config;
pub mod dead_letter_queue;
pub mod exactly_once_source;
pub mod in_flight;
mod keep_alive;
pub mod leave_gate;
pub mod metrics;
pub mod offset_store;
pub mod offsets_topic;
pub mod pause;
mod records;
pub(crate) mod repeated;
mod retention;
pub mod shutdown;
pub mod sink_task;
pub mod source_offsets;
mod source_outbox;
pub mod source_task;
mod status;
pub mod submitted;
mod tolerance;
mod topic_creation;
pub mod worker;
pub mod worker_config;

pub use offset_store::{FileOffsetStore, OffsetBackingStore, OffsetStoreError};
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use source_offsets::SharedOffsetStore;
pub use worker::{
    worker_control, ConnectorPlan, ConnectorStatus, ConnectorType, ControlError, ControlInbox,
    OffsetChanges, StandaloneWorker, State, StoredOffsets, TargetState, TaskStatus,
    TopicTrackingOff, WorkerControl, WorkerError, WorkerView,
};
pub use worker_config::WorkerConfig;

use crate::api::ConnectError;
use crate::kafka::KafkaError;

/// Why a task stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task {task} failed in {stage}: {source}")]
    Connector {
        task: String,
        stage: &'static str,
        #[source]
        source: ConnectError,
    },
    #[error("task {task}: Kafka error: {source}")]
    Kafka {
        task: String,
        #[source]
        source: KafkaError,
    },
    /// The producer refused a record (too large for `max.request.size`, say); `record` says which.
    #[error("task {task}: Kafka did not take {record}: {source}")]
    Send {
        task: String,
        record: String,
        #[source]
        source: KafkaError,
    },
    #[error("task {task}: cannot create topic {topic:?} (topic.creation.* keys): {source}")]
    TopicCreation {
        task: String,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("task {task}: source offsets could not be committed")]
    OffsetCommit { task: String },
    /// A newer instance of the task registered its `transactional.id`: this one is a zombie and stopped
    /// without committing anything.
    #[error("task {task} was fenced by a newer instance of itself: {reason}")]
    Fenced { task: String, reason: String },
    /// The offsets topic records a newer generation of the task than this worker's
    /// `exactly.once.source.generation`: another worker runs it, which registering would fence.
    #[error("task {task} did not start: the offsets topic shows generation {newer} of it, newer than this worker's exactly.once.source.generation={generation}; the worker that runs it now keeps it")]
    Superseded {
        task: String,
        generation: u64,
        newer: u64,
    },
}
