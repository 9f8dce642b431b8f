//! The application that writes the file-to-file scenario's input: it appends numbered, fixed-width lines
//! to a file on its host's simulated disk, each batch in two pieces split inside a line and then synced,
//! and after a restart goes on from what the disk kept.

use std::io::{self, Write};
use std::time::Duration;

use turmoil::fs::shim::std::fs::{self, OpenOptions};

/// Where the input lives, on worker 0's disk.
pub const INPUT_FILE: &str = "/data/input.txt";
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

/// The pause between the two pieces of a batch.
const PIECE_PAUSE: Duration = Duration::from_millis(3);

/// Creates the directory the files live in, durably.
pub fn create_data_dir() -> io::Result<()> {
    fs::create_dir_all("/data")?;
    fs::sync_dir("/")
}

/// Appends lines `0..total` to [`INPUT_FILE`], `batch` every `interval`, resuming after the lines already
/// on disk.
pub async fn write_input(total: u64, batch: u64, interval: Duration) -> io::Result<()> {
    let on_disk = match fs::metadata(INPUT_FILE) {
        Ok(metadata) => metadata.len() / LINE_BYTES,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(INPUT_FILE)?;
    fs::sync_dir("/data")?;
    let mut next = on_disk;
    while next < total {
        tokio::time::sleep(interval).await;
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
