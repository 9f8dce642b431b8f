//! Column types from each database's catalog, and row values read as the column's type: SQLite's
//! declared types by its affinity rules (its values carry their own storage class, and timestamps are
//! ISO-8601 text), PostgreSQL's by type name.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use crate::jdbc::database::{Column, ColumnType, DbError, SqlValue};
use crate::jdbc::timestamp::{TimeZone, Timestamp};

/// A SQLite declared type (`VARCHAR(20)`, `DECIMAL(10,2)`, `DATETIME`) as a column type.
pub fn sqlite_type(declared: &str) -> ColumnType {
    let upper = declared.trim().to_ascii_uppercase();
    let (base, args) = match upper.split_once('(') {
        Some((base, args)) => (base.trim(), args.trim_end_matches(')')),
        None => (upper.as_str(), ""),
    };
    let numbers: Vec<u32> = args
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    match base {
        "BOOLEAN" | "BOOL" => ColumnType::Boolean,
        "TINYINT" | "SMALLINT" | "INT2" => ColumnType::Int16,
        "INT" | "INT4" | "MEDIUMINT" => ColumnType::Int32,
        "DATE" => ColumnType::Date,
        "TIME" => ColumnType::Time,
        "DATETIME" | "TIMESTAMP" => ColumnType::Timestamp,
        "NUMERIC" | "DECIMAL" => ColumnType::Numeric {
            precision: numbers.first().copied(),
            scale: numbers.get(1).copied().or(numbers.first().map(|_| 0)),
        },
        _ if base.contains("INT") => ColumnType::Int64,
        _ if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") => {
            ColumnType::Text
        }
        "" => ColumnType::Bytes,
        _ if base.contains("BLOB") => ColumnType::Bytes,
        _ if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") => {
            ColumnType::Float64
        }
        _ => ColumnType::Other(declared.to_owned()),
    }
}

/// A PostgreSQL type (`information_schema`'s `data_type`, or sqlx's type name) as a column type.
pub fn postgres_type(name: &str, precision: Option<i32>, scale: Option<i32>) -> ColumnType {
    match name.to_ascii_lowercase().as_str() {
        "boolean" | "bool" => ColumnType::Boolean,
        "smallint" | "int2" => ColumnType::Int16,
        "integer" | "int4" => ColumnType::Int32,
        "bigint" | "int8" => ColumnType::Int64,
        "real" | "float4" => ColumnType::Float32,
        "double precision" | "float8" => ColumnType::Float64,
        "numeric" => ColumnType::Numeric {
            precision: precision.and_then(|p| u32::try_from(p).ok()),
            scale: scale.and_then(|s| u32::try_from(s).ok()),
        },
        "text" | "character varying" | "varchar" | "character" | "bpchar" | "name" => {
            ColumnType::Text
        }
        "bytea" => ColumnType::Bytes,
        "date" => ColumnType::Date,
        "time without time zone" | "time" => ColumnType::Time,
        "timestamp without time zone"
        | "timestamp with time zone"
        | "timestamp"
        | "timestamptz" => ColumnType::Timestamp,
        other => ColumnType::Other(other.to_owned()),
    }
}

fn decode_error(column: &Column, message: impl Into<String>) -> DbError {
    DbError::Decode {
        column: column.name.clone(),
        message: message.into(),
    }
}

fn unexpected(column: &Column, found: &str) -> DbError {
    decode_error(
        column,
        format!("holds a {found} value, which is not a {:?}", column.kind),
    )
}

