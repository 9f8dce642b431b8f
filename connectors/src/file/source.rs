//! FileStreamSource: emits each complete line of a file as a string record, with source partition
//! `{"filename": <file>}` and offset `{"position": <byte offset after the line>}` (plus the file's
//! identity, see [`identity`](super::identity)); resumes from the committed position and keeps tailing
//! the file for appended lines. A file truncated, replaced (rotated) or removed is noticed: the rest of
//! the old file is finished, and the new one read from its start.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BufMut;
use memchr::{memchr, memchr_iter};
use sluice_core::api::{
    CommitRecordReads, ConnectError, Connector, ConnectorContext, ExactlyOnceSupport,
    SourceConnector, SourceMap, SourceOffset, SourcePartition, SourceRecord, SourceTask,
    SourceTaskContext,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType, ParsedConfig};
use sluice_core::data::Data;
use tokio::io::AsyncReadExt;

use super::identity::{Change, FileIdentity, HEAD_BYTES, POSITION};
use super::FILE;
use sluice_core::fs::{FileSystem, LocalFs, Reader};

pub const TOPIC: &str = "topic";
pub const BATCH_SIZE: &str = "batch.size";
pub const MAX_LINE_BYTES: &str = "max.line.bytes";
/// The runtime's key, which also says what a line too long for `max.line.bytes` does.
const ERRORS_TOLERANCE: &str = "errors.tolerance";

/// How long `poll` waits before looking for appended lines when it found none.
const TAIL_INTERVAL: Duration = Duration::from_millis(200);
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 256 * 1024;

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .optional(
            FILE,
            ConfigType::String,
            "",
            "Source file; empty reads stdin.",
        )
        .required(TOPIC, ConfigType::List, "The topic to publish lines to.")
        .check(
            |v| match v.split(',').filter(|t| !t.trim().is_empty()).count() {
                1 => Ok(()),
                _ => Err("must name exactly one topic".into()),
            },
        )
        .optional(
            BATCH_SIZE,
            ConfigType::Int,
            "2000",
            "Most lines returned by one poll.",
        )
        .check(|v| match v.parse::<i32>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err("must be a positive integer".into()),
        })
        .optional(
            MAX_LINE_BYTES,
            ConfigType::Int,
            "1048576",
            "Longest line, in bytes (Sluice's own key; the default is the producer's max.request.size): a longer one fails the task, naming the file and byte position, or is skipped under errors.tolerance=all. Bounds the memory a file without newlines takes.",
        )
        .check(|v| match v.parse::<i32>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err("must be a positive integer".into()),
        })
}

/// Splits the job into its single task: a file is read by one reader.
pub struct FileStreamSourceConnector {
    fs: Arc<dyn FileSystem>,
    config: ConfigMap,
}

impl FileStreamSourceConnector {
    /// A connector whose tasks read files from `fs`.
    pub fn new(fs: Arc<dyn FileSystem>) -> FileStreamSourceConnector {
        FileStreamSourceConnector {
            fs,
            config: ConfigMap::new(),
        }
    }
}

impl Default for FileStreamSourceConnector {
    fn default() -> Self {
        FileStreamSourceConnector::new(Arc::new(LocalFs))
    }
}

#[async_trait]
impl Connector for FileStreamSourceConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        self.config = config_def().parse(config)?.map().clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone()]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SourceConnector for FileStreamSourceConnector {
    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::new(self.fs.clone()))
    }

    /// A file is read from the stored byte position exactly (as Kafka's FileStreamSourceConnector says);
    /// stdin has no position to resume from.
    fn exactly_once_support(&self, config: &ConfigMap) -> ExactlyOnceSupport {
        match config.get(FILE).map(|f| f.trim()) {
            Some(file) if !file.is_empty() => ExactlyOnceSupport::Supported,
            _ => ExactlyOnceSupport::Unsupported,
        }
    }

    /// As Kafka's FileStreamSourceConnector: partitions name a `filename`, offsets hold a non-negative
    /// integer `position`; the connector keeps no offsets of its own.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<bool, ConnectError> {
        for (partition, offset) in offsets {
            if !partition.get("filename").is_some_and(|f| f.is_string()) {
                return Err(ConnectError::fatal(format!(
                    "the partition {partition} has no \"filename\" (a FileStreamSource partition is {{\"filename\": <file>}})"
                )));
            }
            let Some(offset) = offset else {
                continue;
            };
            if offset.get(POSITION).and_then(|p| p.as_u64()).is_none() {
                return Err(ConnectError::fatal(format!(
                    "the offset {offset} of partition {partition} needs a non-negative integer \"position\" (the byte position to read from)"
                )));
            }
        }
        Ok(true)
    }
}

