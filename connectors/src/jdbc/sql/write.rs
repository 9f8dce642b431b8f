//! Writes as each dialect's SQL: tables created and widened from the seam's column types, rows inserted,
//! upserted (`INSERT ... ON CONFLICT (key) DO UPDATE`, in SQLite and PostgreSQL alike), updated and
//! deleted by key, and values bound as the column's type (PostgreSQL types its NULLs).

use chrono::{NaiveDate, NaiveTime};

use super::render::{quote, Dialect};
use crate::jdbc::database::{
    Column, ColumnType, DbError, SinkOffset, SinkOffsets, SqlValue, Write, WriteKind,
};
use crate::jdbc::timestamp::{TimeZone, Timestamp};

/// A column type as the dialect declares it.
pub fn type_name(kind: &ColumnType, dialect: Dialect) -> String {
    match (kind, dialect) {
        (ColumnType::Boolean, _) => "BOOLEAN".into(),
        (ColumnType::Int16, _) => "SMALLINT".into(),
        (ColumnType::Int32, _) => "INTEGER".into(),
        (ColumnType::Int64, _) => "BIGINT".into(),
        (ColumnType::Float32, _) => "REAL".into(),
        (ColumnType::Float64, _) => "DOUBLE PRECISION".into(),
        (ColumnType::Numeric { precision, scale }, _) => match (precision, scale) {
            (Some(p), Some(s)) => format!("NUMERIC({p},{s})"),
            (None, Some(s)) => format!("NUMERIC({},{s})", 38.max(*s)),
            _ => "NUMERIC".into(),
        },
        (ColumnType::Text, _) => "TEXT".into(),
        (ColumnType::Bytes, Dialect::Sqlite) => "BLOB".into(),
        (ColumnType::Bytes, Dialect::Postgres) => "BYTEA".into(),
        (ColumnType::Date, _) => "DATE".into(),
        (ColumnType::Time, _) => "TIME".into(),
        (ColumnType::Timestamp, _) => "TIMESTAMP".into(),
        (ColumnType::Other(name), _) => name.clone(),
    }
}

pub fn create_table(table: &str, columns: &[Column], dialect: Dialect) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {}{null}", quote(&c.name), type_name(&c.kind, dialect))
        })
        .collect();
    let key: Vec<String> = columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| quote(&c.name))
        .collect();
    if !key.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(table),
        parts.join(", ")
    )
}

pub fn add_column(table: &str, column: &Column, dialect: Dialect) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        quote(table),
        quote(&column.name),
        type_name(&column.kind, dialect)
    )
}

/// A write's statement, and the indices (into its values) of the values bound, in order.
pub fn statement(write: &Write, dialect: Dialect) -> (String, Vec<usize>) {
    let mut n = 0;
    let mut placeholder = || {
        n += 1;
        match dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${n}"),
        }
    };
    let table = quote(&write.table);
    let is_key = |c: &String| write.key.contains(c);
    let all: Vec<usize> = (0..write.columns.len()).collect();
    let non_key: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| !is_key(&write.columns[i]))
        .collect();
    let key: Vec<usize> = write
        .key
        .iter()
        .filter_map(|k| write.columns.iter().position(|c| c == k))
        .collect();
    let names = |indices: &[usize]| -> Vec<String> {
        indices.iter().map(|&i| quote(&write.columns[i])).collect()
    };
    match write.kind {
        WriteKind::Insert | WriteKind::Upsert => {
            let values: Vec<String> = all.iter().map(|_| placeholder()).collect();
            let mut sql = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names(&all).join(", "),
                values.join(", ")
            );
            if write.kind == WriteKind::Upsert {
                let set: Vec<String> = names(&non_key)
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                sql.push_str(&format!(" ON CONFLICT ({})", names(&key).join(", ")));
                if set.is_empty() {
                    sql.push_str(" DO NOTHING");
                } else {
                    sql.push_str(&format!(" DO UPDATE SET {}", set.join(", ")));
                }
            }
            (sql, all)
        }
        WriteKind::Update => {
            let set: Vec<String> = names(&non_key)
                .iter()
                .map(|c| format!("{c} = {}", placeholder()))
                .collect();
            let condition: Vec<String> = names(&key)
                .iter()
                .map(|c| format!("{c} = {}", placeholder()))
                .collect();
            let sql = format!(
                "UPDATE {table} SET {} WHERE {}",
                set.join(", "),
                condition.join(" AND ")
            );
            (sql, non_key.into_iter().chain(key).collect())
        }
        WriteKind::Delete => {
            let condition: Vec<String> = names(&key)
                .iter()
                .map(|c| format!("{c} = {}", placeholder()))
                .collect();
            (
                format!("DELETE FROM {table} WHERE {}", condition.join(" AND ")),
                key,
            )
        }
    }
}

