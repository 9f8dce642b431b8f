//! What the crate's tests of planted bugs check of the kit: a seed catches the bug with an anomaly of
//! the kinds expected, shrunk to the faults that matter, and the saved regression catches it again.

use sluice_sim::kit::{Failure, SimTest, TestError};
use sluice_sim::oracle::AnomalyKind;

/// The first failing seed of `test` (which must have one): its shrunk run shows one of `kinds`, with at
/// most three faults, none more than the seed drew.
pub fn caught(test: &SimTest, kinds: &[AnomalyKind]) -> Failure {
    let failure = test
        .find_failure()
        .expect("the simulation runs")
        .expect("a seed of the test's catches it");
    println!("{failure}");
    assert!(
        failure
            .shrunk_report
            .anomalies
            .iter()
            .any(|a| kinds.contains(&a.kind)),
        "{failure}"
    );
    assert!(failure.shrunk.plan.len() <= 3, "{failure}");
    assert!(failure.shrunk.plan.len() <= failure.report.faults.len());
    failure
}

/// Saves `failure`'s shrunk plan in `test`'s regression file, and checks that replaying the file fails
/// again, on the failure's seed.
pub fn replayed(test: &SimTest, failure: &Failure) {
    test.save(&failure.shrunk).expect("the regression is saved");
    match test.replay_regressions() {
        Err(TestError::RegressionFails { seed, .. }) => assert_eq!(seed, failure.report.seed),
        other => panic!("the saved regression should fail again: {other:?}"),
    }
}
