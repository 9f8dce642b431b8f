//! The JDBC benchmark: a table of six columns copied through Kafka into another table, by the JDBC
//! connectors and by two plain programs using the same libraries: one reads the rows with sqlx, with
//! the same query and batch as the source task, and produces them as JSON with raw rdkafka; one consumes
//! them with raw rdkafka and inserts them with sqlx, one transaction per batch of the same size as the
//! sink's. Both sinks read the plain producer's topic, as in the FileStream benchmark.
//!
//! Records are JSON without schemas on both sides (`JsonConverter` with `schemas.enable=false`); the
//! plain programs map rows to and from typed structs with serde. SQLite always; PostgreSQL when
//! `--postgres` names a database.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use serde::{Deserialize, Serialize};
use sluice_core::kafka::rdkafka::CONSUMER_DEFAULTS;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::types::chrono::NaiveDateTime;
use sqlx::Row;
use tokio::runtime::Runtime;

use super::harness::{
    in_turn, median, median_duration, ratio, wait_until, worker_file, AssignmentClock, Broker,
    RawProducer, TopicEnds, Worker, PHASE_LIMIT,
};
use super::history::{record, verdict, Better, Entry, HistoryArgs};
use super::BenchError;

/// Arguments of `sluice bench jdbc`.
#[derive(clap::Args)]
pub struct Args {
    /// Rows in the source table.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Rows per select of the sources (`batch.max.rows`) and per transaction of the sinks
    /// (`batch.size`, with `consumer.override.max.poll.records` so that a `put` holds that many).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Partitions per topic: the embedded broker keeps at most about 5 MiB per partition.
    #[arg(long, default_value_t = 64)]
    partitions: i32,
    /// Rounds to run per database; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure the sources only (the sinks take most of a run's time, PostgreSQL's above all).
    #[arg(long)]
    sources_only: bool,
    /// Also measure on this PostgreSQL database (`postgres://USER:PASSWORD@HOST:PORT/DB`); its tables
    /// `bench_rows` and `bench_copy_*` are replaced.
    #[arg(long)]
    postgres: Option<String>,
}

const SOURCE_TARGET: f64 = 0.8;
const SINK_TARGET: f64 = 0.8;
/// The table the sources read.
const TABLE: &str = "bench_rows";

/// One row of the table, as the plain programs read and write it.
#[derive(Serialize, Deserialize)]
struct BenchRow {
    id: i64,
    customer: String,
    product: String,
    quantity: i64,
    price: f64,
    /// Milliseconds since the epoch, as Kafka Connect's JSON converter writes a `Timestamp`.
    ordered_at: i64,
}

/// A database the benchmark runs on.
enum Database {
    Sqlite { dir: PathBuf },
    Postgres { url: String },
}

/// A connection pool of the plain programs, with the driver the connectors use.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    fn label(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    /// Where a table lives: SQLite copies get a file each, so that no copy grows another's file.
    fn file(&self, name: &str) -> PathBuf {
        match self {
            Database::Sqlite { dir } => dir.join(format!("{name}.db")),
            Database::Postgres { .. } => PathBuf::new(),
        }
    }

    /// The `connection.url` of a connector reaching the database that holds `name`.
    fn connection_url(&self, name: &str) -> String {
        match self {
            Database::Sqlite { .. } => format!("jdbc:sqlite:{}", self.file(name).display()),
            Database::Postgres { url } => url.clone(),
        }
    }

    async fn pool(&self, name: &str) -> Result<Pool, BenchError> {
        Ok(match self {
            Database::Sqlite { .. } => Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        SqliteConnectOptions::new()
                            .filename(self.file(name))
                            .create_if_missing(true)
                            .row_buffer_size(sluice_connectors::jdbc::SQLITE_ROW_BUFFER),
                    )
                    .await?,
            ),
            Database::Postgres { url } => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(sqlx::postgres::PgConnectOptions::from_str(url)?)
                    .await?,
            ),
        })
    }
}