/// Reads lines from a file, or from stdin when `file` is empty (stdin has no offsets).
pub struct FileStreamSourceTask {
    fs: Arc<dyn FileSystem>,
    file: String,
    topic: Arc<str>,
    batch_size: usize,
    partition: SourceMap,
    reader: Option<Reader>,
    /// Byte offset in the file of `pending[0]`.
    position: u64,
    /// Bytes read but not yet emitted: at most an incomplete last line once a poll returns.
    pending: Vec<u8>,
    /// Where the lines of the batch being taken end in `pending` (kept for its allocation).
    line_ends: Vec<usize>,
    warned_missing: bool,
    /// The file being read, as its offsets name it.
    identity: FileIdentity,
    max_line_bytes: usize,
    /// Lines longer than `max_line_bytes` are skipped (`errors.tolerance=all`) rather than fatal.
    skip_long_lines: bool,
    /// Dropping the rest of a line too long to keep, up to its newline.
    skipping: bool,
    /// The file's first bytes as read from its start, while the identity's fingerprint covers fewer
    /// than [`HEAD_BYTES`] of them (the file was short when opened); `None` once it covers enough, or
    /// when reading began past the start.
    head: Option<Vec<u8>>,
}

impl Default for FileStreamSourceTask {
    fn default() -> Self {
        FileStreamSourceTask::new(Arc::new(LocalFs))
    }
}

impl FileStreamSourceTask {
    /// A task reading from `fs`.
    pub fn new(fs: Arc<dyn FileSystem>) -> FileStreamSourceTask {
        FileStreamSourceTask {
            fs,
            file: String::new(),
            topic: Arc::from(""),
            batch_size: 0,
            partition: SourceMap::default(),
            reader: None,
            position: 0,
            pending: Vec::new(),
            line_ends: Vec::new(),
            warned_missing: false,
            identity: FileIdentity::default(),
            max_line_bytes: usize::MAX,
            skip_long_lines: false,
            skipping: false,
            head: None,
        }
    }

    fn stdin(&self) -> bool {
        self.file.is_empty()
    }

    /// Opens the file at the committed position; `Ok(false)` if it does not exist yet.
    async fn open(&mut self, resume_at: u64) -> Result<bool, ConnectError> {
        if self.stdin() {
            self.reader = Some(Box::new(tokio::io::stdin()));
            return Ok(true);
        }
        match open_at(&*self.fs, &self.file, resume_at).await? {
            Some((file, identity)) => {
                self.read_from(file, identity, resume_at);
                Ok(true)
            }
            None => {
                if !self.warned_missing {
                    tracing::warn!(file = %self.file, "source file not found; waiting for it to be created");
                    self.warned_missing = true;
                }
                Ok(false)
            }
        }
    }

    /// Reads `file`, which is `identity`, from `position` on.
    fn read_from(&mut self, file: Reader, identity: FileIdentity, position: u64) {
        self.identity = identity;
        self.position = position;
        self.pending.clear();
        self.skipping = false;
        self.head = (position == 0 && self.identity.head_len() < HEAD_BYTES).then(Vec::new);
        self.warned_missing = false;
        self.reader = Some(file);
    }

    /// Where a stored offset resumes in the file at the path now: its position if the file is the one
    /// the offset was in, its start if that file was truncated or replaced since.
    async fn resume_point(
        &mut self,
        position: u64,
        stored: &FileIdentity,
    ) -> Result<u64, ConnectError> {
        let stat = self
            .fs
            .stat(&self.file)
            .await
            .map_err(|e| ConnectError::io(format!("cannot open {}", self.file), e))?;
        let Some(stat) = stat else {
            return Ok(0);
        };
        let change = stored
            .compare(&*self.fs, &self.file, stat, position)
            .await
            .map_err(|e| ConnectError::io(format!("cannot read {}", self.file), e))?;
        match change {
            Change::Same => Ok(position),
            Change::Truncated => {
                tracing::warn!(file = %self.file, position, length = stat.len, "the source file is shorter than the committed position: it was truncated; reading it from its start");
                Ok(0)
            }
            Change::Replaced => {
                tracing::warn!(file = %self.file, position, "the source file is not the one the committed position is in: it was replaced; reading the new one from its start");
                Ok(0)
            }
        }
    }

