//! Keeping a sink task in its consumer group while its `put` or `flush` runs.
//!
//! Kafka's consumer leaves its group when the application has not polled for `max.poll.interval.ms`,
//! and a rebalance waits for every member to rejoin for as long: a sink whose `put` or `flush` is slow
//! costs the connector a rebalance, and stalls every other task in it (the Kafka Connect developer
//! guide's warning). Here the runtime polls while the call runs, with the task's partitions paused, so
//! the member stays in: the poll interval never passes, and what the group says (a lost membership
//! above all) is heard at once rather than after the call.
//!
//! A revocation the group announces meanwhile is held (its partitions stay owned, to be committed when
//! the call returns), but not past half of `max.poll.interval.ms`: then the task gives them up
//! uncommitted (they are delivered again to their next owner) and rejoins, so the rebalance never
//! throws it out.
//!
//! Polling starts only after [`KEEP_ALIVE_AFTER`]: a pause drops what the consumer fetched ahead, too
//! dear for the quick calls that are nearly all of them. A call that runs past its limit
//! (`put.flush.limit.ms`) is reported in the log and the task's status, and polling stops, so that the
//! group hands a hung task's partitions to a live member after `max.poll.interval.ms`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant};

use crate::api::TopicPartition;
use crate::kafka::{GroupConsumer, GroupEvent, KafkaError};

use super::repeated::Repeated;
use super::status::TaskCounter;

/// How long a call runs before the loop pauses the task's partitions and polls meanwhile.
const KEEP_ALIVE_AFTER: Duration = Duration::from_secs(1);

/// How long one keep-alive poll waits before the loop looks at the call again.
const POLL_WAIT: Duration = Duration::from_millis(100);

/// How long the task listens to its consumer after a call past its limit, before it commits anything:
/// the consumer has likely left the group meanwhile, and says so at its next polls (librdkafka first
/// with a max-poll error, then with the lost assignment).
const LISTEN_AFTER_LIMIT: Duration = Duration::from_secs(1);

/// What happened in the group while a call ran.
#[derive(Debug, Default)]
pub struct Busy {
    /// Partitions paused for the call, to resume after it.
    pub paused: Vec<TopicPartition>,
    /// Per partition, the first offset of records the consumer returned anyway (fetched before the pause
    /// took effect, or of partitions assigned meanwhile): where the partition is sought back to.
    pub received: BTreeMap<TopicPartition, i64>,
    /// The group's changes, in order: assignments and losses (a revocation given up counts as a loss:
    /// its partitions went without a commit).
    pub events: Vec<GroupEvent>,
    /// A revocation still held when the call returned (its partitions are owned until the next poll),
    /// and when the task first heard of it.
    pub held: Option<(Vec<TopicPartition>, Instant)>,
}

/// A revocation waiting for the call: its partitions stay owned until the next poll.
struct Held {
    partitions: Vec<TopicPartition>,
    /// When the task heard of it: the rebalance has waited since about then.
    since: Instant,
}

/// Polls a task's consumer while one of the task's calls runs.
pub struct KeepAlive<'a> {
    pub consumer: &'a mut dyn GroupConsumer,
    /// The task, for logs.
    pub task: &'a str,
    pub status: &'a TaskCounter,
    pub poll_failures: &'a mut Repeated,
    pub max_poll_records: usize,
    /// Partitions to pause once the call runs long (those not paused already), worked out only then:
    /// nearly every call returns first.
    pub pause: &'a (dyn Fn() -> Vec<TopicPartition> + Sync),
    /// How long the call may run while the task keeps its membership.
    pub limit: Duration,
    /// The consumer's `max.poll.interval.ms`: how long a rebalance waits for the member.
    pub max_poll_interval: Duration,
    /// Partitions whose revocation the call is made for (it commits them), if it is, and when the task
    /// heard of that revocation.
    pub revoking: Option<(Vec<TopicPartition>, Instant)>,
    /// Whether polling must wait for the call: the group changes announced so far are not handled
    /// yet, and a poll could complete a revocation among them before its commit.
    pub quiet: bool,
}

