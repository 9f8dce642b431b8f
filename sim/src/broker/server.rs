//! A broker host's server: accepts client connections and answers each request from the [`Cluster`],
//! for what this broker leads and coordinates; a request for a partition it does not lead is refused
//! with NOT_LEADER_OR_FOLLOWER, one for a group or transactional id it does not coordinate with
//! NOT_COORDINATOR, as a request held waiting is once its leadership moves.
//!
//! Fetches long-poll until records arrive (or a transaction's end moves a read_committed reader on) or
//! their wait ends; a JoinGroup waits until its join phase ends, a SyncGroup until the leader's
//! assignment arrives. A connection serves its requests one at a time, in the order they arrive, as Kafka
//! does: a client may send several before the first is answered (the producer keeps up to
//! `max.in.flight.requests.per.connection`), and gets the answers in that order.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use turmoil::net::{TcpListener, TcpStream};

use super::group::{Group, JoinOutcome, Joiner};
use super::produce_errors::Verdict;
use super::{now, topic_created, txn, Cluster, ClusterEvent, ClusterState};
use crate::coverage::{self, Event};
use crate::protocol::{
    read_frame, write_frame, CoordinatorKind, ErrorCode, Isolation, ProduceBatch, Request,
    Response, Tp, TxnProducer, NO_LEADER,
};

/// Serves clients on `listener` as broker `broker` until the host stops; also runs the timers of the
/// coordinators it holds.
pub async fn serve(listener: TcpListener, cluster: Arc<Cluster>, broker: i32) -> turmoil::Result {
    let ticker = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let tick = cluster
                .config()
                .coordinator_tick
                .max(Duration::from_millis(1));
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                cluster.tick_groups(broker);
                cluster.tick_transactions(broker);
            }
        })
    };
    let result = loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, cluster.clone(), broker));
            }
            Err(e) => break Err(e.into()),
        }
    };
    ticker.abort();
    result
}

