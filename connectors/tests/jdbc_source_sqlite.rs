//! The JDBC source task on real SQLite files: each mode reads what it should, resumes from Confluent's
//! offsets, maps SQL types to Connect's, and names what is wrong with a bad config or table.

#[path = "support/source_task.rs"]
mod source_task;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_connectors::jdbc::source::task::JdbcSourceTask;
use sluice_connectors::jdbc::{JdbcSourceConnector, SqlOpener};
use sluice_core::api::{
    Connector, ConnectorContext, ConnectorRequest, SourceMap, SourceRecord, SourceTask,
    SourceTaskContext,
};
use sluice_core::config::ConfigMap;
use sluice_core::data::{Decimal, Value};
use source_task::{drain, field, Offsets};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

struct Db {
    _dir: tempfile::TempDir,
    url: String,
    pool: SqlitePool,
}

async fn database(statements: &[&str]) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let db = Db {
        url: format!("jdbc:sqlite:{}", path.display()),
        _dir: dir,
        pool,
    };
    db.run(statements).await;
    db
}

impl Db {
    async fn run(&self, statements: &[&str]) {
        for statement in statements {
            sqlx::query(statement).execute(&self.pool).await.unwrap();
        }
    }
}

fn config(db: &Db, pairs: &[(&str, &str)]) -> ConfigMap {
    let mut config: ConfigMap = [
        ("connection.url", db.url.as_str()),
        ("topic.prefix", "shop-"),
        ("poll.interval.ms", "10"),
    ]
    .iter()
    .chain(pairs)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    config
        .entry("tables".into())
        .or_insert_with(|| "orders".into());
    config
}

async fn started(config: ConfigMap, offsets: Arc<Offsets>) -> Result<JdbcSourceTask, String> {
    let mut task = JdbcSourceTask::new(Arc::new(SqlOpener));
    task.start(SourceTaskContext::new(config, offsets))
        .await
        .map_err(|e| e.to_string())?;
    Ok(task)
}

fn ids(records: &[SourceRecord]) -> Vec<i64> {
    records
        .iter()
        .map(|r| match field(r, "id") {
            Value::Int64(n) => n,
            other => panic!("id {other:?}"),
        })
        .collect()
}

fn offset_json(record: &SourceRecord) -> serde_json::Value {
    serde_json::to_value(&record.source_offset).unwrap()
}

#[tokio::test]
async fn incrementing_mode_reads_new_rows_and_resumes_from_confluents_offset() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
        "INSERT INTO orders (item) VALUES ('tea'), ('milk'), ('bread')",
    ])
    .await;
    let offsets = Arc::new(Offsets::default());
    let mut task = started(config(&db, &[("mode", "incrementing")]), offsets.clone())
        .await
        .unwrap();
    let first = drain(&mut task).await;
    assert_eq!(ids(&first), [1, 2, 3]);
    let record = &first[2];
    assert_eq!(&*record.topic, "shop-orders");
    assert_eq!(
        serde_json::to_value(&record.source_partition).unwrap(),
        json!({"protocol": "1", "table": "orders"})
    );
    assert_eq!(offset_json(record), json!({"incrementing": 3}));
    assert_eq!(field(record, "item"), Value::String("bread".into()));
    assert_eq!(
        record.value.schema.as_ref().unwrap().name.as_deref(),
        Some("orders")
    );

    db.run(&["INSERT INTO orders (item) VALUES ('jam'), ('eggs')"])
        .await;
    assert_eq!(ids(&drain(&mut task).await), [4, 5]);
    task.stop().await.unwrap();

    // A restart resumes after the committed offset, even one written as Confluent's connector writes it.
    offsets.0.lock().unwrap().push((
        SourceMap::new(
            json!({"protocol": "1", "table": "orders"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        SourceMap::new(json!({"incrementing": 2}).as_object().unwrap().clone()),
    ));
    let mut task = started(config(&db, &[("mode", "incrementing")]), offsets)
        .await
        .unwrap();
    assert_eq!(ids(&drain(&mut task).await), [3, 4, 5]);
}

#[tokio::test]
async fn a_restart_inside_a_run_of_equal_timestamps_reads_the_rest() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, at DATETIME NOT NULL)",
        "INSERT INTO orders (at) VALUES ('2024-01-01 10:00:00.000001'), ('2024-01-01 10:00:00.000002'), ('2024-01-01 10:00:00.000002'), ('2024-01-01 10:00:00.000002'), ('2024-01-01 10:00:00.000003')",
    ])
    .await;
    let offsets = Arc::new(Offsets::default());
    let settings = [
        ("mode", "timestamp"),
        ("timestamp.column.name", "at"),
        ("batch.max.rows", "2"),
    ];
    let mut task = started(config(&db, &settings), offsets.clone())
        .await
        .unwrap();
    let records = drain(&mut task).await;
    assert_eq!(
        ids(&records),
        [1, 2, 3, 4, 5],
        "no row skipped, none read twice"
    );
    // Within the run of .000002, only its last row moves the offset to it.
    let micros = |r: &SourceRecord| offset_json(r)["timestamp_nanos"].as_i64().unwrap() / 1_000;
    assert_eq!(
        records.iter().map(micros).collect::<Vec<_>>(),
        [1, 1, 1, 2, 3]
    );
    task.stop().await.unwrap();

    // Committed up to the middle of the run: the restart reads all of it again, skipping none.
    offsets.commit(&records[2]);
    let mut task = started(config(&db, &settings), offsets).await.unwrap();
    assert_eq!(ids(&drain(&mut task).await), [2, 3, 4, 5]);
}

