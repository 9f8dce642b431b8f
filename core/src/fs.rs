//! The filesystem seam: every file Sluice reads or writes (the FileStream connectors' files, the standalone
//! worker's source offset file) goes through a [`FileSystem`]. Production uses the machine's ([`LocalFs`]);
//! the simulation supplies one on turmoil's simulated disks, where a crash loses what was not synced and
//! writes and fsyncs fail as they do on Linux.

use std::io;
use std::path::Path;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncSeek, AsyncSeekExt};

/// A file opened for reading, positioned where reading should start.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// A file's length, and its device and inode where the filesystem has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub len: u64,
    pub device_inode: Option<(u64, u64)>,
}

#[async_trait]
pub trait FileSystem: Send + Sync {
    /// Opens `path` for reading from byte `position`; `None` if it does not exist (yet).
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>>;

    /// What is at `path` now: its length and, where the system has them, its device and inode; `None` if
    /// nothing is.
    async fn stat(&self, path: &str) -> io::Result<Option<FileStat>>;

    /// Opens `path` for appending, creating it if needed. A created file's directory entry is durable when
    /// this returns, so a crash cannot take away a file whose contents were synced.
    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>>;

    /// The whole of a small file; `None` if it does not exist.
    ///
    /// This call and the ones below block: the offset file, a few hundred bytes, is written while the
    /// worker's offset store is locked, so that commits reach the disk in the order they were made.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;

    /// Creates `path` (emptying it if it exists) for writing from its start.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;

    /// Renames `from` to `to`, replacing `to`; durable only after [`sync_dir`](FileSystem::sync_dir).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes the entries of directory `dir` (files created, renamed or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file written at its end.
#[async_trait]
pub trait AppendFile: Send {
    /// Writes a prefix of `bytes` at the end of the file and says how many bytes that was: it may be
    /// fewer than given (a short write). Written bytes are durable only after [`sync`](AppendFile::sync).
    async fn write(&mut self, bytes: &[u8]) -> io::Result<usize>;

    /// Makes everything written so far durable. After a failure, what was written since the last
    /// successful sync may be gone, although a later sync succeeds: Linux marks the pages whose writeback
    /// failed clean and may drop them (PostgreSQL's "fsyncgate"). Never retry a failed sync and assume
    /// that what it covered is safe.
    async fn sync(&mut self) -> io::Result<()>;

    /// The file's length now, synced or not.
    async fn length(&mut self) -> io::Result<u64>;

    /// Cuts the file to `len` bytes (durable after the next sync).
    async fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A file written from its start with blocking calls: [`io::Write`] (whose `write_all` goes on after
/// short writes) and an fsync.
pub trait WriteFile: io::Write + Send {
    /// Makes everything written so far durable; after a failure, see [`AppendFile::sync`].
    fn sync_all(&mut self) -> io::Result<()>;
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

/// A whole file's bytes, `None` if it does not exist.
pub fn existing(read: io::Result<Vec<u8>>) -> io::Result<Option<Vec<u8>>> {
    match read {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The machine's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFs;

#[async_trait]
impl FileSystem for LocalFs {
    async fn open_read(&self, path: &str, position: u64) -> io::Result<Option<Reader>> {
        positioned(tokio::fs::File::open(path).await, position).await
    }

    async fn stat(&self, path: &str) -> io::Result<Option<FileStat>> {
        let metadata = match tokio::fs::metadata(path).await {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        let device_inode = {
            use std::os::unix::fs::MetadataExt;
            Some((metadata.dev(), metadata.ino()))
        };
        #[cfg(not(unix))]
        let device_inode = None;
        Ok(Some(FileStat {
            len: metadata.len(),
            device_inode,
        }))
    }

    async fn open_append(&self, path: &str) -> io::Result<Box<dyn AppendFile>> {
        let syncer = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        tokio::fs::File::open(parent_dir(Path::new(path)))
            .await?
            .sync_all()
            .await?;
        let writer = syncer.try_clone().await?.into_std().await;
        Ok(Box::new(LocalAppendFile { writer, syncer }))
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        existing(std::fs::read(path))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(std::fs::File::create(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    /// Directories cannot be opened (or synced) on other systems.
    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl WriteFile for std::fs::File {
    fn sync_all(&mut self) -> io::Result<()> {
        std::fs::File::sync_all(self)
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
    async fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut self.writer, bytes)
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.syncer.sync_data().await
    }

    async fn length(&mut self) -> io::Result<u64> {
        Ok(self.writer.metadata()?.len())
    }

    async fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.writer.set_len(len)
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
