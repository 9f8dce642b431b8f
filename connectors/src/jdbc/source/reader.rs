//! One table (or the query) as a source partition: the criteria that read its next rows after the
//! offset, and the offsets its records carry, in Confluent's format (partition
//! `{"protocol":"1","table":T}` or `{"query":"query"}`, offset `{"incrementing":N,"timestamp":ms,
//! "timestamp_nanos":ns}`), so that offsets written by Confluent's connector read the same.
//!
//! In timestamp mode alone, rows of equal timestamps cannot be told apart: a record's offset advances
//! to a timestamp only with the last row of that timestamp (kafka-connect-jdbc#598), and a batch never
//! ends inside a run of equal timestamps.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use sluice_core::api::{SourceMap, SourceOffset, SourcePartition, SourceRecord};
use sluice_core::data::Data;

use super::schema::{NumericMapping, RowSchema};
use crate::jdbc::database::{
    Column, Criteria, Database, DbError, Relation, Rows, Select, SqlValue,
};
use crate::jdbc::timestamp::Timestamp;

/// `mode`, with the columns it reads by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Incrementing {
        column: String,
    },
    Timestamp {
        columns: Vec<String>,
    },
    TimestampIncrementing {
        columns: Vec<String>,
        incrementing: String,
    },
}

/// How far into a table the source has read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub timestamp: Option<Timestamp>,
    pub incrementing: Option<i64>,
}

impl Position {
    /// A stored offset, Confluent's keys.
    pub fn from_offset(offset: &SourceOffset) -> Position {
        let number = |key: &str| offset.get(key).and_then(|v| v.as_i64());
        Position {
            timestamp: number("timestamp")
                .map(|ms| Timestamp::from_offset(ms, number("timestamp_nanos"))),
            incrementing: number("incrementing"),
        }
    }

    pub fn to_offset(self) -> SourceOffset {
        if let (Some(inc), None) = (self.incrementing, self.timestamp) {
            // Held inline, without a map: a source makes one per record.
            return SourceMap::single("incrementing", inc);
        }
        let mut map = Map::new();
        if let Some(inc) = self.incrementing {
            map.insert("incrementing".into(), Json::from(inc));
        }
        if let Some(ts) = self.timestamp {
            map.insert("timestamp".into(), Json::from(ts.millis()));
            map.insert("timestamp_nanos".into(), Json::from(ts.nanos_of_second()));
        }
        SourceMap::new(map)
    }
}

/// Why the rows of a table could not be read into records.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("{relation}, {detail}")]
    Row { relation: String, detail: String },
}

/// The source partition of a table.
pub fn table_partition(table: &str) -> SourcePartition {
    let mut map = Map::new();
    map.insert("protocol".into(), Json::from("1"));
    map.insert("table".into(), Json::from(table));
    SourceMap::new(map)
}

/// The source partition of the `query`.
pub fn query_partition() -> SourcePartition {
    SourceMap::single("query", Json::from("query"))
}

/// Reads one table or the query into records.
pub struct TableReader {
    relation: Relation,
    mode: Mode,
    pub partition: SourcePartition,
    topic: Arc<str>,
    suffix: String,
    pub position: Position,
    schema: RowSchema,
    /// Bulk mode: the rows of the last read of the whole table not yet returned.
    pending: VecDeque<SourceRecord>,
    /// The last read filled its batch: more rows may be waiting.
    full: bool,
}

