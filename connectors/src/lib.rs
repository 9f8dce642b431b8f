//! Sluice's built-in connectors, one folder per connector family, each with the same shape:
//! a `*Connector` (config and task split) and its task.
//!
//! - [`file`]: `FileStreamSource` and `FileStreamSink`, Kafka's example connectors.
//! - [`jdbc`]: `JdbcSourceConnector` and `JdbcSinkConnector`, with Confluent's JDBC connectors' keys
//!   and offsets, on SQLite and PostgreSQL.

pub mod file;
pub mod jdbc;

use std::sync::Arc;

use jdbc::DatabaseOpener;
use sluice_core::api::{ConnectorPlugin, PluginRegistry};
use sluice_core::fs::{FileSystem, LocalFs};

/// A registry with every built-in connector, on the machine's filesystem and databases.
pub fn builtin_plugins() -> PluginRegistry {
    plugins_on(Arc::new(LocalFs), Arc::new(jdbc::SqlOpener))
}

/// A registry with every built-in connector; the FileStream connectors use `fs`, the JDBC connectors
/// open their databases with `databases`.
pub fn plugins_on(fs: Arc<dyn FileSystem>, databases: Arc<dyn DatabaseOpener>) -> PluginRegistry {
    let mut registry = PluginRegistry::new();
    let sink_fs = fs.clone();
    let source_databases = databases.clone();
    registry
        .register(
            file::SOURCE_CLASS,
            ConnectorPlugin::source(move || {
                Box::new(file::FileStreamSourceConnector::new(fs.clone()))
            }),
        )
        .register(
            file::SINK_CLASS,
            ConnectorPlugin::sink(move || {
                Box::new(file::FileStreamSinkConnector::new(sink_fs.clone()))
            }),
        )
        .register(
            jdbc::SOURCE_CLASS,
            ConnectorPlugin::source(move || {
                Box::new(jdbc::JdbcSourceConnector::new(source_databases.clone()))
            }),
        )
        .register(
            jdbc::SINK_CLASS,
            ConnectorPlugin::sink(move || {
                Box::new(jdbc::JdbcSinkConnector::new(databases.clone()))
            }),
        );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_class_name_styles_resolve() {
        let registry = builtin_plugins();
        for name in [
            "FileStreamSource",
            "FileStreamSourceConnector",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
        ] {
            assert!(
                matches!(registry.lookup(name), Some(ConnectorPlugin::Source(_))),
                "{name}"
            );
        }
        for name in [
            "FileStreamSink",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ] {
            assert!(
                matches!(registry.lookup(name), Some(ConnectorPlugin::Sink(_))),
                "{name}"
            );
        }
        assert!(registry.lookup("FileStream").is_none());
    }
}
