//! Runtime-side faults for a connector under test, without touching its code: the kit wraps the author's
//! sink connector so that its tasks' `put` and `pre_commit` (the runtime's flush) stall past
//! `session.timeout.ms` or `max.poll.interval.ms`, the flush fails, or a `put` fails for good (the task
//! fails before its own `put` sees the records, and `task.restart.policy=on-failure` restarts it), when
//! the fault plan says so. The task itself runs unchanged inside the wrapper.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::{
    ConnectError, ConnectorPlugin, SinkConnector, SinkRecord, SinkTask, SinkTaskContext,
    TopicPartition,
};
use tokio::time::Instant;

use super::OpenPartitions;
use crate::broker::now;
use crate::coverage::{self, Event};
use crate::delegate::delegate_connector;
use crate::protocol::Tp;
use crate::workload::{DestinationStore, StoreFault};

/// `plugin`, a sink, with its tasks suffering the faults armed in `store`; they strike as worker `worker`,
/// and a `put` or flush longer than `max_poll_interval` counts as
/// [`Event::FlushPastMaxPollInterval`]. A source plugin is returned as it is.
pub(crate) fn with_faults(plugin: ConnectorPlugin, faults: Faults) -> ConnectorPlugin {
    match plugin {
        ConnectorPlugin::Sink(make) => ConnectorPlugin::sink(move || {
            Box::new(FaultyConnector {
                inner: make(),
                faults: faults.clone(),
            })
        }),
        source => source,
    }
}

/// Where a wrapped task's faults come from, and where it notes the partitions it opens and closes.
#[derive(Clone)]
pub(crate) struct Faults {
    pub(crate) store: Arc<DestinationStore>,
    pub(crate) open: Arc<OpenPartitions>,
    pub(crate) worker: usize,
    pub(crate) max_poll_interval: Duration,
}

struct FaultyConnector {
    inner: Box<dyn SinkConnector>,
    faults: Faults,
}

delegate_connector!(FaultyConnector);

impl SinkConnector for FaultyConnector {
    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FaultyTask {
            inner: self.inner.create_task(),
            faults: self.faults.clone(),
        })
    }
}

struct FaultyTask {
    inner: Box<dyn SinkTask>,
    faults: Faults,
}

impl Faults {
    async fn stall(&self, stall: Duration) {
        let from = now();
        self.store.strikes().record(self.worker, from, from + stall);
        tokio::time::sleep(stall).await;
    }

    fn timed(&self, started: Instant) {
        if started.elapsed() > self.max_poll_interval {
            coverage::reached(Event::FlushPastMaxPollInterval);
        }
    }
}

#[async_trait]
impl SinkTask for FaultyTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        if self.faults.store.task_started(self.faults.worker) {
            coverage::reached(Event::TaskRestartedAfterFailure);
        }
        self.inner.start(context).await
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.faults.open.opened(self.faults.worker, tps(partitions));
        self.inner.open(partitions).await
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let started = Instant::now();
        let faults = &self.faults;
        match faults
            .store
            .take_fault(|f| matches!(f, StoreFault::StallPut(_) | StoreFault::FailPut))
        {
            Some(StoreFault::StallPut(stall)) => faults.stall(stall).await,
            Some(StoreFault::FailPut) => {
                let at = now();
                faults.store.strikes().record(faults.worker, at, at);
                faults.store.task_failed(faults.worker);
                coverage::reached(Event::PutFailedFatal);
                return Err(ConnectError::fatal(
                    "the put failed for good (a fault the simulation injected)",
                ));
            }
            _ => {}
        }
        let outcome = self.inner.put(records).await;
        self.faults.timed(started);
        outcome
    }

    async fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), ConnectError> {
        self.inner.flush(offsets).await
    }

    async fn pre_commit(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        let started = Instant::now();
        let faults = &self.faults;
        match faults
            .store
            .take_fault(|f| matches!(f, StoreFault::StallFlush(_) | StoreFault::FailFlush))
        {
            Some(StoreFault::StallFlush(stall)) => faults.stall(stall).await,
            Some(StoreFault::FailFlush) => {
                let at = now();
                faults.store.strikes().record(faults.worker, at, at);
                return Err(ConnectError::retriable(
                    "the flush failed (a fault the simulation injected)",
                ));
            }
            _ => {}
        }
        let outcome = self.inner.pre_commit(offsets).await;
        self.faults.timed(started);
        outcome
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        let outcome = self.inner.close(partitions).await;
        self.faults.open.closed(self.faults.worker, tps(partitions));
        outcome
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.inner.stop().await
    }
}

fn tps(partitions: &[TopicPartition]) -> Vec<Tp> {
    partitions
        .iter()
        .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
        .collect()
}
