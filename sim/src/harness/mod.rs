//! Runs a scenario under one seed: builds the turmoil simulation (a broker host and worker hosts running the
//! unchanged standalone worker), injects the planned faults, heals them, lets the pipeline drain, stops the
//! workers cleanly and hands everything to the oracle.
//!
//! - [`driver`]: the run itself, seed to report;
//! - [`hosts`]: what each worker host runs (its worker, connectors and, with exactly-once source support,
//!   the source wherever it is placed);
//! - [`actions`]: faults and their healing applied to the simulation;
//! - [`journal`]: the run's trace and the checks made as it goes;
//! - [`fault_marks`] and [`cluster_marks`]: how faults and the cluster's events show on the run's
//!   timeline;
//! - [`names`]: the hosts' names;
//! - [`offsets`]: worker 0's checked source offset store;
//! - [`operator`]: restarts a worker whose source task failed; [`operator_calls`]: an operator's REST
//!   calls (pause, stop, restart, config change, offset reset) on a worker's connectors.

mod actions;
mod cluster_marks;
mod driver;
mod fault_marks;
mod hosts;
mod journal;
mod names;
mod offsets;
mod operator;
mod operator_calls;
mod told;

pub use driver::{choose, run, run_planned, RunError};
