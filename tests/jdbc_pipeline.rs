//! The JDBC connectors on real processes: `sluice standalone` copies a table through a topic into another
//! table, on SQLite files (the quickstart's configs) and on a real PostgreSQL server, with new rows and
//! updates while it runs, and a clean stop and a `kill -9` in between, losing and doubling nothing.

mod common;
#[path = "../connectors/tests/support/postgres.rs"]
mod postgres;

use std::future::Future;
use std::path::Path;

use common::{wait_until, Dir, Props, Worker};

fn block_on<F: Future>(future: F) -> F::Output {
    sqlx::any::install_default_drivers();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// The rows of a query, each column as text (NULL as "NULL"); a table that is not there has none.
fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    block_on(async {
        let mut connection = match <sqlx::AnyConnection as sqlx::Connection>::connect(url).await {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        let Ok(rows) = sqlx::query(sql).fetch_all(&mut connection).await else {
            return Vec::new();
        };
        use sqlx::{Row, ValueRef};
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if row.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true) {
                            "NULL".to_owned()
                        } else {
                            row.try_get::<String, _>(i)
                                .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                                .or_else(|_| row.try_get::<i32, _>(i).map(|n| n.to_string()))
                                .or_else(|_| row.try_get::<f64, _>(i).map(|n| n.to_string()))
                                .unwrap_or_else(|e| format!("<{e}>"))
                        }
                    })
                    .collect()
            })
            .collect()
    })
}

fn execute(url: &str, statements: &[&str]) {
    block_on(async {
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .expect("connect");
        for statement in statements {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    })
}

/// Timestamps as text, without trailing zeros in their fraction ("…07.001000" and "…07.001" alike).
fn normalized(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|cell| match cell.split_once('.') {
                    Some((head, fraction)) if head.len() == 19 && head.as_bytes()[10] == b' ' => {
                        let fraction = fraction.trim_end_matches('0');
                        if fraction.is_empty() {
                            head.to_owned()
                        } else {
                            format!("{head}.{fraction}")
                        }
                    }
                    _ => cell,
                })
                .collect()
        })
        .collect()
}

fn count(url: &str, table: &str) -> usize {
    rows(url, &format!("SELECT COUNT(*) FROM {table}"))
        .first()
        .and_then(|row| row[0].parse().ok())
        .unwrap_or(0)
}

fn wait_for_rows(url: &str, table: &str, n: usize, worker: &Worker) {
    wait_until(
        &format!("{n} rows in {table}"),
        || count(url, table) == n,
        || format!("{} rows so far\n{}", count(url, table), worker.report()),
    );
}

/// A worker of JSON records with their schemas; on `bootstrap`, or on its own embedded broker.
fn json_worker(dir: &Dir, bootstrap: Option<&str>) -> std::path::PathBuf {
    let mut props = Props::default()
        .set(
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        )
        .set(
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        )
        .set(
            "offset.storage.file.filename",
            dir.path("offsets").display(),
        )
        .set("offset.flush.interval.ms", 500)
        .set("listeners", "http://127.0.0.1:0");
    if let Some(bootstrap) = bootstrap {
        props = props.set("bootstrap.servers", bootstrap);
    }
    dir.write_properties("worker.properties", &common::short_sessions(props))
}

/// The quickstart's configs, pointed at this test's files.
fn quickstart(dir: &Dir, source_db: &Path, copy: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let read = |name: &str| {
        std::fs::read_to_string(Path::new("fixtures/jdbc").join(name)).expect("a quickstart file")
    };
    let source = read("source.properties")
        .replace(
            "jdbc:sqlite:fixtures/jdbc/shop.db",
            &format!("jdbc:sqlite:{}", source_db.display()),
        )
        .replace("poll.interval.ms=1000", "poll.interval.ms=200");
    let sink = read("sink.properties").replace("jdbc:sqlite:/tmp/sluice-jdbc-quickstart.db", copy);
    assert!(source.contains(&source_db.display().to_string()) && sink.contains(copy));
    (
        dir.write("source.properties", source),
        dir.write("sink.properties", sink),
    )
}

