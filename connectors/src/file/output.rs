//! FileStreamSink's output file: appends that go on after short writes, fsyncs, and after a failed write
//! or fsync, cutting the file back to what is known good before anything else is written.

use std::io;

use sluice_core::fs::{AppendFile, FileSystem};

/// A file only this task appends to.
pub struct OutputFile {
    file: Box<dyn AppendFile>,
    /// The file's length at the last successful sync (or when opened): what a crash keeps.
    synced: u64,
    /// The file's length after this task's last successful write.
    written: u64,
    /// After a failure: the length to cut the file back to before it is written or synced again.
    cut_to: Option<u64>,
}

/// Why the output file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is not as long as this task left it: someone else appended to it, so cutting it back
    /// would destroy their lines.
    #[error("the file is {actual} bytes long where this task left it at {expected}: another writer appends to it, so it cannot be cut back after a failure")]
    Shared { expected: u64, actual: u64 },
}

impl OutputFile {
    /// Opens `path` for appending, creating it (durably) if needed.
    pub async fn open(fs: &dyn FileSystem, path: &str) -> io::Result<OutputFile> {
        let mut file = fs.open_append(path).await?;
        let length = file.length().await?;
        Ok(OutputFile {
            file,
            synced: length,
            written: length,
            cut_to: None,
        })
    }

    /// Appends `bytes` whole. After a failure some of them may be in the file: they are cut away before
    /// the next write, and the caller should have them delivered again.
    pub async fn append(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.repair().await?;
        let start = self.written;
        let mut rest = bytes;
        while !rest.is_empty() {
            let written = match self.file.write(rest).await {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => Ok(n.min(rest.len())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
                Err(e) => Err(e),
            };
            match written {
                Ok(n) => {
                    self.written += n as u64;
                    rest = &rest[n..];
                }
                Err(e) => return Err(self.failed(start, e).await),
            }
        }
        Ok(())
    }

    /// Makes everything appended durable. After a failure, everything appended since the last
    /// successful sync may be lost or read back as zeros, even once a later sync succeeds (Linux drops
    /// the pages whose writeback failed): it is cut away, and the caller must deliver it again.
    pub async fn sync(&mut self) -> Result<(), OutputError> {
        self.repair().await?;
        if let Err(e) = self.file.sync().await {
            return Err(self.failed(self.synced, e).await);
        }
        self.synced = self.written;
        Ok(())
    }

    /// After a failure: cuts the file back to `len` now, so that no task that opens it next finds what
    /// the failure left (or later, before this task writes again, if cutting fails too).
    async fn failed(&mut self, len: u64, e: io::Error) -> OutputError {
        self.cut_to = Some(len);
        if let Err(repair) = self.repair().await {
            tracing::warn!(error = %repair, "cannot cut the file back yet; will retry before the next write");
        }
        e.into()
    }

    /// Cuts the file back after a failure, if it is still as this task left it.
    async fn repair(&mut self) -> Result<(), OutputError> {
        let Some(len) = self.cut_to else {
            return Ok(());
        };
        let actual = self.file.length().await?;
        if actual != self.written {
            return Err(OutputError::Shared {
                expected: self.written,
                actual,
            });
        }
        self.file.truncate(len).await?;
        self.written = len;
        self.synced = self.synced.min(len);
        self.cut_to = None;
        Ok(())
    }
}
