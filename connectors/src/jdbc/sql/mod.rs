//! The production side of the database seam: SQLite files and PostgreSQL servers through sqlx.
//!
//! - [`url`]: `connection.url` in its JDBC and plain forms;
//! - [`render`]: a [`Select`] as each dialect's SQL;
//! - [`decode`]: catalog types and row values as the seam's types.

pub mod decode;
pub mod render;
pub mod url;
pub mod write;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Column as _, Executor, Row, TypeInfo};

use self::render::{Bind, Dialect, Statement};
use self::url::{hide_password, DatabaseUrl, PgSslMode};
use super::database::{
    Column, ColumnType, ConnectionSettings, Database, DatabaseOpener, DbError, Relation, Rows,
    Select, SinkOffset, SinkOffsets, SqlValue, Write, WriteBatch,
};
use super::timestamp::{TimeZone, Timestamp};

/// How long opening a connection may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens SQLite and PostgreSQL databases with sqlx.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqlOpener;

#[async_trait]
impl DatabaseOpener for SqlOpener {
    async fn open(&self, settings: &ConnectionSettings) -> Result<Arc<dyn Database>, DbError> {
        Ok(Arc::new(SqlDatabase::open(settings).await?))
    }
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A pool of connections to one SQLite file or PostgreSQL database.
pub struct SqlDatabase {
    pool: Pool,
    /// The URL as it may be shown: without its password.
    shown: String,
    zone: TimeZone,
    /// SQLite compares timestamps as text: per relation, the fraction digits of the last timestamp
    /// read, so that a bound compares equal to the text it came from.
    digits: Mutex<BTreeMap<String, usize>>,
    /// Per relation, the columns last read from the catalog.
    columns: Mutex<BTreeMap<String, Vec<Column>>>,
    /// Per relation and PostgreSQL timestamp column, whether it has a zone (`timestamptz`).
    zoned: Mutex<BTreeMap<(String, String), bool>>,
}

impl SqlDatabase {
    pub async fn open(settings: &ConnectionSettings) -> Result<SqlDatabase, DbError> {
        let shown = hide_password(&settings.url);
        let url =
            DatabaseUrl::parse(&settings.url).map_err(|e| DbError::Unsupported(e.to_string()))?;
        let unreachable = |e: sqlx::Error| DbError::Unreachable {
            url: shown.clone(),
            message: e.to_string(),
        };
        let pool = match url {
            DatabaseUrl::Sqlite { path } => {
                if !settings.create && !path.exists() {
                    return Err(DbError::Refused {
                        what: format!("opening {shown}"),
                        message: format!("there is no SQLite database file at {}", path.display()),
                    });
                }
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(settings.create)
                    .busy_timeout(Duration::from_secs(10))
                    .row_buffer_size(super::SQLITE_ROW_BUFFER);
                let pool = SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Pool::Sqlite(pool)
            }
            DatabaseUrl::Postgres {
                host,
                port,
                database,
                user,
                password,
                tls,
            } => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(&host)
                    .port(port)
                    .database(&database)
                    .application_name("sluice")
                    .ssl_mode(match tls.mode {
                        PgSslMode::Disable => sqlx::postgres::PgSslMode::Disable,
                        PgSslMode::Allow => sqlx::postgres::PgSslMode::Allow,
                        PgSslMode::Prefer => sqlx::postgres::PgSslMode::Prefer,
                        PgSslMode::Require => sqlx::postgres::PgSslMode::Require,
                        PgSslMode::VerifyCa => sqlx::postgres::PgSslMode::VerifyCa,
                        PgSslMode::VerifyFull => sqlx::postgres::PgSslMode::VerifyFull,
                    });
                if let Some(root) = &tls.root_cert {
                    options = options.ssl_root_cert(root);
                }
                if let Some(cert) = &tls.client_cert {
                    options = options.ssl_client_cert(cert);
                }
                if let Some(key) = &tls.client_key {
                    options = options.ssl_client_key(key);
                }
                if let Some(user) = settings.user.as_deref().or(user.as_deref()) {
                    options = options.username(user);
                }
                let password = settings
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .or(password);
                if let Some(password) = password {
                    options = options.password(&password);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(e) => DbError::Refused {
                            what: format!("a connection to {shown}"),
                            message: e.to_string(),
                        },
                        e => unreachable(e),
                    })?;
                Pool::Postgres(pool)
            }
        };
        Ok(SqlDatabase {
            pool,
            shown,
            zone: settings.timezone,
            digits: Mutex::default(),
            columns: Mutex::default(),
            zoned: Mutex::default(),
        })
    }

    fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A sqlx error as the seam's, naming what was being done.
    fn error(&self, what: &str, relation: Option<&Relation>, e: sqlx::Error) -> DbError {
        match e {
            sqlx::Error::Database(db) => {
                let message = db.message().to_owned();
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let relation_name = relation.map(ToString::to_string).unwrap_or_default();
                if ["40001", "40P01", "55P03", "5", "6", "517"].contains(&code.as_str())
                    || message.contains("database is locked")
                {
                    DbError::Transient { message }
                } else if code == "42P01" || message.starts_with("no such table") {
                    DbError::NoSuchRelation {
                        relation: relation_name,
                    }
                } else if code == "42703" || message.starts_with("no such column") {
                    let column = message
                        .rsplit([':', ' '])
                        .next()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_owned();
                    DbError::NoSuchColumn {
                        relation: relation_name,
                        column,
                    }
                } else {
                    DbError::Refused {
                        what: what.to_owned(),
                        message,
                    }
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => DbError::Unreachable {
                url: self.shown.clone(),
                message: e.to_string(),
            },
            e => DbError::Refused {
                what: what.to_owned(),
                message: e.to_string(),
            },
        }
    }

    /// A statement without results.
    async fn execute(&self, sql: &str, what: &str) -> Result<(), DbError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        };
        result.map_err(|e| self.error(what, None, e))
    }

    /// Whether a sink offset moved as its writer expected; a batch whose offsets another task moved is
    /// refused (and rolled back with its transaction).
    fn offset_moved(
        &self,
        offsets: &SinkOffsets,
        offset: &SinkOffset,
        moved: Result<u64, sqlx::Error>,
    ) -> Result<(), DbError> {
        let fenced = || DbError::Fenced {
            what: format!(
                "{}-{} of connector {:?}",
                offset.topic, offset.partition, offsets.connector
            ),
        };
        match moved {
            Ok(1) => Ok(()),
            Ok(_) => Err(fenced()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(fenced()),
            Err(e) => Err(self.error("moving the sink's offsets", None, e)),
        }
    }

    /// A failed write, naming its table.
    fn write_error(&self, write: &Write, e: sqlx::Error) -> DbError {
        let relation = Relation::Table(write.table.clone());
        self.error(
            &format!("a write to table {:?}", write.table),
            Some(&relation),
            e,
        )
    }

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Columns of a table from the catalog, of a query from the statement's description.
    async fn read_columns(&self, relation: &Relation) -> Result<Vec<Column>, DbError> {
        let err = |e| self.error("reading the catalog", Some(relation), e);
        let columns = match (&self.pool, relation) {
            (Pool::Sqlite(pool), Relation::Table(table)) => {
                let rows = sqlx::query(&format!("PRAGMA table_info({})", render::quote(table)))
                    .fetch_all(pool)
                    .await
                    .map_err(err)?;
                rows.iter()
                    .map(|row| {
                        Ok(Column {
                            name: row.try_get("name")?,
                            kind: decode::sqlite_type(&row.try_get::<String, _>("type")?),
                            nullable: row.try_get::<i64, _>("notnull")? == 0
                                && row.try_get::<i64, _>("pk")? == 0,
                            primary_key: row.try_get::<i64, _>("pk")? > 0,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(err)?
            }
            (Pool::Postgres(pool), Relation::Table(table)) => {
                let (schema, name) = match table.split_once('.') {
                    Some((schema, name)) => (Some(schema), name),
                    None => (None, table.as_str()),
                };
                let rows = sqlx::query(
                    "SELECT c.column_name::text AS name, c.data_type::text AS type, c.is_nullable = 'YES' AS nullable, \
                     c.numeric_precision::int4 AS precision, c.numeric_scale::int4 AS scale, \
                     EXISTS (SELECT 1 FROM information_schema.table_constraints t \
                       JOIN information_schema.key_column_usage k \
                         ON k.constraint_name = t.constraint_name AND k.table_schema = t.table_schema \
                       WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema \
                         AND t.table_name = c.table_name AND k.column_name = c.column_name) AS pk \
                     FROM information_schema.columns c \
                     WHERE c.table_schema = COALESCE($1, current_schema()) AND c.table_name = $2 \
                     ORDER BY c.ordinal_position",
                )
                .bind(schema)
                .bind(name)
                .fetch_all(pool)
                .await
                .map_err(err)?;
                rows.iter()
                    .map(|row| {
                        Ok(Column {
                            name: row.try_get("name")?,
                            kind: decode::postgres_type(
                                &row.try_get::<String, _>("type")?,
                                row.try_get("precision")?,
                                row.try_get("scale")?,
                            ),
                            nullable: row.try_get("nullable")?,
                            primary_key: row.try_get("pk")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(err)?
            }
            (Pool::Sqlite(pool), Relation::Query(_)) => {
                let sql = format!("SELECT * FROM {}", render::from(relation));
                let described = pool.describe(&sql).await.map_err(err)?;
                described
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Column {
                        name: c.name().to_owned(),
                        kind: decode::sqlite_type(c.type_info().name()),
                        nullable: described.nullable(i).unwrap_or(true),
                        primary_key: false,
                    })
                    .collect()
            }
            (Pool::Postgres(pool), Relation::Query(_)) => {
                let sql = format!("SELECT * FROM {}", render::from(relation));
                let described = pool.describe(&sql).await.map_err(err)?;
                described
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Column {
                        name: c.name().to_owned(),
                        kind: decode::postgres_type(c.type_info().name(), None, None),
                        nullable: described.nullable(i).unwrap_or(true),
                        primary_key: false,
                    })
                    .collect()
            }
        };
        if columns.is_empty() {
            return Err(DbError::NoSuchRelation {
                relation: relation.to_string(),
            });
        }
        Self::lock(&self.columns).insert(key(relation), columns.clone());
        Ok(columns)
    }

    /// The binds of a statement, as this dialect compares them.
    fn bind_sqlite<'q>(
        &self,
        statement: &'q Statement,
        digits: Option<usize>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        let mut query = sqlx::query(&statement.sql);
        for bind in &statement.binds {
            query = match bind {
                Bind::Int(n) => query.bind(*n),
                Bind::Timestamp(t) => query.bind(t.format(self.zone, digits)),
            };
        }
        query
    }

    fn bind_postgres<'q>(
        &self,
        statement: &'q Statement,
        with_zone: bool,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut query = sqlx::query(&statement.sql);
        for bind in &statement.binds {
            query = match bind {
                Bind::Int(n) => query.bind(*n),
                Bind::Timestamp(t) if with_zone => {
                    query.bind(t.to_naive(TimeZone::Utc).map(|naive| naive.and_utc()))
                }
                Bind::Timestamp(t) => query.bind(t.to_naive(self.zone)),
            };
        }
        query
    }
}

fn key(relation: &Relation) -> String {
    match relation {
        Relation::Table(table) => format!("table:{table}"),
        Relation::Query(query) => format!("query:{query}"),
    }
}

#[async_trait]
impl Database for SqlDatabase {
    async fn tables(&self) -> Result<Vec<String>, DbError> {
        let err = |e| self.error("listing tables", None, e);
        let mut tables: Vec<String> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(pool)
            .await
            .map_err(err)?,
            Pool::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(pool)
            .await
            .map_err(err)?,
        };
        tables.sort();
        Ok(tables)
    }

    async fn columns(&self, relation: &Relation) -> Result<Vec<Column>, DbError> {
        self.read_columns(relation).await
    }

    async fn now(&self) -> Result<Timestamp, DbError> {
        let err = |e| self.error("reading the current time", None, e);
        match &self.pool {
            Pool::Sqlite(pool) => {
                let text: String =
                    sqlx::query_scalar("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
                        .fetch_one(pool)
                        .await
                        .map_err(err)?;
                Timestamp::parse(&text, TimeZone::Utc).ok_or_else(|| DbError::Refused {
                    what: "reading the current time".into(),
                    message: format!("SQLite answered {text:?}"),
                })
            }
            Pool::Postgres(pool) => {
                let now: chrono::DateTime<chrono::Utc> =
                    sqlx::query_scalar("SELECT CURRENT_TIMESTAMP")
                        .fetch_one(pool)
                        .await
                        .map_err(err)?;
                Ok(Timestamp::from_naive(now.naive_utc(), TimeZone::Utc))
            }
        }
    }

    async fn max(&self, relation: &Relation, column: &str) -> Result<Option<i64>, DbError> {
        let sql = format!(
            "SELECT MAX({}) FROM {}",
            render::quote(column),
            render::from(relation)
        );
        let err = |e| self.error("reading the greatest incrementing value", Some(relation), e);
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.map_err(err),
            Pool::Postgres(pool) => {
                let max: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT MAX({})::int8 FROM {}",
                    render::quote(column),
                    render::from(relation)
                ))
                .fetch_one(pool)
                .await
                .map_err(err)?;
                Ok(max)
            }
        }
    }

    async fn select(&self, select: &Select) -> Result<Rows, DbError> {
        let statement = render::render(select, self.dialect());
        let relation = &select.relation;
        let cached = Self::lock(&self.columns).get(&key(relation)).cloned();
        let columns = match cached {
            Some(columns) => columns,
            None => self.read_columns(relation).await?,
        };
        let err = |e| self.error("a select", Some(relation), e);
        let rows = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut digits = Self::lock(&self.digits).get(&key(relation)).copied();
                let fetched = self
                    .bind_sqlite(&statement, digits)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?;
                let rows = fetched
                    .iter()
                    .map(|row| decode::sqlite_row(row, &columns, self.zone, &mut digits))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(digits) = digits {
                    Self::lock(&self.digits).insert(key(relation), digits);
                }
                rows
            }
            Pool::Postgres(pool) => {
                let with_zone = match &select.criteria {
                    super::database::Criteria::Timestamp { columns: ts, .. }
                    | super::database::Criteria::TimestampEquals { columns: ts, .. }
                    | super::database::Criteria::TimestampIncrementing {
                        timestamp_columns: ts,
                        ..
                    } => self.has_zone(relation, &ts[0]).await?,
                    _ => false,
                };
                let fetched = self
                    .bind_postgres(&statement, with_zone)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?;
                fetched
                    .iter()
                    .map(|row| decode::postgres_row(row, &columns, self.zone))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if rows.first().is_some_and(|row| row.len() != columns.len()) {
            // The relation changed since its columns were read: read them again next time.
            Self::lock(&self.columns).remove(&key(relation));
        }
        Ok(Rows { columns, rows })
    }

    async fn create_table(&self, table: &str, columns: &[Column]) -> Result<(), DbError> {
        let sql = write::create_table(table, columns, self.dialect());
        self.execute(&sql, &format!("creating table {table:?}"))
            .await?;
        Self::lock(&self.columns).remove(&key(&Relation::Table(table.to_owned())));
        Ok(())
    }

    async fn add_columns(&self, table: &str, columns: &[Column]) -> Result<(), DbError> {
        for column in columns {
            let sql = write::add_column(table, column, self.dialect());
            self.execute(
                &sql,
                &format!("adding column {:?} to table {table:?}", column.name),
            )
            .await?;
        }
        Self::lock(&self.columns).remove(&key(&Relation::Table(table.to_owned())));
        Ok(())
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), DbError> {
        let writes = &batch.writes;
        let err = |e| self.error("a write", None, e);
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await.map_err(err)?;
                for write in writes {
                    let (sql, order) = write::statement(write, Dialect::Sqlite);
                    let mut query = sqlx::query(&sql);
                    for &i in &order {
                        query = write::sqlite_bind(query, &write.values[i], self.zone);
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.write_error(write, e))?;
                }
                if let Some(offsets) = &batch.offsets {
                    for offset in &offsets.offsets {
                        let (sql, binds) =
                            write::offset_statement(offsets, offset, Dialect::Sqlite);
                        let mut query = sqlx::query(&sql);
                        for bind in &binds {
                            query = write::sqlite_bind(query, bind, self.zone);
                        }
                        let moved = query.execute(&mut *tx).await;
                        self.offset_moved(offsets, offset, moved.map(|r| r.rows_affected()))?;
                    }
                }
                tx.commit().await.map_err(err)
            }
            Pool::Postgres(pool) => {
                let mut kinds = BTreeMap::new();
                for write in writes {
                    if !kinds.contains_key(&write.table) {
                        let relation = Relation::Table(write.table.clone());
                        let cached = Self::lock(&self.columns).get(&key(&relation)).cloned();
                        let columns = match cached {
                            Some(columns) => columns,
                            None => self.read_columns(&relation).await?,
                        };
                        kinds.insert(write.table.clone(), columns);
                    }
                }
                let mut tx = pool.begin().await.map_err(err)?;
                for write in writes {
                    let (sql, order) = write::statement(write, Dialect::Postgres);
                    let columns = &kinds[&write.table];
                    let mut query = sqlx::query(&sql);
                    for &i in &order {
                        let name = &write.columns[i];
                        let kind = columns
                            .iter()
                            .find(|c| &c.name == name)
                            .map(|c| c.kind.clone())
                            .unwrap_or(ColumnType::Text);
                        query =
                            write::postgres_bind(query, &write.values[i], &kind, self.zone, name)?;
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.write_error(write, e))?;
                }
                if let Some(offsets) = &batch.offsets {
                    for offset in &offsets.offsets {
                        let (sql, binds) =
                            write::offset_statement(offsets, offset, Dialect::Postgres);
                        let mut query = sqlx::query(&sql);
                        for bind in &binds {
                            let kind = match bind {
                                SqlValue::Int(_) => ColumnType::Int64,
                                _ => ColumnType::Text,
                            };
                            query = write::postgres_bind(query, bind, &kind, self.zone, "offset")?;
                        }
                        let moved = query.execute(&mut *tx).await;
                        self.offset_moved(offsets, offset, moved.map(|r| r.rows_affected()))?;
                    }
                }
                tx.commit().await.map_err(err)
            }
        }
    }

    async fn sink_offsets(
        &self,
        table: &str,
        connector: &str,
    ) -> Result<Vec<(String, i32, i64)>, DbError> {
        let relation = Relation::Table(table.to_owned());
        match self.read_columns(&relation).await {
            Err(DbError::NoSuchRelation { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let sql = format!(
            "SELECT topic, kafka_partition, next_offset FROM {} WHERE connector = {}",
            render::quote(table),
            match self.dialect() {
                Dialect::Sqlite => "?",
                Dialect::Postgres => "$1",
            }
        );
        let err = |e| self.error("reading the sink's offsets", Some(&relation), e);
        let rows: Vec<(String, i64, i64)> = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_as(&sql)
                .bind(connector)
                .fetch_all(pool)
                .await
                .map_err(err)?,
            Pool::Postgres(pool) => {
                let rows: Vec<(String, i32, i64)> = sqlx::query_as(&sql)
                    .bind(connector)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?;
                rows.into_iter()
                    .map(|(t, p, o)| (t, i64::from(p), o))
                    .collect()
            }
        };
        Ok(rows
            .into_iter()
            .map(|(topic, partition, next)| (topic, partition as i32, next))
            .collect())
    }
}

impl SqlDatabase {
    /// Whether a PostgreSQL timestamp column has a zone (`timestamptz`): its bounds are then instants.
    async fn has_zone(&self, relation: &Relation, column: &str) -> Result<bool, DbError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(false);
        };
        let cache_key = (key(relation), column.to_owned());
        if let Some(&zoned) = Self::lock(&self.zoned).get(&cache_key) {
            return Ok(zoned);
        }
        let sql = format!(
            "SELECT {} FROM {} LIMIT 0",
            render::quote(column),
            render::from(relation)
        );
        let described = pool
            .describe(&sql)
            .await
            .map_err(|e| self.error("describing a timestamp column", Some(relation), e))?;
        let zoned = described
            .columns()
            .first()
            .is_some_and(|c| c.type_info().name() == "TIMESTAMPTZ");
        Self::lock(&self.zoned).insert(cache_key, zoned);
        Ok(zoned)
    }
}
