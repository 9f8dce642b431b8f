//! `sluice sim` from the binary: it names its scenarios, prints one line per seed with the trace hash,
//! replays a seed exactly, and when a seed finds an anomaly prints the command that replays it and exits
//! non-zero. Bad arguments are errors that name what is wrong.

use std::process::{Command, Output};

use sluice_sim::builtin;
use sluice_sim::coverage::Event;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn sim(args: &[&str]) -> Output {
    Command::new(SLUICE)
        .arg("sim")
        .args(args)
        .output()
        .expect("run sluice sim")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_names_every_scenario() {
    let output = sim(&["--list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for name in [
        "file-to-file",
        "pipeline",
        "sink-group-rebalance",
        "slow-flush",
        "dead-letters",
        "crash-restart-storm",
        "exactly-once-source",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[test]
fn a_seed_range_prints_a_line_per_seed_and_replays_exactly() {
    let range = sim(&["--scenario", "crash-restart-storm", "--seeds", "3..4"]);
    assert!(range.status.success(), "{}", stderr(&range));
    let lines: Vec<String> = stdout(&range).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("scenario=crash-restart-storm seed=3 ok"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("scenario=crash-restart-storm seed=4 ok"),
        "{}",
        lines[1]
    );
    assert!(lines.iter().all(|l| l.contains(" trace=")), "{lines:?}");

    let replay = sim(&["--scenario", "crash-restart-storm", "--seed", "4"]);
    assert!(replay.status.success(), "{}", stderr(&replay));
    assert_eq!(
        stdout(&replay).trim(),
        lines[1],
        "seed 4 replays differently alone"
    );
}

#[test]
fn a_sweep_over_processes_prints_what_one_process_prints_in_seed_order() {
    let sweep = |jobs: &str, more: &[&str]| {
        let mut args = vec![
            "--scenario",
            "crash-restart-storm",
            "--seeds",
            "1..6",
            "--jobs",
            jobs,
        ];
        args.extend_from_slice(more);
        sim(&args)
    };
    let alone = sweep("1", &[]);
    let three = sweep("3", &[]);
    assert!(three.status.success(), "{}", stderr(&three));
    assert_eq!(stdout(&three), stdout(&alone));
    assert_eq!(stdout(&three).lines().count(), 6, "{}", stdout(&three));
    assert!(
        stderr(&three).contains("6 seed(s) run in 3 processes"),
        "{}",
        stderr(&three)
    );

    // With --fail-fast, the sweep stops at the first seed that finds an anomaly, as in one process.
    let planted = ["--sink-bug", "write-twice", "--fail-fast"];
    let alone = sweep("1", &planted);
    let two = sweep("2", &planted);
    assert_eq!(two.status.code(), Some(1), "{}", stderr(&two));
    assert_eq!(stdout(&two), stdout(&alone));
    let text = stdout(&two);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("seed=1 ANOMALY"), "{text}");
    assert!(
        text.lines().all(|line| !line.contains("seed=2 ")),
        "went on past the failure:\n{text}"
    );
    assert!(
        stderr(&two).contains("1 seed(s) found anomalies: [1]"),
        "{}",
        stderr(&two)
    );
}

#[test]
fn an_anomaly_prints_the_replay_command_and_fails() {
    let output = sim(&[
        "--scenario",
        "pipeline",
        "--seed",
        "2",
        "--sink-bug",
        "write-twice",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("seed=2 ANOMALY duplicate"), "{text}");
    assert!(
        text.contains(
            "replay: sluice sim --scenario pipeline --seed 2 --sink-bug write-twice --report"
        ),
        "{text}"
    );
    assert!(
        stderr(&output).contains("1 seed(s) found anomalies: [2]"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_arguments_name_what_is_wrong() {
    let unknown = sim(&["--scenario", "no-such-thing"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("unknown scenario \"no-such-thing\""),
        "{}",
        stderr(&unknown)
    );
    assert!(
        stderr(&unknown).contains("file-to-file"),
        "{}",
        stderr(&unknown)
    );

    let backwards = sim(&["--scenario", "pipeline", "--seeds", "9..3"]);
    assert!(!backwards.status.success());
    assert!(
        stderr(&backwards).contains("9..3"),
        "{}",
        stderr(&backwards)
    );

    let no_jobs = sim(&["--scenario", "pipeline", "--seeds", "1..3", "--jobs", "0"]);
    assert!(!no_jobs.status.success());
    assert!(stderr(&no_jobs).contains("--jobs"), "{}", stderr(&no_jobs));

    let unused_bug = sim(&["--scenario", "file-to-file", "--sink-bug", "write-twice"]);
    assert_eq!(unused_bug.status.code(), Some(1));
    assert!(
        stderr(&unused_bug).contains("does not run"),
        "{}",
        stderr(&unused_bug)
    );

    let missing = sim(&[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("--scenario"),
        "{}",
        stderr(&missing)
    );
    for output in [&unknown, &backwards, &no_jobs, &unused_bug, &missing] {
        assert!(!stderr(output).contains("panicked"), "{}", stderr(output));
    }
}

#[test]
fn coverage_counts_the_seeds_that_reached_each_event() {
    let output = sim(&[
        "--scenario",
        "crash-restart-storm",
        "--seeds",
        "6..7",
        "--coverage",
        "--report",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let (runs, summary) = text
        .split_once("coverage: seeds that reached each event, of 2")
        .unwrap_or_else(|| panic!("no coverage summary in:\n{text}"));
    let counts: Vec<(bool, &str, usize)> = summary
        .lines()
        .skip(1)
        .map(|line| {
            let headline = line.starts_with('*');
            let mut words = line[1..].split_whitespace();
            let event = words.next().expect("an event name");
            let count = words.next().and_then(|n| n.parse().ok()).expect("a count");
            (headline, event, count)
        })
        .collect();
    assert_eq!(counts.len(), Event::ALL.len(), "{summary}");
    for (_, event, count) in &counts {
        // Each seed's report lists the events it reached under `coverage:`, indented by two spaces.
        let in_reports = runs.matches(&format!("\n  {event}: ")).count();
        assert_eq!(*count, in_reports, "{event}:\n{text}");
    }
    let headline: Vec<&str> = counts
        .iter()
        .filter(|(headline, _, _)| *headline)
        .map(|(_, event, _)| *event)
        .collect();
    let scenario = builtin::scenario("crash-restart-storm").expect("a known scenario");
    // The summary lists events in their declaration order.
    let mut expected = scenario.required().to_vec();
    expected.sort();
    let expected: Vec<&str> = expected.iter().map(|e| e.as_str()).collect();
    assert_eq!(headline, expected);
    // Seed 6 runs the exactly-once sink through crashes: its rewinds were applied.
    assert!(counts.contains(&(true, "rewind-applied", 1)), "{summary}");
}

#[test]
fn a_sink_mode_can_be_chosen_and_is_reported() {
    let output = sim(&[
        "--scenario",
        "crash-restart-storm",
        "--seed",
        "4",
        "--sink-mode",
        "offsets-in-destination",
        "--report",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(" sink=offsets-in-destination "), "{text}");
    assert!(text.contains("\nguarantee: exactly-once-sink\n"), "{text}");
    // The same seed in write-in-put mode writes 99 records twice after its crash; this mode none.
    assert!(text.contains("  sink_duplicates: 0\n"), "{text}");
}

#[test]
fn what_the_source_task_reads_can_be_chosen_and_is_reported() {
    let run = |reads: &str| {
        let output = sim(&[
            "--scenario",
            "pipeline",
            "--seed",
            "1",
            "--reads",
            reads,
            "--report",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let nothing = run("nothing");
    assert!(nothing.contains(" reads=nothing "), "{nothing}");
    assert!(
        nothing.contains("\ncommit_record_reads: nothing\n"),
        "{nothing}"
    );
    // The runtime never calls a `commit_record` that reads nothing, yet commits past the poison records
    // it skipped: every stream's offset reaches its end.
    assert!(!nothing.contains("record-skipped"), "{nothing}");
    assert!(nothing.contains("  source_committed: 10000\n"), "{nothing}");
    let everything = run("everything");
    assert!(!everything.contains("reads="), "{everything}");
    assert!(everything.contains("record-skipped"), "{everything}");
}

#[test]
fn a_worker_stopped_just_after_it_lost_the_brokers_stops_with_records_untold() {
    let output = sim(&["--scenario", "operator-calls", "--seed", "5", "--report"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // The seed cuts a stopping worker off from the brokers, and its source task stops with records
    // Kafka had not acknowledged; nothing is lost.
    assert!(text.contains("\n  cut_off: true\n"), "{text}");
    assert!(text.contains("\n  source-stopped-untold: "), "{text}");
}
