//! `InsertField$Key` / `InsertField$Value`: adds the record's topic, partition, Kafka offset (sink
//! records), timestamp, or a fixed string to a struct or schemaless map. A field name ending in `!` is
//! required, in `?` (or nothing) optional. Tombstones pass untouched.

use std::sync::Arc;

use super::support::{make_struct, put_entry, require_map, require_struct, Part, SchemaCache};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{logical, Schema, SchemaBuilder, SchemaType, Value};

const PURPOSE: &str = "field insertion";

/// A field to insert, and whether its schema is optional.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    optional: bool,
}

impl Spec {
    fn parse(text: &str) -> Option<Spec> {
        let text = text.trim();
        let (name, optional) = match text.as_bytes().last() {
            None => return None,
            Some(b'!') => (&text[..text.len() - 1], false),
            Some(b'?') => (&text[..text.len() - 1], true),
            Some(_) => (text, true),
        };
        Some(Spec {
            name: name.to_owned(),
            optional,
        })
    }
}

/// What each inserted field holds.
#[derive(Debug, Clone, Copy)]
enum Source {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Static,
}

struct InsertField {
    part: Part,
    fields: Vec<(Source, Spec)>,
    static_value: Option<String>,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let doc = "Field name; a trailing ! makes it required, ? optional (the default).";
    let parsed = ConfigDef::new()
        .optional("topic.field", ConfigType::String, "", doc)
        .optional("partition.field", ConfigType::String, "", doc)
        .optional("offset.field", ConfigType::String, "", doc)
        .optional("timestamp.field", ConfigType::String, "", doc)
        .optional("static.field", ConfigType::String, "", doc)
        .optional(
            "static.value",
            ConfigType::String,
            "",
            "The static field's value.",
        )
        .parse(config)?;
    let fields: Vec<(Source, Spec)> = [
        (Source::Topic, "topic.field"),
        (Source::Partition, "partition.field"),
        (Source::Offset, "offset.field"),
        (Source::Timestamp, "timestamp.field"),
        (Source::Static, "static.field"),
    ]
    .into_iter()
    .filter_map(|(source, key)| Spec::parse(parsed.string(key)).map(|spec| (source, spec)))
    .collect();
    let static_value = config.get("static.value").cloned();
    Ok(Box::new(InsertField {
        part,
        fields,
        static_value,
        schemas: SchemaCache::default(),
    }))
}

impl InsertField {
    /// The value each field gets from this record (`None` where the record has none).
    fn values(&self, record: &dyn ConnectRecord) -> Result<Vec<Option<Value>>, TransformError> {
        self.fields
            .iter()
            .map(|(source, spec)| {
                let value = match source {
                    Source::Topic => Some(Value::String(record.topic().to_owned())),
                    Source::Partition => record.kafka_partition().map(Value::Int32),
                    Source::Offset => Some(Value::Int64(record.kafka_offset().ok_or(
                        TransformError::WrongType {
                            expected: "SinkRecord",
                            purpose: PURPOSE,
                            found: "SourceRecord",
                        },
                    )?)),
                    Source::Timestamp => record.timestamp().map(Value::Timestamp),
                    Source::Static => self.static_value.clone().map(Value::String),
                };
                if value.is_none() && !spec.optional {
                    return Err(TransformError::Data(format!(
                        "field {:?} is required, but the record has no {}",
                        spec.name,
                        match source {
                            Source::Partition => "Kafka partition",
                            Source::Timestamp => "timestamp",
                            _ => "value for it",
                        }
                    )));
                }
                Ok(value)
            })
            .collect()
    }

    fn schema(&self, base: &Schema) -> Schema {
        let mut builder = SchemaBuilder::struct_like(base);
        for field in &base.fields {
            builder = builder.field_shared(&field.name, field.schema.clone());
        }
        for (source, spec) in &self.fields {
            let schema = match source {
                Source::Topic | Source::Static => SchemaBuilder::new(SchemaType::String),
                Source::Partition => SchemaBuilder::new(SchemaType::Int32),
                Source::Offset => SchemaBuilder::new(SchemaType::Int64),
                Source::Timestamp => logical::timestamp(),
            };
            let schema = if spec.optional {
                schema.optional()
            } else {
                schema
            };
            builder = builder.field(&spec.name, schema.build());
        }
        builder.build()
    }
}

impl Transformation for InsertField {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        if self.part.get(record).value.is_null() {
            return Ok(Outcome::Keep);
        }
        let values = self.values(record)?;
        let data = self.part.get_mut(record);
        match data.schema.clone() {
            None => {
                let mut entries = require_map(std::mem::take(&mut data.value), PURPOSE)?;
                for ((_, spec), value) in self.fields.iter().zip(values) {
                    put_entry(&mut entries, &spec.name, value.unwrap_or(Value::Null));
                }
                data.value = Value::Map(entries);
            }
            Some(schema) => {
                let old = require_struct(std::mem::take(&mut data.value), PURPOSE)?;
                let updated: Arc<Schema> = self.schemas.derive(&schema, |s| Ok(self.schema(s)))?;
                let mut all = old.into_values();
                all.extend(values.into_iter().map(|v| v.unwrap_or(Value::Null)));
                data.value = make_struct(&updated, all)?;
                data.schema = Some(updated);
            }
        }
        Ok(Outcome::Keep)
    }
}
