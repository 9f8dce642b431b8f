//! Sluice's deterministic simulation.
//!
//! The runtime and connectors run unchanged on [`turmoil`] hosts against a simulated Kafka cluster
//! ([`broker`]) through a simulated implementation of the Kafka seam ([`client`]).

pub mod broker;
pub mod client;
pub mod faults;
pub mod harness;
pub mod oracle;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod workload;

pub use harness::{run, run_planned, RunError};
pub use report::Report;
pub use scenario::{Guarantee, Scenario};
