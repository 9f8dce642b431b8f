//! Typed values from text, as Kafka's `Values.parseString`: what `InsertHeader`'s `value.literal` and
//! `SimpleHeaderConverter` make of a string.

use std::sync::Arc;

use super::{Data, Schema, SchemaType, Value};

/// The value a text stands for, with its inferred schema: `true`/`false` a boolean, an integer the
/// smallest integer type that holds it, a number with a fraction a float32 when it is finite as one
/// (a float64 otherwise), anything else the string itself.
pub fn parse_string(text: &str) -> Data {
    let schema = |kind| Some(Arc::new(Schema::primitive(kind)));
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
        return Data::new(
            schema(SchemaType::Boolean),
            Value::Boolean(trimmed.eq_ignore_ascii_case("true")),
        );
    }
    if let Ok(n) = trimmed.parse::<i64>() {
        return if let Ok(n) = i8::try_from(n) {
            Data::new(schema(SchemaType::Int8), Value::Int8(n))
        } else if let Ok(n) = i16::try_from(n) {
            Data::new(schema(SchemaType::Int16), Value::Int16(n))
        } else if let Ok(n) = i32::try_from(n) {
            Data::new(schema(SchemaType::Int32), Value::Int32(n))
        } else {
            Data::new(schema(SchemaType::Int64), Value::Int64(n))
        };
    }
    let numeric = !trimmed.is_empty()
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && trimmed.chars().any(|c| c.is_ascii_digit());
    if numeric {
        if let Ok(f) = trimmed.parse::<f64>() {
            let single = f as f32;
            return if single.is_finite() {
                Data::new(schema(SchemaType::Float32), Value::Float32(single))
            } else {
                Data::new(schema(SchemaType::Float64), Value::Float64(f))
            };
        }
    }
    Data::string(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_read_as_the_narrowest_type_kafka_infers() {
        let kinds = [
            ("true", Value::Boolean(true)),
            ("FALSE", Value::Boolean(false)),
            ("42", Value::Int8(42)),
            ("300", Value::Int16(300)),
            ("70000", Value::Int32(70000)),
            ("5000000000", Value::Int64(5_000_000_000)),
            ("1.5", Value::Float32(1.5)),
            ("1e300", Value::Float64(1e300)),
            ("hello", Value::String("hello".into())),
            ("", Value::String(String::new())),
            ("12abc", Value::String("12abc".into())),
        ];
        for (text, value) in kinds {
            assert_eq!(parse_string(text).value, value, "{text:?}");
        }
    }
}
