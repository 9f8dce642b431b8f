//! Each host's simulated disk (turmoil's `unstable-fs`) behind Sluice's filesystem seam: a crash loses
//! every write that was not synced, and the harness arms disk faults: failed fsyncs of files (with the
//! dirty pages kept, or dropped as Linux drops them) and of directories, failed writes (EIO, ENOSPC) and
//! short writes. Every append, sync and loss of the FileStream connectors' files is noted in the
//! [`OutputLedger`], and every fault that struck in the disk faults' [`Strikes`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_core::fs::{
    existing, parent_dir, positioned, AppendFile, FileStat, FileSystem, Reader, WriteFile,
};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use turmoil::fs::shim::std::fs as blocking;
use turmoil::fs::shim::tokio::fs::{sync_dir, File, OpenOptions};

use super::output_ledger::OutputLedger;
use super::strikes::Strikes;
use crate::broker::now;
use crate::coverage::{self, Event};

/// What a failed fsync does to the pages it could not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirtyPages {
    /// They stay dirty, and a later fsync writes them.
    Kept,
    /// Linux's behaviour: they are marked clean and dropped. What was written since the last successful
    /// sync reads back as zeros, and a later fsync succeeds and makes the zeros durable.
    Dropped,
}

/// An error a write can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteError {
    Eio,
    Enospc,
}

impl WriteError {
    fn error(self) -> io::Error {
        // Linux's error numbers, so the message reads as a real one.
        io::Error::from_raw_os_error(match self {
            WriteError::Eio => 5,
            WriteError::Enospc => 28,
        })
    }
}

/// Disk faults the harness arms, each taken by whichever host next writes or syncs through a [`SimFs`];
/// and which files each host wrote without syncing them yet.
#[derive(Debug, Default)]
pub struct DiskFaults {
    state: Mutex<DiskState>,
    strikes: Strikes,
}

#[derive(Debug, Default)]
struct DiskState {
    failing_syncs: VecDeque<DirtyPages>,
    failing_dir_syncs: u32,
    failing_writes: VecDeque<WriteError>,
    short_writes: u32,
    /// Per host, the files (and directories) with changes not synced yet.
    dirty: BTreeMap<String, BTreeSet<PathBuf>>,
}

impl DiskFaults {
    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The faults that struck, with the worker each struck.
    pub fn strikes(&self) -> &Strikes {
        &self.strikes
    }

    fn struck(&self, worker: usize) {
        let at = now();
        self.strikes.record(worker, at, at);
    }

    /// The next fsync of a file fails.
    pub fn fail_next_sync(&self, pages: DirtyPages) {
        self.state().failing_syncs.push_back(pages);
    }

    /// The next fsync of a directory (after a rename or removal) fails.
    pub fn fail_next_dir_sync(&self) {
        self.state().failing_dir_syncs += 1;
    }

    /// The next write fails with `error`, writing nothing.
    pub fn fail_next_write(&self, error: WriteError) {
        self.state().failing_writes.push_back(error);
    }

    /// The next `count` writes of more than one byte write only half of what they were given.
    pub fn shorten_writes(&self, count: u32) {
        self.state().short_writes += count;
    }

    /// `host` crashed: its unsynced changes are gone. Says whether it had any.
    pub fn crashed(&self, host: &str) -> bool {
        self.state()
            .dirty
            .remove(host)
            .is_some_and(|paths| !paths.is_empty())
    }

    fn take_sync_failure(&self) -> Option<DirtyPages> {
        self.state().failing_syncs.pop_front()
    }

    fn take_dir_sync_failure(&self) -> bool {
        let mut state = self.state();
        let failing = state.failing_dir_syncs > 0;
        state.failing_dir_syncs = state.failing_dir_syncs.saturating_sub(1);
        failing
    }

    fn take_write_failure(&self) -> Option<io::Error> {
        self.state()
            .failing_writes
            .pop_front()
            .map(WriteError::error)
    }

    /// How much of `len` bytes the next write writes.
    fn write_len(&self, len: usize) -> usize {
        let mut state = self.state();
        if len > 1 && state.short_writes > 0 {
            state.short_writes -= 1;
            return len / 2;
        }
        len
    }

    fn dirtied(&self, host: &str, path: &Path) {
        self.state()
            .dirty
            .entry(host.to_owned())
            .or_default()
            .insert(path.to_owned());
    }

    fn synced(&self, host: &str, path: &Path) {
        if let Some(paths) = self.state().dirty.get_mut(host) {
            paths.remove(path);
        }
    }
}

/// Worker `worker`'s simulated disk. Its files are reached through turmoil, which finds the disk of the
/// host running; the worker's host name keys the faults' bookkeeping.
#[derive(Debug, Clone)]
pub struct SimFs {
    faults: Arc<DiskFaults>,
    ledger: Arc<OutputLedger>,
    worker: usize,
    host: String,
}

impl SimFs {
    pub fn new(faults: Arc<DiskFaults>, ledger: Arc<OutputLedger>, worker: usize) -> SimFs {
        SimFs {
            faults,
            ledger,
            worker,
            host: format!("worker-{worker}"),
        }
    }

    /// The worker whose disk this is.
    pub fn worker(&self) -> usize {
        self.worker
    }

    fn handle(&self, path: &Path) -> Handle {
        Handle {
            fs: self.clone(),
            path: path.to_owned(),
            synced: 0,
        }
    }

    /// `path` now holds `len` bytes, and what the ledger had past that is gone.
    fn cut(&self, path: &Path, len: u64) {
        self.ledger
            .opened(self.worker, &path.to_string_lossy(), len);
    }
}

#[async_trait]
impl FileSystem for SimFs {
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>> {
        let reader = positioned(File::open(path).await, position).await?;
        Ok(reader.map(|inner| Box::new(LineWatcher { inner }) as Reader))
    }

