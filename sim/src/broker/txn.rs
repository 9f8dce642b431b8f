//! The transaction coordinator: each transactional id's producer id and epoch, its open transaction, fencing
//! of older epochs, and `transaction.timeout.ms`.
//!
//! InitProducerId bumps the epoch, which fences every older instance and aborts the transaction it left
//! open; a transaction open longer than its timeout is aborted and its epoch bumped (Kafka before KIP-588:
//! the stalled producer is fenced). Ending a transaction writes a control marker into each of its
//! partitions and, on commit, applies its group offsets. The state lives in the cluster, so a broker
//! restart keeps it, as a replicated transaction log does.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{now, ClusterEvent, ClusterState};
use crate::protocol::{ErrorCode, Tp, TxnProducer};

/// One transactional id.
#[derive(Debug)]
struct Producer {
    producer_id: i64,
    epoch: i16,
    timeout: Duration,
    open: Option<OpenTxn>,
}

/// A transaction in progress.
#[derive(Debug, Default)]
struct OpenTxn {
    started: Duration,
    /// Its partitions, each with the offset of its first record in the transaction (`None`: none yet).
    partitions: BTreeMap<Tp, Option<i64>>,
    /// Group offsets to apply on commit.
    offsets: BTreeMap<String, BTreeMap<Tp, i64>>,
}

/// Every transactional id the cluster knows.
#[derive(Debug, Default)]
pub struct Transactions {
    producers: BTreeMap<String, Producer>,
}

impl Transactions {
    /// The producer if `producer` is its current epoch; `ProducerFenced` if a newer epoch exists.
    fn current(&mut self, producer: &TxnProducer) -> Result<&mut Producer, ErrorCode> {
        let state = self
            .producers
            .get_mut(&producer.transactional_id)
            .ok_or(ErrorCode::UnknownProducerId)?;
        if state.producer_id != producer.producer_id || state.epoch != producer.epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(state)
    }

    /// Whether `producer` may append to `tp`: current epoch, and `tp` in its open transaction.
    pub fn check_produce(&mut self, producer: &TxnProducer, tp: &Tp) -> Result<(), ErrorCode> {
        let state = self.current(producer)?;
        match &state.open {
            Some(open) if open.partitions.contains_key(tp) => Ok(()),
            _ => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Notes where the transaction's first record in `tp` landed.
    pub fn appended(&mut self, producer: &TxnProducer, tp: &Tp, offset: i64) {
        if let Ok(Producer {
            open: Some(open), ..
        }) = self.current(producer)
        {
            if let Some(first @ None) = open.partitions.get_mut(tp) {
                *first = Some(offset);
            }
        }
    }

    fn open(&mut self, producer: &TxnProducer, at: Duration) -> Result<&mut OpenTxn, ErrorCode> {
        let state = self.current(producer)?;
        Ok(state.open.get_or_insert_with(|| OpenTxn {
            started: at,
            ..OpenTxn::default()
        }))
    }
}

/// InitProducerId with a transactional id: a new producer id at epoch 0, or the existing one with its
/// epoch bumped (fencing older instances and aborting their open transaction).
pub fn init(state: &mut ClusterState, transactional_id: &str, timeout: Duration) -> (i64, i16) {
    let existing = state
        .transactions
        .producers
        .get(transactional_id)
        .map(|p| (p.producer_id, p.epoch));
    let (producer_id, epoch) = match existing {
        Some((producer_id, epoch)) => {
            abort_open(state, transactional_id, false);
            (producer_id, epoch.wrapping_add(1).max(0))
        }
        None => (state.logs.new_producer_id(), 0),
    };
    state.transactions.producers.insert(
        transactional_id.to_owned(),
        Producer {
            producer_id,
            epoch,
            timeout,
            open: None,
        },
    );
    state.emit(ClusterEvent::ProducerInitialized {
        transactional_id: transactional_id.to_owned(),
        producer_id,
        epoch,
    });
    (producer_id, epoch)
}

/// Opens the transaction if needed and adds partitions to it.
pub fn add_partitions(
    state: &mut ClusterState,
    producer: &TxnProducer,
    partitions: &[Tp],
) -> Result<(), ErrorCode> {
    if partitions
        .iter()
        .any(|tp| state.logs.end_offset(tp).is_err())
    {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    let open = state.transactions.open(producer, now())?;
    for tp in partitions {
        open.partitions.entry(tp.clone()).or_insert(None);
    }
    Ok(())
}

/// Offsets for a group, applied when the transaction commits.
pub fn offset_commit(
    state: &mut ClusterState,
    producer: &TxnProducer,
    group: &str,
    offsets: &[(Tp, i64)],
) -> Result<(), ErrorCode> {
    let open = state.transactions.open(producer, now())?;
    open.offsets
        .entry(group.to_owned())
        .or_default()
        .extend(offsets.iter().cloned());
    Ok(())
}

/// EndTxn: commits or aborts the open transaction. Ending when none is open succeeds (a retry of an end
/// whose response was lost), as long as the epoch is current.
pub fn end(
    state: &mut ClusterState,
    producer: &TxnProducer,
    commit: bool,
) -> Result<(), ErrorCode> {
    let open = state.transactions.current(producer)?.open.take();
    if let Some(open) = open {
        finish(state, producer, open, commit, false);
    }
    Ok(())
}

/// Aborts transactions open longer than their timeout and fences their producers. Returns whether any was.
pub fn expire(state: &mut ClusterState) -> bool {
    let at = now();
    let expired: Vec<String> = state
        .transactions
        .producers
        .iter()
        .filter(|(_, p)| p.open.as_ref().is_some_and(|o| at >= o.started + p.timeout))
        .map(|(id, _)| id.clone())
        .collect();
    for id in &expired {
        abort_open(state, id, true);
        if let Some(producer) = state.transactions.producers.get_mut(id) {
            producer.epoch = producer.epoch.wrapping_add(1).max(0);
        }
    }
    !expired.is_empty()
}

fn abort_open(state: &mut ClusterState, transactional_id: &str, timed_out: bool) {
    let Some(producer) = state.transactions.producers.get_mut(transactional_id) else {
        return;
    };
    let identity = TxnProducer {
        transactional_id: transactional_id.to_owned(),
        producer_id: producer.producer_id,
        epoch: producer.epoch,
    };
    if let Some(open) = producer.open.take() {
        finish(state, &identity, open, false, timed_out);
    }
}

fn finish(
    state: &mut ClusterState,
    producer: &TxnProducer,
    open: OpenTxn,
    commit: bool,
    timed_out: bool,
) {
    let at = now();
    for (tp, first) in &open.partitions {
        let first = first.unwrap_or_else(|| state.logs.end_offset(tp).unwrap_or(0));
        state
            .logs
            .end_transaction(tp, producer.producer_id, first, commit, at);
    }
    if commit {
        for (group, offsets) in &open.offsets {
            state.commit_offsets(group, offsets);
        }
    }
    state.emit(ClusterEvent::TransactionEnded {
        transactional_id: producer.transactional_id.clone(),
        producer_id: producer.producer_id,
        epoch: producer.epoch,
        committed: commit,
        timed_out,
        partitions: open.partitions.into_keys().collect(),
    });
}
