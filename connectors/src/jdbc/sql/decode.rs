//! Column types from each database's catalog, and row values read as the column's type: SQLite's
//! declared types by its affinity rules (its values carry their own storage class, and timestamps are
//! ISO-8601 text), PostgreSQL's by type name.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sqlx::postgres::{PgRow, PgValueRef};
use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Decode, Postgres, Row, Sqlite, TypeInfo, ValueRef};

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

/// SQLite's storage classes: each value carries its own, whatever its column declares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    Integer,
    Real,
    Text,
    Blob,
}

impl Storage {
    fn of(name: &str) -> Option<Storage> {
        Some(match name {
            "INTEGER" => Storage::Integer,
            "REAL" => Storage::Real,
            "TEXT" => Storage::Text,
            "BLOB" => Storage::Blob,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Storage::Integer => "INTEGER",
            Storage::Real => "REAL",
            Storage::Text => "TEXT",
            Storage::Blob => "BLOB",
        }
    }
}

/// A SQLite row's values, each read as its column's declared type. Timestamps in text are read in
/// `zone`; the fraction digits of the last timestamp text read are put in `digits`. Each value is
/// decoded from the row's raw value once its storage class is known.
pub fn sqlite_row(
    row: &SqliteRow,
    columns: &[Column],
    zone: TimeZone,
    digits: &mut Option<usize>,
) -> Result<Vec<SqlValue>, DbError> {
    fn decode<'r, T: Decode<'r, Sqlite>>(
        column: &Column,
        raw: SqliteValueRef<'r>,
    ) -> Result<T, DbError> {
        T::decode(raw).map_err(|e| decode_error(column, e.to_string()))
    }
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| decode_error(column, e.to_string()))?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        let storage = {
            let info = raw.type_info();
            Storage::of(info.name()).ok_or_else(|| unexpected(column, info.name()))?
        };
        use Storage::{Blob, Integer, Real, Text};
        let value = match (&column.kind, storage) {
            (ColumnType::Boolean, Integer) => SqlValue::Bool(decode::<i64>(column, raw)? != 0),
            (ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64, Integer) => {
                SqlValue::Int(decode(column, raw)?)
            }
            (ColumnType::Float32 | ColumnType::Float64, Integer | Real) => {
                SqlValue::Float(decode(column, raw)?)
            }
            (ColumnType::Numeric { scale, .. }, Integer | Real | Text) => {
                let text = match storage {
                    Integer => decode::<i64>(column, raw)?.to_string(),
                    Real => decode::<f64>(column, raw)?.to_string(),
                    _ => decode(column, raw)?,
                };
                decimal(column, &text, *scale)?
            }
            (ColumnType::Text | ColumnType::Other(_), Text) => SqlValue::Text(decode(column, raw)?),
            (ColumnType::Text | ColumnType::Other(_), Integer) => {
                SqlValue::Text(decode::<i64>(column, raw)?.to_string())
            }
            (ColumnType::Text | ColumnType::Other(_), Real) => {
                SqlValue::Text(decode::<f64>(column, raw)?.to_string())
            }
            (ColumnType::Bytes | ColumnType::Other(_), Blob) => {
                SqlValue::Bytes(decode(column, raw)?)
            }
            (ColumnType::Bytes, Text) => {
                SqlValue::Bytes(decode::<String>(column, raw)?.into_bytes())
            }
            (ColumnType::Timestamp, Text) => {
                let text: &str = decode(column, raw)?;
                *digits = Some(fraction_digits(text));
                SqlValue::Timestamp(Timestamp::parse(text, zone).ok_or_else(|| {
                    decode_error(column, format!("{text:?} is not an ISO-8601 timestamp"))
                })?)
            }
            (ColumnType::Timestamp, Integer) => {
                let seconds: i64 = decode(column, raw)?;
                SqlValue::Timestamp(Timestamp(i128::from(seconds) * 1_000_000_000))
            }
            (ColumnType::Date, Text) => {
                let text: &str = decode(column, raw)?;
                let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
                    decode_error(column, format!("{text:?} is not a date (YYYY-MM-DD)"))
                })?;
                SqlValue::Date(days(date))
            }
            (ColumnType::Time, Text) => {
                let text: &str = decode(column, raw)?;
                let time = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M"))
                    .map_err(|_| {
                        decode_error(column, format!("{text:?} is not a time (HH:MM:SS)"))
                    })?;
                SqlValue::Time(nanos_of_day(time))
            }
            _ => return Err(unexpected(column, storage.name())),
        };
        values.push(value);
    }
    Ok(values)
}

