//! The test kit: connector authors run their own connectors, unchanged, in the simulation, from
//! `cargo test`.
//!
//! - [`destination`]: the external system a sink under test writes to, as the author describes it;
//! - [`source`]: the external system a source under test reads;
//! - [`dialer`]: the connector's way to its external system over the simulated network;
//! - [`disk`]: its way to the workers' simulated disks, for a sink that keeps files;
//! - [`errors`]: when the external system's model answers with errors;
//! - `faulty`: the runtime-side faults (slow `put` and flush, failed flush) the kit injects around the
//!   author's tasks without touching their code;
//! - [`open_partitions`]: which partitions each worker's tasks hold open, for `written-after-close`;
//! - [`runner`]: seeds, replay commands, determinism checks, required events and regression files;
//! - [`task`]: one task driven as the runtime drives it, without Kafka, for fast tests;
//! - `shrink`: a failing plan cut down to the faults that matter.

pub mod destination;
pub mod dialer;
pub mod disk;
pub mod errors;
mod faulty;
pub mod open_partitions;
pub mod runner;
mod shrink;
pub mod source;
pub mod task;

pub use destination::{worker_at, DurableWrites, ExternalSink, SinkUnderTest};
pub use dialer::SimDialer;
pub use disk::worker_disk;
pub use errors::answering_errors;
pub(crate) use faulty::{with_faults, Faults};
pub use open_partitions::OpenPartitions;
pub use runner::{
    render_sweep, Failure, Regression, SimTest, Sweep, TestError, EXACTLY_ONCE_SOURCE_FAULTS,
    SINK_FAULTS, SOURCE_FAULTS,
};
pub use source::{ExternalSource, SourceRecords, SourceUnderTest};
pub use task::sink::SinkTaskTest;
pub use task::source::SourceTaskTest;
pub use task::{Shrunk, TaskHarness, TaskRun, TaskStep, TaskSweep, TaskTestError};
