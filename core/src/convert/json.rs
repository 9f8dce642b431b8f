//! JsonConverter: Connect data as JSON, in Kafka's `{"schema": ..., "payload": ...}` envelope or bare,
//! written byte for byte as `org.apache.kafka.connect.json.JsonConverter` (Jackson) writes it, and read back.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use self::text::{Json, ObjectBuilder};
use super::string::{java_decimal, java_double, java_float};
use super::{ConvertError, Converter};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::data::logical::Logical;
use crate::data::{Data, Decimal, Schema, SchemaBuilder, SchemaType, Struct, Value};

const CONVERTER: &str = "JsonConverter";
const SCHEMAS_ENABLE: &str = "schemas.enable";
const SCHEMAS_CACHE_SIZE: &str = "schemas.cache.size";
const DECIMAL_FORMAT: &str = "decimal.format";

const ENVELOPE_REQUIRED: &str = "JsonConverter with schemas.enable requires \"schema\" and \"payload\" \
    fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set \
    schemas.enable=false in your converter configuration.";

/// Strings Jackson writes for floating-point numbers that JSON numbers cannot hold.
const NON_FINITE: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// How decimals are written; both forms are read whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecimalFormat {
    /// A base64 string of the unscaled value's big-endian two's-complement bytes.
    Base64,
    /// A JSON number, as `BigDecimal.toString` writes it.
    Numeric,
}

/// Converts Connect data to and from JSON, with its schema in an envelope unless `schemas.enable=false`.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    schemas_enable: bool,
    decimal_format: DecimalFormat,
}

impl JsonConverter {
    /// Reads `schemas.enable` (default true), `decimal.format` (`BASE64`, the default, or `NUMERIC`, in any
    /// case) and `schemas.cache.size` (checked to be an integer; schemas are not cached). Keys and values
    /// convert alike, so `is_key` changes nothing, as in Kafka.
    pub fn configure(props: &ConfigMap, _is_key: bool) -> Result<JsonConverter, ConfigError> {
        let config = ConfigDef::new()
            .optional(
                SCHEMAS_ENABLE,
                ConfigType::Boolean,
                "true",
                "Include schemas within each of the serialized values and keys.",
            )
            .optional(
                SCHEMAS_CACHE_SIZE,
                ConfigType::Int,
                "1000",
                "The maximum number of schemas that can be cached in this converter instance.",
            )
            .optional(
                DECIMAL_FORMAT,
                ConfigType::String,
                "BASE64",
                "Controls which format this converter will serialize decimals in: BASE64 or NUMERIC.",
            )
            .check(|format| {
                if format.eq_ignore_ascii_case("BASE64") || format.eq_ignore_ascii_case("NUMERIC") {
                    Ok(())
                } else {
                    Err("expected BASE64 or NUMERIC".to_owned())
                }
            })
            .parse(props)?;
        let decimal_format = if config
            .string(DECIMAL_FORMAT)
            .eq_ignore_ascii_case("NUMERIC")
        {
            DecimalFormat::Numeric
        } else {
            DecimalFormat::Base64
        };
        Ok(JsonConverter {
            schemas_enable: config.boolean(SCHEMAS_ENABLE),
            decimal_format,
        })
    }
}

impl Converter for JsonConverter {
    fn from_connect<'a>(
        &self,
        topic: &str,
        data: &'a Data,
    ) -> Result<Option<Cow<'a, [u8]>>, ConvertError> {
        let schema = data.schema.as_deref();
        if schema.is_none() && data.value.is_null() {
            return Ok(None);
        }
        let json =
            self.data_to_json(schema, &data.value)
                .map_err(|reason| ConvertError::Serialize {
                    converter: CONVERTER,
                    topic: topic.to_owned(),
                    found: data.value.type_name(),
                    reason,
                })?;
        Ok(Some(Cow::Owned(json.to_bytes())))
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Data, ConvertError> {
        let Some(bytes) = bytes else {
            return Ok(Data::NULL);
        };
        self.data_from_json(bytes)
            .map_err(|reason| ConvertError::Deserialize {
                converter: CONVERTER,
                topic: topic.to_owned(),
                reason,
            })
    }
}

// Connect to JSON.

impl JsonConverter {
    /// The envelope, or only the payload when schemas are disabled.
    fn data_to_json(&self, schema: Option<&Schema>, value: &Value) -> Result<Json, String> {
        let payload = match schema {
            Some(schema) => self.value_to_json(schema, value)?,
            None => schemaless_to_json(value)?,
        };
        if !self.schemas_enable {
            return Ok(payload);
        }
        let schema = match schema {
            Some(schema) => Json::Object(self.schema_to_json(schema)?),
            None => Json::Null,
        };
        Ok(Json::Object(vec![
            member("schema", schema),
            member("payload", payload),
        ]))
    }

    /// A schema's members as Kafka's `asJsonSchema` orders them: `type`, the element, key, value or
    /// field schemas, `optional`, then whichever of `name`, `version`, `doc`, `parameters` and
    /// `default` are set.
    fn schema_to_json(&self, schema: &Schema) -> Result<Vec<(String, Json)>, String> {
        let mut members = vec![member(
            "type",
            Json::String(schema.kind.json_name().to_owned()),
        )];
        match schema.kind {
            SchemaType::Array => {
                let items = self
                    .schema_to_json(value_schema(schema)?)
                    .map_err(inside("items"))?;
                members.push(member("items", Json::Object(items)));
            }
            SchemaType::Map => {
                let keys = self
                    .schema_to_json(key_schema(schema)?)
                    .map_err(inside("keys"))?;
                let values = self
                    .schema_to_json(value_schema(schema)?)
                    .map_err(inside("values"))?;
                members.push(member("keys", Json::Object(keys)));
                members.push(member("values", Json::Object(values)));
            }
            SchemaType::Struct => {
                let fields = schema
                    .fields
                    .iter()
                    .map(|field| {
                        let mut json = self
                            .schema_to_json(&field.schema)
                            .map_err(inside_field(&field.name))?;
                        json.push(member("field", Json::String(field.name.clone())));
                        Ok(Json::Object(json))
                    })
                    .collect::<Result<_, String>>()?;
                members.push(member("fields", Json::Array(fields)));
            }
            _ => {}
        }
        members.push(member("optional", Json::Bool(schema.optional)));
        if let Some(name) = &schema.name {
            members.push(member("name", Json::String(name.clone())));
        }
        if let Some(version) = schema.version {
            members.push(member("version", Json::Number(version.to_string())));
        }
        if let Some(doc) = &schema.doc {
            members.push(member("doc", Json::String(doc.clone())));
        }
        if !schema.parameters.is_empty() {
            let parameters = schema
                .parameters
                .iter()
                .map(|(key, value)| (key.clone(), Json::String(value.clone())))
                .collect();
            members.push(member("parameters", Json::Object(parameters)));
        }
        if let Some(default) = default_of(schema) {
            let default = self
                .value_to_json(schema, default)
                .map_err(inside("default"))?;
            members.push(member("default", default));
        }
        Ok(members)
    }

