//! Single message transforms and predicates (Kafka Connect's `transforms=` and `predicates=` keys):
//! each record a source task polls passes through its connector's chain before it is converted, and
//! each record a sink task consumes after it is converted, before `put`.
//!
//! A transform changes a record in place or drops it; a predicate decides whether a transform applies.
//! The built-in transforms are Kafka's, under Kafka's class names and short names
//! (`org.apache.kafka.connect.transforms.InsertField$Value`, `InsertField$Value`); a connector author
//! adds others by registering them in the [`crate::api::PluginRegistry`], as connectors are.

mod cast;
mod chain;
mod date_format;
mod drop_headers;
mod extract_field;
mod filter;
mod flatten;
mod header_from;
mod hoist_field;
mod insert_field;
mod insert_header;
mod mask_field;
mod predicates;
mod record;
mod regex_router;
mod replace_field;
mod set_schema_metadata;
mod support;
mod timestamp_converter;
mod timestamp_router;
mod value_to_key;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::config::{ConfigError, ConfigMap};

pub use chain::{TransformChain, TransformFailed, NEGATE, PREDICATE, PREDICATES, TRANSFORMS, TYPE};
pub use record::ConnectRecord;

/// What a transform decided about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The record goes on, as the transform left it.
    Keep,
    /// The record is dropped: a sink never sees it, and a source record's offset is still committed.
    Drop,
}

/// Changes records one at a time (Kafka's `Transformation`). One instance serves every task of its
/// connector, so it keeps any state behind a lock.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: &mut dyn ConnectRecord) -> Result<Outcome, TransformError>;
}

/// Decides whether a transform applies to a record (Kafka's `Predicate`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &dyn ConnectRecord) -> bool;
}

/// Why a transform could not transform a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The key or value is not of a type the transform works on.
    #[error("only {expected} supported for [{purpose}], found: {found}")]
    WrongType {
        expected: &'static str,
        purpose: &'static str,
        found: &'static str,
    },
    /// A field the transform names is not in the struct.
    #[error("unknown field {field:?} (the struct has: {known})")]
    UnknownField { field: String, known: String },
    /// A value the transform cannot handle, and why.
    #[error("{0}")]
    Data(String),
    /// A failure that may pass (a lookup in another system timed out): tried again for as long as
    /// `errors.retry.timeout` allows.
    #[error("{0}")]
    Retriable(String),
}

/// Makes a transform from its own keys (`transforms.NAME.` stripped).
pub type TransformFactory =
    Arc<dyn Fn(&ConfigMap) -> Result<Box<dyn Transformation>, ConfigError> + Send + Sync>;

/// Makes a predicate from its own keys (`predicates.NAME.` stripped).
pub type PredicateFactory =
    Arc<dyn Fn(&ConfigMap) -> Result<Box<dyn Predicate>, ConfigError> + Send + Sync>;

/// Builds a built-in `$Key`/`$Value` transform for one part of the record.
type PartTransform = fn(support::Part, &ConfigMap) -> Result<Box<dyn Transformation>, ConfigError>;
/// Builds a built-in transform of the whole record.
type RecordTransform = fn(&ConfigMap) -> Result<Box<dyn Transformation>, ConfigError>;
/// Builds a built-in predicate.
type BuiltinPredicate = fn(&ConfigMap) -> Result<Box<dyn Predicate>, ConfigError>;

/// Kafka's package of the built-in transforms.
const PACKAGE: &str = "org.apache.kafka.connect.transforms";

/// The built-in transforms, by their full class names.
pub(crate) fn builtin_transforms() -> Vec<(String, TransformFactory)> {
    let mut all: Vec<(String, TransformFactory)> = Vec::new();
    let mut both = |name: &str, make: PartTransform| {
        for (suffix, part) in [
            ("$Key", support::Part::Key),
            ("$Value", support::Part::Value),
        ] {
            all.push((
                format!("{PACKAGE}.{name}{suffix}"),
                Arc::new(move |config: &ConfigMap| make(part, config)),
            ));
        }
    };
    both("InsertField", insert_field::make);
    both("ReplaceField", replace_field::make);
    both("MaskField", mask_field::make);
    both("ExtractField", extract_field::make);
    both("HoistField", hoist_field::make);
    both("Cast", cast::make);
    both("TimestampConverter", timestamp_converter::make);
    both("Flatten", flatten::make);
    both("HeaderFrom", header_from::make);
    both("SetSchemaMetadata", set_schema_metadata::make);
    let single: [(&str, RecordTransform); 6] = [
        ("ValueToKey", value_to_key::make),
        ("TimestampRouter", timestamp_router::make),
        ("RegexRouter", regex_router::make),
        ("InsertHeader", insert_header::make),
        ("DropHeaders", drop_headers::make),
        ("Filter", filter::make),
    ];
    for (name, make) in single {
        all.push((format!("{PACKAGE}.{name}"), Arc::new(make)));
    }
    all
}

/// The built-in predicates, by their full class names.
pub(crate) fn builtin_predicates() -> Vec<(String, PredicateFactory)> {
    let all: [(&str, BuiltinPredicate); 3] = [
        ("TopicNameMatches", predicates::topic_name_matches),
        ("HasHeaderKey", predicates::has_header_key),
        ("RecordIsTombstone", predicates::record_is_tombstone),
    ];
    all.into_iter()
        .map(|(name, make)| {
            let factory: PredicateFactory = Arc::new(make);
            (format!("{PACKAGE}.predicates.{name}"), factory)
        })
        .collect()
}
