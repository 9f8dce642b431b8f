//! `Flatten$Key` / `Flatten$Value`: lifts the fields of nested structs (or schemaless maps) to the top
//! level, naming each by its path joined with `delimiter` (default `.`). Fields under an optional
//! struct become optional; a null nested struct makes its fields null. Arrays and maps in a struct
//! stay as they are.

use std::sync::Arc;

use super::support::{make_struct, require_map, require_struct, Entries, Part, SchemaCache};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Schema, SchemaBuilder, SchemaType, Value};

const PURPOSE: &str = "flattening";

struct Flatten {
    part: Part,
    delimiter: String,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    ConfigDef::new()
        .optional(
            "delimiter",
            ConfigType::String,
            ".",
            "Joins the names of nested fields.",
        )
        .parse(config)?;
    Ok(Box::new(Flatten {
        part,
        delimiter: config
            .get("delimiter")
            .cloned()
            .unwrap_or_else(|| ".".into()),
        schemas: SchemaCache::default(),
    }))
}

impl Flatten {
    fn name(&self, prefix: &str, field: &str) -> String {
        match prefix.is_empty() {
            true => field.to_owned(),
            false => format!("{prefix}{}{field}", self.delimiter),
        }
    }

    fn flatten_entries(
        &self,
        prefix: &str,
        entries: Entries,
        out: &mut Entries,
    ) -> Result<(), TransformError> {
        for (key, value) in entries {
            let Value::String(key) = key else {
                return Err(TransformError::Data(format!(
                    "cannot flatten a map whose key is a {}",
                    key.type_name()
                )));
            };
            let name = self.name(prefix, &key);
            match value {
                Value::Map(nested) => self.flatten_entries(&name, nested, out)?,
                Value::Struct(_) => {
                    return Err(TransformError::Data(format!(
                        "cannot flatten the struct in field {name:?} without a schema"
                    )))
                }
                other => out.push((Value::String(name), other)),
            }
        }
        Ok(())
    }

    fn flatten_schema(
        &self,
        prefix: &str,
        schema: &Schema,
        optional: bool,
        builder: SchemaBuilder,
    ) -> SchemaBuilder {
        let mut builder = builder;
        for field in &schema.fields {
            let name = self.name(prefix, &field.name);
            let nested_optional = optional || field.schema.optional;
            builder = match field.schema.kind {
                SchemaType::Struct => {
                    self.flatten_schema(&name, &field.schema, nested_optional, builder)
                }
                _ if optional && !field.schema.optional => {
                    let mut copy = (*field.schema).clone();
                    copy.optional = true;
                    builder.field(name, copy)
                }
                _ => builder.field_shared(name, field.schema.clone()),
            };
        }
        builder
    }

    fn flatten_values(
        schema: &Schema,
        values: Option<Vec<Value>>,
        out: &mut Vec<Value>,
    ) -> Result<(), TransformError> {
        let values = values.unwrap_or_else(|| vec![Value::Null; schema.fields.len()]);
        for (field, value) in schema.fields.iter().zip(values) {
            match (field.schema.kind, value) {
                (SchemaType::Struct, Value::Struct(s)) => {
                    Self::flatten_values(&field.schema, Some(s.into_values()), out)?
                }
                (SchemaType::Struct, Value::Null) => {
                    Self::flatten_values(&field.schema, None, out)?
                }
                (SchemaType::Struct, other) => {
                    return Err(TransformError::Data(format!(
                        "field {:?} has a struct schema but holds a {}",
                        field.name,
                        other.type_name()
                    )))
                }
                (_, other) => out.push(other),
            }
        }
        Ok(())
    }
}

impl Transformation for Flatten {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        if data.value.is_null() {
            return Ok(Outcome::Keep);
        }
        let value = std::mem::take(&mut data.value);
        match data.schema.clone() {
            None => {
                let mut out = Vec::new();
                self.flatten_entries("", require_map(value, PURPOSE)?, &mut out)?;
                data.value = Value::Map(out);
            }
            Some(schema) => {
                let values = require_struct(value, PURPOSE)?.into_values();
                let flat: Arc<Schema> = self.schemas.derive(&schema, |s| {
                    Ok(self
                        .flatten_schema("", s, false, SchemaBuilder::struct_like(s))
                        .build())
                })?;
                let mut out = Vec::with_capacity(flat.fields.len());
                Self::flatten_values(&schema, Some(values), &mut out)?;
                data.value = make_struct(&flat, out)?;
                data.schema = Some(flat);
            }
        }
        Ok(Outcome::Keep)
    }
}
