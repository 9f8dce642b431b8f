//! The JDBC sink task on a real PostgreSQL server: a table created from the records' schema, upserts and
//! deletes by key, typed NULLs, and the exactly-once option's offsets moved only from where the task saw
//! them.

#[path = "support/postgres.rs"]
mod postgres;

use std::sync::Arc;

use sluice_connectors::jdbc::sink::JdbcSinkTask;
use sluice_connectors::jdbc::SqlOpener;
use sluice_core::api::{SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use sluice_core::config::ConfigMap;
use sluice_core::data::{logical, Data, Decimal, Schema, SchemaBuilder, SchemaType, Struct, Value};

fn record(offset: i64, id: i64, total: Option<i128>) -> SinkRecord {
    let schema = Arc::new(
        SchemaBuilder::struct_()
            .field("id", Schema::primitive(SchemaType::Int64))
            .field("total", logical::decimal(2).optional().build())
            .field("day", logical::date().optional().build())
            .field("at", logical::timestamp().build())
            .field("photo", Schema::optional(SchemaType::Bytes))
            .build(),
    );
    let mut value = Struct::new(schema.clone());
    value.put("id", Value::Int64(id));
    if let Some(cents) = total {
        value.put(
            "total",
            Value::Decimal(Decimal {
                unscaled: cents,
                scale: 2,
            }),
        );
        value.put("day", Value::Date(19_782));
        value.put("photo", Value::Bytes(vec![1, 2]));
    }
    value.put("at", Value::Timestamp(1_709_214_310_250));
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

async fn rows(url: &str, sql: &str) -> Vec<(String, String)> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn postgres_rows_are_upserted_deleted_and_written_once() {
    let server = postgres::Postgres::start();
    let url = server.database("sink").await;
    let config: ConfigMap = [
        ("connection.url", url.as_str()),
        ("name", "pg-sink"),
        ("insert.mode", "upsert"),
        ("pk.mode", "record_key"),
        ("delete.enabled", "true"),
        ("auto.create", "true"),
        ("exactly.once.enabled", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let partition = TopicPartition::new("orders", 0);
    let (context, _) = SinkTaskContext::with_control(config.clone());
    let mut task = JdbcSinkTask::new(Arc::new(SqlOpener));
    task.start(context).await.unwrap();
    task.open(std::slice::from_ref(&partition)).await.unwrap();
    task.put(vec![
        record(0, 1, Some(1250)),
        record(1, 2, None),
        record(2, 3, Some(5)),
    ])
    .await
    .unwrap();
    let mut tombstone = record(3, 3, None);
    tombstone.value = Data::NULL;
    task.put(vec![
        record(2, 3, Some(5)),
        tombstone,
        record(4, 1, Some(1399)),
    ])
    .await
    .unwrap();
    assert_eq!(
        rows(&url, "SELECT __connect_key, COALESCE(total::text, 'NULL') || ' ' || COALESCE(day::text, 'NULL') || ' ' || at::text || ' ' || COALESCE(encode(photo, 'hex'), 'NULL') FROM orders ORDER BY 1").await,
        [
            ("order-1".to_owned(), "13.99 2024-02-29 2024-02-29 13:45:10.25 0102".to_owned()),
            ("order-2".to_owned(), "NULL NULL 2024-02-29 13:45:10.25 NULL".to_owned()),
        ]
    );

    // A second task that took the partition over moved the offset: the first one's late batch is
    // refused, and written by nobody twice.
    let (context, control) = SinkTaskContext::with_control(config);
    control.set_assignment([partition.clone()].into());
    let mut successor = JdbcSinkTask::new(Arc::new(SqlOpener));
    successor.start(context).await.unwrap();
    successor
        .open(std::slice::from_ref(&partition))
        .await
        .unwrap();
    assert_eq!(control.take_rewinds().get(&partition), Some(&5));
    successor.put(vec![record(5, 7, Some(700))]).await.unwrap();
    let late = task.put(vec![record(5, 8, Some(800))]).await.unwrap_err();
    assert!(
        late.is_retriable() && late.to_string().contains("another task wrote orders-0"),
        "{late}"
    );
    assert_eq!(
        rows(
            &url,
            "SELECT topic, next_offset::text FROM __sluice_sink_offsets"
        )
        .await,
        [("orders".to_owned(), "6".to_owned())]
    );
    assert_eq!(
        rows(
            &url,
            "SELECT __connect_key, total::text FROM orders WHERE id >= 7"
        )
        .await
        .len(),
        1
    );
}
