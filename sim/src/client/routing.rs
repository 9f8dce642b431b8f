//! Where a client's requests go, as a Kafka client routes them: metadata names the brokers and each
//! partition's leader, FindCoordinator the coordinator of a group or transactional id. Requests go there;
//! an answer that the broker no longer leads or coordinates (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR),
//! or a lost connection, makes the client forget what it knew and ask again before its next request.
//!
//! A client's parts share what it knows ([`Router::sibling`]) but keep connections of their own, so a
//! request held waiting on purpose (a join, a long-polling fetch) does not hold up the others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_core::kafka::KafkaError;
use tokio::task::JoinSet;

use super::connection::{code_error, unexpected, Connection};
use crate::coverage::{self, Event};
use crate::protocol::{CoordinatorKind, ErrorCode, Request, Response, Tp, NO_LEADER};

/// How often a request is sent to a coordinator found anew after being told it was the wrong one.
const COORDINATOR_ATTEMPTS: usize = 3;
/// Wait before finding a coordinator again (`retry.backoff.ms`).
const COORDINATOR_BACKOFF: Duration = Duration::from_millis(100);

/// A leader or coordinator as last heard of; `stale` once it refused a request or could not be reached.
#[derive(Debug, Clone, Copy)]
struct Heard {
    broker: i32,
    stale: bool,
}

/// What a client knows of the cluster.
#[derive(Debug, Default)]
struct Known {
    /// `bootstrap.servers`, for as long as no metadata has named the brokers.
    bootstrap: Vec<String>,
    brokers: BTreeMap<i32, String>,
    /// Which known address a request for any broker goes to next; moves on after a failure.
    next_any: usize,
    leaders: BTreeMap<Tp, Heard>,
    coordinators: BTreeMap<(CoordinatorKind, String), Heard>,
}

impl Known {
    fn any_address(&self) -> Option<String> {
        let addresses: Vec<&String> = match self.brokers.is_empty() {
            true => self.bootstrap.iter().collect(),
            false => self.brokers.values().collect(),
        };
        match addresses.len() {
            0 => None,
            n => Some(addresses[self.next_any % n].clone()),
        }
    }

    fn leader(&self, tp: &Tp) -> Option<i32> {
        self.leaders
            .get(tp)
            .filter(|heard| !heard.stale)
            .map(|heard| heard.broker)
    }

    /// Learns a partition's leader; a different one than a stale one before means the client followed a
    /// move.
    fn learn_leader(&mut self, tp: Tp, leader: i32) {
        if leader == NO_LEADER {
            if let Some(heard) = self.leaders.get_mut(&tp) {
                heard.stale = true;
            }
            return;
        }
        let before = self.leaders.insert(
            tp,
            Heard {
                broker: leader,
                stale: false,
            },
        );
        if before.is_some_and(|heard| heard.stale && heard.broker != leader) {
            coverage::reached(Event::LeaderMoved);
        }
    }
}

/// Routes a client's requests to the brokers that answer them.
pub struct Router {
    known: Arc<Mutex<Known>>,
    request_timeout: Duration,
    /// One connection per broker address.
    connections: Mutex<BTreeMap<String, Arc<Connection>>>,
}

impl Router {
    /// A router knowing only `bootstrap` (`bootstrap.servers`: comma-separated `host:port`s).
    pub fn new(bootstrap: &str, request_timeout: Duration) -> Router {
        let known = Known {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(str::to_owned)
                .collect(),
            ..Known::default()
        };
        Router {
            known: Arc::new(Mutex::new(known)),
            request_timeout,
            connections: Mutex::default(),
        }
    }

