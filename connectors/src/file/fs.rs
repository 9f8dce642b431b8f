//! The filesystem the FileStream connectors read and write: the machine's ([`LocalFs`]) in production; the
//! simulation supplies one on turmoil's simulated disks, where a crash loses what was not synced.

use std::io;
use std::path::Path;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt};

/// A file opened for reading, positioned where reading should start.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;

#[async_trait]
pub trait FileSystem: Send + Sync {
    /// Opens `path` for reading from byte `position`; `None` if it does not exist (yet).
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>>;

    /// Opens `path` for appending, creating it if needed. A created file's directory entry is durable when
    /// this returns, so a crash cannot take away a file whose contents were synced.
    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>>;
}

/// A file written at its end.
#[async_trait]
pub trait AppendFile: Send {
    /// Writes at the end of the file; durable only after [`sync`](AppendFile::sync).
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far durable.
    async fn sync(&mut self) -> io::Result<()>;
}

/// A just-opened file as a [`Reader`] at `position`; a file that does not exist is `None`.
pub async fn positioned<F>(opened: io::Result<F>, position: u64) -> io::Result<Option<Reader>>
where
    F: AsyncRead + AsyncSeek + Send + Unpin + 'static,
{
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if position > 0 {
        file.seek(io::SeekFrom::Start(position)).await?;
    }
    Ok(Some(Box::new(file)))
}

/// The machine's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFs;

#[async_trait]
impl FileSystem for LocalFs {
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>> {
        positioned(tokio::fs::File::open(path).await, position).await
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let syncer = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        tokio::fs::File::open(parent_dir(path))
            .await?
            .sync_all()
            .await?;
        let writer = syncer.try_clone().await?.into_std().await;
        Ok(Box::new(LocalAppendFile { writer, syncer }))
    }
}

/// Two handles on the same open file: lines are written straight into the page cache (a short system
/// call, as Kafka's FileStreamSink does), and the fsync, which can take milliseconds, runs off the async
/// threads.
struct LocalAppendFile {
    writer: std::fs::File,
    syncer: tokio::fs::File,
}

#[async_trait]
impl AppendFile for LocalAppendFile {
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.writer, bytes)
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.syncer.sync_data().await
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &str) -> &Path {
    match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