    /// A value of a schema, as Kafka's `convertToJson`: a null becomes the schema's default if it has one.
    fn value_to_json(&self, schema: &Schema, value: &Value) -> Result<Json, String> {
        if value.is_null() {
            return match default_of(schema) {
                Some(default) => self.value_to_json(schema, default),
                None if schema.optional => Ok(Json::Null),
                None => {
                    Err("null value for field that is required and has no default value".to_owned())
                }
            };
        }
        if let Some(logical) = schema.logical() {
            return self.logical_to_json(logical, value);
        }
        Ok(match (schema.kind, value) {
            (SchemaType::Int8, Value::Int8(v)) => Json::Number(v.to_string()),
            (SchemaType::Int16, Value::Int16(v)) => Json::Number(v.to_string()),
            (SchemaType::Int32, Value::Int32(v)) => Json::Number(v.to_string()),
            (SchemaType::Int64, Value::Int64(v)) => Json::Number(v.to_string()),
            (SchemaType::Float32, Value::Float32(v)) => float_json(*v),
            (SchemaType::Float64, Value::Float64(v)) => double_json(*v),
            (SchemaType::Boolean, Value::Boolean(v)) => Json::Bool(*v),
            (SchemaType::String, Value::String(s)) => Json::String(s.clone()),
            (SchemaType::Bytes, Value::Bytes(bytes)) => Json::String(BASE64.encode(bytes)),
            (SchemaType::Array, Value::Array(items)) => {
                let element = value_schema(schema)?;
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.value_to_json(element, item).map_err(inside_element(i)))
                    .collect::<Result<_, _>>()?;
                Json::Array(items)
            }
            (SchemaType::Map, Value::Map(entries)) => self.map_to_json(schema, entries)?,
            (SchemaType::Struct, Value::Struct(s)) => self.struct_to_json(schema, s)?,
            _ => return Err(invalid_type(schema.kind.json_name(), value)),
        })
    }

    /// Maps whose key schema is a string as JSON objects, other maps as arrays of `[key, value]` pairs.
    fn map_to_json(&self, schema: &Schema, entries: &[(Value, Value)]) -> Result<Json, String> {
        let (keys, values) = (key_schema(schema)?, value_schema(schema)?);
        if keys.kind == SchemaType::String {
            let mut object = ObjectBuilder::default();
            for (i, (key, value)) in entries.iter().enumerate() {
                // Jackson's `asText` of the key: a null key (optional key schema) is the text "null".
                let key = match self.value_to_json(keys, key).map_err(inside_entry(i))? {
                    Json::String(key) => key,
                    _ => "null".to_owned(),
                };
                let value = self.value_to_json(values, value).map_err(inside_entry(i))?;
                object.insert(key, value);
            }
            return Ok(object.build());
        }
        let pairs = entries
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let key = self.value_to_json(keys, key).map_err(inside_entry(i))?;
                let value = self.value_to_json(values, value).map_err(inside_entry(i))?;
                Ok(Json::Array(vec![key, value]))
            })
            .collect::<Result<_, String>>()?;
        Ok(Json::Array(pairs))
    }

    /// A struct as an object of its fields in schema order; its own schema must be the one written.
    fn struct_to_json(&self, schema: &Schema, s: &Struct) -> Result<Json, String> {
        let own = s.schema().as_ref();
        if !std::ptr::eq(own, schema) && own != schema {
            return Err(
                "Mismatching schema: the struct's schema is not the schema it is written with"
                    .to_owned(),
            );
        }
        let members = schema
            .fields
            .iter()
            .zip(s.values())
            .map(|(field, value)| {
                let json = self
                    .value_to_json(&field.schema, value)
                    .map_err(inside_field(&field.name))?;
                Ok((field.name.clone(), json))
            })
            .collect::<Result<_, String>>()?;
        Ok(Json::Object(members))
    }

    fn logical_to_json(&self, logical: Logical, value: &Value) -> Result<Json, String> {
        match (logical, value) {
            (Logical::Decimal { scale }, Value::Decimal(d)) => {
                if d.scale != scale {
                    return Err(format!(
                        "BigDecimal has mismatching scale value for given Decimal schema: {} instead of {scale}",
                        d.scale
                    ));
                }
                Ok(match self.decimal_format {
                    DecimalFormat::Base64 => Json::String(BASE64.encode(d.to_bytes())),
                    DecimalFormat::Numeric => Json::Number(java_decimal(d)),
                })
            }
            (Logical::Date, Value::Date(days)) => Ok(Json::Number(days.to_string())),
            (Logical::Time, Value::Time(millis)) => Ok(Json::Number(millis.to_string())),
            (Logical::Timestamp, Value::Timestamp(millis)) => Ok(Json::Number(millis.to_string())),
            _ => Err(invalid_type(logical_name(logical), value)),
        }
    }
}

/// A value without a schema, typed by its variant, as Kafka's `convertToJson` without a schema. Structs
/// and logical values need their schema.
fn schemaless_to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(v) => Json::Bool(*v),
        Value::Int8(v) => Json::Number(v.to_string()),
        Value::Int16(v) => Json::Number(v.to_string()),
        Value::Int32(v) => Json::Number(v.to_string()),
        Value::Int64(v) => Json::Number(v.to_string()),
        Value::Float32(v) => float_json(*v),
        Value::Float64(v) => double_json(*v),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(bytes) => Json::String(BASE64.encode(bytes)),
        Value::Array(items) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| schemaless_to_json(item).map_err(inside_element(i)))
                .collect::<Result<_, _>>()?;
            Json::Array(items)
        }
        Value::Map(entries) => schemaless_map_to_json(entries)?,
        Value::Struct(_) => {
            return Err(
                "Mismatching schema: a struct cannot be written without its schema".to_owned(),
            )
        }
        Value::Decimal(_) | Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => {
            return Err(format!(
                "a {} value cannot be written without its schema",
                value.type_name()
            ))
        }
    })
}

/// A JSON object if every key is a string, otherwise an array of `[key, value]` pairs.
fn schemaless_map_to_json(entries: &[(Value, Value)]) -> Result<Json, String> {
    let string_keys: Option<Vec<&str>> = entries.iter().map(|(key, _)| key.as_str()).collect();
    if let Some(keys) = string_keys {
        let mut object = ObjectBuilder::default();
        for (i, (key, (_, value))) in keys.into_iter().zip(entries).enumerate() {
            object.insert(
                key.to_owned(),
                schemaless_to_json(value).map_err(inside_entry(i))?,
            );
        }
        return Ok(object.build());
    }
    let pairs = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let key = schemaless_to_json(key).map_err(inside_entry(i))?;
            let value = schemaless_to_json(value).map_err(inside_entry(i))?;
            Ok(Json::Array(vec![key, value]))
        })
        .collect::<Result<_, String>>()?;
    Ok(Json::Array(pairs))
}

/// A `double` as Jackson writes it: a number, or one of the strings `NaN`, `Infinity`, `-Infinity`.
fn double_json(v: f64) -> Json {
    if v.is_finite() {
        Json::Number(java_double(v))
    } else {
        Json::String(java_double(v))
    }
}

/// A `float` as Jackson writes it, like [`double_json`] with a `float`'s shortest digits.
fn float_json(v: f32) -> Json {
    if v.is_finite() {
        Json::Number(java_float(v))
    } else {
        Json::String(java_float(v))
    }
}

// JSON to Connect.

impl JsonConverter {
    fn data_from_json(&self, bytes: &[u8]) -> Result<Data, String> {
        let json = match Json::parse(bytes) {
            Ok(Some(json)) => json,
            Ok(None) => return Ok(Data::NULL),
            Err(e) => {
                return Err(format!(
                    "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
                ))
            }
        };
        if !self.schemas_enable {
            return Ok(Data::new(None, schemaless_from_json(&json)?));
        }
        let envelope = match &json {
            Json::Object(members) if members.len() == 2 => {
                (json.get("schema"), json.get("payload"))
            }
            _ => (None, None),
        };
        let (Some(schema), Some(payload)) = envelope else {
            return Err(ENVELOPE_REQUIRED.to_owned());
        };
        if let Json::Null = schema {
            let value = schemaless_from_json(payload).map_err(inside("payload"))?;
            return Ok(Data::new(None, value));
        }
        let schema = Arc::new(schema_from_json(schema).map_err(inside("schema"))?);
        let value = value_from_json(&schema, payload).map_err(inside("payload"))?;
        Ok(Data::new(Some(schema), value))
    }
}

/// A schema, as Kafka's `asConnectSchema`: other keys are ignored, and so are `optional`, `name`,
/// `version` and `doc` of the wrong JSON type.
fn schema_from_json(json: &Json) -> Result<Schema, String> {
    let Some(Json::String(type_name)) = json.get("type") else {
        return Err("Schema must contain 'type' field".to_owned());
    };
    let kind = SchemaType::from_json_name(type_name)
        .ok_or_else(|| format!("Unknown schema type: {type_name}"))?;
    let mut builder = match kind {
        SchemaType::Array => {
            let items =
                present(json, "items").ok_or("Array schema did not specify the element type")?;
            SchemaBuilder::array(schema_from_json(items).map_err(inside("items"))?)
        }
        SchemaType::Map => {
            let keys = present(json, "keys").ok_or("Map schema did not specify the key type")?;
            let values =
                present(json, "values").ok_or("Map schema did not specify the value type")?;
            SchemaBuilder::map(
                schema_from_json(keys).map_err(inside("keys"))?,
                schema_from_json(values).map_err(inside("values"))?,
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
        let value =
            value_from_json(&Arc::new(schema.clone()), default).map_err(inside("default"))?;
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
        builder = builder.field(
            name.clone(),
            schema_from_json(field).map_err(inside_field(name))?,
        );
    }
    Ok(builder)
}

/// A member of a schema object that is present and not null.
fn present<'a>(json: &'a Json, key: &str) -> Option<&'a Json> {
    json.get(key).filter(|value| !matches!(value, Json::Null))
}

