//! Workload connectors for the simulation: a numbered source system and a destination store, so the oracle
//! knows exactly what should arrive where.

mod destination;
mod sequence_source;
mod store_sink;

pub use destination::{DestinationStore, StoreFault, Write};
pub use sequence_source::{record_text, SequenceSourceConnector};
pub use store_sink::{SinkBug, StoreSinkConnector};

use std::sync::Arc;

use sluice_core::api::{ConnectorPlugin, PluginRegistry};

/// The built-in connectors plus the workload connectors, whose sinks write to `store`.
pub fn plugins(store: Arc<DestinationStore>) -> PluginRegistry {
    let mut registry = sluice_connectors::builtin_plugins();
    registry.register(
        "io.sluice.sim.SequenceSourceConnector",
        ConnectorPlugin::source(|| Box::new(SequenceSourceConnector::default())),
    );
    registry.register(
        "io.sluice.sim.StoreSinkConnector",
        ConnectorPlugin::sink(move || Box::new(StoreSinkConnector::new(store.clone()))),
    );
    registry
}
