//! `Cast$Key` / `Cast$Value`: casts the whole key or value (`spec=int64`) or fields of a struct or
//! schemaless map (`spec=a:int32,b:string`) to int8, int16, int32, int64, float32, float64, boolean or
//! string, as Kafka does: numbers narrow as Java's casts do, strings are parsed, bytes become base64,
//! dates and times ISO-8601 strings or milliseconds.

use std::sync::Arc;

use base64::Engine as _;

use super::date_format::{format_millis, ISO_DATE, ISO_TIME, ISO_TIMESTAMP};
use super::support::{
    field_index, make_struct, put_entry, require_map, require_struct, Part, SchemaCache,
};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::convert::java_decimal;
use crate::data::{Schema, SchemaBuilder, SchemaType, Value};

const PURPOSE: &str = "cast types";
const SUPPORTED: &str = "int8, int16, int32, int64, float32, float64, boolean, string";

/// The types a value can be cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
}

impl Target {
    fn parse(name: &str) -> Option<Target> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "int8" => Target::Int8,
            "int16" => Target::Int16,
            "int32" => Target::Int32,
            "int64" => Target::Int64,
            "float32" => Target::Float32,
            "float64" => Target::Float64,
            "boolean" => Target::Boolean,
            "string" => Target::String,
            _ => return None,
        })
    }

    fn schema_type(self) -> SchemaType {
        match self {
            Target::Int8 => SchemaType::Int8,
            Target::Int16 => SchemaType::Int16,
            Target::Int32 => SchemaType::Int32,
            Target::Int64 => SchemaType::Int64,
            Target::Float32 => SchemaType::Float32,
            Target::Float64 => SchemaType::Float64,
            Target::Boolean => SchemaType::Boolean,
            Target::String => SchemaType::String,
        }
    }
}

/// What `spec` casts.
enum Spec {
    Whole(Target),
    Fields(Vec<(String, Target)>),
}