/// A value of a schema, as Kafka's `convertToConnect`, but checking that the JSON has the schema's type.
fn value_from_json(schema: &Arc<Schema>, json: &Json) -> Result<Value, String> {
    if let Json::Null = json {
        return null_value(schema);
    }
    if let Some(logical) = schema.logical() {
        return logical_from_json(logical, schema, json);
    }
    let kind = schema.kind;
    Ok(match (kind, json) {
        (SchemaType::Int8, _) => Value::Int8(integer(kind, json)?),
        (SchemaType::Int16, _) => Value::Int16(integer(kind, json)?),
        (SchemaType::Int32, _) => Value::Int32(integer(kind, json)?),
        (SchemaType::Int64, _) => Value::Int64(integer(kind, json)?),
        (SchemaType::Float32, _) => Value::Float32(floating(kind, json)?),
        (SchemaType::Float64, _) => Value::Float64(floating(kind, json)?),
        (SchemaType::Boolean, Json::Bool(v)) => Value::Boolean(*v),
        (SchemaType::String, Json::String(s)) => Value::String(s.clone()),
        (SchemaType::Bytes, Json::String(s)) => Value::Bytes(
            BASE64
                .decode(s)
                .map_err(|e| format!("Invalid bytes field: {e}"))?,
        ),
        (SchemaType::Array, Json::Array(items)) => {
            let element = value_schema(schema)?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| value_from_json(element, item).map_err(inside_element(i)))
                .collect::<Result<_, _>>()?;
            Value::Array(items)
        }
        (SchemaType::Map, _) => map_from_json(schema, json)?,
        (SchemaType::Struct, _) => struct_from_json(schema, json)?,
        _ => return Err(mismatch(kind, json)),
    })
}

/// String-keyed maps from JSON objects, other maps from arrays of `[key, value]` pairs.
fn map_from_json(schema: &Schema, json: &Json) -> Result<Value, String> {
    let (keys, values) = (key_schema(schema)?, value_schema(schema)?);
    let entries = if keys.kind == SchemaType::String {
        let Json::Object(members) = json else {
            return Err(format!(
                "Maps with string fields should be encoded as JSON objects, but found {}",
                json.node_type()
            ));
        };
        members
            .iter()
            .map(|(key, value)| {
                let value = value_from_json(values, value).map_err(inside_key(key))?;
                Ok((Value::String(key.clone()), value))
            })
            .collect::<Result<_, String>>()?
    } else {
        let Json::Array(pairs) = json else {
            return Err(format!(
                "Maps with non-string fields should be encoded as JSON array of tuples, but found {}",
                json.node_type()
            ));
        };
        pairs
            .iter()
            .enumerate()
            .map(|(i, pair)| {
                match pair {
                    Json::Array(pair) => match pair.as_slice() {
                        [key, value] => {
                            Ok((value_from_json(keys, key)?, value_from_json(values, value)?))
                        }
                        _ => Err(format!(
                            "Found invalid map entry, expected length 2 but found :{}",
                            pair.len()
                        )),
                    },
                    _ => Err(format!(
                        "Found invalid map entry instead of array tuple: {}",
                        pair.node_type()
                    )),
                }
                .map_err(inside_entry(i))
            })
            .collect::<Result<_, String>>()?
    };
    Ok(Value::Map(entries))
}

/// A struct from a JSON object: a missing field reads as null, members that are not fields are ignored.
fn struct_from_json(schema: &Arc<Schema>, json: &Json) -> Result<Value, String> {
    if !matches!(json, Json::Object(_)) {
        return Err(format!(
            "Structs should be encoded as JSON objects, but found {}",
            json.node_type()
        ));
    }
    let mut result = Struct::new(schema.clone());
    for field in &schema.fields {
        let value = match json.get(&field.name) {
            Some(value) => value_from_json(&field.schema, value),
            None => null_value(&field.schema),
        }
        .map_err(inside_field(&field.name))?;
        result.put(&field.name, value);
    }
    Ok(Value::Struct(result))
}

/// Decimals from a number or a base64 string whatever `decimal.format` says, as Kafka; dates and times
/// from integers.
fn logical_from_json(logical: Logical, schema: &Schema, json: &Json) -> Result<Value, String> {
    let name = logical_name(logical);
    let invalid = |e: String| format!("Invalid value for {name}: {e}");
    match logical {
        Logical::Decimal { scale } => match json {
            Json::Number(text) => Ok(Value::Decimal(Decimal {
                unscaled: unscaled_at_scale(text, scale).map_err(invalid)?,
                scale,
            })),
            Json::String(text) => {
                let bytes = BASE64
                    .decode(text)
                    .map_err(|e| format!("Invalid bytes for Decimal field: {e}"))?;
                Decimal::from_bytes(&bytes, scale)
                    .map(Value::Decimal)
                    .ok_or_else(|| {
                        format!(
                            "Invalid bytes for Decimal field: {} bytes are not a 128-bit unscaled value",
                            bytes.len()
                        )
                    })
            }
            _ => Err(format!(
                "Invalid type for Decimal, underlying representation should be numeric or bytes but was {}",
                json.node_type()
            )),
        },
        Logical::Date => integer(schema.kind, json).map(Value::Date).map_err(invalid),
        Logical::Time => integer(schema.kind, json).map(Value::Time).map_err(invalid),
        Logical::Timestamp => integer(schema.kind, json)
            .map(Value::Timestamp)
            .map_err(invalid),
    }
}

/// What a JSON null or a missing struct field reads as: the schema's default, or null if optional.
fn null_value(schema: &Schema) -> Result<Value, String> {
    match default_of(schema) {
        Some(default) => Ok(default.clone()),
        None if schema.optional => Ok(Value::Null),
        None => Err(format!(
            "Invalid null value for required {} field",
            schema.kind.json_name()
        )),
    }
}

/// JSON without a schema: integers as int64, other numbers as float64, objects as string-keyed maps.
fn schemaless_from_json(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(v) => Value::Boolean(*v),
        Json::Number(text) if is_integral(text) => Value::Int64(
            text.parse()
                .map_err(|_| format!("integer {text} does not fit in int64"))?,
        ),
        Json::Number(text) => Value::Float64(
            text.parse()
                .map_err(|_| format!("{text} is not a valid double"))?,
        ),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| schemaless_from_json(item).map_err(inside_element(i)))
                .collect::<Result<_, _>>()?;
            Value::Array(items)
        }
        Json::Object(members) => {
            let entries = members
                .iter()
                .map(|(key, value)| {
                    let value = schemaless_from_json(value).map_err(inside_key(key))?;
                    Ok((Value::String(key.clone()), value))
                })
                .collect::<Result<_, String>>()?;
            Value::Map(entries)
        }
    })
}

/// An integer JSON number that fits the integer type `T` of the schema type `kind`.
fn integer<T: TryFrom<i64>>(kind: SchemaType, json: &Json) -> Result<T, String> {
    let Json::Number(text) = json else {
        return Err(mismatch(kind, json));
    };
    text.parse::<i64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{text} is not a valid {} value", kind.json_name()))
}

/// A JSON number, or one of the strings Jackson writes for non-finite numbers, as `f32` or `f64`.
fn floating<T: std::str::FromStr>(kind: SchemaType, json: &Json) -> Result<T, String> {
    let text = match json {
        Json::Number(text) => text,
        Json::String(text) if NON_FINITE.contains(&text.as_str()) => text,
        _ => return Err(mismatch(kind, json)),
    };
    text.parse()
        .map_err(|_| format!("{text} is not a valid {} value", kind.json_name()))
}