/// The statement that moves a sink's offset of one partition, and its values: an insert when none was
/// expected (a conflict means another task wrote one), else an update that holds only if the stored
/// offset is the expected one.
pub fn offset_statement(
    offsets: &SinkOffsets,
    offset: &SinkOffset,
    dialect: Dialect,
) -> (String, Vec<SqlValue>) {
    let p = |n: usize| match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${n}"),
    };
    let table = quote(&offsets.table);
    let who = [
        SqlValue::Text(offsets.connector.clone()),
        SqlValue::Text(offset.topic.clone()),
        SqlValue::Int(offset.partition.into()),
    ];
    match offset.expected {
        None => (
            format!(
                "INSERT INTO {table} (connector, topic, kafka_partition, next_offset) VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            who.into_iter().chain([SqlValue::Int(offset.next)]).collect(),
        ),
        Some(expected) => (
            format!(
                "UPDATE {table} SET next_offset = {} WHERE connector = {} AND topic = {} AND kafka_partition = {} AND next_offset = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            ),
            [SqlValue::Int(offset.next)]
                .into_iter()
                .chain(who)
                .chain([SqlValue::Int(expected)])
                .collect(),
        ),
    }
}

pub fn date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

pub fn time(nanos: i64) -> Option<NaiveTime> {
    let seconds = u32::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos.rem_euclid(1_000_000_000) as u32)
}

pub fn decimal(unscaled: i128, scale: i32) -> Result<rust_decimal::Decimal, DbError> {
    u32::try_from(scale)
        .ok()
        .and_then(|scale| rust_decimal::Decimal::try_from_i128_with_scale(unscaled, scale).ok())
        .ok_or_else(|| {
            DbError::Unsupported(format!(
                "the decimal {unscaled}e-{scale} is beyond 28 digits of scale or 96 bits"
            ))
        })
}

/// A value as SQLite stores it (text for decimals, dates, times and timestamps).
pub fn sqlite_bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    value: &SqlValue,
    zone: TimeZone,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match value {
        SqlValue::Null => query.bind(None::<i64>),
        SqlValue::Bool(b) => query.bind(*b),
        SqlValue::Int(n) => query.bind(*n),
        SqlValue::Float(f) => query.bind(*f),
        SqlValue::Text(s) => query.bind(s.clone()),
        SqlValue::Bytes(b) => query.bind(b.clone()),
        SqlValue::Decimal { unscaled, scale } => query.bind(
            decimal(*unscaled, *scale)
                .map(|d| d.to_string())
                .unwrap_or_else(|_| format!("{unscaled}e-{scale}")),
        ),
        SqlValue::Date(days) => query.bind(date(*days).map(|d| d.format("%Y-%m-%d").to_string())),
        SqlValue::Time(nanos) => {
            query.bind(time(*nanos).map(|t| t.format("%H:%M:%S%.f").to_string()))
        }
        SqlValue::Timestamp(t) => query.bind(t.format(zone, None)),
    }
}

