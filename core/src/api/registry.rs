//! The plugin registry: maps `connector.class` values to connector constructors.

use std::collections::BTreeMap;

use super::{SinkConnector, SourceConnector};

/// A constructor for a connector of either kind.
#[derive(Clone, Copy)]
pub enum ConnectorPlugin {
    Source(fn() -> Box<dyn SourceConnector>),
    Sink(fn() -> Box<dyn SinkConnector>),
}

/// Known connector classes, found by full class name or by alias.
///
/// As in Kafka Connect, `org.apache.kafka.connect.file.FileStreamSourceConnector`,
/// `FileStreamSourceConnector` and `FileStreamSource` all name the same plugin.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, ConnectorPlugin>,
    classes: Vec<String>,
}

impl PluginRegistry {
    pub fn new() -> PluginRegistry {
        PluginRegistry::default()
    }

    /// Registers a plugin under its full class name; its simple name and, for names ending in
    /// `Connector`, the name without that suffix become aliases.
    pub fn register(&mut self, class: &str, plugin: ConnectorPlugin) -> &mut Self {
        let simple = class.rsplit('.').next().unwrap_or(class);
        let mut names = vec![class.to_owned(), simple.to_owned()];
        if let Some(short) = simple.strip_suffix("Connector") {
            names.push(short.to_owned());
        }
        for name in names {
            self.plugins.insert(name, plugin);
        }
        self.classes.push(class.to_owned());
        self
    }

    /// The plugin a `connector.class` value names.
    pub fn lookup(&self, class: &str) -> Option<ConnectorPlugin> {
        self.plugins.get(class.trim()).copied()
    }

    /// The full class names of every registered plugin, in registration order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}
