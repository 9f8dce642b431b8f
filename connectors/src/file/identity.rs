//! What file is at a path: its device and inode where the filesystem has them, and a fingerprint of its
//! first bytes. FileStreamSource keeps both in its offsets, so that a file replaced by another (a log
//! rotated by renaming) or cut short (rotated by `copytruncate`) is read from its start, where Kafka's
//! FileStreamSource resumes at the old byte position and skips the new file's lines.

use serde_json::{Map, Value};
use sluice_core::api::SourceMap;
use sluice_core::fs::{FileStat, FileSystem};
use sluice_core::hash::fnv1a64;
use tokio::io::AsyncReadExt;

/// Bytes of a file's start that its fingerprint covers (fewer while the file is shorter).
pub const HEAD_BYTES: u64 = 64;

/// The offset key of the byte position, as Kafka's FileStreamSource names it.
pub const POSITION: &str = "position";
/// Offset keys (next to `position`) that name the file the position is in.
const INODE: &str = "inode";
const HEAD: &str = "head";

/// The identity of the file a task reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileIdentity {
    /// `device:inode`, where the filesystem has them.
    inode: Option<String>,
    /// `length:hash` of the file's first `length` bytes (at most [`HEAD_BYTES`]).
    head: Option<String>,
    /// Both as offset entries, shared by the offsets of every line of the file.
    entries: SourceMap,
}

/// How the file at a path relates to the one a position was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same file, at least as long as the position.
    Same,
    /// The same file, now shorter than the position: it was truncated.
    Truncated,
    /// Another file.
    Replaced,
}

impl FileIdentity {
    /// The identity recorded in a stored offset (absent in offsets Kafka's FileStreamSource wrote).
    pub fn from_offset(offset: &SourceMap) -> FileIdentity {
        let text = |key| {
            offset
                .get(key)
                .and_then(|value| value.as_str().map(str::to_owned))
        };
        FileIdentity::new(text(INODE), text(HEAD))
    }

    fn new(inode: Option<String>, head: Option<String>) -> FileIdentity {
        let mut map = Map::new();
        if let Some(inode) = &inode {
            map.insert(INODE.to_owned(), Value::from(inode.as_str()));
        }
        if let Some(head) = &head {
            map.insert(HEAD.to_owned(), Value::from(head.as_str()));
        }
        FileIdentity {
            inode,
            head,
            entries: SourceMap::new(map),
        }
    }

    /// The offset of byte `position` of this file: `{"position": N}` and the file's identity.
    pub fn offset(&self, position: u64) -> SourceMap {
        self.entries.plus(POSITION, position)
    }

    /// The identity of what is at `path` now, given its `stat`.
    pub async fn of(fs: &dyn FileSystem, path: &str, stat: FileStat) -> std::io::Result<Self> {
        let len = stat.len.min(HEAD_BYTES);
        Ok(FileIdentity::new(
            stat.device_inode.map(|(dev, ino)| format!("{dev}:{ino}")),
            head(fs, path, len)
                .await?
                .map(|hash| format!("{len}:{hash:016x}")),
        ))
    }

    /// Whether the filesystem tells files apart by inode: without, a file is known by its start only.
    pub fn has_inode(&self) -> bool {
        self.inode.is_some()
    }

    /// How many of the file's first bytes the fingerprint covers (0 without one).
    pub fn head_len(&self) -> u64 {
        self.head
            .as_deref()
            .and_then(|head| head.split_once(':'))
            .and_then(|(len, _)| len.parse().ok())
            .unwrap_or(0)
    }

    /// Fingerprints the file's first bytes as its reader read them (at most [`HEAD_BYTES`]). A file
    /// empty or short when it was opened would otherwise keep a fingerprint of a few bytes, or of none,
    /// which matches whatever the file is later truncated and rewritten to.
    pub fn read_head(&mut self, first_bytes: &[u8]) {
        let len = first_bytes.len().min(HEAD_BYTES as usize);
        let head = format!("{len}:{:016x}", fnv1a64(&first_bytes[..len]));
        *self = FileIdentity::new(self.inode.take(), Some(head));
    }

    /// How the file at `path` (with `stat`) relates to this one, read up to `position`.
    pub async fn compare(
        &self,
        fs: &dyn FileSystem,
        path: &str,
        stat: FileStat,
        position: u64,
    ) -> std::io::Result<Change> {
        let inode = stat.device_inode.map(|(dev, ino)| format!("{dev}:{ino}"));
        if self.inode.is_some() && inode.is_some() && self.inode != inode {
            return Ok(Change::Replaced);
        }
        if stat.len < position {
            return Ok(Change::Truncated);
        }
        let Some((len, _)) = self.head.as_deref().and_then(|h| h.split_once(':')) else {
            return Ok(Change::Same);
        };
        let Ok(len) = len.parse::<u64>() else {
            return Ok(Change::Same);
        };
        let now = head(fs, path, len)
            .await?
            .map(|hash| format!("{len}:{hash:016x}"));
        Ok(match now == self.head {
            true => Change::Same,
            // The same inode with another start was rewritten in place: a truncation and new lines.
            false if inode.is_some() && inode == self.inode => Change::Truncated,
            false => Change::Replaced,
        })
    }
}

/// The hash of the first `len` bytes at `path`; `None` if the file is gone or shorter.
async fn head(fs: &dyn FileSystem, path: &str, len: u64) -> std::io::Result<Option<u64>> {
    let Some(mut reader) = fs.open_read(path, 0).await? else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut reader).take(len).read_to_end(&mut bytes).await?;
    Ok((bytes.len() as u64 == len).then(|| fnv1a64(&bytes)))
}
