//! The author's side of a source test: the external system the connector reads, described by a trait the
//! author implements ([`ExternalSource`]).
//!
//! The system holds `streams` streams of records that appear over simulated time; record `seq` of stream
//! `stream` carries an identity the connector copies into the Kafka record's value, so the oracle finds
//! every record again in Kafka: by default the text [`SourceRecords::value`] (`stream-S:N`), or whatever
//! the model's [`ExternalSource::identify`] reads back (a row's key columns, an event's id). The connector's committed source
//! offsets are mapped back to the last record they cover ([`ExternalSource::covered`]): a committed
//! offset says everything up to that record reached Kafka, and a record before it that is not there is
//! lost.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use sluice_core::api::{ConnectorPlugin, SourceOffset, SourcePartition};
use sluice_core::config::ConfigMap;

/// The external system a source connector reads, as the simulation runs it.
///
/// One value serves every run of a test: [`build`](ExternalSource::build) starts a fresh system each
/// time.
pub trait ExternalSource: Send + Sync + 'static {
    /// Adds the system's hosts to the simulation (with `sim.host`); they make `records` appear over
    /// time ([`SourceRecords::appeared`]). State that must survive a crash of a host lives outside the
    /// host's closure.
    fn build(&self, sim: &mut turmoil::Sim<'_>, records: SourceRecords);

    /// The names of the hosts `build` adds: a
    /// [`CrashExternal`](crate::faults::Fault::CrashExternal) fault crashes and restarts them.
    fn hosts(&self) -> Vec<String>;

    /// The record (stream, seq) a committed source offset of the connector covers up to and including,
    /// or None if it covers none yet (`seq` -1 also says so).
    fn covered(&self, partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)>;

    /// The record (stream, seq) a Kafka record's value holds, or None if it holds none of the system's
    /// records. By default the value is the text [`SourceRecords::value`] (`stream-S:N`), exactly; a
    /// system whose records look otherwise (JSON rows, events with ids) reads its own identity back
    /// here. The oracle holds every Kafka record of the topic to it: a value it cannot identify is no
    /// record of the system.
    fn identify(&self, value: &[u8]) -> Option<(i64, i64)> {
        SourceRecords::identify(value)
    }
}

/// What the system must hold by the end of the run, and when each record appears: the gaps between a
/// stream's records are drawn from the run's seed, `interval` on average, some records coming in bursts
/// and some after pauses of several intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecords {
    /// Streams `0..streams`.
    pub streams: i64,
    /// Records `0..per_stream` of each stream.
    pub per_stream: i64,
    /// The mean time between two records of a stream.
    pub interval: Duration,
    /// Per stream, when each record appears (simulated time since the start of the run).
    appears: Vec<Vec<Duration>>,
}

impl SourceRecords {
    /// The records of a run under `seed`.
    pub(crate) fn drawn(
        streams: i64,
        per_stream: i64,
        interval: Duration,
        seed: u64,
    ) -> SourceRecords {
        let mut rng = StdRng::seed_from_u64(seed ^ RECORD_TIMES);
        let mean = interval.as_millis().max(1) as u64;
        let appears = (0..streams)
            .map(|_| {
                let mut at = 0;
                (0..per_stream)
                    .map(|_| {
                        at += match rng.random_range(0..10) {
                            // A burst: together with the one before.
                            0..=2 => 0,
                            // A pause.
                            9 => rng.random_range(mean..=mean * 5),
                            _ => rng.random_range(mean / 2..=mean * 3 / 2),
                        };
                        Duration::from_millis(at)
                    })
                    .collect()
            })
            .collect();
        SourceRecords {
            streams,
            per_stream,
            interval,
            appears,
        }
    }

    /// How many records of `stream` have appeared by `at` (records `0..n`).
    pub fn appeared(&self, stream: i64, at: Duration) -> i64 {
        self.appears
            .get(usize::try_from(stream).unwrap_or(usize::MAX))
            .map_or(0, |times| times.partition_point(|t| *t <= at) as i64)
    }

    /// When record `seq` of `stream` appears (simulated time since the start of the run), if it does.
    pub fn appears_at(&self, stream: i64, seq: i64) -> Option<Duration> {
        let times = self.appears.get(usize::try_from(stream).ok()?)?;
        times.get(usize::try_from(seq).ok()?).copied()
    }

    /// The text record `seq` of stream `stream` carries.
    pub fn value(stream: i64, seq: i64) -> String {
        format!("stream-{stream}:{seq}")
    }

    /// The record whose [`value`](SourceRecords::value) is `value`, exactly, if it is one.
    pub fn identify(value: &[u8]) -> Option<(i64, i64)> {
        let (stream, seq) = std::str::from_utf8(value)
            .ok()?
            .strip_prefix("stream-")?
            .split_once(':')?;
        let id = (stream.parse().ok()?, seq.parse().ok()?);
        (SourceRecords::value(id.0, id.1).as_bytes() == value).then_some(id)
    }
}

/// Mixed into the run's seed for the record times, so they do not repeat the fault plan's draws.
const RECORD_TIMES: u64 = 0x5eed_7135;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_appear_over_time_as_the_seed_draws_them() {
        let records = SourceRecords::drawn(2, 300, Duration::from_millis(100), 7);
        assert_eq!(
            records,
            SourceRecords::drawn(2, 300, Duration::from_millis(100), 7)
        );
        assert_ne!(
            records,
            SourceRecords::drawn(2, 300, Duration::from_millis(100), 8)
        );
        assert_eq!(records.appeared(0, Duration::from_secs(3_600)), 300);
        assert_eq!(records.appeared(2, Duration::from_secs(3_600)), 0);
        let at = records.appears_at(0, 41).unwrap();
        assert_eq!(records.appeared(0, at), 42.max(records.appeared(0, at)));
        assert!(records.appeared(0, at) > 41);
        assert_eq!(records.appears_at(0, 300), None);
        let half = records.appeared(0, Duration::from_secs(15));
        assert!((100..=200).contains(&half), "{half} records in 15 s");
        // Streams differ, and some records come together.
        assert_ne!(records.appears[0], records.appears[1]);
        assert!(records.appears[0].windows(2).any(|w| w[0] == w[1]));
    }

    #[test]
    fn a_records_value_identifies_it_exactly() {
        assert_eq!(
            SourceRecords::identify(SourceRecords::value(3, 41).as_bytes()),
            Some((3, 41))
        );
        for other in [
            "stream-3:041",
            "stream-3:41 ",
            "stream-3",
            "line-4",
            "stream--1:x",
        ] {
            assert_eq!(SourceRecords::identify(other.as_bytes()), None, "{other}");
        }
    }
}
