//! Shrinking a failing fault plan: the seed's other choices stay, and the plan loses faults (delta
//! debugging: halves, then quarters, down to single faults), then its faults get shorter and strike
//! earlier, as long as the run still fails in the same way (an anomaly of a kind the first failure had).
//! What is left is the handful of faults that matter.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::faults::{Fault, Scheduled};
use crate::oracle::AnomalyKind;
use crate::report::Report;

/// How a run failed: the kinds of anomaly it found.
pub(crate) fn kinds(report: &Report) -> BTreeSet<AnomalyKind> {
    report.anomalies.iter().map(|a| a.kind).collect()
}

/// Whether `report` fails in the way `first` did.
pub(crate) fn same_failure(first: &BTreeSet<AnomalyKind>, report: &Report) -> bool {
    report.anomalies.iter().any(|a| first.contains(&a.kind))
}

/// The smallest plan found that still fails: `fails` runs a plan and says whether it does.
pub(crate) fn shrink(
    plan: Vec<Scheduled>,
    fails: &mut dyn FnMut(&[Scheduled]) -> bool,
) -> Vec<Scheduled> {
    let mut plan = drop_faults(plan, fails);
    // Shorter, then earlier, one fault at a time, each as far as it still fails.
    for step in [shorter, earlier] {
        for index in 0..plan.len() {
            while let Some(smaller) = step(&plan[index]) {
                let mut tried = plan.clone();
                tried[index] = smaller;
                if !fails(&tried) {
                    break;
                }
                plan = tried;
            }
        }
    }
    plan
}

/// Delta debugging over the plan's faults: removes chunks of decreasing size while the run still fails.
fn drop_faults(
    mut plan: Vec<Scheduled>,
    fails: &mut dyn FnMut(&[Scheduled]) -> bool,
) -> Vec<Scheduled> {
    let mut chunk = plan.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < plan.len() && !plan.is_empty() {
            let end = (start + chunk).min(plan.len());
            let mut without: Vec<Scheduled> = plan[..start].to_vec();
            without.extend_from_slice(&plan[end..]);
            if fails(&without) {
                plan = without;
            } else {
                start = end;
            }
        }
        if chunk == 1 {
            return plan;
        }
        chunk = chunk.div_ceil(2);
    }
}

/// The fault lasting half as long (down to a second); None if it lasts no longer, or holds nothing.
fn shorter(scheduled: &Scheduled) -> Option<Scheduled> {
    let mut fault = scheduled.fault.clone();
    let span = match &mut fault {
        Fault::CrashWorker { down: span, .. }
        | Fault::StopWorker { away: span, .. }
        | Fault::HoldNetwork { duration: span, .. }
        | Fault::PartitionNetwork { duration: span, .. }
        | Fault::StallFlush { duration: span }
        | Fault::StallPut { duration: span }
        | Fault::FailPoll { duration: span, .. }
        | Fault::TakeOver { duration: span, .. }
        | Fault::ProduceErrors { duration: span, .. }
        | Fault::CrashExternal { down: span }
        | Fault::HoldExternal { duration: span }
        | Fault::SlowExternal { duration: span, .. }
        | Fault::ErrorsExternal { duration: span }
        | Fault::Operate { duration: span, .. }
        | Fault::Latency { duration: span, .. } => span,
        _ => return None,
    };
    if *span <= FLOOR {
        return None;
    }
    *span = whole_millis(*span / 2).max(FLOOR);
    Some(Scheduled {
        at: scheduled.at,
        fault,
    })
}

/// The fault striking earlier: half as long after the first seconds the group needs to form.
fn earlier(scheduled: &Scheduled) -> Option<Scheduled> {
    (scheduled.at > FORMING + FLOOR).then(|| Scheduled {
        at: whole_millis(FORMING + (scheduled.at - FORMING) / 2),
        fault: scheduled.fault.clone(),
    })
}

/// Plans are saved in whole milliseconds: a shrunk plan must replay the same from its regression file.
fn whole_millis(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// The shortest span and earliest step shrinking tries.
const FLOOR: Duration = Duration::from_secs(1);
/// Faults strike after the group had this long to form (as the seed's plans do).
const FORMING: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(at: u64, worker: usize) -> Scheduled {
        Scheduled {
            at: Duration::from_millis(at * 1000 + 1),
            fault: Fault::CrashWorker {
                worker,
                down: Duration::from_secs(8),
            },
        }
    }

    #[test]
    fn only_the_faults_that_make_it_fail_are_kept() {
        let plan: Vec<Scheduled> = (0..9).map(|i| crash(10 + i, i as usize)).collect();
        let mut runs = 0;
        // It fails whenever workers 3 and 7 both crash.
        let shrunk = drop_faults(plan, &mut |plan| {
            runs += 1;
            let workers: Vec<usize> = plan.iter().flat_map(|s| s.fault.workers()).collect();
            workers.contains(&3) && workers.contains(&7)
        });
        let workers: Vec<usize> = shrunk.iter().flat_map(|s| s.fault.workers()).collect();
        assert_eq!(workers, vec![3, 7]);
        assert!(runs < 30, "{runs} runs");
    }

    #[test]
    fn faults_get_shorter_and_earlier_while_it_still_fails() {
        // It fails while the crash lasts at least 2 s and strikes after 10 s.
        let shrunk = shrink(vec![crash(40, 0)], &mut |plan| {
            plan.iter().any(|s| match s.fault {
                Fault::CrashWorker { down, .. } => {
                    down >= Duration::from_secs(2) && s.at >= Duration::from_secs(10)
                }
                _ => false,
            })
        });
        assert_eq!(shrunk.len(), 1);
        let Fault::CrashWorker { down, .. } = shrunk[0].fault else {
            panic!("{shrunk:?}");
        };
        assert_eq!(down, Duration::from_secs(2));
        assert!(
            shrunk[0].at >= Duration::from_secs(10) && shrunk[0].at < Duration::from_secs(20),
            "{:?}",
            shrunk[0].at
        );
        // In whole milliseconds, as the regression file keeps it.
        assert_eq!(shrunk[0].at.subsec_nanos() % 1_000_000, 0);
    }
}
