//! Rows as Connect structs: each column's SQL type mapped to Connect's (`numeric.mapping` decides
//! NUMERIC columns), nullable columns optional, the struct named after the table as Confluent names
//! it. Columns of a type with no mapping are left out with a warning, as Confluent's connector does.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::data::{logical, Decimal, Schema, SchemaBuilder, SchemaType, Struct, Value};

use crate::jdbc::database::{Column, ColumnType, SqlValue};

/// `numeric.mapping`: how NUMERIC and DECIMAL columns map to Connect types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericMapping {
    /// Always a Connect Decimal.
    None,
    /// Integers by precision when the scale is 0 (INT8 below 3 digits, INT16 below 5, INT32 below 10,
    /// INT64 below 19); Decimal otherwise.
    PrecisionOnly,
    /// As `precision_only`, and FLOAT64 for a scale above 0 and a precision below 19.
    BestFit,
    /// As `best_fit`, and FLOAT64 for every scale above 0.
    BestFitEagerDouble,
}

impl NumericMapping {
    pub fn parse(text: &str) -> Result<NumericMapping, String> {
        match text.trim() {
            "" | "none" => Ok(NumericMapping::None),
            "precision_only" => Ok(NumericMapping::PrecisionOnly),
            "best_fit" => Ok(NumericMapping::BestFit),
            "best_fit_eager_double" => Ok(NumericMapping::BestFitEagerDouble),
            other => Err(format!(
                "{other:?} is not one of none, precision_only, best_fit, best_fit_eager_double"
            )),
        }
    }
}

/// What a column becomes in the struct.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// A Decimal of the column's declared scale.
    Decimal(i32),
    /// A Decimal of each value's own scale: the column declares none (PostgreSQL's bare `numeric`).
    DecimalOfValue,
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
}

fn target(kind: &ColumnType, mapping: NumericMapping) -> Option<Target> {
    Some(match kind {
        ColumnType::Boolean => Target::Boolean,
        ColumnType::Int16 => Target::Int16,
        ColumnType::Int32 => Target::Int32,
        ColumnType::Int64 => Target::Int64,
        ColumnType::Float32 => Target::Float32,
        ColumnType::Float64 => Target::Float64,
        ColumnType::Text => Target::String,
        ColumnType::Bytes => Target::Bytes,
        ColumnType::Date => Target::Date,
        ColumnType::Time => Target::Time,
        ColumnType::Timestamp => Target::Timestamp,
        ColumnType::Numeric { precision, scale } => {
            let scale = scale.map(|s| s as i32);
            match (mapping, *precision, scale) {
                (NumericMapping::None, _, Some(scale)) => Target::Decimal(scale),
                (NumericMapping::None, _, None) => Target::DecimalOfValue,
                (_, Some(p), Some(0)) if p < 3 => Target::Int8,
                (_, Some(p), Some(0)) if p < 5 => Target::Int16,
                (_, Some(p), Some(0)) if p < 10 => Target::Int32,
                (_, Some(p), Some(0)) if p < 19 => Target::Int64,
                (NumericMapping::BestFit, Some(p), Some(s)) if s > 0 && p < 19 => Target::Float64,
                (NumericMapping::BestFitEagerDouble, _, Some(s)) if s > 0 => Target::Float64,
                (NumericMapping::BestFit | NumericMapping::BestFitEagerDouble, _, None) => {
                    Target::Float64
                }
                (_, _, Some(scale)) => Target::Decimal(scale),
                (_, _, None) => Target::DecimalOfValue,
            }
        }
        ColumnType::Other(_) => return None,
    })
}

fn field_schema(target: Target, scale: i32, optional: bool) -> Schema {
    let builder = match target {
        Target::Boolean => SchemaBuilder::new(SchemaType::Boolean),
        Target::Int8 => SchemaBuilder::new(SchemaType::Int8),
        Target::Int16 => SchemaBuilder::new(SchemaType::Int16),
        Target::Int32 => SchemaBuilder::new(SchemaType::Int32),
        Target::Int64 => SchemaBuilder::new(SchemaType::Int64),
        Target::Float32 => SchemaBuilder::new(SchemaType::Float32),
        Target::Float64 => SchemaBuilder::new(SchemaType::Float64),
        Target::Decimal(_) | Target::DecimalOfValue => logical::decimal(scale),
        Target::String => SchemaBuilder::new(SchemaType::String),
        Target::Bytes => SchemaBuilder::new(SchemaType::Bytes),
        Target::Date => logical::date(),
        Target::Time => logical::time(),
        Target::Timestamp => logical::timestamp(),
    };
    if optional {
        builder.optional().build()
    } else {
        builder.build()
    }
}

/// Why a row could not become a struct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column:?}: {message}")]
pub struct ConversionError {
    pub column: String,
    pub message: String,
}

/// Turns the rows of one table or query into structs of one schema (one per set of value scales, for
/// columns that declare none).
#[derive(Debug)]
pub struct RowSchema {
    name: Option<String>,
    /// Per column of the select: its target, or None when left out.
    columns: Vec<(Column, Option<Target>)>,
    schemas: BTreeMap<Vec<i32>, Arc<Schema>>,
}

