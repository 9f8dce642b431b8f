//! `SourceMap`: the string-keyed JSON map Kafka Connect uses for source partitions and source offsets,
//! kept cheap for the common cases built for every record a source emits: one entry with a number, or
//! one such entry beside entries every record of a batch shares (a file's identity beside a position).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A string-keyed JSON map, the shape of Kafka Connect's source partitions and source offsets.
///
/// Cheap to clone, so a task can stamp the same partition on every record of a batch: a map of one entry
/// with a static key and an integer, boolean or null value (an offset such as `{"position": 1024}`) is
/// held inline, without allocating, and so is such an entry added to a shared map (see
/// [`plus`](SourceMap::plus)); any other map is shared.
#[derive(Clone, Default)]
pub struct SourceMap(Repr);

#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// One entry with a scalar value.
    Scalar(Cow<'static, str>, Scalar),
    /// Anything else, keys sorted.
    Shared(Arc<Map<String, Value>>),
    /// A shared map plus one scalar entry whose key it does not have.
    Extended(Cow<'static, str>, Scalar, Arc<Map<String, Value>>),
}

/// A value that needs no allocation (JSON numbers are arbitrary-precision strings in this workspace).
#[derive(Clone, Copy, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
}

impl Scalar {
    fn to_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Unsigned(n) => Value::from(n),
            Scalar::Signed(n) => Value::from(n),
        }
    }
}

/// A value for [`SourceMap::single`]: integers, booleans and null are kept without allocating.
pub struct SourceValue(Entry);

enum Entry {
    Scalar(Scalar),
    Json(Value),
}

impl From<u64> for SourceValue {
    fn from(n: u64) -> Self {
        SourceValue(Entry::Scalar(Scalar::Unsigned(n)))
    }
}

impl From<u32> for SourceValue {
    fn from(n: u32) -> Self {
        SourceValue::from(u64::from(n))
    }
}

impl From<usize> for SourceValue {
    fn from(n: usize) -> Self {
        SourceValue::from(n as u64)
    }
}

impl From<i64> for SourceValue {
    fn from(n: i64) -> Self {
        // Non-negative integers are unsigned, as serde_json reads them back.
        match u64::try_from(n) {
            Ok(n) => SourceValue::from(n),
            Err(_) => SourceValue(Entry::Scalar(Scalar::Signed(n))),
        }
    }
}

impl From<i32> for SourceValue {
    fn from(n: i32) -> Self {
        SourceValue::from(i64::from(n))
    }
}

impl From<bool> for SourceValue {
    fn from(b: bool) -> Self {
        SourceValue(Entry::Scalar(Scalar::Bool(b)))
    }
}

impl From<String> for SourceValue {
    fn from(s: String) -> Self {
        SourceValue(Entry::Json(Value::String(s)))
    }
}

impl From<&str> for SourceValue {
    fn from(s: &str) -> Self {
        SourceValue::from(s.to_owned())
    }
}

impl From<Value> for SourceValue {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => SourceValue(Entry::Scalar(Scalar::Null)),
            Value::Bool(b) => SourceValue::from(b),
            Value::Number(ref n) => match (n.as_u64(), n.as_i64()) {
                (Some(n), _) => SourceValue::from(n),
                (None, Some(n)) => SourceValue::from(n),
                _ => SourceValue(Entry::Json(value)),
            },
            other => SourceValue(Entry::Json(other)),
        }
    }
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
    pub fn single(key: impl Into<Cow<'static, str>>, value: impl Into<SourceValue>) -> SourceMap {
        let key = key.into();
        match value.into().0 {
            Entry::Scalar(scalar) => SourceMap(Repr::Scalar(key, scalar)),
            Entry::Json(value) => SourceMap::new(Map::from_iter([(key.into_owned(), value)])),
        }
    }

    /// This map with `key` set to `value`. An integer, boolean or null value added to a shared map
    /// shares its allocation: a source stamps each record's offset with its position beside entries
    /// that stay the same for many records (`{"inode": .., "head": .., "position": 1024}`) without
    /// building a map per record.
    pub fn plus(
        &self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<SourceValue>,
    ) -> SourceMap {
        let key = key.into();
        let value = value.into().0;
        match (&self.0, value) {
            (Repr::Empty, value) => SourceMap::single(key, SourceValue(value)),
            (Repr::Shared(rest), Entry::Scalar(scalar)) if !rest.contains_key(&*key) => {
                SourceMap(Repr::Extended(key, scalar, rest.clone()))
            }
            (_, value) => {
                let mut map = self.to_map();
                let value = match value {
                    Entry::Scalar(scalar) => scalar.to_value(),
                    Entry::Json(value) => value,
                };
                map.insert(key.into_owned(), value);
                SourceMap::new(map)
            }
        }
    }

    /// The value of `key`; borrowed from a shared map, built for an inline one.
    pub fn get(&self, key: &str) -> Option<Cow<'_, Value>> {
        match &self.0 {
            Repr::Empty => None,
            Repr::Scalar(k, value) => (k == key).then(|| Cow::Owned(value.to_value())),
            Repr::Shared(map) => map.get(key).map(Cow::Borrowed),
            Repr::Extended(k, value, _) if k == key => Some(Cow::Owned(value.to_value())),
            Repr::Extended(_, _, rest) => rest.get(key).map(Cow::Borrowed),
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
            Repr::Extended(_, _, rest) => rest.len() + 1,
        }
    }

    /// The entries, keys in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cow<'_, Value>)> {
        let (scalar, shared) = match &self.0 {
            Repr::Empty => (None, None),
            Repr::Scalar(key, value) => (Some((&**key, *value)), None),
            Repr::Shared(map) => (None, Some(map)),
            Repr::Extended(key, value, rest) => (Some((&**key, *value)), Some(rest)),
        };
        let shared = shared.map(|map| map.iter()).into_iter().flatten();
        // The scalar entry goes where its key sorts among the shared ones (which never have its key).
        let key = scalar.map(|(key, _)| key);
        let before = shared
            .clone()
            .filter(move |(k, _)| key.is_none_or(|key| k.as_str() < key));
        let after = shared.filter(move |(k, _)| key.is_some_and(|key| k.as_str() > key));
        let scalar = scalar.map(|(key, value)| (key, Cow::Owned(value.to_value())));
        before
            .map(borrowed)
            .chain(scalar)
            .chain(after.map(borrowed))
    }

    /// The entries as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect()
    }

    /// Whether both are the same map, cheaply: shared maps compare by allocation (a fast path before
    /// comparing contents), inline ones by contents.
    pub fn same(&self, other: &SourceMap) -> bool {
        match (&self.0, &other.0) {
            (Repr::Shared(a), Repr::Shared(b)) => Arc::ptr_eq(a, b),
            (Repr::Extended(k1, v1, a), Repr::Extended(k2, v2, b)) => {
                k1 == k2 && v1 == v2 && Arc::ptr_eq(a, b)
            }
            (Repr::Shared(_) | Repr::Extended(..), _)
            | (_, Repr::Shared(_) | Repr::Extended(..)) => false,
            _ => self == other,
        }
    }
}