impl Pool {
    async fn execute(&self, sql: &str) -> Result<(), BenchError> {
        match self {
            Pool::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop)?,
            Pool::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Replaces the source table with `rows` generated rows.
    async fn fill_source(&self, rows: usize) -> Result<(), BenchError> {
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        match self {
            Pool::Sqlite(pool) => {
                sqlx::raw_sql(&format!(
                    "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, \
                     customer TEXT NOT NULL, product TEXT NOT NULL, quantity INTEGER NOT NULL, \
                     price REAL NOT NULL, ordered_at TIMESTAMP NOT NULL)"
                ))
                .execute(pool)
                .await?;
                sqlx::query(&format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
                     INSERT INTO {TABLE} SELECT i, 'customer-' || (i % 9973), 'product-' || (i % 101), \
                     i % 17 + 1, (i % 10000) / 100.0, datetime(1700000000 + i, 'unixepoch') FROM n"
                ))
                .bind(rows)
                .execute(pool)
                .await?;
            }
            Pool::Postgres(pool) => {
                sqlx::raw_sql(&format!(
                    "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, \
                     customer TEXT NOT NULL, product TEXT NOT NULL, quantity BIGINT NOT NULL, \
                     price DOUBLE PRECISION NOT NULL, ordered_at TIMESTAMP NOT NULL)"
                ))
                .execute(pool)
                .await?;
                sqlx::query(&format!(
                    "INSERT INTO {TABLE} SELECT i, 'customer-' || (i % 9973), 'product-' || (i % 101), \
                     i % 17 + 1, (i % 10000) / 100.0, \
                     to_timestamp(1700000000 + i) AT TIME ZONE 'UTC' FROM generate_series(1, $1) i"
                ))
                .bind(rows)
                .execute(pool)
                .await?;
                sqlx::raw_sql(&format!("VACUUM ANALYZE {TABLE}"))
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The rows after `last`, by id, at most `limit`: the source task's query in incrementing mode.
    async fn rows_after(&self, last: i64, limit: usize) -> Result<Vec<BenchRow>, BenchError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let select = |placeholder: fn(usize) -> String| {
            format!(
                "SELECT id, customer, product, quantity, price, ordered_at FROM {TABLE} \
                 WHERE id > {} ORDER BY id ASC LIMIT {}",
                placeholder(1),
                placeholder(2)
            )
        };
        fn decode<R: Row>(row: &R) -> Result<BenchRow, sqlx::Error>
        where
            for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> NaiveDateTime: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            Ok(BenchRow {
                id: row.try_get(0)?,
                customer: row.try_get(1)?,
                product: row.try_get(2)?,
                quantity: row.try_get(3)?,
                price: row.try_get(4)?,
                ordered_at: row
                    .try_get::<NaiveDateTime, _>(5)?
                    .and_utc()
                    .timestamp_millis(),
            })
        }
        let rows = match self {
            Pool::Sqlite(pool) => sqlx::query(&select(|_| "?".into()))
                .bind(last)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode)
                .collect::<Result<_, _>>()?,
            Pool::Postgres(pool) => sqlx::query(&select(|i| format!("${i}")))
                .bind(last)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode)
                .collect::<Result<_, _>>()?,
        };
        Ok(rows)
    }

    /// Creates the plain sink's table with the types the JDBC sink creates for these records.
    async fn create_copy(&self, table: &str) -> Result<(), BenchError> {
        let (int, float) = match self {
            Pool::Sqlite(_) => ("INTEGER", "REAL"),
            Pool::Postgres(_) => ("BIGINT", "DOUBLE PRECISION"),
        };
        self.execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id {int}, customer TEXT, \
             product TEXT, quantity {int}, price {float}, ordered_at {int})"
        ))
        .await
    }

    /// Inserts `rows` in one transaction, a statement per row, as the JDBC sink writes a batch.
    async fn insert(&self, table: &str, rows: &[BenchRow]) -> Result<(), BenchError> {
        let insert = |placeholder: fn(usize) -> String| {
            format!(
                "INSERT INTO {table} (id, customer, product, quantity, price, ordered_at) \
                 VALUES ({})",
                (1..=6).map(placeholder).collect::<Vec<_>>().join(", ")
            )
        };
        match self {
            Pool::Sqlite(pool) => {
                let sql = insert(|_| "?".into());
                let mut tx = pool.begin().await?;
                for row in rows {
                    sqlx::query(&sql)
                        .bind(row.id)
                        .bind(&row.customer)
                        .bind(&row.product)
                        .bind(row.quantity)
                        .bind(row.price)
                        .bind(row.ordered_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let sql = insert(|i| format!("${i}"));
                let mut tx = pool.begin().await?;
                for row in rows {
                    sqlx::query(&sql)
                        .bind(row.id)
                        .bind(&row.customer)
                        .bind(&row.product)
                        .bind(row.quantity)
                        .bind(row.price)
                        .bind(row.ordered_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// How many rows `table` holds, with their ids summed: a copy must match the source in both.
    /// `None` while the table does not exist.
    async fn census(&self, table: &str) -> Option<(i64, i64)> {
        let sql = format!("SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS BIGINT) FROM {table}");
        match self {
            Pool::Sqlite(pool) => sqlx::query_as(&sql).fetch_one(pool).await.ok(),
            Pool::Postgres(pool) => sqlx::query_as(&sql).fetch_one(pool).await.ok(),
        }
    }

    /// A cheap look at how far a copy is: SQLite's greatest rowid (the rows of a table nothing
    /// deletes from), PostgreSQL's count.
    async fn copied(&self, table: &str) -> usize {
        let sql = match self {
            Pool::Sqlite(_) => format!("SELECT COALESCE(MAX(rowid), 0) FROM {table}"),
            Pool::Postgres(_) => format!("SELECT COUNT(*) FROM {table}"),
        };
        let found: Result<i64, _> = match self {
            Pool::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await,
        };
        found
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    }
}

struct Round {
    raw_source: Duration,
    sluice_source: Duration,
    source_rss_mb: f64,
    /// Absent with `--sources-only`.
    sink: Option<SinkRound>,
}

struct SinkRound {
    raw: Duration,
    sluice: Duration,
    rss_mb: f64,
}

/// What one round of one database needs.
struct Setup<'a> {
    args: &'a Args,
    runtime: &'a Runtime,
    database: &'a Database,
    bootstrap: &'a str,
    work: &'a Path,
    round: usize,
}

impl Setup<'_> {
    fn topic(&self, side: &str) -> String {
        topic(self.database.label(), side, self.round)
    }

    /// The table a sink of this side writes this round.
    fn copy(&self, side: &str) -> String {
        format!("bench_copy_{side}_{}", self.round)
    }
}

fn topic(database: &str, side: &str, round: usize) -> String {
    format!("{database}-{side}-{round}-{TABLE}")
}

pub fn run(args: Args, history: &HistoryArgs) -> Result<(), BenchError> {
    if args.rows == 0 || args.batch == 0 || args.rounds == 0 || args.partitions < 1 {
        return Err(BenchError::Failed(
            "--rows, --batch, --rounds and --partitions must be positive".into(),
        ));
    }
    let dir = tempfile::tempdir()?;
    let mut databases = vec![Database::Sqlite {
        dir: dir.path().to_owned(),
    }];
    if let Some(url) = &args.postgres {
        databases.push(Database::Postgres { url: url.clone() });
    }
    let topics: Vec<String> = databases
        .iter()
        .flat_map(|db| {
            (0..args.rounds)
                .flat_map(move |round| ["raw", "sluice"].map(|side| topic(db.label(), side, round)))
        })
        .collect();
    let broker = Broker::start(&topics, args.partitions)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "sluice bench jdbc: {} rows of 6 columns, batches of {}, {} partitions, embedded broker at {}",
        args.rows, args.batch, args.partitions, broker.bootstrap
    );
    let mut entry = Entry::new(
        "jdbc",
        &[
            ("rows", args.rows.to_string()),
            ("batch", args.batch.to_string()),
            ("partitions", args.partitions.to_string()),
            ("rounds", args.rounds.to_string()),
            ("sources_only", args.sources_only.to_string()),
            ("postgres", args.postgres.is_some().to_string()),
        ],
    );
    let mut missed = Vec::new();
    for database in &databases {
        let label = database.label();
        let source = runtime.block_on(database.pool("source"))?;
        runtime.block_on(source.fill_source(args.rows))?;
        let expected = runtime.block_on(source.census(TABLE)).ok_or_else(|| {
            BenchError::Failed(format!("{label}: the source table is unreadable"))
        })?;
        let mut rounds = Vec::new();
        for round in 0..args.rounds {
            let work = dir.path().join(format!("{label}-round-{round}"));
            std::fs::create_dir_all(&work)?;
            let setup = Setup {
                args: &args,
                runtime: &runtime,
                database,
                bootstrap: &broker.bootstrap,
                work: &work,
                round,
            };
            let (raw_source, (sluice_source, source_rss_mb)) = in_turn(
                round,
                || raw_source(&setup, &source),
                || sluice_source(&setup),
            )?;
            let sink = match args.sources_only {
                true => None,
                false => {
                    let (raw, (sluice, rss_mb)) = in_turn(
                        round,
                        || raw_sink(&setup, expected),
                        || sluice_sink(&setup, expected),
                    )?;
                    Some(SinkRound {
                        raw,
                        sluice,
                        rss_mb,
                    })
                }
            };
            let r = Round {
                raw_source,
                sluice_source,
                source_rss_mb,
                sink,
            };
            let sink_line = match &r.sink {
                Some(sink) => format!(
                    "; plain sink {:.3} s, sluice sink {:.3} s ({:.2}x); peak RSS sink {:.1} MB",
                    sink.raw.as_secs_f64(),
                    sink.sluice.as_secs_f64(),
                    ratio(sink.raw, sink.sluice),
                    sink.rss_mb,
                ),
                None => String::new(),
            };
            println!(
                "{label} round {}: plain source {:.3} s, sluice source {:.3} s ({:.2}x); peak RSS source {:.1} MB{sink_line}",
                round + 1,
                r.raw_source.as_secs_f64(),
                r.sluice_source.as_secs_f64(),
                ratio(r.raw_source, r.sluice_source),
                r.source_rss_mb,
            );
            rounds.push(r);
        }
        missed.extend(report(label, &rounds, args.rows, &mut entry));
    }
    record(history, &entry)?;
    verdict(&missed)
}

/// Prints one database's medians and puts them in `entry`; returns the targets it missed.
fn report(label: &str, rounds: &[Round], rows: usize, entry: &mut Entry) -> Vec<String> {
    let source = median(rounds.iter().map(|r| ratio(r.raw_source, r.sluice_source)));
    let sinks: Vec<&SinkRound> = rounds.iter().filter_map(|r| r.sink.as_ref()).collect();
    let rss = rounds
        .iter()
        .map(|r| r.source_rss_mb)
        .chain(sinks.iter().map(|s| s.rss_mb))
        .fold(0.0, f64::max);
    let rate = |d: Duration| rows as f64 / d.as_secs_f64() / 1e3;
    println!();
    println!(
        "{label} source: sluice {:.0} k rows/s vs plain sqlx + rdkafka {:.0} k rows/s: ratio {source:.2} (target >= {SOURCE_TARGET})",
        rate(median_duration(rounds, |r| r.sluice_source)),
        rate(median_duration(rounds, |r| r.raw_source)),
    );
    entry.figure(format!("{label}_source_ratio"), source, Better::Higher);
    entry.speed(
        format!("{label}_source_krows_per_s"),
        rate(median_duration(rounds, |r| r.sluice_source)),
    );
    entry.figure(format!("{label}_peak_rss_mb"), rss, Better::Lower);
    let mut missed = Vec::new();
    if source < SOURCE_TARGET {
        missed.push(format!("{label} source ratio"));
    }
    if !sinks.is_empty() {
        let sink = median(sinks.iter().map(|s| ratio(s.raw, s.sluice)));
        println!(
            "{label} sink:   sluice {:.0} k rows/s vs plain rdkafka + sqlx {:.0} k rows/s: ratio {sink:.2} (target >= {SINK_TARGET})",
            rate(median_duration(&sinks, |s| s.sluice)),
            rate(median_duration(&sinks, |s| s.raw)),
        );
        entry.figure(format!("{label}_sink_ratio"), sink, Better::Higher);
        entry.speed(
            format!("{label}_sink_krows_per_s"),
            rate(median_duration(&sinks, |s| s.sluice)),
        );
        if sink < SINK_TARGET {
            missed.push(format!("{label} sink ratio"));
        }
    }
    println!("{label} peak RSS of a worker: {rss:.1} MB");
    println!();
    missed
}

/// The plain source: selects the rows batch by batch, as the source task does in incrementing mode,
/// and produces each as JSON, until every record is acknowledged. Timed from its first select with a
/// ready producer, as the source task is timed from its start (after it connected to the database).
fn raw_source(setup: &Setup<'_>, pool: &Pool) -> Result<Duration, BenchError> {
    let topic = setup.topic("raw");
    let producer = RawProducer::ready(setup.bootstrap, &topic)?;
    let (pool, batch) = (pool.clone(), setup.args.batch);
    let (producer, started) = on_workers(setup.runtime, async move {
        let started = Instant::now();
        let mut last = 0;
        loop {
            let rows = pool.rows_after(last, batch).await?;
            let Some(tail) = rows.last() else {
                break;
            };
            last = tail.id;
            for row in &rows {
                let payload = serde_json::to_vec(row)
                    .map_err(|e| BenchError::Failed(format!("JSON of a row: {e}")))?;
                while !producer.try_send(&topic, &payload)? {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        Ok((producer, started))
    })?;
    producer.acknowledged(started)
}

/// Runs a plain program as a task on the runtime's worker threads, as the worker runs its tasks: a
/// future polled by `block_on` on a thread of its own waits for every answer of the database driver's
/// thread through a thread wake-up, which makes a plain program several times slower.
fn on_workers<T: Send + 'static>(
    runtime: &Runtime,
    program: impl std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
) -> Result<T, BenchError> {
    runtime
        .block_on(runtime.spawn(program))
        .map_err(|e| BenchError::Failed(format!("a plain program panicked: {e}")))?
}

/// The JDBC source in a child worker, timed from its task's start until the topic holds every row.
fn sluice_source(setup: &Setup<'_>) -> Result<(Duration, f64), BenchError> {
    let connector = setup.work.join("source.properties");
    std::fs::write(
        &connector,
        format!(
            "name=bench-jdbc-source\nconnector.class=JdbcSourceConnector\nconnection.url={}\n\
             mode=incrementing\nincrementing.column.name=id\ntable.whitelist={TABLE}\n\
             topic.prefix={}-sluice-{}-\nbatch.max.rows={}\n",
            setup.database.connection_url("source"),
            setup.database.label(),
            setup.round,
            setup.args.batch,
        ),
    )?;
    let ends = TopicEnds::new(
        setup.bootstrap,
        &setup.topic("sluice"),
        setup.args.partitions,
    )?;
    let mut worker = spawn_worker(setup, "source", &connector, "source task started")?;
    let started = worker.ready()?;
    let result = ends.wait_for(started, &mut worker.child, setup.args.rows);
    worker.finish(result, started)
}

/// How often a watcher looks at a worker's progress.
const WATCH: Duration = Duration::from_millis(5);
/// How often a watcher counts a PostgreSQL copy: a count reads the whole table.
const WATCH_COUNT: Duration = Duration::from_millis(100);

/// The plain sink: a member of its own consumer group, with a sink task's client settings, reading
/// the plain source's topic; it inserts what each poll round brings, up to a batch, in one transaction.
/// Timed from its assignment until the last row is committed.
fn raw_sink(setup: &Setup<'_>, expected: (i64, i64)) -> Result<Duration, BenchError> {
    let table = setup.copy("raw");
    let pool = setup.runtime.block_on(setup.database.pool(&table))?;
    setup.runtime.block_on(pool.create_copy(&table))?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", setup.bootstrap)
        .set("group.id", format!("bench-plain-sink-{table}"));
    for (key, value) in CONSUMER_DEFAULTS {
        config.set(*key, *value);
    }
    // A stream consumer is made inside the runtime, which its wake-ups run on.
    let consumer: StreamConsumer<AssignmentClock> = {
        let _runtime = setup.runtime.enter();
        config.create_with_context(AssignmentClock::default())?
    };
    consumer.subscribe(&[&setup.topic("raw")])?;
    let (rows, batch_size) = (setup.args.rows, setup.args.batch);
    let (copy, writer) = (table.clone(), pool.clone());
    let measured = on_workers(setup.runtime, async move {
        let waiting = Instant::now();
        let mut written = 0;
        let mut batch = Vec::with_capacity(batch_size);
        while written < rows {
            // Wait for records while the batch is empty; once it holds some, take only what is ready.
            let next = match batch.is_empty() {
                true => tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await,
                false => tokio::time::timeout(Duration::ZERO, consumer.recv()).await,
            };
            match next {
                Ok(message) => {
                    let message = message?;
                    let row: BenchRow = serde_json::from_slice(
                        message.payload().unwrap_or_default(),
                    )
                    .map_err(|e| BenchError::Failed(format!("a record is not a row: {e}")))?;
                    batch.push(row);
                    if batch.len() < batch_size {
                        continue;
                    }
                }
                Err(_) if batch.is_empty() => {
                    if waiting.elapsed() > PHASE_LIMIT {
                        return Err(BenchError::Failed("the plain sink timed out".into()));
                    }
                    continue;
                }
                Err(_) => {}
            }
            writer.insert(&copy, &batch).await?;
            written += batch.len();
            batch.clear();
        }
        let done = Instant::now();
        Ok(done - consumer.context().assigned().unwrap_or(waiting))
    })?;
    check_copy(setup, &pool, &table, expected)?;
    Ok(measured)
}

/// The JDBC sink in a child worker, timed from its partition assignment until the table holds every
/// row.
fn sluice_sink(setup: &Setup<'_>, expected: (i64, i64)) -> Result<(Duration, f64), BenchError> {
    let table = setup.copy("sluice");
    let pool = setup.runtime.block_on(setup.database.pool(&table))?;
    setup
        .runtime
        .block_on(pool.execute(&format!("DROP TABLE IF EXISTS {table}")))?;
    let connector = setup.work.join("sink.properties");
    std::fs::write(
        &connector,
        format!(
            "name=bench-jdbc-sink\nconnector.class=JdbcSinkConnector\nconnection.url={}\n\
             topics={}\ntable.name.format={table}\nauto.create=true\ninsert.mode=insert\n\
             batch.size={batch}\nconsumer.override.max.poll.records={batch}\n",
            setup.database.connection_url(&table),
            setup.topic("raw"),
            batch = setup.args.batch,
        ),
    )?;
    let every = match setup.database {
        Database::Sqlite { .. } => WATCH,
        Database::Postgres { .. } => WATCH_COUNT,
    };
    let mut worker = spawn_worker(setup, "sink", &connector, "partitions assigned")?;
    let assigned = worker.ready()?;
    let result = wait_until(assigned, &mut worker.child, every, || {
        Ok(setup.runtime.block_on(pool.copied(&table)) >= setup.args.rows)
    });
    let measured = worker.finish(result, assigned)?;
    check_copy(setup, &pool, &table, expected)?;
    Ok(measured)
}

/// A copy must hold the source's rows: as many, with the same ids.
fn check_copy(
    setup: &Setup<'_>,
    pool: &Pool,
    table: &str,
    expected: (i64, i64),
) -> Result<(), BenchError> {
    let found = setup.runtime.block_on(pool.census(table));
    match found == Some(expected) {
        true => Ok(()),
        false => Err(BenchError::Failed(format!(
            "{} table {table} holds (rows, sum of ids) {found:?}, the source {expected:?}",
            setup.database.label()
        ))),
    }
}

fn spawn_worker(
    setup: &Setup<'_>,
    name: &str,
    connector: &Path,
    ready_line: &'static str,
) -> Result<Worker, BenchError> {
    let worker_file = worker_file(
        setup.work,
        name,
        setup.bootstrap,
        "key.converter=org.apache.kafka.connect.storage.StringConverter\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter.schemas.enable=false\n",
    )?;
    Worker::spawn(&worker_file, connector, ready_line)
}
