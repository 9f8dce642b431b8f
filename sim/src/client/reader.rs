//! The simulated log reader: reads whole partitions from their beginning to their end offsets, outside any
//! group, under the configured `isolation.level`, from each partition's leader.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{ClientSettings, ConsumedRecord, KafkaError, LogReader};
use tokio::time::Instant;

use super::connection::unexpected;
use super::routing::Router;
use super::settings::{isolation, millis};
use crate::protocol::{Isolation, Request, Response, Tp};

/// Records per fetch.
const MAX_RECORDS: usize = 10_000;
/// How long a fetch waits for records (a read_committed reader waits for open transactions to end).
const FETCH_WAIT: Duration = Duration::from_millis(100);
/// Wait before retrying after the broker could not be reached.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

pub struct SimLogReader {
    router: Router,
    isolation: Isolation,
}

impl SimLogReader {
    pub fn new(bootstrap: &str, settings: &ClientSettings) -> Result<SimLogReader, KafkaError> {
        Ok(SimLogReader {
            router: Router::new(bootstrap, millis(settings, "request.timeout.ms", 30_000)?),
            isolation: isolation(settings)?,
        })
    }

    async fn end_offsets(&self, partitions: &[Tp]) -> Result<BTreeMap<Tp, i64>, KafkaError> {
        let answers = self
            .router
            .call_leaders(partitions.to_vec(), Duration::ZERO, |partitions| {
                Request::EndOffsets { partitions }
            })
            .await;
        let mut ends = BTreeMap::new();
        for (_, answer) in answers {
            match answer? {
                Response::EndOffsets { offsets } => ends.extend(offsets),
                other => return Err(unexpected(other)),
            }
        }
        Ok(ends)
    }

    /// One round: every record from `positions`, which move past what was read; fails if a leader's
    /// share failed (the others' records are kept).
    async fn fetch(
        &self,
        positions: &mut BTreeMap<Tp, i64>,
        ends: &BTreeMap<Tp, i64>,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), KafkaError> {
        let unread: Vec<Tp> = positions
            .iter()
            .filter(|(tp, position)| ends.get(*tp).is_some_and(|end| *position < end))
            .map(|(tp, _)| tp.clone())
            .collect();
        let answers = self
            .router
            .call_leaders(unread, FETCH_WAIT, |share| Request::Fetch {
                positions: share
                    .into_iter()
                    .map(|tp| {
                        let position = positions.get(&tp).copied().unwrap_or(0);
                        (tp, position)
                    })
                    .collect(),
                max_records: MAX_RECORDS,
                max_wait_ms: FETCH_WAIT.as_millis() as u64,
                isolation: self.isolation,
            })
            .await;
        let mut failure = None;
        for (_, answer) in answers {
            match answer {
                // The internal topics it reads are never deleted: no position is out of range.
                Ok(Response::Fetched { records, next, .. }) => {
                    read_into(out, records);
                    positions.extend(next);
                }
                Ok(other) => failure = Some(unexpected(other)),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Fetched records as consumed records.
fn read_into(out: &mut Vec<ConsumedRecord>, records: Vec<crate::protocol::FetchedRecord>) {
    for fetched in records {
        let topic = fetched.tp.topic.clone();
        out.push(super::consumed(fetched, topic, true));
    }
}

#[async_trait]
impl LogReader for SimLogReader {
    async fn read_to_end(
        &mut self,
        partitions: &[TopicPartition],
        timeout: Duration,
    ) -> Result<Vec<ConsumedRecord>, KafkaError> {
        let deadline = Instant::now() + timeout;
        let tps: Vec<Tp> = partitions
            .iter()
            .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
            .collect();
        let ends = loop {
            match self.end_offsets(&tps).await {
                Ok(ends) => break ends,
                Err(e) if Instant::now() + RETRY_BACKOFF >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RETRY_BACKOFF).await,
            }
        };
        let mut positions: BTreeMap<Tp, i64> = tps.iter().map(|tp| (tp.clone(), 0)).collect();
        let mut out = Vec::new();
        while positions
            .iter()
            .any(|(tp, position)| ends.get(tp).is_some_and(|end| position < end))
        {
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(format!(
                    "partitions not read to their end within {timeout:?}"
                )));
            }
            if let Err(e) = self.fetch(&mut positions, &ends, &mut out).await {
                tracing::debug!(error = %e, "log read failed; retrying");
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
        Ok(out)
    }
}