/// The PostgreSQL types a row's values are read as.
#[derive(Clone, Copy)]
enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
}

impl PgKind {
    fn of(name: &str) -> Option<PgKind> {
        Some(match name {
            "BOOL" => PgKind::Bool,
            "INT2" => PgKind::Int2,
            "INT4" => PgKind::Int4,
            "INT8" => PgKind::Int8,
            "FLOAT4" => PgKind::Float4,
            "FLOAT8" => PgKind::Float8,
            "NUMERIC" => PgKind::Numeric,
            "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" => PgKind::Text,
            "BYTEA" => PgKind::Bytea,
            "DATE" => PgKind::Date,
            "TIME" => PgKind::Time,
            "TIMESTAMP" => PgKind::Timestamp,
            "TIMESTAMPTZ" => PgKind::TimestampTz,
            _ => return None,
        })
    }
}

/// A PostgreSQL row's values, by each column's type; timestamps without a zone are in `zone`. Each
/// value is decoded from the row's raw value once its type is known, not looked up and checked again.
pub fn postgres_row(
    row: &PgRow,
    columns: &[Column],
    zone: TimeZone,
) -> Result<Vec<SqlValue>, DbError> {
    fn decode<'r, T: Decode<'r, Postgres>>(
        column: &Column,
        raw: PgValueRef<'r>,
    ) -> Result<T, DbError> {
        T::decode(raw).map_err(|e| decode_error(column, e.to_string()))
    }
    let mut values = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| decode_error(column, e.to_string()))?;
        if raw.is_null() {
            values.push(SqlValue::Null);
            continue;
        }
        // Borrowed: a name per column per row would be an allocation per value.
        let kind = {
            let type_info = raw.type_info();
            PgKind::of(type_info.name()).ok_or_else(|| {
                decode_error(
                    column,
                    format!(
                        "PostgreSQL type {} has no mapping to Connect's types",
                        type_info.name()
                    ),
                )
            })?
        };
        let value = match kind {
            PgKind::Bool => SqlValue::Bool(decode(column, raw)?),
            PgKind::Int2 => SqlValue::Int(decode::<i16>(column, raw)?.into()),
            PgKind::Int4 => SqlValue::Int(decode::<i32>(column, raw)?.into()),
            PgKind::Int8 => SqlValue::Int(decode(column, raw)?),
            PgKind::Float4 => SqlValue::Float(decode::<f32>(column, raw)?.into()),
            PgKind::Float8 => SqlValue::Float(decode(column, raw)?),
            PgKind::Numeric => {
                let d: rust_decimal::Decimal = decode(column, raw)?;
                let scale = match column.kind {
                    ColumnType::Numeric { scale, .. } => scale,
                    _ => None,
                };
                decimal(column, &d.to_string(), scale)?
            }
            PgKind::Text => SqlValue::Text(decode(column, raw)?),
            PgKind::Bytea => SqlValue::Bytes(decode(column, raw)?),
            PgKind::Date => SqlValue::Date(days(decode(column, raw)?)),
            PgKind::Time => SqlValue::Time(nanos_of_day(decode(column, raw)?)),
            PgKind::Timestamp => {
                let naive: NaiveDateTime = decode(column, raw)?;
                SqlValue::Timestamp(Timestamp::from_naive(naive, zone))
            }
            PgKind::TimestampTz => {
                let utc: chrono::DateTime<chrono::Utc> = decode(column, raw)?;
                SqlValue::Timestamp(Timestamp::from_naive(utc.naive_utc(), TimeZone::Utc))
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
