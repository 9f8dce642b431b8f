//! Records deleted by retention before a sink task read them. Kafka Connect goes on from the log start
//! without a word; Sluice says how many records were never delivered, and which.
//!
//! Two places show such a loss. When a partition is assigned, the committed offset (or the task's
//! rewind) may be before the partition's log start: the sink task seeks to the log start and says so.
//! While the task owns a partition, the offsets the consumer hands over may jump: its position fell
//! behind the log start and `auto.offset.reset` moved it on, which librdkafka does silently. A jump can
//! also be a transaction marker, an aborted transaction or a compacted record, so [`Skipped`] keeps each
//! jump until the partition's log start says which of its offsets retention deleted, and the sink task
//! commits no offset past a jump not yet explained: a crash after such a commit would leave the loss
//! unsaid.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::TopicPartition;

/// How often, at most, jumps are compared with the log start between commits.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often, at most, the positions of idle partitions are compared with the log start.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Offsets a sink task's consumer skipped over, until the log start explains them.
#[derive(Debug, Default)]
pub(super) struct Skipped {
    /// Per owned partition: where its next record is expected before the task has put any (the
    /// committed offset found at assignment).
    expected: BTreeMap<TopicPartition, i64>,
    /// Per owned partition: the offset ranges the consumer jumped over, oldest first.
    jumps: BTreeMap<TopicPartition, Vec<Range<i64>>>,
    /// Per owned partition: its position at the last commit.
    committed_at: BTreeMap<TopicPartition, i64>,
    last_check: Option<Instant>,
    last_idle_check: Option<Instant>,
    /// The next commit compares every position, idle or not.
    compare_all: bool,
}

/// Records of a partition deleted by retention before the sink task read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Loss {
    pub partition: TopicPartition,
    /// Their offsets.
    pub deleted: Range<i64>,
    /// Where the task reads on.
    pub next: i64,
}

impl Loss {
    /// Says so at ERROR, with the partition and the offsets as fields (`from`, and `to` exclusive).
    pub(super) fn report(&self, task: &str) {
        let Loss {
            partition,
            deleted,
            next,
        } = self;
        let lost = deleted.end - deleted.start;
        tracing::error!(
            task,
            %partition,
            lost,
            from = deleted.start,
            to = deleted.end,
            "{lost} records of {partition} (offsets {} to {}) were deleted by retention before this sink read them: they were never delivered; going on from offset {next}",
            deleted.start,
            deleted.end - 1
        );
    }
}

impl Skipped {
    /// The consumer's first record of `partition` is expected at `offset`.
    pub(super) fn expect(&mut self, partition: TopicPartition, offset: i64) {
        self.expected.insert(partition, offset);
    }

    /// Where the first record of `partition` is expected, if the task has put none yet.
    pub(super) fn expected(&self, partition: &TopicPartition) -> Option<i64> {
        self.expected.get(partition).copied()
    }

    /// The consumer jumped over `jump` in `partition`.
    pub(super) fn note(&mut self, partition: TopicPartition, jump: Range<i64>) {
        let jumps = self.jumps.entry(partition).or_default();
        match jumps.last_mut() {
            Some(last) if last.end == jump.start => last.end = jump.end,
            _ => jumps.push(jump),
        }
    }

    /// Whether `partition` has a jump its log start has not explained yet.
    pub(super) fn unexplained(&self, partition: &TopicPartition) -> bool {
        self.jumps.contains_key(partition)
    }

    /// Of `positions` (partitions about to be committed), those still where they were at the last commit,
    /// if their last comparison with the log start is old enough to make another (all of them, once
    /// asked to); remembers the positions for the next commit. Retention can pass an idle partition's
    /// position without a jump to show it: no record follows the deleted ones.
    pub(super) fn idle(
        &mut self,
        positions: &BTreeMap<TopicPartition, i64>,
    ) -> Vec<TopicPartition> {
        let all = std::mem::take(&mut self.compare_all);
        let idle: Vec<TopicPartition> = positions
            .iter()
            .filter(|(partition, position)| {
                self.committed_at.insert((*partition).clone(), **position) == Some(**position)
                    || all
            })
            .map(|(partition, _)| partition.clone())
            .collect();
        let due = all
            || self
                .last_idle_check
                .is_none_or(|at| at.elapsed() >= IDLE_CHECK_INTERVAL);
        if idle.is_empty() || !due {
            return Vec::new();
        }
        self.last_idle_check = Some(Instant::now());
        idle
    }

    /// Makes the next commit compare every position with the log start, idle or not, however recent
    /// the last comparison: the last commit before a stop, after which nobody may read the partitions
    /// for a while.
    pub(super) fn compare_all_at_next_commit(&mut self) {
        self.compare_all = true;
    }

