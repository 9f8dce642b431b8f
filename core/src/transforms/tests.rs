//! The built-in transforms and predicates on schema'd and schemaless records, as Kafka documents them,
//! and a property: no transform panics on any record of the data model.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::api::{Header, PluginRegistry, SinkRecord, SourceMap, SourceRecord};
use crate::data::{logical, Data, Schema, SchemaBuilder, SchemaType, Struct, Value};

fn transform(class: &str, keys: &[(&str, &str)]) -> Box<dyn Transformation> {
    let config = keys
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let factory = PluginRegistry::new()
        .transform(class)
        .unwrap_or_else(|| panic!("{class} is registered"));
    factory(&config).unwrap_or_else(|e| panic!("{class}: {e}"))
}

fn config_error(class: &str, keys: &[(&str, &str)]) -> String {
    let config = keys
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match (PluginRegistry::new().transform(class).expect("registered"))(&config) {
        Ok(_) => panic!("{class} accepted {keys:?}"),
        Err(e) => e.to_string(),
    }
}

fn sink(key: Data, value: Data) -> SinkRecord {
    SinkRecord {
        topic: "orders".into(),
        partition: 3,
        kafka_offset: 42,
        key,
        value,
        headers: Vec::new(),
        timestamp: Some(1_700_000_000_123),
    }
}

fn source(value: Data) -> SourceRecord {
    SourceRecord::new(SourceMap::default(), SourceMap::default(), "orders", value)
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::String(k.to_string()), v.clone()))
            .collect(),
    )
}

fn order_schema() -> Arc<Schema> {
    Arc::new(
        SchemaBuilder::struct_()
            .name("order")
            .field("id", Schema::primitive(SchemaType::Int64))
            .field("name", Schema::optional(SchemaType::String))
            .field("price", Schema::primitive(SchemaType::Float64))
            .build(),
    )
}

fn order(id: i64, name: &str, price: f64) -> Data {
    let schema = order_schema();
    let value = Struct::from_values(
        schema.clone(),
        vec![
            Value::Int64(id),
            Value::String(name.into()),
            Value::Float64(price),
        ],
    )
    .expect("three values");
    Data::new(Some(schema), Value::Struct(value))
}

fn field<'a>(data: &'a Data, name: &str) -> &'a Value {
    match &data.value {
        Value::Struct(s) => s.get(name).unwrap_or_else(|| panic!("no field {name}")),
        Value::Map(entries) => {
            support::entry(entries, name).unwrap_or_else(|| panic!("no key {name}"))
        }
        other => panic!("not a struct or map: {other:?}"),
    }
}

