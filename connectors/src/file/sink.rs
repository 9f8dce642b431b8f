//! FileStreamSink: writes each record's value on its own line; `flush` fsyncs, so offsets are committed
//! only for lines that are on disk. A failed write or fsync cuts the file back and has the records
//! delivered again (see [`OutputFile`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, Connector, ConnectorContext, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, TopicPartition,
};
use sluice_core::config::{ConfigDef, ConfigMap, ConfigType};
use sluice_core::data::Value;
use sluice_core::fs::{FileSystem, LocalFs};
use tokio::io::AsyncWriteExt;

use super::output::{OutputError, OutputFile};
use super::FILE;

fn config_def() -> ConfigDef {
    ConfigDef::new().optional(
        FILE,
        ConfigType::String,
        "",
        "Destination file; empty writes stdout.",
    )
}

/// Splits the job into tasks that all append to the same file.
pub struct FileStreamSinkConnector {
    fs: Arc<dyn FileSystem>,
    config: ConfigMap,
}

impl FileStreamSinkConnector {
    /// A connector whose tasks write files on `fs`.
    pub fn new(fs: Arc<dyn FileSystem>) -> FileStreamSinkConnector {
        FileStreamSinkConnector {
            fs,
            config: ConfigMap::new(),
        }
    }
}

impl Default for FileStreamSinkConnector {
    fn default() -> Self {
        FileStreamSinkConnector::new(Arc::new(LocalFs))
    }
}

#[async_trait]
impl Connector for FileStreamSinkConnector {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, config: &ConfigMap, _: ConnectorContext) -> Result<(), ConnectError> {
        self.config = config_def().parse(config)?.map().clone();
        Ok(())
    }

    /// Tasks appending to one file work until a write or fsync fails: a task can then not cut the file
    /// back without destroying the others' lines, and fails instead.
    fn task_configs(&self, max_tasks: usize) -> Vec<ConfigMap> {
        vec![self.config.clone(); max_tasks.max(1)]
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }
}

impl SinkConnector for FileStreamSinkConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::new(self.fs.clone()))
    }

    /// The file keeps no offsets: the consumer group's are all there is.
    fn alter_offsets(
        &self,
        _config: &ConfigMap,
        _offsets: &BTreeMap<TopicPartition, Option<i64>>,
    ) -> Result<bool, ConnectError> {
        Ok(true)
    }
}

enum Output {
    File(OutputFile),
    Stdout(tokio::io::Stdout),
}

/// Appends values to a file (or stdout).
pub struct FileStreamSinkTask {
    fs: Arc<dyn FileSystem>,
    file: String,
    output: Option<Output>,
    buffer: Vec<u8>,
}

impl Default for FileStreamSinkTask {
    fn default() -> Self {
        FileStreamSinkTask::new(Arc::new(LocalFs))
    }
}

impl FileStreamSinkTask {
    /// A task writing on `fs`.
    pub fn new(fs: Arc<dyn FileSystem>) -> FileStreamSinkTask {
        FileStreamSinkTask {
            fs,
            file: String::new(),
            output: None,
            buffer: Vec::new(),
        }
    }

    /// Writes the buffered lines. A file write that fails is a retriable error: the lines are dropped,
    /// what reached the file of them is cut away, and the runtime delivers the records again.
    async fn write_buffer(&mut self) -> Result<(), ConnectError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = match self.output.as_mut() {
            Some(Output::File(file)) => match file.append(&self.buffer).await {
                Ok(()) => Ok(()),
                Err(OutputError::Io(e)) => Err(ConnectError::retriable(format!(
                    "cannot write {}: {e}; the records will be delivered again",
                    self.file
                ))),
                Err(shared) => Err(self.unusable(shared)),
            },
            Some(Output::Stdout(stdout)) => stdout
                .write_all(&self.buffer)
                .await
                .map_err(|e| ConnectError::io("cannot write stdout", e)),
            None => return Err(ConnectError::fatal("the sink task was not started")),
        };
        self.buffer.clear();
        written
    }

    fn unusable(&self, e: OutputError) -> ConnectError {
        ConnectError::fatal(format!("cannot use {}: {e}", self.file))
    }
}

/// A value as one line of text: strings and bytes as they are, other values in a readable form.
fn append_value(buffer: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => buffer.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => buffer.extend_from_slice(b),
        Value::Null => buffer.extend_from_slice(b"null"),
        Value::Boolean(b) => buffer.extend_from_slice(b.to_string().as_bytes()),
        Value::Int8(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
        Value::Int16(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
        Value::Int32(n) | Value::Date(n) | Value::Time(n) => {
            buffer.extend_from_slice(n.to_string().as_bytes())
        }
        Value::Int64(n) | Value::Timestamp(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
        Value::Float32(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
        Value::Float64(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
        other => buffer.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let parsed = config_def().parse(context.configs())?;
        self.file = parsed.string(FILE).to_owned();
        self.output = Some(if self.file.is_empty() {
            Output::Stdout(tokio::io::stdout())
        } else {
            let file = OutputFile::open(&*self.fs, &self.file).await.map_err(|e| {
                ConnectError::io(format!("cannot open {} for writing", self.file), e)
            })?;
            Output::File(file)
        });
        Ok(())
    }

    /// Writes the batch to the file (one write); it is durable only after `flush`.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        for record in &records {
            append_value(&mut self.buffer, &record.value.value);
            self.buffer.push(b'\n');
        }
        self.write_buffer().await
    }

    /// Only values are written.
    fn reads_headers(&self) -> bool {
        false
    }

    /// Fsyncs the file. On failure the lines since the last successful fsync are cut away (a later fsync
    /// would succeed without them), and the runtime delivers everything since its last commit again.
    async fn flush(&mut self, _: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        self.write_buffer().await?;
        match self.output.as_mut() {
            Some(Output::File(output)) => match output.sync().await {
                Ok(()) => Ok(()),
                Err(OutputError::Io(e)) => {
                    Err(ConnectError::io(format!("cannot sync {}", self.file), e))
                }
                Err(shared) => Err(self.unusable(shared)),
            },
            Some(Output::Stdout(s)) => s
                .flush()
                .await
                .map_err(|e| ConnectError::io("cannot write stdout", e)),
            None => Ok(()),
        }
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.output = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::data::Data;

    use super::*;

    fn record(offset: i64, value: Data) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            partition: 0,
            kafka_offset: offset,
            key: Data::NULL,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    #[tokio::test]
    async fn writes_one_value_per_line_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"before\n").unwrap();
        let config = ConfigMap::from([(FILE.to_owned(), path.display().to_string())]);
        let mut task = FileStreamSinkTask::default();
        task.start(SinkTaskContext::new(config)).await.unwrap();
        task.put(vec![
            record(0, Data::string("a")),
            record(1, Data::schemaless(Value::Int64(42))),
            record(2, Data::NULL),
        ])
        .await
        .unwrap();
        let offsets = BTreeMap::from([(TopicPartition::new("t", 0), 3)]);
        assert_eq!(task.pre_commit(&offsets).await.unwrap(), offsets);
        task.stop().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before\na\n42\nnull\n"
        );
    }

    #[tokio::test]
    async fn an_unwritable_file_fails_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("out.txt");
        let config = ConfigMap::from([(FILE.to_owned(), path.display().to_string())]);
        let err = FileStreamSinkTask::default()
            .start(SinkTaskContext::new(config))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
}