/// A shared map's entry as [`SourceMap::iter`] yields it.
fn borrowed<'a>((key, value): (&'a String, &'a Value)) -> (&'a str, Cow<'a, Value>) {
    (key.as_str(), Cow::Borrowed(value))
}

impl PartialEq for SourceMap {
    fn eq(&self, other: &SourceMap) -> bool {
        match (&self.0, &other.0) {
            (Repr::Scalar(k1, v1), Repr::Scalar(k2, v2)) => k1 == k2 && v1 == v2,
            _ => self.len() == other.len() && self.iter().eq(other.iter()),
        }
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
            map.serialize_entry(key, &*value)?;
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
        assert_eq!(inline.get("position").as_deref(), Some(&json!(42)));
        assert_eq!(
            SourceMap::single("p", -3),
            SourceMap::single("p", json!(-3))
        );
        assert_eq!(SourceMap::single("p", -3).to_string(), r#"{"p":-3}"#);
        assert_eq!(
            SourceMap::single("done", true).to_string(),
            r#"{"done":true}"#
        );
        assert_eq!(
            SourceMap::single("ratio", json!(1.5)).to_string(),
            r#"{"ratio":1.5}"#
        );
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
    fn an_entry_added_to_a_shared_map_reads_as_one_map() {
        let Value::Object(identity) = json!({"inode": "1:2", "head": "64:ab"}) else {
            unreachable!()
        };
        let identity = SourceMap::new(identity);
        let offset = identity.plus("position", 1024);
        assert_eq!(
            offset.to_string(),
            r#"{"head":"64:ab","inode":"1:2","position":1024}"#
        );
        assert_eq!(offset.len(), 3);
        assert_eq!(offset.get("position").as_deref(), Some(&json!(1024)));
        assert_eq!(offset.get("inode").as_deref(), Some(&json!("1:2")));
        assert_eq!(offset.get("size"), None);
        // Sorted between the shared keys, and equal to the same map built whole.
        let middle = identity.plus("i", 7);
        assert_eq!(
            middle.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["head", "i", "inode"]
        );
        let whole: SourceMap =
            serde_json::from_str(r#"{"head":"64:ab","inode":"1:2","position":1024}"#).unwrap();
        assert_eq!(offset, whole);
        assert!(offset.same(&identity.plus("position", 1024)));
        assert!(!offset.same(&identity.plus("position", 1025)));
        assert_ne!(offset, identity.plus("position", 1025));
        // A key the shared map has, or a value that is not a scalar, makes a map of its own.
        assert_eq!(
            identity.plus("inode", 3).to_string(),
            r#"{"head":"64:ab","inode":3}"#
        );
        assert_eq!(
            identity.plus("name", "x").to_string(),
            r#"{"head":"64:ab","inode":"1:2","name":"x"}"#
        );
        assert_eq!(
            SourceMap::default().plus("position", 5),
            SourceMap::single("position", 5)
        );
        assert_eq!(
            SourceMap::single("a", 1).plus("b", 2).to_string(),
            r#"{"a":1,"b":2}"#
        );
    }

    #[test]
    fn a_string_value_is_shared_and_readable() {
        let partition = SourceMap::single("filename", "/tmp/in.txt");
        assert_eq!(
            partition.get("filename").as_deref(),
            Some(&json!("/tmp/in.txt"))
        );
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
