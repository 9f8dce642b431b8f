//! The plugin registry: maps `connector.class` values to connector constructors.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{SinkConnector, SourceConnector};

/// Makes a source connector.
pub type SourceFactory = Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>;

/// Makes a sink connector.
pub type SinkFactory = Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>;

/// A constructor for a connector of either kind. A closure may capture what its connectors share, such as a
/// client for the external system.
#[derive(Clone)]
pub enum ConnectorPlugin {
    Source(SourceFactory),
    Sink(SinkFactory),
}

impl ConnectorPlugin {
    pub fn source(make: impl Fn() -> Box<dyn SourceConnector> + Send + Sync + 'static) -> Self {
        ConnectorPlugin::Source(Arc::new(make))
    }

    pub fn sink(make: impl Fn() -> Box<dyn SinkConnector> + Send + Sync + 'static) -> Self {
        ConnectorPlugin::Sink(Arc::new(make))
    }
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
            self.plugins.insert(name, plugin.clone());
        }
        self.classes.push(class.to_owned());
        self
    }

    /// The plugin a `connector.class` value names.
    pub fn lookup(&self, class: &str) -> Option<ConnectorPlugin> {
        self.plugins.get(class.trim()).cloned()
    }

    /// The full class names of every registered plugin, in registration order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}