/// The unscaled value of a JSON number at `scale`, if that is exact and fits in 128 bits.
fn unscaled_at_scale(text: &str, scale: i32) -> Result<i128, String> {
    let out_of_range = || format!("{text} does not fit a decimal of scale {scale} in 128 bits");
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (
            mantissa,
            exponent.parse::<i64>().map_err(|_| out_of_range())?,
        ),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(unsigned) => (true, unsigned),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // The number is `digits * 10^shift` in units of `10^-scale`.
    let shift = i128::from(exponent) - frac.len() as i128 + i128::from(scale);
    let (digits, zeros) = if shift < 0 {
        let cut = usize::try_from(-shift).unwrap_or(usize::MAX);
        let kept = digits.len().saturating_sub(cut);
        let (kept_digits, dropped) = digits.split_at(kept);
        if dropped.bytes().any(|b| b != b'0') {
            return Err(format!(
                "{text} has more decimal places than the scale {scale}"
            ));
        }
        (kept_digits, 0)
    } else if digits.is_empty() {
        (digits, 0)
    } else {
        (digits, u32::try_from(shift).map_err(|_| out_of_range())?)
    };
    // Accumulate negatively so that i128::MIN fits.
    let mut unscaled: i128 = 0;
    for digit in digits.chars() {
        let digit = digit
            .to_digit(10)
            .ok_or_else(|| format!("{text} is not a number"))?;
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|u| u.checked_sub(i128::from(digit)))
            .ok_or_else(out_of_range)?;
    }
    unscaled = 10i128
        .checked_pow(zeros)
        .and_then(|factor| unscaled.checked_mul(factor))
        .ok_or_else(out_of_range)?;
    if negative {
        Ok(unscaled)
    } else {
        unscaled.checked_neg().ok_or_else(out_of_range)
    }
}

/// Whether a JSON number is written as an integer (Jackson's `isIntegralNumber`).
fn is_integral(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// A schema's default, treating a null default as none, as Kafka does.
fn default_of(schema: &Schema) -> Option<&Value> {
    schema.default.as_ref().filter(|value| !value.is_null())
}

fn value_schema(schema: &Schema) -> Result<&Arc<Schema>, String> {
    schema
        .value_schema
        .as_ref()
        .ok_or_else(|| format!("{} schema has no value schema", schema.kind.json_name()))
}

fn key_schema(schema: &Schema) -> Result<&Arc<Schema>, String> {
    schema
        .key_schema
        .as_ref()
        .ok_or_else(|| "map schema has no key schema".to_owned())
}

fn logical_name(logical: Logical) -> &'static str {
    match logical {
        Logical::Decimal { .. } => "Decimal",
        Logical::Date => "Date",
        Logical::Time => "Time",
        Logical::Timestamp => "Timestamp",
    }
}

fn member(key: &str, value: Json) -> (String, Json) {
    (key.to_owned(), value)
}

fn invalid_type(expected: &str, value: &Value) -> String {
    format!("Invalid type for {expected}: {}", value.type_name())
}

fn mismatch(kind: SchemaType, json: &Json) -> String {
    let expected = match kind {
        SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64 => {
            "an integer"
        }
        SchemaType::Float32 | SchemaType::Float64 => "a number",
        SchemaType::Boolean => "a boolean",
        SchemaType::String => "a string",
        SchemaType::Bytes => "a base64 string",
        SchemaType::Array => "an array",
        SchemaType::Map | SchemaType::Struct => "an object",
    };
    format!(
        "{} schema expects {expected} but found {}",
        kind.json_name(),
        json.node_type()
    )
}

/// Prefixes an error with where it happened: a schema or envelope member.
fn inside(part: &str) -> impl FnOnce(String) -> String + '_ {
    move |e| format!("{part}: {e}")
}

fn inside_field(name: &str) -> impl FnOnce(String) -> String + '_ {
    move |e| format!("field {name:?}: {e}")
}

fn inside_element(index: usize) -> impl FnOnce(String) -> String {
    move |e| format!("element {index}: {e}")
}

fn inside_entry(index: usize) -> impl FnOnce(String) -> String {
    move |e| format!("map entry {index}: {e}")
}

fn inside_key(key: &str) -> impl FnOnce(String) -> String + '_ {
    move |e| format!("map key {key:?}: {e}")
}

/// JSON text: a tree keeping numbers as written and members in order, its parser, and a compact writer
/// producing Jackson's output (no whitespace, control characters escaped with upper-case hex).
mod text {
    use std::collections::BTreeMap;

    /// Deepest nesting of arrays and objects read. Jackson allows 1000, but reading recurses, and 256
    /// keeps even a debug build well inside a 2 MiB thread stack; real data is far shallower.
    const MAX_DEPTH: usize = 256;

    #[derive(Debug)]
    pub(super) enum Json {
        Null,
        Bool(bool),
        /// A number exactly as written, in JSON's number syntax.
        Number(String),
        String(String),
        Array(Vec<Json>),
        /// Members in order; keys are unique when parsed or built with [`ObjectBuilder`].
        Object(Vec<(String, Json)>),
    }

    impl Json {
        /// Parses one JSON value; `None` if there is nothing but whitespace (Jackson's missing node).
        pub(super) fn parse(bytes: &[u8]) -> Result<Option<Json>, String> {
            let mut parser = Parser { bytes, pos: 0 };
            parser.skip_whitespace();
            if parser.pos == bytes.len() {
                return Ok(None);
            }
            let json = parser.value(0)?;
            parser.skip_whitespace();
            if parser.pos < bytes.len() {
                return Err(parser.error("unexpected data after the JSON value"));
            }
            Ok(Some(json))
        }

