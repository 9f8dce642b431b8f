//! The benchmarks' history: every run appends one JSON line (which benchmark, with what parameters, on
//! which commit, when, on how many cores, and its figures) to a file kept in the repository
//! (`fixtures/bench-history.jsonl` by default), so that the README's figures come from a file. Each run
//! is compared with the last run of the same benchmark with the same parameters, and a figure that
//! moved the wrong way by more than 20% is printed as a regression. A speed (records or seeds per
//! second) is compared after scaling the earlier run's by how fast the machine ran a fixed piece of
//! work then and now ([`calibration`](super::calibration)): a slower machine is not a regression.
//! Ratios and memory are compared as they are.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{calibration, BenchError};

/// Where the history goes unless `--history` says: the repository's file, when run from its top.
pub const DEFAULT_FILE: &str = "fixtures/bench-history.jsonl";

/// How far a figure may move the wrong way before it is called a regression.
const REGRESSION: f64 = 0.20;

/// `--history` and `--no-history`, shared by every benchmark.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Append this run's figures to FILE (JSON lines) and compare them with the last run's. Default:
    /// fixtures/bench-history.jsonl, if the current directory holds fixtures/ (the repository's top).
    #[arg(long, value_name = "FILE", global = true)]
    history: Option<PathBuf>,
    /// Do not append to the history (nor compare with it).
    #[arg(long, conflicts_with = "history", global = true)]
    no_history: bool,
}

impl HistoryArgs {
    /// The file to append to, if any.
    fn file(&self) -> Option<PathBuf> {
        if self.no_history {
            return None;
        }
        if let Some(file) = &self.history {
            return Some(file.clone());
        }
        let default = PathBuf::from(DEFAULT_FILE);
        default
            .parent()
            .is_some_and(Path::is_dir)
            .then_some(default)
    }
}

/// Whether a larger value of a figure is better (a ratio, a rate) or worse (memory, time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub value: f64,
    pub better: Better,
    /// A speed on this machine, which moves with the machine's own speed (a ratio or a memory figure
    /// does not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub machine_bound: bool,
}

/// One run of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `file`, `jdbc`, `sim`.
    pub bench: String,
    /// What the run was asked for (`lines=1000000`): runs compare only with equal parameters.
    pub params: BTreeMap<String, String>,
    /// `git rev-parse HEAD` where it ran, `+dirty` if the work tree had changes.
    pub commit: String,
    /// Seconds since the Unix epoch.
    pub unix_time: u64,
    pub cores: usize,
    /// Units per second of the calibration's fixed work, timed as the run began; absent from entries
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_speed: Option<f64>,
    pub figures: BTreeMap<String, Figure>,
}

impl Entry {
    /// A run of `bench` now, on this commit and machine, with no figures yet; times the calibration.
    pub fn new(bench: &str, params: &[(&str, String)]) -> Entry {
        let machine_speed = calibration::machine_speed();
        println!("machine: {machine_speed:.1} calibration units per second");
        Entry {
            bench: bench.to_owned(),
            params: params
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            commit: commit(),
            unix_time: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            machine_speed: Some(machine_speed),
            figures: BTreeMap::new(),
        }
    }

    /// A figure that does not move with the machine's speed: a ratio, a memory peak.
    pub fn figure(&mut self, name: impl Into<String>, value: f64, better: Better) {
        self.figures.insert(
            name.into(),
            Figure {
                value,
                better,
                machine_bound: false,
            },
        );
    }

    /// A speed on this machine (higher is better): compared with an earlier run's after scaling.
    pub fn speed(&mut self, name: impl Into<String>, value: f64) {
        self.figures.insert(
            name.into(),
            Figure {
                value,
                better: Better::Higher,
                machine_bound: true,
            },
        );
    }

    /// How fast this run's machine was against `before`'s (1.25: a quarter faster now), when both
    /// were timed.
    fn machine_against(&self, before: &Entry) -> Option<f64> {
        match (self.machine_speed, before.machine_speed) {
            (Some(now), Some(then)) if now > 0.0 && then > 0.0 => Some(now / then),
            _ => None,
        }
    }

