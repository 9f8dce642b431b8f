//! The model database: what the JDBC connectors reach through their database seam inside the simulation,
//! in place of SQLite or PostgreSQL. It keeps what makes JDBC sources lose rows in production:
//!
//! - MVCC transactions that commit in any order: a row is visible once the transaction that wrote it
//!   committed, however long ago it took its id and its timestamp;
//! - `CURRENT_TIMESTAMP` as PostgreSQL has it: the simulated clock when the transaction began, cut to the
//!   database's precision (seconds give long runs of equal timestamps; nanoseconds none);
//! - crashes: committed rows survive, transactions in flight are rolled back.
//!
//! - [`server`]: the database as a simulated host, answering the seam's calls over the network;
//! - [`client`]: the seam's side, dialing that host;
//! - [`written_table`]: a table applications write in concurrent transactions, as a test-kit source
//!   system;
//! - [`sink_tables`]: the tables a JDBC sink writes, as a test-kit destination.

pub mod client;
pub mod server;
pub mod sink_tables;
pub mod written_table;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sluice_connectors::jdbc::database::{
    sink_offsets_columns, Column, Criteria, DbError, Relation, Rows, Select, SqlValue, Write,
    WriteBatch, WriteKind,
};
use sluice_connectors::jdbc::timestamp::Timestamp;

/// How finely `CURRENT_TIMESTAMP` tells instants apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl Precision {
    fn nanos(self) -> i128 {
        match self {
            Precision::Seconds => 1_000_000_000,
            Precision::Millis => 1_000_000,
            Precision::Micros => 1_000,
            Precision::Nanos => 1,
        }
    }
}

/// A transaction of the model database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxnId(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    InFlight,
    Committed,
    RolledBack,
}

#[derive(Debug)]
struct Txn {
    status: Status,
    /// `CURRENT_TIMESTAMP` inside the transaction: the clock when it began.
    began: Timestamp,
}

/// One version of a row: written by `created`, replaced or deleted by `deleted`.
#[derive(Debug)]
struct Version {
    values: Vec<SqlValue>,
    created: TxnId,
    deleted: Option<TxnId>,
}

#[derive(Debug)]
struct Table {
    columns: Vec<Column>,
    versions: Vec<Version>,
}

#[derive(Debug)]
struct State {
    tables: BTreeMap<String, Table>,
    txns: Vec<Txn>,
}

/// The database: tables of row versions and the transactions that wrote them. Shared between the
/// simulated host that serves it and the test's model, and kept outside the host, so that a crash
/// keeps what was committed.
#[derive(Debug)]
pub struct ModelDb {
    state: Mutex<State>,
    precision: Precision,
    /// The clock at simulated time zero.
    epoch: Timestamp,
}

