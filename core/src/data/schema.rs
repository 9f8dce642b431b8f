//! Schemas: the type of a value, with the names and parameters that mark logical types.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Value;

/// The physical type of a schema, as in `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The lower-case name JsonConverter uses in its `"type"` field.
    pub fn json_name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// The inverse of [`SchemaType::json_name`].
    pub fn from_json_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

/// One field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Arc<Schema>,
}

/// A Connect schema. Build one with [`SchemaBuilder`] or the constructors for common types.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub kind: SchemaType,
    pub optional: bool,
    pub default: Option<Value>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    /// Fields of a struct schema, in order.
    pub fields: Vec<Field>,
    /// Key schema of a map schema.
    pub key_schema: Option<Arc<Schema>>,
    /// Value schema of a map schema, element schema of an array schema.
    pub value_schema: Option<Arc<Schema>>,
}

impl Schema {
    /// A required schema of a primitive type.
    pub fn primitive(kind: SchemaType) -> Schema {
        SchemaBuilder::new(kind).build()
    }

    /// An optional schema of a primitive type.
    pub fn optional(kind: SchemaType) -> Schema {
        SchemaBuilder::new(kind).optional().build()
    }

    /// The field of a struct schema with this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The logical type this schema carries, if its name is one of Connect's logical types.
    pub fn logical(&self) -> Option<logical::Logical> {
        logical::Logical::of(self)
    }
}

/// Builds a [`Schema`], as `SchemaBuilder` does in Connect.
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    schema: Schema,
}

impl SchemaBuilder {
    pub fn new(kind: SchemaType) -> SchemaBuilder {
        SchemaBuilder {
            schema: Schema {
                kind,
                optional: false,
                default: None,
                name: None,
                version: None,
                doc: None,
                parameters: BTreeMap::new(),
                fields: Vec::new(),
                key_schema: None,
                value_schema: None,
            },
        }
    }

    pub fn struct_() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Struct)
    }

    pub fn array(element: Schema) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Array);
        b.schema.value_schema = Some(Arc::new(element));
        b
    }

    pub fn map(key: Schema, value: Schema) -> SchemaBuilder {
        let mut b = SchemaBuilder::new(SchemaType::Map);
        b.schema.key_schema = Some(Arc::new(key));
        b.schema.value_schema = Some(Arc::new(value));
        b
    }

    pub fn optional(mut self) -> Self {
        self.schema.optional = true;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.schema.name = Some(name.into());
        self
    }

    pub fn version(mut self, version: i32) -> Self {
        self.schema.version = Some(version);
        self
    }

    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.schema.doc = Some(doc.into());
        self
    }

    pub fn default_value(mut self, value: Value) -> Self {
        self.schema.default = Some(value);
        self
    }

    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.schema.parameters.insert(key.into(), value.into());
        self
    }

    /// Appends a field to a struct schema.
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Self {
        let index = self.schema.fields.len();
        self.schema.fields.push(Field {
            name: name.into(),
            index,
            schema: Arc::new(schema),
        });
        self
    }

    /// Appends a field whose schema is shared with another struct's.
    pub fn field_shared(mut self, name: impl Into<String>, schema: Arc<Schema>) -> Self {
        let index = self.schema.fields.len();
        self.schema.fields.push(Field {
            name: name.into(),
            index,
            schema,
        });
        self
    }

    /// A struct builder with the name, version, doc, parameters and optionality of `source` (Kafka's
    /// `SchemaUtil.copySchemaBasics`, keeping optionality too).
    pub fn struct_like(source: &Schema) -> SchemaBuilder {
        let mut builder = SchemaBuilder::struct_();
        builder.schema.name = source.name.clone();
        builder.schema.version = source.version;
        builder.schema.doc = source.doc.clone();
        builder.schema.parameters = source.parameters.clone();
        builder.schema.optional = source.optional;
        builder
    }

    pub fn build(self) -> Schema {
        self.schema
    }
}

/// Connect's logical types: a named schema over a primitive type.
pub mod logical {
    use super::{Schema, SchemaBuilder, SchemaType};

    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    pub const DECIMAL_SCALE: &str = "scale";
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

    /// Which logical type a schema stands for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Logical {
        /// Arbitrary-precision decimal stored as big-endian two's-complement bytes.
        Decimal { scale: i32 },
        /// Days since the Unix epoch, stored as INT32.
        Date,
        /// Milliseconds since midnight, stored as INT32.
        Time,
        /// Milliseconds since the Unix epoch, stored as INT64.
        Timestamp,
    }

    impl Logical {
        pub(crate) fn of(schema: &Schema) -> Option<Logical> {
            match (schema.name.as_deref()?, schema.kind) {
                (DECIMAL, SchemaType::Bytes) => {
                    let scale = schema.parameters.get(DECIMAL_SCALE)?.parse().ok()?;
                    Some(Logical::Decimal { scale })
                }
                (DATE, SchemaType::Int32) => Some(Logical::Date),
                (TIME, SchemaType::Int32) => Some(Logical::Time),
                (TIMESTAMP, SchemaType::Int64) => Some(Logical::Timestamp),
                _ => None,
            }
        }
    }

    pub fn decimal(scale: i32) -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Bytes)
            .name(DECIMAL)
            .version(1)
            .parameter(DECIMAL_SCALE, scale.to_string())
    }

    pub fn date() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int32).name(DATE).version(1)
    }

    pub fn time() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int32).name(TIME).version(1)
    }

    pub fn timestamp() -> SchemaBuilder {
        SchemaBuilder::new(SchemaType::Int64)
            .name(TIMESTAMP)
            .version(1)
    }
}
