//! Header converters (`header.converter`): how record header values become bytes in Kafka and back.
//! `SimpleHeaderConverter`, Kafka's default, writes values as text and reads text back as the type it
//! spells (`true`, `42`, `1.5`, or a string), so that transforms and sinks see typed values;
//! `StringConverter` reads every header as a string.

use crate::config::ConfigError;
use crate::data::{parse_string, Data, Value};

/// A header converter Sluice knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderConverter {
    #[default]
    Simple,
    String,
}

impl HeaderConverter {
    /// The converter a `header.converter` value names, by short or full class name; empty is the default.
    pub fn from_config(key: &str, class: &str) -> Result<HeaderConverter, ConfigError> {
        match class.trim().rsplit('.').next().unwrap_or_default() {
            "" | "SimpleHeaderConverter" => Ok(HeaderConverter::Simple),
            "StringConverter" => Ok(HeaderConverter::String),
            other => Err(ConfigError::single(
                key,
                format!("unknown header converter class {other:?}; known: SimpleHeaderConverter, StringConverter"),
            )),
        }
    }

    /// A header value as bytes; null stays null. Strings and bytes go as they are, anything else as
    /// its text (booleans and numbers as Kafka writes them: `true`, `-5`, `1.5`).
    pub fn to_kafka(self, data: &Data) -> Option<Vec<u8>> {
        Some(match &data.value {
            Value::Null => return None,
            Value::Bytes(b) => b.clone(),
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Boolean(v) => v.to_string().into_bytes(),
            Value::Int8(v) => v.to_string().into_bytes(),
            Value::Int16(v) => v.to_string().into_bytes(),
            Value::Int32(v) => v.to_string().into_bytes(),
            Value::Int64(v) => v.to_string().into_bytes(),
            // Debug keeps the fractional part (`1.0`), as Java's `Double.toString` does.
            Value::Float32(v) => format!("{v:?}").into_bytes(),
            Value::Float64(v) => format!("{v:?}").into_bytes(),
            other => format!("{other:?}").into_bytes(),
        })
    }

    /// Header bytes as a value: text the simple converter reads as its type (the string converter as a
    /// string); bytes that are not UTF-8 as bytes.
    pub fn from_kafka(self, bytes: Option<Vec<u8>>) -> Data {
        match bytes {
            None => Data::NULL,
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => match self {
                    HeaderConverter::Simple => parse_string(&text),
                    HeaderConverter::String => Data::string(text),
                },
                Err(e) => Data::schemaless(e.into_bytes()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simple_converter_reads_typed_values_and_the_string_one_strings() {
        let simple = HeaderConverter::Simple;
        for value in [
            Value::Boolean(true),
            Value::Int8(-5),
            Value::Int32(70_000),
            Value::Float32(1.5),
            Value::String("tea".into()),
        ] {
            let data = Data::schemaless(value.clone());
            assert_eq!(simple.from_kafka(simple.to_kafka(&data)).value, value);
        }
        let string = HeaderConverter::String;
        assert_eq!(string.from_kafka(Some(b"42".to_vec())), Data::string("42"));
        assert_eq!(
            simple.from_kafka(Some(vec![0xff])).value,
            Value::Bytes(vec![0xff])
        );
        assert_eq!(simple.from_kafka(None), Data::NULL);
        assert_eq!(simple.to_kafka(&Data::NULL), None);
    }

    #[test]
    fn classes_are_known_by_short_and_full_name() {
        assert_eq!(
            HeaderConverter::from_config(
                "k",
                "org.apache.kafka.connect.storage.SimpleHeaderConverter"
            )
            .unwrap(),
            HeaderConverter::Simple
        );
        assert_eq!(
            HeaderConverter::from_config("k", "StringConverter").unwrap(),
            HeaderConverter::String
        );
        let error = HeaderConverter::from_config("header.converter", "JsonConverter")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("header.converter") && error.contains("SimpleHeaderConverter"),
            "{error}"
        );
    }
}
