//! Values: what a key or a value of a record holds, with or without a schema.

use std::sync::Arc;

use super::Schema;

/// A decimal number: `unscaled * 10^-scale`, as Connect's `Decimal` logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: i32,
}

impl Decimal {
    /// The unscaled value as minimal big-endian two's-complement bytes, as `Decimal.fromLogical` writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let bytes = self.unscaled.to_be_bytes();
        let negative = self.unscaled < 0;
        let filler = if negative { 0xff } else { 0x00 };
        let mut start = 0;
        while start < bytes.len() - 1
            && bytes[start] == filler
            && ((bytes[start + 1] & 0x80 != 0) == negative)
        {
            start += 1;
        }
        bytes[start..].to_vec()
    }

    /// Reads big-endian two's-complement bytes; `None` if they do not fit in 128 bits.
    pub fn from_bytes(bytes: &[u8], scale: i32) -> Option<Decimal> {
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let filler = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
        let mut full = [filler; 16];
        full[16 - bytes.len()..].copy_from_slice(bytes);
        Some(Decimal {
            unscaled: i128::from_be_bytes(full),
            scale,
        })
    }
}

/// A struct value: one value per field of its schema, in the schema's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    schema: Arc<Schema>,
    values: Vec<Value>,
}

impl Struct {
    /// A struct of this schema with every field null.
    pub fn new(schema: Arc<Schema>) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    /// A struct of this schema with these values, in field order; `None` if their number is not the
    /// schema's.
    pub fn from_values(schema: Arc<Schema>, values: Vec<Value>) -> Option<Struct> {
        (values.len() == schema.fields.len()).then_some(Struct { schema, values })
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Sets a field by name; `None` if the schema has no such field.
    pub fn put(&mut self, field: &str, value: Value) -> Option<&mut Self> {
        let index = self.schema.field(field)?.index;
        self.values[index] = value;
        Some(self)
    }

    /// A field's value by name.
    pub fn get(&self, field: &str) -> Option<&Value> {
        let index = self.schema.field(field)?.index;
        self.values.get(index)
    }

    /// The values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, in field order, taken out of the struct.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

/// A Connect value. Logical types have their own variants so that connectors need not decode them.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Map entries in order; keys need not be strings.
    Map(Vec<(Value, Value)>),
    Struct(Struct),
    Decimal(Decimal),
    /// Days since the Unix epoch.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i32),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int8(_) => "int8",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float32(_) => "float32",
            Value::Float64(_) => "float64",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
            Value::Decimal(_) => "decimal",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
        }
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(b)
    }
}

/// A key or value of a record: a value and, optionally, its schema (`SchemaAndValue` in Connect).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    pub schema: Option<Arc<Schema>>,
    pub value: Value,
}

impl Data {
    /// A null without a schema.
    pub const NULL: Data = Data {
        schema: None,
        value: Value::Null,
    };

    pub fn new(schema: Option<Arc<Schema>>, value: Value) -> Data {
        Data { schema, value }
    }

    /// A value without a schema.
    pub fn schemaless(value: impl Into<Value>) -> Data {
        Data {
            schema: None,
            value: value.into(),
        }
    }

    /// A string with the required string schema, as `StringConverter` and FileStreamSource produce.
    pub fn string(s: impl Into<String>) -> Data {
        Data {
            schema: Some(string_schema()),
            value: Value::String(s.into()),
        }
    }
}

fn string_schema() -> Arc<Schema> {
    use std::sync::OnceLock;
    static STRING: OnceLock<Arc<Schema>> = OnceLock::new();
    STRING
        .get_or_init(|| Arc::new(Schema::primitive(super::SchemaType::String)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_are_minimal_twos_complement() {
        let cases: [(i128, &[u8]); 6] = [
            (0, &[0]),
            (1, &[1]),
            (-1, &[0xff]),
            (127, &[0x7f]),
            (128, &[0x00, 0x80]),
            (-129, &[0xff, 0x7f]),
        ];
        for (unscaled, bytes) in cases {
            let d = Decimal { unscaled, scale: 2 };
            assert_eq!(d.to_bytes(), bytes, "{unscaled}");
            assert_eq!(Decimal::from_bytes(bytes, 2), Some(d));
        }
    }
}