const ORDERS: &str =
    "SELECT id, customer, CAST(total AS TEXT), placed_at, note FROM orders ORDER BY id";

#[test]
fn the_quickstart_copies_a_sqlite_table_and_keeps_copying_across_restarts() {
    let dir = Dir::new();
    let source_db = dir.path("shop.db");
    std::fs::copy("fixtures/jdbc/shop.db", &source_db).expect("copy the fixture database");
    let source_url = format!("sqlite:{}", source_db.display());
    let copy_url = format!("sqlite:{}", dir.path("copy.db").display());
    let (source, sink) = quickstart(&dir, &source_db, &format!("jdbc:{copy_url}"));
    // A broker that outlives the workers, as a Kafka cluster does: the sink's offsets kept in the copy
    // name positions in its topic.
    let broker = common::Broker::start(&dir, &["shop-orders:4"]);
    let worker_file = json_worker(&dir, Some(broker.bootstrap()));

    let worker = Worker::start(&dir, "first", &worker_file, &[&source, &sink]);
    wait_for_rows(&copy_url, "orders", 1_000, &worker);
    execute(
        &source_url,
        &["INSERT INTO orders VALUES (1001, 'late', '0.10', '2026-02-01 00:00:00.5', 'x'), (1002, 'later', '12.00', '2026-02-02 00:00:00', NULL)"],
    );
    wait_for_rows(&copy_url, "orders", 1_002, &worker);
    worker.stop();

    // Rows written while no worker ran are read after the committed offset.
    execute(
        &source_url,
        &["INSERT INTO orders VALUES (1003, 'offline', '3.30', '2026-02-03 00:00:00', NULL)"],
    );
    let mut worker = Worker::start(&dir, "second", &worker_file, &[&source, &sink]);
    wait_for_rows(&copy_url, "orders", 1_003, &worker);
    worker.assert_running();
    worker.stop();
    assert_eq!(
        normalized(rows(&copy_url, ORDERS)),
        normalized(rows(&source_url, ORDERS))
    );
    // The sink's offsets, kept with the rows, say every record of the topic was written.
    let kept = rows(
        &copy_url,
        "SELECT SUM(next_offset) FROM __sluice_sink_offsets",
    );
    assert_eq!(kept, [["1003"]], "one record per row, each written once");
}

#[test]
fn a_postgres_table_is_copied_with_its_updates_through_a_crash() {
    let server = postgres::Postgres::start();
    let (source_url, copy_url) =
        block_on(async { (server.database("shop").await, server.database("copy").await) });
    execute(
        &source_url,
        &[
            "CREATE TABLE orders (id SERIAL PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC(10,2) NOT NULL, updated_at TIMESTAMP(6) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'), note TEXT)",
            "INSERT INTO orders (customer, total) SELECT 'customer-' || n, n * 1.25 FROM generate_series(1, 200) AS n",
        ],
    );
    let dir = Dir::new();
    let broker = common::Broker::start(&dir, &["pg-orders:4"]);
    let worker_file = json_worker(&dir, Some(broker.bootstrap()));
    let source = dir.write_properties(
        "source.properties",
        &Props::default()
            .set("name", "pg-source")
            .set(
                "connector.class",
                "io.confluent.connect.jdbc.JdbcSourceConnector",
            )
            .set(
                "connection.url",
                source_url.replace("postgres://", "jdbc:postgresql://"),
            )
            .set("mode", "timestamp+incrementing")
            .set("timestamp.column.name", "updated_at")
            .set("incrementing.column.name", "id")
            .set("timestamp.delay.interval.ms", 100)
            .set("table.whitelist", "orders")
            .set("topic.prefix", "pg-")
            .set("poll.interval.ms", 200),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &Props::default()
            .set("name", "pg-sink")
            .set(
                "connector.class",
                "io.confluent.connect.jdbc.JdbcSinkConnector",
            )
            .set("topics", "pg-orders")
            .set("connection.url", &copy_url)
            .set("table.name.format", "orders")
            .set("insert.mode", "upsert")
            .set("pk.mode", "record_value")
            .set("pk.fields", "id")
            .set("auto.create", true)
            .set("auto.evolve", true),
    );
    let pg_orders = "SELECT id, customer, CAST(total AS TEXT), note FROM orders ORDER BY id";

    let worker = Worker::start(&dir, "first", &worker_file, &[&source, &sink]);
    wait_for_rows(&copy_url, "orders", 200, &worker);
    // Updated rows are read again by their new timestamps and replace their copies.
    execute(
        &source_url,
        &["UPDATE orders SET note = 'changed', updated_at = now() AT TIME ZONE 'UTC' WHERE id % 20 = 0"],
    );
    wait_until(
        "the updates in the copy",
        || count(&copy_url, "orders WHERE note = 'changed'") == 10,
        || worker.report(),
    );
    worker.crash();

    execute(
        &source_url,
        &["INSERT INTO orders (customer, total) SELECT 'after-' || n, n FROM generate_series(1, 50) AS n"],
    );
    let worker = Worker::start(&dir, "second", &worker_file, &[&source, &sink]);
    wait_for_rows(&copy_url, "orders", 250, &worker);
    worker.stop();
    assert_eq!(rows(&copy_url, pg_orders), rows(&source_url, pg_orders));
}

