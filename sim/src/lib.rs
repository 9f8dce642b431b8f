//! Sluice's deterministic simulation.
//!
//! The runtime and connectors run unchanged on [`turmoil`] hosts against a simulated Kafka cluster
//! ([`broker`]) through a simulated implementation of the Kafka seam ([`client`]).

pub mod broker;
pub mod client;
pub mod protocol;
pub mod workload;
