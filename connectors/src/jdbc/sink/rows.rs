//! A sink record as a row: its table (`table.name.format`), its columns from the value's fields (a struct,
//! a schemaless map, or a primitive value as the one column `__connect_value`, which Confluent's
//! connector refuses), its key columns by `pk.mode`, and the column definitions `auto.create` and
//! `auto.evolve` use.

use sluice_core::api::SinkRecord;
use sluice_core::data::{logical, Data, Schema, SchemaType, Value};

use super::settings::{PkMode, SinkSettings};
use crate::jdbc::database::{Column, ColumnType, SqlValue, Write, WriteKind};
use crate::jdbc::timestamp::Timestamp;

pub const KAFKA_COLUMNS: [&str; 3] = ["__connect_topic", "__connect_partition", "__connect_offset"];
/// The column of a primitive key, unless `pk.fields` names one.
pub const KEY_COLUMN: &str = "__connect_key";
/// The column of a primitive value.
pub const VALUE_COLUMN: &str = "__connect_value";

/// A record's row, and the definitions of its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub write: Write,
    pub columns: Vec<Column>,
}

/// A field of a key or value: its column, and its value.
struct Cell {
    column: Column,
    value: SqlValue,
}

/// The record's fields as cells; a primitive becomes the one column `primitive`.
fn cells(data: &Data, primitive: &str) -> Result<Vec<Cell>, String> {
    match (&data.value, &data.schema) {
        (Value::Struct(s), _) => s
            .schema()
            .fields
            .iter()
            .zip(s.values())
            .map(|(field, value)| {
                Ok(Cell {
                    column: Column {
                        name: field.name.clone(),
                        kind: column_type(&field.schema)
                            .map_err(|e| format!("field {:?}: {e}", field.name))?,
                        nullable: field.schema.optional,
                        primary_key: false,
                    },
                    value: sql_value(value).map_err(|e| format!("field {:?}: {e}", field.name))?,
                })
            })
            .collect(),
        (Value::Map(entries), _) => entries
            .iter()
            .map(|(key, value)| {
                let name = key.as_str().ok_or_else(|| {
                    format!(
                        "a map key {} is not a string and names no column",
                        key.type_name()
                    )
                })?;
                Ok(Cell {
                    column: Column {
                        name: name.to_owned(),
                        kind: inferred_type(value).map_err(|e| format!("field {name:?}: {e}"))?,
                        nullable: true,
                        primary_key: false,
                    },
                    value: sql_value(value).map_err(|e| format!("field {name:?}: {e}"))?,
                })
            })
            .collect(),
        (value, schema) => Ok(vec![Cell {
            column: Column {
                name: primitive.to_owned(),
                kind: match schema {
                    Some(schema) => column_type(schema)?,
                    None => inferred_type(value)?,
                },
                nullable: schema.as_ref().is_none_or(|s| s.optional),
                primary_key: false,
            },
            value: sql_value(value)?,
        }]),
    }
}

fn column_type(schema: &Schema) -> Result<ColumnType, String> {
    if let Some(logical) = schema.logical() {
        return Ok(match logical {
            logical::Logical::Decimal { scale } => ColumnType::Numeric {
                precision: None,
                scale: u32::try_from(scale).ok(),
            },
            logical::Logical::Date => ColumnType::Date,
            logical::Logical::Time => ColumnType::Time,
            logical::Logical::Timestamp => ColumnType::Timestamp,
        });
    }
    Ok(match schema.kind {
        SchemaType::Int8 | SchemaType::Int16 => ColumnType::Int16,
        SchemaType::Int32 => ColumnType::Int32,
        SchemaType::Int64 => ColumnType::Int64,
        SchemaType::Float32 => ColumnType::Float32,
        SchemaType::Float64 => ColumnType::Float64,
        SchemaType::Boolean => ColumnType::Boolean,
        SchemaType::String => ColumnType::Text,
        SchemaType::Bytes => ColumnType::Bytes,
        kind => {
            return Err(format!(
                "a {} has no column type: flatten it first",
                kind.json_name()
            ))
        }
    })
}

