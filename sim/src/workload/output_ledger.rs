//! What each worker wrote to its files on its simulated disk, line by line: when each line was appended,
//! when it became durable (a sync covered it) and whether a crash took it away before that. The oracle
//! reads it to check each FileStreamSink commit against the lines durable at that moment, and to judge the
//! lines written more than once. A watcher (the test kit's, for a sink under test that keeps files) is told
//! the lines each sync made durable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::broker::now;

/// One line a worker appended to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub worker: usize,
    pub appended: Duration,
    /// When a sync made it durable.
    pub synced: Option<Duration>,
    /// A crash took it away before it was synced.
    pub lost: bool,
}

/// One worker's file.
#[derive(Debug, Default)]
struct File {
    /// Every line ever appended, in order.
    history: Vec<Line>,
    /// The lines the file holds now: each one's index in `history` and the byte offset after it.
    live: Vec<(usize, u64)>,
    /// How many of `live` are durable.
    synced: usize,
    /// Bytes appended after the last newline.
    partial: Vec<u8>,
    /// The file's length.
    len: u64,
}

#[derive(Debug, Default)]
struct Inner {
    files: BTreeMap<(usize, String), File>,
    /// The text of every line durable in some worker's file.
    durable: BTreeSet<String>,
}

/// Told the lines a sync made durable: the worker, the file, and the lines.
pub type SyncWatcher = Box<dyn Fn(usize, &str, &[String]) + Send + Sync>;

/// Every worker's files, line by line.
#[derive(Default)]
pub struct OutputLedger {
    inner: Mutex<Inner>,
    watcher: Mutex<Option<SyncWatcher>>,
}

impl fmt::Debug for OutputLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputLedger")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl OutputLedger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `worker` opened `path`, which holds `len` bytes: after a crash, that is what was synced, and the
    /// lines past it are lost.
    pub fn opened(&self, worker: usize, path: &str, len: u64) {
        let mut inner = self.lock();
        let file = inner.files.entry((worker, path.to_owned())).or_default();
        let keep = file.live.partition_point(|(_, end)| *end <= len);
        for (index, _) in file.live.drain(keep..) {
            file.history[index].lost = true;
        }
        file.synced = file.synced.min(keep);
        file.partial.clear();
        file.len = len;
    }

    /// `worker` appended `bytes` to `path`.
    pub fn appended(&self, worker: usize, path: &str, bytes: &[u8]) {
        let at = now();
        let mut inner = self.lock();
        let file = inner.files.entry((worker, path.to_owned())).or_default();
        for &byte in bytes {
            file.len += 1;
            if byte != b'\n' {
                file.partial.push(byte);
                continue;
            }
            let text = String::from_utf8_lossy(&std::mem::take(&mut file.partial)).into_owned();
            file.live.push((file.history.len(), file.len));
            file.history.push(Line {
                text,
                worker,
                appended: at,
                synced: None,
                lost: false,
            });
        }
    }

    /// A sync of `path` by `worker` succeeded: every line it holds is durable.
    pub fn synced(&self, worker: usize, path: &str) {
        let at = now();
        let mut inner = self.lock();
        let Inner { files, durable } = &mut *inner;
        let Some(file) = files.get_mut(&(worker, path.to_owned())) else {
            return;
        };
        let mut newly = Vec::new();
        for &(index, _) in &file.live[file.synced..] {
            let line = &mut file.history[index];
            line.synced = Some(at);
            durable.insert(line.text.clone());
            newly.push(line.text.clone());
        }
        file.synced = file.live.len();
        drop(inner);
        if newly.is_empty() {
            return;
        }
        if let Some(watcher) = &*self.watcher.lock().unwrap_or_else(|e| e.into_inner()) {
            watcher(worker, path, &newly);
        }
    }

    /// From now on, `watcher` is told the lines each sync makes durable.
    pub fn watch(&self, watcher: SyncWatcher) {
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watcher);
    }

    /// Whether a line with this text is durable in some worker's file.
    pub fn is_durable(&self, text: &str) -> bool {
        self.lock().durable.contains(text)
    }

    /// Every line appended to `path` on any worker, each worker's in the order it appended them.
    pub fn lines(&self, path: &str) -> Vec<Line> {
        self.lock()
            .files
            .iter()
            .filter(|((_, name), _)| name == path)
            .flat_map(|(_, file)| file.history.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_the_lines_after_the_last_sync() {
        let ledger = OutputLedger::default();
        ledger.opened(1, "/out", 0);
        ledger.appended(1, "/out", b"a\nb\n");
        ledger.synced(1, "/out");
        ledger.appended(1, "/out", b"c\n");
        // The crash kept the 4 synced bytes.
        ledger.opened(1, "/out", 4);
        ledger.appended(1, "/out", b"d\n");
        let lines = ledger.lines("/out");
        let texts: Vec<(&str, bool, bool)> = lines
            .iter()
            .map(|l| (l.text.as_str(), l.synced.is_some(), l.lost))
            .collect();
        assert_eq!(
            texts,
            vec![
                ("a", true, false),
                ("b", true, false),
                ("c", false, true),
                ("d", false, false)
            ]
        );
        assert!(ledger.is_durable("b"));
        assert!(!ledger.is_durable("c"));
        assert!(!ledger.is_durable("d"));
    }
}
