//! `TimestampConverter$Key` / `TimestampConverter$Value`: converts a timestamp (the whole key or value,
//! or its `field`) between a string in `format` (a `SimpleDateFormat` pattern), a Unix number of
//! `unix.precision` units, and Connect's Date, Time and Timestamp, to `target.type`. Times are UTC.

use std::sync::Arc;

use super::date_format::DateFormat;
use super::support::{
    entry, field_index, make_struct, put_entry, require_map, require_struct, Part, SchemaCache,
};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{logical, Schema, SchemaBuilder, SchemaType, Value};

const PURPOSE: &str = "converting timestamp formats";
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

struct TimestampConverter {
    part: Part,
    target: Target,
    /// Empty: the whole key or value.
    field: String,
    format: Option<DateFormat>,
    precision: Precision,
    /// A null field takes its schema's default (`replace.null.with.default`).
    replace_null: bool,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "target.type",
            ConfigType::String,
            "string, unix, Date, Time or Timestamp.",
        )
        .check(|v| match v {
            "string" | "unix" | "Date" | "Time" | "Timestamp" => Ok(()),
            _ => Err("must be string, unix, Date, Time or Timestamp".into()),
        })
        .optional(
            "field",
            ConfigType::String,
            "",
            "The field to convert; empty converts the whole value.",
        )
        .optional(
            "format",
            ConfigType::String,
            "",
            "A SimpleDateFormat pattern for strings.",
        )
        .optional(
            "unix.precision",
            ConfigType::String,
            "milliseconds",
            "Units of Unix numbers.",
        )
        .check(|v| match v {
            "seconds" | "milliseconds" | "microseconds" | "nanoseconds" => Ok(()),
            _ => Err("must be seconds, milliseconds, microseconds or nanoseconds".into()),
        })
        .optional(
            "replace.null.with.default",
            ConfigType::Boolean,
            "true",
            "Whether a null field takes its schema's default.",
        )
        .parse(config)?;
    let target = match parsed.string("target.type") {
        "string" => Target::String,
        "unix" => Target::Unix,
        "Date" => Target::Date,
        "Time" => Target::Time,
        _ => Target::Timestamp,
    };
    let format = match config.get("format").map(|f| f.as_str()).unwrap_or("") {
        "" if target == Target::String => {
            return Err(ConfigError::single(
                "format",
                "a pattern is required when target.type is string",
            ))
        }
        "" => None,
        pattern => Some(DateFormat::new(pattern).map_err(|e| ConfigError::single("format", e))?),
    };
    let precision = match parsed.string("unix.precision") {
        "seconds" => Precision::Seconds,
        "microseconds" => Precision::Microseconds,
        "nanoseconds" => Precision::Nanoseconds,
        _ => Precision::Milliseconds,
    };
    Ok(Box::new(TimestampConverter {
        part,
        target,
        field: parsed.string("field").to_owned(),
        format,
        precision,
        replace_null: parsed.boolean("replace.null.with.default"),
        schemas: SchemaCache::default(),
    }))
}

impl TimestampConverter {
    /// A value of any supported type as milliseconds since the epoch.
    fn millis(&self, value: &Value) -> Result<i64, TransformError> {
        Ok(match value {
            Value::Timestamp(ms) => *ms,
            Value::Date(days) => i64::from(*days) * DAY_MS,
            Value::Time(ms) => i64::from(*ms),
            Value::Int64(n) => self.unix_to_millis(*n),
            Value::Int32(n) => self.unix_to_millis(i64::from(*n)),
            Value::String(text) => match &self.format {
                Some(format) => format.parse(text).map_err(TransformError::Data)?,
                None => {
                    return Err(TransformError::Data(
                        "a string timestamp needs the format key to be read".into(),
                    ))
                }
            },
            other => {
                return Err(TransformError::Data(format!(
                    "cannot convert a {} value: expected a string, a Unix number, a Date, a Time or a Timestamp",
                    other.type_name()
                )))
            }
        })
    }

