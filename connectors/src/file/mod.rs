//! The FileStream connectors: a file (or stdin) into a topic line by line, and a topic into a file, on
//! the filesystem seam of `sluice_core::fs`.

mod identity;
mod output;
mod sink;
mod source;

pub use sink::{FileStreamSinkConnector, FileStreamSinkTask};
pub use source::{FileStreamSourceConnector, FileStreamSourceTask};

pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
pub const SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// The file to read or write; empty means stdin or stdout.
pub const FILE: &str = "file";
