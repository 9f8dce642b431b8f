//! `HoistField$Key` / `HoistField$Value`: wraps the key or value in a struct (or, schemaless, a map) of
//! one field, `field`.

use std::sync::Arc;

use super::support::{make_struct, Part, SchemaCache};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{SchemaBuilder, Value};

struct HoistField {
    part: Part,
    field: String,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "field",
            ConfigType::String,
            "The field the whole value goes in.",
        )
        .check(|v| match v.trim().is_empty() {
            true => Err("must name a field".into()),
            false => Ok(()),
        })
        .parse(config)?;
    Ok(Box::new(HoistField {
        part,
        field: parsed.string("field").to_owned(),
        schemas: SchemaCache::default(),
    }))
}

impl Transformation for HoistField {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        let value = std::mem::take(&mut data.value);
        match data.schema.take() {
            None => {
                data.value = Value::Map(vec![(Value::String(self.field.clone()), value)]);
            }
            Some(schema) => {
                let wrapper = self.schemas.derive(&schema, |_| {
                    Ok(SchemaBuilder::struct_()
                        .field_shared(&self.field, schema.clone())
                        .build())
                })?;
                data.value = make_struct(&wrapper, vec![value])?;
                data.schema = Some(Arc::clone(&wrapper));
            }
        }
        Ok(Outcome::Keep)
    }
}
