//! Workloads for the simulation: a numbered source system and a destination store, so the oracle knows
//! exactly what should arrive where; and, for the FileStream connectors, a simulated disk per host and the
//! application that writes their input file.

mod destination;
pub mod input_file;
mod sequence_source;
mod sim_fs;
mod store_sink;

pub use destination::{Claim, DestinationStore, Flushing, StoreError, StoreFault, Write};
pub use sequence_source::{SequenceSourceConnector, INSTANCE_HEADER};
pub use sim_fs::{DirtyPages, DiskFaults, SimFs, WriteError};
pub use store_sink::{SinkBug, SinkMode, StoreSinkConnector};

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use sluice_core::api::{ConnectorPlugin, PluginRegistry};

/// The built-in connectors on the host's simulated disk `fs`, plus the workload connectors, whose sinks
/// write to `store` and whose source task instances are numbered by `instances`.
pub fn plugins(
    store: Arc<DestinationStore>,
    fs: SimFs,
    instances: Arc<AtomicU64>,
) -> PluginRegistry {
    let mut registry = sluice_connectors::plugins_on(Arc::new(fs));
    registry.register(
        "io.sluice.sim.SequenceSourceConnector",
        ConnectorPlugin::source(move || Box::new(SequenceSourceConnector::new(instances.clone()))),
    );
    registry.register(
        "io.sluice.sim.StoreSinkConnector",
        ConnectorPlugin::sink(move || Box::new(StoreSinkConnector::new(store.clone()))),
    );
    registry
}