        /// The member with this key, if this is an object that has one.
        pub(super) fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Object(members) => members
                    .iter()
                    .find(|(member, _)| member == key)
                    .map(|(_, value)| value),
                _ => None,
            }
        }

        /// Jackson's name for the kind of node, for error messages.
        pub(super) fn node_type(&self) -> &'static str {
            match self {
                Json::Null => "NULL",
                Json::Bool(_) => "BOOLEAN",
                Json::Number(_) => "NUMBER",
                Json::String(_) => "STRING",
                Json::Array(_) => "ARRAY",
                Json::Object(_) => "OBJECT",
            }
        }

        pub(super) fn to_bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write(&mut out);
            out
        }

        fn write(&self, out: &mut Vec<u8>) {
            match self {
                Json::Null => out.extend_from_slice(b"null"),
                Json::Bool(true) => out.extend_from_slice(b"true"),
                Json::Bool(false) => out.extend_from_slice(b"false"),
                Json::Number(text) => out.extend_from_slice(text.as_bytes()),
                Json::String(s) => write_string(s, out),
                Json::Array(items) => {
                    out.push(b'[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        item.write(out);
                    }
                    out.push(b']');
                }
                Json::Object(members) => {
                    out.push(b'{');
                    for (i, (key, value)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_string(key, out);
                        out.push(b':');
                        value.write(out);
                    }
                    out.push(b'}');
                }
            }
        }
    }

    /// Builds an object whose repeated keys keep their first position and their last value, as
    /// Jackson's `ObjectNode.set`.
    #[derive(Default)]
    pub(super) struct ObjectBuilder {
        members: Vec<(String, Json)>,
        positions: BTreeMap<String, usize>,
    }

    impl ObjectBuilder {
        pub(super) fn insert(&mut self, key: String, value: Json) {
            match self.positions.get(&key) {
                Some(&position) => {
                    if let Some((_, slot)) = self.members.get_mut(position) {
                        *slot = value;
                    }
                }
                None => {
                    self.positions.insert(key.clone(), self.members.len());
                    self.members.push((key, value));
                }
            }
        }

        pub(super) fn build(self) -> Json {
            Json::Object(self.members)
        }
    }

    /// Writes a string as Jackson does: `"` and `\` escaped, control characters as `\b \t \n \f \r`
    /// or `\u00XX`, everything else as UTF-8.
    fn write_string(s: &str, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push(b'"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                b'\t' => b't',
                b'\n' => b'n',
                0x0c => b'f',
                b'\r' => b'r',
                0x00..=0x1f => b'u',
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(escape);
            if escape == b'u' {
                out.extend_from_slice(b"00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
        out.push(b'"');
    }

    struct Parser<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Parser<'_> {
        fn error(&self, what: &str) -> String {
            format!("invalid JSON at byte {}: {what}", self.pos)
        }

        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.pos).copied()
        }

        fn eat(&mut self, byte: u8) -> bool {
            let found = self.peek() == Some(byte);
            if found {
                self.pos += 1;
            }
            found
        }

        fn skip_whitespace(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
                self.pos += 1;
            }
        }

        /// A value at `depth` arrays and objects deep.
        fn value(&mut self, depth: usize) -> Result<Json, String> {
            match self.peek() {
                Some(b'{') => self.object(depth + 1),
                Some(b'[') => self.array(depth + 1),
                Some(b'"') => self.string().map(Json::String),
                Some(b't') => self.literal("true", Json::Bool(true)),
                Some(b'f') => self.literal("false", Json::Bool(false)),
                Some(b'n') => self.literal("null", Json::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.error("expected a JSON value")),
                None => Err(self.error("unexpected end of input")),
            }
        }

        fn enter(&mut self, depth: usize) -> Result<(), String> {
            if depth > MAX_DEPTH {
                return Err(self.error(&format!(
                    "arrays and objects nested deeper than {MAX_DEPTH}"
                )));
            }
            self.pos += 1;
            self.skip_whitespace();
            Ok(())
        }

        fn array(&mut self, depth: usize) -> Result<Json, String> {
            self.enter(depth)?;
            let mut items = Vec::new();
            if self.eat(b']') {
                return Ok(Json::Array(items));
            }
            loop {
                items.push(self.value(depth)?);
                self.skip_whitespace();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                if !self.eat(b',') {
                    return Err(self.error("expected ',' or ']'"));
                }
                self.skip_whitespace();
            }
        }

        fn object(&mut self, depth: usize) -> Result<Json, String> {
            self.enter(depth)?;
            let mut object = ObjectBuilder::default();
            if self.eat(b'}') {
                return Ok(object.build());
            }
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                self.skip_whitespace();
                if !self.eat(b':') {
                    return Err(self.error("expected ':'"));
                }
                self.skip_whitespace();
                object.insert(key, self.value(depth)?);
                self.skip_whitespace();
                if self.eat(b'}') {
                    return Ok(object.build());
                }
                if !self.eat(b',') {
                    return Err(self.error("expected ',' or '}'"));
                }
                self.skip_whitespace();
            }
        }

        fn literal(&mut self, word: &str, json: Json) -> Result<Json, String> {
            if self.bytes[self.pos..].starts_with(word.as_bytes()) {
                self.pos += word.len();
                Ok(json)
            } else {
                Err(self.error("expected a JSON value"))
            }
        }

        /// A string literal; serde_json unescapes it once its end is found.
        fn string(&mut self) -> Result<String, String> {
            let start = self.pos;
            self.pos += 1;
            loop {
                match self.peek() {
                    None => return Err(self.error("unterminated string")),
                    Some(b'"') => break,
                    Some(b'\\') => self.pos += 2,
                    Some(_) => self.pos += 1,
                }
            }
            self.pos += 1;
            serde_json::from_slice(&self.bytes[start..self.pos])
                .map_err(|e| format!("invalid JSON string starting at byte {start}: {e}"))
        }

        /// A number in JSON's syntax, kept as written.
        fn number(&mut self) -> Result<Json, String> {
            let start = self.pos;
            self.eat(b'-');
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => self.digits(),
                _ => return Err(self.error("expected a digit")),
            }
            if self.eat(b'.') {
                if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.error("expected a digit after the decimal point"));
                }
                self.digits();
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.error("expected a digit in the exponent"));
                }
                self.digits();
            }
            let text = self.bytes[start..self.pos]
                .iter()
                .map(|&b| char::from(b))
                .collect();
            Ok(Json::Number(text))
        }

        fn digits(&mut self) {
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.pos += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::{btree_map, vec};
    use proptest::option;
    use proptest::prelude::*;

    use super::*;
    use crate::data::logical;

    fn converter(pairs: &[(&str, &str)]) -> JsonConverter {
        let props = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        JsonConverter::configure(&props, false).unwrap()
    }

    fn with_schema(schema: Schema, value: Value) -> Data {
        Data::new(Some(Arc::new(schema)), value)
    }

    fn write(converter: &JsonConverter, data: &Data) -> String {
        let bytes = converter.from_connect("t", data).unwrap().unwrap();
        String::from_utf8(bytes.into_owned()).unwrap()
    }

    fn write_error(converter: &JsonConverter, data: &Data) -> String {
        converter.from_connect("t", data).unwrap_err().to_string()
    }

    fn read(converter: &JsonConverter, text: &str) -> Data {
        converter.to_connect("t", Some(text.as_bytes())).unwrap()
    }

    fn read_error(converter: &JsonConverter, text: &str) -> String {
        let err = converter
            .to_connect("t", Some(text.as_bytes()))
            .unwrap_err();
        assert!(matches!(err, ConvertError::Deserialize { .. }), "{err}");
        err.to_string()
    }

    fn point_schema() -> Schema {
        SchemaBuilder::struct_()
            .field("x", Schema::primitive(SchemaType::Boolean))
            .field("label", Schema::optional(SchemaType::String))
            .name("Point")
            .version(2)
            .doc("a point")
            .parameter("p", "v")
            .build()
    }

    #[test]
    fn writes_a_required_string_in_the_envelope() {
        let data = Data::string("hello");
        assert_eq!(
            write(&converter(&[]), &data),
            r#"{"schema":{"type":"string","optional":false},"payload":"hello"}"#
        );
        assert_eq!(
            write(&converter(&[("schemas.enable", "false")]), &data),
            r#""hello""#
        );
        assert_eq!(read(&converter(&[]), &write(&converter(&[]), &data)), data);
    }

    #[test]
    fn writes_a_struct_with_its_schema() {
        let schema = Arc::new(point_schema());
        let mut point = Struct::new(schema.clone());
        point.put("x", Value::Boolean(true));
        let data = Data::new(Some(schema), Value::Struct(point));
        let text = write(&converter(&[]), &data);
        assert_eq!(
            text,
            concat!(
                r#"{"schema":{"type":"struct","fields":["#,
                r#"{"type":"boolean","optional":false,"field":"x"},"#,
                r#"{"type":"string","optional":true,"field":"label"}],"#,
                r#""optional":false,"name":"Point","version":2,"doc":"a point","parameters":{"p":"v"}},"#,
                r#""payload":{"x":true,"label":null}}"#
            )
        );
        assert_eq!(read(&converter(&[]), &text), data);
    }

    #[test]
    fn writes_decimals_as_base64_or_numbers() {
        let data = with_schema(
            logical::decimal(2).build(),
            Value::Decimal(Decimal {
                unscaled: 156,
                scale: 2,
            }),
        );
        let schema = r#"{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}}"#;
        let base64 = write(&converter(&[]), &data);
        assert_eq!(base64, format!(r#"{{"schema":{schema},"payload":"AJw="}}"#));
        let numeric = write(&converter(&[("decimal.format", "numeric")]), &data);
        assert_eq!(numeric, format!(r#"{{"schema":{schema},"payload":1.56}}"#));
        for text in [&base64, &numeric] {
            assert_eq!(read(&converter(&[]), text), data);
        }
        let tiny = with_schema(
            logical::decimal(10).build(),
            Value::Decimal(Decimal {
                unscaled: -1,
                scale: 10,
            }),
        );
        let text = write(
            &converter(&[("decimal.format", "NUMERIC"), ("schemas.enable", "false")]),
            &tiny,
        );
        assert_eq!(text, "-1E-10");
    }

    #[test]
    fn writes_maps_as_objects_or_pair_arrays() {
        let plain = converter(&[("schemas.enable", "false")]);
        let string_keys = with_schema(
            SchemaBuilder::map(
                Schema::primitive(SchemaType::String),
                Schema::primitive(SchemaType::Int32),
            )
            .build(),
            Value::Map(vec![
                ("b".into(), Value::Int32(1)),
                ("a".into(), Value::Int32(2)),
            ]),
        );
        assert_eq!(write(&plain, &string_keys), r#"{"b":1,"a":2}"#);
        let int_keys = with_schema(
            SchemaBuilder::map(
                Schema::primitive(SchemaType::Int32),
                Schema::primitive(SchemaType::Int32),
            )
            .build(),
            Value::Map(vec![
                (Value::Int32(1), Value::Int32(12)),
                (Value::Int32(2), Value::Int32(15)),
            ]),
        );
        assert_eq!(
            write(&converter(&[]), &int_keys),
            r#"{"schema":{"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"int32","optional":false},"optional":false},"payload":[[1,12],[2,15]]}"#
        );
        let mixed = Data::schemaless(Value::Map(vec![
            ("a".into(), Value::Null),
            (Value::Int64(1), Value::Boolean(true)),
        ]));
        assert_eq!(write(&plain, &mixed), r#"[["a",null],[1,true]]"#);
        let repeated = Data::schemaless(Value::Map(vec![
            ("a".into(), Value::Int8(1)),
            ("b".into(), Value::Int8(2)),
            ("a".into(), Value::Int8(3)),
        ]));
        assert_eq!(write(&plain, &repeated), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn writes_numbers_and_strings_as_jackson_does() {
        let plain = converter(&[("schemas.enable", "false")]);
        let array = Data::schemaless(Value::Array(vec![
            Value::Float32(12.34),
            Value::Float64(1e10),
            Value::Float64(-0.0),
            Value::Float64(f64::NAN),
            Value::Float32(f32::NEG_INFINITY),
            Value::Int64(i64::MIN),
            Value::Bytes(b"hi!".to_vec()),
            "q\"b\\s/\n\u{1}\u{7f}é".into(),
        ]));
        assert_eq!(
            write(&plain, &array),
            format!(
                r#"[12.34,1.0E10,-0.0,"NaN","-Infinity",-9223372036854775808,"aGkh","q\"b\\s/\n\u0001{}é"]"#,
                '\u{7f}'
            )
        );
    }

    #[test]
    fn writes_dates_and_times_as_integers() {
        let schema = SchemaBuilder::struct_()
            .field("date", logical::date().build())
            .field("time", logical::time().optional().build())
            .field("at", logical::timestamp().build())
            .build();
        let schema = Arc::new(schema);
        let mut s = Struct::new(schema.clone());
        s.put("date", Value::Date(19_000));
        s.put("time", Value::Time(1_000));
        s.put("at", Value::Timestamp(1_700_000_000_123));
        let data = Data::new(Some(schema), Value::Struct(s));
        let text = write(&converter(&[("schemas.enable", "false")]), &data);
        assert_eq!(text, r#"{"date":19000,"time":1000,"at":1700000000123}"#);
        assert_eq!(read(&converter(&[]), &write(&converter(&[]), &data)), data);
    }

    #[test]
    fn writes_nulls_as_kafka_does() {
        let json = converter(&[]);
        assert_eq!(json.from_connect("t", &Data::NULL).unwrap(), None);
        let optional = with_schema(Schema::optional(SchemaType::Int32), Value::Null);
        assert_eq!(
            write(&json, &optional),
            r#"{"schema":{"type":"int32","optional":true},"payload":null}"#
        );
        assert_eq!(
            write(&converter(&[("schemas.enable", "false")]), &optional),
            "null"
        );
        let defaulted = with_schema(
            SchemaBuilder::new(SchemaType::Int32)
                .optional()
                .default_value(Value::Int32(42))
                .build(),
            Value::Null,
        );
        assert_eq!(
            write(&json, &defaulted),
            r#"{"schema":{"type":"int32","optional":true,"default":42},"payload":42}"#
        );
        let required = with_schema(Schema::primitive(SchemaType::Int32), Value::Null);
        assert!(write_error(&json, &required).contains("required and has no default"));
    }

    #[test]
    fn rejects_values_that_do_not_match_their_schema() {
        let json = converter(&[]);
        let err = write_error(
            &json,
            &with_schema(Schema::primitive(SchemaType::Int32), "1".into()),
        );
        assert!(err.contains("cannot serialize a string value"), "{err}");
        assert!(err.contains("Invalid type for int32: string"), "{err}");
        let other = Arc::new(SchemaBuilder::struct_().build());
        let err = write_error(
            &json,
            &with_schema(point_schema(), Value::Struct(Struct::new(other))),
        );
        assert!(err.contains("Mismatching schema"), "{err}");
        let mut point = Struct::new(Arc::new(point_schema()));
        point.put("label", "x".into());
        let err = write_error(&json, &with_schema(point_schema(), Value::Struct(point)));
        assert!(
            err.contains(r#"field "x": null value for field that is required"#),
            "{err}"
        );
        let err = write_error(
            &json,
            &Data::schemaless(Value::Struct(Struct::new(Arc::new(point_schema())))),
        );
        assert!(err.contains("without its schema"), "{err}");
        let decimal = Value::Decimal(Decimal {
            unscaled: 1,
            scale: 3,
        });
        let err = write_error(
            &json,
            &with_schema(logical::decimal(2).build(), decimal.clone()),
        );
        assert!(err.contains("mismatching scale"), "{err}");
        assert!(write_error(&json, &Data::schemaless(decimal)).contains("without its schema"));
    }

    #[test]
    fn reads_envelopes_as_kafka_writes_them() {
        let json = converter(&[]);
        let int = read(
            &json,
            r#" { "schema": { "type": "int32" }, "payload": 12 } "#,
        );
        assert_eq!(
            int,
            with_schema(Schema::primitive(SchemaType::Int32), Value::Int32(12))
        );
        let map = read(
            &json,
            r#"{"schema":{"type":"map","keys":{"type":"int64"},"values":{"type":"string","optional":true}},"payload":[[1,"a"],[2,null]]}"#,
        );
        assert_eq!(
            map.value,
            Value::Map(vec![
                (Value::Int64(1), "a".into()),
                (Value::Int64(2), Value::Null)
            ])
        );
        let schemaless = read(&json, r#"{"payload":[1,2.5],"schema":null}"#);
        assert_eq!(
            schemaless,
            Data::schemaless(Value::Array(vec![Value::Int64(1), Value::Float64(2.5)]))
        );
    }

    #[test]
    fn reads_struct_fields_by_name_with_defaults() {
        let text = r#"{"schema":{"type":"struct","fields":[
            {"type":"int16","optional":true,"default":7,"field":"a"},
            {"type":"string","optional":true,"field":"b"},
            {"type":"double","optional":false,"field":"c"}]},
            "payload":{"c":1,"extra":true,"a":null}}"#;
        let data = read(&converter(&[]), text);
        let Value::Struct(s) = &data.value else {
            panic!("not a struct: {data:?}");
        };
        assert_eq!(
            s.values(),
            &[Value::Int16(7), Value::Null, Value::Float64(1.0)]
        );
        let a = &data.schema.as_ref().unwrap().fields[0].schema;
        assert_eq!(a.default, Some(Value::Int16(7)));
    }

    #[test]
    fn reads_plain_json_when_schemas_are_disabled() {
        let data = read(
            &converter(&[("schemas.enable", "false")]),
            r#"{"a":-0,"b":[true,null,1.5e3,"x"],"c":{}}"#,
        );
        let expected = Value::Map(vec![
            ("a".into(), Value::Int64(0)),
            (
                "b".into(),
                Value::Array(vec![
                    Value::Boolean(true),
                    Value::Null,
                    Value::Float64(1500.0),
                    "x".into(),
                ]),
            ),
            ("c".into(), Value::Map(vec![])),
        ]);
        assert_eq!(data, Data::schemaless(expected));
    }

    #[test]
    fn reads_nothing_as_null() {
        for json in [converter(&[]), converter(&[("schemas.enable", "false")])] {
            assert_eq!(json.to_connect("t", None).unwrap(), Data::NULL);
            assert_eq!(json.to_connect("t", Some(b"")).unwrap(), Data::NULL);
            assert_eq!(json.to_connect("t", Some(b" \n")).unwrap(), Data::NULL);
        }
        assert_eq!(
            read(&converter(&[("schemas.enable", "false")]), "null"),
            Data::NULL
        );
    }

    #[test]
    fn reads_decimals_in_either_format() {
        let json = converter(&[]);
        let decimal = |payload: &str, scale: i32| {
            let text = format!(
                r#"{{"schema":{{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{{"scale":"{scale}"}}}},"payload":{payload}}}"#
            );
            json.to_connect("t", Some(text.as_bytes()))
                .map(|data| data.value)
        };
        let value = |unscaled, scale| Value::Decimal(Decimal { unscaled, scale });
        assert_eq!(decimal("1.5", 2).unwrap(), value(150, 2));
        assert_eq!(decimal("-0.0100", 2).unwrap(), value(-1, 2));
        assert_eq!(decimal("1E+3", -2).unwrap(), value(10, -2));
        assert_eq!(decimal("\"/w==\"", 0).unwrap(), value(-1, 0));
        let max = format!("{}", i128::MAX);
        assert_eq!(decimal(&max, 0).unwrap(), value(i128::MAX, 0));
        let err = decimal("1.234", 2).unwrap_err().to_string();
        assert!(
            err.contains("more decimal places than the scale 2"),
            "{err}"
        );
        let err = decimal("1e40", 0).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
        let err = decimal("true", 0).unwrap_err().to_string();
        assert!(
            err.contains("should be numeric or bytes but was BOOLEAN"),
            "{err}"
        );
        let err = decimal("\"AAAAAAAAAAAAAAAAAAAAAAAA\"", 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("18 bytes are not a 128-bit unscaled value"),
            "{err}"
        );
    }

    #[test]
    fn reads_non_finite_floats_that_jackson_writes_as_strings() {
        let json = converter(&[]);
        let data = with_schema(
            Schema::primitive(SchemaType::Float64),
            Value::Float64(f64::NAN),
        );
        let text = write(&json, &data);
        assert_eq!(
            text,
            r#"{"schema":{"type":"double","optional":false},"payload":"NaN"}"#
        );
        let Value::Float64(v) = read(&json, &text).value else {
            panic!("not a double");
        };
        assert!(v.is_nan());
        let text = r#"{"schema":{"type":"float"},"payload":"-Infinity"}"#;
        assert_eq!(read(&json, text).value, Value::Float32(f32::NEG_INFINITY));
        let err = read_error(&json, r#"{"schema":{"type":"float"},"payload":"1.5"}"#);
        assert!(
            err.contains("float schema expects a number but found STRING"),
            "{err}"
        );
    }

    #[test]
    fn reports_malformed_input() {
        let json = converter(&[]);
        let plain = converter(&[("schemas.enable", "false")]);
        let err = read_error(&json, r#"{"schema":"#);
        assert!(
            err.contains("serialization error: invalid JSON at byte 10"),
            "{err}"
        );
        assert!(read_error(&plain, "{} x").contains("unexpected data"));
        assert!(read_error(&plain, "[1,]").contains("expected a JSON value"));
        assert!(read_error(&plain, "01").contains("unexpected data"));
        assert!(read_error(&plain, "\"\u{1}\"").contains("control character"));
        assert!(read_error(&plain, "123456789012345678901").contains("does not fit in int64"));
        assert_eq!(
            ENVELOPE_REQUIRED,
            "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not \
             contain additional fields. If you are trying to deserialize plain JSON data, set \
             schemas.enable=false in your converter configuration."
        );
        for text in [
            r#"{"schema":null}"#,
            r#"{"schema":null,"payload":1,"x":2}"#,
            "[1]",
            "null",
        ] {
            assert!(
                read_error(&json, text).contains(ENVELOPE_REQUIRED),
                "{text}"
            );
        }
    }

    #[test]
    fn reports_payloads_that_do_not_match_their_schema() {
        let json = converter(&[]);
        let cases = [
            (
                r#"{"type":"int32"}"#,
                r#""12""#,
                "payload: int32 schema expects an integer but found STRING",
            ),
            (r#"{"type":"int8"}"#, "300", "300 is not a valid int8 value"),
            (
                r#"{"type":"int64"}"#,
                "1.0",
                "1.0 is not a valid int64 value",
            ),
            (
                r#"{"type":"string"}"#,
                "null",
                "Invalid null value for required string field",
            ),
            (r#"{"type":"bytes"}"#, r#""%%""#, "Invalid bytes field"),
            (
                r#"{"type":"boolean"}"#,
                "1",
                "boolean schema expects a boolean but found NUMBER",
            ),
            (
                r#"{"type":"array","items":{"type":"int32"}}"#,
                "[1,true]",
                "element 1: int32 schema expects an integer but found BOOLEAN",
            ),
            (
                r#"{"type":"map","keys":{"type":"string"},"values":{"type":"int32"}}"#,
                "[]",
                "Maps with string fields should be encoded as JSON objects, but found ARRAY",
            ),
            (
                r#"{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}}"#,
                "[[1,2,3]]",
                "map entry 0: Found invalid map entry, expected length 2 but found :3",
            ),
            (
                r#"{"type":"struct","fields":[{"type":"int32","field":"a"}]}"#,
                "{}",
                r#"field "a": Invalid null value for required int32 field"#,
            ),
            (
                r#"{"type":"struct","fields":[]}"#,
                "[]",
                "Structs should be encoded as JSON objects, but found ARRAY",
            ),
            (
                r#"{"type":"int32","name":"org.apache.kafka.connect.data.Date"}"#,
                "1.5",
                "Invalid value for Date: 1.5 is not a valid int32 value",
            ),
        ];
        for (schema, payload, expected) in cases {
            let err = read_error(
                &json,
                &format!(r#"{{"schema":{schema},"payload":{payload}}}"#),
            );
            assert!(err.contains(expected), "{schema} {payload}: {err}");
        }
    }

    #[test]
    fn reports_malformed_schemas() {
        let json = converter(&[]);
        let cases = [
            (
                r#"{"optional":true}"#,
                "schema: Schema must contain 'type' field",
            ),
            (r#"{"type":"uuid"}"#, "Unknown schema type: uuid"),
            (
                r#"{"type":"array","items":null}"#,
                "Array schema did not specify the element type",
            ),
            (
                r#"{"type":"map","keys":{"type":"string"}}"#,
                "Map schema did not specify the value type",
            ),
            (
                r#"{"type":"struct"}"#,
                "Struct schema's \"fields\" argument is not an array.",
            ),
            (
                r#"{"type":"struct","fields":[{"type":"string"}]}"#,
                "field name not specified properly",
            ),
            (
                r#"{"type":"struct","fields":[{"type":"string","field":"a"},{"type":"int8","field":"a"}]}"#,
                "field name duplication a",
            ),
            (
                r#"{"type":"string","parameters":{"a":1}}"#,
                "Schema parameters must have string values.",
            ),
            (
                r#"{"type":"int8","version":3000000000}"#,
                "is not a 32-bit integer",
            ),
            (
                r#"{"type":"int8","default":null}"#,
                "default: Invalid null value for required int8 field",
            ),
            (
                r#"{"type":"array","items":{"type":"struct","fields":[{"type":"bogus","field":"f"}]}}"#,
                r#"schema: items: field "f": Unknown schema type: bogus"#,
            ),
        ];
        for (schema, expected) in cases {
            let err = read_error(&json, &format!(r#"{{"schema":{schema},"payload":null}}"#));
            assert!(err.contains(expected), "{schema}: {err}");
        }
    }

    #[test]
    fn limits_nesting_depth() {
        let plain = converter(&[("schemas.enable", "false")]);
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(plain.to_connect("t", Some(nested(256).as_bytes())).is_ok());
        let err = read_error(&plain, &nested(257));
        assert!(err.contains("nested deeper than 256"), "{err}");
    }

    #[test]
    fn validates_its_configuration() {
        let configure = |key: &str, value: &str| {
            let props = ConfigMap::from([(key.to_owned(), value.to_owned())]);
            JsonConverter::configure(&props, true)
        };
        assert!(configure("schemas.cache.size", "10").is_ok());
        assert_eq!(
            configure("decimal.format", " Numeric ")
                .unwrap()
                .decimal_format,
            DecimalFormat::Numeric
        );
        assert!(!configure("schemas.enable", "FALSE").unwrap().schemas_enable);
        for (key, value) in [
            ("schemas.enable", "yes"),
            ("decimal.format", "HEX"),
            ("schemas.cache.size", "many"),
        ] {
            let err = configure(key, value).unwrap_err();
            assert_eq!(err.issues.len(), 1);
            assert_eq!(err.issues[0].key, key);
        }
    }

    const PRIMITIVES: [SchemaType; 9] = [
        SchemaType::Int8,
        SchemaType::Int16,
        SchemaType::Int32,
        SchemaType::Int64,
        SchemaType::Float32,
        SchemaType::Float64,
        SchemaType::Boolean,
        SchemaType::String,
        SchemaType::Bytes,
    ];

    /// Sets what every schema may carry; logical schemas keep the name, version and parameters that
    /// make them logical.
    fn decorate(schema: Schema) -> impl Strategy<Value = Schema> {
        let is_logical = schema.logical().is_some();
        (
            any::<bool>(),
            option::of("[a-z][a-z.]{0,8}"),
            option::of(any::<i32>()),
            option::of(".{0,8}"),
            btree_map(".{0,4}", ".{0,4}", 0..3),
        )
            .prop_map(move |(optional, name, version, doc, parameters)| {
                let mut schema = schema.clone();
                schema.optional = optional;
                schema.doc = doc;
                if !is_logical {
                    schema.name = name;
                    schema.version = version;
                    schema.parameters = parameters;
                }
                schema
            })
    }

    /// Primitive and logical schemas, some with a default.
    fn leaf_schema() -> impl Strategy<Value = Schema> {
        prop_oneof![
            4 => proptest::sample::select(PRIMITIVES.to_vec()).prop_map(Schema::primitive),
            1 => (-8i32..=40).prop_map(|scale| logical::decimal(scale).build()),
            1 => prop_oneof![
                Just(logical::date().build()),
                Just(logical::time().build()),
                Just(logical::timestamp().build()),
            ],
        ]
        .prop_flat_map(decorate)
        .prop_flat_map(|schema| {
            let default = option::weighted(0.2, non_null_value(Arc::new(schema.clone())));
            (Just(schema), default)
        })
        .prop_map(|(mut schema, default)| {
            schema.default = default;
            schema
        })
    }

    fn any_schema() -> impl Strategy<Value = Schema> {
        leaf_schema().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                inner
                    .clone()
                    .prop_map(|element| SchemaBuilder::array(element).build()),
                (leaf_schema(), inner.clone())
                    .prop_map(|(keys, values)| SchemaBuilder::map(keys, values).build()),
                btree_map(".{1,6}", inner, 0..4).prop_map(|fields| {
                    fields
                        .into_iter()
                        .fold(SchemaBuilder::struct_(), |builder, (name, schema)| {
                            builder.field(name, schema)
                        })
                        .build()
                }),
            ]
            .prop_flat_map(decorate)
        })
    }

    /// A value of the schema: null only where the schema is optional without a default, since a null
    /// is written as the default.
    fn value_of(schema: Arc<Schema>) -> BoxedStrategy<Value> {
        if schema.optional && schema.default.is_none() {
            prop_oneof![1 => Just(Value::Null), 3 => non_null_value(schema)].boxed()
        } else {
            non_null_value(schema)
        }
    }

    fn non_null_value(schema: Arc<Schema>) -> BoxedStrategy<Value> {
        match schema.logical() {
            Some(Logical::Decimal { scale }) => {
                return any::<i128>()
                    .prop_map(move |unscaled| Value::Decimal(Decimal { unscaled, scale }))
                    .boxed()
            }
            Some(Logical::Date) => return any::<i32>().prop_map(Value::Date).boxed(),
            Some(Logical::Time) => return any::<i32>().prop_map(Value::Time).boxed(),
            Some(Logical::Timestamp) => return any::<i64>().prop_map(Value::Timestamp).boxed(),
            None => {}
        }
        match schema.kind {
            SchemaType::Int8 => any::<i8>().prop_map(Value::Int8).boxed(),
            SchemaType::Int16 => any::<i16>().prop_map(Value::Int16).boxed(),
            SchemaType::Int32 => any::<i32>().prop_map(Value::Int32).boxed(),
            SchemaType::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
            SchemaType::Float32 => any::<f32>()
                .prop_filter("NaN is not equal to itself", |v| !v.is_nan())
                .prop_map(Value::Float32)
                .boxed(),
            SchemaType::Float64 => any::<f64>()
                .prop_filter("NaN is not equal to itself", |v| !v.is_nan())
                .prop_map(Value::Float64)
                .boxed(),
            SchemaType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
            SchemaType::String => ".*".prop_map(Value::String).boxed(),
            SchemaType::Bytes => vec(any::<u8>(), 0..12).prop_map(Value::Bytes).boxed(),
            SchemaType::Array => {
                let element = schema.value_schema.clone().unwrap();
                vec(value_of(element), 0..4).prop_map(Value::Array).boxed()
            }
            SchemaType::Map => {
                let keys = schema.key_schema.clone().unwrap();
                let values = schema.value_schema.clone().unwrap();
                vec((non_null_value(keys), value_of(values)), 0..4)
                    .prop_map(|entries| Value::Map(unique_keys(entries)))
                    .boxed()
            }
            SchemaType::Struct => {
                let fields: Vec<_> = schema
                    .fields
                    .iter()
                    .map(|field| value_of(field.schema.clone()))
                    .collect();
                fields
                    .prop_map(move |values| {
                        let mut s = Struct::new(schema.clone());
                        for (field, value) in schema.fields.iter().zip(values) {
                            s.put(&field.name, value);
                        }
                        Value::Struct(s)
                    })
                    .boxed()
            }
        }
    }

    fn unique_keys(entries: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
        let mut unique: Vec<(Value, Value)> = Vec::new();
        for (key, value) in entries {
            if !unique.iter().any(|(seen, _)| *seen == key) {
                unique.push((key, value));
            }
        }
        unique
    }

    fn schemaless_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i64>().prop_map(Value::Int64),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(Value::Float64),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                btree_map(".*", inner, 0..5).prop_map(|members| {
                    Value::Map(
                        members
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn serde_json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter_map("finite", |v| serde_json::Number::from_f64(v)
                .map(serde_json::Value::Number)),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                btree_map(".*", inner, 0..5)
                    .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips_data_with_schemas(
            (schema, value) in any_schema().prop_flat_map(|schema| {
                let schema = Arc::new(schema);
                (Just(schema.clone()), value_of(schema))
            }),
            numeric in any::<bool>(),
        ) {
            let format = if numeric { "NUMERIC" } else { "BASE64" };
            let json = converter(&[("decimal.format", format)]);
            let data = Data::new(Some(schema), value);
            let bytes = json.from_connect("t", &data).unwrap();
            let text = bytes.as_deref().unwrap();
            prop_assert!(serde_json::from_slice::<serde_json::Value>(text).is_ok());
            prop_assert_eq!(json.to_connect("t", bytes.as_deref()).unwrap(), data);
        }

        #[test]
        fn round_trips_schemaless_values(value in schemaless_value(), schemas_enable in any::<bool>()) {
            let json = converter(&[("schemas.enable", if schemas_enable { "true" } else { "false" })]);
            let data = Data::schemaless(value);
            let bytes = json.from_connect("t", &data).unwrap();
            prop_assert_eq!(json.to_connect("t", bytes.as_deref()).unwrap(), data);
        }

        #[test]
        fn parses_and_writes_what_serde_json_does(value in serde_json_value(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            let parsed = Json::parse(text.as_bytes()).unwrap().unwrap();
            let written = parsed.to_bytes();
            // Compared with serde_json's reading of the same text: its default float parsing may be
            // one ulp off the value it wrote, and numbers are written as they were read.
            let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&written).unwrap(), expected);
            let rewritten = Json::parse(&written).unwrap().unwrap().to_bytes();
            prop_assert_eq!(rewritten, written);
        }
    }
}
