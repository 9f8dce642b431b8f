//! The FileStream connectors' filesystem inside the simulation: each host's own simulated disk (turmoil's
//! `unstable-fs`), where a crash loses every write that was not synced, and where the harness can make an
//! fsync fail. Every append and sync is noted in the [`OutputLedger`], every failed sync in the disk
//! faults' strikes.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sluice_connectors::file::fs::{parent_dir, positioned, Reader};
use sluice_connectors::file::{AppendFile, FileSystem};
use tokio::io::AsyncWriteExt;
use turmoil::fs::shim::tokio::fs::{sync_dir, File, OpenOptions};

use super::output_ledger::OutputLedger;
use super::strikes::Strikes;

/// Disk faults the harness arms: each makes one fsync, on whichever host syncs next, fail.
#[derive(Debug, Default)]
pub struct DiskFaults {
    failing_syncs: AtomicUsize,
    strikes: Strikes,
}

impl DiskFaults {
    pub fn fail_next_sync(&self) {
        self.failing_syncs.fetch_add(1, Ordering::SeqCst);
    }

    /// The syncs that failed, with the worker each struck.
    pub fn strikes(&self) -> &Strikes {
        &self.strikes
    }

    fn take_sync_failure(&self) -> bool {
        self.failing_syncs
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The current host's simulated disk: worker `worker`'s.
#[derive(Debug, Clone)]
pub struct SimFs {
    faults: Arc<DiskFaults>,
    ledger: Arc<OutputLedger>,
    worker: usize,
}

impl SimFs {
    pub fn new(faults: Arc<DiskFaults>, ledger: Arc<OutputLedger>, worker: usize) -> SimFs {
        SimFs {
            faults,
            ledger,
            worker,
        }
    }
}

#[async_trait]
impl FileSystem for SimFs {
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>> {
        positioned(File::open(path).await, position).await
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        sync_dir(parent_dir(path)).await?;
        self.ledger
            .opened(self.worker, path, file.metadata().await?.len());
        Ok(Box::new(SimAppendFile {
            file,
            path: path.to_owned(),
            fs: self.clone(),
        }))
    }
}

struct SimAppendFile {
    file: File,
    path: String,
    fs: SimFs,
}

#[async_trait]
impl AppendFile for SimAppendFile {
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await?;
        self.fs.ledger.appended(self.fs.worker, &self.path, bytes);
        Ok(())
    }

    async fn sync(&mut self) -> io::Result<()> {
        if self.fs.faults.take_sync_failure() {
            // The writes stay unsynced: a crash before the next successful sync loses them.
            let now = crate::broker::now();
            self.fs.faults.strikes.record(self.fs.worker, now, now);
            return Err(io::Error::other("simulated fsync failure"));
        }
        self.file.sync_all().await?;
        self.fs.ledger.synced(self.fs.worker, &self.path);
        Ok(())
    }
}
