//! The database seam: every JDBC connector reaches its database through a [`Database`], opened by a
//! [`DatabaseOpener`] from the connector's `connection.*` keys. Production opens SQLite files and
//! PostgreSQL servers with sqlx ([`super::sql`]); the simulation supplies a model database whose
//! transactions commit out of order on a simulated clock. Everything above the seam (offsets, criteria,
//! schemas, task splits) is the same code in both.
//!
//! The seam speaks in [`Select`]s, not SQL text, so that the model can evaluate exactly what production
//! renders into each dialect's SQL.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::timestamp::{TimeZone, Timestamp};

/// A value in a database row, as the connectors read and write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// `unscaled * 10^-scale`.
    Decimal {
        unscaled: i128,
        scale: i32,
    },
    /// Days since the Unix epoch.
    Date(i32),
    /// Nanoseconds since midnight.
    Time(i64),
    Timestamp(Timestamp),
}

impl SqlValue {
    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            SqlValue::Null => "null",
            SqlValue::Bool(_) => "boolean",
            SqlValue::Int(_) => "integer",
            SqlValue::Float(_) => "float",
            SqlValue::Text(_) => "text",
            SqlValue::Bytes(_) => "bytes",
            SqlValue::Decimal { .. } => "decimal",
            SqlValue::Date(_) => "date",
            SqlValue::Time(_) => "time",
            SqlValue::Timestamp(_) => "timestamp",
        }
    }
}

/// A column's SQL type, as the connectors map it to Connect's types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// NUMERIC / DECIMAL, with the precision and scale the column declares.
    Numeric {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    /// A type the connectors have no mapping for, by the name the database gives it.
    Other(String),
}

/// One column of a table or query result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
    pub nullable: bool,
    /// Part of the table's primary key (unknown for a query's columns: false).
    pub primary_key: bool,
}

/// What a select reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relation {
    Table(String),
    /// The user's `query`, read as a subquery so that the incremental criteria apply to its rows.
    Query(String),
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Relation::Table(table) => write!(f, "table {table:?}"),
            Relation::Query(_) => f.write_str("the query"),
        }
    }
}

/// The rows a select keeps, in the order it returns them: Confluent's `TimestampIncrementingCriteria`.
/// A row's timestamp is the first non-null of the timestamp columns (`COALESCE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Criteria {
    /// Every row, in the relation's order (bulk mode).
    All,
    /// `inc > after ORDER BY inc`.
    Incrementing { column: String, after: i64 },
    /// `ts > after AND ts < before ORDER BY ts` (`after` absent: no lower bound).
    Timestamp {
        columns: Vec<String>,
        after: Option<Timestamp>,
        before: Timestamp,
    },
    /// `ts = at`: every row of one timestamp, when a batch ends inside a run of equal timestamps.
    TimestampEquals { columns: Vec<String>, at: Timestamp },
    /// `ts < before AND ((ts = after.ts AND inc > after.inc) OR ts > after.ts) ORDER BY ts, inc`.
    TimestampIncrementing {
        timestamp_columns: Vec<String>,
        incrementing: String,
        after: Option<(Timestamp, i64)>,
        before: Timestamp,
    },
}

/// A read of rows: `SELECT * FROM relation WHERE criteria <suffix> LIMIT limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Select {
    pub relation: Relation,
    pub criteria: Criteria,
    /// `query.suffix`, appended to the statement as is.
    pub suffix: String,
    pub limit: Option<u64>,
}

/// Rows of a select, each a value per column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rows {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// How a row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteKind {
    Insert,
    /// Inserted, or the row with the same key replaced (`ON CONFLICT (key) DO UPDATE`).
    Upsert,
    /// The row with the same key changed; none is inserted.
    Update,
    /// The row with the same key deleted.
    Delete,
}

/// One row written to a table. `key` names the columns (among `columns`) that find the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write {
    pub table: String,
    pub kind: WriteKind,
    pub columns: Vec<String>,
    pub values: Vec<SqlValue>,
    pub key: Vec<String>,
}

/// Kafka offsets a sink keeps in the database, in the same transaction as its rows: the next offset to
/// read of each partition, per connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkOffsets {
    pub table: String,
    pub connector: String,
    pub offsets: Vec<SinkOffset>,
}