struct Cast {
    part: Part,
    spec: Spec,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "spec",
            ConfigType::List,
            "A type for the whole value, or field:type pairs.",
        )
        .parse(config)?;
    let items = parsed.list("spec");
    let bad = |message: String| ConfigError::single("spec", message);
    let unknown = |t: &str| bad(format!("unknown type {t:?}; supported: {SUPPORTED}"));
    let spec = match items.as_slice() {
        [] => return Err(bad("must name a type, or field:type pairs".into())),
        [single] if !single.contains(':') => {
            Spec::Whole(Target::parse(single).ok_or_else(|| unknown(single))?)
        }
        pairs => Spec::Fields(
            pairs
                .iter()
                .map(|pair| match pair.split_once(':') {
                    Some((field, t)) if !field.trim().is_empty() => Ok((
                        field.trim().to_owned(),
                        Target::parse(t).ok_or_else(|| unknown(t.trim()))?,
                    )),
                    _ => Err(bad(format!(
                        "{pair:?} is not field:type (a single type casts the whole value)"
                    ))),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Box::new(Cast {
        part,
        spec,
        schemas: SchemaCache::default(),
    }))
}

/// The schema of a cast value: the target's type, as optional as the original.
fn cast_schema(original: &Schema, target: Target) -> Schema {
    let builder = SchemaBuilder::new(target.schema_type());
    match original.optional {
        true => builder.optional().build(),
        false => builder.build(),
    }
}

impl Cast {
    fn fields_schema(
        &self,
        fields: &[(String, Target)],
        base: &Schema,
    ) -> Result<Schema, TransformError> {
        for (field, _) in fields {
            field_index(base, field)?;
        }
        let mut builder = SchemaBuilder::struct_like(base);
        for field in &base.fields {
            builder = match fields.iter().find(|(f, _)| *f == field.name) {
                Some((_, target)) => {
                    builder.field(&field.name, cast_schema(&field.schema, *target))
                }
                None => builder.field_shared(&field.name, field.schema.clone()),
            };
        }
        Ok(builder.build())
    }
}

impl Transformation for Cast {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        let value = std::mem::take(&mut data.value);
        match (&self.spec, data.schema.clone()) {
            (Spec::Whole(target), None) => data.value = cast(value, *target)?,
            (Spec::Whole(target), Some(schema)) => {
                let cast_to: Arc<Schema> = self
                    .schemas
                    .derive(&schema, |s| Ok(cast_schema(s, *target)))?;
                data.value = cast(value, *target)?;
                data.schema = Some(cast_to);
            }
            (Spec::Fields(_), _) if value.is_null() => {}
            (Spec::Fields(fields), None) => {
                let mut entries = require_map(value, PURPOSE)?;
                for (field, target) in fields {
                    if let Some(found) = super::support::entry(&entries, field).cloned() {
                        put_entry(&mut entries, field, cast(found, *target)?);
                    }
                }
                data.value = Value::Map(entries);
            }
            (Spec::Fields(fields), Some(schema)) => {
                let values = require_struct(value, PURPOSE)?.into_values();
                let updated = self
                    .schemas
                    .derive(&schema, |s| self.fields_schema(fields, s))?;
                let values = schema
                    .fields
                    .iter()
                    .zip(values)
                    .map(
                        |(field, value)| match fields.iter().find(|(f, _)| *f == field.name) {
                            Some((_, target)) => cast(value, *target),
                            None => Ok(value),
                        },
                    )
                    .collect::<Result<Vec<_>, _>>()?;
                data.value = make_struct(&updated, values)?;
                data.schema = Some(updated);
            }
        }
        Ok(Outcome::Keep)
    }
}

/// A number, boolean, decimal or time as Java's `long`, for the integer casts.
fn as_integer(value: &Value) -> Option<i64> {
    Some(match value {
        Value::Int8(n) => i64::from(*n),
        Value::Int16(n) => i64::from(*n),
        Value::Int32(n) => i64::from(*n),
        Value::Int64(n) => *n,
        Value::Boolean(b) => i64::from(*b),
        Value::Decimal(d) => {
            let whole = match d.scale {
                s if s > 0 => d.unscaled / 10i128.pow(s.unsigned_abs()),
                s => d.unscaled * 10i128.pow(s.unsigned_abs()),
            };
            whole as i64
        }
        Value::Timestamp(ms) => *ms,
        Value::Time(ms) => i64::from(*ms),
        Value::Date(days) => i64::from(*days) * 86_400_000,
        _ => return None,
    })
}

fn as_float(value: &Value) -> Option<f64> {
    Some(match value {
        Value::Float32(f) => f64::from(*f),
        Value::Float64(f) => *f,
        Value::Decimal(d) => d.unscaled as f64 / 10f64.powi(d.scale),
        other => as_integer(other)? as f64,
    })
}

fn cast(value: Value, target: Target) -> Result<Value, TransformError> {
    let unsupported = |value: &Value| {
        TransformError::Data(format!(
            "Cast transformation does not support casting a {} value to {target:?}",
            value.type_name()
        ))
    };
    let unparsable =
        |text: &str| TransformError::Data(format!("cannot cast the string {text:?} to {target:?}"));
    if value.is_null() {
        return Ok(Value::Null);
    }
    if matches!(value, Value::Array(_) | Value::Map(_) | Value::Struct(_)) {
        return Err(unsupported(&value));
    }
    if let Value::String(text) = &value {
        let text = text.trim();
        return Ok(match target {
            Target::String => value,
            Target::Boolean => Value::Boolean(text.eq_ignore_ascii_case("true")),
            Target::Int8 => Value::Int8(text.parse().map_err(|_| unparsable(text))?),
            Target::Int16 => Value::Int16(text.parse().map_err(|_| unparsable(text))?),
            Target::Int32 => Value::Int32(text.parse().map_err(|_| unparsable(text))?),
            Target::Int64 => Value::Int64(text.parse().map_err(|_| unparsable(text))?),
            Target::Float32 => Value::Float32(text.parse().map_err(|_| unparsable(text))?),
            Target::Float64 => Value::Float64(text.parse().map_err(|_| unparsable(text))?),
        });
    }
    let is_float = matches!(value, Value::Float32(_) | Value::Float64(_));
    // Java narrows a double to an int first (saturating), then wraps to the narrower type.
    let integer = || match is_float {
        true => as_float(&value).map(|f| f as i64),
        false => as_integer(&value),
    };
    let int32 = || match is_float {
        true => as_float(&value).map(|f| f as i32),
        false => as_integer(&value).map(|n| n as i32),
    };
    Ok(match target {
        Target::Int8 => Value::Int8(int32().ok_or_else(|| unsupported(&value))? as i8),
        Target::Int16 => Value::Int16(int32().ok_or_else(|| unsupported(&value))? as i16),
        Target::Int32 => Value::Int32(int32().ok_or_else(|| unsupported(&value))?),
        Target::Int64 => Value::Int64(integer().ok_or_else(|| unsupported(&value))?),
        Target::Float32 => {
            Value::Float32(as_float(&value).ok_or_else(|| unsupported(&value))? as f32)
        }
        Target::Float64 => Value::Float64(as_float(&value).ok_or_else(|| unsupported(&value))?),
        Target::Boolean => Value::Boolean(match &value {
            Value::Boolean(b) => *b,
            other => as_float(other).ok_or_else(|| unsupported(other))? != 0.0,
        }),
        Target::String => Value::String(match &value {
            Value::Boolean(b) => b.to_string(),
            Value::Int8(n) => n.to_string(),
            Value::Int16(n) => n.to_string(),
            Value::Int32(n) => n.to_string(),
            Value::Int64(n) => n.to_string(),
            Value::Float32(f) => format!("{f:?}"),
            Value::Float64(f) => format!("{f:?}"),
            Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
            // Kafka's Cast writes `BigDecimal.toString`.
            Value::Decimal(d) => java_decimal(d),
            Value::Timestamp(ms) => format_millis(*ms, ISO_TIMESTAMP),
            Value::Date(days) => format_millis(i64::from(*days) * 86_400_000, ISO_DATE),
            Value::Time(ms) => format_millis(i64::from(*ms), ISO_TIME),
            other => return Err(unsupported(other)),
        }),
    })
}