impl TableReader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        relation: Relation,
        mode: Mode,
        partition: SourcePartition,
        topic: Arc<str>,
        suffix: String,
        position: Position,
        columns: &[Column],
        mapping: NumericMapping,
    ) -> (TableReader, Vec<Column>) {
        let name = match &relation {
            Relation::Table(table) => Some(table.clone()),
            Relation::Query(_) => None,
        };
        let (schema, left_out) = RowSchema::new(name, columns, mapping);
        let reader = TableReader {
            relation,
            mode,
            partition,
            topic,
            suffix,
            position,
            schema,
            pending: VecDeque::new(),
            full: false,
        };
        (reader, left_out)
    }

    /// Whether the mode's criteria bound rows by the database's time.
    pub fn mode_reads_timestamps(&self) -> bool {
        matches!(
            self.mode,
            Mode::Timestamp { .. } | Mode::TimestampIncrementing { .. }
        )
    }

    /// Whether rows may be waiting after the last read: a bulk read's rows not yet returned, or a full
    /// batch of an incremental read (before a trailing run of equal timestamps was left for the next).
    pub fn more_waiting(&self) -> bool {
        match self.mode {
            Mode::Bulk => !self.pending.is_empty(),
            _ => self.full,
        }
    }

    /// The next records, at most `limit`, of rows whose timestamps are before `before` (the database's
    /// time minus `timestamp.delay.interval.ms`). Fewer than `limit` means the table is read to its end.
    pub async fn read(
        &mut self,
        db: &dyn Database,
        before: Timestamp,
        limit: u64,
    ) -> Result<Vec<SourceRecord>, ReadError> {
        if self.mode == Mode::Bulk {
            if self.pending.is_empty() {
                let rows = db.select(&self.select(Criteria::All, None)).await?;
                let offsets = vec![SourceMap::default(); rows.rows.len()];
                let records = self.records(rows, offsets)?;
                self.pending.extend(records);
            }
            let n = self.pending.len().min(limit as usize);
            return Ok(self.pending.drain(..n).collect());
        }
        let criteria = match &self.mode {
            Mode::Bulk => Criteria::All,
            Mode::Incrementing { column } => Criteria::Incrementing {
                column: column.clone(),
                after: self.position.incrementing.unwrap_or(-1),
            },
            Mode::Timestamp { columns } => Criteria::Timestamp {
                columns: columns.clone(),
                after: self.position.timestamp,
                before,
            },
            Mode::TimestampIncrementing {
                columns,
                incrementing,
            } => Criteria::TimestampIncrementing {
                timestamp_columns: columns.clone(),
                incrementing: incrementing.clone(),
                after: self
                    .position
                    .timestamp
                    .map(|ts| (ts, self.position.incrementing.unwrap_or(-1))),
                before,
            },
        };
        let mut rows = db.select(&self.select(criteria, Some(limit))).await?;
        let full = rows.rows.len() as u64 >= limit;
        if let Mode::Timestamp { columns } = &self.mode {
            if full {
                rows = self.complete_runs(db, columns.clone(), rows).await?;
            }
        }
        self.full = full;
        let mode = self.mode.clone();
        let timestamps = match &mode {
            Mode::Timestamp { columns } | Mode::TimestampIncrementing { columns, .. } => {
                Some(indices(&rows.columns, columns))
            }
            _ => None,
        };
        let incrementing = match &mode {
            Mode::Incrementing { column }
            | Mode::TimestampIncrementing {
                incrementing: column,
                ..
            } => indices(&rows.columns, std::slice::from_ref(column))
                .first()
                .copied(),
            _ => None,
        };
        let relation = self.relation.to_string();
        let row_error = |detail: String| ReadError::Row {
            relation: relation.clone(),
            detail,
        };
        // Each row's timestamp and incrementing value, then its offset.
        let mut keys = Vec::with_capacity(rows.rows.len());
        for row in &rows.rows {
            let ts =
                match &timestamps {
                    Some(indices) => Some(row_timestamp(row, indices).ok_or_else(|| {
                        row_error("a row's timestamp columns are all null".into())
                    })?),
                    None => None,
                };
            let inc = match incrementing {
                Some(i) => match &row[i] {
                    SqlValue::Int(n) => Some(*n),
                    other => {
                        return Err(row_error(format!(
                            "the incrementing column holds a {} value in a row, not an integer",
                            other.type_name()
                        )))
                    }
                },
                None => None,
            };
            keys.push((ts, inc));
        }
        let mut offsets = Vec::with_capacity(keys.len());
        for (i, &(ts, inc)) in keys.iter().enumerate() {
            let run_goes_on = keys.get(i + 1).is_some_and(|next| next.0 == ts);
            match mode {
                // Rows of one timestamp cannot be told apart: the offset moves to a timestamp with the
                // last row of its run only, so a restart inside the run reads all of it again.
                Mode::Timestamp { .. } if run_goes_on => {}
                _ => {
                    self.position = Position {
                        timestamp: ts,
                        incrementing: inc,
                    }
                }
            }
            offsets.push(self.position.to_offset());
        }
        self.records(rows, offsets)
    }

    fn select(&self, criteria: Criteria, limit: Option<u64>) -> Select {
        Select {
            relation: self.relation.clone(),
            criteria,
            suffix: self.suffix.clone(),
            limit,
        }
    }

    /// A full batch of timestamp mode ends on a complete run of equal timestamps: a trailing run is left
    /// for the next read, or, when the whole batch is one timestamp, read whole.
    async fn complete_runs(
        &self,
        db: &dyn Database,
        columns: Vec<String>,
        mut rows: Rows,
    ) -> Result<Rows, ReadError> {
        let indices = indices(&rows.columns, &columns);
        let last = rows
            .rows
            .last()
            .and_then(|row| row_timestamp(row, &indices));
        let Some(last) = last else {
            return Ok(rows);
        };
        let run = rows
            .rows
            .iter()
            .rev()
            .take_while(|row| row_timestamp(row, &indices) == Some(last))
            .count();
        if run < rows.rows.len() {
            rows.rows.truncate(rows.rows.len() - run);
            return Ok(rows);
        }
        Ok(db
            .select(&self.select(Criteria::TimestampEquals { columns, at: last }, None))
            .await?)
    }

    /// The rows as records, each with its offset.
    fn records(
        &mut self,
        rows: Rows,
        offsets: Vec<SourceOffset>,
    ) -> Result<Vec<SourceRecord>, ReadError> {
        if !self.schema.matches(&rows.columns) {
            return Err(ReadError::Row {
                relation: self.relation.to_string(),
                detail: "its columns changed while the task ran; the task must be restarted to read the new ones".into(),
            });
        }
        let mut records = Vec::with_capacity(rows.rows.len());
        for (row, offset) in rows.rows.into_iter().zip(offsets) {
            let value = self.schema.convert(row).map_err(|e| ReadError::Row {
                relation: self.relation.to_string(),
                detail: e.to_string(),
            })?;
            let schema = value.schema().clone();
            records.push(SourceRecord::new(
                self.partition.clone(),
                offset,
                self.topic.clone(),
                Data::new(Some(schema), sluice_core::data::Value::Struct(value)),
            ));
        }
        Ok(records)
    }
}

/// The indices of `names` among `columns`.
fn indices(columns: &[Column], names: &[String]) -> Vec<usize> {
    names
        .iter()
        .filter_map(|name| columns.iter().position(|c| &c.name == name))
        .collect()
}

/// The first non-null timestamp among the columns (`COALESCE`).
fn row_timestamp(row: &[SqlValue], indices: &[usize]) -> Option<Timestamp> {
    indices.iter().find_map(|&i| match row.get(i) {
        Some(SqlValue::Timestamp(t)) => Some(*t),
        _ => None,
    })
}
