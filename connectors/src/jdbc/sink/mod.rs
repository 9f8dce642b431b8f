//! `JdbcSinkConnector`: writes records into database tables, with Confluent's keys: insert, upsert or
//! update by a key taken from the record's coordinates, key or value; tables created and widened from
//! the records' schemas; tombstones as deletes. Each batch of rows is one transaction. With Sluice's
//! `exactly.once.enabled`, the Kafka offsets are kept in the same transaction and read back when
//! partitions are assigned, so a crash never writes a row twice.
//!
//! - [`settings`]: the keys and their checks;
//! - [`rows`]: records as rows.

pub mod rows;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap};

use self::rows::{row, Row};
use self::settings::{config_def, SinkSettings};
use super::database::{
    sink_offsets_columns, Column, Database, DatabaseOpener, DbError, Relation, SinkOffset,
    SinkOffsets, WriteBatch,
};
use super::db_error;

/// Runs `tasks.max` tasks, each with the whole config: Kafka's group spreads the partitions.
pub struct JdbcSinkConnector {
    opener: Arc<dyn DatabaseOpener>,
    config: ConfigMap,
}

impl JdbcSinkConnector {
    pub fn new(opener: Arc<dyn DatabaseOpener>) -> JdbcSinkConnector {
        JdbcSinkConnector {
            opener,
            config: ConfigMap::new(),
        }
    }
}

#[async_trait]
impl Connector for JdbcSinkConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    fn validate(&self, config: &ConfigMap) -> Result<(), sluice_core::config::ConfigError> {
        SinkSettings::parse(config).map(drop)
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        SinkSettings::parse(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone(); max_tasks.max(1)]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for JdbcSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(JdbcSinkTask::new(self.opener.clone()))
    }
}

/// Writes the records of its partitions, batch by batch, each batch one transaction.
pub struct JdbcSinkTask {
    opener: Arc<dyn DatabaseOpener>,
    connector: String,
    settings: Option<SinkSettings>,
    db: Option<Arc<dyn Database>>,
    context: Option<SinkTaskContext>,
    /// The columns of each table written so far.
    tables: BTreeMap<String, BTreeSet<String>>,
    /// With exactly-once: per partition, the next offset the database holds no row of.
    next: BTreeMap<TopicPartition, i64>,
    /// Writes that failed for a passing reason in a row.
    retries: u32,
    /// A write failed: with exactly-once, whether it committed is unknown until the offsets are read
    /// again.
    unsure: bool,
}

impl JdbcSinkTask {
    pub fn new(opener: Arc<dyn DatabaseOpener>) -> JdbcSinkTask {
        JdbcSinkTask {
            opener,
            connector: String::new(),
            settings: None,
            db: None,
            context: None,
            tables: BTreeMap::new(),
            next: BTreeMap::new(),
            retries: 0,
            unsure: false,
        }
    }

    fn parts(&self) -> Result<(&SinkSettings, &Arc<dyn Database>), ConnectError> {
        match (&self.settings, &self.db) {
            (Some(settings), Some(db)) => Ok((settings, db)),
            _ => Err(ConnectError::fatal("the task was not started")),
        }
    }

