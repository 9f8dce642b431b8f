//! The connector API, shaped like Kafka Connect's: connectors split a job into task configs, source tasks
//! poll records from a system, sink tasks put records into one, and the runtime commits offsets around them.

mod connector;
mod error;
pub mod record;
mod registry;
mod sink;
mod source;
mod source_map;

pub use connector::{
    Connector, ConnectorContext, ConnectorRequest, ExactlyOnceSupport, SinkConnector,
    SourceConnector,
};
pub use error::ConnectError;
pub use record::{
    Header, RecordMetadata, SinkRecord, SourceMap, SourceOffset, SourcePartition, SourceRecord,
    SourceValue, TopicPartition,
};
pub use registry::{ConnectorPlugin, PluginRegistry};
pub use sink::{ErrantRecordReporter, SinkTask, SinkTaskContext, SinkTaskControl};
pub use source::{CommitRecordReads, OffsetStorageReader, SourceTask, SourceTaskContext};
