//! `JdbcSourceConnector`: reads database tables (or one query) into Kafka topics, a table per source
//! partition, with Confluent's keys, modes and offsets.
//!
//! - [`settings`]: the keys and their checks;
//! - [`reader`]: one table's criteria and offsets;
//! - [`schema`]: rows as Connect structs;
//! - [`task`]: the task's poll loop.

pub mod reader;
pub mod schema;
pub mod settings;
pub mod task;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, ExactlyOnceSupport, SourceConnector, SourceTask,
};
use sluice_core::config::{ConfigDef, ConfigMap};
use tokio::task::JoinHandle;

use self::reader::Mode;
use self::settings::{config_def, SourceSettings, TABLES};
use self::task::JdbcSourceTask;
use super::database::{Column, ColumnType, Database, DatabaseOpener, Relation};
use super::db_error;

/// Opens the source's database.
pub(crate) async fn connect(
    opener: &dyn DatabaseOpener,
    settings: &SourceSettings,
) -> Result<Arc<dyn Database>, ConnectError> {
    super::connect(
        opener,
        &settings.connection,
        settings.attempts,
        settings.backoff,
    )
    .await
}

/// The mode's columns for one table: the named ones checked against the table's columns, or its integer
/// primary key when `incrementing.column.name` is empty.
pub(crate) fn resolve_mode(
    settings: &SourceSettings,
    relation: &Relation,
    columns: &[Column],
) -> Result<Mode, ConnectError> {
    let fail = |message: String| ConnectError::fatal(format!("{relation}: {message}"));
    let find = |name: &str| columns.iter().find(|c| c.name == name);
    let incrementing = |given: &str| -> Result<String, ConnectError> {
        let column = if settings.detect_incrementing {
            let keys: Vec<&Column> = columns.iter().filter(|c| c.primary_key).collect();
            match keys.as_slice() {
                [key] if is_integer(&key.kind) => *key,
                _ => return Err(fail(
                    "has no single integer primary key to read by; set incrementing.column.name"
                        .into(),
                )),
            }
        } else {
            match find(given) {
                Some(column) => column,
                None => {
                    return Err(fail(format!(
                        "has no column {given:?} (incrementing.column.name)"
                    )))
                }
            }
        };
        if !is_integer(&column.kind) {
            return Err(fail(format!(
                "the incrementing column {:?} is a {:?}, not an integer",
                column.name, column.kind
            )));
        }
        if settings.validate_non_null && column.nullable {
            return Err(fail(format!("the incrementing column {:?} is nullable; make it NOT NULL or set validate.non.null=false", column.name)));
        }
        Ok(column.name.clone())
    };
    let timestamps = |names: &[String]| -> Result<Vec<String>, ConnectError> {
        for name in names {
            let Some(column) = find(name) else {
                return Err(fail(format!(
                    "has no column {name:?} (timestamp.column.name)"
                )));
            };
            if column.kind != ColumnType::Timestamp {
                return Err(fail(format!(
                    "the timestamp column {name:?} is a {:?}, not a timestamp",
                    column.kind
                )));
            }
            if settings.validate_non_null && column.nullable && names.len() == 1 {
                return Err(fail(format!("the timestamp column {name:?} is nullable; make it NOT NULL or set validate.non.null=false")));
            }
        }
        Ok(names.to_vec())
    };
    Ok(match &settings.mode {
        Mode::Bulk => Mode::Bulk,
        Mode::Incrementing { column } => Mode::Incrementing {
            column: incrementing(column)?,
        },
        Mode::Timestamp { columns } => Mode::Timestamp {
            columns: timestamps(columns)?,
        },
        Mode::TimestampIncrementing {
            columns,
            incrementing: column,
        } => Mode::TimestampIncrementing {
            columns: timestamps(columns)?,
            incrementing: incrementing(column)?,
        },
    })
}

fn is_integer(kind: &ColumnType) -> bool {
    matches!(
        kind,
        ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64
    )
}

/// Finds the tables to read and spreads them over at most `tasks.max` tasks; watches the database every
/// `table.poll.interval.ms` and asks the runtime for new task configs when tables appear or disappear.
pub struct JdbcSourceConnector {
    opener: Arc<dyn DatabaseOpener>,
    config: ConfigMap,
    settings: Option<SourceSettings>,
    tables: Arc<Mutex<Vec<String>>>,
    watcher: Option<JoinHandle<()>>,
}

impl JdbcSourceConnector {
    pub fn new(opener: Arc<dyn DatabaseOpener>) -> JdbcSourceConnector {
        JdbcSourceConnector {
            opener,
            config: ConfigMap::new(),
            settings: None,
            tables: Arc::default(),
            watcher: None,
        }
    }