/// One partition's offset, moved from what the writer last saw to `next`. If the table holds another
/// offset than `expected` (None: none at all), another task wrote the partition since: the batch is
/// refused ([`DbError::Fenced`]), so that a task thrown out of its group writes nothing twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkOffset {
    pub topic: String,
    pub partition: i32,
    pub expected: Option<i64>,
    pub next: i64,
}

/// Rows written in one transaction, with the sink's offsets when it keeps them in the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteBatch {
    pub writes: Vec<Write>,
    pub offsets: Option<SinkOffsets>,
}

/// Why a database call failed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum DbError {
    /// The database cannot be reached or dropped the connection: worth retrying.
    #[error("cannot reach the database at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// A conflict with another transaction (a serialization failure, a deadlock, a locked SQLite file):
    /// the same write may succeed if tried again.
    #[error("the database could not apply the write now: {message}")]
    Transient { message: String },
    /// A sink's offsets moved under it: another task writes the partition now.
    #[error("another task wrote {what} since this one last did")]
    Fenced { what: String },
    #[error("{relation} does not exist")]
    NoSuchRelation { relation: String },
    #[error("{relation} has no column {column:?}")]
    NoSuchColumn { relation: String, column: String },
    /// The database refused a statement.
    #[error("the database refused {what}: {message}")]
    Refused { what: String, message: String },
    /// A value could not be read as its column's type.
    #[error("column {column:?}: {message}")]
    Decode { column: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

impl DbError {
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. } | DbError::Transient { .. } | DbError::Fenced { .. }
        )
    }
}

/// A connection (pool) to one database.
#[async_trait]
pub trait Database: Send + Sync {
    /// The tables of the database's current schema, sorted by name.
    async fn tables(&self) -> Result<Vec<String>, DbError>;

    /// The columns of a table or query, in order.
    async fn columns(&self, relation: &Relation) -> Result<Vec<Column>, DbError>;

    /// The database's current time (`CURRENT_TIMESTAMP`), which bounds timestamp criteria.
    async fn now(&self) -> Result<Timestamp, DbError>;

    /// The greatest value of an integer column, or None for an empty relation.
    async fn max(&self, relation: &Relation, column: &str) -> Result<Option<i64>, DbError>;

    async fn select(&self, select: &Select) -> Result<Rows, DbError>;

    /// Creates a table with these columns; those marked `primary_key` make its primary key.
    async fn create_table(&self, table: &str, columns: &[Column]) -> Result<(), DbError>;

    /// Adds (nullable) columns to a table.
    async fn add_columns(&self, table: &str, columns: &[Column]) -> Result<(), DbError>;

    /// Writes a batch in one transaction: all of it, or nothing.
    async fn write(&self, batch: &WriteBatch) -> Result<(), DbError>;

    /// The offsets a sink connector kept in `table` (none if the table does not exist).
    async fn sink_offsets(
        &self,
        table: &str,
        connector: &str,
    ) -> Result<Vec<(String, i32, i64)>, DbError>;
}

/// The columns of a sink offsets table.
pub fn sink_offsets_columns() -> Vec<Column> {
    let column = |name: &str, kind| Column {
        name: name.into(),
        kind,
        nullable: false,
        primary_key: name != "next_offset",
    };
    vec![
        column("connector", ColumnType::Text),
        column("topic", ColumnType::Text),
        column("kafka_partition", ColumnType::Int32),
        column("next_offset", ColumnType::Int64),
    ]
}

/// A password: never shown by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// How to reach a database: the connector's `connection.*` keys and `db.timezone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<Password>,
    /// The zone of timestamp columns without one.
    pub timezone: TimeZone,
    /// A SQLite file that is not there is created (for a sink); a source refuses to start.
    pub create: bool,
}

/// Opens databases: sqlx in production, the model database in the simulation.
#[async_trait]
pub trait DatabaseOpener: Send + Sync {
    async fn open(&self, settings: &ConnectionSettings) -> Result<Arc<dyn Database>, DbError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        let settings = ConnectionSettings {
            url: "jdbc:postgresql://db:5432/shop".into(),
            user: Some("app".into()),
            password: Some(Password::new("s3cret")),
            timezone: TimeZone::Utc,
            create: false,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[hidden]"), "{shown}");
    }
}
