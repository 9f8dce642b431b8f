//! Sluice's deterministic simulation.
//!
//! The runtime and connectors run unchanged on [`turmoil`] hosts against a simulated Kafka cluster
//! ([`broker`]) through a simulated implementation of the Kafka seam ([`client`]).

// Without tokio_unstable, tokio's `select!` draws from an unseeded generator and a seed no longer replays
// exactly; `.cargo/config.toml` sets it, and a RUSTFLAGS variable would silently override that.
#[cfg(not(tokio_unstable))]
compile_error!(
    "sluice-sim needs `--cfg tokio_unstable` (see .cargo/config.toml); RUSTFLAGS overrides it"
);

pub mod broker;
pub mod client;
pub mod coverage;
pub mod faults;
pub mod harness;
pub mod kit;
pub mod oracle;
pub mod placement;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod workload;

pub use harness::{choose, run, run_planned, Choices, RunError};
pub use report::Report;
pub use scenario::{Guarantee, Scenario};
pub use turmoil;
