//! Effectively once: a destination that applies records as upserts by key may be written the same record
//! any number of times, but each of its keys must end with the latest Kafka record of the record key it
//! holds (`stale-value`): an older record applied after a newer one (a zombie's late write, a write kept
//! for a partition the task lost, a batch applied out of order) leaves the key behind for good.

use std::collections::BTreeMap;

use super::{Anomaly, AnomalyKind};
use crate::broker::Logs;
use crate::protocol::Tp;
use crate::workload::Upsert;

/// The keys that do not end with their latest record; with no upsert told at all, that the destination
/// never said what it applied (the guarantee cannot be checked).
pub fn check(logs: &Logs, upserts: &[Upsert]) -> Vec<Anomaly> {
    if upserts.is_empty() {
        return vec![none_told()];
    }
    let last = last_per_key(upserts);
    let mut latest = Latest::default();
    let mut found = Vec::new();
    for (key, held) in last {
        let Some((offset, value)) = latest.of(logs, &held.tp, held.offset) else {
            continue;
        };
        if offset > held.offset && value != held.value {
            found.push(Anomaly {
                kind: AnomalyKind::StaleValue,
                detail: format!(
                    "key {key} ends with {} offset {} ({}), applied at {} ms, but the latest record of its key is {} offset {offset} ({value})",
                    held.tp,
                    held.offset,
                    held.value,
                    held.at.as_millis(),
                    held.tp,
                ),
            });
        }
    }
    found
}

/// A Kafka record's key (`None`: a record without one).
type RecordKey = Option<Vec<u8>>;

/// What a run held to effectively once finds when its destination told no upsert: nothing says what
/// its keys hold, so nothing could be checked.
pub fn none_told() -> Anomaly {
    Anomaly {
        kind: AnomalyKind::StaleValue,
        detail: "the run is held to effectively once, but the destination told no upsert (DurableWrites::upserted): nothing says what its keys hold".to_owned(),
    }
}

/// The upsert each key ended with.
pub fn last_per_key(upserts: &[Upsert]) -> BTreeMap<&str, &Upsert> {
    upserts
        .iter()
        .map(|upsert| (upsert.key.as_str(), upsert))
        .collect()
}

/// Per partition and record key, the latest record in Kafka (offset and value), computed once per
/// partition.
#[derive(Default)]
struct Latest {
    partitions: BTreeMap<Tp, BTreeMap<RecordKey, (i64, String)>>,
}

impl Latest {
    /// The latest record with the key of the record at `tp`/`offset`.
    fn of(&mut self, logs: &Logs, tp: &Tp, offset: i64) -> Option<(i64, String)> {
        let latest = self.partitions.entry(tp.clone()).or_insert_with(|| {
            let mut latest = BTreeMap::new();
            for committed in logs.committed_records(tp) {
                let value = committed
                    .record
                    .value
                    .as_deref()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                latest.insert(committed.record.key.clone(), (committed.offset, value));
            }
            latest
        });
        let key = logs
            .committed_records(tp)
            .find(|committed| committed.offset == offset)?
            .record
            .key
            .clone();
        latest.get(&key).cloned()
    }
}
