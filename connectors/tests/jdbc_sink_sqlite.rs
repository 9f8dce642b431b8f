//! The JDBC sink task on real SQLite files: inserts, upserts, updates and deletes by key, tables created
//! and widened from the records, one transaction per batch, and the exactly-once option's offsets read
//! back when partitions are assigned.

use std::sync::Arc;

use sluice_connectors::jdbc::sink::JdbcSinkTask;
use sluice_connectors::jdbc::SqlOpener;
use sluice_core::api::{SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use sluice_core::config::ConfigMap;
use sluice_core::data::{logical, Data, Decimal, Schema, SchemaBuilder, SchemaType, Struct, Value};
use sqlx::sqlite::SqlitePool;

struct Out {
    dir: tempfile::TempDir,
}

impl Out {
    fn new() -> Out {
        Out {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("jdbc:sqlite:{}", self.dir.path().join("out.db").display())
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let pool = SqlitePool::connect(&format!(
            "sqlite:{}",
            self.dir.path().join("out.db").display()
        ))
        .await
        .unwrap();
        let rows: Vec<sqlx::sqlite::SqliteRow> = sqlx::query(sql).fetch_all(&pool).await.unwrap();
        use sqlx::{Row, ValueRef};
        let out = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if row.try_get_raw(i).unwrap().is_null() {
                            "NULL".to_owned()
                        } else {
                            row.try_get::<String, _>(i)
                                .or_else(|_| row.try_get::<i64, _>(i).map(|n| n.to_string()))
                                .or_else(|_| row.try_get::<f64, _>(i).map(|n| n.to_string()))
                                .unwrap()
                        }
                    })
                    .collect()
            })
            .collect();
        pool.close().await;
        out
    }
}

fn config(out: &Out, pairs: &[(&str, &str)]) -> ConfigMap {
    let url = out.url();
    [("connection.url", url.as_str()), ("name", "orders-sink")]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn order_schema(with_note: bool) -> Arc<Schema> {
    let mut builder = SchemaBuilder::struct_()
        .name("order")
        .field("id", Schema::primitive(SchemaType::Int64))
        .field("total", logical::decimal(2).build());
    if with_note {
        builder = builder.field("note", Schema::optional(SchemaType::String));
    }
    Arc::new(builder.build())
}

fn order(offset: i64, id: i64, cents: i128, note: Option<&str>) -> SinkRecord {
    let schema = order_schema(note.is_some());
    let mut value = Struct::new(schema.clone());
    value.put("id", Value::Int64(id));
    value.put(
        "total",
        Value::Decimal(Decimal {
            unscaled: cents,
            scale: 2,
        }),
    );
    if let Some(note) = note {
        value.put("note", Value::String(note.into()));
    }
    SinkRecord {
        topic: "orders".into(),
        partition: 0,
        kafka_offset: offset,
        key: Data::string(format!("order-{id}")),
        value: Data::new(Some(schema), Value::Struct(value)),
        headers: Vec::new(),
        timestamp: None,
    }
}

fn tombstone(offset: i64, id: i64) -> SinkRecord {
    SinkRecord {
        value: Data::NULL,
        ..order(offset, id, 0, None)
    }
}

async fn started(config: ConfigMap) -> JdbcSinkTask {
    let mut task = JdbcSinkTask::new(Arc::new(SqlOpener));
    task.start(SinkTaskContext::new(config))
        .await
        .expect("the task starts");
    task
}

#[tokio::test]
async fn upserts_keep_the_last_value_per_key_and_tombstones_delete() {
    let out = Out::new();
    let mut task = started(config(
        &out,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("pk.fields", "order_key"),
            ("auto.create", "true"),
            ("delete.enabled", "true"),
        ],
    ))
    .await;
    task.put(vec![
        order(0, 1, 1250, None),
        order(1, 2, 300, None),
        order(2, 1, 1399, None),
    ])
    .await
    .unwrap();
    task.put(vec![tombstone(3, 2)]).await.unwrap();
    assert_eq!(
        out.rows("SELECT order_key, id, total FROM orders ORDER BY order_key")
            .await,
        [["order-1", "1", "13.99"]]
    );
}

