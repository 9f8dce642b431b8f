//! The JDBC connectors, with Confluent's class names, keys and offsets: `JdbcSourceConnector` reads
//! tables into topics.
//!
//! - [`database`]: the seam every database call goes through;
//! - [`sql`]: its production side, SQLite and PostgreSQL through sqlx;
//! - [`timestamp`]: instants with nanoseconds, zones and Confluent's offset form;
//! - [`source`]: the source connector and its task.

pub mod database;
pub mod source;
pub mod sql;
pub mod timestamp;

pub use database::{Database, DatabaseOpener};
pub use source::JdbcSourceConnector;
pub use sql::SqlOpener;

/// The source connector's class, as Confluent names it.
pub const SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
