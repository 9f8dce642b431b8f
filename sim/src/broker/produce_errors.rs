//! Retriable produce errors the harness switches on for a while: the broker answers a share of the
//! produce batches for some partitions with `NOT_LEADER_OR_FOLLOWER` (nothing appended, as while a
//! leader moves) or `REQUEST_TIMED_OUT` (appended but not replicated in time, as while a follower lags:
//! the batch stays, and the producer cannot tell).
//!
//! Which batches fail is decided by a hash of the request count and the partition, so a seed replays
//! exactly.

use sluice_core::hash::{fnv1a64, fnv1a64_extend};

use crate::protocol::{ErrorCode, Tp};

/// What the broker does to produce requests while the fault lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceErrors {
    pub topic: String,
    /// The partitions of `topic` it affects.
    pub partitions: Vec<i32>,
    /// [`ErrorCode::NotLeaderOrFollower`] or [`ErrorCode::RequestTimedOut`].
    pub error: ErrorCode,
    /// The share of their batches that fail, in percent.
    pub percent: u8,
}

/// What happens to one batch under the active fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Refuse it without appending.
    Refuse(ErrorCode),
    /// Append it, then answer with this error.
    AppendThenFail(ErrorCode),
}

/// The active fault, if any, and the count of produce requests that decides which batches it hits.
#[derive(Debug, Default)]
pub struct ProduceFaults {
    active: Option<ProduceErrors>,
    requests: u64,
}

impl ProduceFaults {
    pub fn start(&mut self, errors: ProduceErrors) {
        self.active = Some(errors);
    }

    pub fn stop(&mut self) {
        self.active = None;
    }

    /// Counts a produce request; call before judging its batches.
    pub fn next_request(&mut self) {
        self.requests += 1;
    }

    /// What to do with this request's batch for `tp`.
    pub fn verdict(&self, tp: &Tp) -> Verdict {
        let Some(errors) = &self.active else {
            return Verdict::Append;
        };
        if *tp.topic != *errors.topic || !errors.partitions.contains(&tp.partition) {
            return Verdict::Append;
        }
        let roll = fnv1a64_extend(
            fnv1a64(&self.requests.to_le_bytes()),
            &tp.partition.to_le_bytes(),
        ) % 100;
        if roll >= u64::from(errors.percent) {
            return Verdict::Append;
        }
        match errors.error {
            ErrorCode::RequestTimedOut => Verdict::AppendThenFail(errors.error),
            other => Verdict::Refuse(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_partitions_fail_and_only_while_active() {
        let mut faults = ProduceFaults::default();
        let hit = Tp::new("t", 1);
        let spared = Tp::new("t", 0);
        assert_eq!(faults.verdict(&hit), Verdict::Append);
        faults.start(ProduceErrors {
            topic: "t".into(),
            partitions: vec![1],
            error: ErrorCode::NotLeaderOrFollower,
            percent: 100,
        });
        faults.next_request();
        assert_eq!(
            faults.verdict(&hit),
            Verdict::Refuse(ErrorCode::NotLeaderOrFollower)
        );
        assert_eq!(faults.verdict(&spared), Verdict::Append);
        faults.stop();
        assert_eq!(faults.verdict(&hit), Verdict::Append);
    }

    #[test]
    fn a_share_of_requests_time_out_after_appending() {
        let mut faults = ProduceFaults::default();
        faults.start(ProduceErrors {
            topic: "t".into(),
            partitions: vec![0],
            error: ErrorCode::RequestTimedOut,
            percent: 50,
        });
        let failed = (0..1000)
            .filter(|_| {
                faults.next_request();
                faults.verdict(&Tp::new("t", 0)) != Verdict::Append
            })
            .count();
        assert!((400..600).contains(&failed), "{failed} of 1000 failed");
        assert!(matches!(
            (0..100)
                .map(|_| {
                    faults.next_request();
                    faults.verdict(&Tp::new("t", 0))
                })
                .find(|v| *v != Verdict::Append),
            Some(Verdict::AppendThenFail(ErrorCode::RequestTimedOut))
        ));
    }
}
