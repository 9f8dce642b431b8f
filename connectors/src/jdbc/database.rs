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

/// Why a database call failed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum DbError {
    /// The database cannot be reached or dropped the connection: worth retrying.
    #[error("cannot reach the database at {url}: {message}")]
    Unreachable { url: String, message: String },
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
        matches!(self, DbError::Unreachable { .. })
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
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("[hidden]"), "{shown}");
    }
}
