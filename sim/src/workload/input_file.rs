//! The application that writes the file-to-file scenario's input: it appends numbered, fixed-width lines
//! to a file on its host's simulated disk, each batch in two pieces split inside a line and then synced,
//! and after a restart goes on from what the disk kept. When the harness asks, it rotates the file as
//! logrotate's `copytruncate` does: it copies the file aside and empties it in place, then goes on
//! writing into it. [`InputRotations`] remembers where each of the file's lives began, so that a
//! FileStreamSource offset (a byte position in one of them) maps back to a line.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use sluice_core::api::SourceOffset;
use sluice_core::hash::fnv1a64;
use turmoil::fs::shim::std::fs::{self, OpenOptions};

use crate::coverage::{self, Event};

/// Where the input lives, on worker 0's disk.
pub const INPUT_FILE: &str = "/data/input.txt";
/// Where a rotation copies the input before emptying it.
pub const ROTATED_FILE: &str = "/data/input.txt.1";
/// Where each worker's FileStreamSink writes, on its own disk.
pub const OUTPUT_FILE: &str = "/data/output.txt";

/// Line `n` of the input, newline included.
pub fn input_line(n: u64) -> String {
    format!("line-{n:08}\n")
}

/// Bytes in every input line.
pub const LINE_BYTES: u64 = 14;

/// Where a batch of `len` bytes is split: in the middle of the line around its middle (a batch of whole
/// lines split at its half would often split between two lines).
fn split_inside_a_line(len: usize) -> usize {
    let line = LINE_BYTES as usize;
    (len / 2 / line * line + line / 2).min(len - 1)
}

/// Lines enough to cover the 64 bytes FileStreamSource fingerprints of a file's start.
const HEAD_LINES: u64 = 5;

/// The pause between the two pieces of a batch.
const PIECE_PAUSE: Duration = Duration::from_millis(3);

/// Creates the directory the files live in, durably.
pub fn create_data_dir() -> io::Result<()> {
    fs::create_dir_all("/data")?;
    fs::sync_dir("/")
}

/// The input file's rotations: the first line of each of its lives, and the rotations the harness has
/// asked for and the writer not yet made. Kept outside the host, which forgets everything in a crash.
#[derive(Debug, Default)]
pub struct InputRotations {
    state: Mutex<Rotations>,
}

#[derive(Debug, Default)]
struct Rotations {
    /// The first line of every life of the file after its first (which begins at line 0).
    firsts: Vec<u64>,
    requested: bool,
}

impl InputRotations {
    fn state(&self) -> std::sync::MutexGuard<'_, Rotations> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the writer to rotate the file once the source has committed every line it holds.
    pub fn request(&self) {
        self.state().requested = true;
    }

    fn requested(&self) -> bool {
        self.state().requested
    }

    fn rotated(&self, first: u64) {
        let mut state = self.state();
        state.requested = false;
        state.firsts.push(first);
    }

    /// The last input line a FileStreamSource offset covers: its `position` counts bytes from the start
    /// of the life of the file its `head` fingerprints. `None` before the first line.
    pub fn last_line(&self, offset: &SourceOffset) -> Option<i64> {
        let position = offset.get("position")?.as_i64()?;
        let lines = position / LINE_BYTES as i64;
        if lines == 0 {
            return None;
        }
        let head = offset
            .get("head")
            .and_then(|head| head.as_str().map(str::to_owned));
        let first = match head.as_deref().and_then(|head| head.split_once(':')) {
            None => 0,
            Some((len, hash)) => {
                let len: usize = len.parse().ok()?;
                let firsts = self.state().firsts.clone();
                // The newest life whose first bytes have this fingerprint.
                std::iter::once(0).chain(firsts).rev().find(|&first| {
                    let text: String = (first..first + HEAD_LINES).map(input_line).collect();
                    format!("{:016x}", fnv1a64(&text.as_bytes()[..len.min(text.len())])) == hash
                })?
            }
        };
        Some(first as i64 + lines - 1)
    }
}

