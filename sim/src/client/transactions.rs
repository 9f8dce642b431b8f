//! The simulated producer's transactions: `init_transactions`, `begin`, `send_offsets_to_transaction`,
//! `commit` and `abort`, and the transaction state its background sender shares.
//!
//! A failed or timed-out produce makes the transaction abortable (commit fails, abort works and bumps the
//! epoch so batches are numbered afresh); a fenced one makes the producer a zombie for good.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{KafkaError, Producer, SendError, TransactionalProducer};
use tokio::time::Instant;

use super::connection::{code_error, unexpected};
use super::SimProducer;
use crate::protocol::{CoordinatorKind, Request, Response, Tp, TxnProducer};

/// Wait before retrying a transaction request the broker did not answer.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Where the producer stands with its transactional id.
#[derive(Debug, Default)]
struct TxnState {
    /// Producer id and epoch from the last InitProducerId.
    producer: Option<(i64, i16)>,
    in_transaction: bool,
    /// Partitions added to the open transaction.
    added: BTreeSet<Tp>,
    /// Group offsets were sent in the open transaction.
    offsets_sent: bool,
    /// Why the open transaction cannot commit (fenced: why nothing can any more).
    error: Option<KafkaError>,
}

/// The transactional part of a producer, shared with its sender.
pub struct TxnShared {
    transactional_id: String,
    timeout: Duration,
    state: Mutex<TxnState>,
}

