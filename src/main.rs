//! The `sluice` command: a Kafka Connect worker in one binary.
//!
//! - `sluice standalone WORKER.properties CONNECTOR...` runs connectors, as `connect-standalone.sh`.
//! - `sluice broker` runs the embedded Kafka-protocol broker alone.
//! - `sluice bench` measures the FileStream connectors against raw librdkafka clients, `sluice bench jdbc`
//!   the JDBC connectors against plain sqlx + rdkafka programs.
//! - `sluice sim` runs the deterministic simulation's scenarios under chosen seeds.

mod bench;
mod broker;
mod rest;
mod signals;
mod sim;
mod standalone;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

#[derive(Parser)]
#[command(name = "sluice", version, about = "A Kafka Connect runtime in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run connectors in one standalone worker (like connect-standalone.sh).
    Standalone(standalone::Args),
    /// Run the embedded Kafka-protocol broker and print its bootstrap address.
    Broker(broker::Args),
    /// Benchmark the FileStream connectors (or, `bench jdbc`, the JDBC ones) against plain programs on the embedded broker.
    Bench(bench::Args),
    /// Run a simulation scenario under one seed or a range of seeds (deterministic: a seed replays exactly).
    Sim(sim::Args),
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // Simulated workers log as real ones do; for many seeds only errors are worth a line.
    let default_filter = match &cli.command {
        Command::Sim(_) => "error",
        // The simulated faults' error lines are not news to a speed measurement.
        Command::Bench(args) if args.simulates() => "off",
        _ => "info",
    };
    // The filter can be changed while the process runs (the REST API's /admin/loggers).
    let base = std::env::var("SLUICE_LOG").unwrap_or_else(|_| default_filter.to_owned());
    let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let loggers = rest::loggers::Loggers::new(handle, base);
    let result = match cli.command {
        Command::Standalone(args) => block_on(standalone::run(args, Some(loggers))),
        Command::Broker(args) => block_on(broker::run(args)),
        // The benchmark drives raw clients on plain threads and times them with the wall clock.
        Command::Bench(args) => bench::run(args).map_err(|e| e.to_string()),
        // The simulation drives its own runtimes, one per simulated host.
        Command::Sim(args) => sim::run_command(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps glibc's malloc to one arena. librdkafka's threads and the async workers each get an arena of
/// their own by default, and records allocated on one thread and freed on another leave each arena
/// fragmented, every one holding its own high-water mark: two arenas kept a busy worker's resident set
/// about a third smaller than the default, one about 2 MB smaller again, with no change in speed that
/// `sluice bench` could tell. An operator's own setting (`MALLOC_ARENA_MAX`, or `arena_max` in
/// `GLIBC_TUNABLES`) wins.
fn limit_malloc_arenas() {
    let set_by_operator = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|tunables| tunables.contains("arena_max"));
    if set_by_operator {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Runs a command on a multi-threaded tokio runtime.
fn block_on<E: std::fmt::Display>(
    command: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(command).map_err(|e| e.to_string());
    // A librdkafka call stuck on an unreachable cluster must not keep the process from exiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}
