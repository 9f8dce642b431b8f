//! Sweeps of seeds spread over processes, one per core: each child process runs one shard of the
//! seeds (every Nth seed) one after another, exactly as a sweep in one process would, and writes a
//! line per seed; the parent hands the results on in seed order, so the output of a parallel sweep
//! is the output of a sequential one.
//!
//! Processes rather than threads: a seed's run is alone in its process, as in a sequential sweep,
//! so nothing a seed does (a global, an allocator's state) can reach another seed's run.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::RangeInclusive;
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::coverage::Event;

/// What starts a child's line that carries a seed's result: the child may print other lines (a test
/// binary's own), which the parent passes over.
const MARKER: &str = "sluice-seed-result ";

/// One of `of` interleaved parts of a range of seeds: shard `index` holds the seeds whose distance
/// from the range's start is `index` modulo `of`. Interleaved, so that every shard moves through the
/// range at the same pace and the parent holds few results waiting for an earlier seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub of: usize,
}

impl Shard {
    /// This shard's seeds of `seeds`.
    pub fn seeds(self, seeds: RangeInclusive<u64>) -> impl Iterator<Item = u64> {
        seeds.skip(self.index).step_by(self.of.max(1))
    }

    /// The shard of `jobs` that holds `seed` of a range starting at `start`.
    fn holding(seed: u64, start: u64, jobs: usize) -> usize {
        ((seed - start) % jobs as u64) as usize
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, with K < N.
    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("{text:?} is not a shard like 0/2 (K/N, K < N)");
        let (index, of) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let of: usize = of.trim().parse().map_err(|_| bad())?;
        if index >= of {
            return Err(bad());
        }
        Ok(Shard { index, of })
    }
}

/// What a child says of one seed's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub passed: bool,
    /// The runtime events the run reached.
    pub events: Vec<Event>,
    /// The kinds of fault the run drew (`crash-worker`).
    pub faults: Vec<String>,
    /// What the run prints: its summary line, and whatever else was asked for.
    pub output: String,
}

impl SeedResult {
    /// The line a child writes for this result.
    pub fn to_line(&self) -> String {
        // A result of plain strings, numbers and enums always serializes.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{MARKER}{json}")
    }

    /// The result a child's line carries, if it carries one (a test binary may have begun the line
    /// with the test's name).
    fn from_line(line: &str) -> Option<Result<SeedResult, serde_json::Error>> {
        let start = line.find(MARKER)? + MARKER.len();
        Some(serde_json::from_str(&line[start..]))
    }
}

/// Whether a sweep goes on after a seed's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("cannot start the runtime that watches the child processes: {0}")]
    Runtime(io::Error),
    #[error("cannot start the child process for shard {shard}: {source}")]
    Spawn { shard: Shard, source: io::Error },
    #[error("cannot read the output of the child process for shard {shard}: {source}")]
    Read { shard: Shard, source: io::Error },
    #[error(
        "the child process for shard {shard} wrote a result that cannot be read ({source}): {line}"
    )]
    BadResult {
        shard: Shard,
        line: String,
        source: serde_json::Error,
    },
    #[error("the child process for shard {shard} ended ({status}) before it reported seed {seed}")]
    Ended {
        shard: Shard,
        seed: u64,
        status: String,
    },
}

/// What a child's watcher tells the parent.
enum Message {
    Result(SeedResult),
    Failed(ShardError),
    Ended(String),
}

/// Runs `seeds` in `jobs` child processes, each started by `command` for its shard, and hands every
/// seed's result to `each` in seed order until it says stop or the last seed is handed over. The
/// children still running then are killed.
pub fn run_sharded(
    seeds: RangeInclusive<u64>,
    jobs: usize,
    command: impl Fn(Shard) -> std::process::Command,
    each: impl FnMut(SeedResult) -> Flow,
) -> Result<(), ShardError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShardError::Runtime)?;
    runtime.block_on(collect(seeds, jobs.max(1), command, each))
}

