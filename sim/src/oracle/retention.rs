//! Records retention deleted before any sink task wrote them are not the sink's to deliver, but the
//! user must hear of them: each must fall in a range the runtime reported (the sink task's ERROR that
//! names the partition and the deleted offsets, which the harness reads from its log).
//!
//! Exempt are records deleted before the sink's group had committed an offset of their partition: a
//! consumer starting on a partition without a committed offset cannot tell records deleted before it
//! came from records that were never there (a new connector on an old topic), and Kafka Connect users
//! expect no error then.

use std::collections::BTreeSet;
use std::ops::Range;

use super::{AnomalyKind, Report};
use crate::protocol::Tp;

/// What the run showed about records retention deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionEvidence<'a> {
    /// Ranges retention deleted after the sink's group had committed an offset of their partition.
    pub deleted_while_owed: &'a [(Tp, Range<i64>)],
    /// Ranges a sink task reported as deleted before it read them.
    pub reported: &'a [(Tp, Range<i64>)],
}

/// Reports each run of consecutive records that retention deleted before any sink task wrote them, that
/// the group owed, and that no sink task said were deleted.
pub(super) fn check(
    deleted_unwritten: &BTreeSet<(Tp, i64)>,
    evidence: RetentionEvidence<'_>,
    report: Report<'_>,
) {
    let mut silent: Option<(Tp, Range<i64>)> = None;
    let mut say = |(tp, range): (Tp, Range<i64>)| {
        report(
            AnomalyKind::DeletedUnreported,
            format!(
                "{tp} offsets {} to {}: retention deleted them before any sink task wrote them, after the group had committed offsets of {tp}, and no sink task reported them",
                range.start,
                range.end - 1
            ),
        );
    };
    for (tp, offset) in deleted_unwritten {
        let offset = *offset;
        if !within(evidence.deleted_while_owed, tp, offset) || within(evidence.reported, tp, offset)
        {
            continue;
        }
        match &mut silent {
            Some((t, range)) if t == tp && range.end == offset => range.end = offset + 1,
            _ => {
                if let Some(done) = silent.replace((tp.clone(), offset..offset + 1)) {
                    say(done);
                }
            }
        }
    }
    if let Some(done) = silent {
        say(done);
    }
}

/// Whether `offset` of `tp` falls in one of `ranges`.
pub(super) fn within(ranges: &[(Tp, Range<i64>)], tp: &Tp, offset: i64) -> bool {
    ranges
        .iter()
        .any(|(t, range)| t == tp && range.contains(&offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Anomaly;

    fn found(
        deleted: &[(i32, i64)],
        owed: &[(i32, Range<i64>)],
        reported: &[(i32, Range<i64>)],
    ) -> Vec<Anomaly> {
        let tp = |p: i32| Tp::new("t", p);
        let deleted: BTreeSet<(Tp, i64)> = deleted.iter().map(|(p, o)| (tp(*p), *o)).collect();
        let owed: Vec<_> = owed.iter().map(|(p, r)| (tp(*p), r.clone())).collect();
        let reported: Vec<_> = reported.iter().map(|(p, r)| (tp(*p), r.clone())).collect();
        let mut anomalies = Vec::new();
        check(
            &deleted,
            RetentionEvidence {
                deleted_while_owed: &owed,
                reported: &reported,
            },
            &mut |kind, detail| anomalies.push(Anomaly { kind, detail }),
        );
        anomalies
    }

    #[test]
    fn reported_or_never_owed_deletions_are_fine() {
        let deleted = [(0, 3), (0, 4), (1, 0)];
        assert!(found(&deleted, &[(0, 0..10)], &[(0, 2..5)]).is_empty());
        assert!(found(&deleted, &[(1, 5..9)], &[]).is_empty());
    }

    #[test]
    fn each_silent_run_of_offsets_is_one_anomaly() {
        let deleted = [(0, 3), (0, 4), (0, 5), (0, 8), (1, 0)];
        let anomalies = found(&deleted, &[(0, 0..10), (1, 0..1)], &[(0, 5..6)]);
        let details: Vec<_> = anomalies.iter().map(|a| a.detail.as_str()).collect();
        assert_eq!(details.len(), 3, "{details:?}");
        assert!(details[0].starts_with("t-0 offsets 3 to 4:"), "{details:?}");
        assert!(details[1].starts_with("t-0 offsets 8 to 8:"), "{details:?}");
        assert!(details[2].starts_with("t-1 offsets 0 to 0:"), "{details:?}");
        assert!(anomalies
            .iter()
            .all(|a| a.kind == AnomalyKind::DeletedUnreported));
    }
}
