//! The transaction coordinator: each transactional id's producer id and epoch, its open transaction, fencing
//! of older epochs, and `transaction.timeout.ms`.
//!
//! InitProducerId bumps the epoch, which fences every older instance and aborts the transaction it left
//! open. A producer that bumps its own epoch to recover from an abortable error names the id and epoch it
//! has (KIP-360), and is refused as fenced unless they are still current: a zombie's recovery never fences
//! the instance that replaced it. A transaction open longer than its timeout is aborted and its epoch bumped (Kafka before KIP-588:
//! the stalled producer is fenced). Ending a transaction writes a control marker into each of its
//! partitions and, on commit, applies its group offsets. The state lives in the cluster, so a broker
//! restart keeps it, as a replicated transaction log does.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{now, ClusterEvent, ClusterState};
use crate::coverage::{self, Event};
use crate::protocol::{CoordinatorKind, ErrorCode, Tp, TxnProducer};

/// One transactional id.
#[derive(Debug)]
struct Producer {
    producer_id: i64,
    epoch: i16,
    timeout: Duration,
    open: Option<OpenTxn>,
    /// The id and epoch the last recovery bumped from: a retry of it (its answer lost) gets the current
    /// ones again rather than a fence.
    recovered_from: Option<(i64, i16)>,
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
    /// Every transactional id the coordinators know.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.producers.keys().map(String::as_str)
    }

    /// The producer if `producer` is its current epoch; `ProducerFenced` if a newer epoch exists.
    fn current(&mut self, producer: &TxnProducer) -> Result<&mut Producer, ErrorCode> {
        let state = self
            .producers
            .get_mut(&producer.transactional_id)
            .ok_or(ErrorCode::UnknownProducerId)?;
        if state.producer_id != producer.producer_id || state.epoch != producer.epoch {
            coverage::reached(Event::ZombieFenced);
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
/// epoch bumped (fencing older instances and aborting their open transaction). With `current` (a
/// producer recovering from an abortable error), only if that is the current id and epoch.
pub fn init(
    state: &mut ClusterState,
    transactional_id: &str,
    timeout: Duration,
    current: Option<(i64, i16)>,
) -> Result<(i64, i16), ErrorCode> {
    let existing = state
        .transactions
        .producers
        .get(transactional_id)
        .map(|p| ((p.producer_id, p.epoch), p.recovered_from));
    if let Some(expected) = current {
        match existing {
            Some((now, _)) if now == expected => {}
            Some((now, recovered_from)) if recovered_from == Some(expected) => return Ok(now),
            _ => {
                coverage::reached(Event::ZombieFenced);
                return Err(ErrorCode::ProducerFenced);
            }
        }
    }
    let (producer_id, epoch) = match existing.map(|(now, _)| now) {
        Some((producer_id, epoch)) => {
            abort_open(state, transactional_id, false);
            match epoch.checked_add(1) {
                Some(next) => (producer_id, next),
                // Epochs exhausted: Kafka moves the id to a new producer id.
                None => (state.logs.new_producer_id(), 0),
            }
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
            recovered_from: current,
        },
    );
    state.emit(ClusterEvent::ProducerInitialized {
        transactional_id: transactional_id.to_owned(),
        producer_id,
        epoch,
    });
    Ok((producer_id, epoch))
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

/// Aborts the transactions `broker` coordinates that are open longer than their timeout, and fences
/// their producers. Returns whether any was.
pub fn expire(state: &mut ClusterState, broker: i32) -> bool {
    let at = now();
    let expired: Vec<String> = state
        .transactions
        .producers
        .iter()
        .filter(|(id, _)| state.coordinates(broker, CoordinatorKind::Transaction, id))
        .filter(|(_, p)| p.open.as_ref().is_some_and(|o| at >= o.started + p.timeout))
        .map(|(id, _)| id.clone())
        .collect();
    for id in &expired {
        abort_open(state, id, true);
        if let Some(producer) = state.transactions.producers.get_mut(id) {
            // Fences the stalled producer; at the last epoch, leaves that to its next InitProducerId.
            producer.epoch = producer.epoch.saturating_add(1);
            producer.recovered_from = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerConfig, Cluster};
    use crate::protocol::{Isolation, ProduceBatch, Record};

    fn record(value: &str) -> Record {
        Record {
            key: None,
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
            timestamp: 0,
        }
    }

    /// Opens a transaction on t-0 and appends `value` in it.
    fn write(state: &mut ClusterState, producer: &TxnProducer, sequence: i64, value: &str) {
        let tp = Tp::new("t", 0);
        add_partitions(state, producer, std::slice::from_ref(&tp)).expect("add the partition");
        state
            .transactions
            .check_produce(producer, &tp)
            .expect("current epoch");
        let batch = ProduceBatch {
            tp: tp.clone(),
            base_sequence: sequence,
            records: vec![record(value)],
        };
        let (offset, _) = state
            .logs
            .append(producer.producer_id, producer.epoch, true, batch, now())
            .expect("append");
        state.transactions.appended(producer, &tp, offset);
    }

    fn visible(state: &ClusterState) -> Vec<String> {
        let read = state
            .logs
            .read(&[(Tp::new("t", 0), 0)], 100, Isolation::ReadCommitted)
            .expect("read");
        read.records
            .iter()
            .map(|r| String::from_utf8(r.record.value.clone().unwrap_or_default()).unwrap())
            .collect()
    }

    fn identity(id: &str, (producer_id, epoch): (i64, i16)) -> TxnProducer {
        TxnProducer {
            transactional_id: id.into(),
            producer_id,
            epoch,
        }
    }

    #[test]
    fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
        let cluster = Cluster::new(BrokerConfig::default());
        cluster.create_topic("t", 1);
        let mut state = cluster.lock();
        let old = identity(
            "task-0",
            init(&mut state, "task-0", Duration::from_secs(60), None).expect("init"),
        );
        write(&mut state, &old, 0, "zombie");
        let new = identity(
            "task-0",
            init(&mut state, "task-0", Duration::from_secs(60), None).expect("init"),
        );
        assert_eq!(
            (new.producer_id, new.epoch),
            (old.producer_id, old.epoch + 1)
        );
        let tp = Tp::new("t", 0);
        assert_eq!(
            add_partitions(&mut state, &old, std::slice::from_ref(&tp)),
            Err(ErrorCode::ProducerFenced)
        );
        assert_eq!(
            state.transactions.check_produce(&old, &tp),
            Err(ErrorCode::ProducerFenced)
        );
        assert_eq!(end(&mut state, &old, true), Err(ErrorCode::ProducerFenced));
        assert_eq!(
            offset_commit(&mut state, &old, "g", &[(tp.clone(), 1)]),
            Err(ErrorCode::ProducerFenced)
        );
        write(&mut state, &new, 0, "successor");
        end(&mut state, &new, true).expect("commit");
        assert_eq!(visible(&state), ["successor"]);
        assert!(state.committed("g").is_empty());
    }

    #[test]
    fn a_recovery_bump_succeeds_only_from_the_current_epoch() {
        let cluster = Cluster::new(BrokerConfig::default());
        cluster.create_topic("t", 1);
        let mut state = cluster.lock();
        let minute = Duration::from_secs(60);
        let zombie = init(&mut state, "task-0", minute, None).expect("init");
        let live = init(&mut state, "task-0", minute, None).expect("a new instance");
        assert_eq!(
            init(&mut state, "task-0", minute, Some(zombie)),
            Err(ErrorCode::ProducerFenced),
            "the replaced instance's recovery is fenced"
        );
        let recovered = init(&mut state, "task-0", minute, Some(live)).expect("recover");
        assert_eq!(recovered, (live.0, live.1 + 1));
        assert_eq!(
            init(&mut state, "task-0", minute, Some(live)),
            Ok(recovered),
            "a retried recovery gets the same epoch again"
        );
        let live = identity("task-0", recovered);
        write(&mut state, &live, 0, "after recovery");
        end(&mut state, &live, true).expect("the recovered producer commits");
        assert_eq!(visible(&state), ["after recovery"]);
    }

    #[test]
    fn transactional_offsets_apply_only_on_commit() {
        let cluster = Cluster::new(BrokerConfig::default());
        cluster.create_topic("t", 1);
        let mut state = cluster.lock();
        let producer = identity(
            "p",
            init(&mut state, "p", Duration::from_secs(60), None).expect("init"),
        );
        let tp = Tp::new("t", 0);
        offset_commit(&mut state, &producer, "g", &[(tp.clone(), 5)]).expect("offsets");
        end(&mut state, &producer, false).expect("abort");
        assert!(state.committed("g").is_empty(), "aborted offsets vanish");
        offset_commit(&mut state, &producer, "g", &[(tp.clone(), 7)]).expect("offsets");
        assert!(state.committed("g").is_empty(), "not before the commit");
        end(&mut state, &producer, true).expect("commit");
        assert_eq!(state.committed("g").get(&tp), Some(&7));
        assert_eq!(end(&mut state, &producer, true), Ok(()), "a retried end");
    }

    #[test]
    fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
        let cluster = Cluster::new(BrokerConfig::default());
        cluster.create_topic("t", 1);
        let mut state = cluster.lock();
        let producer = identity(
            "slow",
            init(&mut state, "slow", Duration::ZERO, None).expect("init"),
        );
        write(&mut state, &producer, 0, "stalled");
        assert!(expire(&mut state, 0));
        assert_eq!(
            end(&mut state, &producer, true),
            Err(ErrorCode::ProducerFenced)
        );
        assert!(visible(&state).is_empty());
        assert!(!expire(&mut state, 0), "nothing left open");
    }
}