impl ModelDb {
    pub fn new(epoch: Timestamp, precision: Precision) -> ModelDb {
        ModelDb {
            state: Mutex::new(State {
                tables: BTreeMap::new(),
                txns: Vec::new(),
            }),
            precision,
            epoch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clock at simulated time `at`, cut to the precision.
    pub fn clock_at(&self, at: Duration) -> Timestamp {
        let nanos = self.epoch.0 + at.as_nanos() as i128;
        let unit = self.precision.nanos();
        Timestamp(nanos.div_euclid(unit) * unit)
    }

    /// The clock now (inside the simulation).
    pub fn clock(&self) -> Timestamp {
        self.clock_at(crate::broker::now())
    }

    /// Creates a table, unless one of that name exists.
    pub fn create_table(&self, name: &str, columns: Vec<Column>) {
        self.lock()
            .tables
            .entry(name.to_owned())
            .or_insert_with(|| Table {
                columns,
                versions: Vec::new(),
            });
    }

    /// Adds columns to a table; its rows hold nulls in them.
    pub fn add_columns(&self, name: &str, columns: &[Column]) -> Result<(), DbError> {
        let mut state = self.lock();
        let table = state
            .tables
            .get_mut(name)
            .ok_or_else(|| DbError::NoSuchRelation {
                relation: Relation::Table(name.to_owned()).to_string(),
            })?;
        for column in columns {
            if table.columns.iter().any(|c| c.name == column.name) {
                return Err(DbError::Refused {
                    what: format!("adding column {:?}", column.name),
                    message: "it exists".into(),
                });
            }
            table.columns.push(column.clone());
            for version in &mut table.versions {
                version.values.push(SqlValue::Null);
            }
        }
        Ok(())
    }

    /// Applies a batch of writes in one transaction, committed at once: all of it, or nothing.
    pub fn apply(&self, batch: &WriteBatch) -> Result<(), DbError> {
        let mut writes = batch.writes.clone();
        if let Some(offsets) = &batch.offsets {
            self.create_table(&offsets.table, sink_offsets_columns());
            let stored = self.sink_offsets(&offsets.table, &offsets.connector);
            for offset in &offsets.offsets {
                let now = stored
                    .iter()
                    .find(|(t, p, _)| *t == offset.topic && *p == offset.partition)
                    .map(|(_, _, next)| *next);
                if now != offset.expected {
                    return Err(DbError::Fenced {
                        what: format!(
                            "{}-{} of connector {:?}",
                            offset.topic, offset.partition, offsets.connector
                        ),
                    });
                }
            }
            writes.extend(offsets.offsets.iter().map(|offset| Write {
                table: offsets.table.clone(),
                kind: WriteKind::Upsert,
                columns: sink_offsets_columns().into_iter().map(|c| c.name).collect(),
                values: vec![
                    SqlValue::Text(offsets.connector.clone()),
                    SqlValue::Text(offset.topic.clone()),
                    SqlValue::Int(i64::from(offset.partition)),
                    SqlValue::Int(offset.next),
                ],
                key: vec!["connector".into(), "topic".into(), "kafka_partition".into()],
            }));
        }
        let txn = self.begin();
        for write in &writes {
            if let Err(e) = self.apply_one(txn, write) {
                self.roll_back(txn);
                return Err(e);
            }
        }
        self.commit(txn);
        Ok(())
    }

    fn apply_one(&self, txn: TxnId, write: &Write) -> Result<(), DbError> {
        let mut state = self.lock();
        let State { tables, txns } = &mut *state;
        let relation = Relation::Table(write.table.clone());
        let table = tables
            .get_mut(&write.table)
            .ok_or_else(|| DbError::NoSuchRelation {
                relation: relation.to_string(),
            })?;
        // The row's values in the table's column order.
        let mut values = vec![SqlValue::Null; table.columns.len()];
        for (name, value) in write.columns.iter().zip(&write.values) {
            let i = column_index(table, &relation, name)?;
            values[i] = value.clone();
        }
        let key: Vec<usize> = match write.kind {
            WriteKind::Insert => table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.primary_key)
                .map(|(i, _)| i)
                .collect(),
            _ => write
                .key
                .iter()
                .map(|k| column_index(table, &relation, k))
                .collect::<Result<_, _>>()?,
        };
        // The row of the same key a transaction sees: committed, or written by itself.
        let current = (!key.is_empty())
            .then(|| {
                table.versions.iter().position(|v| {
                    let seen = v.created == txn || visible(txns, v);
                    let gone = v.deleted == Some(txn);
                    seen && !gone && key.iter().all(|&i| v.values[i] == values[i])
                })
            })
            .flatten();
        let written: Vec<usize> = write
            .columns
            .iter()
            .filter_map(|name| table.columns.iter().position(|c| &c.name == name))
            .collect();
        match (write.kind, current) {
            (WriteKind::Insert, Some(_)) => {
                return Err(DbError::Refused {
                    what: format!("a write to table {:?}", write.table),
                    message: "duplicate key value violates the primary key".into(),
                })
            }
            (WriteKind::Insert | WriteKind::Upsert, None) => table.versions.push(Version {
                values,
                created: txn,
                deleted: None,
            }),
            (WriteKind::Upsert | WriteKind::Update, Some(i)) => {
                let mut replaced = table.versions[i].values.clone();
                for &c in &written {
                    replaced[c] = values[c].clone();
                }
                table.versions[i].deleted = Some(txn);
                table.versions.push(Version {
                    values: replaced,
                    created: txn,
                    deleted: None,
                });
            }
            (WriteKind::Delete, Some(i)) => table.versions[i].deleted = Some(txn),
            (WriteKind::Update | WriteKind::Delete, None) => {}
        }
        Ok(())
    }

    /// The offsets a sink keeps in `table`.
    pub fn sink_offsets(&self, table: &str, connector: &str) -> Vec<(String, i32, i64)> {
        let all = Select {
            relation: Relation::Table(table.to_owned()),
            criteria: Criteria::All,
            suffix: String::new(),
            limit: None,
        };
        let Ok(rows) = self.select(&all) else {
            return Vec::new();
        };
        rows.rows
            .into_iter()
            .filter_map(|row| match &row[..] {
                [SqlValue::Text(c), SqlValue::Text(topic), SqlValue::Int(p), SqlValue::Int(next)]
                    if c == connector =>
                {
                    Some((topic.clone(), *p as i32, *next))
                }
                _ => None,
            })
            .collect()
    }

    /// Begins a transaction; its `CURRENT_TIMESTAMP` is the clock now.
    pub fn begin(&self) -> TxnId {
        let began = self.clock();
        let mut state = self.lock();
        state.txns.push(Txn {
            status: Status::InFlight,
            began,
        });
        TxnId(state.txns.len() - 1)
    }

    /// `CURRENT_TIMESTAMP` inside `txn`.
    pub fn current_timestamp(&self, txn: TxnId) -> Timestamp {
        self.lock().txns[txn.0].began
    }

    pub fn insert(&self, txn: TxnId, table: &str, values: Vec<SqlValue>) {
        let mut state = self.lock();
        if let Some(table) = state.tables.get_mut(table) {
            table.versions.push(Version {
                values,
                created: txn,
                deleted: None,
            });
        }
    }

    /// Replaces the visible version of the row whose column `key` is `value`: `change` makes the new
    /// version from the old one's values. False if no such row is visible.
    pub fn update(
        &self,
        txn: TxnId,
        table: &str,
        key: usize,
        value: &SqlValue,
        change: impl FnOnce(&mut Vec<SqlValue>),
    ) -> bool {
        let mut state = self.lock();
        let State { tables, txns } = &mut *state;
        let Some(table) = tables.get_mut(table) else {
            return false;
        };
        let Some(old) = table
            .versions
            .iter_mut()
            .find(|v| visible(txns, v) && v.values.get(key) == Some(value))
        else {
            return false;
        };
        old.deleted = Some(txn);
        let mut values = old.values.clone();
        change(&mut values);
        table.versions.push(Version {
            values,
            created: txn,
            deleted: None,
        });
        true
    }

    pub fn commit(&self, txn: TxnId) {
        self.finish(txn, Status::Committed);
    }

    pub fn roll_back(&self, txn: TxnId) {
        self.finish(txn, Status::RolledBack);
    }

    fn finish(&self, txn: TxnId, status: Status) {
        let mut state = self.lock();
        if state.txns[txn.0].status == Status::InFlight {
            state.txns[txn.0].status = status;
        }
        if status == Status::RolledBack {
            // The versions it replaced are current again.
            for table in state.tables.values_mut() {
                for version in &mut table.versions {
                    if version.deleted == Some(txn) {
                        version.deleted = None;
                    }
                }
            }
        }
    }

    /// After a crash: every transaction that was in flight is rolled back.
    pub fn recover(&self) {
        let in_flight: Vec<TxnId> = self
            .lock()
            .txns
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == Status::InFlight)
            .map(|(i, _)| TxnId(i))
            .collect();
        for txn in in_flight {
            self.roll_back(txn);
        }
    }