    /// At the end of what the file holds: what the path holds now. A file replaced (rotated) or removed
    /// is read to its end once more first, where inodes tell it apart from the new one: its writer may
    /// have added lines between the read that found its end and the look at the path. Then its
    /// unfinished last line is finished (a replaced or removed file is done) and reading moves to the
    /// new file's start. A truncated file is read again from its start.
    ///
    /// Cancel-safe: the reader, position and unfinished line change only after the last await.
    async fn follow_rotation(&mut self) -> Result<Rotation, ConnectError> {
        let read_to = self.position + self.pending.len() as u64;
        let stat = self
            .fs
            .stat(&self.file)
            .await
            .map_err(|e| ConnectError::io(format!("cannot open {}", self.file), e))?;
        let change = match stat {
            None => Change::Replaced,
            Some(stat) => self
                .identity
                .compare(&*self.fs, &self.file, stat, read_to)
                .await
                .map_err(|e| ConnectError::io(format!("cannot read {}", self.file), e))?,
        };
        if change == Change::Same {
            return Ok(Rotation::Unchanged);
        }
        // Only inodes prove the open file is another one than the path's: without them (turmoil's
        // disks, some platforms) a new start may be this very file rewritten in place.
        let still_readable = change == Change::Replaced && self.identity.has_inode();
        if still_readable && self.read_chunk().await? > 0 {
            return Ok(Rotation::OldFileGrew);
        }
        let next = open_at(&*self.fs, &self.file, 0).await?;
        let mut finished = Vec::new();
        if change == Change::Truncated {
            tracing::warn!(file = %self.file, read = read_to, "the source file was truncated; reading it again from its start");
            if !self.pending.is_empty() {
                tracing::warn!(file = %self.file, bytes = self.pending.len(), "an unfinished last line was cut off by the truncation and is dropped");
            }
        } else {
            if stat.is_some() {
                tracing::info!(file = %self.file, "the source file was replaced (rotated): finished the old one, reading the new one from its start");
            } else {
                tracing::info!(file = %self.file, "the source file was removed: finished it, waiting for a new one");
            }
            if !self.pending.is_empty() && !self.skipping {
                self.pending.push(b'\n');
                self.take_lines(&mut finished)?;
            }
        }
        match next {
            Some((file, identity)) => self.read_from(file, identity, 0),
            None => {
                self.reader = None;
                self.pending.clear();
                self.skipping = false;
                self.position = 0;
                self.identity = FileIdentity::default();
            }
        }
        Ok(Rotation::Moved(finished))
    }

    /// Reads the next bytes of the file (at most [`READ_CHUNK`]) onto the end of `pending`, straight
    /// into its spare room; 0 at its end. Cancel-safe: a read that did not finish added nothing.
    async fn read_chunk(&mut self) -> Result<usize, ConnectError> {
        let reader = self.reader.as_mut().expect("read only once opened");
        let before = self.pending.len();
        self.pending.reserve(READ_CHUNK);
        let n = reader
            .read_buf(&mut (&mut self.pending).limit(READ_CHUNK))
            .await
            .map_err(|e| ConnectError::io(format!("cannot read {}", self.file), e))?;
        self.lengthen_head(before);
        Ok(n)
    }

