//! Configuration: string maps as Kafka Connect passes them, a `ConfigDef` that declares and validates keys,
//! the `.properties` / JSON file formats the CLI reads, and the config providers that fill in
//! `${provider:path:key}` references.

mod def;
mod files;
mod providers;

pub use def::{
    ConfigDef, ConfigError, ConfigIssue, ConfigKey, ConfigType, ParsedConfig, UnknownKey,
    ValueCheck,
};
pub use files::{load_connector_file, load_properties_file, parse_properties, ConfigFileError};
pub use providers::{ConfigProviders, CONFIG_PROVIDERS};

use std::collections::BTreeMap;

/// Configuration as Kafka Connect passes it around: string keys to string values.
pub type ConfigMap = BTreeMap<String, String>;
