//! The simulated producer under produce errors, in whole runs: retried batches, acknowledgements out of
//! the order records were sent, deliveries that fail for good, the task they fail, and the operator's
//! restart of its worker; nothing may be lost or committed before Kafka has it.

use std::time::Duration;

use sluice_sim::builtin;
use sluice_sim::coverage::Event;
use sluice_sim::faults::{Fault, ProduceError, Scheduled};

fn produce_errors(error: ProduceError, percent: u8, seconds: u64) -> Vec<Scheduled> {
    vec![Scheduled {
        at: Duration::from_secs(10),
        fault: Fault::ProduceErrors {
            error,
            partitions: vec![2, 3, 4],
            percent,
            duration: Duration::from_secs(seconds),
        },
    }]
}

/// Refusals that outlast `delivery.timeout.ms` fail deliveries for good; the source task fails, the
/// operator restarts its worker, and the task resumes from its committed offsets: nothing is lost.
#[test]
fn deliveries_that_fail_for_good_fail_the_task_and_the_restart_loses_nothing() {
    let scenario = builtin::scenario("crash-restart-storm").expect("a known scenario");
    let plan = produce_errors(
        ProduceError::NotLeaderOrFollower,
        100,
        scenario.scenario().delivery_timeout.as_secs() * 2,
    );
    let report = scenario.run_exact(1, plan).expect("the simulation runs");
    assert!(report.passed(), "{}", report.to_yaml());
    // Refused without being appended: Kafka does not hold these records, so an offset committed past
    // them would lose them.
    assert!(
        report
            .coverage
            .get(&Event::DeliveryFailedUnstored)
            .copied()
            .unwrap_or(0)
            > 0,
        "no delivery failed with its records unstored: {:?}",
        report.coverage
    );
    assert!(
        report
            .trace
            .iter()
            .any(|line| line.ends_with("operator restarts worker-0: a source task failed")),
        "the failed task's worker was not restarted"
    );
}

/// A share of batches answered `REQUEST_TIMED_OUT` after they were appended, for less than
/// `delivery.timeout.ms`: the retries are recognized, later batches overtake failed ones, and every
/// record arrives once (the run is held to exactly once).
#[test]
fn batches_retried_after_request_timeouts_are_appended_once() {
    let scenario = builtin::scenario("crash-restart-storm")
        .expect("a known scenario")
        .with_scenario(|s| {
            s.guarantee = sluice_sim::Guarantee::ExactlyOnce;
            s.assignors = &["range"];
        });
    let plan = produce_errors(ProduceError::RequestTimedOut, 50, 5);
    let report = scenario.run_exact(1, plan).expect("the simulation runs");
    assert!(report.passed(), "{}", report.to_yaml());
    assert_eq!(
        (
            report.records.kafka_duplicates,
            report.records.sink_duplicates
        ),
        (0, 0),
        "{}",
        report.summary()
    );
    assert!(
        report
            .coverage
            .get(&Event::OutOfOrderAcknowledgement)
            .copied()
            .unwrap_or(0)
            > 0,
        "no acknowledgement overtook another: {:?}",
        report.coverage
    );
    assert_eq!(report.coverage.get(&Event::DeliveryFailed), None);
}
