//! A table applications write while a JDBC source reads it, as a test-kit source system: the
//! simulation's stand-in for an `orders` table of a busy PostgreSQL database.
//!
//! Record `seq` of the kit's stream is row `id = seq + 1`, inserted when the record appears by a
//! transaction of its own that takes its `CURRENT_TIMESTAMP` then (`created_at` and `updated_at`) and
//! commits up to [`WrittenTable::longest_transaction`] later, so rows commit out of id and timestamp
//! order. A crash of the database rolls back what was in flight, and the writers write those rows again
//! with new timestamps. Writers do not update rows: an update is read again as a new version of the row,
//! which the kit's oracle, knowing each record by its identity, would count as a redelivery.
//!
//! A committed source offset covers the rows, in the kit's order, up to the first whose visible version
//! it does not cover: `{"incrementing": N}` rows with ids up to N, `{"timestamp": T}` rows with
//! timestamps up to T, both the (timestamp, id) pairs up to its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_connectors::jdbc::database::{Column, ColumnType, Criteria, Relation, Select, SqlValue};
use sluice_connectors::jdbc::source::reader::Position;
use sluice_connectors::jdbc::timestamp::Timestamp;
use sluice_core::api::{SourceOffset, SourcePartition};

use super::{server, ModelDb, Precision};
use crate::kit::{ExternalSource, SourceRecords};

/// The database's host and port.
pub const DB_HOST: &str = "db";
pub const DB_PORT: u16 = 5432;
/// The `connection.url` that names it.
pub const DB_URL: &str = "jdbc:postgresql://db:5432/shop";
/// The table the writers write; with `topic.prefix` empty, its topic is the kit's.
pub const TABLE: &str = "sequences";
/// The database clock at simulated time zero: 2026-01-01T00:00:00Z.
const EPOCH_SECONDS: i128 = 1_767_225_600;

const ID: usize = 0;
const UPDATED_AT: usize = 3;

/// The table and its writers. The kit's stream 0 is written; a scenario of this table has one stream.
#[derive(Debug)]
pub struct WrittenTable {
    pub precision: Precision,
    /// The longest a writer's transaction stays open. A quarter of them take between half of it and all
    /// of it; the rest commit within 5 ms.
    pub longest_transaction: Duration,
    /// The database of the run in progress, for [`covered`](ExternalSource::covered).
    run: Mutex<Option<Arc<ModelDb>>>,
}

impl WrittenTable {
    pub fn new(precision: Precision, longest_transaction: Duration) -> WrittenTable {
        WrittenTable {
            precision,
            longest_transaction,
            run: Mutex::new(None),
        }
    }

    fn columns() -> Vec<Column> {
        let column = |name: &str, kind| Column {
            name: name.into(),
            kind,
            nullable: false,
            primary_key: name == "id",
        };
        vec![
            column("id", ColumnType::Int64),
            column("item", ColumnType::Text),
            column("created_at", ColumnType::Timestamp),
            column("updated_at", ColumnType::Timestamp),
        ]
    }