#[tokio::test]
async fn tables_are_created_and_widened_only_when_allowed() {
    let out = Out::new();
    let mut task = started(config(&out, &[])).await;
    let e = task
        .put(vec![order(0, 1, 100, None)])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table \"orders\" does not exist") && e.contains("auto.create"),
        "{e}"
    );

    let mut task = started(config(&out, &[("auto.create", "true")])).await;
    task.put(vec![order(0, 1, 100, None)]).await.unwrap();
    let e = task
        .put(vec![order(1, 2, 200, Some("gift"))])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no column \"note\"") && e.contains("auto.evolve"),
        "{e}"
    );

    let mut task = started(config(&out, &[("auto.evolve", "true")])).await;
    task.put(vec![order(1, 2, 200, Some("gift"))])
        .await
        .unwrap();
    assert_eq!(
        out.rows("SELECT id, total, note FROM orders ORDER BY id")
            .await,
        [["1", "1", "NULL"], ["2", "2", "gift"]]
    );
}

#[tokio::test]
async fn update_mode_changes_rows_by_value_field_and_inserts_none() {
    let out = Out::new();
    let mut task = started(config(
        &out,
        &[
            ("auto.create", "true"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ],
    ))
    .await;
    task.put(vec![order(0, 1, 100, None)]).await.unwrap();
    let mut task = started(config(
        &out,
        &[
            ("insert.mode", "update"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ],
    ))
    .await;
    task.put(vec![order(1, 1, 500, None), order(2, 9, 900, None)])
        .await
        .unwrap();
    assert_eq!(out.rows("SELECT id, total FROM orders").await, [["1", "5"]]);
}

#[tokio::test]
async fn with_exactly_once_a_redelivered_batch_writes_no_row_twice() {
    let out = Out::new();
    let settings = [
        ("auto.create", "true"),
        ("exactly.once.enabled", "true"),
        ("kafka.coordinates.columns", "true"),
    ];
    let mut task = started(config(&out, &settings)).await;
    let partition = TopicPartition::new("orders", 0);
    task.open(std::slice::from_ref(&partition)).await.unwrap();
    task.put((0..3).map(|i| order(i, i, 100, None)).collect())
        .await
        .unwrap();
    // The Kafka commit never happened (a crash): the next owner gets the records again, from offset 0.
    let (context, control) = SinkTaskContext::with_control(config(&out, &settings));
    let mut task = JdbcSinkTask::new(Arc::new(SqlOpener));
    task.start(context).await.unwrap();
    task.open(std::slice::from_ref(&partition)).await.unwrap();
    assert_eq!(
        control.take_rewinds().get(&partition),
        Some(&3),
        "delivery resumes after the rows held"
    );
    task.put((0..5).map(|i| order(i, i, 100, None)).collect())
        .await
        .unwrap();
    assert_eq!(
        out.rows("SELECT __connect_offset FROM orders ORDER BY __connect_offset")
            .await,
        [["0"], ["1"], ["2"], ["3"], ["4"]]
    );
    assert_eq!(
        out.rows(
            "SELECT connector, topic, kafka_partition, next_offset FROM __sluice_sink_offsets"
        )
        .await,
        [["orders-sink", "orders", "0", "5"]]
    );
}

#[tokio::test]
async fn a_batch_is_one_transaction() {
    let out = Out::new();
    let mut task = started(config(
        &out,
        &[
            ("auto.create", "true"),
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
        ],
    ))
    .await;
    task.put(vec![order(0, 1, 100, None)]).await.unwrap();
    // Row 2 goes in, then row 1 again breaks the primary key: neither stays.
    let e = task
        .put(vec![order(1, 2, 100, None), order(2, 1, 100, None)])
        .await
        .unwrap_err();
    assert!(!e.is_retriable(), "{e}");
    assert_eq!(out.rows("SELECT id FROM orders").await, [["1"]]);
}

#[tokio::test]
async fn a_bad_record_is_named() {
    let out = Out::new();
    let mut task = started(config(
        &out,
        &[("auto.create", "true"), ("pk.mode", "record_key")],
    ))
    .await;
    let mut keyless = order(7, 1, 100, None);
    keyless.key = Data::NULL;
    let e = task.put(vec![keyless]).await.unwrap_err().to_string();
    assert!(
        e.contains("orders-0 at offset 7") && e.contains("key is null"),
        "{e}"
    );
    let e = task
        .put(vec![tombstone(8, 1)])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("delete.enabled"), "{e}");
}