    /// Turmoil's disks have no inodes: a file is known by its length (and its first bytes, which the
    /// caller reads).
    async fn stat(&self, path: &str) -> io::Result<Option<FileStat>> {
        let file = match File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(FileStat {
            len: file.metadata().await?.len(),
            device_inode: None,
        }))
    }

    /// Creating the file syncs its directory; that sync is never made to fail, as a task that cannot
    /// start stays failed until an operator restarts it, which the simulation does not model.
    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        sync_dir(parent_dir(Path::new(path))).await?;
        let mut handle = self.handle(Path::new(path));
        handle.synced = file.metadata().await?.len();
        self.cut(Path::new(path), handle.synced);
        Ok(Box::new(SimAppendFile { file, handle }))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        existing(blocking::read(path))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = blocking::File::create(path)?;
        self.faults.dirtied(&self.host, parent_dir(path));
        Ok(Box::new(SimWriteFile {
            file,
            handle: self.handle(path),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        blocking::rename(from, to)?;
        self.faults.dirtied(&self.host, parent_dir(to));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        blocking::remove_file(path)?;
        self.faults.synced(&self.host, path);
        self.faults.dirtied(&self.host, parent_dir(path));
        Ok(())
    }

    /// A failed directory sync leaves the directory's entries as they were: unsynced, so a crash before
    /// the next successful sync of the directory undoes them.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.faults.take_dir_sync_failure() {
            self.faults.struck(self.worker);
            return Err(WriteError::Eio.error());
        }
        blocking::sync_dir(dir)?;
        self.faults.synced(&self.host, dir);
        Ok(())
    }
}

/// The fault bookkeeping of one open file.
struct Handle {
    fs: SimFs,
    path: PathBuf,
    /// The file's length at its last successful sync through this handle (or when opened).
    synced: u64,
}

impl Handle {
    /// Before a write: the error it fails with, if one is armed, or how many of `len` bytes it writes.
    fn before_write(&self, len: usize) -> io::Result<usize> {
        match self.fs.faults.take_write_failure() {
            Some(error) => {
                self.fs.faults.struck(self.fs.worker);
                Err(error)
            }
            None => Ok(self.fs.faults.write_len(len)),
        }
    }

    fn written(&self) {
        self.fs.faults.dirtied(&self.fs.host, &self.path);
    }

    /// Before a sync: what happens to the dirty pages, if it fails.
    fn failing_sync(&self) -> Option<DirtyPages> {
        let failing = self.fs.faults.take_sync_failure();
        if failing.is_some() {
            self.fs.faults.struck(self.fs.worker);
        }
        failing
    }

    fn sync_failed() -> io::Error {
        WriteError::Eio.error()
    }

    fn synced(&mut self, len: u64) {
        self.synced = len;
        self.fs.faults.synced(&self.fs.host, &self.path);
    }

    /// The ledger's name for the file.
    fn name(&self) -> std::borrow::Cow<'_, str> {
        self.path.to_string_lossy()
    }
}

struct SimAppendFile {
    file: File,
    handle: Handle,
}

#[async_trait]
impl AppendFile for SimAppendFile {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let len = self.handle.before_write(bytes.len())?;
        let written = self.file.write(&bytes[..len]).await?;
        self.handle.written();
        let fs = &self.handle.fs;
        fs.ledger
            .appended(fs.worker, &self.handle.name(), &bytes[..written]);
        Ok(written)
    }

    async fn sync(&mut self) -> io::Result<()> {
        let len = self.file.metadata().await?.len();
        match self.handle.failing_sync() {
            Some(DirtyPages::Kept) => Err(Handle::sync_failed()),
            Some(DirtyPages::Dropped) => {
                if len > self.handle.synced {
                    let zeros = vec![0; (len - self.handle.synced) as usize];
                    self.file.write_at(&zeros, self.handle.synced).await?;
                    self.handle.written();
                }
                // What followed the last sync is zeros now: no line of it is in the file any more.
                self.handle.fs.cut(&self.handle.path, self.handle.synced);
                Err(Handle::sync_failed())
            }
            None => {
                self.file.sync_all().await?;
                self.handle.synced(len);
                let fs = &self.handle.fs;
                fs.ledger.synced(fs.worker, &self.handle.name());
                Ok(())
            }
        }
    }

    async fn length(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata().await?.len())
    }

    async fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len).await?;
        self.handle.synced = self.handle.synced.min(len);
        self.handle.written();
        self.handle.fs.cut(&self.handle.path, len);
        Ok(())
    }
}

struct SimWriteFile {
    file: blocking::File,
    handle: Handle,
}

impl Write for SimWriteFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let len = self.handle.before_write(bytes.len())?;
        let written = self.file.write(&bytes[..len])?;
        self.handle.written();
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl WriteFile for SimWriteFile {
    fn sync_all(&mut self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        match self.handle.failing_sync() {
            Some(DirtyPages::Kept) => Err(Handle::sync_failed()),
            Some(DirtyPages::Dropped) => {
                if len > self.handle.synced {
                    let zeros = vec![0; (len - self.handle.synced) as usize];
                    self.file.write_at(&zeros, self.handle.synced)?;
                    self.handle.written();
                }
                Err(Handle::sync_failed())
            }
            None => {
                self.file.sync_all()?;
                self.handle.synced(len);
                Ok(())
            }
        }
    }
}

/// A reader of a file on a simulated disk that notes, for coverage, each read that ends inside a line
/// (the writer had written part of the line so far).
struct LineWatcher {
    inner: Reader,
}

impl AsyncRead for LineWatcher {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && buf.filled().last() != Some(&b'\n') {
            coverage::reached(Event::PartialLineRead);
        }
        polled
    }
}
