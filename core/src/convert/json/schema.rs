//! Schemas as JSON, in the shape Kafka's `asJsonSchema` writes and `asConnectSchema` reads: `type`,
//! `items`, `keys`, `values`, `fields` (each with its `field` name), `optional`, `name`, `version`,
//! `doc`, `parameters` and `default`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::ser::{Error as _, Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use super::decimal_format::DecimalFormat;
use super::payload::{
    at, default_of, is_integral, key_schema, value_from_json, value_schema, within, Payload,
};
use crate::data::{Schema, SchemaBuilder, SchemaType};

/// A schema to write; a struct field's schema also carries the field's name.
#[derive(Clone, Copy)]
pub(super) struct SchemaJson<'a> {
    /// How the schema's default is written, if it is a decimal.
    pub(super) format: DecimalFormat,
    pub(super) schema: &'a Schema,
    /// The name of the struct field this is the schema of, written last as `field`.
    pub(super) field: Option<&'a str>,
}

impl Serialize for SchemaJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.field {
            Some(name) => self
                .members(s)
                .map_err(within(format_args!("field {name:?}"))),
            None => self.members(s),
        }
    }
}

impl<'a> SchemaJson<'a> {
    fn nested(self, schema: &'a Schema, field: Option<&'a str>) -> SchemaJson<'a> {
        SchemaJson {
            schema,
            field,
            ..self
        }
    }

    /// The members in Kafka's order: `type`, the element, key, value or field schemas, `optional`,
    /// then whichever of `name`, `version`, `doc`, `parameters` and `default` are set.
    fn members<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let schema = self.schema;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", schema.kind.json_name())?;
        match schema.kind {
            SchemaType::Array => {
                let items = value_schema(schema).map_err(S::Error::custom)?;
                map.serialize_entry("items", &self.nested(items, None))
                    .map_err(within("items"))?;
            }
            SchemaType::Map => {
                let keys = key_schema(schema).map_err(S::Error::custom)?;
                let values = value_schema(schema).map_err(S::Error::custom)?;
                map.serialize_entry("keys", &self.nested(keys, None))
                    .map_err(within("keys"))?;
                map.serialize_entry("values", &self.nested(values, None))
                    .map_err(within("values"))?;
            }
            SchemaType::Struct => {
                let fields: Vec<_> = schema
                    .fields
                    .iter()
                    .map(|field| self.nested(&field.schema, Some(&field.name)))
                    .collect();
                map.serialize_entry("fields", &fields)?;
            }
            _ => {}
        }
        map.serialize_entry("optional", &schema.optional)?;
        if let Some(name) = &schema.name {
            map.serialize_entry("name", name)?;
        }
        if let Some(version) = schema.version {
            map.serialize_entry("version", &version)?;
        }
        if let Some(doc) = &schema.doc {
            map.serialize_entry("doc", doc)?;
        }
        if !schema.parameters.is_empty() {
            map.serialize_entry("parameters", &schema.parameters)?;
        }
        if let Some(default) = default_of(schema) {
            let default = Payload {
                format: self.format,
                schema: Some(schema),
                value: default,
            };
            map.serialize_entry("default", &default)
                .map_err(within("default"))?;
        }
        if let Some(field) = self.field {
            map.serialize_entry("field", field)?;
        }
        map.end()
    }
}

/// A schema, as Kafka's `asConnectSchema`: other keys are ignored, and so are `optional`, `name`,
/// `version` and `doc` of the wrong JSON type.
pub(super) fn schema_from_json(json: &Json) -> Result<Schema, String> {
    let Some(Json::String(type_name)) = json.get("type") else {
        return Err("Schema must contain 'type' field".to_owned());
    };
    let kind = SchemaType::from_json_name(type_name)
        .ok_or_else(|| format!("Unknown schema type: {type_name}"))?;
    let mut builder = match kind {
        SchemaType::Array => {
            let items =
                present(json, "items").ok_or("Array schema did not specify the element type")?;
            SchemaBuilder::array(schema_from_json(items).map_err(at("items"))?)
        }
        SchemaType::Map => {
            let keys = present(json, "keys").ok_or("Map schema did not specify the key type")?;
            let values =
                present(json, "values").ok_or("Map schema did not specify the value type")?;
            SchemaBuilder::map(
                schema_from_json(keys).map_err(at("keys"))?,
                schema_from_json(values).map_err(at("values"))?,
            )
        }
        SchemaType::Struct => struct_schema_from_json(json)?,
        _ => SchemaBuilder::new(kind),
    };
    if let Some(Json::Bool(true)) = json.get("optional") {
        builder = builder.optional();
    }
    if let Some(Json::String(name)) = json.get("name") {
        builder = builder.name(name.clone());
    }
    if let Some(Json::Number(version)) = json.get("version") {
        let version = version.as_str();
        if is_integral(version) {
            let version = version
                .parse()
                .map_err(|_| format!("Schema version {version} is not a 32-bit integer"))?;
            builder = builder.version(version);
        }
    }
    if let Some(Json::String(doc)) = json.get("doc") {
        builder = builder.doc(doc.clone());
    }
    if let Some(Json::Object(parameters)) = json.get("parameters") {
        for (key, value) in parameters {
            let Json::String(value) = value else {
                return Err("Schema parameters must have string values.".to_owned());
            };
            builder = builder.parameter(key.clone(), value.clone());
        }
    }
    let mut schema = builder.build();
    if let Some(default) = json.get("default") {
        let value = value_from_json(&Arc::new(schema.clone()), default).map_err(at("default"))?;
        if !value.is_null() {
            schema.default = Some(value);
        }
    }
    Ok(schema)
}

/// The fields of a struct schema: each a schema object with its name in `field`.
fn struct_schema_from_json(json: &Json) -> Result<SchemaBuilder, String> {
    let Some(Json::Array(fields)) = json.get("fields") else {
        return Err("Struct schema's \"fields\" argument is not an array.".to_owned());
    };
    let mut names = BTreeSet::new();
    let mut builder = SchemaBuilder::struct_();
    for field in fields {
        let Some(Json::String(name)) = field.get("field") else {
            return Err("Struct schema's field name not specified properly".to_owned());
        };
        if !names.insert(name.as_str()) {
            return Err(format!(
                "Cannot create field because of field name duplication {name}"
            ));
        }
        let schema = schema_from_json(field).map_err(at(format_args!("field {name:?}")))?;
        builder = builder.field(name.clone(), schema);
    }
    Ok(builder)
}

/// A member of a schema object that is present and not null.
fn present<'a>(json: &'a Json, key: &str) -> Option<&'a Json> {
    json.get(key).filter(|value| !value.is_null())
}
