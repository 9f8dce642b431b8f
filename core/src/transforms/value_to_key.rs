//! `ValueToKey`: makes the record's key a struct (or schemaless map) of `fields` copied from its value.

use std::sync::Arc;

use super::support::{
    entry, field_index, make_struct, require_map, require_struct, Part, SchemaCache,
};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Data, Schema, SchemaBuilder, Value};

const PURPOSE: &str = "copying fields from value to key";

struct ValueToKey {
    fields: Vec<String>,
    schemas: SchemaCache,
}

pub fn make(config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "fields",
            ConfigType::List,
            "Value fields that make the key.",
        )
        .check(|v| match v.split(',').any(|f| !f.trim().is_empty()) {
            true => Ok(()),
            false => Err("must name at least one field".into()),
        })
        .parse(config)?;
    Ok(Box::new(ValueToKey {
        fields: parsed.list("fields"),
        schemas: SchemaCache::default(),
    }))
}

impl ValueToKey {
    fn key_schema(&self, value: &Schema) -> Result<Schema, TransformError> {
        let mut builder = SchemaBuilder::struct_();
        for field in &self.fields {
            let index = field_index(value, field)?;
            builder = builder.field_shared(field, value.fields[index].schema.clone());
        }
        Ok(builder.build())
    }
}

impl Transformation for ValueToKey {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let value = record.value();
        let key = match &value.schema {
            None => {
                let entries = require_map(value.value.clone(), PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = entry(&entries, f).cloned().unwrap_or(Value::Null);
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                Data::new(None, Value::Map(key))
            }
            Some(schema) => {
                let schema: Arc<Schema> = schema.clone();
                let fields = require_struct(value.value.clone(), PURPOSE)?.into_values();
                let key_schema = self.schemas.derive(&schema, |s| self.key_schema(s))?;
                let values = self
                    .fields
                    .iter()
                    .map(|f| field_index(&schema, f).map(|i| fields[i].clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                Data::new(Some(key_schema.clone()), make_struct(&key_schema, values)?)
            }
        };
        *Part::Key.get_mut(record) = key;
        Ok(Outcome::Keep)
    }
}
