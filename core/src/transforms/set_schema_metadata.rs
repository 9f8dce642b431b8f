//! `SetSchemaMetadata$Key` / `SetSchemaMetadata$Value`: sets the schema's name (`schema.name`) and
//! version (`schema.version`); a struct takes the renamed schema too. A schemaless key or value is an
//! error, as in Kafka.

use std::sync::Arc;

use super::support::{make_struct, Part, SchemaCache};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Schema, Value};

struct SetSchemaMetadata {
    part: Part,
    name: Option<String>,
    version: Option<i32>,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .optional(
            "schema.name",
            ConfigType::String,
            "",
            "The schema's new name.",
        )
        .optional(
            "schema.version",
            ConfigType::String,
            "",
            "The schema's new version.",
        )
        .check(|v| match v.is_empty() || v.parse::<i32>().is_ok() {
            true => Ok(()),
            false => Err("must be an integer".into()),
        })
        .parse(config)?;
    let name = Some(parsed.string("schema.name").to_owned()).filter(|n| !n.is_empty());
    let version = parsed.string("schema.version").parse().ok();
    if name.is_none() && version.is_none() {
        return Err(ConfigError::single(
            "schema.name",
            "neither schema.name nor schema.version is set: nothing to change",
        ));
    }
    Ok(Box::new(SetSchemaMetadata {
        part,
        name,
        version,
        schemas: SchemaCache::default(),
    }))
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        let Some(schema) = data.schema.clone() else {
            return Err(TransformError::Data(
                "Schema required for [updating schema metadata]".into(),
            ));
        };
        let updated: Arc<Schema> = self.schemas.derive(&schema, |s| {
            let mut copy = s.clone();
            if let Some(name) = &self.name {
                copy.name = Some(name.clone());
            }
            if let Some(version) = self.version {
                copy.version = Some(version);
            }
            Ok(copy)
        })?;
        if let Value::Struct(_) = &data.value {
            if let Value::Struct(s) = std::mem::take(&mut data.value) {
                data.value = make_struct(&updated, s.into_values())?;
            }
        }
        data.schema = Some(updated);
        Ok(Outcome::Keep)
    }
}