/// A SQLite row's values, each read as its column's declared type. Timestamps in text are read in
/// `zone`; the fraction digits of the last timestamp text read are put in `digits`.
pub fn sqlite_row(
    row: &SqliteRow,
    columns: &[Column],
    zone: TimeZone,
    digits: &mut Option<usize>,
) -> Result<Vec<SqlValue>, DbError> {
    let sqlx = |column: &Column, e: sqlx::Error| decode_error(column, e.to_string());
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| sqlx(column, e))?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let info = raw.type_info();
        let storage = info.name();
        let value = match (&column.kind, storage) {
            (ColumnType::Boolean, "INTEGER") => {
                SqlValue::Bool(row.try_get::<i64, _>(i).map_err(|e| sqlx(column, e))? != 0)
            }
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, "INTEGER") => {
                SqlValue::Int(row.try_get::<i64, _>(i).map_err(|e| sqlx(column, e))?)
            }
            (ColumnType::Float32 | ColumnType::Float64, "INTEGER" | "REAL") => {
                SqlValue::Float(row.try_get::<f64, _>(i).map_err(|e| sqlx(column, e))?)
            }
            (ColumnType::Numeric { scale, .. }, "INTEGER" | "REAL" | "TEXT") => {
                let text = match storage {
                    "INTEGER" => row
                        .try_get::<i64, _>(i)
                        .map_err(|e| sqlx(column, e))?
                        .to_string(),
                    "REAL" => row
                        .try_get::<f64, _>(i)
                        .map_err(|e| sqlx(column, e))?
                        .to_string(),
                    _ => row.try_get::<String, _>(i).map_err(|e| sqlx(column, e))?,
                };
                decimal(column, &text, *scale)?
            }
            (ColumnType::Text | ColumnType::Other(_), "TEXT") => {
                SqlValue::Text(row.try_get::<String, _>(i).map_err(|e| sqlx(column, e))?)
            }
            (ColumnType::Text | ColumnType::Other(_), "INTEGER") => SqlValue::Text(
                row.try_get::<i64, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .to_string(),
            ),
            (ColumnType::Text | ColumnType::Other(_), "REAL") => SqlValue::Text(
                row.try_get::<f64, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .to_string(),
            ),
            (ColumnType::Bytes | ColumnType::Other(_), "BLOB") => {
                SqlValue::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(|e| sqlx(column, e))?)
            }
            (ColumnType::Bytes, "TEXT") => SqlValue::Bytes(
                row.try_get::<String, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .into_bytes(),
            ),
            (ColumnType::Bytes, "INTEGER" | "REAL") => {
                return Err(unexpected(column, storage));
            }
            (ColumnType::Timestamp, "TEXT") => {
                let text: &str = row.try_get(i).map_err(|e| sqlx(column, e))?;
                *digits = Some(fraction_digits(text));
                SqlValue::Timestamp(Timestamp::parse(text, zone).ok_or_else(|| {
                    decode_error(column, format!("{text:?} is not an ISO-8601 timestamp"))
                })?)
            }
            (ColumnType::Timestamp, "INTEGER") => {
                let seconds: i64 = row.try_get(i).map_err(|e| sqlx(column, e))?;
                SqlValue::Timestamp(Timestamp(i128::from(seconds) * 1_000_000_000))
            }
            (ColumnType::Date, "TEXT") => {
                let text: String = row.try_get(i).map_err(|e| sqlx(column, e))?;
                let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                    decode_error(column, format!("{text:?} is not a date (YYYY-MM-DD)"))
                })?;
                SqlValue::Date(days(date))
            }
            (ColumnType::Time, "TEXT") => {
                let text: String = row.try_get(i).map_err(|e| sqlx(column, e))?;
                let time = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M"))
                    .map_err(|_| {
                        decode_error(column, format!("{text:?} is not a time (HH:MM:SS)"))
                    })?;
                SqlValue::Time(nanos_of_day(time))
            }
            _ => return Err(unexpected(column, storage)),
        };
        values.push(value);
    }
    Ok(values)
}