#[tokio::test]
async fn timestamp_and_incrementing_resume_exactly_with_nanoseconds() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, updated DATETIME, created DATETIME NOT NULL)",
        "INSERT INTO orders (updated, created) VALUES (NULL, '2024-01-01 10:00:00.123456789'), ('2024-01-01 10:00:00.123456789', '2023-01-01 00:00:00'), (NULL, '2024-01-01 10:00:00.123456789'), (NULL, '2024-01-02 00:00:00')",
    ])
    .await;
    let offsets = Arc::new(Offsets::default());
    let settings = [
        ("mode", "timestamp+incrementing"),
        ("timestamp.column.name", "updated,created"),
        ("incrementing.column.name", "id"),
    ];
    let mut task = started(config(&db, &settings), offsets.clone())
        .await
        .unwrap();
    let records = drain(&mut task).await;
    assert_eq!(ids(&records), [1, 2, 3, 4]);
    assert_eq!(
        offset_json(&records[1]),
        json!({"incrementing": 2, "timestamp": 1_704_103_200_123i64, "timestamp_nanos": 123_456_789})
    );
    task.stop().await.unwrap();
    offsets.commit(&records[1]);
    let mut task = started(config(&db, &settings), offsets).await.unwrap();
    assert_eq!(
        ids(&drain(&mut task).await),
        [3, 4],
        "exactly after row 2, by its nanoseconds"
    );
}

#[tokio::test]
async fn sql_types_become_connect_types() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, price DECIMAL(10,2) NOT NULL, qty SMALLINT, paid BOOLEAN, day DATE, at_time TIME, at DATETIME, photo BLOB, note VARCHAR(20), ratio REAL)",
        "INSERT INTO orders VALUES (1, '12.5', 3, 1, '2024-02-29', '13:45:10.250', '2024-02-29 13:45:10.250', x'00ff', 'hi', 0.5)",
        "INSERT INTO orders (id, price) VALUES (2, 7)",
    ])
    .await;
    let mut task = started(config(&db, &[("mode", "bulk")]), Arc::default())
        .await
        .unwrap();
    let records = task.poll().await.unwrap();
    assert_eq!(records.len(), 2);
    let row = &records[0];
    assert_eq!(
        field(row, "price"),
        Value::Decimal(Decimal {
            unscaled: 1250,
            scale: 2
        })
    );
    assert_eq!(field(row, "qty"), Value::Int16(3));
    assert_eq!(field(row, "paid"), Value::Boolean(true));
    assert_eq!(field(row, "day"), Value::Date(19_782));
    assert_eq!(field(row, "at_time"), Value::Time(49_510_250));
    assert_eq!(field(row, "at"), Value::Timestamp(1_709_214_310_250));
    assert_eq!(field(row, "photo"), Value::Bytes(vec![0, 255]));
    assert_eq!(field(row, "note"), Value::String("hi".into()));
    assert_eq!(field(row, "ratio"), Value::Float64(0.5));
    let schema = row.value.schema.as_ref().unwrap();
    assert!(!schema.field("price").unwrap().schema.optional);
    assert!(schema.field("note").unwrap().schema.optional);
    assert_eq!(field(&records[1], "note"), Value::Null);
    assert_eq!(
        field(&records[1], "price"),
        Value::Decimal(Decimal {
            unscaled: 700,
            scale: 2
        })
    );
    assert!(
        records[0].source_offset.is_empty(),
        "bulk mode keeps no offset"
    );
}