/// Appends lines `0..total` to [`INPUT_FILE`], `batch` every `interval`, resuming after the lines already
/// on disk. When a rotation is asked for, it stops writing until `committed()` (the last line the
/// source has committed) reaches the last line written, then rotates the file.
pub async fn write_input(
    total: u64,
    batch: u64,
    interval: Duration,
    rotations: &InputRotations,
    committed: impl Fn() -> Option<i64>,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(INPUT_FILE)?;
    fs::sync_dir("/data")?;
    cut_unfinished_line(&file)?;
    let mut next = match last_line_in(INPUT_FILE)? {
        Some(last) => last + 1,
        None => last_line_in(ROTATED_FILE)?.map_or(0, |last| last + 1),
    };
    while next < total {
        tokio::time::sleep(interval).await;
        if rotations.requested() {
            if committed().is_some_and(|line| line + 1 >= next as i64) {
                rotate(&mut file)?;
                rotations.rotated(next);
                coverage::reached(Event::InputRotated);
            }
            continue;
        }
        let end = (next + batch).min(total);
        let text: String = (next..end).map(input_line).collect();
        // Written in two pieces split inside a line, as applications write (so the source meets half a
        // line), then synced, so a crash keeps whole batches only.
        let (first, rest) = text.as_bytes().split_at(split_inside_a_line(text.len()));
        file.write_all(first)?;
        tokio::time::sleep(PIECE_PAUSE).await;
        file.write_all(rest)?;
        file.sync_all()?;
        next = end;
    }
    Ok(())
}

/// A writer stopped between the two pieces of a batch (its worker's host stopped cleanly, which keeps
/// what was written) left half a line: cut it off before writing on, as an application repairs its log.
fn cut_unfinished_line(file: &fs::File) -> io::Result<()> {
    let text = fs::read(INPUT_FILE)?;
    if text.last().is_none_or(|&last| last == b'\n') {
        return Ok(());
    }
    let whole = text
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    file.set_len(whole as u64)?;
    file.sync_all()
}

/// logrotate's `copytruncate`: the input is copied to [`ROTATED_FILE`] (durably), then emptied in place.
fn rotate(input: &mut fs::File) -> io::Result<()> {
    let mut copy = fs::File::create(ROTATED_FILE)?;
    copy.write_all(&fs::read(INPUT_FILE)?)?;
    copy.sync_all()?;
    fs::sync_dir("/data")?;
    input.set_len(0)?;
    input.sync_all()
}

/// The number of the last whole line of a file on this host's disk.
fn last_line_in(path: &str) -> io::Result<Option<u64>> {
    let lines = read_lines(path)?;
    Ok(lines.iter().rev().find_map(|line| {
        line.strip_prefix("line-")
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse().ok())
    }))
}

/// The lines of a file on this host's disk (empty if it does not exist).
pub fn read_lines(path: &str) -> io::Result<Vec<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FileStreamSource offset in the life of the file that begins at line `first`, `lines` lines in,
    /// fingerprinted by the first `head` bytes of that life.
    fn offset(first: u64, lines: u64, head: usize) -> SourceOffset {
        let text: String = (first..first + 5).map(input_line).collect();
        let hash = fnv1a64(&text.as_bytes()[..head]);
        SourceOffset::new(
            serde_json::json!({
                "position": lines * LINE_BYTES,
                "head": format!("{head}:{hash:016x}"),
            })
            .as_object()
            .cloned()
            .unwrap(),
        )
    }

    #[test]
    fn an_offset_maps_to_a_line_of_the_life_of_the_file_it_is_in() {
        let rotations = InputRotations::default();
        assert_eq!(rotations.last_line(&offset(0, 30, 64)), Some(29));
        rotations.request();
        assert!(rotations.requested());
        rotations.rotated(500);
        assert!(!rotations.requested());
        assert_eq!(rotations.last_line(&offset(0, 30, 64)), Some(29));
        assert_eq!(rotations.last_line(&offset(500, 3, 42)), Some(502));
        assert_eq!(rotations.last_line(&offset(500, 0, 0)), None, "no line yet");
        assert_eq!(
            rotations.last_line(&offset(7, 3, 64)),
            None,
            "no life of the file begins at line 7"
        );
    }

    #[test]
    fn a_batch_is_split_inside_a_line() {
        for lines in 1..=20 {
            let len = lines * LINE_BYTES as usize;
            let at = split_inside_a_line(len);
            assert!(0 < at && at < len, "{lines} lines split at {at}");
            assert_ne!(at % LINE_BYTES as usize, 0, "{lines} lines split at {at}");
        }
    }
}