    fn tables(&self) -> Vec<String> {
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for JdbcSourceConnector {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// Looks for tables that appeared or disappeared, every `table.poll.interval.ms`; a change makes the
/// connector's task configs change, which the runtime is asked to take.
async fn watch_tables(
    db: Arc<dyn Database>,
    settings: SourceSettings,
    tables: Arc<Mutex<Vec<String>>>,
    context: ConnectorContext,
) {
    loop {
        tokio::time::sleep(settings.table_poll_interval).await;
        let now = match selected_tables(&*db, &settings).await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(connector = context.name(), error = %e, "cannot list the database's tables; trying again at the next table.poll.interval.ms");
                continue;
            }
        };
        let mut known = tables.lock().unwrap_or_else(|e| e.into_inner());
        if *known == now {
            continue;
        }
        let added: Vec<&String> = now.iter().filter(|t| !known.contains(t)).collect();
        let removed: Vec<&String> = known.iter().filter(|t| !now.contains(t)).collect();
        tracing::info!(
            connector = context.name(),
            ?added,
            ?removed,
            "the database's tables changed: asking for new task configs"
        );
        *known = now;
        drop(known);
        context.request_task_reconfiguration();
    }
}

/// The tables of the database the settings select.
pub(crate) async fn selected_tables(
    db: &dyn Database,
    settings: &SourceSettings,
) -> Result<Vec<String>, ConnectError> {
    Ok(db
        .tables()
        .await
        .map_err(db_error)?
        .into_iter()
        .filter(|t| settings.tables.accepts(t))
        .collect())
}

#[async_trait]
impl Connector for JdbcSourceConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    fn validate(&self, config: &ConfigMap) -> Result<(), sluice_core::config::ConfigError> {
        SourceSettings::parse(config).map(drop)
    }

    async fn start(
        &mut self,
        config: &ConfigMap,
        context: ConnectorContext,
    ) -> Result<(), ConnectError> {
        let settings = SourceSettings::parse(config)?;
        if settings.delay_ms == 0
            && matches!(
                settings.mode,
                Mode::Timestamp { .. } | Mode::TimestampIncrementing { .. }
            )
        {
            tracing::warn!("timestamp.delay.interval.ms=0: a row whose transaction commits after a later row was read is skipped for good (kafka-connect-jdbc#27); set it longer than the longest transaction that writes the tables");
        }
        if settings.query.is_none() {
            let db = connect(&*self.opener, &settings).await?;
            let all = db.tables().await.map_err(db_error)?;
            let missing: Vec<String> = config
                .get(settings::TABLE_WHITELIST)
                .into_iter()
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .filter(|t| !t.is_empty() && !all.iter().any(|a| a == t))
                .map(|t| format!("{t:?}"))
                .collect();
            if !missing.is_empty() {
                return Err(ConnectError::Config(
                    sluice_core::config::ConfigError::single(
                        settings::TABLE_WHITELIST,
                        format!("the database has no table {}", missing.join(", ")),
                    ),
                ));
            }
            let tables = selected_tables(&*db, &settings).await?;
            if tables.is_empty() {
                tracing::warn!("no table of the database matches the table lists: the connector has no task until one appears");
            }
            *self.tables.lock().unwrap_or_else(|e| e.into_inner()) = tables;
            self.watcher = Some(tokio::spawn(watch_tables(
                db,
                settings.clone(),
                self.tables.clone(),
                context,
            )));
        }
        self.config = config.clone();
        self.settings = Some(settings);
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        let Some(settings) = &self.settings else {
            return Vec::new();
        };
        if settings.query.is_some() {
            return vec![self.config.clone()];
        }
        let tables = self.tables();
        let groups = max_tasks.max(1).min(tables.len());
        (0..groups)
            .map(|group| {
                // Contiguous groups of nearly equal size, as Connect's `ConnectorUtils.groupPartitions`.
                let per = tables.len() / groups;
                let extra = tables.len() % groups;
                let start = group * per + group.min(extra);
                let len = per + usize::from(group < extra);
                let mut config = self.config.clone();
                config.insert(TABLES.into(), tables[start..start + len].join(","));
                config
            })
            .collect()
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
        Ok(())
    }
}

impl SourceConnector for JdbcSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(JdbcSourceTask::new(self.opener.clone()))
    }

    /// Incremental modes resume exactly from the stored offset; bulk reads everything again.
    fn exactly_once_support(&self, config: &ConfigMap) -> ExactlyOnceSupport {
        match config.get(settings::MODE).map(|m| m.trim()) {
            Some("incrementing" | "timestamp+incrementing") => ExactlyOnceSupport::Supported,
            _ => ExactlyOnceSupport::Unsupported,
        }
    }
}
