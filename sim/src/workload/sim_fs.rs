//! The FileStream connectors' filesystem inside the simulation: each host's own simulated disk (turmoil's
//! `unstable-fs`), where a crash loses every write that was not synced.

use std::io;

use async_trait::async_trait;
use sluice_connectors::file::fs::{parent_dir, Reader};
use sluice_connectors::file::{AppendFile, FileSystem};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use turmoil::fs::shim::tokio::fs::{sync_dir, File, OpenOptions};

/// The current host's simulated disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimFs;

#[async_trait]
impl FileSystem for SimFs {
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>> {
        let mut file = match File::open(path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if position > 0 {
            file.seek(io::SeekFrom::Start(position)).await?;
        }
        Ok(Some(Box::new(file)))
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        sync_dir(parent_dir(path)).await?;
        Ok(Box::new(SimAppendFile(file)))
    }
}

struct SimAppendFile(File);

#[async_trait]
impl AppendFile for SimAppendFile {
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes).await
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all().await
    }
}
