//! Configuration: string maps as Kafka Connect passes them, a `ConfigDef` that declares and validates keys,
//! and the `.properties` / JSON file formats the CLI reads.

mod def;
mod files;

pub use def::{
    ConfigDef, ConfigError, ConfigIssue, ConfigKey, ConfigType, ParsedConfig, UnknownKey,
    ValueCheck,
};
pub use files::{load_connector_file, load_properties_file, parse_properties, ConfigFileError};

use std::collections::BTreeMap;

/// Configuration as Kafka Connect passes it around: string keys to string values.
pub type ConfigMap = BTreeMap<String, String>;