    /// Makes `table` hold the row's columns: created or widened where allowed, an error otherwise.
    async fn prepare(&mut self, row: &Row) -> Result<(), ConnectError> {
        let (settings, db) = self.parts()?;
        let (settings, db) = (settings.clone(), db.clone());
        let table = &row.write.table;
        if !self.tables.contains_key(table) {
            let existing = match db.columns(&Relation::Table(table.clone())).await {
                Ok(columns) => columns,
                Err(DbError::NoSuchRelation { .. }) if settings.auto_create => {
                    db.create_table(table, &row.columns)
                        .await
                        .map_err(db_error)?;
                    tracing::info!(table, "created the table (auto.create)");
                    row.columns.clone()
                }
                Err(DbError::NoSuchRelation { .. }) => {
                    return Err(ConnectError::fatal(format!(
                        "table {table:?} does not exist; create it or set auto.create=true"
                    )))
                }
                Err(e) => return Err(db_error(e)),
            };
            self.tables.insert(
                table.clone(),
                existing.into_iter().map(|c| c.name).collect(),
            );
        }
        let known = &self.tables[table];
        let missing: Vec<Column> = row
            .columns
            .iter()
            .filter(|c| !known.contains(&c.name))
            .map(|c| Column {
                nullable: true,
                primary_key: false,
                ..c.clone()
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|c| format!("{:?}", c.name)).collect();
        if !settings.auto_evolve {
            return Err(ConnectError::fatal(format!(
                "table {table:?} has no column {} for the record's fields; add them or set auto.evolve=true",
                names.join(", ")
            )));
        }
        db.add_columns(table, &missing).await.map_err(db_error)?;
        tracing::info!(
            table,
            columns = names.join(", "),
            "added columns (auto.evolve)"
        );
        if let Some(known) = self.tables.get_mut(table) {
            known.extend(missing.into_iter().map(|c| c.name));
        }
        Ok(())
    }

    /// The offsets the database holds for these partitions (none without exactly-once).
    async fn stored_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>, ConnectError> {
        let (settings, db) = self.parts()?;
        let Some(table) = &settings.offsets_table else {
            return Ok(Vec::new());
        };
        let stored = db
            .sink_offsets(table, &self.connector)
            .await
            .map_err(db_error)?;
        Ok(stored
            .into_iter()
            .map(|(topic, partition, next)| (TopicPartition::new(topic, partition), next))
            .filter(|(tp, _)| partitions.contains(tp))
            .collect())
    }

    /// A failed write: tried again after `retry.backoff.ms`, up to `max.retries` times in a row, if
    /// the failure may pass.
    fn failed(&mut self, e: DbError) -> ConnectError {
        self.unsure = true;
        let Some(settings) = &self.settings else {
            return db_error(e);
        };
        if e.is_retriable() && self.retries < settings.max_retries {
            self.retries += 1;
            if let Some(context) = &self.context {
                context.timeout(settings.retry_backoff);
            }
            tracing::warn!(error = %e, attempt = self.retries, "write failed; the records will be written again");
            return ConnectError::retriable(e.to_string());
        }
        ConnectError::fatal(match e.is_retriable() {
            true => format!("{e} (after {} retries, max.retries)", self.retries),
            false => e.to_string(),
        })
    }
}

#[async_trait]
impl SinkTask for JdbcSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let settings = SinkSettings::parse(context.configs())?;
        self.connector = context.configs().get("name").cloned().unwrap_or_default();
        let db = super::connect(
            &*self.opener,
            &settings.connection,
            settings.attempts,
            settings.backoff,
        )
        .await?;
        if let Some(table) = &settings.offsets_table {
            match db.columns(&Relation::Table(table.clone())).await {
                Ok(_) => {}
                Err(DbError::NoSuchRelation { .. }) => db
                    .create_table(table, &sink_offsets_columns())
                    .await
                    .map_err(db_error)?,
                Err(e) => return Err(db_error(e)),
            }
        }
        self.db = Some(db);
        self.settings = Some(settings);
        self.context = Some(context);
        Ok(())
    }

    /// With exactly-once, delivery of each partition resumes after the last row the database holds.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        for (tp, next) in self.stored_offsets(partitions).await? {
            if let Some(context) = &self.context {
                context.offset(tp.clone(), next);
            }
            self.next.insert(tp, next);
        }
        Ok(())
    }

    /// Rows are built from keys and values only.
    fn reads_headers(&self) -> bool {
        false
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let (settings, _) = self.parts()?;
        let settings = settings.clone();
        if std::mem::take(&mut self.unsure) {
            // The failed write may have committed before its answer was lost: skip what it wrote.
            let partitions: Vec<TopicPartition> = self
                .context
                .as_ref()
                .map(|c| c.assignment().into_iter().collect())
                .unwrap_or_default();
            let stored = self
                .stored_offsets(&partitions)
                .await
                .inspect_err(|_| self.unsure = true)?;
            self.next.extend(stored);
        }
        let mut rows: Vec<(TopicPartition, i64, Row)> = Vec::with_capacity(records.len());
        for record in &records {
            let tp = record.topic_partition();
            if self
                .next
                .get(&tp)
                .is_some_and(|next| record.kafka_offset < *next)
            {
                continue;
            }
            let row = row(record, &settings).map_err(|e| {
                ConnectError::fatal(format!(
                    "record {tp} at offset {}: {e}",
                    record.kafka_offset
                ))
            })?;
            rows.push((tp, record.kafka_offset, row));
        }
        for (_, _, row) in &rows {
            self.prepare(row).await?;
        }
        for chunk in rows.chunks(settings.batch_size) {
            let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            for (tp, offset, _) in chunk {
                next.insert(tp.clone(), offset + 1);
            }
            let batch = WriteBatch {
                writes: chunk.iter().map(|(_, _, row)| row.write.clone()).collect(),
                offsets: settings.offsets_table.as_ref().map(|table| SinkOffsets {
                    table: table.clone(),
                    connector: self.connector.clone(),
                    offsets: next
                        .iter()
                        .map(|(tp, next)| SinkOffset {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            expected: self.next.get(tp).copied(),
                            next: *next,
                        })
                        .collect(),
                }),
            };
            let db = self.parts()?.1.clone();
            if let Err(e) = db.write(&batch).await {
                return Err(self.failed(e));
            }
            self.retries = 0;
            if settings.offsets_table.is_some() {
                self.next.extend(next);
            }
        }
        Ok(())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        for tp in partitions {
            self.next.remove(tp);
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.db = None;
        Ok(())
    }
}