    /// Moves complete lines out of `pending` into records, up to the batch size; a line longer than
    /// `max.line.bytes` is skipped or fails the task.
    fn take_lines(&mut self, records: &mut Vec<SourceRecord>) -> Result<(), ConnectError> {
        // One pass finds the batch's line ends (a line skipped as too long still counts: the batch
        // then holds fewer). The batch's bytes are checked as UTF-8 at once (a line ends at an ASCII
        // byte, so each line of valid text is valid too); line by line, and decoded lossily, only if
        // that check fails.
        let mut line_ends = std::mem::take(&mut self.line_ends);
        line_ends.clear();
        line_ends.extend(memchr_iter(b'\n', &self.pending).take(self.batch_size));
        let batch_end = line_ends.last().map_or(0, |newline| newline + 1);
        let text = std::str::from_utf8(&self.pending[..batch_end]).ok();
        let mut start = 0;
        let mut too_long = Ok(());
        for &end in &line_ends {
            if records.len() >= self.batch_size {
                break;
            }
            let newline = end - start;
            if newline > self.max_line_bytes {
                too_long = self.line_too_long(self.position + start as u64);
                if too_long.is_err() {
                    break;
                }
                start = end + 1;
                continue;
            }
            let line_end = if end > start && self.pending[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let line = match text.and_then(|text| text.get(start..line_end)) {
                Some(line) => line.to_owned(),
                None => String::from_utf8_lossy(&self.pending[start..line_end]).into_owned(),
            };
            start = end + 1;
            let offset = if self.stdin() {
                SourceMap::default()
            } else {
                self.identity.offset(self.position + start as u64)
            };
            records.push(SourceRecord::new(
                self.partition.clone(),
                offset,
                self.topic.clone(),
                Data::string(line),
            ));
        }
        self.line_ends = line_ends;
        self.pending.drain(..start);
        self.position += start as u64;
        too_long
    }

    /// A line starting at byte `at` is longer than `max.line.bytes`: an error, or (tolerated) a warning
    /// and the line is skipped.
    fn line_too_long(&self, at: u64) -> Result<(), ConnectError> {
        let what = format!(
            "{}: the line starting at byte {at} is longer than {MAX_LINE_BYTES}={}",
            self.source_name(),
            self.max_line_bytes
        );
        if !self.skip_long_lines {
            return Err(ConnectError::fatal(format!(
                "{what}; raise {MAX_LINE_BYTES}, or set {ERRORS_TOLERANCE}=all to skip such lines"
            )));
        }
        tracing::warn!(file = %self.source_name(), position = at, "{what}: skipping it ({ERRORS_TOLERANCE}=all)");
        Ok(())
    }

    fn source_name(&self) -> &str {
        if self.stdin() {
            "stdin"
        } else {
            &self.file
        }
    }

    /// Extends the file's fingerprint with the bytes just read onto `pending` from index `from`, while
    /// it covers fewer than [`HEAD_BYTES`].
    fn lengthen_head(&mut self, from: usize) {
        let Some(head) = self.head.as_mut() else {
            return;
        };
        let read = &self.pending[from..];
        let wanted = (HEAD_BYTES as usize - head.len()).min(read.len());
        head.extend_from_slice(&read[..wanted]);
        if head.len() as u64 > self.identity.head_len() {
            self.identity.read_head(head);
        }
        if head.len() as u64 >= HEAD_BYTES {
            self.head = None;
        }
    }

    /// Drops the rest of a line too long to keep, up to and including its newline if it has come.
    fn skip_rest_of_long_line(&mut self) {
        let dropped = match memchr(b'\n', &self.pending) {
            Some(newline) => {
                self.skipping = false;
                newline + 1
            }
            None => self.pending.len(),
        };
        self.pending.drain(..dropped);
        self.position += dropped as u64;
    }
}

/// The file at `path` now, opened at `position`, and its identity; `None` if there is none. Changes
/// nothing, so that a poll cancelled while it waits loses nothing.
async fn open_at(
    fs: &dyn FileSystem,
    path: &str,
    position: u64,
) -> Result<Option<(Reader, FileIdentity)>, ConnectError> {
    let cannot_open = |e| ConnectError::io(format!("cannot open {path}"), e);
    let Some(stat) = fs.stat(path).await.map_err(cannot_open)? else {
        return Ok(None);
    };
    let Some(file) = fs.open_read(path, position).await.map_err(cannot_open)? else {
        return Ok(None);
    };
    let identity = FileIdentity::of(fs, path, stat)
        .await
        .map_err(|e| ConnectError::io(format!("cannot read {path}"), e))?;
    Ok(Some((file, identity)))
}

/// What [`FileStreamSourceTask::follow_rotation`] found at the end of the file.
enum Rotation {
    /// The path still holds the file being read: wait for more lines.
    Unchanged,
    /// The file was replaced or removed, but had more bytes: they are pending, read on.
    OldFileGrew,
    /// Reading moved to what the path holds now; the old file's unfinished last line, finished.
    Moved(Vec<SourceRecord>),
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let parsed: ParsedConfig = config_def().parse(context.configs())?;
        self.file = parsed.string(FILE).to_owned();
        self.topic = Arc::from(parsed.list(TOPIC).concat());
        self.batch_size = usize::try_from(parsed.int(BATCH_SIZE)).unwrap_or(2000);
        self.max_line_bytes = usize::try_from(parsed.int(MAX_LINE_BYTES)).unwrap_or(usize::MAX);
        self.skip_long_lines = parsed.get(ERRORS_TOLERANCE) == Some("all");
        if !self.stdin() {
            self.partition = SourceMap::single("filename", self.file.clone());
        }
        let stored = match self.stdin() {
            true => None,
            false => context.offset_storage_reader().offset(&self.partition),
        };
        let resume_at = match stored {
            None => 0,
            Some(offset) => {
                let position = offset
                    .get(POSITION)
                    .and_then(|position| position.as_u64())
                    .ok_or_else(|| {
                        ConnectError::fatal(format!(
                            "stored offset {offset} for {} has no numeric \"position\"",
                            self.partition
                        ))
                    })?;
                self.resume_point(position, &FileIdentity::from_offset(&offset))
                    .await?
            }
        };
        if resume_at > 0 {
            tracing::info!(file = %self.file, position = resume_at, "resuming from the committed position");
        }
        self.position = resume_at;
        self.open(resume_at).await?;
        Ok(())
    }

