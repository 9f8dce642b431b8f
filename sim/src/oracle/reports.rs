//! What the source tasks were told, held to the `SourceTask` contract: `commit_record` names where Kafka
//! stored the record (or nothing, for a record dropped before Kafka), and a record is reported before its
//! offset is committed.
//!
//! - `commit-record-wrong`: a report with a place in Kafka that does not hold the record, with a place
//!   for a record the source's converter refused, or without one for a record that was sent;
//! - `commit-record-missing`: under at least once, a record at or before its stream's committed offset
//!   that some instance polled and no instance was told of (the offset is written after the acknowledgement that tells the task);
//!   with exactly-once support, a record polled before a `commit` and not told of by then (the
//!   transaction that `commit` follows held it). Under exactly once the first form cannot be asked for: a
//!   worker that crashes after its transaction committed never tells anyone.

use std::collections::BTreeMap;

use sluice_core::api::CommitRecordReads;

use super::AnomalyKind;
use crate::protocol::Tp;
use crate::scenario::{Scenario, Workload};
use crate::workload::{InstanceReports, RecordId};

/// Adds the anomalies of the reports to `report`.
pub fn check(
    scenario: &Scenario,
    reports: &BTreeMap<u64, InstanceReports>,
    positions: &BTreeMap<RecordId, Vec<(Tp, i64)>>,
    source_committed: &BTreeMap<i64, i64>,
    report: &mut dyn FnMut(AnomalyKind, String),
) {
    // A task whose `commit_record` reads nothing is never called, and has nothing to report.
    if scenario.workload != Workload::Sequences
        || scenario.commit_record_reads() == Some(CommitRecordReads::Nothing)
    {
        return;
    }
    let topic = scenario.topic();
    for (instance, instance_reports) in reports {
        for (&(stream, seq), told) in &instance_reports.told {
            let refused = scenario.kept_out_of_kafka(seq);
            for stored in told {
                let wrong = match stored {
                    None if refused => continue,
                    None => "without a place in Kafka, though it was sent".to_owned(),
                    Some((partition, offset)) => {
                        let at = (Tp::new(topic, *partition), *offset);
                        let holds = positions
                            .get(&(stream, seq))
                            .is_some_and(|copies| copies.contains(&at));
                        if holds && !refused {
                            continue;
                        }
                        format!("that it is at {} offset {offset}", at.0)
                    }
                };
                report(
                    AnomalyKind::CommitRecordWrong,
                    format!("instance {instance} was told of stream {stream} seq {seq} {wrong}"),
                );
            }
        }
    }
    if scenario.exactly_once {
        for (instance, instance_reports) in reports {
            if let Some(untold) = &instance_reports.untold_at_commit {
                let (stream, seq) = untold[0];
                report(
                    AnomalyKind::CommitRecordMissing,
                    format!(
                        "instance {instance}'s commit came before it was told of {} records it had polled, such as stream {stream} seq {seq}",
                        untold.len()
                    ),
                );
            }
        }
        return;
    }
    for (&stream, &committed) in source_committed {
        for seq in 0..=committed.min(scenario.records_per_stream - 1) {
            let id = (stream, seq);
            // A record no instance polled is the source's own loss (`lost`), not the runtime's silence.
            let polled = reports.values().any(|r| r.polled.contains(&id));
            let told = reports.values().any(|r| r.told.contains_key(&id));
            if polled && !told {
                report(
                    AnomalyKind::CommitRecordMissing,
                    format!("stream {stream} seq {seq} is covered by the committed source offset {committed}, but no task instance was told of it"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{SourceReports, REFUSED_BY_SOURCE_EVERY};

    fn anomalies(
        scenario: &str,
        reports: &SourceReports,
        committed: i64,
    ) -> Vec<(AnomalyKind, String)> {
        let scenario = crate::builtin::scenario(scenario)
            .expect("scenario")
            .scenario()
            .clone();
        let topic = scenario.topic();
        // Stream 0's records 0..=5 are at offsets 0..=5 of partition 0.
        let positions = (0..=5)
            .map(|seq| ((0, seq), vec![(Tp::new(topic, 0), seq)]))
            .collect();
        let mut found = Vec::new();
        check(
            &scenario,
            &reports.take(),
            &positions,
            &BTreeMap::from([(0, committed)]),
            &mut |kind, detail| found.push((kind, detail)),
        );
        found
    }

    #[test]
    fn every_committed_record_must_have_been_reported_under_at_least_once() {
        let reports = SourceReports::default();
        for seq in 0..=4 {
            reports.polled(7, (0, seq));
        }
        for seq in [0, 1, 3] {
            reports.told(7, (0, seq), Some((0, seq)));
        }
        let found = anomalies("crash-restart-storm", &reports, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, AnomalyKind::CommitRecordMissing);
        assert!(found[0].1.contains("stream 0 seq 2"), "{}", found[0].1);
        assert!(anomalies("crash-restart-storm", &reports, 1).is_empty());
    }

    #[test]
    fn a_report_must_name_the_records_place_in_kafka() {
        let reports = SourceReports::default();
        reports.told(1, (0, 0), Some((0, 0)));
        reports.told(1, (0, 1), Some((0, 4)));
        reports.told(2, (0, 2), None);
        let found = anomalies("crash-restart-storm", &reports, 0);
        let kinds: Vec<_> = found.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, [AnomalyKind::CommitRecordWrong; 2], "{found:?}");
        assert!(found[0].1.contains("instance 1") && found[0].1.contains("offset 4"));
        assert!(found[1].1.contains("instance 2") && found[1].1.contains("without a place"));
    }

    #[test]
    fn a_refused_record_is_reported_without_a_place() {
        let refused = REFUSED_BY_SOURCE_EVERY - 1;
        let reports = SourceReports::default();
        reports.told(1, (0, refused), None);
        assert!(anomalies("crash-restart-storm", &reports, -1).is_empty());
        reports.told(1, (0, refused), Some((0, 3)));
        let found = anomalies("crash-restart-storm", &reports, -1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, AnomalyKind::CommitRecordWrong);
    }

    #[test]
    fn with_exactly_once_a_commit_follows_reports_of_everything_polled_before_it() {
        let reports = SourceReports::default();
        reports.polled(1, (0, 0));
        reports.polled(1, (0, 1));
        reports.told(1, (0, 0), Some((0, 0)));
        reports.told(1, (0, 1), Some((0, 1)));
        reports.committed(1);
        reports.polled(2, (0, 2));
        reports.committed(2);
        reports.told(2, (0, 2), Some((0, 2)));
        let found = anomalies("exactly-once-source", &reports, 2);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, AnomalyKind::CommitRecordMissing);
        assert!(found[0].1.contains("instance 2") && found[0].1.contains("stream 0 seq 2"));
    }
}
