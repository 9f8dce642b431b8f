//! Workloads for the simulation: a numbered source system and a destination store, so the oracle knows
//! exactly what should arrive where; and, for the FileStream connectors, a simulated disk per host and the
//! application that writes their input file.

mod destination;
pub mod input_file;
mod output_ledger;
mod sequence_source;
mod sim_fs;
mod source_outages;
mod source_reports;
mod store_sink;
mod strikes;

pub use destination::{Claim, DestinationStore, Flushing, StoreError, StoreFault, Upsert, Write};
pub use output_ledger::{Line, OutputLedger, SyncWatcher};
pub use sequence_source::{
    mark, parse_value, poison, reads_name, reads_named, refused_by_sink, rejected, Mark, Poison,
    SequenceSourceConnector, ALL_READS, REFUSED_BY_SINK_EVERY, REFUSED_BY_SOURCE_EVERY,
    REJECTED_EVERY,
};
pub use sim_fs::{DirtyPages, DiskFaults, SimFs, WriteError};
pub use source_outages::SourceOutages;
pub use source_reports::{InstanceReports, RecordId, SourceReports};
pub use store_sink::{SinkBug, SinkMode, StoreSinkConnector};
pub use strikes::{Strike, Strikes};

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use sluice_core::api::{ConnectorPlugin, PluginRegistry};

/// A built-in workload record's place in its source: SequenceSource's `stream-S:N` is (S, N) (see
/// [`parse_value`]); an input file's `line-N` is (0, N).
pub fn record_id(value: &[u8]) -> Option<(i64, i64)> {
    if let Some(line) = value.strip_prefix(b"line-") {
        return Some((0, std::str::from_utf8(line).ok()?.trim_end().parse().ok()?));
    }
    parse_value(value)
}

/// The client id of worker `worker`'s sink consumers: their member ids (`worker-N-M`) say which worker
/// each member runs on.
pub fn sink_client_id(worker: usize) -> String {
    format!("worker-{worker}")
}

/// The worker a sink consumer group member runs on, from its member id.
pub fn member_worker(member_id: &str) -> Option<usize> {
    member_id
        .strip_prefix("worker-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// What the workload connectors of every worker share: the destination store, the disks' faults and
/// ledger, the counter numbering source task instances, what those instances were told and the source
/// system's outages, and the input file's rotations.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub store: Arc<DestinationStore>,
    pub disk: Arc<DiskFaults>,
    pub ledger: Arc<OutputLedger>,
    pub instances: Arc<AtomicU64>,
    pub reports: Arc<SourceReports>,
    pub outages: Arc<SourceOutages>,
    pub rotations: Arc<input_file::InputRotations>,
}

/// A worker's connectors: the built-in ones on its simulated disk `fs` (suffering the disk faults,
/// noting what they write in the ledger), plus the workload connectors, whose sinks write to the store
/// and whose source task instances are numbered by the shared counter.
pub fn plugins(shared: &Shared, fs: SimFs) -> PluginRegistry {
    let worker = fs.worker();
    let Shared {
        store,
        instances,
        reports,
        outages,
        ..
    } = shared.clone();
    let databases = crate::model_db::client::ModelDbOpener::new(Arc::new(crate::kit::SimDialer));
    let mut registry = sluice_connectors::plugins_on(Arc::new(fs), Arc::new(databases));
    registry.register(
        "io.sluice.sim.SequenceSourceConnector",
        ConnectorPlugin::source(move || {
            Box::new(SequenceSourceConnector::new(
                instances.clone(),
                reports.clone(),
                outages.clone(),
            ))
        }),
    );
    registry.register(
        "io.sluice.sim.StoreSinkConnector",
        ConnectorPlugin::sink(move || Box::new(StoreSinkConnector::new(store.clone(), worker))),
    );
    registry
}
