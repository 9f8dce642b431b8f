//! The JDBC source task: reads its tables in turn, each at most every `poll.interval.ms` once read to its
//! end, a batch of at most `batch.max.rows` rows per poll, and resumes each from its committed offset.

use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    CommitRecordReads, ConnectError, SourceRecord, SourceTask, SourceTaskContext,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::reader::{query_partition, table_partition, Mode, Position, ReadError, TableReader};
use super::settings::{SourceSettings, TABLES};
use super::{connect, resolve_mode};
use crate::jdbc::database::{Database, DatabaseOpener, Relation};
use crate::jdbc::db_error;
use crate::jdbc::timestamp::Timestamp;

/// A table being read, and when it is next due.
struct Scheduled {
    /// `None` while `reading` has it.
    reader: Option<TableReader>,
    /// The table's next batch, read on a task of its own: once a read finds more rows waiting, the
    /// next one starts at once, and runs while the runtime converts and sends the batch before it.
    reading: Option<JoinHandle<Read>>,
    due: Instant,
}

/// A reader back from its read, with the records it read.
type Read = (TableReader, Result<Vec<SourceRecord>, ConnectError>);

pub struct JdbcSourceTask {
    opener: Arc<dyn DatabaseOpener>,
    settings: Option<SourceSettings>,
    db: Option<Arc<dyn Database>>,
    tables: Vec<Scheduled>,
}

impl JdbcSourceTask {
    pub fn new(opener: Arc<dyn DatabaseOpener>) -> JdbcSourceTask {
        JdbcSourceTask {
            opener,
            settings: None,
            db: None,
            tables: Vec::new(),
        }
    }
}

/// Reads the next batch of a table: rows up to `delay_ms` before the database's time in the
/// timestamp modes.
fn read(
    db: Arc<dyn Database>,
    mut reader: TableReader,
    delay_ms: u64,
    limit: u64,
) -> JoinHandle<Read> {
    tokio::spawn(async move {
        let before = match reader.mode_reads_timestamps() {
            true => match db.now().await {
                Ok(now) => now.minus_millis(delay_ms),
                Err(e) => return (reader, Err(db_error(e))),
            },
            false => Timestamp(i128::MAX),
        };
        let records = reader.read(&*db, before, limit).await.map_err(read_error);
        (reader, records)
    })
}

fn read_error(e: ReadError) -> ConnectError {
    match e {
        ReadError::Database(e) => db_error(e),
        e => ConnectError::fatal(e.to_string()),
    }
}

#[async_trait]
impl SourceTask for JdbcSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let config = context.configs();
        let settings = SourceSettings::parse(config)?;
        let db = connect(&*self.opener, &settings).await?;
        let relations: Vec<Relation> = match &settings.query {
            Some(query) => vec![Relation::Query(query.clone())],
            None => config
                .get(TABLES)
                .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()))
                .into_iter()
                .flatten()
                .map(|t| Relation::Table(t.to_owned()))
                .collect(),
        };
        let offsets = context.offset_storage_reader();
        let now = Instant::now();
        for relation in relations {
            let columns = db.columns(&relation).await.map_err(db_error)?;
            let mode = resolve_mode(&settings, &relation, &columns)?;
            let (partition, topic) = match &relation {
                Relation::Table(table) => (
                    table_partition(table),
                    format!("{}{table}", settings.topic_prefix),
                ),
                Relation::Query(_) => (query_partition(), settings.topic_prefix.clone()),
            };
            // Offsets of Confluent's connector before its protocol versions name the table alone.
            let legacy = match &relation {
                Relation::Table(table) => Some(sluice_core::api::SourceMap::single(
                    "table",
                    serde_json::Value::from(table.as_str()),
                )),
                Relation::Query(_) => None,
            };
            let stored = offsets
                .offset(&partition)
                .or_else(|| legacy.and_then(|legacy| offsets.offset(&legacy)));
            let mut position = stored
                .as_ref()
                .map(Position::from_offset)
                .unwrap_or_default();
            if stored.is_none() {
                if let (
                    Mode::Timestamp { .. } | Mode::TimestampIncrementing { .. },
                    Some(initial),
                ) = (&mode, settings.timestamp_initial)
                {
                    position.timestamp = Some(match initial {
                        -1 => db.now().await.map_err(db_error)?,
                        ms => Timestamp::from_millis(ms),
                    });
                }
            }
            if let (Mode::Incrementing { column }, Some(offset)) = (&mode, position.incrementing) {
                if let Some(max) = db.max(&relation, column).await.map_err(db_error)? {
                    if max < offset {
                        return Err(ConnectError::fatal(format!(
                            "{relation}: the incrementing column {column:?} went backwards: its greatest value is {max}, below the committed offset {offset} (was the table emptied or recreated?); rows up to {offset} would never be read"
                        )));
                    }
                }
            }
            let (reader, left_out) = TableReader::new(
                relation.clone(),
                mode,
                partition,
                topic.into(),
                settings.query_suffix.clone(),
                position,
                &columns,
                settings.numeric_mapping,
            );
            for column in left_out {
                tracing::warn!(%relation, column = column.name, kind = ?column.kind, "column left out: its type has no mapping to Connect's types");
            }
            self.tables.push(Scheduled {
                reader: Some(reader),
                reading: None,
                due: now,
            });
        }
        self.db = Some(db);
        self.settings = Some(settings);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let (Some(settings), Some(db)) = (&self.settings, &self.db) else {
            return Err(ConnectError::fatal("poll before start"));
        };
        let Some(next) = (0..self.tables.len()).min_by_key(|&i| self.tables[i].due) else {
            // No table to read: wait, so that the runtime can commit and stop.
            tokio::time::sleep(settings.poll_interval).await;
            return Ok(Vec::new());
        };
        let table = &mut self.tables[next];
        tokio::time::sleep_until(table.due).await;
        if let Some(reader) = table.reader.take() {
            table.reading = Some(read(
                db.clone(),
                reader,
                settings.delay_ms,
                settings.batch_max_rows,
            ));
        }
        let Some(reading) = table.reading.as_mut() else {
            return Err(ConnectError::fatal(
                "a table has neither a reader nor a read",
            ));
        };
        // Cancel-safe: a poll dropped here leaves the read running, and the next poll waits for it.
        let joined = reading.await;
        table.reading = None;
        let (reader, records) =
            joined.map_err(|e| ConnectError::fatal(format!("a table's read failed: {e}")))?;
        let now = Instant::now();
        if records.is_ok() && reader.more_waiting() {
            table.due = now;
            table.reading = Some(read(
                db.clone(),
                reader,
                settings.delay_ms,
                settings.batch_max_rows,
            ));
        } else {
            table.due = now + settings.poll_interval;
            table.reader = Some(reader);
        }
        records
    }

    /// Its `commit_record` is the default, which reads nothing: nothing of a record is kept for it.
    fn commit_record_reads(&self) -> CommitRecordReads {
        CommitRecordReads::Nothing
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        for table in &self.tables {
            if let Some(reading) = &table.reading {
                reading.abort();
            }
        }
        self.tables.clear();
        self.db = None;
        Ok(())
    }
}