async fn connection(mut stream: TcpStream, cluster: Arc<Cluster>, broker: i32) {
    loop {
        let request: Request = match read_frame(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        let response = handle(&cluster, broker, request).await;
        if write_frame(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

/// NOT_COORDINATOR unless `broker` coordinates `key`.
fn coordinating(
    state: &ClusterState,
    broker: i32,
    kind: CoordinatorKind,
    key: &str,
) -> Result<(), ErrorCode> {
    match state.coordinates(broker, kind, key) {
        true => Ok(()),
        false => Err(ErrorCode::NotCoordinator),
    }
}

/// NOT_LEADER_OR_FOLLOWER unless `broker` leads every partition of `tps`.
fn leading<'a>(
    state: &ClusterState,
    broker: i32,
    mut tps: impl Iterator<Item = &'a Tp>,
) -> Result<(), ErrorCode> {
    match tps.all(|tp| state.leads(broker, tp)) {
        true => Ok(()),
        false => Err(ErrorCode::NotLeaderOrFollower),
    }
}

async fn handle(cluster: &Cluster, broker: i32, request: Request) -> Response {
    let group_request = match &request {
        Request::JoinGroup { group, .. }
        | Request::SyncGroup { group, .. }
        | Request::Heartbeat { group, .. }
        | Request::LeaveGroup { group, .. }
        | Request::OffsetCommit { group, .. }
        | Request::OffsetFetch { group, .. }
        | Request::AdminOffsetCommit { group, .. }
        | Request::DeleteGroup { group }
        | Request::TxnOffsetCommit { group, .. } => Some((CoordinatorKind::Group, group.as_str())),
        Request::InitProducerId {
            transactional_id: Some(id),
            ..
        } => Some((CoordinatorKind::Transaction, id.as_str())),
        Request::AddPartitionsToTxn { producer, .. } | Request::EndTxn { producer, .. } => Some((
            CoordinatorKind::Transaction,
            producer.transactional_id.as_str(),
        )),
        _ => None,
    };
    if let Some((kind, key)) = group_request {
        if let Err(e) = coordinating(&cluster.lock(), broker, kind, key) {
            return Response::Error(e);
        }
    }
    match request {
        Request::FindCoordinator { kind, key } => {
            let state = cluster.lock();
            let coordinator = state.layout.coordinator(kind, &key);
            match state.layout.is_down(coordinator) {
                true => Response::Error(ErrorCode::CoordinatorNotAvailable),
                false => Response::Coordinator {
                    broker: coordinator,
                },
            }
        }
        Request::Metadata {
            topics,
            auto_create,
        } => metadata(cluster, topics, auto_create),
        Request::CreateTopic { name, partitions } => {
            let mut state = cluster.lock();
            match state.logs.create(&name, partitions) {
                Ok(created) => {
                    if created {
                        topic_created(&mut state, &name, partitions);
                    }
                    Response::TopicCreated { created }
                }
                Err(e) => Response::Error(e),
            }
        }
        Request::InitProducerId {
            transactional_id: None,
            ..
        } => Response::ProducerId {
            producer_id: cluster.lock().logs.new_producer_id(),
            epoch: 0,
        },
        Request::InitProducerId {
            transactional_id: Some(id),
            transaction_timeout_ms,
            current,
        } => {
            let initialized = txn::init(
                &mut cluster.lock(),
                &id,
                Duration::from_millis(transaction_timeout_ms),
                current,
            );
            cluster.appended.notify_waiters();
            match initialized {
                Ok((producer_id, epoch)) => Response::ProducerId { producer_id, epoch },
                Err(code) => Response::Error(code),
            }
        }
        Request::Produce {
            producer_id,
            epoch,
            transactional_id,
            batches,
        } => {
            let results = {
                let producer = transactional_id.map(|transactional_id| TxnProducer {
                    transactional_id,
                    producer_id,
                    epoch,
                });
                let mut state = cluster.lock();
                state.produce_faults.next_request();
                batches
                    .into_iter()
                    .map(|batch| match state.leads(broker, &batch.tp) {
                        true => produce(&mut state, producer_id, epoch, producer.as_ref(), batch),
                        false => Err(ErrorCode::NotLeaderOrFollower),
                    })
                    .collect()
            };
            cluster.appended.notify_waiters();
            Response::Produced { results }
        }
        Request::Fetch {
            positions,
            max_records,
            max_wait_ms,
            isolation,
        } => {
            fetch(
                cluster,
                broker,
                positions,
                max_records,
                max_wait_ms,
                isolation,
            )
            .await
        }
        Request::AddPartitionsToTxn {
            producer,
            partitions,
        } => done(txn::add_partitions(
            &mut cluster.lock(),
            &producer,
            &partitions,
        )),
        Request::TxnOffsetCommit {
            producer,
            group,
            offsets,
        } => done(txn::offset_commit(
            &mut cluster.lock(),
            &producer,
            &group,
            &offsets,
        )),
        Request::EndTxn { producer, commit } => {
            let ended = txn::end(&mut cluster.lock(), &producer, commit);
            cluster.appended.notify_waiters();
            done(ended)
        }
        Request::EndOffsets { partitions } => {
            let state = cluster.lock();
            if let Err(e) = leading(&state, broker, partitions.iter()) {
                return Response::Error(e);
            }
            let offsets: Result<Vec<_>, _> = partitions
                .into_iter()
                .map(|tp| state.logs.end_offset(&tp).map(|end| (tp, end)))
                .collect();
            match offsets {
                Ok(offsets) => Response::EndOffsets { offsets },
                Err(e) => Response::Error(e),
            }
        }
        Request::StartOffsets { partitions } => {
            let state = cluster.lock();
            if let Err(e) = leading(&state, broker, partitions.iter()) {
                return Response::Error(e);
            }
            let offsets: Result<Vec<_>, _> = partitions
                .into_iter()
                .map(|tp| state.logs.start_offset(&tp).map(|start| (tp, start)))
                .collect();
            match offsets {
                Ok(offsets) => Response::StartOffsets { offsets },
                Err(e) => Response::Error(e),
            }
        }
        Request::JoinGroup {
            group,
            member_id,
            client_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            cooperative,
            subscription,
        } => {
            let joiner = Joiner {
                member_id,
                client_id,
                session_timeout: Duration::from_millis(session_timeout_ms),
                rebalance_timeout: Duration::from_millis(rebalance_timeout_ms),
                cooperative,
                subscription,
            };
            let joined = {
                let mut state = cluster.lock();
                let initial_delay = cluster.config().initial_rebalance_delay;
                let mut changes = Vec::new();
                let outcome = state
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(initial_delay))
                    .join(now(), joiner, &mut changes);
                state.emit_group(&group, changes);
                outcome
            };
            cluster.groups_changed.notify_waiters();
            match joined {
                Ok(outcome) => await_join(cluster, broker, &group, outcome).await,
                Err(e) => Response::Error(e),
            }
        }
        Request::SyncGroup {
            group,
            member_id,
            generation,
            assignments,
        } => {
            let synced = {
                let mut state = cluster.lock();
                let mut changes = Vec::new();
                let synced = match state.groups.get_mut(&group) {
                    Some(g) => g.sync(now(), &member_id, generation, assignments, &mut changes),
                    None => Err(ErrorCode::UnknownMemberId),
                };
                state.emit_group(&group, changes);
                synced
            };
            cluster.groups_changed.notify_waiters();
            match synced {
                Ok(()) => await_sync(cluster, broker, &group, &member_id, generation).await,
                Err(e) => Response::Error(e),
            }
        }
        Request::Heartbeat {
            group,
            member_id,
            generation,
        } => {
            let mut state = cluster.lock();
            match state.groups.get_mut(&group) {
                Some(g) => match g.heartbeat(now(), &member_id, generation) {
                    Ok(()) => Response::Done,
                    Err(e) => Response::Error(e),
                },
                None => Response::Error(ErrorCode::UnknownMemberId),
            }
        }
        Request::LeaveGroup {
            group,
            member_id,
            reason,
        } => {
            let result = {
                let mut state = cluster.lock();
                let mut changes = Vec::new();
                let result = match state.groups.get_mut(&group) {
                    Some(g) => g.leave(now(), &member_id, reason, &mut changes),
                    None => Err(ErrorCode::UnknownMemberId),
                };
                state.emit_group(&group, changes);
                result
            };
            cluster.groups_changed.notify_waiters();
            match result {
                Ok(()) => Response::Done,
                Err(e) => Response::Error(e),
            }
        }
        Request::OffsetCommit {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let mut state = cluster.lock();
            let result = match state.groups.get_mut(&group) {
                // The planted bug: no generation or membership check.
                Some(g) if cluster.config().accept_stale_commits => {
                    g.apply_offsets(&offsets.iter().cloned().collect());
                    Ok(())
                }
                Some(g) => g.commit(now(), &member_id, generation, &offsets),
                None => Err(ErrorCode::UnknownMemberId),
            };
            match result {
                Ok(()) => {
                    state.emit(ClusterEvent::Committed {
                        group,
                        member_id,
                        generation,
                        offsets,
                    });
                    Response::Done
                }
                Err(e) => Response::Error(e),
            }
        }
        Request::AdminOffsetCommit { group, offsets } => {
            let mut state = cluster.lock();
            if state.group_has_members(&group) {
                return Response::Error(ErrorCode::NonEmptyGroup);
            }
            state.commit_offsets(&group, &offsets.into_iter().collect());
            Response::Done
        }
        Request::DeleteGroup { group } => {
            let mut state = cluster.lock();
            if state.group_has_members(&group) {
                return Response::Error(ErrorCode::NonEmptyGroup);
            }
            state.delete_group(&group);
            Response::Done
        }
        Request::OffsetFetch { group, partitions } => {
            let state = cluster.lock();
            let committed = state.committed(&group);
            Response::Committed {
                offsets: partitions
                    .into_iter()
                    .map(|tp| {
                        let offset = committed.get(&tp).copied();
                        let start = state.logs.start_offset(&tp).unwrap_or(0);
                        if offset.is_some_and(|offset| offset < start) {
                            coverage::reached(Event::CommitBeforeLogStart);
                        }
                        (tp, offset)
                    })
                    .collect(),
            }
        }
    }
}

fn done(result: Result<(), ErrorCode>) -> Response {
    match result {
        Ok(()) => Response::Done,
        Err(e) => Response::Error(e),
    }
}

/// Appends one batch: a transactional producer's only to a partition of its open transaction, in its
/// current epoch; an active produce fault may refuse it, or append it and answer with an error.
fn produce(
    state: &mut super::ClusterState,
    producer_id: i64,
    epoch: i16,
    transactional: Option<&TxnProducer>,
    batch: ProduceBatch,
) -> Result<i64, ErrorCode> {
    let tp = batch.tp.clone();
    let verdict = state.produce_faults.verdict(&tp);
    if let Verdict::Refuse(error) = verdict {
        return Err(error);
    }
    if let Some(producer) = transactional {
        state.transactions.check_produce(producer, &tp)?;
    }
    let (offset, new) =
        state
            .logs
            .append(producer_id, epoch, transactional.is_some(), batch, now())?;
    if let (Some(producer), true) = (transactional, new) {
        state.transactions.appended(producer, &tp, offset);
    }
    match verdict {
        Verdict::AppendThenFail(error) => Err(error),
        _ => Ok(offset),
    }
}

fn metadata(cluster: &Cluster, topics: Option<Vec<String>>, auto_create: bool) -> Response {
    let mut state = cluster.lock();
    let brokers = cluster
        .config()
        .listeners
        .iter()
        .enumerate()
        .map(|(id, address)| (id as i32, address.clone()))
        .collect();
    let leaders = |state: &ClusterState, topic: &str, count: i32| -> Vec<i32> {
        (0..count)
            .map(|p| {
                state
                    .layout
                    .live_leader(&Tp::new(topic, p))
                    .unwrap_or(NO_LEADER)
            })
            .collect()
    };
    let Some(wanted) = topics else {
        let topics = state
            .logs
            .topics()
            .into_iter()
            .map(|(topic, count)| {
                let leaders = leaders(&state, &topic, count);
                (topic, leaders)
            })
            .collect();
        return Response::Metadata {
            cluster_id: cluster.config().cluster_id.clone(),
            brokers,
            topics,
        };
    };
    let mut found = Vec::new();
    for topic in wanted {
        let count = match state.logs.partition_count(&topic) {
            Some(count) => Some(count),
            None if auto_create && cluster.config().auto_create_topics => {
                let partitions = cluster.config().default_partitions;
                if state.logs.create(&topic, partitions).unwrap_or(false) {
                    topic_created(&mut state, &topic, partitions);
                }
                state.logs.partition_count(&topic)
            }
            None => None,
        };
        if let Some(count) = count {
            let leaders = leaders(&state, &topic, count);
            found.push((topic, leaders));
        }
    }
    Response::Metadata {
        cluster_id: cluster.config().cluster_id.clone(),
        brokers,
        topics: found,
    }
}

async fn fetch(
    cluster: &Cluster,
    broker: i32,
    positions: Vec<(Tp, i64)>,
    max_records: usize,
    max_wait_ms: u64,
    isolation: Isolation,
) -> Response {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms);
    loop {
        let appended = cluster.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let read = {
            let state = cluster.lock();
            leading(&state, broker, positions.iter().map(|(tp, _)| tp))
                .and_then(|()| state.logs.read(&positions, max_records, isolation))
        };
        match read {
            // Nothing to return may still move a read_committed reader past markers and aborted records.
            Ok(read) if !read.next.is_empty() || !read.out_of_range.is_empty() => {
                return Response::Fetched {
                    records: read.records,
                    next: read.next,
                    out_of_range: read.out_of_range,
                }
            }
            Ok(_) => {}
            Err(e) => return Response::Error(e),
        }
        if tokio::time::timeout_at(deadline, appended).await.is_err() {
            return Response::Fetched {
                records: Vec::new(),
                next: Vec::new(),
                out_of_range: Vec::new(),
            };
        }
    }
}

/// Waits until `read` has an answer for a request the group holds: `Ok(None)` means not yet. Answered
/// NOT_COORDINATOR once the group's coordinator moves away from `broker`.
async fn await_group<T>(
    cluster: &Cluster,
    broker: i32,
    group: &str,
    read: impl Fn(&Group) -> Result<Option<T>, ErrorCode>,
) -> Result<T, ErrorCode> {
    loop {
        let changed = cluster.groups_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let ready = {
            let state = cluster.lock();
            coordinating(&state, broker, CoordinatorKind::Group, group).and_then(|()| {
                state
                    .groups
                    .get(group)
                    .map(&read)
                    .unwrap_or(Err(ErrorCode::UnknownMemberId))
            })
        };
        match ready {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        // The coordinator's timers may move the group on without a notification reaching us first.
        let _ = timeout(cluster.config().coordinator_tick, changed).await;
    }
}

async fn await_join(cluster: &Cluster, broker: i32, group: &str, outcome: JoinOutcome) -> Response {
    let member_id = outcome.member_id;
    let answer = await_group(cluster, broker, group, |g| {
        g.join_answer(&member_id, outcome.after)
    })
    .await;
    match answer {
        Ok(answer) => Response::Joined {
            member_id,
            generation: answer.generation,
            leader: answer.leader,
            cooperative: answer.cooperative,
            members: answer.members.into_iter().collect(),
        },
        Err(e) => Response::Error(e),
    }
}

async fn await_sync(
    cluster: &Cluster,
    broker: i32,
    group: &str,
    member_id: &str,
    generation: i32,
) -> Response {
    match await_group(cluster, broker, group, |g| {
        g.assignment_of(member_id, generation)
    })
    .await
    {
        Ok(assignment) => Response::Synced { assignment },
        Err(e) => Response::Error(e),
    }
}
