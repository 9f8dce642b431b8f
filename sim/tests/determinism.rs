//! The same seed gives the same run: every scenario, run twice per seed, passes and yields identical reports
//! and trace hashes (the trace covers every fault, group change, commit and destination write, with
//! simulated times).

use sluice_sim::builtin;

#[test]
fn each_seed_replays_exactly() {
    for scenario in builtin::scenarios() {
        for seed in [7, 8] {
            let first = scenario.run_seed(seed).expect("the simulation runs");
            let second = scenario.run_seed(seed).expect("the simulation runs");
            // A replay of a failing run would compare two wrong answers.
            assert!(first.passed(), "{}", first.summary());
            assert_eq!(
                first.trace_hash,
                second.trace_hash,
                "{} seed {seed} is not deterministic",
                scenario.name()
            );
            let strip = |yaml: String| {
                yaml.lines()
                    .filter(|l| !l.starts_with("wall_ms"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(first.to_yaml()), strip(second.to_yaml()));
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let scenario = builtin::scenario("crash-restart-storm").expect("a known scenario");
    let hashes: std::collections::BTreeSet<String> = (1..=4)
        .map(|seed| {
            scenario
                .run_seed(seed)
                .expect("the simulation runs")
                .trace_hash
        })
        .collect();
    assert_eq!(
        hashes.len(),
        4,
        "four seeds should give four different traces"
    );
}
