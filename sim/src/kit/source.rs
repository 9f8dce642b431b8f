//! The author's side of a source test: the external system the connector reads, described by a trait the
//! author implements ([`ExternalSource`]).
//!
//! The system holds `streams` streams of records that appear over simulated time; record `seq` of stream
//! `stream` carries the text [`SourceRecords::value`] (`stream-S:N`), which the connector copies into the
//! Kafka record's value, so the oracle finds every record again in Kafka. The connector's committed source
//! offsets are mapped back to the last record they cover ([`ExternalSource::covered`]): a committed
//! offset says everything up to that record reached Kafka, and a record before it that is not there is
//! lost.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::api::{ConnectorPlugin, SourceOffset, SourcePartition};
use sluice_core::config::ConfigMap;

/// The external system a source connector reads, as the simulation runs it.
///
/// One value serves every run of a test: [`build`](ExternalSource::build) starts a fresh system each
/// time.
pub trait ExternalSource: Send + Sync + 'static {
    /// Adds the system's hosts to the simulation (with `sim.host`); they make `records` appear over
    /// time. State that must survive a crash of a host lives outside the host's closure.
    fn build(&self, sim: &mut turmoil::Sim<'_>, records: SourceRecords);

    /// The names of the hosts `build` adds: a
    /// [`CrashExternal`](crate::faults::Fault::CrashExternal) fault crashes and restarts them.
    fn hosts(&self) -> Vec<String>;

    /// The record (stream, seq) a committed source offset of the connector covers up to and including,
    /// or None if it covers none yet (`seq` -1 also says so).
    fn covered(&self, partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)>;
}

/// What the system must hold by the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRecords {
    /// Streams `0..streams`.
    pub streams: i64,
    /// Records `0..per_stream` of each stream.
    pub per_stream: i64,
    /// A record of each stream appears this often, from the start of the run.
    pub interval: Duration,
}

impl SourceRecords {
    /// The text record `seq` of stream `stream` carries.
    pub fn value(stream: i64, seq: i64) -> String {
        format!("stream-{stream}:{seq}")
    }
}

/// The connector under test and its external system.
#[derive(Clone)]
pub struct SourceUnderTest {
    /// The class name the connector is registered under.
    pub class: String,
    /// Makes the connector, with what it needs to reach its system (a [`SimDialer`](super::SimDialer)).
    pub plugin: ConnectorPlugin,
    /// The connector's config; the kit adds `name`. The connector must write to the topic
    /// [`SimTest::topic`](super::SimTest::topic) names.
    pub config: ConfigMap,
    /// The model of the system the connector reads.
    pub system: Arc<dyn ExternalSource>,
}

impl fmt::Debug for SourceUnderTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceUnderTest")
            .field("class", &self.class)
            .field("config", &self.config)
            .field("hosts", &self.system.hosts())
            .finish()
    }
}
