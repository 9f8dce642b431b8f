//! Connect values as JSON payloads, with or without their schema, as Kafka's `convertToJson` and
//! `convertToConnect`; numbers keep their exact text through serde_json's `arbitrary_precision`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value as Json};

use super::decimal_format::DecimalFormat;
use crate::convert::string::java_decimal;
use crate::data::logical::Logical;
use crate::data::{Decimal, Schema, SchemaType, Struct, Value};

const REQUIRED: &str = "null value for field that is required and has no default value";

/// Strings Jackson writes for floating-point numbers that JSON numbers cannot hold.
const NON_FINITE: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// A value to write, typed by its schema, or by its variant when it has none.
#[derive(Clone, Copy)]
pub(super) struct Payload<'a> {
    pub(super) format: DecimalFormat,
    pub(super) schema: Option<&'a Schema>,
    pub(super) value: &'a Value,
}

impl Serialize for Payload<'_> {
    /// A null becomes the schema's default if it has one; a primitive is written alike with or
    /// without its schema once its type is checked.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(schema) = self.schema else {
            return self.schemaless(s);
        };
        let value = self.value;
        if value.is_null() {
            return match default_of(schema) {
                Some(default) => self.with(Some(schema), default).serialize(s),
                None if schema.optional => s.serialize_unit(),
                None => Err(S::Error::custom(REQUIRED)),
            };
        }
        if let Some(logical) = schema.logical() {
            return self.logical(s, logical);
        }
        match (schema.kind, value) {
            (SchemaType::Array, Value::Array(items)) => {
                let element = value_schema(schema).map_err(S::Error::custom)?;
                let items = items.iter().map(|item| self.with(Some(element), item));
                elements(s, "element", items)
            }
            (SchemaType::Map, Value::Map(entries)) => self.map(s, schema, entries),
            (SchemaType::Struct, Value::Struct(fields)) => self.struct_(s, schema, fields),
            (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_)) => self.schemaless(s),
            _ => Err(invalid_type(schema.kind.json_name(), value)),
        }
    }
}

