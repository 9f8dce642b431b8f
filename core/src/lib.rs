//! Sluice's core: everything a connector author or the runtime needs, and nothing of a particular connector.
//!
//! - [`data`]: Connect's data model (schemas, values, structs, logical types).
//! - [`config`]: string config maps, `ConfigDef` validation, `.properties` and JSON config files.
//! - [`api`]: the connector API (connectors, tasks, records, contexts) and the plugin registry.
//! - [`convert`]: converters between Connect data and Kafka bytes.
//! - [`kafka`]: the Kafka seam the runtime talks through, and its rdkafka implementation (cargo feature
//!   `rdkafka`, on by default; connector crates turn it off and build without librdkafka).
//! - [`net`]: the network seam connectors reach their external systems through.
//! - [`fs`]: the filesystem seam every file goes through (the offset file, the FileStream connectors').
//! - [`transforms`]: single message transforms and predicates, Kafka's built-in ones among them.
//! - [`runtime`]: the standalone worker: source and sink task loops, offset tracking and storage.

pub mod api;
pub mod config;
pub mod convert;
pub mod data;
pub mod fs;
pub mod hash;
pub mod kafka;
pub mod net;
pub mod runtime;
pub mod transforms;
