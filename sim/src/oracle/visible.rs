//! The source records a read_committed reader of the topic sees, followed as the log grows: the oracle
//! asks at every source commit whether the records it covers are in Kafka, and identifying every record
//! of the topic again at each commit made a run quadratic in its records.
//!
//! Each partition is read on from where the last look stopped, its last stable offset: below it nothing
//! a read_committed reader sees changes any more (the log only grows, and only open transactions end,
//! which is why the look stops at the first of them).

use std::collections::BTreeSet;

use crate::broker::Logs;
use crate::protocol::{Record, Tp};

/// The (stream, seq) of every record a read_committed reader of one topic has been able to see.
#[derive(Debug, Default)]
pub struct VisibleIds {
    /// Per partition, the offset the next look reads from.
    read_to: Vec<i64>,
    ids: BTreeSet<(i64, i64)>,
}

impl VisibleIds {
    /// Takes in what became visible in `topic` since the last call; `identify` tells a record's
    /// (stream, seq) (`None`: not a source record).
    pub fn update(
        &mut self,
        logs: &Logs,
        topic: &str,
        identify: impl Fn(&Record) -> Option<(i64, i64)>,
    ) {
        let partitions = logs.partition_count(topic).unwrap_or(0);
        self.read_to
            .resize(usize::try_from(partitions).unwrap_or(0), 0);
        for (partition, read_to) in (0..partitions).zip(self.read_to.iter_mut()) {
            let (records, stable) =
                logs.committed_records_from(&Tp::new(topic, partition), *read_to);
            self.ids
                .extend(records.filter_map(|committed| identify(committed.record)));
            *read_to = stable;
        }
    }

    /// Whether a reader could see the record `id` at the last update.
    pub fn contains(&self, id: (i64, i64)) -> bool {
        self.ids.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::broker::test_batch;
    use crate::protocol::ProduceBatch;

    /// Values are "stream:seq"; anything else is not a source record.
    fn identify(value: &[u8]) -> Option<(i64, i64)> {
        let (stream, seq) = std::str::from_utf8(value).ok()?.split_once(':')?;
        Some((stream.parse().ok()?, seq.parse().ok()?))
    }

    fn batch(partition: i32, sequence: i64, values: &[&str]) -> ProduceBatch {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        test_batch(Tp::new("t", partition), sequence, &values)
    }

    /// What a reader of the whole topic sees now.
    fn seen_by_full_read(logs: &Logs) -> BTreeSet<(i64, i64)> {
        (0..2)
            .flat_map(|p| {
                logs.committed_records(&Tp::new("t", p))
                    .filter_map(|c| identify(c.record.value.as_deref()?))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn follows_appends_and_transactions_as_a_full_read_sees_them() {
        const NOW: Duration = Duration::ZERO;
        let mut logs = Logs::default();
        logs.create("t", 2).unwrap();
        let (plain, committing, aborting) = (
            logs.new_producer_id(),
            logs.new_producer_id(),
            logs.new_producer_id(),
        );
        let mut visible = VisibleIds::default();
        let mut check = |logs: &Logs, expected: &[(i64, i64)]| {
            visible.update(logs, "t", |record| identify(record.value.as_deref()?));
            let expected: BTreeSet<(i64, i64)> = expected.iter().copied().collect();
            assert_eq!(seen_by_full_read(logs), expected);
            for id in [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (3, 0)] {
                assert_eq!(visible.contains(id), expected.contains(&id), "{id:?}");
            }
        };
        check(&logs, &[]);

        logs.append(plain, 0, false, batch(0, 0, &["1:0", "not a record"]), NOW)
            .unwrap();
        check(&logs, &[(1, 0)]);

        // An open transaction hides what follows it in its partition, plain records too.
        logs.append(committing, 0, true, batch(0, 0, &["2:0"]), NOW)
            .unwrap();
        logs.append(plain, 0, false, batch(0, 2, &["1:1"]), NOW)
            .unwrap();
        logs.append(aborting, 0, true, batch(1, 0, &["3:0"]), NOW)
            .unwrap();
        logs.append(plain, 0, false, batch(1, 0, &["1:2"]), NOW)
            .unwrap();
        check(&logs, &[(1, 0)]);

        logs.end_transaction(&Tp::new("t", 1), aborting, 0, false, NOW);
        check(&logs, &[(1, 0), (1, 2)]);

        logs.append(committing, 0, true, batch(0, 1, &["2:1"]), NOW)
            .unwrap();
        logs.end_transaction(&Tp::new("t", 0), committing, 0, true, NOW);
        check(&logs, &[(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]);
    }
}
