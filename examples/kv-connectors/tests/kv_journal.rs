//! The journal sink under the simulation, with Sluice's test kit: it keeps its files on the workers'
//! simulated disks (`kit::worker_disk`), where a crash loses what was not synced and syncs and writes fail
//! when the seed says; the model reads back, from each sync's newly durable lines, the records they hold.
//! The correct sink holds at least once; a sink that approves offsets before syncing is caught, shrunk,
//! and caught again from the saved regression file.

#[path = "support/caught.rs"]
mod caught;

use std::sync::Arc;

use caught::{caught, replayed};

use kv_connectors::journal::KvJournalSinkConnector;
use kv_connectors::JOURNAL_CLASS;
use sluice_core::api::ConnectorPlugin;
use sluice_sim::coverage::Event;
use sluice_sim::faults::FaultKind;
use sluice_sim::kit::{worker_disk, DurableWrites, ExternalSink, SimTest, SinkUnderTest};
use sluice_sim::oracle::AnomalyKind;
use sluice_sim::turmoil;

/// The journals on the workers' disks: no hosts of their own; a line is durable once a sync covers it.
struct WorkerJournals;

impl ExternalSink for WorkerJournals {
    fn build(&self, _: &mut turmoil::Sim<'_>, _: DurableWrites) {}

    fn hosts(&self) -> Vec<String> {
        Vec::new()
    }

    /// Each line is `<topic> <partition> <offset> <value>`.
    /// Each task keeps its own file: the path names the writer.
    fn synced(&self, durable: &DurableWrites, worker: usize, path: &str, lines: &[String]) {
        for line in lines {
            let mut words = line.splitn(4, ' ');
            let (Some(topic), Some(partition), Some(offset), Some(value)) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                continue;
            };
            if let (Ok(partition), Ok(offset)) = (partition.parse(), offset.parse()) {
                durable.written_as(worker, path, topic, partition, offset, value);
            }
        }
    }
}

/// The faults of a sink on local disks: the workers crash (losing unsynced lines), stop and lose the
/// network, brokers restart, puts and flushes stall, flushes fail, and the disk fails syncs and writes.
const JOURNAL_FAULTS: &[FaultKind] = &[
    FaultKind::CrashWorker,
    FaultKind::StopWorker,
    FaultKind::HoldNetwork,
    FaultKind::RestartBroker,
    FaultKind::StallFlush,
    FaultKind::StallPut,
    FaultKind::FailFlush,
    FaultKind::FailSync,
    FaultKind::FailWrite,
    FaultKind::ShortWrite,
    FaultKind::Latency,
];

fn journal(name: &'static str, bug: &str) -> SimTest {
    let config = [
        ("journal.file", "/journal"),
        ("tasks.max", "2"),
        ("bug", bug),
    ];
    SimTest::sink(
        name,
        SinkUnderTest {
            class: JOURNAL_CLASS.to_owned(),
            // In production: `journal_plugin(Arc::new(LocalFs))`. Here, the disk of the worker the
            // connector is made on.
            plugin: ConnectorPlugin::sink(|| {
                Box::new(KvJournalSinkConnector::new(
                    worker_disk().expect("the kit makes the connector on a worker"),
                ))
            }),
            config: config
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            system: Arc::new(WorkerJournals),
        },
    )
    .faults(JOURNAL_FAULTS, 6)
    .headline_faults(&[FaultKind::CrashWorker, FaultKind::FailSync])
}

#[test]
fn the_journal_sink_delivers_every_record_at_least_once_through_crashes_and_disk_faults() {
    journal("kv_journal_at_least_once", "none")
        .seeds(1..=200)
        .require(&[
            Event::WorkerCrashed,
            Event::UnsyncedDataLost,
            Event::MemberThrownOut,
            Event::FlushPastMaxPollInterval,
        ])
        .check();
}

#[test]
fn a_journal_that_commits_before_it_syncs_is_caught_shrunk_and_replayed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let test = journal("kv_journal_commit_before_sync", "commit-before-sync")
        .seeds(1..=100)
        .regressions_in(dir.path());
    let failure = caught(&test, &[AnomalyKind::CommittedBeforeDurable]);
    replayed(&test, &failure);
}