async fn collect(
    seeds: RangeInclusive<u64>,
    jobs: usize,
    command: impl Fn(Shard) -> std::process::Command,
    mut each: impl FnMut(SeedResult) -> Flow,
) -> Result<(), ShardError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for index in 0..jobs {
        let shard = Shard { index, of: jobs };
        let mut child = tokio::process::Command::from(command(shard))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ShardError::Spawn { shard, source })?;
        let stdout = child.stdout.take().ok_or_else(|| ShardError::Spawn {
            shard,
            source: io::Error::other("its output is not piped"),
        })?;
        let tx = tx.clone();
        // Dropped with the runtime when the sweep ends early, which kills the child.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                let message = match lines.next_line().await {
                    Ok(Some(line)) => match SeedResult::from_line(&line) {
                        None => continue,
                        Some(Ok(result)) => Message::Result(result),
                        Some(Err(source)) => Message::Failed(ShardError::BadResult {
                            shard,
                            line,
                            source,
                        }),
                    },
                    Ok(None) => break,
                    Err(source) => Message::Failed(ShardError::Read { shard, source }),
                };
                let failed = matches!(message, Message::Failed(_));
                if tx.send((index, message)).is_err() || failed {
                    return;
                }
            }
            let status = match child.wait().await {
                Ok(status) => describe(status),
                Err(e) => format!("its exit status is unknown: {e}"),
            };
            let _ = tx.send((index, Message::Ended(status)));
        });
    }
    drop(tx);
    let (start, end) = (*seeds.start(), *seeds.end());
    let mut waiting: BTreeMap<u64, SeedResult> = BTreeMap::new();
    let mut ended: Vec<Option<String>> = vec![None; jobs];
    let mut next = start;
    loop {
        if let Some(result) = waiting.remove(&next) {
            if each(result) == Flow::Stop || next == end {
                return Ok(());
            }
            next += 1;
            continue;
        }
        let holder = Shard::holding(next, start, jobs);
        if let Some(status) = &ended[holder] {
            return Err(ShardError::Ended {
                shard: Shard {
                    index: holder,
                    of: jobs,
                },
                seed: next,
                status: status.clone(),
            });
        }
        // Every child's watcher sends its end before it lets go of its sender: the channel cannot
        // close while the child holding `next` has not ended.
        let Some((index, message)) = rx.recv().await else {
            return Ok(());
        };
        match message {
            Message::Result(result) => {
                waiting.insert(result.seed, result);
            }
            Message::Failed(e) => return Err(e),
            Message::Ended(status) => ended[index] = Some(status),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_interleave_and_cover_the_range_once() {
        let seeds = 3..=12;
        let mut all: Vec<u64> = (0..3)
            .flat_map(|index| Shard { index, of: 3 }.seeds(seeds.clone()))
            .collect();
        assert_eq!(
            Shard { index: 1, of: 3 }
                .seeds(seeds.clone())
                .collect::<Vec<_>>(),
            [4, 7, 10]
        );
        all.sort_unstable();
        assert_eq!(all, seeds.collect::<Vec<_>>());
        assert_eq!(Shard::holding(10, 3, 3), 1);
    }

    #[test]
    fn shards_are_read_as_k_of_n() {
        assert_eq!("1/4".parse(), Ok(Shard { index: 1, of: 4 }));
        for bad in ["4/4", "1", "a/2", "1/"] {
            let error = bad.parse::<Shard>().unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn results_survive_their_line() {
        let result = SeedResult {
            seed: 7,
            passed: false,
            events: vec![Event::WorkerCrashed],
            faults: vec!["crash-worker".to_owned()],
            output: "seed 7 FAILED\n  lost: 3\n".to_owned(),
        };
        let line = result.to_line();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(SeedResult::from_line(&line).unwrap().unwrap(), result);
        assert!(SeedResult::from_line("test foo ... ok").is_none());
        let after_a_test_name = format!("test foo ... {line}");
        assert_eq!(
            SeedResult::from_line(&after_a_test_name).unwrap().unwrap(),
            result
        );
    }
}