impl RowSchema {
    /// The schema of `columns`; `name` names the struct (the table). Columns left out are returned too.
    pub fn new(
        name: Option<String>,
        columns: &[Column],
        mapping: NumericMapping,
    ) -> (RowSchema, Vec<Column>) {
        let columns: Vec<(Column, Option<Target>)> = columns
            .iter()
            .map(|c| (c.clone(), target(&c.kind, mapping)))
            .collect();
        let left_out = columns
            .iter()
            .filter(|(_, t)| t.is_none())
            .map(|(c, _)| c.clone())
            .collect();
        (
            RowSchema {
                name,
                columns,
                schemas: BTreeMap::new(),
            },
            left_out,
        )
    }

    /// The columns the rows were read with.
    pub fn matches(&self, columns: &[Column]) -> bool {
        self.columns.len() == columns.len()
            && self.columns.iter().zip(columns).all(|((a, _), b)| a == b)
    }

    fn schema(&mut self, scales: Vec<i32>) -> Arc<Schema> {
        if let Some(schema) = self.schemas.get(&scales) {
            return schema.clone();
        }
        let mut builder = SchemaBuilder::struct_();
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        let mut value_scales = scales.iter();
        for (column, target) in &self.columns {
            let Some(target) = *target else {
                continue;
            };
            let scale = match target {
                Target::Decimal(scale) => scale,
                Target::DecimalOfValue => value_scales.next().copied().unwrap_or(0),
                _ => 0,
            };
            builder = builder.field(
                column.name.clone(),
                field_schema(target, scale, column.nullable),
            );
        }
        let schema = Arc::new(builder.build());
        self.schemas.insert(scales, schema.clone());
        schema
    }

    /// One row as a struct.
    pub fn convert(&mut self, row: Vec<SqlValue>) -> Result<Struct, ConversionError> {
        let scales: Vec<i32> = self
            .columns
            .iter()
            .zip(&row)
            .filter(|((_, t), _)| *t == Some(Target::DecimalOfValue))
            .map(|(_, v)| match v {
                SqlValue::Decimal { scale, .. } => *scale,
                _ => 0,
            })
            .collect();
        let schema = self.schema(scales);
        let mut values = Vec::with_capacity(schema.fields.len());
        for ((column, target), value) in self.columns.iter().zip(row) {
            let Some(target) = *target else {
                continue;
            };
            let value = convert(target, value).map_err(|message| ConversionError {
                column: column.name.clone(),
                message,
            })?;
            if value.is_null() && !column.nullable {
                return Err(ConversionError {
                    column: column.name.clone(),
                    message: "is null, but the column is NOT NULL".into(),
                });
            }
            values.push(value);
        }
        // The schema has a field for each column with a target, in column order.
        let found = values.len();
        Struct::from_values(schema, values).ok_or_else(|| ConversionError {
            column: self
                .columns
                .iter()
                .filter(|(_, target)| target.is_some())
                .nth(found)
                .map(|(column, _)| column.name.clone())
                .unwrap_or_default(),
            message: "the row has no value for this column".into(),
        })
    }
}

fn convert(target: Target, value: SqlValue) -> Result<Value, String> {
    let out_of_range =
        |n: &dyn std::fmt::Display, kind: &str| format!("{n} does not fit in {kind}");
    Ok(match (target, value) {
        (_, SqlValue::Null) => Value::Null,
        (Target::Boolean, SqlValue::Bool(b)) => Value::Boolean(b),
        (Target::Boolean, SqlValue::Int(n)) => Value::Boolean(n != 0),
        (Target::Int8, SqlValue::Int(n)) => {
            Value::Int8(i8::try_from(n).map_err(|_| out_of_range(&n, "int8"))?)
        }
        (Target::Int16, SqlValue::Int(n)) => {
            Value::Int16(i16::try_from(n).map_err(|_| out_of_range(&n, "int16"))?)
        }
        (Target::Int32, SqlValue::Int(n)) => {
            Value::Int32(i32::try_from(n).map_err(|_| out_of_range(&n, "int32"))?)
        }
        (Target::Int64, SqlValue::Int(n)) => Value::Int64(n),
        (
            Target::Int8 | Target::Int16 | Target::Int32 | Target::Int64,
            SqlValue::Decimal { unscaled, scale },
        ) => {
            let whole = if scale > 0 {
                unscaled / 10i128.pow(scale as u32)
            } else {
                unscaled
            };
            let n = i64::try_from(whole).map_err(|_| out_of_range(&whole, "int64"))?;
            return convert(target, SqlValue::Int(n));
        }
        (Target::Float32, SqlValue::Float(f)) => Value::Float32(f as f32),
        (Target::Float64, SqlValue::Float(f)) => Value::Float64(f),
        (Target::Float32 | Target::Float64, SqlValue::Int(n)) => {
            return convert(target, SqlValue::Float(n as f64))
        }
        (Target::Float64, SqlValue::Decimal { unscaled, scale }) => {
            Value::Float64(unscaled as f64 / 10f64.powi(scale))
        }
        (Target::Decimal(want), SqlValue::Decimal { unscaled, scale }) => {
            Value::Decimal(rescale(unscaled, scale, want)?)
        }
        (Target::Decimal(want), SqlValue::Int(n)) => {
            Value::Decimal(rescale(i128::from(n), 0, want)?)
        }
        (Target::DecimalOfValue, SqlValue::Decimal { unscaled, scale }) => {
            Value::Decimal(Decimal { unscaled, scale })
        }
        (Target::String, SqlValue::Text(s)) => Value::String(s),
        (Target::Bytes, SqlValue::Bytes(b)) => Value::Bytes(b),
        (Target::Date, SqlValue::Date(days)) => Value::Date(days),
        (Target::Time, SqlValue::Time(nanos)) => Value::Time((nanos / 1_000_000) as i32),
        (Target::Timestamp, SqlValue::Timestamp(t)) => Value::Timestamp(t.millis()),
        (target, value) => {
            return Err(format!(
                "a {} value cannot be read as {target:?}",
                value.type_name()
            ))
        }
    })
}

