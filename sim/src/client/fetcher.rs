//! A group consumer's fetches, as Kafka's consumers send them: one fetch on its way to each partition
//! leader at a time, for that leader's share of the partitions, each answered on its own. A poll returns
//! as soon as one leader answers (or its wait ends), and the fetches still on their way stay on their way
//! for the next poll, so a leader with nothing new does not hold up the others.
//!
//! A fetch's answer is only good for a partition still at the position the fetch was sent from: the
//! consumer drops the rest (a partition sought elsewhere, rewound, paused or given up meanwhile).

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_core::kafka::KafkaError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::routing::Router;
use crate::protocol::{ErrorCode, Isolation, Request, Response, Tp};

/// A fetch on its way to one leader.
struct InFlight {
    id: u64,
    sent: BTreeMap<Tp, i64>,
    task: JoinHandle<()>,
}

/// A fetch's answer, with the positions it was sent from.
pub struct Answered {
    pub sent: BTreeMap<Tp, i64>,
    pub answer: Result<Response, KafkaError>,
}

/// An answer as its task reports it: (leader, fetch id, answer).
type Report = (i32, u64, Result<Response, KafkaError>);

pub struct Fetcher {
    /// Connections of the fetches' own: a long poll does not hold up the consumer's other requests.
    router: Router,
    isolation: Isolation,
    in_flight: BTreeMap<i32, InFlight>,
    next_id: u64,
    reported: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Fetcher {
    pub fn new(router: Router, isolation: Isolation) -> Fetcher {
        let (reported, reports) = mpsc::unbounded_channel();
        Fetcher {
            router,
            isolation,
            in_flight: BTreeMap::new(),
            next_id: 0,
            reported,
            reports,
        }
    }

    /// Whether no fetch is on its way.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Sends a fetch to each leader of the `wanted` partitions (at these positions) that has none on its
    /// way; partitions of a leader with one on its way wait for the next round.
    pub async fn send(
        &mut self,
        wanted: &BTreeMap<Tp, i64>,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<(), KafkaError> {
        let idle: Vec<Tp> = wanted
            .keys()
            .filter(|tp| self.in_flight.values().all(|f| !f.sent.contains_key(*tp)))
            .cloned()
            .collect();
        if idle.is_empty() {
            return Ok(());
        }
        let leaders = self.router.leaders(&idle).await?;
        let mut shares: BTreeMap<i32, BTreeMap<Tp, i64>> = BTreeMap::new();
        for (tp, leader) in leaders {
            if !self.in_flight.contains_key(&leader) {
                let position = wanted.get(&tp).copied().unwrap_or(0);
                shares.entry(leader).or_default().insert(tp, position);
            }
        }
        for (leader, sent) in shares {
            let Some(connection) = self.router.connection_to(leader) else {
                continue;
            };
            let request = Request::Fetch {
                positions: sent.iter().map(|(tp, p)| (tp.clone(), *p)).collect(),
                max_records,
                max_wait_ms: max_wait.as_millis() as u64,
                isolation: self.isolation,
            };
            self.next_id += 1;
            let id = self.next_id;
            let reported = self.reported.clone();
            let task = tokio::spawn(async move {
                let answer = connection.call(&request, max_wait).await;
                let _ = reported.send((leader, id, answer));
            });
            self.in_flight.insert(leader, InFlight { id, sent, task });
        }
        Ok(())
    }

    /// Waits up to `wait` for a fetch to be answered; returns that answer and every other one already
    /// in. A leader that refused its share or could not be reached is looked up again before the next.
    pub async fn answers(&mut self, wait: Duration) -> Vec<Answered> {
        let mut answered = Vec::new();
        if self.in_flight.is_empty() {
            return answered;
        }
        let first = match tokio::time::timeout(wait, self.reports.recv()).await {
            Ok(Some(report)) => report,
            Ok(None) | Err(_) => return answered,
        };
        let mut reports = vec![first];
        while let Ok(report) = self.reports.try_recv() {
            reports.push(report);
        }
        for (leader, id, answer) in reports {
            if self.in_flight.get(&leader).is_none_or(|f| f.id != id) {
                continue;
            }
            let Some(fetch) = self.in_flight.remove(&leader) else {
                continue;
            };
            if matches!(
                answer,
                Err(_) | Ok(Response::Error(ErrorCode::NotLeaderOrFollower))
            ) {
                for tp in fetch.sent.keys() {
                    self.router.forget_leader(tp);
                }
            }
            answered.push(Answered {
                sent: fetch.sent,
                answer,
            });
        }
        answered
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        for fetch in self.in_flight.values() {
            fetch.task.abort();
        }
    }
}
