//! Sluice's deterministic simulation.
//!
//! The runtime and connectors run unchanged on [`turmoil`] hosts against a simulated Kafka cluster
//! ([`broker`]) through a simulated implementation of the Kafka seam ([`client`]), while [`faults`] crash,
//! stop, cut off and slow down workers, brokers and the connector's external system, and the [`oracle`]
//! checks that nothing was lost, duplicated beyond the guarantee, reordered or committed before it was
//! durable. A seed fixes everything; a failing seed replays exactly.
//!
//! # Test your own connector
//!
//! The [`kit`] runs a connector author's sink against a model of its external system, from `cargo test`.
//! The connector is registered as a plugin and runs unchanged; it reaches the system through the
//! [`Dialer`](sluice_core::net::Dialer) seam, which the kit fills with [`kit::SimDialer`]. The model
//! runs on simulated hosts and tells the kit what became durable ([`kit::DurableWrites`]). Here, a store
//! that makes each line durable as it answers it, and a sink that writes every record as a line:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use sluice_core::api::*;
//! use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
//! use sluice_core::data::Value;
//! use sluice_core::net::{Connection, Dialer};
//! use sluice_sim::kit::{DurableWrites, ExternalSink, SimDialer, SimTest, SinkUnderTest};
//! use sluice_sim::turmoil;
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! /// The connector: `put` sends `topic partition offset value` lines and waits for each `OK`.
//! struct LineSink(Arc<dyn Dialer>);
//! struct LineSinkTask(Arc<dyn Dialer>, Option<BufReader<Box<dyn Connection>>>);
//!
//! #[async_trait]
//! impl Connector for LineSink {
//!     fn config_def(&self) -> ConfigDef {
//!         ConfigDef::new()
//!     }
//!     async fn start(&mut self, _: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
//!         Ok(())
//!     }
//!     fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
//!         vec![ConfigMap::new(); max_tasks]
//!     }
//!     async fn stop(&mut self) -> Result<(), ConnectError> {
//!         Ok(())
//!     }
//! }
//!
//! impl SinkConnector for LineSink {
//!     fn create_task(&self) -> Box<dyn SinkTask> {
//!         Box::new(LineSinkTask(self.0.clone(), None))
//!     }
//! }
//!
//! #[async_trait]
//! impl SinkTask for LineSinkTask {
//!     async fn start(&mut self, _: SinkTaskContext) -> Result<(), ConnectError> {
//!         Ok(())
//!     }
//!     async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
//!         let broke = |e: std::io::Error| ConnectError::retriable(e.to_string());
//!         for record in records {
//!             if self.1.is_none() {
//!                 self.1 = Some(BufReader::new(self.0.dial("store:9000").await.map_err(broke)?));
//!             }
//!             let connection = self.1.as_mut().unwrap();
//!             let Value::String(value) = &record.value.value else { continue };
//!             let line = format!("{} {} {} {value}\n", record.topic, record.partition, record.kafka_offset);
//!             let mut answer = String::new();
//!             let sent = async {
//!                 connection.get_mut().write_all(line.as_bytes()).await?;
//!                 connection.read_line(&mut answer).await
//!             };
//!             if sent.await.map_err(broke)? == 0 {
//!                 self.1 = None;
//!                 return Err(ConnectError::retriable("the store closed the connection"));
//!             }
//!         }
//!         Ok(())
//!     }
//!     async fn stop(&mut self) -> Result<(), ConnectError> {
//!         Ok(())
//!     }
//! }
//!
//! /// The model of the external system: one host, which makes each line durable before it answers.
//! struct Store;
//!
//! impl ExternalSink for Store {
//!     fn build(&self, sim: &mut turmoil::Sim<'_>, durable: DurableWrites) {
//!         sim.host("store", move || {
//!             let durable = durable.clone();
//!             async move {
//!                 let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 9000)).await?;
//!                 loop {
//!                     let (stream, peer) = listener.accept().await?;
//!                     let durable = durable.clone();
//!                     tokio::spawn(async move {
//!                         let (read, mut write) = tokio::io::split(stream);
//!                         let mut lines = BufReader::new(read).lines();
//!                         while let Ok(Some(line)) = lines.next_line().await {
//!                             let [topic, partition, offset, value] = line.split(' ').collect::<Vec<_>>()[..] else {
//!                                 break;
//!                             };
//!                             let (Ok(partition), Ok(offset)) = (partition.parse(), offset.parse()) else {
//!                                 break;
//!                             };
//!                             durable.written(peer, topic, partition, offset, value);
//!                             if write.write_all(b"OK\n").await.is_err() {
//!                                 break;
//!                             }
//!                         }
//!                     });
//!                 }
//!             }
//!         });
//!     }
//!
//!     fn hosts(&self) -> Vec<String> {
//!         vec!["store".to_owned()]
//!     }
//! }
//!
//! let dialer: Arc<dyn Dialer> = Arc::new(SimDialer);
//! let under_test = SinkUnderTest {
//!     class: "LineSink".to_owned(),
//!     plugin: ConnectorPlugin::sink(move || Box::new(LineSink(dialer.clone()))),
//!     config: ConfigMap::from([("tasks.max".to_owned(), "2".to_owned())]),
//!     system: Arc::new(Store),
//! };
//! // Three seeds here; a real test runs many more (`SLUICE_SEEDS=500 cargo test`).
//! let sweep = SimTest::sink("line_sink", under_test)
//!     .seeds(1..=3)
//!     .run()
//!     .expect("every seed passes");
//! assert_eq!(sweep.seeds, 3);
//! ```
//!
//! A `#[test]` calls [`SimTest::check`](kit::SimTest::check) instead, which panics with the failing seed,
//! its anomalies, its fault plan shrunk to the faults that matter and the command that replays it, and
//! keeps the shrunk plan in the crate's `sim-regressions/` for every later run to replay first. The crate
//! `examples/kv-connectors` is a complete third-party connector crate tested this way.
//!
//! Sluice's own scenarios ([`builtin`], the ones `sluice sim` runs) are written with the same
//! [`kit::SimTest`] builder; the harness behind it is private.

// Without tokio_unstable, tokio's `select!` draws from an unseeded generator and a seed no longer replays
// exactly; `.cargo/config.toml` sets it, and a RUSTFLAGS variable would silently override that.
#[cfg(not(tokio_unstable))]
compile_error!(
    "sluice-sim needs `--cfg tokio_unstable` (see .cargo/config.toml); RUSTFLAGS overrides it"
);

pub mod broker;
#[warn(missing_docs)]
pub mod builtin;
pub mod client;
pub mod coverage;
mod delegate;
pub mod fault_plan;
pub mod faults;
mod harness;
#[warn(missing_docs)]
pub mod kit;
pub mod model_db;
pub mod oracle;
pub mod placement;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod shards;
pub mod tansu;
#[warn(missing_docs)]
pub mod timeline;
pub mod workload;

pub use harness::RunError;
pub use report::Report;
pub use scenario::{Guarantee, Scenario};
pub use turmoil;
