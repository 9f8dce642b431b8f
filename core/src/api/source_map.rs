//! `SourceMap`: the string-keyed JSON map Kafka Connect uses for source partitions and source offsets,
//! kept cheap for the common case of one entry with a number, built for every record a source emits.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A string-keyed JSON map, the shape of Kafka Connect's source partitions and source offsets.
///
/// Cheap to clone, so a task can stamp the same partition on every record of a batch: a map of one entry
/// with a static key and a scalar value (an offset such as `{"position": 1024}`) is held inline, without
/// allocating; any other map is shared.
#[derive(Clone, Default)]
pub struct SourceMap(Repr);

#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// One entry whose value is null, a boolean or a number.
    Scalar(Cow<'static, str>, Value),
    /// Anything else, keys sorted.
    Shared(Arc<Map<String, Value>>),
}

impl SourceMap {
    pub fn new(map: Map<String, Value>) -> SourceMap {
        if map.is_empty() {
            SourceMap(Repr::Empty)
        } else {
            SourceMap(Repr::Shared(Arc::new(map)))
        }
    }

    /// A map of one entry, e.g. `{"filename": "/tmp/in.txt"}` or `{"position": 1024}`.
    pub fn single(key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> SourceMap {
        let key = key.into();
        match value.into() {
            value @ (Value::Null | Value::Bool(_) | Value::Number(_)) => {
                SourceMap(Repr::Scalar(key, value))
            }
            value => SourceMap::new(Map::from_iter([(key.into_owned(), value)])),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.0 {
            Repr::Empty => None,
            Repr::Scalar(k, value) => (k == key).then_some(value),
            Repr::Shared(map) => map.get(key),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Empty => 0,
            Repr::Scalar(..) => 1,
            Repr::Shared(map) => map.len(),
        }
    }

    /// The entries, keys in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let (scalar, shared) = match &self.0 {
            Repr::Empty => (None, None),
            Repr::Scalar(key, value) => (Some((&**key, value)), None),
            Repr::Shared(map) => (None, Some(map.iter().map(|(k, v)| (k.as_str(), v)))),
        };
        scalar.into_iter().chain(shared.into_iter().flatten())
    }

    /// The entries as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }

    /// Whether both are the same map, cheaply: shared maps compare by allocation (a fast path before
    /// comparing contents), inline ones by contents.
    pub fn same(&self, other: &SourceMap) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared(a), Repr::Shared(b)) => Arc::ptr_eq(a, b),
            (Repr::Shared(_), _) | (_, Repr::Shared(_)) => false,
            _ => self == other,
        }
    }
}

impl PartialEq for SourceMap {
    fn eq(&self, other: &SourceMap) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for SourceMap {}

impl fmt::Debug for SourceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for SourceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

impl Serialize for SourceMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SourceMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SourceMap, D::Error> {
        Map::deserialize(deserializer).map(SourceMap::new)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inline_and_shared_maps_of_the_same_entries_are_equal() {
        let inline = SourceMap::single("position", 42);
        let Value::Object(map) = json!({"position": 42}) else {
            unreachable!()
        };
        let shared = SourceMap::new(map);
        assert_eq!(inline, shared);
        assert!(inline.same(&inline.clone()));
        assert!(
            !inline.same(&shared),
            "shared and inline maps never take the fast path"
        );
        assert_ne!(inline, SourceMap::single("position", 43));
        assert_ne!(inline, SourceMap::single("offset", 42));
    }

    #[test]
    fn serializes_as_a_json_object_with_sorted_keys() {
        let Value::Object(map) = json!({"b": 1, "a": "x"}) else {
            unreachable!()
        };
        let shared = SourceMap::new(map);
        assert_eq!(shared.to_string(), r#"{"a":"x","b":1}"#);
        assert_eq!(
            SourceMap::single("position", 7).to_string(),
            r#"{"position":7}"#
        );
        assert_eq!(SourceMap::default().to_string(), "{}");
        let back: SourceMap = serde_json::from_str(r#"{"position":7}"#).unwrap();
        assert_eq!(back, SourceMap::single("position", 7));
    }

    #[test]
    fn a_string_value_is_shared_and_readable() {
        let partition = SourceMap::single("filename", "/tmp/in.txt");
        assert_eq!(partition.get("filename"), Some(&json!("/tmp/in.txt")));
        assert_eq!(partition.get("position"), None);
        assert!(partition.same(&partition.clone()));
        assert_eq!(
            partition.to_map(),
            json!({"filename": "/tmp/in.txt"})
                .as_object()
                .cloned()
                .unwrap()
        );
        assert!(SourceMap::new(Map::new()).is_empty());
    }
}