    /// The figures that moved the wrong way by more than 20% since `before`, described; a speed is
    /// held against the earlier one scaled to this run's machine.
    fn regressions_since(&self, before: &Entry) -> Vec<String> {
        let machine = self.machine_against(before);
        self.figures
            .iter()
            .filter_map(|(name, now)| {
                let then = before.figures.get(name)?;
                let scale = machine.filter(|_| now.machine_bound);
                let expected = then.value * scale.unwrap_or(1.0);
                let worse = match now.better {
                    Better::Higher => now.value < expected * (1.0 - REGRESSION),
                    Better::Lower => now.value > expected * (1.0 + REGRESSION),
                };
                worse.then(|| match scale {
                    Some(scale) => format!(
                        "{name}: {:.3} against {:.3} on {} ({expected:.3} on this machine, which runs the calibration at {:.2}x of that run's)",
                        now.value, then.value, before.commit, scale
                    ),
                    None => format!(
                        "{name}: {:.3} against {:.3} on {}",
                        now.value, then.value, before.commit
                    ),
                })
            })
            .collect()
    }
}

/// Appends `entry` to the history `args` names, and prints how it compares with the last run of the
/// same benchmark with the same parameters.
pub fn record(args: &HistoryArgs, entry: &Entry) -> Result<(), BenchError> {
    let Some(file) = args.file() else {
        if args.no_history {
            println!("history: not written (--no-history)");
        } else {
            println!("history: not written (no {DEFAULT_FILE} here; --history FILE names one)");
        }
        return Ok(());
    };
    let last = last_like(&file, entry)?;
    let mut line = serde_json::to_string(entry)
        .map_err(|e| BenchError::Failed(format!("the history entry: {e}")))?;
    line.push('\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut out| out.write_all(line.as_bytes()))
        .map_err(|e| BenchError::Failed(format!("cannot append to {}: {e}", file.display())))?;
    println!("history: appended to {}", file.display());
    match last {
        None => println!("history: no earlier run with these parameters to compare with"),
        Some(before) => {
            if let Some(machine) = entry.machine_against(&before) {
                println!(
                    "history: this machine runs the calibration at {machine:.2}x of the speed it had for {}; speeds are compared at that scale",
                    before.commit
                );
            }
            let regressions = entry.regressions_since(&before);
            if regressions.is_empty() {
                println!(
                    "history: no figure moved the wrong way by more than {:.0}% since {}",
                    REGRESSION * 100.0,
                    before.commit
                );
            }
            for regression in regressions {
                println!(
                    "history: REGRESSION of more than {:.0}%: {regression}",
                    REGRESSION * 100.0
                );
            }
        }
    }
    Ok(())
}

/// Says whether a run met its targets: `Ok` if none was `missed`, else an error naming them.
pub fn verdict(missed: &[impl AsRef<str>]) -> Result<(), BenchError> {
    if missed.is_empty() {
        println!("all targets met");
        return Ok(());
    }
    let names: Vec<&str> = missed.iter().map(AsRef::as_ref).collect();
    Err(BenchError::Failed(format!(
        "targets missed: {}",
        names.join(", ")
    )))
}

/// The last entry in `file` of the same benchmark with the same parameters.
fn last_like(file: &Path, entry: &Entry) -> Result<Option<Entry>, BenchError> {
    let read = match std::fs::File::open(file) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BenchError::Failed(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    let mut last = None;
    for (number, line) in BufReader::new(read).lines().enumerate() {
        let line =
            line.map_err(|e| BenchError::Failed(format!("cannot read {}: {e}", file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        let earlier: Entry = serde_json::from_str(&line).map_err(|e| {
            BenchError::Failed(format!(
                "{} line {}: not a history entry: {e}",
                file.display(),
                number + 1
            ))
        })?;
        if earlier.bench == entry.bench && earlier.params == entry.params {
            last = Some(earlier);
        }
    }
    Ok(last)
}

/// The commit the benchmark runs on, `+dirty` if the work tree has changes; `unknown` outside a
/// git work tree.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head}+dirty"),
            _ => head,
        },
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run on `commit`, without the calibration's half second.
    fn run(commit: &str, ratio: f64, rss: f64) -> Entry {
        let mut entry = Entry {
            bench: "file".into(),
            params: BTreeMap::from([("lines".to_owned(), "1000".to_owned())]),
            commit: commit.to_owned(),
            unix_time: 0,
            cores: 2,
            machine_speed: None,
            figures: BTreeMap::new(),
        };
        entry.figure("source_ratio", ratio, Better::Higher);
        entry.figure("peak_rss_mb", rss, Better::Lower);
        entry
    }

    /// A run on a machine that did `machine` calibration units per second, at `rate` lines per second
    /// with a source ratio of `ratio`.
    fn timed(commit: &str, machine: Option<f64>, rate: f64, ratio: f64) -> Entry {
        let mut entry = run(commit, ratio, 30.0);
        entry.machine_speed = machine;
        entry.speed("source_mlines_per_s", rate);
        entry
    }

    #[test]
    fn a_speed_is_held_against_the_earlier_one_scaled_to_this_machine() {
        let before = timed("a", Some(100.0), 1.0, 1.0);
        // A machine 30% slower: 0.7 was to be expected, 0.65 is within a fifth of it.
        assert!(timed("b", Some(70.0), 0.65, 1.0)
            .regressions_since(&before)
            .is_empty());
        // The same machine: 0.65 is a regression.
        let same = timed("b", Some(100.0), 0.65, 1.0).regressions_since(&before);
        assert_eq!(same.len(), 1, "{same:?}");
        assert!(same[0].contains("0.650 against 1.000 on a (1.000 on this machine"));
        // A faster machine hides nothing: 1.5x the speed was expected.
        let faster = timed("b", Some(150.0), 1.1, 1.0).regressions_since(&before);
        assert_eq!(faster.len(), 1, "{faster:?}");
        // A ratio is not scaled: the slower machine does not excuse it.
        let ratio = timed("b", Some(70.0), 0.7, 0.7).regressions_since(&before);
        assert_eq!(ratio.len(), 1, "{ratio:?}");
        assert!(ratio[0].starts_with("source_ratio"));
        // An entry from before the calibration: speeds compare as they are.
        let untimed = timed("a", None, 1.0, 1.0);
        assert_eq!(
            timed("b", Some(70.0), 0.7, 1.0)
                .regressions_since(&untimed)
                .len(),
            1
        );
    }

    #[test]
    fn entries_without_the_calibration_still_read() {
        let old = r#"{"bench":"sim","params":{},"commit":"x","unix_time":1,"cores":2,"figures":{"pipeline_seeds_per_minute":{"value":280.0,"better":"higher"}}}"#;
        let entry: Entry = serde_json::from_str(old).unwrap();
        assert_eq!(entry.machine_speed, None);
        assert!(!entry.figures["pipeline_seeds_per_minute"].machine_bound);
        let written = serde_json::to_string(&timed("a", Some(5.0), 1.0, 1.0)).unwrap();
        assert!(written.contains(r#""machine_speed":5.0"#), "{written}");
        assert!(written.contains(r#""machine_bound":true"#), "{written}");
        assert!(
            !written.contains(r#""peak_rss_mb":{"value":30.0,"better":"lower","machine_bound""#)
        );
    }

    #[test]
    fn a_figure_that_moved_the_wrong_way_by_more_than_a_fifth_is_a_regression() {
        let before = run("a", 1.0, 30.0);
        assert!(run("b", 0.85, 35.0).regressions_since(&before).is_empty());
        let worse = run("b", 0.7, 40.0).regressions_since(&before);
        assert_eq!(worse.len(), 2, "{worse:?}");
        assert!(worse[0].contains("peak_rss_mb: 40.000 against 30.000 on a"));
        assert!(worse[1].contains("source_ratio"));
        assert!(run("b", 1.5, 10.0).regressions_since(&before).is_empty());
    }

    #[test]
    fn runs_compare_with_the_last_run_with_the_same_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.jsonl");
        let args = HistoryArgs {
            history: Some(file.clone()),
            no_history: false,
        };
        record(&args, &run("a", 1.0, 30.0)).unwrap();
        let mut other = run("b", 0.1, 30.0);
        other.params.insert("lines".into(), "5".into());
        record(&args, &other).unwrap();
        let now = run("c", 0.5, 30.0);
        let last = last_like(&file, &now).unwrap().unwrap();
        assert_eq!(last.commit, "a");
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);

        std::fs::write(&file, "{not json\n").unwrap();
        let error = last_like(&file, &now).unwrap_err().to_string();
        assert!(error.contains("line 1: not a history entry"), "{error}");
    }
}
