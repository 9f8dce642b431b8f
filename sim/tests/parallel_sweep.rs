//! A kit test's seeds swept over several processes (`SLUICE_JOBS`, `SimTest::jobs`): each child process
//! is the test binary again, running one shard of the seeds; the parent takes the results in seed order.
//! The sweep must count what the same seeds count in one process, and a planted bug must be found at
//! the same seed.

use sluice_sim::faults::FaultKind;
use sluice_sim::kit::SimTest;

/// Crashes and stops, so that the seeds differ in what they draw and reach.
const FAULTS: &[FaultKind] = &[FaultKind::CrashWorker, FaultKind::StopWorker];

#[test]
fn seeds_swept_over_two_processes_count_what_one_process_counts() {
    let test = |name| SimTest::runtime(name).faults(FAULTS, 2).seeds(1..=6);
    let parallel = test("sweep-in-two")
        .jobs(2)
        .run()
        .expect("the sweep in two processes");
    let alone = test("sweep-in-one")
        .jobs(1)
        .run()
        .expect("the sweep in one process");
    assert_eq!((parallel.processes, alone.processes), (2, 1));
    assert_eq!(parallel.seeds, 6);
    assert_eq!(parallel.events, alone.events);
    assert_eq!(parallel.faults, alone.faults);
    assert!(
        parallel.faults.contains_key("crash-worker"),
        "the seeds drew no crash: {:?}",
        parallel.faults
    );
}

#[test]
fn a_planted_bug_is_found_at_the_same_seed_in_two_processes() {
    let test = |name| {
        SimTest::runtime(name)
            .with_scenario(|scenario| scenario.source_bug = "skip-records")
            .seeds(1..=6)
    };
    let parallel = test("planted-in-two").jobs(2).find_failure();
    let alone = test("planted-in-one").jobs(1).find_failure();
    let parallel = parallel
        .expect("the sweep in two processes")
        .expect("a failure in two processes");
    let alone = alone
        .expect("the sweep in one process")
        .expect("a failure in one process");
    assert_eq!(parallel.report.seed, alone.report.seed);
    assert_eq!(parallel.report.trace_hash, alone.report.trace_hash);
    assert!(!parallel.report.passed());
}
