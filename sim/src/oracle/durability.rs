//! How far each partition's records are durable at the sink's end: in the destination store, or in the
//! lines synced to the FileStreamSinks' output files (a record is durable there once a line with its value
//! is synced in some worker's file; the value names its input line).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::broker::{Entry, Logs};
use crate::protocol::Tp;
use crate::workload::{refused_by_sink, DestinationStore, Mark, OutputLedger};

/// Where the sink's records become durable, and how far each partition was found durable.
#[derive(Debug)]
pub struct Durability {
    sink: Sink,
    /// Per partition, an offset below which every record is durable or owes nothing. It only moves on:
    /// records stay durable, and a record that owes nothing never owes again (markers and aborted
    /// records, records the sink refuses or its transforms skip, records the destination rejects, which
    /// it only starts doing). Without it every sink commit looked again at every record after the
    /// first that owes nothing.
    verified: Mutex<BTreeMap<Tp, i64>>,
}

#[derive(Debug)]
enum Sink {
    Store(Arc<DestinationStore>),
    /// A record is durable once a line with its value is synced in some worker's file.
    Files(Arc<OutputLedger>),
}

impl Durability {
    pub fn store(store: Arc<DestinationStore>) -> Durability {
        Durability::new(Sink::Store(store))
    }

    pub fn files(ledger: Arc<OutputLedger>) -> Durability {
        Durability::new(Sink::Files(ledger))
    }

    fn new(sink: Sink) -> Durability {
        Durability {
            sink,
            verified: Mutex::default(),
        }
    }

    /// The offset after the longest prefix of `tp`'s records that is durable. Transaction markers and
    /// aborted records are no records; records of open transactions are (a sink reading uncommitted data
    /// may have written them, and whether they should be there is judged at the end).
    pub fn durable_end(&self, logs: &Logs, tp: &Tp) -> i64 {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let mut from = verified.get(tp).copied().unwrap_or(0);
        let entries = logs.entries(tp);
        let value = |offset: i64| match &entries[offset as usize] {
            Entry::Data { record, .. } => record.value.as_deref(),
            Entry::Marker { .. } => None,
        };
        let missing = match &self.sink {
            Sink::Store(store) => {
                // Every offset below the store's contiguous durable run is durable.
                from = from.max(store.contiguous_end(tp));
                // A record the sink's converter refuses, or its transforms drop or fail on, has
                // nothing to be durable: the sink skips it.
                let skipped = |offset: i64| match &entries[offset as usize] {
                    Entry::Data { record, .. } => {
                        Mark::for_sink(&record.headers)
                            || record
                                .value
                                .as_deref()
                                .is_some_and(|value| refused_by_sink(value) || store.rejects(value))
                    }
                    Entry::Marker { .. } => false,
                };
                let to_write = logs
                    .live_offsets_from(tp, from)
                    .filter(|&offset| !skipped(offset));
                store.first_missing(tp, to_write)
            }
            Sink::Files(ledger) => logs.live_offsets_from(tp, from).find(|&offset| {
                !ledger.is_durable(&String::from_utf8_lossy(value(offset).unwrap_or_default()))
            }),
        };
        let end = missing.unwrap_or_else(|| log_end(logs, tp).max(from));
        verified.insert(tp.clone(), end);
        end
    }
}

/// Where a partition's log ends: past its last record, marker or aborted record (with no record missing
/// before it, a sink may commit there; a consumer reading uncommitted data does, after aborted records
/// it wrote).
fn log_end(logs: &Logs, tp: &Tp) -> i64 {
    logs.end_offset(tp).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::broker::test_batch;

    #[test]
    fn the_durable_prefix_moves_past_what_owes_nothing_and_waits_for_what_is_missing() {
        let tp = Tp::new("t", 0);
        let mut logs = Logs::default();
        logs.create("t", 1).unwrap();
        let producer = logs.new_producer_id();
        // Offset 1 is not UTF-8: the sink refuses it, so it never becomes durable and owes nothing.
        let batch = test_batch(tp.clone(), 0, &[b"a", &[0xff], b"c", b"d"]);
        logs.append(producer, 0, false, batch, Duration::ZERO)
            .unwrap();
        let store = Arc::new(DestinationStore::default());
        let durability = Durability::store(store.clone());
        let write = |offsets: &[i64]| {
            store.write(
                "sink",
                0,
                offsets.iter().map(|&o| (tp.clone(), o, format!("{o}"))),
            )
        };

        assert_eq!(durability.durable_end(&logs, &tp), 0);
        write(&[0]);
        assert_eq!(durability.durable_end(&logs, &tp), 2, "offset 2 is missing");
        write(&[3]);
        assert_eq!(durability.durable_end(&logs, &tp), 2, "still missing");
        write(&[2]);
        assert_eq!(durability.durable_end(&logs, &tp), 4, "everything");
        assert_eq!(durability.durable_end(&logs, &tp), 4, "and it stays");
    }
}
