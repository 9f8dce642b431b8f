//! Kafka's predicates: `TopicNameMatches` (the whole topic matches `pattern`), `HasHeaderKey` (a header
//! named `name` is present) and `RecordIsTombstone` (the value is null).

use regex::Regex;

use super::{ConnectRecord, Predicate};
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType};

struct TopicNameMatches(Regex);

struct HasHeaderKey(String);

struct RecordIsTombstone;

pub fn topic_name_matches(config: &ConfigMap) -> Result<Box<dyn Predicate>, ConfigError> {
    let parsed = ConfigDef::new()
        .required(
            "pattern",
            ConfigType::String,
            "A regular expression the whole topic must match.",
        )
        .parse(config)?;
    let regex = Regex::new(&format!("^(?:{})$", parsed.string("pattern")))
        .map_err(|e| ConfigError::single("pattern", format!("not a regular expression: {e}")))?;
    Ok(Box::new(TopicNameMatches(regex)))
}

pub fn has_header_key(config: &ConfigMap) -> Result<Box<dyn Predicate>, ConfigError> {
    let parsed = ConfigDef::new()
        .required("name", ConfigType::String, "The header key to look for.")
        .check(|v| match v.trim().is_empty() {
            true => Err("must not be empty".into()),
            false => Ok(()),
        })
        .parse(config)?;
    Ok(Box::new(HasHeaderKey(parsed.string("name").to_owned())))
}

pub fn record_is_tombstone(_config: &ConfigMap) -> Result<Box<dyn Predicate>, ConfigError> {
    Ok(Box::new(RecordIsTombstone))
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &dyn ConnectRecord) -> bool {
        self.0.is_match(record.topic())
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &dyn ConnectRecord) -> bool {
        record.headers().iter().any(|h| h.key == self.0)
    }
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &dyn ConnectRecord) -> bool {
        record.value().value.is_null()
    }
}
