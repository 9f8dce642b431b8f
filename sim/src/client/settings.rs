//! The client properties the simulated clients honour, with Kafka's defaults. Other keys are accepted and
//! ignored, as they tune librdkafka internals the simulation does not have.

use std::str::FromStr;
use std::time::Duration;

use sluice_core::kafka::{ClientSettings, KafkaError};

use crate::protocol::Isolation;

/// A numeric setting, or its default; a value that does not parse is an error naming the key.
pub fn number<T: FromStr>(
    settings: &ClientSettings,
    key: &str,
    default: T,
) -> Result<T, KafkaError> {
    match settings.get(key) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| KafkaError::Config {
            key: key.to_owned(),
            message: format!("{text:?} is not a valid number"),
        }),
    }
}

pub fn millis(
    settings: &ClientSettings,
    key: &str,
    default_ms: u64,
) -> Result<Duration, KafkaError> {
    number(settings, key, default_ms).map(Duration::from_millis)
}

pub fn text<'a>(settings: &'a ClientSettings, key: &str, default: &'a str) -> &'a str {
    settings.get(key).map(String::as_str).unwrap_or(default)
}

/// `isolation.level`: Kafka's default is read_uncommitted.
pub fn isolation(settings: &ClientSettings) -> Result<Isolation, KafkaError> {
    match text(settings, "isolation.level", "read_uncommitted") {
        "read_uncommitted" => Ok(Isolation::ReadUncommitted),
        "read_committed" => Ok(Isolation::ReadCommitted),
        other => Err(KafkaError::Config {
            key: "isolation.level".into(),
            message: format!("{other:?} is neither read_committed nor read_uncommitted"),
        }),
    }
}