    pub fn tables(&self) -> Vec<String> {
        self.lock().tables.keys().cloned().collect()
    }

    pub fn columns(&self, relation: &Relation) -> Result<Vec<Column>, DbError> {
        let state = self.lock();
        Ok(table(&state, relation)?.columns.clone())
    }

    pub fn max(&self, relation: &Relation, column: &str) -> Result<Option<i64>, DbError> {
        let state = self.lock();
        let table = table(&state, relation)?;
        let index = column_index(table, relation, column)?;
        Ok(table
            .versions
            .iter()
            .filter(|v| visible(&state.txns, v))
            .filter_map(|v| match v.values[index] {
                SqlValue::Int(n) => Some(n),
                _ => None,
            })
            .max())
    }

    /// A select, read committed: the rows whose transactions committed by now.
    pub fn select(&self, select: &Select) -> Result<Rows, DbError> {
        let state = self.lock();
        let table = table(&state, &select.relation)?;
        let index = |name: &str| column_index(table, &select.relation, name);
        let indices = |names: &[String]| {
            names
                .iter()
                .map(|n| index(n))
                .collect::<Result<Vec<_>, _>>()
        };
        let rows = table
            .versions
            .iter()
            .filter(|v| visible(&state.txns, v))
            .map(|v| &v.values);
        let timestamp = |row: &Vec<SqlValue>, indices: &[usize]| {
            indices.iter().find_map(|&i| match row[i] {
                SqlValue::Timestamp(t) => Some(t),
                _ => None,
            })
        };
        let int = |row: &Vec<SqlValue>, i: usize| match row[i] {
            SqlValue::Int(n) => Some(n),
            _ => None,
        };
        // Each kept row with its sort key.
        let mut kept: Vec<(SortKey, &Vec<SqlValue>)> = match &select.criteria {
            Criteria::All => rows.map(|r| ((None, None), r)).collect(),
            Criteria::Incrementing { column, after } => {
                let i = index(column)?;
                rows.filter_map(|r| {
                    int(r, i)
                        .filter(|n| n > after)
                        .map(|n| ((None, Some(n)), r))
                })
                .collect()
            }
            Criteria::Timestamp {
                columns,
                after,
                before,
            } => {
                let ts = indices(columns)?;
                rows.filter_map(|r| {
                    timestamp(r, &ts)
                        .filter(|t| after.is_none_or(|a| *t > a) && t < before)
                        .map(|t| ((Some(t), None), r))
                })
                .collect()
            }
            Criteria::TimestampEquals { columns, at } => {
                let ts = indices(columns)?;
                rows.filter(|r| timestamp(r, &ts) == Some(*at))
                    .map(|r| ((None, None), r))
                    .collect()
            }
            Criteria::TimestampIncrementing {
                timestamp_columns,
                incrementing,
                after,
                before,
            } => {
                let ts = indices(timestamp_columns)?;
                let inc = index(incrementing)?;
                rows.filter_map(|r| {
                    let key = (timestamp(r, &ts)?, int(r, inc)?);
                    let later = after.is_none_or(|a| key > a);
                    (key.0 < *before && later).then_some(((Some(key.0), Some(key.1)), r))
                })
                .collect()
            }
        };
        kept.sort_by_key(|(key, _)| *key);
        let limit = select.limit.map_or(usize::MAX, |l| l as usize);
        Ok(Rows {
            columns: table.columns.clone(),
            rows: kept
                .into_iter()
                .take(limit)
                .map(|(_, r)| r.clone())
                .collect(),
        })
    }
}

