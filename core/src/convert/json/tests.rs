//! Unit tests and property tests of JsonConverter: Kafka's envelope and schema shape, conversions,
//! error messages, and round trips of arbitrary schemas and values.

use std::sync::Arc;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

use super::converter::ENVELOPE_REQUIRED;
use super::decimal_format::DecimalFormat;
use super::JsonConverter;
use crate::config::ConfigMap;
use crate::convert::{ConvertError, Converter};
use crate::data::logical::{self, Logical};
use crate::data::{Data, Decimal, Schema, SchemaBuilder, SchemaType, Struct, Value};

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
    assert_eq!(text, "-1e-10");
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
fn writes_numbers_and_strings() {
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
    let text = write(&plain, &array);
    // Floats have serde_json's shortest round-trip digits rather than Java's `Double.toString`.
    assert_eq!(
        text,
        format!(
            r#"[12.34,10000000000.0,-0.0,"NaN","-Infinity",-9223372036854775808,"aGkh","q\"b\\s/\n\u0001{}é"]"#,
            '\u{7f}'
        )
    );
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed[1].as_f64(), Some(1e10));
    assert_eq!(
        parsed[2].as_f64().map(f64::to_bits),
        Some((-0.0f64).to_bits())
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
    let bad_default = SchemaBuilder::array(
        SchemaBuilder::struct_()
            .field(
                "a",
                SchemaBuilder::new(SchemaType::Int32)
                    .default_value("x".into())
                    .build(),
            )
            .build(),
    )
    .build();
    let err = write_error(&json, &with_schema(bad_default, Value::Array(vec![])));
    assert!(
        err.contains(r#"items: field "a": default: Invalid type for int32: string"#),
        "{err}"
    );
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
        r#"{"c":{},"b":[true,null,1.5e3,"x"],"a":-0,"c":{}}"#,
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
    // Members come in key order (serde_json's objects are sorted; Kafka reads them into a HashMap).
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
    let min = format!("{}.0", i128::MIN);
    assert_eq!(decimal(&min, 0).unwrap(), value(i128::MIN, 0));
    assert_eq!(decimal("-1e2", 0).unwrap(), value(-100, 0));
    assert_eq!(decimal("12.50", 1).unwrap(), value(125, 1));
    assert_eq!(decimal("0E-7", 0).unwrap(), value(0, 0));
    assert_eq!(decimal("0e99", 3).unwrap(), value(0, 3));
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
        err.contains("serialization error: EOF while parsing a value at line 1 column 10"),
        "{err}"
    );
    assert!(read_error(&plain, "{} x").contains("trailing characters"));
    assert!(read_error(&plain, "[1,]").contains("trailing comma"));
    assert!(read_error(&plain, "01").contains("invalid number"));
    assert!(read_error(&plain, "[NaN]").contains("expected value"));
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
    // serde_json's limit; Jackson allows 1000.
    assert!(plain.to_connect("t", Some(nested(127).as_bytes())).is_ok());
    let err = read_error(&plain, &nested(128));
    assert!(err.contains("recursion limit exceeded"), "{err}");
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
            // String-keyed maps are read back in key order, as serde_json keeps objects.
            let sorted = keys.kind == SchemaType::String;
            vec((non_null_value(keys), value_of(values)), 0..4)
                .prop_map(move |entries| {
                    let mut entries = unique_keys(entries);
                    if sorted {
                        entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
                    }
                    Value::Map(entries)
                })
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
    fn reads_and_writes_plain_json_unchanged(value in serde_json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let plain = converter(&[("schemas.enable", "false")]);
        let data = plain.to_connect("t", Some(text.as_bytes())).unwrap();
        let written = plain.from_connect("t", &data).unwrap().unwrap_or_default();
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        let written: serde_json::Value = if written.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&written).unwrap()
        };
        prop_assert_eq!(written, expected);
    }
}