    fn unix_to_millis(&self, n: i64) -> i64 {
        match self.precision {
            Precision::Seconds => n.saturating_mul(1000),
            Precision::Milliseconds => n,
            Precision::Microseconds => n / 1000,
            Precision::Nanoseconds => n / 1_000_000,
        }
    }

    fn convert(&self, value: &Value) -> Result<Value, TransformError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let ms = self.millis(value)?;
        Ok(match self.target {
            Target::String => Value::String(
                self.format
                    .as_ref()
                    .map_or_else(|| ms.to_string(), |format| format.format(ms)),
            ),
            Target::Unix => Value::Int64(match self.precision {
                Precision::Seconds => ms.div_euclid(1000),
                Precision::Milliseconds => ms,
                Precision::Microseconds => ms.saturating_mul(1000),
                Precision::Nanoseconds => ms.saturating_mul(1_000_000),
            }),
            Target::Date => {
                Value::Date(i32::try_from(ms.div_euclid(DAY_MS)).map_err(|_| {
                    TransformError::Data(format!("{ms} ms is out of a Date's range"))
                })?)
            }
            Target::Time => Value::Time(ms.rem_euclid(DAY_MS) as i32),
            Target::Timestamp => Value::Timestamp(ms),
        })
    }

    /// The schema of a converted value, as optional as the one it replaces.
    fn target_schema(&self, original: &Schema) -> Result<Schema, TransformError> {
        let readable = matches!(
            original.kind,
            SchemaType::String | SchemaType::Int64 | SchemaType::Int32
        ) || original
            .logical()
            .is_some_and(|l| !matches!(l, logical::Logical::Decimal { .. }));
        if !readable {
            return Err(TransformError::Data(format!(
                "cannot convert a value of schema type {:?}",
                original.kind
            )));
        }
        let builder = match self.target {
            Target::String => SchemaBuilder::new(SchemaType::String),
            Target::Unix => SchemaBuilder::new(SchemaType::Int64),
            Target::Date => logical::date(),
            Target::Time => logical::time(),
            Target::Timestamp => logical::timestamp(),
        };
        Ok(match original.optional {
            true => builder.optional().build(),
            false => builder.build(),
        })
    }

    fn struct_schema(&self, base: &Schema) -> Result<Schema, TransformError> {
        let index = field_index(base, &self.field)?;
        let mut builder = SchemaBuilder::struct_like(base);
        for field in &base.fields {
            builder = match field.index == index {
                true => builder.field(&field.name, self.target_schema(&field.schema)?),
                false => builder.field_shared(&field.name, field.schema.clone()),
            };
        }
        Ok(builder.build())
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        let value = std::mem::take(&mut data.value);
        match (self.field.is_empty(), data.schema.clone()) {
            (true, None) => data.value = self.convert(&value)?,
            (true, Some(schema)) => {
                let converted: Arc<Schema> =
                    self.schemas.derive(&schema, |s| self.target_schema(s))?;
                data.value = self.convert(&value)?;
                data.schema = Some(converted);
            }
            (false, _) if value.is_null() => {}
            (false, None) => {
                let mut entries = require_map(value, PURPOSE)?;
                let converted =
                    self.convert(entry(&entries, &self.field).unwrap_or(&Value::Null))?;
                put_entry(&mut entries, &self.field, converted);
                data.value = Value::Map(entries);
            }
            (false, Some(schema)) => {
                let mut values = require_struct(value, PURPOSE)?.into_values();
                let updated = self.schemas.derive(&schema, |s| self.struct_schema(s))?;
                let index = field_index(&schema, &self.field)?;
                let field_value = match &values[index] {
                    Value::Null if self.replace_null => schema.fields[index]
                        .schema
                        .default
                        .clone()
                        .unwrap_or(Value::Null),
                    other => other.clone(),
                };
                values[index] = self.convert(&field_value)?;
                data.value = make_struct(&updated, values)?;
                data.schema = Some(updated);
            }
        }
        Ok(Outcome::Keep)
    }
}
