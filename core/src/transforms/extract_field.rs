//! `ExtractField$Key` / `ExtractField$Value`: replaces a struct or schemaless map with one of its
//! fields (`field`); the field's schema becomes the schema. A null stays null.

use super::support::{entry, field_index, Part};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::Value;

const PURPOSE: &str = "field extraction";

struct ExtractField {
    part: Part,
    field: String,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required("field", ConfigType::String, "The field to extract.")
        .check(|v| match v.trim().is_empty() {
            true => Err("must name a field".into()),
            false => Ok(()),
        })
        .optional(
            "field.syntax.version",
            ConfigType::String,
            "V1",
            "V1: the field name is taken as it is (nested paths, V2, are not supported).",
        )
        .check(|v| match v.trim().to_ascii_uppercase().as_str() {
            "V1" => Ok(()),
            "V2" => Err("nested field paths (V2) are not supported; use V1".into()),
            _ => Err("must be V1".into()),
        })
        .parse(config)?;
    Ok(Box::new(ExtractField {
        part,
        field: parsed.string("field").to_owned(),
    }))
}

impl Transformation for ExtractField {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        match (data.schema.clone(), std::mem::take(&mut data.value)) {
            (None, Value::Null) => {}
            (None, Value::Map(entries)) => {
                data.value = entry(&entries, &self.field).cloned().unwrap_or(Value::Null);
            }
            (Some(schema), value) => {
                let index = field_index(&schema, &self.field)?;
                let field_schema = schema.fields[index].schema.clone();
                data.value = match value {
                    Value::Null => Value::Null,
                    Value::Struct(s) => s.into_values().swap_remove(index),
                    other => {
                        return Err(TransformError::WrongType {
                            expected: "Struct objects",
                            purpose: PURPOSE,
                            found: other.type_name(),
                        })
                    }
                };
                data.schema = Some(field_schema);
            }
            (None, other) => {
                return Err(TransformError::WrongType {
                    expected: "Map objects in absence of schema",
                    purpose: PURPOSE,
                    found: other.type_name(),
                })
            }
        }
        Ok(Outcome::Keep)
    }
}