/// `unscaled * 10^-from` at scale `to`, refusing to drop digits.
fn rescale(unscaled: i128, from: i32, to: i32) -> Result<Decimal, String> {
    let shifted = if to >= from {
        10i128
            .checked_pow((to - from) as u32)
            .and_then(|f| unscaled.checked_mul(f))
    } else {
        let f = 10i128.checked_pow((from - to) as u32);
        f.filter(|f| unscaled % f == 0).map(|f| unscaled / f)
    };
    shifted
        .map(|unscaled| Decimal {
            unscaled,
            scale: to,
        })
        .ok_or_else(|| format!("{unscaled}e-{from} does not fit a decimal of scale {to}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, kind: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.into(),
            kind,
            nullable,
            primary_key: false,
        }
    }

    fn numeric(precision: u32, scale: u32) -> ColumnType {
        ColumnType::Numeric {
            precision: Some(precision),
            scale: Some(scale),
        }
    }

    #[test]
    fn numeric_mapping_follows_confluents_rules() {
        use NumericMapping::*;
        assert_eq!(target(&numeric(10, 2), None), Some(Target::Decimal(2)));
        assert_eq!(target(&numeric(4, 0), PrecisionOnly), Some(Target::Int16));
        assert_eq!(
            target(&numeric(10, 2), PrecisionOnly),
            Some(Target::Decimal(2))
        );
        assert_eq!(target(&numeric(10, 2), BestFit), Some(Target::Float64));
        assert_eq!(target(&numeric(30, 2), BestFit), Some(Target::Decimal(2)));
        assert_eq!(
            target(&numeric(30, 2), BestFitEagerDouble),
            Some(Target::Float64)
        );
        assert_eq!(target(&numeric(18, 0), BestFit), Some(Target::Int64));
        assert!(NumericMapping::parse("fastest").is_err());
    }

    #[test]
    fn a_row_becomes_a_struct_named_after_its_table() {
        let columns = [
            column("id", ColumnType::Int64, false),
            column("price", numeric(10, 2), true),
            column("at", ColumnType::Timestamp, false),
            column("shape", ColumnType::Other("GEOMETRY".into()), true),
        ];
        let (mut schema, left_out) =
            RowSchema::new(Some("orders".into()), &columns, NumericMapping::None);
        assert_eq!(left_out, [columns[3].clone()]);
        let row = schema
            .convert(vec![
                SqlValue::Int(7),
                SqlValue::Decimal {
                    unscaled: 125,
                    scale: 1,
                },
                SqlValue::Timestamp(crate::jdbc::timestamp::Timestamp(1_500_000_001)),
                SqlValue::Text("POINT(0 0)".into()),
            ])
            .unwrap();
        assert_eq!(row.schema().name.as_deref(), Some("orders"));
        assert_eq!(row.schema().fields.len(), 3);
        assert!(row.schema().field("price").unwrap().schema.optional);
        assert_eq!(row.get("id"), Some(&Value::Int64(7)));
        assert_eq!(
            row.get("price"),
            Some(&Value::Decimal(Decimal {
                unscaled: 1250,
                scale: 2
            }))
        );
        assert_eq!(row.get("at"), Some(&Value::Timestamp(1_500)));
        let e = schema
            .convert(vec![
                SqlValue::Null,
                SqlValue::Null,
                SqlValue::Null,
                SqlValue::Null,
            ])
            .unwrap_err();
        assert_eq!(e.column, "id");
    }

    #[test]
    fn digits_are_never_dropped_to_fit_a_scale() {
        assert!(rescale(1255, 3, 2).is_err());
        assert_eq!(
            rescale(1250, 3, 2),
            Ok(Decimal {
                unscaled: 125,
                scale: 2
            })
        );
    }
}