/// A value as PostgreSQL takes it for a column of `kind`.
pub fn postgres_bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    value: &SqlValue,
    kind: &ColumnType,
    zone: TimeZone,
    column: &str,
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>, DbError> {
    let out_of_range = |n: &i64| DbError::Decode {
        column: column.to_owned(),
        message: format!("{n} does not fit the column's type {kind:?}"),
    };
    Ok(match (value, kind) {
        (SqlValue::Null, ColumnType::Boolean) => query.bind(None::<bool>),
        (SqlValue::Null, ColumnType::Int16) => query.bind(None::<i16>),
        (SqlValue::Null, ColumnType::Int32) => query.bind(None::<i32>),
        (SqlValue::Null, ColumnType::Int64) => query.bind(None::<i64>),
        (SqlValue::Null, ColumnType::Float32) => query.bind(None::<f32>),
        (SqlValue::Null, ColumnType::Float64) => query.bind(None::<f64>),
        (SqlValue::Null, ColumnType::Numeric { .. }) => query.bind(None::<rust_decimal::Decimal>),
        (SqlValue::Null, ColumnType::Bytes) => query.bind(None::<Vec<u8>>),
        (SqlValue::Null, ColumnType::Date) => query.bind(None::<NaiveDate>),
        (SqlValue::Null, ColumnType::Time) => query.bind(None::<NaiveTime>),
        (SqlValue::Null, ColumnType::Timestamp) => query.bind(None::<chrono::NaiveDateTime>),
        (SqlValue::Null, _) => query.bind(None::<String>),
        (SqlValue::Int(n), ColumnType::Int16) => {
            query.bind(i16::try_from(*n).map_err(|_| out_of_range(n))?)
        }
        (SqlValue::Int(n), ColumnType::Int32) => {
            query.bind(i32::try_from(*n).map_err(|_| out_of_range(n))?)
        }
        (SqlValue::Int(n), ColumnType::Numeric { .. }) => {
            query.bind(rust_decimal::Decimal::from(*n))
        }
        (SqlValue::Int(n), ColumnType::Float64) => query.bind(*n as f64),
        (SqlValue::Int(n), _) => query.bind(*n),
        (SqlValue::Float(f), ColumnType::Float32) => query.bind(*f as f32),
        (SqlValue::Float(f), _) => query.bind(*f),
        (SqlValue::Bool(b), _) => query.bind(*b),
        (SqlValue::Text(s), _) => query.bind(s.clone()),
        (SqlValue::Bytes(b), _) => query.bind(b.clone()),
        (SqlValue::Decimal { unscaled, scale }, _) => query.bind(decimal(*unscaled, *scale)?),
        (SqlValue::Date(days), _) => query.bind(date(*days)),
        (SqlValue::Time(nanos), _) => query.bind(time(*nanos)),
        (SqlValue::Timestamp(t), _) => query.bind(Timestamp::to_naive(*t, zone)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(kind: WriteKind) -> Write {
        Write {
            table: "orders".into(),
            kind,
            columns: vec!["id".into(), "total".into(), "note".into()],
            values: vec![SqlValue::Int(1), SqlValue::Int(2), SqlValue::Null],
            key: vec!["id".into()],
        }
    }

    #[test]
    fn upserts_updates_and_deletes_go_by_key() {
        assert_eq!(
            statement(&write(WriteKind::Upsert), Dialect::Postgres),
            (
                "INSERT INTO \"orders\" (\"id\", \"total\", \"note\") VALUES ($1, $2, $3) ON CONFLICT (\"id\") DO UPDATE SET \"total\" = EXCLUDED.\"total\", \"note\" = EXCLUDED.\"note\"".into(),
                vec![0, 1, 2]
            )
        );
        assert_eq!(
            statement(&write(WriteKind::Update), Dialect::Sqlite),
            (
                "UPDATE \"orders\" SET \"total\" = ?, \"note\" = ? WHERE \"id\" = ?".into(),
                vec![1, 2, 0]
            )
        );
        assert_eq!(
            statement(&write(WriteKind::Delete), Dialect::Sqlite),
            ("DELETE FROM \"orders\" WHERE \"id\" = ?".into(), vec![0])
        );
    }

    #[test]
    fn created_tables_declare_their_key() {
        let column = |name: &str, kind, key: bool| Column {
            name: name.into(),
            kind,
            nullable: !key,
            primary_key: key,
        };
        let columns = [
            column("id", ColumnType::Int64, true),
            column("photo", ColumnType::Bytes, false),
        ];
        assert_eq!(
            create_table("t", &columns, Dialect::Postgres),
            "CREATE TABLE IF NOT EXISTS \"t\" (\"id\" BIGINT NOT NULL, \"photo\" BYTEA, PRIMARY KEY (\"id\"))"
        );
        assert!(create_table("t", &columns, Dialect::Sqlite).contains("\"photo\" BLOB"));
    }
}