fn inferred_type(value: &Value) -> Result<ColumnType, String> {
    Ok(match value {
        Value::Null | Value::String(_) => ColumnType::Text,
        Value::Boolean(_) => ColumnType::Boolean,
        Value::Int8(_) | Value::Int16(_) => ColumnType::Int16,
        Value::Int32(_) => ColumnType::Int32,
        Value::Int64(_) => ColumnType::Int64,
        Value::Float32(_) => ColumnType::Float32,
        Value::Float64(_) => ColumnType::Float64,
        Value::Bytes(_) => ColumnType::Bytes,
        Value::Decimal(d) => ColumnType::Numeric {
            precision: None,
            scale: u32::try_from(d.scale).ok(),
        },
        Value::Date(_) => ColumnType::Date,
        Value::Time(_) => ColumnType::Time,
        Value::Timestamp(_) => ColumnType::Timestamp,
        other => {
            return Err(format!(
                "a {} has no column type: flatten it first",
                other.type_name()
            ))
        }
    })
}

fn sql_value(value: &Value) -> Result<SqlValue, String> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Bool(*b),
        Value::Int8(n) => SqlValue::Int((*n).into()),
        Value::Int16(n) => SqlValue::Int((*n).into()),
        Value::Int32(n) => SqlValue::Int((*n).into()),
        Value::Int64(n) => SqlValue::Int(*n),
        Value::Float32(f) => SqlValue::Float((*f).into()),
        Value::Float64(f) => SqlValue::Float(*f),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Bytes(b.clone()),
        Value::Decimal(d) => SqlValue::Decimal {
            unscaled: d.unscaled,
            scale: d.scale,
        },
        Value::Date(days) => SqlValue::Date(*days),
        Value::Time(ms) => SqlValue::Time(i64::from(*ms) * 1_000_000),
        Value::Timestamp(ms) => SqlValue::Timestamp(Timestamp::from_millis(*ms)),
        other => {
            return Err(format!(
                "a {} has no column type: flatten it first",
                other.type_name()
            ))
        }
    })
}

/// The row `record` writes, or why it cannot be written. Cells are keyed, whitelisted and ordered: key
/// columns first, then the value's.
pub fn row(record: &SinkRecord, settings: &SinkSettings) -> Result<Row, String> {
    let table = settings
        .table_name_format
        .replace("${topic}", &record.topic);
    let tombstone = record.value.value.is_null();
    let mut key_cells: Vec<Cell> = match settings.pk_mode {
        PkMode::None => Vec::new(),
        PkMode::Kafka => {
            let names: Vec<&str> = if settings.pk_fields.len() == 3 {
                settings.pk_fields.iter().map(String::as_str).collect()
            } else {
                KAFKA_COLUMNS.to_vec()
            };
            coordinates(record, &names)
        }
        PkMode::RecordKey => {
            if record.key.value.is_null() {
                return Err(
                    "its key is null, but pk.mode=record_key takes the row's key from it".into(),
                );
            }
            let primitive = settings
                .pk_fields
                .first()
                .map_or(KEY_COLUMN, String::as_str);
            let cells = cells(&record.key, primitive)?;
            pick(cells, &settings.pk_fields, "key")?
        }
        PkMode::RecordValue => {
            if tombstone {
                return Err(
                    "its value is null, but pk.mode=record_value takes the row's key from it"
                        .into(),
                );
            }
            let cells = cells(&record.value, VALUE_COLUMN)?;
            pick(cells, &settings.pk_fields, "value")?
        }
    };
    for cell in &mut key_cells {
        cell.column.primary_key = true;
        cell.column.nullable = false;
    }
    let key: Vec<String> = key_cells.iter().map(|c| c.column.name.clone()).collect();
    let (kind, mut all) = if tombstone {
        if !settings.delete_enabled {
            return Err("its value is null (a tombstone): set delete.enabled=true (with pk.mode=record_key) to delete its row".into());
        }
        (WriteKind::Delete, key_cells)
    } else {
        let mut value_cells = cells(&record.value, VALUE_COLUMN)?;
        if !settings.fields_whitelist.is_empty() {
            value_cells.retain(|c| settings.fields_whitelist.contains(&c.column.name));
        }
        value_cells.retain(|c| !key.contains(&c.column.name));
        let mut all = key_cells;
        all.extend(value_cells);
        if settings.coordinate_columns {
            let extra = coordinates(record, &KAFKA_COLUMNS);
            all.extend(extra.into_iter().filter(|c| !key.contains(&c.column.name)));
        }
        (settings.insert_mode, all)
    };
    all.dedup_by(|a, b| a.column.name == b.column.name);
    Ok(Row {
        write: Write {
            table,
            kind,
            columns: all.iter().map(|c| c.column.name.clone()).collect(),
            values: all.iter().map(|c| c.value.clone()).collect(),
            key,
        },
        columns: all.into_iter().map(|c| c.column).collect(),
    })
}