    /// A router that shares what this one knows, with connections of its own.
    pub fn sibling(&self) -> Router {
        Router {
            known: self.known.clone(),
            request_timeout: self.request_timeout,
            connections: Mutex::default(),
        }
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connection(&self, address: &str) -> Arc<Connection> {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(address.to_owned())
            .or_insert_with(|| Arc::new(Connection::new(address, self.request_timeout)))
            .clone()
    }

    /// Sends a request any broker answers (metadata, topic creation, a producer id): to the next known
    /// broker, moving on to another after a failure.
    pub async fn call_any(
        &self,
        request: &Request,
        extra_wait: Duration,
    ) -> Result<Response, KafkaError> {
        let address = self
            .known()
            .any_address()
            .ok_or_else(|| KafkaError::Backend("no bootstrap servers".into()))?;
        let result = self.connection(&address).call(request, extra_wait).await;
        if result.is_err() {
            self.known().next_any += 1;
        }
        result
    }

    /// Asks for the brokers and the leaders of `topics` (of every topic with `None`), creating missing
    /// ones when `auto_create` is set; remembers them, and returns the partition count of each topic
    /// found.
    pub async fn metadata(
        &self,
        topics: Option<Vec<String>>,
        auto_create: bool,
    ) -> Result<Vec<(String, i32)>, KafkaError> {
        let request = Request::Metadata {
            topics,
            auto_create,
        };
        let (brokers, topics) = match self.call_any(&request, Duration::ZERO).await? {
            Response::Metadata {
                brokers, topics, ..
            } => (brokers, topics),
            other => return Err(unexpected(other)),
        };
        let mut known = self.known();
        if !brokers.is_empty() {
            known.brokers = brokers.into_iter().collect();
        }
        let mut counts = Vec::with_capacity(topics.len());
        for (topic, leaders) in topics {
            counts.push((topic.clone(), leaders.len() as i32));
            for (partition, leader) in leaders.into_iter().enumerate() {
                known.learn_leader(Tp::new(topic.clone(), partition as i32), leader);
            }
        }
        Ok(counts)
    }

    /// The leaders of `tps`, asking for metadata first if one is not known; a partition with no leader
    /// that can be reached is left out.
    pub async fn leaders(&self, tps: &[Tp]) -> Result<BTreeMap<Tp, i32>, KafkaError> {
        let missing: BTreeSet<String> = {
            let known = self.known();
            tps.iter()
                .filter(|tp| known.leader(tp).is_none())
                .map(|tp| tp.topic.to_string())
                .collect()
        };
        if !missing.is_empty() {
            self.metadata(Some(missing.into_iter().collect()), false)
                .await?;
        }
        let known = self.known();
        Ok(tps
            .iter()
            .filter_map(|tp| known.leader(tp).map(|leader| (tp.clone(), leader)))
            .collect())
    }

    /// The partition's leader stopped answering for it: ask for metadata before the next request.
    pub fn forget_leader(&self, tp: &Tp) {
        if let Some(heard) = self.known().leaders.get_mut(tp) {
            heard.stale = true;
        }
    }

    /// The address of broker `broker`; `None` if no metadata has named it.
    pub fn address(&self, broker: i32) -> Option<String> {
        self.known().brokers.get(&broker).cloned()
    }

    /// This router's connection to broker `broker`; `None` if no metadata has named it.
    pub fn connection_to(&self, broker: i32) -> Option<Arc<Connection>> {
        self.address(broker)
            .map(|address| self.connection(&address))
    }

    /// Sends a request to broker `broker`.
    pub async fn call_broker(
        &self,
        broker: i32,
        request: &Request,
        extra_wait: Duration,
    ) -> Result<Response, KafkaError> {
        let address = self.address(broker).ok_or_else(|| unknown_broker(broker))?;
        self.connection(&address).call(request, extra_wait).await
    }

    /// Sends a request about partitions to their leaders: one request per leader, built by `build` from
    /// its share, all at once. Returns each request's partitions with its answer, in leader order, then
    /// the partitions without a reachable leader with an error. A leader that refused its share
    /// (NOT_LEADER_OR_FOLLOWER) or could not be reached is forgotten.
    pub async fn call_leaders(
        &self,
        tps: Vec<Tp>,
        extra_wait: Duration,
        build: impl Fn(Vec<Tp>) -> Request,
    ) -> Vec<(Vec<Tp>, Result<Response, KafkaError>)> {
        let leaders = match self.leaders(&tps).await {
            Ok(leaders) => leaders,
            Err(e) => return vec![(tps, Err(e))],
        };
        let mut shares: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        let mut leaderless = Vec::new();
        for tp in tps {
            match leaders.get(&tp) {
                Some(leader) => shares.entry(*leader).or_default().push(tp),
                None => leaderless.push(tp),
            }
        }
        // Every leader at once; answers are put back in leader order.
        let mut set = JoinSet::new();
        for (turn, (leader, share)) in shares.into_iter().enumerate() {
            let request = build(share.clone());
            let connection = self.connection_to(leader);
            set.spawn(async move {
                let answer = match connection {
                    Some(connection) => connection.call(&request, extra_wait).await,
                    None => Err(unknown_broker(leader)),
                };
                (turn, share, answer)
            });
        }
        let mut answers = Vec::with_capacity(set.len());
        while let Some(joined) = set.join_next().await {
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(turn, _, _)| *turn);
        let mut out = Vec::with_capacity(answers.len() + 1);
        for (_, share, answer) in answers {
            if matches!(
                answer,
                Err(_) | Ok(Response::Error(ErrorCode::NotLeaderOrFollower))
            ) {
                for tp in &share {
                    self.forget_leader(tp);
                }
            }
            out.push((share, answer));
        }
        if !leaderless.is_empty() {
            let error = KafkaError::Backend("no leader available".into());
            out.push((leaderless, Err(error)));
        }
        out
    }

    /// The coordinator of `key`: as last found, or found now.
    async fn coordinator(&self, kind: CoordinatorKind, key: &str) -> Result<i32, KafkaError> {
        let slot = (kind, key.to_owned());
        let heard = self.known().coordinators.get(&slot).copied();
        if let Some(Heard {
            broker,
            stale: false,
        }) = heard
        {
            return Ok(broker);
        }
        let request = Request::FindCoordinator {
            kind,
            key: key.to_owned(),
        };
        let broker = match self.call_any(&request, Duration::ZERO).await? {
            Response::Coordinator { broker } => broker,
            other => return Err(unexpected(other)),
        };
        if self.address(broker).is_none() {
            self.metadata(Some(Vec::new()), false).await?;
        }
        if heard.is_some_and(|heard| heard.broker != broker) {
            coverage::reached(Event::CoordinatorMoved);
        }
        self.known().coordinators.insert(
            slot,
            Heard {
                broker,
                stale: false,
            },
        );
        Ok(broker)
    }

    fn forget_coordinator(&self, kind: CoordinatorKind, key: &str) {
        if let Some(heard) = self.known().coordinators.get_mut(&(kind, key.to_owned())) {
            heard.stale = true;
        }
    }

    /// Sends a request to the coordinator of `key`, finding it first if need be. Told that it is not
    /// (or not available), the client finds it again and resends, a few times; a lost connection makes
    /// it find the coordinator again before the next request, and is returned.
    pub async fn call_coordinator(
        &self,
        kind: CoordinatorKind,
        key: &str,
        request: &Request,
        extra_wait: Duration,
    ) -> Result<Response, KafkaError> {
        let mut last = code_error(ErrorCode::CoordinatorNotAvailable);
        for attempt in 0..COORDINATOR_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(COORDINATOR_BACKOFF).await;
            }
            let broker = match self.coordinator(kind, key).await {
                Ok(broker) => broker,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match self.call_broker(broker, request, extra_wait).await {
                Ok(Response::Error(
                    code @ (ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable),
                )) => {
                    self.forget_coordinator(kind, key);
                    last = code_error(code);
                }
                Err(e) => {
                    self.forget_coordinator(kind, key);
                    return Err(e);
                }
                answer => return answer,
            }
        }
        Err(last)
    }
}

/// A broker no metadata has named.
pub(super) fn unknown_broker(broker: i32) -> KafkaError {
    KafkaError::Backend(format!("broker {broker} is not known"))
}
