//! The JDBC connectors, with Confluent's class names, keys and offsets: `JdbcSourceConnector` reads
//! tables into topics, `JdbcSinkConnector` writes topics into tables.
//!
//! - [`database`]: the seam every database call goes through;
//! - [`sql`]: its production side, SQLite and PostgreSQL through sqlx;
//! - [`timestamp`]: instants with nanoseconds, zones and Confluent's offset form;
//! - [`source`]: the source connector and its task;
//! - [`sink`]: the sink connector and its task.

pub mod database;
pub mod sink;
pub mod source;
pub mod sql;
pub mod timestamp;

use std::sync::Arc;
use std::time::Duration;

pub use database::{Database, DatabaseOpener};
pub use sink::JdbcSinkConnector;
pub use source::JdbcSourceConnector;
pub use sql::SqlOpener;

use database::{ConnectionSettings, DbError};
use sluice_core::api::ConnectError;

/// The source connector's class, as Confluent names it.
pub const SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
/// The sink connector's class, as Confluent names it.
pub const SINK_CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";

/// Rows SQLite's driver thread may read ahead of the task that takes them (sqlx's default is 50):
/// with room for a whole batch, the thread runs a select to its end while the runtime is still
/// sending the last batch, instead of stopping every 50 rows until the busy task takes them.
pub const SQLITE_ROW_BUFFER: usize = 4096;

/// Opens a database, trying `connection.attempts` times `connection.backoff.ms` apart while it is out
/// of reach.
pub(crate) async fn connect(
    opener: &dyn DatabaseOpener,
    connection: &ConnectionSettings,
    attempts: u32,
    backoff: Duration,
) -> Result<Arc<dyn Database>, ConnectError> {
    let mut attempt = 1;
    loop {
        match opener.open(connection).await {
            Ok(db) => return Ok(db),
            Err(e) if e.is_retriable() && attempt < attempts => {
                tracing::warn!(error = %e, attempt, "cannot reach the database; trying again");
                attempt += 1;
                tokio::time::sleep(backoff).await;
            }
            Err(e) => return Err(ConnectError::fatal(e.to_string())),
        }
    }
}

/// A database error as a task reports it: retried if it may pass (the database out of reach, a
/// conflict with another transaction).
pub(crate) fn db_error(e: DbError) -> ConnectError {
    if e.is_retriable() {
        ConnectError::retriable(e.to_string())
    } else {
        ConnectError::fatal(e.to_string())
    }
}
