//! ByteArrayConverter: keys and values that are raw bytes, passed through unchanged, as
//! `org.apache.kafka.connect.converters.ByteArrayConverter`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use super::{ConvertError, Converter};
use crate::data::{Data, Schema, SchemaType, Value};

const CONVERTER: &str = "ByteArrayConverter";

/// Writes `Value::Bytes` as they are and reads every record as optional bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn from_connect<'a>(
        &self,
        topic: &str,
        data: &'a Data,
    ) -> Result<Option<Cow<'a, [u8]>>, ConvertError> {
        let error = |reason: String| ConvertError::Serialize {
            converter: CONVERTER,
            topic: topic.to_owned(),
            found: data.value.type_name(),
            reason,
        };
        if let Some(schema) = &data.schema {
            if schema.kind != SchemaType::Bytes {
                return Err(error(format!(
                    "invalid schema type {}: expected bytes",
                    schema.kind.json_name()
                )));
            }
        }
        match &data.value {
            Value::Null => Ok(None),
            Value::Bytes(bytes) => Ok(Some(Cow::Borrowed(bytes))),
            _ => Err(error("expected bytes".to_owned())),
        }
    }

    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Data, ConvertError> {
        self.to_connect_owned(topic, bytes.map(<[u8]>::to_vec))
    }

    fn to_connect_owned(&self, _topic: &str, bytes: Option<Vec<u8>>) -> Result<Data, ConvertError> {
        let value = bytes.map_or(Value::Null, Value::Bytes);
        Ok(Data::new(Some(optional_bytes_schema()), value))
    }
}

/// Connect's `Schema.OPTIONAL_BYTES_SCHEMA`, shared by every record read.
fn optional_bytes_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Arc::new(Schema::optional(SchemaType::Bytes)))
        .clone()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::data::{logical, Decimal};

    #[test]
    fn passes_bytes_through() {
        let data = Data::schemaless(vec![0u8, 0xff, b'a']);
        let bytes = ByteArrayConverter.from_connect("t", &data).unwrap();
        assert_eq!(bytes.as_deref(), Some(&[0u8, 0xff, b'a'][..]));
        let with_schema = Data::new(
            Some(Arc::new(Schema::primitive(SchemaType::Bytes))),
            Value::Bytes(vec![1]),
        );
        assert_eq!(
            ByteArrayConverter
                .from_connect("t", &with_schema)
                .unwrap()
                .as_deref(),
            Some(&[1u8][..])
        );
    }

    #[test]
    fn null_is_a_kafka_null_both_ways() {
        assert_eq!(
            ByteArrayConverter.from_connect("t", &Data::NULL).unwrap(),
            None
        );
        let read = ByteArrayConverter.to_connect("t", None).unwrap();
        assert_eq!(
            read.schema.as_deref(),
            Some(&Schema::optional(SchemaType::Bytes))
        );
        assert_eq!(read.value, Value::Null);
    }

    #[test]
    fn rejects_values_that_are_not_bytes() {
        let err = ByteArrayConverter
            .from_connect("t", &Data::string("text"))
            .unwrap_err();
        assert!(matches!(
            err,
            ConvertError::Serialize {
                found: "string",
                ..
            }
        ));
        assert!(err.to_string().contains("expected bytes"), "{err}");
        let decimal = Data::new(
            Some(Arc::new(logical::decimal(2).build())),
            Value::Decimal(Decimal {
                unscaled: 1,
                scale: 2,
            }),
        );
        assert!(ByteArrayConverter.from_connect("t", &decimal).is_err());
    }

    #[test]
    fn rejects_a_schema_that_is_not_bytes() {
        let data = Data::new(
            Some(Arc::new(Schema::optional(SchemaType::Int32))),
            Value::Null,
        );
        let err = ByteArrayConverter.from_connect("t", &data).unwrap_err();
        assert!(
            err.to_string().contains("invalid schema type int32"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let data = Data::new(Some(optional_bytes_schema()), Value::Bytes(bytes));
            let written = ByteArrayConverter.from_connect("t", &data).unwrap();
            prop_assert_eq!(ByteArrayConverter.to_connect("t", written.as_deref()).unwrap(), data);
        }
    }
}
