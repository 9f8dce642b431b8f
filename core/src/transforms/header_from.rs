//! `HeaderFrom$Key` / `HeaderFrom$Value`: copies (`operation=copy`) or moves (`operation=move`) the
//! `fields` of a struct or schemaless map into headers named by `headers`, in the same order; a header
//! keeps its field's schema. Moved fields leave the struct's schema.

use super::support::{
    entry, field_index, make_struct, require_map, require_struct, Part, SchemaCache,
};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::api::Header;
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Data, Schema, SchemaBuilder, Value};

const PURPOSE: &str = "header conversion";

struct HeaderFrom {
    part: Part,
    /// Field, header.
    pairs: Vec<(String, String)>,
    moving: bool,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "fields",
            ConfigType::List,
            "Fields to copy or move into headers.",
        )
        .required("headers", ConfigType::List, "Header names, one per field.")
        .required("operation", ConfigType::String, "move or copy.")
        .check(|v| match v {
            "move" | "copy" => Ok(()),
            _ => Err("must be move or copy".into()),
        })
        .parse(config)?;
    let (fields, headers) = (parsed.list("fields"), parsed.list("headers"));
    if fields.len() != headers.len() {
        return Err(ConfigError::single(
            "headers",
            format!(
                "names {} headers for {} fields: each field needs one header",
                headers.len(),
                fields.len()
            ),
        ));
    }
    Ok(Box::new(HeaderFrom {
        part,
        pairs: fields.into_iter().zip(headers).collect(),
        moving: parsed.string("operation") == "move",
        schemas: SchemaCache::default(),
    }))
}

impl HeaderFrom {
    fn moved(&self, field: &str) -> bool {
        self.moving && self.pairs.iter().any(|(f, _)| f == field)
    }

    fn remaining_schema(&self, base: &Schema) -> Schema {
        let mut builder = SchemaBuilder::struct_like(base);
        for field in base.fields.iter().filter(|f| !self.moved(&f.name)) {
            builder = builder.field_shared(&field.name, field.schema.clone());
        }
        builder.build()
    }
}

impl Transformation for HeaderFrom {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        if data.value.is_null() {
            return Ok(Outcome::Keep);
        }
        let value = std::mem::take(&mut data.value);
        let mut headers = Vec::with_capacity(self.pairs.len());
        match data.schema.clone() {
            None => {
                let entries = require_map(value, PURPOSE)?;
                for (field, header) in &self.pairs {
                    let value = entry(&entries, field).cloned().unwrap_or(Value::Null);
                    headers.push(Header {
                        key: header.clone(),
                        value: Data::new(None, value),
                    });
                }
                data.value = Value::Map(
                    entries
                        .into_iter()
                        .filter(|(k, _)| k.as_str().is_none_or(|k| !self.moved(k)))
                        .collect(),
                );
            }
            Some(schema) => {
                let values = require_struct(value, PURPOSE)?.into_values();
                for (field, header) in &self.pairs {
                    let index = field_index(&schema, field)?;
                    headers.push(Header {
                        key: header.clone(),
                        value: Data::new(
                            Some(schema.fields[index].schema.clone()),
                            values[index].clone(),
                        ),
                    });
                }
                if self.moving {
                    let remaining = self
                        .schemas
                        .derive(&schema, |s| Ok(self.remaining_schema(s)))?;
                    let kept = schema
                        .fields
                        .iter()
                        .zip(values)
                        .filter(|(f, _)| !self.moved(&f.name))
                        .map(|(_, v)| v)
                        .collect();
                    data.value = make_struct(&remaining, kept)?;
                    data.schema = Some(remaining);
                } else {
                    data.value = make_struct(&schema, values)?;
                }
            }
        }
        record.headers_mut().extend(headers);
        Ok(Outcome::Keep)
    }
}
