//! The JDBC source task on a real PostgreSQL server: PostgreSQL's types become Connect's, timestamps
//! with and without a zone are read in `db.timezone`, and the incremental modes resume from their offsets.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/source_task.rs"]
mod source_task;

use std::sync::Arc;

use serde_json::json;
use sluice_connectors::jdbc::source::task::JdbcSourceTask;
use sluice_connectors::jdbc::{JdbcSourceConnector, SqlOpener};
use sluice_core::api::{Connector, ConnectorContext, SourceRecord, SourceTask, SourceTaskContext};
use sluice_core::config::ConfigMap;
use sluice_core::data::{Decimal, Value};
use source_task::{drain, field, Offsets};

fn config(url: &str, pairs: &[(&str, &str)]) -> ConfigMap {
    [
        ("connection.url", url),
        ("topic.prefix", "pg-"),
        ("poll.interval.ms", "10"),
        ("tables", "orders"),
    ]
    .iter()
    .chain(pairs)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn ids(records: &[SourceRecord]) -> Vec<i32> {
    records
        .iter()
        .map(|r| match field(r, "id") {
            Value::Int32(n) => n,
            other => panic!("id {other:?}"),
        })
        .collect()
}

async fn run(url: &str, statements: &[&str]) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    for statement in statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn started(config: ConfigMap, offsets: Arc<Offsets>) -> JdbcSourceTask {
    let mut task = JdbcSourceTask::new(Arc::new(SqlOpener));
    task.start(SourceTaskContext::new(config, offsets))
        .await
        .expect("the task starts");
    task
}

#[tokio::test]
async fn postgres_tables_are_read_with_their_types_and_resumed_from_their_offsets() {
    let server = postgres::Postgres::start();
    let url = server.database("shop").await;
    run(
        &url,
        &[
            "CREATE TABLE orders (id SERIAL PRIMARY KEY, price NUMERIC(10,2) NOT NULL, qty SMALLINT, big BIGINT, paid BOOLEAN, ratio REAL, score DOUBLE PRECISION, day DATE, at_time TIME, created TIMESTAMP NOT NULL, seen TIMESTAMPTZ, photo BYTEA, note VARCHAR(20), code CHAR(3), body TEXT)",
            "INSERT INTO orders (price, qty, big, paid, ratio, score, day, at_time, created, seen, photo, note, code, body) VALUES (12.5, 3, 9000000000, true, 0.5, 0.25, '2024-02-29', '13:45:10.25', '2024-02-29 13:45:10.123456', '2024-02-29 13:45:10.5+02', '\\x00ff', 'hi', 'abc', 'long text')",
            "INSERT INTO orders (price, created) VALUES (7, '2024-03-01 00:00:00')",
        ],
    )
    .await;
    let offsets = Arc::new(Offsets::default());
    let settings = [
        ("mode", "timestamp+incrementing"),
        ("timestamp.column.name", "created"),
        ("db.timezone", "+01:00"),
    ];
    let mut task = started(config(&url, &settings), offsets.clone()).await;
    let records = drain(&mut task).await;
    assert_eq!(ids(&records), [1, 2]);
    let row = &records[0];
    assert_eq!(&*row.topic, "pg-orders");
    assert_eq!(
        field(row, "price"),
        Value::Decimal(Decimal {
            unscaled: 1250,
            scale: 2
        })
    );
    assert_eq!(field(row, "qty"), Value::Int16(3));
    assert_eq!(field(row, "big"), Value::Int64(9_000_000_000));
    assert_eq!(field(row, "paid"), Value::Boolean(true));
    assert_eq!(field(row, "ratio"), Value::Float32(0.5));
    assert_eq!(field(row, "score"), Value::Float64(0.25));
    assert_eq!(field(row, "day"), Value::Date(19_782));
    assert_eq!(field(row, "at_time"), Value::Time(49_510_250));
    // 13:45:10.123456 at +01:00 is 12:45:10.123456 UTC.
    assert_eq!(field(row, "created"), Value::Timestamp(1_709_210_710_123));
    assert_eq!(field(row, "seen"), Value::Timestamp(1_709_207_110_500));
    assert_eq!(field(row, "photo"), Value::Bytes(vec![0, 255]));
    assert_eq!(field(row, "note"), Value::String("hi".into()));
    assert_eq!(field(row, "code"), Value::String("abc".into()));
    assert_eq!(field(&records[1], "note"), Value::Null);
    assert_eq!(
        serde_json::to_value(&row.source_offset).unwrap(),
        json!({"incrementing": 1, "timestamp": 1_709_210_710_123i64, "timestamp_nanos": 123_456_000})
    );
    task.stop().await.unwrap();

    // New rows, one of them with the same timestamp as the committed row: read after it, by its id.
    run(
        &url,
        &["INSERT INTO orders (price, created) VALUES (1, '2024-02-29 13:45:10.123456'), (2, '2024-03-02 00:00:00')"],
    )
    .await;
    offsets.commit(row);
    let mut task = started(config(&url, &settings), offsets).await;
    assert_eq!(ids(&drain(&mut task).await), [3, 2, 4]);
}

#[tokio::test]
async fn postgres_tables_are_found_and_bad_ones_named() {
    let server = postgres::Postgres::start();
    let url = server.database("catalog").await;
    run(
        &url,
        &[
            "CREATE TABLE orders (id SERIAL PRIMARY KEY, total NUMERIC)",
            "CREATE TABLE customers (id BIGSERIAL PRIMARY KEY)",
            "INSERT INTO orders (total) VALUES (1.5), (20)",
        ],
    )
    .await;
    let mut connector = JdbcSourceConnector::new(Arc::new(SqlOpener));
    let mut cfg = config(&url, &[("mode", "incrementing")]);
    cfg.remove("tables");
    connector
        .start(&cfg, ConnectorContext::new("pg"))
        .await
        .unwrap();
    let tables: Vec<String> = connector
        .task_configs(1)
        .iter()
        .map(|c| c["tables"].clone())
        .collect();
    assert_eq!(tables, ["customers,orders"]);

    // A bare NUMERIC keeps each value's own scale.
    let mut task = started(config(&url, &[("mode", "incrementing")]), Arc::default()).await;
    let records = drain(&mut task).await;
    assert_eq!(
        field(&records[0], "total"),
        Value::Decimal(Decimal {
            unscaled: 15,
            scale: 1
        })
    );
    assert_eq!(
        field(&records[1], "total"),
        Value::Decimal(Decimal {
            unscaled: 20,
            scale: 0
        })
    );

    let mut task = JdbcSourceTask::new(Arc::new(SqlOpener));
    let e = task
        .start(SourceTaskContext::new(
            config(&url, &[("mode", "incrementing"), ("tables", "ordrs")]),
            Arc::<Offsets>::default(),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"ordrs\""), "{e}");

    // A server nobody listens on: out of reach, named, after the configured attempts.
    let mut unreachable = config(
        "jdbc:postgresql://127.0.0.1:1/shop?user=sluice&password=topsecret",
        &[
            ("mode", "bulk"),
            ("connection.attempts", "2"),
            ("connection.backoff.ms", "10"),
        ],
    );
    unreachable.remove("tables");
    let e = connector
        .start(&unreachable, ConnectorContext::new("pg"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot reach the database at jdbc:postgresql://127.0.0.1:1/shop"),
        "{e}"
    );
    assert!(!e.contains("topsecret"), "{e}");
}

#[tokio::test]
async fn postgres_is_read_over_tls_verified_against_the_given_ca() {
    let server = postgres::Postgres::start_with_tls();
    let url = server.database("secure").await;
    run(
        &url,
        &[
            "CREATE TABLE orders (id SERIAL PRIMARY KEY, note TEXT)",
            "INSERT INTO orders (note) VALUES ('a'), ('b')",
        ],
    )
    .await;
    let address = url.split('?').next().expect("a URL");
    let ca = postgres::tls_fixture("ca.pem");
    let verified = format!(
        "jdbc:{}?sslmode=verify-full&sslrootcert={}",
        address.replace("postgres://", "postgresql://"),
        ca.display()
    );
    let settings = [("mode", "incrementing"), ("incrementing.column.name", "id")];
    let offsets = Arc::new(Offsets::default());
    let mut task = started(config(&verified, &settings), offsets.clone()).await;
    assert_eq!(ids(&drain(&mut task).await), [1, 2]);
    task.stop().await.unwrap();

    // The server refuses connections without TLS, so the read above was encrypted.
    let refused = |url: String| async move {
        let mut task = JdbcSourceTask::new(Arc::new(SqlOpener));
        let config = config(&url, &[("mode", "bulk"), ("connection.attempts", "1")]);
        match task
            .start(SourceTaskContext::new(config, Arc::new(Offsets::default())))
            .await
        {
            Ok(()) => panic!("{url}: connected"),
            Err(e) => e.to_string(),
        }
    };
    let plain = refused(format!("{address}?sslmode=disable")).await;
    assert!(plain.contains("no encryption"), "{plain}");
    // A certificate the machine's roots do not vouch for is refused under verify-full.
    let unverified = refused(format!("{address}?sslmode=verify-full")).await;
    assert!(
        unverified.to_lowercase().contains("certificate"),
        "{unverified}"
    );
}