impl<'a> Payload<'a> {
    fn with(self, schema: Option<&'a Schema>, value: &'a Value) -> Payload<'a> {
        Payload {
            schema,
            value,
            ..self
        }
    }

    /// A value typed by its variant: bytes as base64, maps with string keys as objects and other maps
    /// as arrays of `[key, value]` pairs. Structs and logical values need their schema.
    fn schemaless<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = self.value;
        match value {
            Value::Null => s.serialize_unit(),
            Value::Boolean(v) => s.serialize_bool(*v),
            Value::Int8(v) => s.serialize_i8(*v),
            Value::Int16(v) => s.serialize_i16(*v),
            Value::Int32(v) => s.serialize_i32(*v),
            Value::Int64(v) => s.serialize_i64(*v),
            Value::Float32(v) if v.is_finite() => s.serialize_f32(*v),
            Value::Float64(v) if v.is_finite() => s.serialize_f64(*v),
            Value::Float32(v) => s.serialize_str(non_finite(f64::from(*v))),
            Value::Float64(v) => s.serialize_str(non_finite(*v)),
            Value::String(v) => s.serialize_str(v),
            Value::Bytes(v) => s.serialize_str(&BASE64.encode(v)),
            Value::Array(items) => {
                elements(s, "element", items.iter().map(|item| self.with(None, item)))
            }
            Value::Map(entries) => {
                let members: Option<Vec<_>> = entries
                    .iter()
                    .map(|(key, value)| Some((key.as_str()?, self.with(None, value))))
                    .collect();
                match members {
                    Some(members) => object(s, members),
                    None => {
                        let pairs = entries
                            .iter()
                            .map(|(key, value)| (self.with(None, key), self.with(None, value)));
                        elements(s, "map entry", pairs)
                    }
                }
            }
            Value::Struct(_) => Err(S::Error::custom(
                "Mismatching schema: a struct cannot be written without its schema",
            )),
            Value::Decimal(_) | Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => {
                Err(S::Error::custom(format_args!(
                    "a {} value cannot be written without its schema",
                    value.type_name()
                )))
            }
        }
    }

    /// Maps whose key schema is a string as JSON objects, other maps as arrays of `[key, value]` pairs.
    fn map<S: Serializer>(
        &self,
        s: S,
        schema: &'a Schema,
        entries: &'a [(Value, Value)],
    ) -> Result<S::Ok, S::Error> {
        let keys = key_schema(schema).map_err(S::Error::custom)?;
        let values = value_schema(schema).map_err(S::Error::custom)?;
        if keys.kind != SchemaType::String {
            let pairs = entries
                .iter()
                .map(|(key, value)| (self.with(Some(keys), key), self.with(Some(values), value)));
            return elements(s, "map entry", pairs);
        }
        let members = entries
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let key = string_key(keys, key).map_err(within(format_args!("map entry {i}")))?;
                Ok((key, self.with(Some(values), value)))
            })
            .collect::<Result<Vec<_>, S::Error>>()?;
        object(s, members)
    }

    /// A struct as an object of its fields in schema order; its own schema must be the one written.
    fn struct_<S: Serializer>(
        &self,
        s: S,
        schema: &'a Schema,
        value: &'a Struct,
    ) -> Result<S::Ok, S::Error> {
        let own = value.schema().as_ref();
        if !std::ptr::eq(own, schema) && own != schema {
            return Err(S::Error::custom(
                "Mismatching schema: the struct's schema is not the schema it is written with",
            ));
        }
        let mut map = s.serialize_map(Some(schema.fields.len()))?;
        for (field, value) in schema.fields.iter().zip(value.values()) {
            map.serialize_entry(&field.name, &self.with(Some(&field.schema), value))
                .map_err(within(format_args!("field {:?}", field.name)))?;
        }
        map.end()
    }

    /// Decimals as base64 or a number as `decimal.format` says; dates and times as integers.
    fn logical<S: Serializer>(&self, s: S, logical: Logical) -> Result<S::Ok, S::Error> {
        match (logical, self.value) {
            (Logical::Decimal { scale }, Value::Decimal(d)) if d.scale != scale => {
                Err(S::Error::custom(format_args!(
                    "BigDecimal has mismatching scale value for given Decimal schema: {} instead of {scale}",
                    d.scale
                )))
            }
            (Logical::Decimal { .. }, Value::Decimal(d)) => match self.format {
                DecimalFormat::Base64 => s.serialize_str(&BASE64.encode(d.to_bytes())),
                DecimalFormat::Numeric => Number::from_str(&java_decimal(d))
                    .map_err(S::Error::custom)?
                    .serialize(s),
            },
            (Logical::Date, Value::Date(days)) => s.serialize_i32(*days),
            (Logical::Time, Value::Time(millis)) => s.serialize_i32(*millis),
            (Logical::Timestamp, Value::Timestamp(millis)) => s.serialize_i64(*millis),
            _ => Err(invalid_type(logical_name(logical), self.value)),
        }
    }
}

/// A JSON array of the items, an item's error prefixed with `label` and its index.
fn elements<S: Serializer, T: Serialize>(
    s: S,
    label: &str,
    items: impl ExactSizeIterator<Item = T>,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(items.len()))?;
    for (i, item) in items.enumerate() {
        seq.serialize_element(&item)
            .map_err(within(format_args!("{label} {i}")))?;
    }
    seq.end()
}

/// A JSON object whose repeated keys keep their first position and their last value, as Jackson's
/// `ObjectNode.set`.
fn object<S: Serializer, T: Serialize>(s: S, members: Vec<(&str, T)>) -> Result<S::Ok, S::Error> {
    let order: Vec<&str> = members.iter().map(|(key, _)| *key).collect();
    let mut last: BTreeMap<&str, (usize, T)> = members
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| (key, (i, value)))
        .collect();
    let mut map = s.serialize_map(Some(last.len()))?;
    for key in order {
        if let Some((i, value)) = last.remove(key) {
            map.serialize_entry(key, &value)
                .map_err(within(format_args!("map entry {i}")))?;
        }
    }
    map.end()
}