/// Where a row sorts in a select: by timestamp, then by incrementing value.
type SortKey = (Option<Timestamp>, Option<i64>);

fn visible(txns: &[Txn], version: &Version) -> bool {
    txns[version.created.0].status == Status::Committed
        && version
            .deleted
            .is_none_or(|d| txns[d.0].status != Status::Committed)
}

fn table<'a>(state: &'a State, relation: &Relation) -> Result<&'a Table, DbError> {
    match relation {
        Relation::Table(name) => state
            .tables
            .get(name)
            .ok_or_else(|| DbError::NoSuchRelation {
                relation: relation.to_string(),
            }),
        Relation::Query(_) => Err(DbError::Unsupported(
            "the model database runs no SQL: read its tables".into(),
        )),
    }
}

fn column_index(table: &Table, relation: &Relation, name: &str) -> Result<usize, DbError> {
    table
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| DbError::NoSuchColumn {
            relation: relation.to_string(),
            column: name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_connectors::jdbc::database::ColumnType;

    fn db() -> ModelDb {
        let db = ModelDb::new(Timestamp(0), Precision::Nanos);
        let column = |name: &str, kind| Column {
            name: name.into(),
            kind,
            nullable: false,
            primary_key: name == "id",
        };
        db.create_table(
            "t",
            vec![
                column("id", ColumnType::Int64),
                column("at", ColumnType::Timestamp),
            ],
        );
        db
    }

    fn ids(rows: Rows) -> Vec<i64> {
        rows.rows
            .iter()
            .map(|r| match r[0] {
                SqlValue::Int(n) => n,
                _ => panic!(),
            })
            .collect()
    }

    fn select(criteria: Criteria) -> Select {
        Select {
            relation: Relation::Table("t".into()),
            criteria,
            suffix: String::new(),
            limit: None,
        }
    }

    #[test]
    fn rows_are_visible_once_their_transactions_commit_in_any_order() {
        let db = db();
        let early = db.begin();
        db.insert(
            early,
            "t",
            vec![SqlValue::Int(1), SqlValue::Timestamp(Timestamp(10))],
        );
        let late = db.begin();
        db.insert(
            late,
            "t",
            vec![SqlValue::Int(2), SqlValue::Timestamp(Timestamp(20))],
        );
        db.commit(late);
        let after = Criteria::Incrementing {
            column: "id".into(),
            after: 0,
        };
        assert_eq!(ids(db.select(&select(after.clone())).unwrap()), [2]);
        db.commit(early);
        assert_eq!(ids(db.select(&select(after)).unwrap()), [1, 2]);
        let keyset = Criteria::TimestampIncrementing {
            timestamp_columns: vec!["at".into()],
            incrementing: "id".into(),
            after: Some((Timestamp(10), 1)),
            before: Timestamp(100),
        };
        assert_eq!(ids(db.select(&select(keyset)).unwrap()), [2]);
    }

    #[test]
    fn a_crash_rolls_back_what_was_in_flight_and_keeps_what_committed() {
        let db = db();
        let kept = db.begin();
        db.insert(
            kept,
            "t",
            vec![SqlValue::Int(1), SqlValue::Timestamp(Timestamp(1))],
        );
        db.commit(kept);
        let touch = db.begin();
        assert!(db.update(touch, "t", 0, &SqlValue::Int(1), |row| row[1] =
            SqlValue::Timestamp(Timestamp(5))));
        let lost = db.begin();
        db.insert(
            lost,
            "t",
            vec![SqlValue::Int(2), SqlValue::Timestamp(Timestamp(2))],
        );
        db.recover();
        let rows = db.select(&select(Criteria::All)).unwrap();
        assert_eq!(
            rows.rows,
            [vec![SqlValue::Int(1), SqlValue::Timestamp(Timestamp(1))]]
        );
    }

    #[test]
    fn the_clock_is_cut_to_the_precision() {
        let db = ModelDb::new(Timestamp(1_000), Precision::Millis);
        assert_eq!(
            db.clock_at(Duration::from_nanos(2_500_000)),
            Timestamp(2_000_000)
        );
    }
}