/// A table created while the worker runs is found within `table.poll.interval.ms`: the runtime stops
/// the source's tasks cleanly, asks the connector for its task configs again and starts the new tasks,
/// which resume the old tables from their offsets (no row copied twice) and read the new one.
#[test]
fn a_table_created_while_running_is_found_and_copied_without_duplicates() {
    let dir = Dir::new();
    let source_url = format!("sqlite:{}", dir.path("live.db").display());
    let copy_url = format!("sqlite:{}", dir.path("copy.db").display());
    execute(
        &format!("{source_url}?mode=rwc"),
        &[
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
            "INSERT INTO orders (item) VALUES ('tea'), ('milk'), ('bread')",
        ],
    );
    let broker = common::Broker::start(&dir, &["live-orders:2", "live-refunds:2"]);
    let worker_file = json_worker(&dir, Some(broker.bootstrap()));
    let source = dir.write_properties(
        "source.properties",
        &Props::default()
            .set("name", "live-source")
            .set("connector.class", "JdbcSourceConnector")
            .set("connection.url", format!("jdbc:{source_url}"))
            .set("mode", "incrementing")
            .set("topic.prefix", "live-")
            .set("tasks.max", 2)
            .set("poll.interval.ms", 200)
            .set("table.poll.interval.ms", 500),
    );
    let sink = dir.write_properties(
        "sink.properties",
        &Props::default()
            .set("name", "live-sink")
            .set("connector.class", "JdbcSink")
            .set("topics", "live-orders,live-refunds")
            .set("connection.url", format!("jdbc:{copy_url}"))
            .set("auto.create", true)
            .set("exactly.once.enabled", true),
    );
    let worker = Worker::start(&dir, "worker", &worker_file, &[&source, &sink]);
    wait_for_rows(&copy_url, "\"live-orders\"", 3, &worker);

    execute(
        &source_url,
        &[
            "CREATE TABLE refunds (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL)",
            "INSERT INTO refunds (amount) VALUES (5), (7)",
            "INSERT INTO orders (item) VALUES ('jam')",
        ],
    );
    wait_for_rows(&copy_url, "\"live-refunds\"", 2, &worker);
    wait_for_rows(&copy_url, "\"live-orders\"", 4, &worker);
    worker.wait_for_log("task configs changed");
    let logs = worker.stop();
    assert!(logs.contains("the database's tables changed"), "{logs}");
    assert_eq!(
        rows(
            &copy_url,
            "SELECT id, item FROM \"live-orders\" ORDER BY id"
        ),
        rows(&source_url, "SELECT id, item FROM orders ORDER BY id"),
        "every order once"
    );
}