/// A string-keyed map's key as Jackson's `asText` of it: a null key of an optional schema is "null".
fn string_key<'v, E: serde::ser::Error>(schema: &'v Schema, key: &'v Value) -> Result<&'v str, E> {
    match key {
        Value::String(key) => Ok(key),
        Value::Null => match default_of(schema) {
            Some(default) => string_key(schema, default),
            None if schema.optional => Ok("null"),
            None => Err(E::custom(REQUIRED)),
        },
        _ => Err(invalid_type(schema.kind.json_name(), key)),
    }
}

/// The string Jackson writes for a non-finite float.
fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A value of a schema, as Kafka's `convertToConnect`, but checking that the JSON has the schema's type.
pub(super) fn value_from_json(schema: &Arc<Schema>, json: &Json) -> Result<Value, String> {
    if json.is_null() {
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
                .map(|(i, item)| {
                    value_from_json(element, item).map_err(at(format_args!("element {i}")))
                })
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
                node_type(json)
            ));
        };
        members
            .iter()
            .map(|(key, value)| {
                let value =
                    value_from_json(values, value).map_err(at(format_args!("map key {key:?}")))?;
                Ok((Value::String(key.clone()), value))
            })
            .collect::<Result<_, String>>()?
    } else {
        let Json::Array(pairs) = json else {
            return Err(format!(
                "Maps with non-string fields should be encoded as JSON array of tuples, but found {}",
                node_type(json)
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
                        node_type(pair)
                    )),
                }
                .map_err(at(format_args!("map entry {i}")))
            })
            .collect::<Result<_, String>>()?
    };
    Ok(Value::Map(entries))
}

