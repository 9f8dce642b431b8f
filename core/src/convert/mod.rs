//! Converters between Connect data and the bytes stored in Kafka: `StringConverter`,
//! `ByteArrayConverter` and `JsonConverter`, chosen by `key.converter` / `value.converter`, and the
//! header converters chosen by `header.converter`.

mod bytes;
mod header;
mod json;
mod string;

pub use bytes::ByteArrayConverter;
pub use header::HeaderConverter;
pub use json::JsonConverter;
pub use string::StringConverter;

pub(crate) use json::unscaled_at_scale;
pub(crate) use string::java_decimal;

use std::borrow::Cow;

use crate::config::{ConfigError, ConfigMap};
use crate::data::Data;

/// Why a converter could not convert a record's key or value.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{converter} cannot serialize a {found} value for topic {topic:?}: {reason}")]
    Serialize {
        converter: &'static str,
        topic: String,
        found: &'static str,
        reason: String,
    },
    #[error("{converter} cannot deserialize data from topic {topic:?}: {reason}")]
    Deserialize {
        converter: &'static str,
        topic: String,
        reason: String,
    },
}

impl ConvertError {
    /// The converter that refused the data.
    pub fn converter(&self) -> &'static str {
        match self {
            ConvertError::Serialize { converter, .. }
            | ConvertError::Deserialize { converter, .. } => converter,
        }
    }
}

/// Turns Connect data into bytes for Kafka and back, as `org.apache.kafka.connect.storage.Converter`.
///
/// The method names follow Kafka's `fromConnectData` / `toConnectData`.
#[allow(clippy::wrong_self_convention)]
pub trait Converter: Send + Sync {
    /// Serializes a key or value; `None` writes a Kafka null. Strings and bytes may be borrowed.
    fn from_connect<'a>(
        &self,
        topic: &str,
        data: &'a Data,
    ) -> Result<Option<Cow<'a, [u8]>>, ConvertError>;

    /// Deserializes a key or value; `None` is a Kafka null.
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Data, ConvertError>;

    /// Deserializes bytes the caller owns, which a converter may keep instead of copying.
    fn to_connect_owned(&self, topic: &str, bytes: Option<Vec<u8>>) -> Result<Data, ConvertError> {
        self.to_connect(topic, bytes.as_deref())
    }
}

/// Builds the converter a `*.converter` key names, configured from its `*.converter.*` keys.
///
/// Accepts Kafka's class names (`org.apache.kafka.connect.json.JsonConverter`) and the short
/// names (`JsonConverter`).
pub fn converter_from_config(
    key: &str,
    class: &str,
    props: &ConfigMap,
    is_key: bool,
) -> Result<Box<dyn Converter>, ConfigError> {
    let short = class.rsplit('.').next().unwrap_or(class);
    match short {
        "StringConverter" => Ok(Box::new(StringConverter::configure(props)?)),
        "ByteArrayConverter" => Ok(Box::new(ByteArrayConverter)),
        "JsonConverter" => Ok(Box::new(JsonConverter::configure(props, is_key)?)),
        _ => Err(ConfigError::single(
            key,
            format!(
                "unknown converter class {class:?}; known: StringConverter, ByteArrayConverter, JsonConverter"
            ),
        )),
    }
}