/// The record's topic, partition and offset under these column names.
fn coordinates(record: &SinkRecord, names: &[&str]) -> Vec<Cell> {
    let column = |name: &str, kind| Column {
        name: name.to_owned(),
        kind,
        nullable: false,
        primary_key: false,
    };
    vec![
        Cell {
            column: column(names[0], ColumnType::Text),
            value: SqlValue::Text(record.topic.to_string()),
        },
        Cell {
            column: column(names[1], ColumnType::Int32),
            value: SqlValue::Int(record.partition.into()),
        },
        Cell {
            column: column(names[2], ColumnType::Int64),
            value: SqlValue::Int(record.kafka_offset),
        },
    ]
}

/// The cells `pk.fields` names (all of them when it names none).
fn pick(cells: Vec<Cell>, fields: &[String], of: &str) -> Result<Vec<Cell>, String> {
    if fields.is_empty() || cells.len() == 1 && cells[0].column.name == fields[0] {
        return Ok(cells);
    }
    let mut picked = Vec::new();
    for field in fields {
        match cells.iter().find(|c| &c.column.name == field) {
            Some(cell) => picked.push(Cell {
                column: cell.column.clone(),
                value: cell.value.clone(),
            }),
            None => return Err(format!("its {of} has no field {field:?} (pk.fields)")),
        }
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::data::{SchemaBuilder, Struct};

    use super::*;
    use crate::jdbc::sink::settings::SinkSettings;

    fn settings(pairs: &[(&str, &str)]) -> SinkSettings {
        let config = [("connection.url", "jdbc:sqlite:x.db")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SinkSettings::parse(&config).unwrap()
    }

    fn record(key: Data, value: Data) -> SinkRecord {
        SinkRecord {
            topic: "orders".into(),
            partition: 2,
            kafka_offset: 41,
            key,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    fn order() -> Data {
        let schema = Arc::new(
            SchemaBuilder::struct_()
                .field("id", Schema::primitive(SchemaType::Int64))
                .field("note", Schema::optional(SchemaType::String))
                .field("total", logical::decimal(2).build())
                .build(),
        );
        let mut s = Struct::new(schema.clone());
        s.put("id", Value::Int64(7));
        s.put(
            "total",
            Value::Decimal(sluice_core::data::Decimal {
                unscaled: 1250,
                scale: 2,
            }),
        );
        Data::new(Some(schema), Value::Struct(s))
    }

    #[test]
    fn a_struct_value_keyed_by_its_own_field_upserts() {
        let row = row(
            &record(Data::NULL, order()),
            &settings(&[
                ("insert.mode", "upsert"),
                ("pk.mode", "record_value"),
                ("pk.fields", "id"),
            ]),
        )
        .unwrap();
        assert_eq!(row.write.table, "orders");
        assert_eq!(row.write.kind, WriteKind::Upsert);
        assert_eq!(row.write.columns, ["id", "note", "total"]);
        assert_eq!(row.write.key, ["id"]);
        assert_eq!(row.write.values[0], SqlValue::Int(7));
        assert_eq!(row.write.values[1], SqlValue::Null);
        assert!(row.columns[0].primary_key && !row.columns[0].nullable);
        assert_eq!(
            row.columns[2].kind,
            ColumnType::Numeric {
                precision: None,
                scale: Some(2)
            }
        );
    }

    #[test]
    fn kafka_coordinates_key_rows_and_primitives_take_one_column() {
        let row = row(
            &record(Data::string("k"), Data::string("hello")),
            &settings(&[
                ("pk.mode", "kafka"),
                ("table.name.format", "kafka_${topic}"),
            ]),
        )
        .unwrap();
        assert_eq!(row.write.table, "kafka_orders");
        assert_eq!(
            row.write.columns,
            [
                "__connect_topic",
                "__connect_partition",
                "__connect_offset",
                "__connect_value"
            ]
        );
        assert_eq!(row.write.values[2], SqlValue::Int(41));
    }

    #[test]
    fn tombstones_delete_only_when_enabled() {
        let deleting = settings(&[("pk.mode", "record_key"), ("delete.enabled", "true")]);
        let row = row(&record(Data::string("k"), Data::NULL), &deleting).unwrap();
        assert_eq!(row.write.kind, WriteKind::Delete);
        assert_eq!(row.write.columns, ["__connect_key"]);
        let e = super::row(
            &record(Data::string("k"), Data::NULL),
            &settings(&[("pk.mode", "record_key")]),
        )
        .unwrap_err();
        assert!(e.contains("delete.enabled"), "{e}");
        let e = super::row(&record(Data::NULL, Data::string("v")), &deleting).unwrap_err();
        assert!(e.contains("key is null"), "{e}");
    }
}
