//! How far each partition's records are durable at the sink's end: in the destination store, or in the
//! lines synced to the FileStreamSinks' output files (a record is durable there once a line with its value
//! is synced in some worker's file; the value names its input line).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::broker::{Entry, Logs};
use crate::protocol::Tp;
use crate::workload::{refused_by_sink, DestinationStore, OutputLedger};

/// Where the sink's records become durable.
#[derive(Debug)]
pub enum Durability {
    Store(Arc<DestinationStore>),
    Files {
        ledger: Arc<OutputLedger>,
        /// Per partition, an offset below which every record is known durable (synced lines stay durable).
        verified: Mutex<BTreeMap<Tp, i64>>,
    },
}

impl Durability {
    pub fn files(ledger: Arc<OutputLedger>) -> Durability {
        Durability::Files {
            ledger,
            verified: Mutex::default(),
        }
    }

    /// The offset after the longest prefix of `tp`'s records that is durable. Transaction markers and
    /// aborted records are no records; records of open transactions are (a sink reading uncommitted data
    /// may have written them, and whether they should be there is judged at the end).
    pub fn durable_end(&self, logs: &Logs, tp: &Tp) -> i64 {
        match self {
            Durability::Store(store) => durable_end(logs, store, tp),
            Durability::Files { ledger, verified } => {
                let mut verified = verified.lock().unwrap_or_else(|e| e.into_inner());
                let from = verified.get(tp).copied().unwrap_or(0);
                let entries = logs.entries(tp);
                let end = logs
                    .live_offsets_from(tp, from)
                    .find(|offset| {
                        let value = match &entries[*offset as usize] {
                            Entry::Data { record, .. } => record.value.as_deref(),
                            Entry::Marker { .. } => None,
                        };
                        !ledger.is_durable(&String::from_utf8_lossy(value.unwrap_or_default()))
                    })
                    .unwrap_or_else(|| log_end(logs, tp).max(from));
                verified.insert(tp.clone(), end);
                end
            }
        }
    }
}

/// The offset after the longest prefix of `tp`'s records durable in the destination store. A record the
/// sink's converter refuses has nothing to be durable: the sink skips it.
pub fn durable_end(logs: &Logs, store: &DestinationStore, tp: &Tp) -> i64 {
    // Every offset below the contiguous durable run is durable: only what follows needs looking at.
    let from = store.contiguous_end(tp);
    let entries = logs.entries(tp);
    let to_write = logs.live_offsets_from(tp, from).filter(|offset| {
        !matches!(&entries[*offset as usize], Entry::Data { record, .. }
            if record.value.as_deref().is_some_and(|value| refused_by_sink(value) || store.rejects(value)))
    });
    store
        .first_missing(tp, to_write)
        .unwrap_or_else(|| log_end(logs, tp).max(from))
}

/// Where a partition's log ends: past its last record, marker or aborted record (with no record missing
/// before it, a sink may commit there; a consumer reading uncommitted data does, after aborted records
/// it wrote).
fn log_end(logs: &Logs, tp: &Tp) -> i64 {
    logs.end_offset(tp).unwrap_or(0)
}