/// A PostgreSQL row's values, by each column's type; timestamps without a zone are in `zone`.
pub fn postgres_row(
    row: &PgRow,
    columns: &[Column],
    zone: TimeZone,
) -> Result<Vec<SqlValue>, DbError> {
    let sqlx = |column: &Column, e: sqlx::Error| decode_error(column, e.to_string());
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| sqlx(column, e))?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        // Borrowed: a name per column per row would be an allocation per value.
        let type_info = raw.type_info();
        let value = match type_info.name() {
            "BOOL" => SqlValue::Bool(row.try_get(i).map_err(|e| sqlx(column, e))?),
            "INT2" => SqlValue::Int(
                row.try_get::<i16, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .into(),
            ),
            "INT4" => SqlValue::Int(
                row.try_get::<i32, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .into(),
            ),
            "INT8" => SqlValue::Int(row.try_get(i).map_err(|e| sqlx(column, e))?),
            "FLOAT4" => SqlValue::Float(
                row.try_get::<f32, _>(i)
                    .map_err(|e| sqlx(column, e))?
                    .into(),
            ),
            "FLOAT8" => SqlValue::Float(row.try_get(i).map_err(|e| sqlx(column, e))?),
            "NUMERIC" => {
                let d: rust_decimal::Decimal = row.try_get(i).map_err(|e| sqlx(column, e))?;
                let scale = match column.kind {
                    ColumnType::Numeric { scale, .. } => scale,
                    _ => None,
                };
                decimal(column, &d.to_string(), scale)?
            }
            "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" => {
                SqlValue::Text(row.try_get(i).map_err(|e| sqlx(column, e))?)
            }
            "BYTEA" => SqlValue::Bytes(row.try_get(i).map_err(|e| sqlx(column, e))?),
            "DATE" => SqlValue::Date(days(row.try_get(i).map_err(|e| sqlx(column, e))?)),
            "TIME" => SqlValue::Time(nanos_of_day(row.try_get(i).map_err(|e| sqlx(column, e))?)),
            "TIMESTAMP" => {
                let naive: NaiveDateTime = row.try_get(i).map_err(|e| sqlx(column, e))?;
                SqlValue::Timestamp(Timestamp::from_naive(naive, zone))
            }
            "TIMESTAMPTZ" => {
                let utc: chrono::DateTime<chrono::Utc> =
                    row.try_get(i).map_err(|e| sqlx(column, e))?;
                SqlValue::Timestamp(Timestamp::from_naive(utc.naive_utc(), TimeZone::Utc))
            }
            other => {
                return Err(decode_error(
                    column,
                    format!("PostgreSQL type {other} has no mapping to Connect's types"),
                ))
            }
        };
        values.push(value);
    }
    Ok(values)
}

/// Decimal text as `unscaled * 10^-scale`, at the column's scale when it declares one.
fn decimal(column: &Column, text: &str, scale: Option<u32>) -> Result<SqlValue, DbError> {
    let mut d: rust_decimal::Decimal = text
        .trim()
        .parse()
        .or_else(|_| rust_decimal::Decimal::from_scientific(text.trim()))
        .map_err(|_| decode_error(column, format!("{text:?} is not a decimal number")))?;
    if let Some(scale) = scale {
        d.rescale(scale);
    }
    Ok(SqlValue::Decimal {
        unscaled: d.mantissa(),
        scale: d.scale() as i32,
    })
}

fn days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days() as i32
}

fn nanos_of_day(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(time.nanosecond())
}

/// How many fraction digits a timestamp's text has (`12:00:00.120` has 3).
fn fraction_digits(text: &str) -> usize {
    let Some(dot) = text.rfind('.') else {
        return 0;
    };
    text[dot + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_declared_types_follow_affinity() {
        assert_eq!(sqlite_type("INTEGER"), ColumnType::Int64);
        assert_eq!(sqlite_type("int"), ColumnType::Int32);
        assert_eq!(sqlite_type("VARCHAR(20)"), ColumnType::Text);
        assert_eq!(
            sqlite_type("DECIMAL(10, 2)"),
            ColumnType::Numeric {
                precision: Some(10),
                scale: Some(2)
            }
        );
        assert_eq!(sqlite_type("DATETIME"), ColumnType::Timestamp);
        assert_eq!(sqlite_type(""), ColumnType::Bytes);
        assert_eq!(sqlite_type("DOUBLE PRECISION"), ColumnType::Float64);
        assert_eq!(
            sqlite_type("GEOMETRY"),
            ColumnType::Other("GEOMETRY".into())
        );
    }

    #[test]
    fn fraction_digits_are_counted_as_written() {
        assert_eq!(fraction_digits("2024-01-01 00:00:00"), 0);
        assert_eq!(fraction_digits("2024-01-01 00:00:00.120"), 3);
        assert_eq!(fraction_digits("2024-01-01T00:00:00.123456789Z"), 9);
    }
}