fn field_names(data: &Data) -> Vec<String> {
    data.schema
        .as_ref()
        .expect("a schema")
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

#[test]
fn insert_field_adds_topic_partition_offset_timestamp_and_static_fields() {
    let insert = transform(
        "InsertField$Value",
        &[
            ("topic.field", "t"),
            ("partition.field", "p!"),
            ("offset.field", "o"),
            ("timestamp.field", "ts"),
            ("static.field", "origin"),
            ("static.value", "sluice"),
        ],
    );
    let mut record = sink(Data::NULL, order(1, "tea", 2.5));
    assert_eq!(insert.apply(&mut record), Ok(Outcome::Keep));
    assert_eq!(
        field_names(&record.value),
        ["id", "name", "price", "t", "p", "o", "ts", "origin"]
    );
    let schema = record.value.schema.clone().unwrap();
    assert!(
        !schema.field("p").unwrap().schema.optional,
        "p! is required"
    );
    assert!(schema.field("t").unwrap().schema.optional);
    assert_eq!(
        schema.field("ts").unwrap().schema.name.as_deref(),
        Some(logical::TIMESTAMP)
    );
    assert_eq!(field(&record.value, "p"), &Value::Int32(3));
    assert_eq!(field(&record.value, "o"), &Value::Int64(42));
    assert_eq!(
        field(&record.value, "ts"),
        &Value::Timestamp(1_700_000_000_123)
    );
    assert_eq!(
        field(&record.value, "origin"),
        &Value::String("sluice".into())
    );

    let mut schemaless = sink(
        Data::NULL,
        Data::schemaless(map(&[("id", Value::Int64(1))])),
    );
    insert.apply(&mut schemaless).unwrap();
    assert_eq!(
        field(&schemaless.value, "t"),
        &Value::String("orders".into())
    );
    assert_eq!(field(&schemaless.value, "id"), &Value::Int64(1));

    let mut tombstone = sink(Data::NULL, Data::NULL);
    insert.apply(&mut tombstone).unwrap();
    assert_eq!(tombstone.value, Data::NULL, "tombstones pass untouched");

    let offset_only = transform("InsertField$Value", &[("offset.field", "o")]);
    let mut from_source = source(Data::schemaless(map(&[])));
    let error = offset_only.apply(&mut from_source).unwrap_err();
    assert!(error.to_string().contains("SinkRecord"), "{error}");
}

#[test]
fn replace_field_includes_excludes_and_renames() {
    let replace = transform(
        "org.apache.kafka.connect.transforms.ReplaceField$Value",
        &[("exclude", "price"), ("renames", "name:title")],
    );
    let mut record = sink(Data::NULL, order(7, "tea", 2.5));
    replace.apply(&mut record).unwrap();
    assert_eq!(field_names(&record.value), ["id", "title"]);
    assert_eq!(field(&record.value, "title"), &Value::String("tea".into()));

    let include = transform("ReplaceField$Value", &[("include", "id")]);
    let mut schemaless = sink(
        Data::NULL,
        Data::schemaless(map(&[
            ("id", Value::Int64(1)),
            ("secret", Value::Boolean(true)),
        ])),
    );
    include.apply(&mut schemaless).unwrap();
    assert_eq!(schemaless.value.value, map(&[("id", Value::Int64(1))]));

    assert!(config_error("ReplaceField$Value", &[("renames", "a-b")]).contains("renames"));
}

#[test]
fn mask_field_empties_values_or_uses_the_replacement() {
    let mask = transform("MaskField$Value", &[("fields", "name,price")]);
    let mut record = sink(Data::NULL, order(7, "tea", 2.5));
    mask.apply(&mut record).unwrap();
    assert_eq!(field(&record.value, "name"), &Value::String(String::new()));
    assert_eq!(field(&record.value, "price"), &Value::Float64(0.0));
    assert_eq!(field(&record.value, "id"), &Value::Int64(7));

    let replace = transform(
        "MaskField$Value",
        &[("fields", "price"), ("replacement", "9.5")],
    );
    let mut schemaless = sink(
        Data::NULL,
        Data::schemaless(map(&[("price", Value::Float64(1.0))])),
    );
    replace.apply(&mut schemaless).unwrap();
    assert_eq!(field(&schemaless.value, "price"), &Value::Float64(9.5));

    let bad = transform(
        "MaskField$Value",
        &[("fields", "id"), ("replacement", "lots")],
    );
    let mut record = sink(Data::NULL, order(7, "tea", 2.5));
    assert!(bad
        .apply(&mut record)
        .unwrap_err()
        .to_string()
        .contains("lots"));
    assert!(config_error("MaskField$Value", &[]).contains("fields"));
}

#[test]
fn value_to_key_and_extract_field_make_a_key_of_a_field() {
    let to_key = transform("ValueToKey", &[("fields", "id")]);
    let extract = transform("ExtractField$Key", &[("field", "id")]);
    let mut record = sink(Data::NULL, order(7, "tea", 2.5));
    to_key.apply(&mut record).unwrap();
    assert_eq!(field_names(&record.key), ["id"]);
    extract.apply(&mut record).unwrap();
    assert_eq!(record.key.value, Value::Int64(7));
    assert_eq!(record.key.schema.as_ref().unwrap().kind, SchemaType::Int64);

    let mut schemaless = sink(
        Data::NULL,
        Data::schemaless(map(&[("id", Value::Int64(3))])),
    );
    to_key.apply(&mut schemaless).unwrap();
    assert_eq!(schemaless.key.value, map(&[("id", Value::Int64(3))]));
    extract.apply(&mut schemaless).unwrap();
    assert_eq!(schemaless.key.value, Value::Int64(3));

    let missing = transform("ValueToKey", &[("fields", "nope")]);
    let mut record = sink(Data::NULL, order(7, "tea", 2.5));
    assert!(missing
        .apply(&mut record)
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn hoist_field_wraps_the_value() {
    let hoist = transform("HoistField$Value", &[("field", "line")]);
    let mut record = sink(Data::NULL, Data::string("hello"));
    hoist.apply(&mut record).unwrap();
    assert_eq!(field_names(&record.value), ["line"]);
    assert_eq!(field(&record.value, "line"), &Value::String("hello".into()));

    let mut schemaless = sink(Data::NULL, Data::schemaless(Value::Int32(5)));
    hoist.apply(&mut schemaless).unwrap();
    assert_eq!(schemaless.value.value, map(&[("line", Value::Int32(5))]));
}

#[test]
fn cast_converts_fields_and_whole_values() {
    let cast = transform("Cast$Value", &[("spec", "id:string,price:int32")]);
    let mut record = sink(Data::NULL, order(7, "tea", 2.9));
    cast.apply(&mut record).unwrap();
    assert_eq!(field(&record.value, "id"), &Value::String("7".into()));
    assert_eq!(
        field(&record.value, "price"),
        &Value::Int32(2),
        "doubles truncate as Java's casts do"
    );
    let schema = record.value.schema.clone().unwrap();
    assert_eq!(schema.field("id").unwrap().schema.kind, SchemaType::String);

    let whole = transform("Cast$Value", &[("spec", "int8")]);
    let mut schemaless = sink(Data::NULL, Data::schemaless(Value::String(" 12 ".into())));
    whole.apply(&mut schemaless).unwrap();
    assert_eq!(schemaless.value.value, Value::Int8(12));
    let mut wraps = sink(Data::NULL, Data::schemaless(Value::Int64(300)));
    whole.apply(&mut wraps).unwrap();
    assert_eq!(
        wraps.value.value,
        Value::Int8(44),
        "(byte) 300 is 44 in Java"
    );

    let to_bool = transform("Cast$Value", &[("spec", "boolean")]);
    let mut text = sink(Data::NULL, Data::schemaless(Value::String("TRUE".into())));
    to_bool.apply(&mut text).unwrap();
    assert_eq!(text.value.value, Value::Boolean(true));

    let decimal = |unscaled, scale| Value::Decimal(crate::data::Decimal { unscaled, scale });
    let to_string = transform("Cast$Value", &[("spec", "string")]);
    let mut price = sink(Data::NULL, Data::schemaless(decimal(12345, 2)));
    to_string.apply(&mut price).unwrap();
    assert_eq!(
        price.value.value,
        Value::String("123.45".into()),
        "BigDecimal.toString"
    );
    let mut tiny = sink(Data::NULL, Data::schemaless(decimal(1, 10)));
    to_string.apply(&mut tiny).unwrap();
    assert_eq!(
        tiny.value.value,
        Value::String("1E-10".into()),
        "BigDecimal.toString"
    );

    assert!(config_error("Cast$Value", &[("spec", "id:decimal")]).contains("decimal"));
    let mut bad = sink(Data::NULL, Data::schemaless(Value::String("x".into())));
    assert!(whole.apply(&mut bad).is_err());
}

#[test]
fn routers_rename_the_topic() {
    let by_day = transform("TimestampRouter", &[]);
    let mut record = sink(Data::NULL, Data::NULL);
    by_day.apply(&mut record).unwrap();
    assert_eq!(&*record.topic, "orders-20231114");

    let custom = transform(
        "TimestampRouter",
        &[
            ("topic.format", "${timestamp}.${topic}"),
            ("timestamp.format", "yyyy-MM"),
        ],
    );
    let mut record = sink(Data::NULL, Data::NULL);
    custom.apply(&mut record).unwrap();
    assert_eq!(&*record.topic, "2023-11.orders");
    let mut no_time = source(Data::NULL);
    assert!(by_day.apply(&mut no_time).is_err());

    let regex = transform(
        "RegexRouter",
        &[("regex", "(.*)ers"), ("replacement", "$1-copy")],
    );
    let mut record = sink(Data::NULL, Data::NULL);
    regex.apply(&mut record).unwrap();
    assert_eq!(&*record.topic, "ord-copy");
    let partial = transform("RegexRouter", &[("regex", "ord"), ("replacement", "x")]);
    let mut record = sink(Data::NULL, Data::NULL);
    partial.apply(&mut record).unwrap();
    assert_eq!(&*record.topic, "orders", "the whole topic must match");
    assert!(config_error("RegexRouter", &[("regex", "("), ("replacement", "x")]).contains("regex"));
}

#[test]
fn timestamp_converter_converts_between_strings_unix_and_logical_types() {
    let to_string = transform(
        "TimestampConverter$Value",
        &[
            ("target.type", "string"),
            ("format", "yyyy-MM-dd HH:mm:ss.SSS"),
            ("field", "at"),
        ],
    );
    let schema = Arc::new(
        SchemaBuilder::struct_()
            .field("at", logical::timestamp().build())
            .build(),
    );
    let value =
        Struct::from_values(schema.clone(), vec![Value::Timestamp(1_700_000_000_123)]).unwrap();
    let mut record = sink(Data::NULL, Data::new(Some(schema), Value::Struct(value)));
    to_string.apply(&mut record).unwrap();
    assert_eq!(
        field(&record.value, "at"),
        &Value::String("2023-11-14 22:13:20.123".into())
    );

    let to_unix = transform(
        "TimestampConverter$Value",
        &[
            ("target.type", "unix"),
            ("format", "yyyy-MM-dd"),
            ("unix.precision", "seconds"),
        ],
    );
    let mut text = sink(Data::NULL, Data::string("2023-11-14"));
    to_unix.apply(&mut text).unwrap();
    assert_eq!(text.value.value, Value::Int64(1_699_920_000));
    assert_eq!(text.value.schema.unwrap().kind, SchemaType::Int64);

    let to_date = transform("TimestampConverter$Value", &[("target.type", "Date")]);
    let mut millis = sink(
        Data::NULL,
        Data::schemaless(Value::Int64(1_700_000_000_123)),
    );
    to_date.apply(&mut millis).unwrap();
    assert_eq!(millis.value.value, Value::Date(19675));

    assert!(
        config_error("TimestampConverter$Value", &[("target.type", "string")]).contains("format")
    );
    assert!(
        config_error("TimestampConverter$Value", &[("target.type", "Instant")])
            .contains("target.type")
    );
}

#[test]
fn flatten_lifts_nested_fields() {
    let inner = SchemaBuilder::struct_()
        .optional()
        .field("city", Schema::primitive(SchemaType::String))
        .build();
    let schema = Arc::new(
        SchemaBuilder::struct_()
            .field("id", Schema::primitive(SchemaType::Int64))
            .field("address", inner.clone())
            .build(),
    );
    let address = Struct::from_values(Arc::new(inner), vec![Value::String("Oslo".into())]).unwrap();
    let value = Struct::from_values(
        schema.clone(),
        vec![Value::Int64(1), Value::Struct(address)],
    )
    .unwrap();
    let flatten = transform("Flatten$Value", &[("delimiter", "_")]);
    let mut record = sink(
        Data::NULL,
        Data::new(Some(schema.clone()), Value::Struct(value)),
    );
    flatten.apply(&mut record).unwrap();
    assert_eq!(field_names(&record.value), ["id", "address_city"]);
    assert_eq!(
        field(&record.value, "address_city"),
        &Value::String("Oslo".into())
    );
    let flat = record.value.schema.clone().unwrap();
    assert!(
        flat.field("address_city").unwrap().schema.optional,
        "under an optional struct"
    );

    let null_address =
        Struct::from_values(schema.clone(), vec![Value::Int64(2), Value::Null]).unwrap();
    let mut record = sink(
        Data::NULL,
        Data::new(Some(schema), Value::Struct(null_address)),
    );
    flatten.apply(&mut record).unwrap();
    assert_eq!(field(&record.value, "address_city"), &Value::Null);

    let nested = map(&[
        ("a", map(&[("b", Value::Int8(1))])),
        ("c", Value::Array(vec![])),
    ]);
    let mut schemaless = sink(Data::NULL, Data::schemaless(nested));
    transform("Flatten$Value", &[])
        .apply(&mut schemaless)
        .unwrap();
    assert_eq!(
        schemaless.value.value,
        map(&[("a.b", Value::Int8(1)), ("c", Value::Array(vec![]))])
    );
}

#[test]
fn header_transforms_add_move_and_drop_headers() {
    let from = transform(
        "HeaderFrom$Value",
        &[
            ("fields", "name"),
            ("headers", "product"),
            ("operation", "move"),
        ],
    );
    let mut record = sink(Data::NULL, order(1, "tea", 2.5));
    from.apply(&mut record).unwrap();
    assert_eq!(field_names(&record.value), ["id", "price"]);
    assert_eq!(record.headers[0].key, "product");
    assert_eq!(record.headers[0].value.value, Value::String("tea".into()));
    assert!(record.headers[0].value.schema.as_ref().unwrap().optional);

    let insert = transform(
        "InsertHeader",
        &[("header", "version"), ("value.literal", "3")],
    );
    insert.apply(&mut record).unwrap();
    assert_eq!(record.headers[1].value.value, Value::Int8(3));

    let drop = transform("DropHeaders", &[("headers", "product")]);
    drop.apply(&mut record).unwrap();
    assert_eq!(
        record
            .headers
            .iter()
            .map(|h| h.key.as_str())
            .collect::<Vec<_>>(),
        ["version"]
    );

    assert!(config_error(
        "HeaderFrom$Value",
        &[("fields", "a,b"), ("headers", "x"), ("operation", "copy")]
    )
    .contains("headers"));
}

#[test]
fn set_schema_metadata_renames_the_schema_and_needs_one() {
    let set = transform(
        "SetSchemaMetadata$Value",
        &[("schema.name", "shop.Order"), ("schema.version", "2")],
    );
    let mut record = sink(Data::NULL, order(1, "tea", 2.5));
    set.apply(&mut record).unwrap();
    let schema = record.value.schema.clone().unwrap();
    assert_eq!(
        (schema.name.as_deref(), schema.version),
        (Some("shop.Order"), Some(2))
    );
    match &record.value.value {
        Value::Struct(s) => assert!(Arc::ptr_eq(s.schema(), &schema)),
        other => panic!("{other:?}"),
    }
    let mut schemaless = sink(Data::NULL, Data::schemaless(Value::Int8(1)));
    assert!(set.apply(&mut schemaless).is_err());
}

fn chain(keys: &[(&str, &str)]) -> Result<TransformChain, crate::config::ConfigError> {
    let config = keys
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TransformChain::from_config(&config, &PluginRegistry::new())
}

#[test]
fn a_chain_applies_transforms_in_order_under_their_predicates() {
    let chain = chain(&[
        ("transforms", "dropTombstones,route"),
        (
            "transforms.dropTombstones.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.dropTombstones.predicate", "isTombstone"),
        ("transforms.route.type", "RegexRouter"),
        ("transforms.route.regex", "orders"),
        ("transforms.route.replacement", "sales"),
        ("transforms.route.predicate", "fromTest"),
        ("transforms.route.negate", "true"),
        ("predicates", "isTombstone,fromTest"),
        (
            "predicates.isTombstone.type",
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        ),
        ("predicates.fromTest.type", "HasHeaderKey"),
        ("predicates.fromTest.name", "test"),
    ])
    .expect("a valid chain");
    let mut tombstone = sink(Data::NULL, Data::NULL);
    assert_eq!(chain.apply(&mut tombstone).unwrap(), Outcome::Drop);

    let mut record = sink(Data::NULL, Data::string("x"));
    assert_eq!(chain.apply(&mut record).unwrap(), Outcome::Keep);
    assert_eq!(&*record.topic, "sales");

    let mut test = sink(Data::NULL, Data::string("x"));
    test.headers.push(Header {
        key: "test".into(),
        value: Data::NULL,
    });
    chain.apply(&mut test).unwrap();
    assert_eq!(
        &*test.topic, "orders",
        "negated: not routed when the header is there"
    );

    let by_topic = self::chain(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "p"),
        ("predicates", "p"),
        ("predicates.p.type", "TopicNameMatches"),
        ("predicates.p.pattern", "ord.*"),
    ])
    .unwrap();
    assert_eq!(
        by_topic.apply(&mut sink(Data::NULL, Data::NULL)).unwrap(),
        Outcome::Drop
    );
}

#[test]
fn a_failing_transform_is_named_by_its_alias() {
    let chain = chain(&[
        ("transforms", "key"),
        ("transforms.key.type", "ExtractField$Value"),
        ("transforms.key.field", "id"),
    ])
    .unwrap();
    let mut record = sink(Data::NULL, Data::schemaless(Value::Int8(1)));
    let error = chain.apply(&mut record).unwrap_err().to_string();
    assert!(
        error.contains("transform key (ExtractField$Value)"),
        "{error}"
    );
}

#[test]
fn chain_config_errors_name_their_keys_and_the_known_classes() {
    let issues = |keys: &[(&str, &str)]| match chain(keys) {
        Ok(_) => panic!("accepted {keys:?}"),
        Err(e) => e.issues,
    };
    let unknown = issues(&[("transforms", "a"), ("transforms.a.type", "Uppercase")]);
    assert_eq!(unknown[0].key, "transforms.a.type");
    assert!(
        unknown[0].message.contains("Uppercase")
            && unknown[0].message.contains("InsertField$Value")
    );

    let missing = issues(&[("transforms", "a")]);
    assert_eq!(missing[0].key, "transforms.a.type");

    let own = issues(&[("transforms", "a"), ("transforms.a.type", "Cast$Value")]);
    assert_eq!(own[0].key, "transforms.a.spec");

    let undeclared = issues(&[
        ("transforms", "a"),
        ("transforms.a.type", "Filter"),
        ("transforms.a.predicate", "p"),
    ]);
    assert_eq!(undeclared[0].key, "transforms.a.predicate");

    let bad_predicate = issues(&[
        ("predicates", "p"),
        ("predicates.p.type", "TopicNameMatches"),
    ]);
    assert_eq!(bad_predicate[0].key, "predicates.p.pattern");
    let unknown_predicate = issues(&[("predicates", "p"), ("predicates.p.type", "IsFriday")]);
    assert!(unknown_predicate[0].message.contains("RecordIsTombstone"));
}

#[test]
fn connector_authors_register_their_own_transforms() {
    struct Upper;
    impl Transformation for Upper {
        fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError> {
            let upper = record.topic().to_uppercase();
            record.set_topic(upper.into());
            Ok(Outcome::Keep)
        }
    }
    let mut plugins = PluginRegistry::new();
    plugins.register_transform(
        "com.example.Upper",
        Arc::new(|_: &crate::config::ConfigMap| Ok(Box::new(Upper) as Box<dyn Transformation>)),
    );
    let config = [("transforms", "u"), ("transforms.u.type", "Upper")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let chain = TransformChain::from_config(&config, &plugins).unwrap();
    let mut record = sink(Data::NULL, Data::NULL);
    chain.apply(&mut record).unwrap();
    assert_eq!(&*record.topic, "ORDERS");
}

/// Every built-in transform, with a config that exercises it on fields `a` and `b`.
fn every_transform() -> Vec<Box<dyn Transformation>> {
    let configs: &[(&str, &[(&str, &str)])] = &[
        (
            "InsertField",
            &[
                ("topic.field", "t"),
                ("partition.field", "p"),
                ("offset.field", "o"),
                ("timestamp.field", "ts"),
                ("static.field", "s"),
                ("static.value", "v"),
            ],
        ),
        ("ReplaceField", &[("exclude", "a"), ("renames", "b:c")]),
        ("MaskField", &[("fields", "a,b")]),
        ("ExtractField", &[("field", "a")]),
        ("HoistField", &[("field", "a")]),
        ("Cast", &[("spec", "a:string,b:int8")]),
        (
            "TimestampConverter",
            &[
                ("target.type", "string"),
                ("format", "yyyy-MM-dd"),
                ("field", "a"),
            ],
        ),
        ("Flatten", &[]),
        (
            "HeaderFrom",
            &[("fields", "a"), ("headers", "h"), ("operation", "move")],
        ),
        ("SetSchemaMetadata", &[("schema.name", "n")]),
    ];
    let mut all = Vec::new();
    for (name, keys) in configs {
        for part in ["$Key", "$Value"] {
            all.push(transform(&format!("{name}{part}"), keys));
        }
    }
    all.push(transform("Cast$Value", &[("spec", "int16")]));
    all.push(transform(
        "TimestampConverter$Value",
        &[("target.type", "Date")],
    ));
    all.push(transform("ValueToKey", &[("fields", "a,b")]));
    all.push(transform("TimestampRouter", &[]));
    all.push(transform(
        "RegexRouter",
        &[("regex", "(o)(.*)"), ("replacement", "$2$1")],
    ));
    all.push(transform(
        "InsertHeader",
        &[("header", "h"), ("value.literal", "1")],
    ));
    all.push(transform("DropHeaders", &[("headers", "h")]));
    all.push(transform("Filter", &[]));
    all
}

fn primitive() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i8>().prop_map(Value::Int8),
        any::<i16>().prop_map(Value::Int16),
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        any::<f32>().prop_map(Value::Float32),
        any::<f64>().prop_map(Value::Float64),
        "[a-z0-9 .:-]{0,12}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Value::Bytes),
        (any::<i64>(), -3i32..6).prop_map(|(u, scale)| Value::Decimal(crate::data::Decimal {
            unscaled: i128::from(u),
            scale
        })),
        any::<i32>().prop_map(Value::Date),
        any::<i32>().prop_map(Value::Time),
        any::<i64>().prop_map(Value::Timestamp),
    ]
}

