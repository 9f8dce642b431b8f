//! Sluice's built-in connectors, one folder per connector family, each with the same shape:
//! a `*Connector` (config and task split) and its task.
//!
//! - [`file`]: `FileStreamSource` and `FileStreamSink`, Kafka's example connectors.

pub mod file;

use sluice_core::api::{ConnectorPlugin, PluginRegistry};

/// A registry with every built-in connector.
pub fn builtin_plugins() -> PluginRegistry {
    let mut registry = PluginRegistry::new();
    registry
        .register(
            file::SOURCE_CLASS,
            ConnectorPlugin::source(|| Box::new(file::FileStreamSourceConnector::default())),
        )
        .register(
            file::SINK_CLASS,
            ConnectorPlugin::sink(|| Box::new(file::FileStreamSinkConnector::default())),
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
