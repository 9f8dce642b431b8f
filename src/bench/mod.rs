//! `sluice bench`: measures connectors against plain programs doing the same work with the same
//! client libraries, in one run on the embedded broker, and prints the ratios and the workers' peak
//! memory.
//!
//! - [`file`]: FileStream source and sink against raw librdkafka clients (`sluice bench`);
//! - [`jdbc`]: the JDBC source and sink against programs that read and write the rows with sqlx and
//!   produce and consume them with raw librdkafka (`sluice bench jdbc`);
//! - [`sim`]: how fast the deterministic simulation runs each scenario on one core (`sluice bench sim`);
//! - [`harness`]: the broker and worker processes, deadlines and medians they share;
//! - [`history`]: every run's figures appended to a file, and compared with the last run's;
//! - [`calibration`]: the machine's speed at the time of a run, which the history scales speeds by.

// The benchmarks measure wall time on real threads; they never run simulated.
#![allow(clippy::disallowed_methods)]

mod calibration;
mod file;
mod harness;
mod history;
mod jdbc;
mod sim;

/// Arguments of `sluice bench`: the FileStream benchmark, or another one named by a subcommand.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    suite: Option<Suite>,
    #[command(flatten)]
    file: file::Args,
    #[command(flatten)]
    history: history::HistoryArgs,
}

#[derive(clap::Subcommand)]
enum Suite {
    /// The JDBC source and sink against plain sqlx + rdkafka programs.
    Jdbc(jdbc::Args),
    /// How fast the simulation runs each scenario on one core (seeds per minute, simulated seconds per
    /// wall second).
    Sim(sim::Args),
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("benchmark I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Failed(String),
}

impl From<rdkafka::error::KafkaError> for BenchError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        BenchError::Kafka(e.to_string())
    }
}

impl Args {
    /// Whether this benchmark runs the simulation (whose simulated workers then log nothing).
    pub fn simulates(&self) -> bool {
        matches!(self.suite, Some(Suite::Sim(_)))
    }
}

pub fn run(args: Args) -> Result<(), BenchError> {
    match args.suite {
        None => file::run(args.file, &args.history),
        Some(Suite::Jdbc(jdbc)) => jdbc::run(jdbc, &args.history),
        Some(Suite::Sim(sim)) => sim::run(sim, &args.history),
    }
}