    /// Whether jumps wait and the last comparison is old enough to make another.
    pub(super) fn due(&self) -> bool {
        !self.jumps.is_empty()
            && self
                .last_check
                .is_none_or(|at| at.elapsed() >= CHECK_INTERVAL)
    }

    /// The partitions whose jumps wait for their log start; counts as a comparison made now.
    pub(super) fn start_check(&mut self) -> Vec<TopicPartition> {
        self.last_check = Some(Instant::now());
        self.jumps.keys().cloned().collect()
    }

    /// Explains the jumps of the partitions in `starts` (their log start offsets): the part of each
    /// jump below the log start was deleted by retention; the rest was never records this task could
    /// read.
    pub(super) fn explain(&mut self, starts: &BTreeMap<TopicPartition, i64>) -> Vec<Loss> {
        let mut losses = Vec::new();
        for (partition, &start) in starts {
            let Some(jumps) = self.jumps.remove(partition) else {
                continue;
            };
            losses.extend(jumps.into_iter().filter_map(|jump| {
                let deleted = jump.start..jump.end.min(start);
                (!deleted.is_empty()).then(|| Loss {
                    partition: partition.clone(),
                    deleted,
                    next: jump.end,
                })
            }));
        }
        losses
    }

    /// Forgets a partition the task gave up.
    pub(super) fn forget(&mut self, partition: &TopicPartition) {
        self.expected.remove(partition);
        self.jumps.remove(partition);
        self.committed_at.remove(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    #[test]
    fn only_the_part_of_a_jump_below_the_log_start_was_deleted() {
        let mut skipped = Skipped::default();
        skipped.note(tp(0), 10..20);
        skipped.note(tp(0), 30..31);
        skipped.note(tp(1), 5..6);
        assert!(skipped.unexplained(&tp(0)) && skipped.unexplained(&tp(1)));
        let losses = skipped.explain(&BTreeMap::from([(tp(0), 15), (tp(1), 5)]));
        assert_eq!(
            losses,
            vec![Loss {
                partition: tp(0),
                deleted: 10..15,
                next: 20
            }]
        );
        assert!(!skipped.unexplained(&tp(0)) && !skipped.unexplained(&tp(1)));
    }

    #[test]
    fn adjacent_jumps_make_one_and_unanswered_partitions_wait() {
        let mut skipped = Skipped::default();
        skipped.note(tp(0), 10..20);
        skipped.note(tp(0), 20..25);
        skipped.note(tp(1), 1..2);
        let losses = skipped.explain(&BTreeMap::from([(tp(0), 100)]));
        assert_eq!(
            losses,
            vec![Loss {
                partition: tp(0),
                deleted: 10..25,
                next: 25
            }]
        );
        assert_eq!(skipped.start_check(), vec![tp(1)]);
        assert!(!skipped.due(), "just compared");
    }

    #[test]
    fn a_forgotten_partition_has_nothing_to_explain() {
        let mut skipped = Skipped::default();
        skipped.expect(tp(0), 7);
        skipped.note(tp(0), 7..9);
        let at_9 = BTreeMap::from([(tp(0), 9)]);
        assert!(skipped.idle(&at_9).is_empty());
        assert!(skipped.due());
        skipped.forget(&tp(0));
        assert!(!skipped.due() && skipped.expected(&tp(0)).is_none());
        assert!(
            skipped.idle(&at_9).is_empty(),
            "forgotten, so not idle since a commit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_idle_since_the_last_commit_are_compared_at_most_every_few_seconds() {
        let mut skipped = Skipped::default();
        let positions = |p0, p1| BTreeMap::from([(tp(0), p0), (tp(1), p1)]);
        assert!(
            skipped.idle(&positions(5, 5)).is_empty(),
            "no commit before"
        );
        assert_eq!(skipped.idle(&positions(5, 6)), vec![tp(0)]);
        assert!(
            skipped.idle(&positions(5, 6)).is_empty(),
            "compared a moment ago"
        );
        tokio::time::advance(IDLE_CHECK_INTERVAL).await;
        assert_eq!(skipped.idle(&positions(5, 6)), vec![tp(0), tp(1)]);
        tokio::time::advance(IDLE_CHECK_INTERVAL).await;
        assert!(skipped.idle(&positions(6, 7)).is_empty(), "both moved");
        skipped.compare_all_at_next_commit();
        assert_eq!(
            skipped.idle(&positions(7, 8)),
            vec![tp(0), tp(1)],
            "moved, but all at once"
        );
        assert!(skipped.idle(&positions(7, 8)).is_empty(), "then as before");
    }
}
