//! `ReplaceField$Key` / `ReplaceField$Value`: keeps only the `include` fields (all by default), drops
//! the `exclude` ones, and renames fields by `renames=old:new,...`, on structs and schemaless maps.
//! The older key names `whitelist` and `blacklist` are read too. Tombstones pass untouched.

use super::support::{make_struct, require_map, require_struct, Part, SchemaCache};
use super::{ConnectRecord, Outcome, TransformError, Transformation};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::{Schema, SchemaBuilder, Value};

const PURPOSE: &str = "field replacement";

struct ReplaceField {
    part: Part,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
    schemas: SchemaCache,
}

pub fn make(part: Part, config: &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> {
    let parsed = ConfigDef::new()
        .optional("exclude", ConfigType::List, "", "Fields to drop.")
        .optional(
            "include",
            ConfigType::List,
            "",
            "Fields to keep; empty keeps all.",
        )
        .optional(
            "blacklist",
            ConfigType::List,
            "",
            "Deprecated name of exclude.",
        )
        .optional(
            "whitelist",
            ConfigType::List,
            "",
            "Deprecated name of include.",
        )
        .optional(
            "renames",
            ConfigType::List,
            "",
            "Renames, as old:new pairs.",
        )
        .parse(config)?;
    let either = |key: &str, old: &str| {
        let mut list = parsed.list(key);
        list.extend(parsed.list(old));
        list
    };
    let renames = parsed
        .list("renames")
        .into_iter()
        .map(|pair| match pair.split_once(':') {
            Some((from, to)) if !from.trim().is_empty() && !to.trim().is_empty() => {
                Ok((from.trim().to_owned(), to.trim().to_owned()))
            }
            _ => Err(ConfigError::single(
                "renames",
                format!("invalid rename mapping {pair:?}: expected old:new"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(ReplaceField {
        part,
        exclude: either("exclude", "blacklist"),
        include: either("include", "whitelist"),
        renames,
        schemas: SchemaCache::default(),
    }))
}

impl ReplaceField {
    fn kept(&self, field: &str) -> bool {
        !self.exclude.iter().any(|f| f == field)
            && (self.include.is_empty() || self.include.iter().any(|f| f == field))
    }

    fn renamed<'a>(&'a self, field: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(from, _)| from == field)
            .map_or(field, |(_, to)| to)
    }

    fn schema(&self, base: &Schema) -> Schema {
        let mut builder = SchemaBuilder::struct_like(base);
        for field in base.fields.iter().filter(|f| self.kept(&f.name)) {
            builder = builder.field_shared(self.renamed(&field.name), field.schema.clone());
        }
        builder.build()
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
        let data = self.part.get_mut(record);
        if data.value.is_null() {
            return Ok(Outcome::Keep);
        }
        match data.schema.clone() {
            None => {
                let entries = require_map(std::mem::take(&mut data.value), PURPOSE)?;
                let updated = entries
                    .into_iter()
                    .filter(|(key, _)| key.as_str().is_none_or(|k| self.kept(k)))
                    .map(|(key, value)| match key {
                        Value::String(k) => (Value::String(self.renamed(&k).to_owned()), value),
                        other => (other, value),
                    })
                    .collect();
                data.value = Value::Map(updated);
            }
            Some(schema) => {
                let old = require_struct(std::mem::take(&mut data.value), PURPOSE)?;
                let updated = self.schemas.derive(&schema, |s| Ok(self.schema(s)))?;
                let values = schema
                    .fields
                    .iter()
                    .zip(old.into_values())
                    .filter(|(field, _)| self.kept(&field.name))
                    .map(|(_, value)| value)
                    .collect();
                data.value = make_struct(&updated, values)?;
                data.schema = Some(updated);
            }
        }
        Ok(Outcome::Keep)
    }
}