/// A value and a schema that may or may not fit it: transforms must refuse what does not, never panic.
fn data() -> impl Strategy<Value = Data> {
    let field_schema = prop_oneof![
        Just(Schema::optional(SchemaType::String)),
        Just(Schema::primitive(SchemaType::Int64)),
        Just(logical::timestamp().optional().build()),
        Just(
            SchemaBuilder::struct_()
                .optional()
                .field("x", Schema::optional(SchemaType::Int32))
                .build()
        ),
    ];
    let schemaless = prop_oneof![
        primitive(),
        proptest::collection::vec(("[ab]|ts|x", primitive()), 0..4).prop_map(|entries| {
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Value::String(k), v))
                    .collect(),
            )
        }),
    ]
    .prop_map(|value| Data::new(None, value));
    let with_schema = (field_schema.clone(), field_schema, primitive(), primitive()).prop_map(
        |(a, b, va, vb)| {
            let schema = Arc::new(
                SchemaBuilder::struct_()
                    .optional()
                    .field("a", a)
                    .field("b", b)
                    .build(),
            );
            let value = Struct::from_values(schema.clone(), vec![va, vb]).expect("two values");
            Data::new(Some(schema), Value::Struct(value))
        },
    );
    let mismatched = (
        primitive(),
        prop_oneof![
            Just(SchemaType::Int32),
            Just(SchemaType::String),
            Just(SchemaType::Struct)
        ],
    )
        .prop_map(|(value, kind)| Data::new(Some(Arc::new(Schema::optional(kind))), value));
    prop_oneof![schemaless, with_schema, mismatched]
}

proptest! {
    #[test]
    fn no_transform_panics_on_any_record(key in data(), value in data(), timestamp in proptest::option::of(any::<i64>()), sink_side in any::<bool>()) {
        for transform in every_transform() {
            let outcome = if sink_side {
                let mut record = sink(key.clone(), value.clone());
                record.timestamp = timestamp;
                transform.apply(&mut record).map(|_| ())
            } else {
                let mut record = source(value.clone());
                record.key = key.clone();
                record.timestamp = timestamp;
                transform.apply(&mut record).map(|_| ())
            };
            // Refusing a record is fine; what is checked is that nothing panics.
            drop(outcome);
        }
    }
}