    /// The database of the run in progress.
    pub fn database(&self) -> Option<Arc<ModelDb>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ExternalSource for WrittenTable {
    fn build(&self, sim: &mut turmoil::Sim<'_>, records: SourceRecords) {
        let db = Arc::new(ModelDb::new(
            Timestamp(EPOCH_SECONDS * 1_000_000_000),
            self.precision,
        ));
        db.create_table(TABLE, WrittenTable::columns());
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = Some(db.clone());
        let records = Arc::new(records);
        let longest = self.longest_transaction;
        sim.host(DB_HOST, move || {
            let (db, records) = (db.clone(), records.clone());
            async move {
                // A (re)start: what was in flight when it went down is rolled back.
                db.recover();
                tokio::spawn(write(db.clone(), records, longest));
                server::serve(db, DB_PORT, None).await
            }
        });
    }

    fn hosts(&self) -> Vec<String> {
        vec![DB_HOST.to_owned()]
    }

    fn covered(&self, partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)> {
        if partition.get("table")?.as_str()? != TABLE {
            return None;
        }
        let db = self.database()?;
        let at = Position::from_offset(offset);
        // Each row as a read now sees it: an updated row is read again with its new timestamp, so it
        // is covered only once the offset passes that.
        let mut visible: BTreeMap<i64, Timestamp> = BTreeMap::new();
        for row in visible_rows(&db) {
            if let (SqlValue::Int(id), SqlValue::Timestamp(ts)) = (&row[ID], &row[UPDATED_AT]) {
                visible.insert(*id, *ts);
            }
        }
        let covers = |id: i64, ts: Timestamp| match (at.timestamp, at.incrementing) {
            (Some(t), Some(n)) => (ts, id) <= (t, n),
            (Some(t), None) => ts <= t,
            (None, Some(n)) => id <= n,
            (None, None) => false,
        };
        let mut last = -1;
        while let Some(&ts) = visible.get(&(last + 2)) {
            if !covers(last + 2, ts) {
                break;
            }
            last += 1;
        }
        (last >= 0).then_some((0, last))
    }

    /// A row's `item` column holds the kit's `stream-S:N` text; the converter may wrap the row in a
    /// schema envelope.
    fn identify(&self, value: &[u8]) -> Option<(i64, i64)> {
        let json: serde_json::Value = serde_json::from_slice(value).ok()?;
        let row = json
            .get("payload")
            .filter(|_| json.get("schema").is_some())
            .unwrap_or(&json);
        SourceRecords::identify(row.get("item")?.as_str()?.as_bytes())
    }
}

/// The rows of the table a read sees now.
fn visible_rows(db: &ModelDb) -> Vec<Vec<SqlValue>> {
    let all = Select {
        relation: Relation::Table(TABLE.into()),
        criteria: Criteria::All,
        suffix: String::new(),
        limit: None,
    };
    db.select(&all).map(|rows| rows.rows).unwrap_or_default()
}

/// A number drawn from a record's place and time: the run's seed decides the times, so it decides
/// these too.
fn draw(seq: i64, at: Duration) -> u64 {
    let mut z = (at.as_nanos() as u64) ^ (seq as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long the transaction of record `seq` stays open.
fn duration(longest: Duration, drawn: u64) -> Duration {
    let longest = longest.as_millis().max(2) as u64;
    match drawn % 4 {
        0 => Duration::from_millis(longest / 2 + (drawn >> 8) % (longest / 2 + 1)),
        _ => Duration::from_millis((drawn >> 8) % 6),
    }
}

/// The writers: each record's row in a transaction of its own when it appears, again after a crash
/// rolled it back.
async fn write(db: Arc<ModelDb>, records: Arc<SourceRecords>, longest: Duration) {
    let committed: Vec<i64> = visible_rows(&db)
        .iter()
        .filter_map(|row| match row[ID] {
            SqlValue::Int(id) => Some(id),
            _ => None,
        })
        .collect();
    let start = tokio::time::Instant::now() - crate::broker::now();
    for seq in 0..records.per_stream {
        let Some(at) = records.appears_at(0, seq) else {
            break;
        };
        tokio::time::sleep_until(start + at).await;
        if committed.contains(&(seq + 1)) {
            continue;
        }
        let drawn = draw(seq, at);
        let db = db.clone();
        tokio::spawn(async move {
            let txn = db.begin();
            let now = SqlValue::Timestamp(db.current_timestamp(txn));
            let item = SqlValue::Text(SourceRecords::value(0, seq));
            db.insert(
                txn,
                TABLE,
                vec![SqlValue::Int(seq + 1), item, now.clone(), now],
            );
            tokio::time::sleep(duration(longest, drawn)).await;
            db.commit(txn);
        });
    }
}
