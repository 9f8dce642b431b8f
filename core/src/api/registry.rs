//! The plugin registry: maps `connector.class` values to connector constructors, and transform and
//! predicate classes (`transforms.NAME.type`, `predicates.NAME.type`) to theirs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{SinkConnector, SourceConnector};
use crate::transforms::{
    builtin_predicates, builtin_transforms, PredicateFactory, TransformFactory,
};

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

/// Known connector, transform and predicate classes, found by full class name or by alias.
///
/// As in Kafka Connect, `org.apache.kafka.connect.file.FileStreamSourceConnector`,
/// `FileStreamSourceConnector` and `FileStreamSource` all name the same plugin, and
/// `org.apache.kafka.connect.transforms.InsertField$Value` and `InsertField$Value` the same transform.
#[derive(Clone)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, ConnectorPlugin>,
    classes: Vec<String>,
    transforms: Named<TransformFactory>,
    predicates: Named<PredicateFactory>,
}

/// Factories by full class name and simple name, and the full names in registration order.
#[derive(Clone)]
struct Named<F> {
    by_name: BTreeMap<String, F>,
    classes: Vec<String>,
}

impl<F: Clone> Named<F> {
    fn new(builtin: Vec<(String, F)>) -> Named<F> {
        let mut named = Named {
            by_name: BTreeMap::new(),
            classes: Vec::new(),
        };
        for (class, factory) in builtin {
            named.register(&class, factory);
        }
        named
    }

    fn register(&mut self, class: &str, factory: F) {
        let simple = class.rsplit('.').next().unwrap_or(class);
        self.by_name.insert(simple.to_owned(), factory.clone());
        self.by_name.insert(class.to_owned(), factory);
        self.classes.push(class.to_owned());
    }

    fn lookup(&self, class: &str) -> Option<F> {
        self.by_name.get(class.trim()).cloned()
    }
}

impl Default for PluginRegistry {
    fn default() -> Self {
        PluginRegistry::new()
    }
}

impl PluginRegistry {
    /// A registry of the built-in transforms and predicates, and no connectors.
    pub fn new() -> PluginRegistry {
        PluginRegistry {
            plugins: BTreeMap::new(),
            classes: Vec::new(),
            transforms: Named::new(builtin_transforms()),
            predicates: Named::new(builtin_predicates()),
        }
    }

    /// Registers a transform under its full class name; its simple name becomes an alias.
    pub fn register_transform(&mut self, class: &str, factory: TransformFactory) -> &mut Self {
        self.transforms.register(class, factory);
        self
    }

    /// Registers a predicate under its full class name; its simple name becomes an alias.
    pub fn register_predicate(&mut self, class: &str, factory: PredicateFactory) -> &mut Self {
        self.predicates.register(class, factory);
        self
    }

    /// The transform a `transforms.NAME.type` value names.
    pub fn transform(&self, class: &str) -> Option<TransformFactory> {
        self.transforms.lookup(class)
    }

    /// The predicate a `predicates.NAME.type` value names.
    pub fn predicate(&self, class: &str) -> Option<PredicateFactory> {
        self.predicates.lookup(class)
    }

    /// The full class names of every transform, in registration order.
    pub fn transform_classes(&self) -> &[String] {
        &self.transforms.classes
    }

    /// The full class names of every predicate, in registration order.
    pub fn predicate_classes(&self) -> &[String] {
        &self.predicates.classes
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
