//! The converter's configuration, and the envelope that carries a schema next to its payload.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use super::decimal_format::DecimalFormat;
use super::payload::{at, schemaless_from_json, value_from_json, Payload};
use super::schema::{schema_from_json, SchemaJson};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};
use crate::convert::{ConvertError, Converter};
use crate::data::Data;

const CONVERTER: &str = "JsonConverter";
const SCHEMAS_ENABLE: &str = "schemas.enable";
const SCHEMAS_CACHE_SIZE: &str = "schemas.cache.size";
const DECIMAL_FORMAT: &str = "decimal.format";

pub(super) const ENVELOPE_REQUIRED: &str = "JsonConverter with schemas.enable requires \"schema\" and \
    \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON \
    data, set schemas.enable=false in your converter configuration.";

/// Converts Connect data to and from JSON, with its schema in an envelope unless `schemas.enable=false`.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    pub(super) schemas_enable: bool,
    pub(super) decimal_format: DecimalFormat,
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

/// Kafka's envelope: the schema, null for schemaless data, then the payload.
#[derive(Serialize)]
struct Envelope<'a> {
    schema: Option<SchemaJson<'a>>,
    payload: Payload<'a>,
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
        let format = self.decimal_format;
        let payload = Payload {
            format,
            schema,
            value: &data.value,
        };
        let written = if self.schemas_enable {
            let schema = schema.map(|schema| SchemaJson {
                format,
                schema,
                field: None,
            });
            serde_json::to_vec(&Envelope { schema, payload })
        } else {
            serde_json::to_vec(&payload)
        };
        match written {
            Ok(bytes) => Ok(Some(Cow::Owned(bytes))),
            Err(e) => Err(ConvertError::Serialize {
                converter: CONVERTER,
                topic: topic.to_owned(),
                found: data.value.type_name(),
                reason: e.to_string(),
            }),
        }
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

impl JsonConverter {
    fn data_from_json(&self, bytes: &[u8]) -> Result<Data, String> {
        // Jackson reads nothing but whitespace as a missing node, which Kafka converts to null.
        if bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(Data::NULL);
        }
        let json: Json = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            )
        })?;
        if !self.schemas_enable {
            return Ok(Data::new(None, schemaless_from_json(&json)?));
        }
        let envelope = match &json {
            Json::Object(members) if members.len() == 2 => {
                (members.get("schema"), members.get("payload"))
            }
            _ => (None, None),
        };
        let (Some(schema), Some(payload)) = envelope else {
            return Err(ENVELOPE_REQUIRED.to_owned());
        };
        if schema.is_null() {
            let value = schemaless_from_json(payload).map_err(at("payload"))?;
            return Ok(Data::new(None, value));
        }
        let schema = Arc::new(schema_from_json(schema).map_err(at("schema"))?);
        let value = value_from_json(&schema, payload).map_err(at("payload"))?;
        Ok(Data::new(Some(schema), value))
    }
}