impl KeepAlive<'_> {
    /// Runs `work` (the task's `call`), polling as the module says; returns its output and what the
    /// group did meanwhile.
    pub async fn run<T>(self, call: &'static str, work: impl Future<Output = T>) -> (T, Busy) {
        let KeepAlive {
            consumer,
            task,
            status,
            poll_failures,
            max_poll_records,
            pause,
            limit,
            max_poll_interval,
            revoking,
            quiet,
        } = self;
        tokio::pin!(work);
        let started = Instant::now();
        let patience = max_poll_interval / 2;
        let mut heard = Heard {
            busy: Busy::default(),
            held: revoking.map(|(partitions, since)| Held { partitions, since }),
            task,
            call,
        };
        let mut polling = false;
        let mut over_limit = false;
        loop {
            let poll_now = polling && !quiet && !over_limit && heard.held.is_none();
            let give_up_at = heard.held.as_ref().map(|h| h.since + patience);
            tokio::select! {
                biased;
                output = &mut work => {
                    if over_limit {
                        status.blocked(None);
                        tracing::warn!(task, call, took = ?started.elapsed(), "the call past its limit returned");
                        // The consumer has likely left the group meanwhile: hear it before anything
                        // is committed with the generation it left.
                        let until = Instant::now() + LISTEN_AFTER_LIMIT;
                        while !quiet && heard.held.is_none() && heard.busy.events.is_empty() {
                            match timeout_at(until, consumer.poll(max_poll_records, POLL_WAIT)).await {
                                Ok(polled) => heard.polled(polled, poll_failures),
                                Err(_) => break,
                            }
                        }
                    }
                    let mut busy = heard.busy;
                    busy.held = heard.held.map(|h| (h.partitions, h.since));
                    return (output, busy);
                }
                () = sleep_until(started + KEEP_ALIVE_AFTER), if !polling => {
                    polling = true;
                    let pause = pause();
                    match consumer.pause(&pause) {
                        Ok(()) => heard.busy.paused = pause,
                        // Records fetched meanwhile are sought back to after the call all the same.
                        Err(e) => tracing::debug!(task, error = %e, "cannot pause the partitions while the task is busy"),
                    }
                }
                () = sleep_until(started + limit), if !over_limit => {
                    over_limit = true;
                    tracing::warn!(task, call, ?limit, "the task's {call} has run past put.flush.limit.ms: it stops polling, so the group hands its partitions to other tasks after max.poll.interval.ms");
                    status.blocked(Some(format!(
                        "in {call} for over {} s, past put.flush.limit.ms",
                        limit.as_secs()
                    )));
                }
                () = sleep_until(give_up_at.unwrap_or(started)), if give_up_at.is_some() => {
                    let Some(Held { partitions, .. }) = heard.held.take() else { continue };
                    tracing::warn!(task, call, ?partitions, waited = ?patience, "a rebalance has waited half of max.poll.interval.ms for the task's {call}: giving its partitions up uncommitted (they are delivered again to their next owner) and rejoining");
                    heard.busy.events.push(GroupEvent::Lost(partitions));
                    polling = true;
                }
                polled = consumer.poll(max_poll_records, POLL_WAIT), if poll_now => heard.polled(polled, poll_failures),
            }
        }
    }
}

/// What the consumer said while a call ran.
struct Heard<'a> {
    busy: Busy,
    held: Option<Held>,
    /// The task and its call, for logs.
    task: &'a str,
    call: &'static str,
}

impl Heard<'_> {
    fn polled(&mut self, polled: Result<GroupEvent, KafkaError>, failures: &mut Repeated) {
        let (task, call) = (self.task, self.call);
        match polled {
            Ok(GroupEvent::Records(records)) => {
                for record in records {
                    self.busy
                        .received
                        .entry(TopicPartition::new(&*record.topic, record.partition))
                        .or_insert(record.offset);
                }
            }
            Ok(GroupEvent::Revoked(partitions)) => {
                tracing::info!(task, call, ?partitions, "the group rebalances while the task's {call} runs: the revoked partitions wait for it, for half of max.poll.interval.ms at most");
                self.held = Some(Held {
                    partitions,
                    since: Instant::now(),
                });
            }
            Ok(GroupEvent::Lost(partitions)) => {
                tracing::warn!(task, call, ?partitions, "partitions lost while the task's {call} runs: what it did for them is dropped, never committed");
                self.busy.events.push(GroupEvent::Lost(partitions));
            }
            Ok(assigned) => self.busy.events.push(assigned),
            Err(e) => {
                if let Some(more) = failures.happened() {
                    tracing::warn!(task, error = %e, more_since_last_line = more, "consumer poll failed");
                }
            }
        }
    }
}
