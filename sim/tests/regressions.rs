//! Seeds that once found a real bug, kept so the bug stays fixed. Each entry says what the seed found; the
//! run must now pass the oracle (its schedule may drift as the code changes, which is why these are kept
//! apart from the snapshotted seeds).

use sluice_sim::{run, Scenario};

fn passes(scenario: &str, seed: u64) {
    let report = run(&Scenario::named(scenario).expect("a known scenario"), seed)
        .expect("the simulation runs");
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
}

/// A cooperative rebalance took one partition from a sink task, and the flush before its commit failed:
/// the task had dropped its whole buffer, but the runtime rewound only the revoked partition, so records of
/// the partitions it kept were never delivered again (lost, and committed past what was durable).
#[test]
fn a_failed_flush_during_a_cooperative_revocation_rewinds_every_partition() {
    passes("crash-restart-storm", 51);
    passes("crash-restart-storm", 22);
}

/// A cooperative member's join completed while the runtime was committing before a clean stop, and the
/// simulated client committed with the generation it had before the join, which was refused: the flushed
/// records were delivered again. Like librdkafka, the client now adopts a completed join's generation at
/// once. (With the assignor and guarantee pinned: a seeded `run` promises exactly once only with eager
/// rebalances.)
#[test]
fn a_commit_after_a_completed_cooperative_join_uses_the_new_generation() {
    use rand::SeedableRng;
    use sluice_sim::{faults, run_planned, Guarantee};

    let scenario = Scenario {
        assignors: &["cooperative-sticky"],
        guarantee: Guarantee::ExactlyOnce,
        ..Scenario::named("sink-group-rebalance").expect("a known scenario")
    };
    let plan = faults::plan(&scenario, &mut rand::rngs::StdRng::seed_from_u64(54));
    let report = run_planned(&scenario, 54, plan).expect("the simulation runs");
    assert!(
        report.passed(),
        "{}\n{}",
        report.summary(),
        report.to_yaml()
    );
}
