//! `MaskField$Key` / `MaskField$Value`: replaces the `fields` of a struct or schemaless map with their
//! type's empty value (false, 0, "", an empty array or map, the epoch), or with `replacement` read as
//! the field's type. Nulls stay null; the schema is unchanged. Tombstones pass untouched.

use super::support::{entry, field_index, make_struct, put_entry, Part};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::convert::unscaled_at_scale;
use crate::data::{Decimal, Value};

const PURPOSE: &str = "masking fields";

struct MaskField {
    part: Part,
    fields: Vec<String>,
    replacement: Option<String>,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required("fields", ConfigType::List, "Fields to mask.")
        .check(|v| match v.split(',').any(|f| !f.trim().is_empty()) {
            true => Ok(()),
            false => Err("must name at least one field".into()),
        })
        .optional(
            "replacement",
            ConfigType::String,
            "",
            "What masked values become.",
        )
        .parse(config)?;
    Ok(Box::new(MaskField {
        part,
        fields: parsed.list("fields"),
        replacement: config.get("replacement").filter(|r| !r.is_empty()).cloned(),
    }))
}

impl MaskField {
    fn masked(&self, field: &str, value: &Value) -> Result<Value, TransformError> {
        let cannot = |why: &str| {
            TransformError::Data(format!(
                "cannot mask field {field:?}: a {} value {why}",
                value.type_name()
            ))
        };
        let Some(replacement) = &self.replacement else {
            return Ok(match value {
                Value::Null => Value::Null,
                Value::Boolean(_) => Value::Boolean(false),
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::String(_) => Value::String(String::new()),
                Value::Decimal(d) => Value::Decimal(Decimal {
                    unscaled: 0,
                    scale: d.scale,
                }),
                Value::Date(_) => Value::Date(0),
                Value::Time(_) => Value::Time(0),
                Value::Timestamp(_) => Value::Timestamp(0),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                Value::Bytes(_) | Value::Struct(_) => return Err(cannot("has no empty value")),
            });
        };
        let text = replacement.trim();
        let number = |kind: &str| {
            TransformError::Data(format!(
                "cannot mask field {field:?} with replacement {replacement:?}: not a valid {kind}"
            ))
        };
        Ok(match value {
            Value::Null => Value::Null,
            Value::String(_) => Value::String(replacement.clone()),
            Value::Boolean(_) => Value::Boolean(text.eq_ignore_ascii_case("true")),
            Value::Int8(_) => Value::Int8(text.parse().map_err(|_| number("int8"))?),
            Value::Int16(_) => Value::Int16(text.parse().map_err(|_| number("int16"))?),
            Value::Int32(_) => Value::Int32(text.parse().map_err(|_| number("int32"))?),
            Value::Int64(_) => Value::Int64(text.parse().map_err(|_| number("int64"))?),
            Value::Float32(_) => Value::Float32(text.parse().map_err(|_| number("float32"))?),
            Value::Float64(_) => Value::Float64(text.parse().map_err(|_| number("float64"))?),
            Value::Decimal(d) => Value::Decimal(Decimal {
                unscaled: unscaled_at_scale(text, d.scale).map_err(|_| number("decimal"))?,
                scale: d.scale,
            }),
            _ => return Err(cannot("cannot take a custom replacement")),
        })
    }
}

impl Transformation for MaskField {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        if data.value.is_null() {
            return Ok(Outcome::Keep);
        }
        match (data.schema.clone(), std::mem::take(&mut data.value)) {
            (None, Value::Map(mut entries)) => {
                for field in &self.fields {
                    let masked = match entry(&entries, field) {
                        Some(value) => self.masked(field, value)?,
                        None => Value::Null,
                    };
                    put_entry(&mut entries, field, masked);
                }
                data.value = Value::Map(entries);
            }
            (Some(schema), Value::Struct(s)) => {
                let mut values = s.into_values();
                for field in &self.fields {
                    let index = field_index(&schema, field)?;
                    values[index] = self.masked(field, &values[index])?;
                }
                data.value = make_struct(&schema, values)?;
            }
            (schema, other) => {
                return Err(TransformError::WrongType {
                    expected: match schema {
                        None => "Map objects in absence of schema",
                        Some(_) => "Struct objects",
                    },
                    purpose: PURPOSE,
                    found: other.type_name(),
                })
            }
        }
        Ok(Outcome::Keep)
    }
}