/// A struct from a JSON object: a missing field reads as null, members that are not fields are ignored.
fn struct_from_json(schema: &Arc<Schema>, json: &Json) -> Result<Value, String> {
    let Json::Object(members) = json else {
        return Err(format!(
            "Structs should be encoded as JSON objects, but found {}",
            node_type(json)
        ));
    };
    let mut result = Struct::new(schema.clone());
    for field in &schema.fields {
        let value = match members.get(&field.name) {
            Some(value) => value_from_json(&field.schema, value),
            None => null_value(&field.schema),
        }
        .map_err(at(format_args!("field {:?}", field.name)))?;
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
            Json::Number(number) => Ok(Value::Decimal(Decimal {
                unscaled: unscaled_at_scale(number.as_str(), scale).map_err(invalid)?,
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
                node_type(json)
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

/// JSON without a schema: integers as int64, other numbers as float64, objects as string-keyed maps
/// (in key order: serde_json's objects are sorted, and Kafka reads them into a `HashMap`).
pub(super) fn schemaless_from_json(json: &Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(v) => Value::Boolean(*v),
        Json::Number(number) => {
            let text = number.as_str();
            if is_integral(text) {
                Value::Int64(
                    text.parse()
                        .map_err(|_| format!("integer {text} does not fit in int64"))?,
                )
            } else {
                Value::Float64(
                    text.parse()
                        .map_err(|_| format!("{text} is not a valid double"))?,
                )
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    schemaless_from_json(item).map_err(at(format_args!("element {i}")))
                })
                .collect::<Result<_, _>>()?;
            Value::Array(items)
        }
        Json::Object(members) => {
            let entries = members
                .iter()
                .map(|(key, value)| {
                    let value =
                        schemaless_from_json(value).map_err(at(format_args!("map key {key:?}")))?;
                    Ok((Value::String(key.clone()), value))
                })
                .collect::<Result<_, String>>()?;
            Value::Map(entries)
        }
    })
}

/// An integer JSON number that fits the integer type `T` of the schema type `kind`.
fn integer<T: TryFrom<i64>>(kind: SchemaType, json: &Json) -> Result<T, String> {
    let Json::Number(number) = json else {
        return Err(mismatch(kind, json));
    };
    let text = number.as_str();
    text.parse::<i64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{text} is not a valid {} value", kind.json_name()))
}

/// A JSON number, or one of the strings Jackson writes for non-finite numbers, as `f32` or `f64`.
fn floating<T: FromStr>(kind: SchemaType, json: &Json) -> Result<T, String> {
    let text = match json {
        Json::Number(number) => number.as_str(),
        Json::String(text) if NON_FINITE.contains(&text.as_str()) => text,
        _ => return Err(mismatch(kind, json)),
    };
    text.parse()
        .map_err(|_| format!("{text} is not a valid {} value", kind.json_name()))
}

/// The unscaled value of a JSON number at `scale`, if that is exact and fits in 128 bits.
pub(crate) fn unscaled_at_scale(text: &str, scale: i32) -> Result<i128, String> {
    let out_of_range = || format!("{text} does not fit a decimal of scale {scale} in 128 bits");
    let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let exponent: i64 = exponent.parse().map_err(|_| out_of_range())?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let (sign, int) = int.split_at(usize::from(int.starts_with('-')));
    let digits = format!("{int}{frac}");
    // The number is `digits * 10^shift` in units of `10^-scale`: drop digits that must be zeros, or
    // multiply by a power of ten.
    let shift = i128::from(exponent) + i128::from(scale) - frac.len() as i128;
    let cut = usize::try_from(-shift.min(0)).unwrap_or(usize::MAX);
    let (kept, dropped) = digits.split_at(digits.len().saturating_sub(cut));
    if dropped.bytes().any(|b| b != b'0') {
        return Err(format!(
            "{text} has more decimal places than the scale {scale}"
        ));
    }
    let unscaled: i128 = format!("{sign}0{kept}")
        .parse()
        .map_err(|_| out_of_range())?;
    if unscaled == 0 || shift <= 0 {
        return Ok(unscaled);
    }
    u32::try_from(shift)
        .ok()
        .and_then(|shift| 10i128.checked_pow(shift))
        .and_then(|factor| unscaled.checked_mul(factor))
        .ok_or_else(out_of_range)
}

/// Whether a JSON number is written as an integer (Jackson's `isIntegralNumber`).
pub(super) fn is_integral(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// A schema's default, treating a null default as none, as Kafka does.
pub(super) fn default_of(schema: &Schema) -> Option<&Value> {
    schema.default.as_ref().filter(|value| !value.is_null())
}

pub(super) fn value_schema(schema: &Schema) -> Result<&Arc<Schema>, String> {
    schema
        .value_schema
        .as_ref()
        .ok_or_else(|| format!("{} schema has no value schema", schema.kind.json_name()))
}

pub(super) fn key_schema(schema: &Schema) -> Result<&Arc<Schema>, String> {
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

/// Jackson's name for the kind of a JSON node, for error messages.
fn node_type(json: &Json) -> &'static str {
    match json {
        Json::Null => "NULL",
        Json::Bool(_) => "BOOLEAN",
        Json::Number(_) => "NUMBER",
        Json::String(_) => "STRING",
        Json::Array(_) => "ARRAY",
        Json::Object(_) => "OBJECT",
    }
}

fn invalid_type<E: serde::ser::Error>(expected: &str, value: &Value) -> E {
    E::custom(format_args!(
        "Invalid type for {expected}: {}",
        value.type_name()
    ))
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
        node_type(json)
    )
}

/// Prefixes a reading error with where it happened: an envelope or schema member, a field, an element.
pub(super) fn at<'p>(place: impl Display + 'p) -> impl FnOnce(String) -> String + 'p {
    move |e| format!("{place}: {e}")
}

/// Prefixes a writing error with where it happened, as [`at`].
pub(super) fn within<'p, E: serde::ser::Error>(
    place: impl Display + 'p,
) -> impl FnOnce(E) -> E + 'p {
    move |e| E::custom(format_args!("{place}: {e}"))
}
