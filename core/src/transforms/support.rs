//! What the built-in transforms share: which part of a record a `$Key`/`$Value` transform works on,
//! the checks that a key or value is a struct or a map, schemaless maps by string key, and a cache of
//! the schemas a transform derives from the schemas it meets.

use std::sync::{Arc, Mutex};

use super::{ConnectRecord, TransformError};
use crate::data::{Data, Schema, Struct, Value};

/// The part of a record a `$Key` or `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    pub fn get(self, record: &dyn ConnectRecord) -> &Data {
        match self {
            Part::Key => record.key(),
            Part::Value => record.value(),
        }
    }

    pub fn get_mut(self, record: &mut dyn ConnectRecord) -> &mut Data {
        match self {
            Part::Key => record.key_mut(),
            Part::Value => record.value_mut(),
        }
    }
}

/// A schemaless struct-like value: a map with string keys, as Kafka's `Map<String, Object>`.
pub type Entries = Vec<(Value, Value)>;

/// The value as a schemaless map, or Kafka's `requireMap` error.
pub fn require_map(value: Value, purpose: &'static str) -> Result<Entries, TransformError> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(TransformError::WrongType {
            expected: "Map objects in absence of schema",
            purpose,
            found: other.type_name(),
        }),
    }
}

/// The value as a struct, or Kafka's `requireStruct` error.
pub fn require_struct(value: Value, purpose: &'static str) -> Result<Struct, TransformError> {
    match value {
        Value::Struct(s) => Ok(s),
        other => Err(TransformError::WrongType {
            expected: "Struct objects",
            purpose,
            found: other.type_name(),
        }),
    }
}

/// The value of a string key of a schemaless map.
pub fn entry<'a>(entries: &'a Entries, key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Sets a string key of a schemaless map, in place if present (Kafka's `Map.put`).
pub fn put_entry(entries: &mut Entries, key: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some((_, v)) => *v = value,
        None => entries.push((Value::String(key.to_owned()), value)),
    }
}

/// The field of a struct schema, or an error naming the fields it has.
pub fn field_index(schema: &Schema, field: &str) -> Result<usize, TransformError> {
    schema
        .field(field)
        .map(|f| f.index)
        .ok_or_else(|| unknown_field(schema, field))
}

pub fn unknown_field(schema: &Schema, field: &str) -> TransformError {
    TransformError::UnknownField {
        field: field.to_owned(),
        known: schema
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Builds a struct from values in its schema's field order.
pub fn make_struct(schema: &Arc<Schema>, values: Vec<Value>) -> Result<Value, TransformError> {
    Struct::from_values(schema.clone(), values)
        .map(Value::Struct)
        .ok_or_else(|| TransformError::Data("a struct's values do not match its schema".into()))
}

/// How many derived schemas a transform remembers.
const CACHED_SCHEMAS: usize = 16;

/// The schemas a transform derived, by the schema it derived each from (Kafka's `SynchronizedCache`
/// of updated schemas): records of one topic share one schema, so each is derived once.
#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<Vec<(Arc<Schema>, Arc<Schema>)>>,
}

impl SchemaCache {
    pub fn derive(
        &self,
        from: &Arc<Schema>,
        make: impl FnOnce(&Schema) -> Result<Schema, TransformError>,
    ) -> Result<Arc<Schema>, TransformError> {
        {
            let entries = self.lock();
            if let Some((_, derived)) = entries
                .iter()
                .find(|(source, _)| Arc::ptr_eq(source, from) || **source == **from)
            {
                return Ok(derived.clone());
            }
        }
        let derived = Arc::new(make(from)?);
        let mut entries = self.lock();
        if entries.len() >= CACHED_SCHEMAS {
            entries.remove(0);
        }
        entries.push((from.clone(), derived.clone()));
        Ok(derived)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<Schema>, Arc<Schema>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