impl TxnShared {
    pub fn new(transactional_id: &str, timeout: Duration) -> TxnShared {
        TxnShared {
            transactional_id: transactional_id.to_owned(),
            timeout,
            state: Mutex::new(TxnState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TxnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record may be sent only inside a transaction of a producer that is not fenced.
    pub fn check_send(&self) -> Result<(), SendError> {
        let state = self.lock();
        match &state.error {
            Some(e @ KafkaError::ProducerFenced(_)) => Err(SendError::Kafka(e.clone())),
            _ if !state.in_transaction => Err(SendError::Kafka(KafkaError::Backend(
                "send outside a transaction: call begin_transaction first".into(),
            ))),
            _ => Ok(()),
        }
    }

    /// The identity produce requests carry.
    pub fn producer(&self) -> Result<TxnProducer, KafkaError> {
        let state = self.lock();
        if let Some(e @ KafkaError::ProducerFenced(_)) = &state.error {
            return Err(e.clone());
        }
        let (producer_id, epoch) = state
            .producer
            .ok_or_else(|| KafkaError::Backend("init_transactions was not called".into()))?;
        Ok(TxnProducer {
            transactional_id: self.transactional_id.clone(),
            producer_id,
            epoch,
        })
    }

    /// The partitions among `tps` not yet in the open transaction.
    pub fn not_added<'a>(&self, tps: impl Iterator<Item = &'a Tp>) -> Vec<Tp> {
        let state = self.lock();
        tps.filter(|tp| !state.added.contains(*tp))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    pub fn added(&self, tps: Vec<Tp>) {
        self.lock().added.extend(tps);
    }

    /// Why the open transaction cannot commit, if it cannot.
    pub fn failure(&self) -> Option<KafkaError> {
        self.lock().error.clone()
    }

    /// Records of the open transaction failed: it cannot commit (being fenced is kept over anything else).
    pub fn fail(&self, error: KafkaError) {
        let mut state = self.lock();
        if !matches!(state.error, Some(KafkaError::ProducerFenced(_))) {
            state.error = Some(error);
        }
    }
}

impl SimProducer {
    fn txn(&self) -> Result<&TxnShared, KafkaError> {
        self.shared.txn.as_ref().ok_or_else(|| {
            KafkaError::Backend("not a transactional producer (no transactional.id)".into())
        })
    }

    /// Sends a transaction request until it is answered or `timeout` passes; an error code is not retried.
    async fn call_until(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, KafkaError> {
        let deadline = Instant::now() + timeout;
        // TxnOffsetCommit goes to the group's coordinator, the rest to the transaction coordinator.
        let (kind, key) = match request {
            Request::TxnOffsetCommit { group, .. } => (CoordinatorKind::Group, group.clone()),
            _ => (
                CoordinatorKind::Transaction,
                self.txn()?.transactional_id.clone(),
            ),
        };
        loop {
            let answer = self
                .control
                .call_coordinator(kind, &key, request, Duration::ZERO)
                .await;
            match answer {
                Ok(Response::Error(code)) => {
                    let error = code_error(code);
                    if let KafkaError::ProducerFenced(_) = error {
                        self.txn()?.fail(error.clone());
                    }
                    return Err(error);
                }
                Ok(response) => return Ok(response),
                Err(e) if Instant::now() + RETRY_BACKOFF >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RETRY_BACKOFF).await,
            }
        }
    }

    /// InitProducerId; the open transaction's state is dropped (the broker aborted it). `recover`: bump
    /// this producer's own epoch after an abortable error (KIP-360), which the broker refuses as fenced
    /// if another instance has registered the id since.
    async fn init(&self, timeout: Duration, recover: bool) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        let current = if recover {
            let producer = txn.producer()?;
            Some((producer.producer_id, producer.epoch))
        } else {
            None
        };
        let request = Request::InitProducerId {
            transactional_id: Some(txn.transactional_id.clone()),
            transaction_timeout_ms: txn.timeout.as_millis() as u64,
            current,
        };
        match self.call_until(&request, timeout).await? {
            Response::ProducerId { producer_id, epoch } => {
                *txn.lock() = TxnState {
                    producer: Some((producer_id, epoch)),
                    ..TxnState::default()
                };
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// EndTxn, if the transaction touched the broker at all.
    async fn end(&self, commit: bool, timeout: Duration) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        let touched = {
            let state = txn.lock();
            !state.added.is_empty() || state.offsets_sent
        };
        if touched {
            let request = Request::EndTxn {
                producer: txn.producer()?,
                commit,
            };
            match self.call_until(&request, timeout).await? {
                Response::Done => {}
                other => return Err(unexpected(other)),
            }
        }
        let mut state = txn.lock();
        state.in_transaction = false;
        state.added.clear();
        state.offsets_sent = false;
        Ok(())
    }
}

#[async_trait]
impl TransactionalProducer for SimProducer {
    async fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.init(timeout, false).await
    }

    fn begin_transaction(&self) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        let mut state = txn.lock();
        match &state.error {
            Some(e @ KafkaError::ProducerFenced(_)) => Err(e.clone()),
            _ if state.producer.is_none() => Err(KafkaError::Backend(
                "init_transactions was not called".into(),
            )),
            _ if state.in_transaction => {
                Err(KafkaError::Backend("a transaction is already open".into()))
            }
            _ => {
                state.in_transaction = true;
                Ok(())
            }
        }
    }

    async fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        if !txn.lock().in_transaction {
            return Err(KafkaError::Backend(
                "send_offsets_to_transaction outside a transaction".into(),
            ));
        }
        let request = Request::TxnOffsetCommit {
            producer: txn.producer()?,
            group: group.to_owned(),
            offsets: offsets
                .iter()
                .map(|(tp, offset)| (Tp::new(tp.topic.clone(), tp.partition), *offset))
                .collect(),
        };
        match self.call_until(&request, timeout).await? {
            Response::Done => {
                txn.lock().offsets_sent = true;
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    async fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        if !txn.lock().in_transaction {
            return Err(KafkaError::Backend("no transaction to commit".into()));
        }
        self.flush(timeout).await?;
        if let Some(error) = txn.lock().error.clone() {
            return Err(error);
        }
        self.end(true, timeout).await
    }

    async fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        let txn = self.txn()?;
        // Records still on their way would land after the abort marker: wait for them first.
        if let Err(e) = self.flush(timeout).await {
            tracing::debug!(error = %e, "records still in flight while aborting");
        }
        let failed = txn.lock().error.clone();
        match failed {
            Some(e @ KafkaError::ProducerFenced(_)) => Err(e),
            // The batches' fate is unknown: a new epoch aborts the transaction and renumbers them.
            Some(_) => self.init(timeout, true).await,
            None => self.end(false, timeout).await,
        }
    }
}