    /// Cancel-safe: state changes only after the last await of a call.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.reader.is_none() && !self.open(self.position).await? {
            tokio::time::sleep(TAIL_INTERVAL).await;
            return Ok(Vec::new());
        }
        loop {
            if self.skipping {
                self.skip_rest_of_long_line();
            }
            // Counted up to the batch size: what lies beyond is the next poll's.
            let lines = memchr_iter(b'\n', &self.pending)
                .take(self.batch_size)
                .count();
            if lines > 0 {
                // Records are large: growing the batch one doubling at a time would copy it over and over.
                let mut records = Vec::with_capacity(lines.min(self.batch_size));
                self.take_lines(&mut records)?;
                return Ok(records);
            }
            if self.pending.len() > self.max_line_bytes {
                // No newline yet, and already too long: keeping more would grow without bound.
                self.line_too_long(self.position)?;
                self.skipping = true;
                continue;
            }
            if self.read_chunk().await? == 0 {
                if !self.stdin() {
                    match self.follow_rotation().await? {
                        Rotation::Unchanged => {}
                        Rotation::OldFileGrew => continue,
                        Rotation::Moved(finished) => return Ok(finished),
                    }
                }
                tokio::time::sleep(TAIL_INTERVAL).await;
                return Ok(Vec::new());
            }
        }
    }

    /// Its `commit_record` is the default, which reads nothing: nothing of a record is kept for it.
    fn commit_record_reads(&self) -> CommitRecordReads {
        CommitRecordReads::Nothing
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.reader = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;

    use sluice_core::api::{OffsetStorageReader, SourceOffset, SourcePartition};

    use super::*;

    /// Committed offsets as the runtime's offset store would hand them back.
    struct Committed(BTreeMap<String, SourceOffset>);

    impl OffsetStorageReader for Committed {
        fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
            self.0.get(&partition.to_string()).cloned()
        }
    }

    fn context(file: &std::path::Path, committed: Option<u64>) -> SourceTaskContext {
        let config = ConfigMap::from([
            (FILE.to_owned(), file.display().to_string()),
            (TOPIC.to_owned(), "lines".to_owned()),
        ]);
        let partition = SourceMap::single("filename", file.display().to_string());
        let offsets = committed
            .map(|p| (partition.to_string(), SourceMap::single("position", p)))
            .into_iter()
            .collect();
        SourceTaskContext::new(config, Arc::new(Committed(offsets)))
    }

    fn lines_and_positions(records: &[SourceRecord]) -> Vec<(String, u64)> {
        records
            .iter()
            .map(|r| {
                let line = r.value.value.as_str().unwrap_or_default().to_owned();
                let position = r.source_offset.get("position").and_then(|p| p.as_u64());
                (line, position.unwrap_or(u64::MAX))
            })
            .collect()
    }

    /// A task reading a file that holds `short\n` and then 19 bytes without a newline, with
    /// `max.line.bytes=10` and `errors.tolerance=tolerance`, after its first poll returned `short`.
    /// Also the file, to append to, and its directory, which lives as long as the test.
    async fn past_a_short_line(
        tolerance: &str,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::fs::File,
        FileStreamSourceTask,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"short\nno newline in sight").unwrap();
        let mut task = with_max_line_bytes_10(&path, tolerance).await;
        assert_eq!(
            lines_and_positions(&task.poll().await.unwrap()),
            [("short".to_owned(), 6)]
        );
        (dir, path, file, task)
    }

    /// A task reading `path` with `max.line.bytes=10` and `errors.tolerance=tolerance`.
    async fn with_max_line_bytes_10(
        path: &std::path::Path,
        tolerance: &str,
    ) -> FileStreamSourceTask {
        let mut config = context(path, None).configs().clone();
        config.insert(MAX_LINE_BYTES.to_owned(), "10".to_owned());
        config.insert(ERRORS_TOLERANCE.to_owned(), tolerance.to_owned());
        let context = SourceTaskContext::new(config, Arc::new(Committed(BTreeMap::new())));
        let mut task = FileStreamSourceTask::default();
        task.start(context).await.unwrap();
        task
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_of_exactly_max_line_bytes_is_kept_whole_or_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"0123456789\nabcdefghij").unwrap();
        let mut task = with_max_line_bytes_10(&path, "none").await;
        assert_eq!(lines(&task.poll().await.unwrap()), ["0123456789"]);
        // Ten bytes without their newline yet: not too long.
        assert!(task.poll().await.unwrap().is_empty());
        append(&path, b"\n");
        assert_eq!(lines(&task.poll().await.unwrap()), ["abcdefghij"]);
    }

    #[tokio::test(start_paused = true)]
    async fn empty_lines_are_records_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"\n\nx\n\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(
            lines_and_positions(&task.poll().await.unwrap()),
            [
                (String::new(), 1),
                (String::new(), 2),
                ("x".to_owned(), 4),
                (String::new(), 5)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_empty_when_opened_then_written_past_a_fingerprint_in_one_go_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert!(task.poll().await.unwrap().is_empty());
        // One read brings more than the fingerprint's 64 bytes.
        append(
            &path,
            b"a first line, long enough on its own to pass the fingerprint's 64 bytes\n",
        );
        let committed = task.poll().await.unwrap().pop().unwrap().source_offset;
        task.stop().await.unwrap();
        append(&path, b"second\n");
        assert_eq!(
            lines_after_restart(&path, &committed).await,
            ["second"],
            "the offset {committed} names this file: it resumes, not reads again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_past_max_line_bytes_fails_the_task_naming_file_and_position() {
        let (_dir, path, _file, mut task) = past_a_short_line("none").await;
        let error = task.poll().await.expect_err("too long").to_string();
        assert!(
            error.contains(&format!(
                "{}: the line starting at byte 6 is longer than max.line.bytes=10",
                path.display()
            )),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_past_max_line_bytes_is_skipped_when_errors_are_tolerated() {
        let (_dir, _path, mut file, mut task) = past_a_short_line("all").await;
        assert!(task.poll().await.unwrap().is_empty());
        assert!(
            task.pending.len() <= 10,
            "a line without a newline is not kept whole"
        );
        file.write_all(b" yet\nnext\nalso much too long\nlast\n")
            .unwrap();
        let mut records = Vec::new();
        while records.len() < 2 {
            records.extend(task.poll().await.unwrap());
        }
        assert_eq!(
            lines_and_positions(&records),
            [("next".to_owned(), 35), ("last".to_owned(), 59)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_utf8_is_replaced_and_positions_stay_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"ok\nbad \xff byte\nnext\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        let records = task.poll().await.unwrap();
        assert_eq!(
            lines_and_positions(&records),
            [
                ("ok".to_owned(), 3),
                ("bad \u{fffd} byte".to_owned(), 14),
                ("next".to_owned(), 19)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn multibyte_text_is_kept_whole_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        // A batch is checked as UTF-8 up to its last line; the next batch's bad byte spoils only its own.
        std::fs::write(&path, "été\n日本\r\nnaïve\n".as_bytes()).unwrap();
        append(&path, b"\xe6\x97\n");
        let config = ConfigMap::from([
            (FILE.to_owned(), path.display().to_string()),
            (TOPIC.to_owned(), "lines".to_owned()),
            (BATCH_SIZE.to_owned(), "2".to_owned()),
        ]);
        let mut task = FileStreamSourceTask::default();
        let committed = Arc::new(Committed(BTreeMap::new()));
        task.start(SourceTaskContext::new(config, committed))
            .await
            .unwrap();
        assert_eq!(
            lines_and_positions(&task.poll().await.unwrap()),
            [("été".to_owned(), 6), ("日本".to_owned(), 14)]
        );
        assert_eq!(
            lines_and_positions(&task.poll().await.unwrap()),
            [("naïve".to_owned(), 21), ("\u{fffd}".to_owned(), 24)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn emits_a_line_only_once_it_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"first\nsec").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();

        let records = task.poll().await.unwrap();
        assert_eq!(lines_and_positions(&records), [("first".to_owned(), 6)]);
        assert_eq!(records[0].topic.as_ref(), "lines");
        assert!(
            task.poll().await.unwrap().is_empty(),
            "half a line was emitted"
        );

        file.write_all(b"ond\r\nthird\n").unwrap();
        let records = task.poll().await.unwrap();
        assert_eq!(
            lines_and_positions(&records),
            [("second".to_owned(), 14), ("third".to_owned(), 20)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn resumes_from_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"one\ntwo\nthree\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, Some(4))).await.unwrap();
        let records = task.poll().await.unwrap();
        assert_eq!(
            lines_and_positions(&records),
            [("two".to_owned(), 8), ("three".to_owned(), 14)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_a_missing_file_and_reads_it_once_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.txt");
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert!(task.poll().await.unwrap().is_empty());
        std::fs::write(&path, b"hello\n").unwrap();
        let records = task.poll().await.unwrap();
        assert_eq!(lines_and_positions(&records), [("hello".to_owned(), 6)]);
    }

    fn append(path: &std::path::Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn lines(records: &[SourceRecord]) -> Vec<String> {
        lines_and_positions(records)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    /// A task started on `file` with `committed` as its stored offset, as after a restart.
    async fn restarted_at(file: &std::path::Path, committed: &SourceMap) -> FileStreamSourceTask {
        let partition = SourceMap::single("filename", file.display().to_string());
        let stored = BTreeMap::from([(partition.to_string(), committed.clone())]);
        let mut task = FileStreamSourceTask::default();
        task.start(SourceTaskContext::new(
            context(file, None).configs().clone(),
            Arc::new(Committed(stored)),
        ))
        .await
        .unwrap();
        task
    }

    /// The lines a task restarted at `committed` reads first.
    async fn lines_after_restart(file: &std::path::Path, committed: &SourceMap) -> Vec<String> {
        let mut task = restarted_at(file, committed).await;
        lines(&task.poll().await.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncated_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"one\ntwo\nthree\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap()), ["one", "two", "three"]);
        // copytruncate: the same file, emptied, then written again.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(b"four\n")
            .unwrap();
        assert!(
            task.poll().await.unwrap().is_empty(),
            "the truncation is noticed"
        );
        assert_eq!(
            lines_and_positions(&task.poll().await.unwrap()),
            [("four".to_owned(), 5)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_truncation_into_an_unfinished_line_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        // Whole lines past the fingerprint's 64 bytes, then the start of a line.
        let whole = "0123456789\n".repeat(7);
        std::fs::write(&path, format!("{whole}abc")).unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(task.poll().await.unwrap().len(), 7);
        assert!(task.poll().await.unwrap().is_empty(), "abc is unfinished");
        // Cut inside the unfinished line (the fingerprinted start stays), then, once the source has
        // been to the end, written on.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(whole.len() as u64 + 1)
            .unwrap();
        assert!(
            task.poll().await.unwrap().is_empty(),
            "the truncation is noticed at the end of the file"
        );
        append(&path, b"xyz\n");
        let mut read = Vec::new();
        for _ in 0..4 {
            read.extend(lines(&task.poll().await.unwrap()));
        }
        assert_eq!(
            read.last().map(String::as_str),
            Some("axyz"),
            "the file is read again from its start: {read:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_rewritten_in_place_while_stopped_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"one\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        let committed = task.poll().await.unwrap().pop().unwrap().source_offset;
        task.stop().await.unwrap();
        // The same file (inode), emptied and written again past the committed position.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(b"five\nsix\n")
            .unwrap();
        assert_eq!(
            lines_after_restart(&path, &committed).await,
            ["five", "six"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_empty_when_opened_is_fingerprinted_by_what_was_read_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert!(task.poll().await.unwrap().is_empty());
        append(&path, b"first line\n");
        let committed = task.poll().await.unwrap().pop().unwrap().source_offset;
        task.stop().await.unwrap();
        // copytruncate: the same file, emptied and written past the committed position again.
        std::fs::write(&path, b"another first line\n").unwrap();
        assert_eq!(
            lines_after_restart(&path, &committed).await,
            ["another first line"],
            "the committed offset {committed} fingerprints the line read, not the empty file"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_resumed_past_the_start_of_a_short_file_keeps_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"line1\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        let first = task.poll().await.unwrap().pop().unwrap().source_offset;
        task.stop().await.unwrap();
        // Resumed past the start of a file still shorter than a fingerprint: the bytes it reads next
        // are not the file's first bytes.
        let mut resumed = restarted_at(&path, &first).await;
        append(
            &path,
            b"a second line, long enough to pass the fingerprint's 64 bytes\n",
        );
        let second = resumed.poll().await.unwrap().pop().unwrap().source_offset;
        resumed.stop().await.unwrap();
        append(&path, b"last\n");
        assert_eq!(
            lines_after_restart(&path, &second).await,
            ["last"],
            "the offset {second} still names this file"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_file_is_finished_then_the_new_one_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"old1\nold2\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap()), ["old1", "old2"]);
        // The writer's last words, without a newline, then rotation by renaming.
        append(&path, b"old3");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, b"new1\n").unwrap();
        let finished = task.poll().await.unwrap();
        assert_eq!(lines_and_positions(&finished), [("old3".to_owned(), 15)]);
        let records = task.poll().await.unwrap();
        assert_eq!(lines_and_positions(&records), [("new1".to_owned(), 5)]);
        assert_ne!(
            finished[0].source_offset.get("inode"),
            records[0].source_offset.get("inode"),
            "offsets name the file they are in"
        );
    }

    /// The machine's filesystem, except that the first look at the path once armed is preceded by
    /// `rotate`: the writer's last lines, a rename and a new file land between the task's read that
    /// found the end of the file and its look at what the path holds.
    struct RotatesWhenLookedAt {
        rotate: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    #[async_trait]
    impl FileSystem for RotatesWhenLookedAt {
        async fn open_read(&self, path: &str, position: u64) -> std::io::Result<Option<Reader>> {
            LocalFs.open_read(path, position).await
        }

        async fn stat(&self, path: &str) -> std::io::Result<Option<sluice_core::fs::FileStat>> {
            let rotate = self.rotate.lock().unwrap().take();
            if let Some(rotate) = rotate {
                rotate();
            }
            LocalFs.stat(path).await
        }

        async fn open_append(
            &self,
            path: &str,
        ) -> std::io::Result<Box<dyn sluice_core::fs::AppendFile>> {
            LocalFs.open_append(path).await
        }

        fn read(&self, path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
            LocalFs.read(path)
        }

        fn create(
            &self,
            path: &std::path::Path,
        ) -> std::io::Result<Box<dyn sluice_core::fs::WriteFile>> {
            LocalFs.create(path)
        }

        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            LocalFs.rename(from, to)
        }

        fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            LocalFs.remove_file(path)
        }

        fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
            LocalFs.sync_dir(dir)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn lines_written_to_a_file_just_before_it_is_rotated_are_read_before_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"old1\n").unwrap();
        let fs = Arc::new(RotatesWhenLookedAt {
            rotate: std::sync::Mutex::new(None),
        });
        let mut task = FileStreamSourceTask::new(fs.clone());
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap()), ["old1"]);
        let (old, rotated) = (path.clone(), dir.path().join("app.log.1"));
        *fs.rotate.lock().unwrap() = Some(Box::new(move || {
            append(&old, b"old2\nold3\n");
            std::fs::rename(&old, rotated).unwrap();
            std::fs::write(&old, b"new1\n").unwrap();
        }));
        let mut read = Vec::new();
        for _ in 0..4 {
            read.extend(lines(&task.poll().await.unwrap()));
        }
        assert!(
            fs.rotate.lock().unwrap().is_none(),
            "the file was rotated between the read at its end and the look at the path"
        );
        assert_eq!(read, ["old2", "old3", "new1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_file_that_ended_with_a_whole_line_adds_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"old1\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap()), ["old1"]);
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, b"new1\n").unwrap();
        assert!(
            task.poll().await.unwrap().is_empty(),
            "nothing was left of the old file"
        );
        assert_eq!(lines(&task.poll().await.unwrap()), ["new1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_after_the_file_was_replaced_reads_the_new_one_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, b"a long first file line\nand its second\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, None)).await.unwrap();
        let committed = task.poll().await.unwrap().pop().unwrap().source_offset;
        task.stop().await.unwrap();

        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"short\n").unwrap();
        assert_eq!(lines_after_restart(&path, &committed).await, ["short"]);

        // Replaced by a longer file: the position fits, but the file is another one.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"another file, longer than the first one was\n").unwrap();
        assert_eq!(
            lines_after_restart(&path, &committed).await,
            ["another file, longer than the first one was"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_position_past_the_end_of_a_file_kafka_committed_is_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, b"one\n").unwrap();
        let mut task = FileStreamSourceTask::default();
        task.start(context(&path, Some(400))).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap()), ["one"]);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_batch_size_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "x\n".repeat(10)).unwrap();
        let mut config = context(&path, None).configs().clone();
        config.insert(BATCH_SIZE.to_owned(), "4".to_owned());
        let mut task = FileStreamSourceTask::default();
        task.start(SourceTaskContext::new(
            config,
            Arc::new(Committed(BTreeMap::new())),
        ))
        .await
        .unwrap();
        let sizes = [
            task.poll().await.unwrap().len(),
            task.poll().await.unwrap().len(),
            task.poll().await.unwrap().len(),
        ];
        assert_eq!(sizes, [4, 4, 2]);
    }

    #[tokio::test]
    async fn stdin_mode_ignores_stored_offsets() {
        let config = ConfigMap::from([(TOPIC.to_owned(), "lines".to_owned())]);
        let stale = BTreeMap::from([(SourceMap::default().to_string(), SourceMap::default())]);
        let mut task = FileStreamSourceTask::default();
        task.start(SourceTaskContext::new(config, Arc::new(Committed(stale))))
            .await
            .expect("stdin has no position to resume from");
        task.stop().await.unwrap();
    }

    #[test]
    fn batch_size_must_be_positive() {
        let def = config_def();
        for bad in ["0", "-3", "many"] {
            let config = ConfigMap::from([
                (TOPIC.to_owned(), "lines".to_owned()),
                (BATCH_SIZE.to_owned(), bad.to_owned()),
            ]);
            let err = def.parse(&config).expect_err(bad);
            assert_eq!(err.issues[0].key, BATCH_SIZE, "{bad}");
        }
    }

    #[test]
    fn a_file_supports_exactly_once_and_stdin_does_not() {
        let connector = FileStreamSourceConnector::default();
        let with = |file: &str| ConfigMap::from([(FILE.to_owned(), file.to_owned())]);
        assert_eq!(
            connector.exactly_once_support(&with("/var/log/app.log")),
            ExactlyOnceSupport::Supported
        );
        assert_eq!(
            connector.exactly_once_support(&with(" ")),
            ExactlyOnceSupport::Unsupported
        );
        assert_eq!(
            connector.exactly_once_support(&ConfigMap::new()),
            ExactlyOnceSupport::Unsupported
        );
    }

    #[test]
    fn topic_is_required_and_single() {
        let def = config_def();
        let err = def.parse(&ConfigMap::new()).unwrap_err();
        assert_eq!(err.issues[0].key, TOPIC);
        let two = ConfigMap::from([(TOPIC.to_owned(), "a,b".to_owned())]);
        assert!(def
            .parse(&two)
            .unwrap_err()
            .to_string()
            .contains("exactly one topic"));
    }
}