#[tokio::test]
async fn a_query_with_its_own_where_clause_reads_incrementally() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL)",
        "INSERT INTO orders (status) VALUES ('paid'), ('open'), ('paid')",
    ])
    .await;
    let settings = [
        ("mode", "incrementing"),
        ("incrementing.column.name", "id"),
        (
            "query",
            "SELECT id, status FROM orders WHERE status = 'paid'",
        ),
        ("topic.prefix", "paid-orders"),
    ];
    let mut config = config(&db, &settings);
    config.remove("tables");
    let mut task = started(config, Arc::default()).await.unwrap();
    let records = drain(&mut task).await;
    assert_eq!(ids(&records), [1, 3]);
    assert_eq!(&*records[0].topic, "paid-orders");
    assert_eq!(
        serde_json::to_value(&records[0].source_partition).unwrap(),
        json!({"query": "query"})
    );
    db.run(&["INSERT INTO orders (status) VALUES ('open'), ('paid')"])
        .await;
    assert_eq!(ids(&drain(&mut task).await), [5]);
}

#[tokio::test]
async fn bad_tables_and_columns_are_named() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, code TEXT NOT NULL, at DATETIME, n INTEGER)",
        "CREATE TABLE events (a INTEGER, b INTEGER, PRIMARY KEY (a, b))",
    ])
    .await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("mode", "incrementing"),
                ("incrementing.column.name", "nope"),
            ],
            "has no column \"nope\"",
        ),
        (
            &[
                ("mode", "incrementing"),
                ("incrementing.column.name", "code"),
            ],
            "not an integer",
        ),
        (
            &[("mode", "incrementing"), ("incrementing.column.name", "n")],
            "\"n\" is nullable",
        ),
        (
            &[("mode", "timestamp"), ("timestamp.column.name", "at")],
            "\"at\" is nullable",
        ),
        (
            &[("mode", "timestamp"), ("timestamp.column.name", "code")],
            "not a timestamp",
        ),
        (
            &[("mode", "incrementing"), ("tables", "events")],
            "no single integer primary key",
        ),
        (&[("mode", "bulk"), ("tables", "ghosts")], "ghosts"),
        (&[("mode", "timestamp")], "timestamp.column.name"),
    ];
    for (pairs, expected) in cases {
        let e = started(config(&db, pairs), Arc::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("{pairs:?} started"));
        assert!(e.contains(expected), "{pairs:?}: {e}");
    }
    assert!(started(
        config(
            &db,
            &[
                ("mode", "incrementing"),
                ("incrementing.column.name", "n"),
                ("validate.non.null", "false")
            ]
        ),
        Arc::default()
    )
    .await
    .is_ok());

    // The connector names a listed table the database does not have, and a file that is not there.
    let mut connector = JdbcSourceConnector::new(Arc::new(SqlOpener));
    let mut listed = config(
        &db,
        &[("mode", "bulk"), ("table.whitelist", "orders,ordres")],
    );
    listed.remove("tables");
    let e = connector
        .start(&listed, ConnectorContext::new("shop"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table.whitelist") && e.contains("\"ordres\""),
        "{e}"
    );
    let mut missing = listed.clone();
    missing.insert(
        "connection.url".into(),
        "jdbc:sqlite:/nonexistent/shop.db".into(),
    );
    missing.remove("table.whitelist");
    let e = connector
        .start(&missing, ConnectorContext::new("shop"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no SQLite database file at /nonexistent/shop.db"),
        "{e}"
    );
    let mut wrong = missing.clone();
    wrong.insert(
        "connection.url".into(),
        "jdbc:oracle:thin:@db:1521:shop".into(),
    );
    let e = connector
        .start(&wrong, ConnectorContext::new("shop"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a SQLite or PostgreSQL URL"), "{e}");
}

#[tokio::test]
async fn incrementing_values_below_the_committed_offset_are_an_error() {
    let db = database(&[
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)",
        "INSERT INTO orders (item) VALUES ('tea')",
    ])
    .await;
    let offsets = Arc::new(Offsets::default());
    offsets.0.lock().unwrap().push((
        SourceMap::new(
            json!({"protocol": "1", "table": "orders"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        SourceMap::new(json!({"incrementing": 40}).as_object().unwrap().clone()),
    ));
    let e = started(config(&db, &[("mode", "incrementing")]), offsets)
        .await
        .err()
        .unwrap();
    assert!(e.contains("went backwards") && e.contains("\"id\""), "{e}");
}

#[tokio::test]
async fn tables_are_spread_over_at_most_tasks_max_tasks() {
    let db = database(&[
        "CREATE TABLE a (id INTEGER PRIMARY KEY)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY)",
        "CREATE TABLE c (id INTEGER PRIMARY KEY)",
        "CREATE TABLE skip_me (id INTEGER PRIMARY KEY)",
    ])
    .await;
    let mut connector = JdbcSourceConnector::new(Arc::new(SqlOpener));
    let mut cfg = config(
        &db,
        &[("mode", "incrementing"), ("table.exclude.list", "skip_.*")],
    );
    cfg.remove("tables");
    connector
        .start(&cfg, ConnectorContext::new("shop"))
        .await
        .unwrap();
    let tables = |n| -> Vec<String> {
        connector
            .task_configs(n)
            .iter()
            .map(|c| c["tables"].clone())
            .collect()
    };
    assert_eq!(tables(2), ["a,b", "c"]);
    assert_eq!(tables(8), ["a", "b", "c"]);
    assert_eq!(tables(1), ["a,b,c"]);
}

#[tokio::test]
async fn tables_that_appear_or_disappear_ask_for_new_task_configs() {
    let db = database(&["CREATE TABLE a (id INTEGER PRIMARY KEY)"]).await;
    let (requests, mut requested) = tokio::sync::mpsc::unbounded_channel();
    let context = ConnectorContext::with_requests("shop", move |request| {
        let _ = requests.send(request);
    });
    let mut connector = JdbcSourceConnector::new(Arc::new(SqlOpener));
    let mut cfg = config(
        &db,
        &[("mode", "incrementing"), ("table.poll.interval.ms", "20")],
    );
    cfg.remove("tables");
    connector.start(&cfg, context).await.unwrap();
    let tables = |connector: &JdbcSourceConnector| -> Vec<String> {
        connector
            .task_configs(2)
            .iter()
            .map(|c| c["tables"].clone())
            .collect()
    };
    assert_eq!(tables(&connector), ["a"]);
    db.run(&["CREATE TABLE b (id INTEGER PRIMARY KEY)"]).await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), requested.recv()).await,
        Ok(Some(ConnectorRequest::Reconfigure))
    );
    assert_eq!(tables(&connector), ["a", "b"]);

    db.run(&["DROP TABLE a"]).await;
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), requested.recv()).await,
        Ok(Some(ConnectorRequest::Reconfigure))
    );
    assert_eq!(tables(&connector), ["b"]);

    // Nothing changed: nothing asked.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), requested.recv())
            .await
            .is_err()
    );
    connector.stop().await.unwrap();
}
