//! The Kafka seam's conformance suite: the semantics the Sluice runtime relies on, written once over
//! `Arc<dyn KafkaBackend>` and run against both backends, the simulated one (inside turmoil, simulated time)
//! and the rdkafka one (on librdkafka's embedded mock cluster, real time). `sim::<case>` and
//! `rdkafka::<case>` run the same case on one broker; `sim_three_brokers::<case>` and
//! `rdkafka_three_brokers::<case>` on three, whose partition leaders and coordinators the case moves.
//!
//! The embedded broker accepts transactions but writes no control markers, stores nothing for
//! TxnOffsetCommit and shows aborted records to read_committed readers; the transaction cases say so
//! through [`Limits`] and assert what it does instead.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sluice_core::api::TopicPartition;
use sluice_core::kafka::rdkafka::{
    Coordinated, EmbeddedBroker, RdkafkaBackend, RetriableProduceError,
};
use sluice_core::kafka::{
    ClientSettings, ConsumedRecord, GroupConsumer, GroupEvent, KafkaBackend, KafkaError,
    KafkaHeader, NewTopic, ProduceRecord, ProducerHandle, Subscription, TransactionalHandle,
};
use sluice_sim::broker::{serve, BrokerConfig, Cluster, Layout, ProduceErrors, BROKER_PORT};
use sluice_sim::client::SimBackend;
use sluice_sim::protocol::{CoordinatorKind, ErrorCode, Tp};
use sluice_sim::tansu::Tansu;

/// How long any awaited condition may take before the case fails (simulated or real time). Generous: the
/// embedded broker completes a rebalance about 5 s after it starts, and now and then runs several rounds.
const DEADLINE: Duration = Duration::from_secs(120);
/// `max_wait` of every poll.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// A consumer-group session: the embedded broker reassigns a departed member's partitions only after
/// about this long, so it is kept short.
const SESSION_MS: u64 = 6_000;
/// `max.poll.interval.ms` of the cases that do not test it.
const RELAXED_MAX_POLL_MS: u64 = 60_000;
/// `max.poll.interval.ms` of the fencing case: librdkafka refuses one shorter than the session.
const STRICT_MAX_POLL_MS: u64 = SESSION_MS;
/// The group every case's members join.
const GROUP: &str = "conformance";

/// The backend under test.
#[derive(Clone)]
struct Env {
    kafka: Arc<dyn KafkaBackend>,
    /// Where its broker departs from Kafka.
    limits: Limits,
    /// How the case's clients are cut off from the broker.
    network: Network,
    /// Its broker's produce errors, if it can be made to answer with them.
    faults: Option<Arc<dyn ProduceFaults>>,
    /// Moves its partition leaders and coordinators, if it has several brokers.
    moves: Option<Arc<dyn Moves>>,
    /// How retention deletes a partition's records, if a case can make it.
    retention: Option<Retention>,
}

impl Env {
    fn faults(&self) -> &dyn ProduceFaults {
        self.faults
            .as_deref()
            .expect("cases with produce errors run only on brokers that take them")
    }

    fn moves(&self) -> &dyn Moves {
        self.moves
            .as_deref()
            .expect("cases that move leaders run only on clusters of several brokers")
    }

    fn retention(&self) -> &Retention {
        self.retention
            .as_ref()
            .expect("cases of retention run only on brokers whose retention they can trigger")
    }
}

/// How a backend's broker deletes a partition's oldest records.
#[derive(Clone)]
enum Retention {
    /// The simulated cluster deletes every record written so far at once.
    Simulated(Arc<Cluster>),
    /// The embedded broker keeps about 5 MiB per partition: 10 MiB more of large records push the oldest
    /// ones out.
    Embedded,
}

impl Retention {
    async fn delete_oldest(&self, env: &Env, tp: &TopicPartition) {
        match self {
            Retention::Simulated(cluster) => {
                cluster.delete_records(
                    &Tp::new(tp.topic.as_str(), tp.partition),
                    100,
                    sluice_sim::broker::now(),
                );
            }
            Retention::Embedded => {
                let mut handle = env
                    .kafka
                    .producer(&ClientSettings::new())
                    .expect("a producer");
                let filler = vec![b'x'; 100 * 1024];
                for token in 0..100 {
                    let record = ProduceRecord {
                        topic: &tp.topic,
                        partition: Some(tp.partition),
                        key: None,
                        value: Some(&filler),
                        headers: &[],
                        timestamp: None,
                    };
                    handle
                        .producer
                        .send(&record, token)
                        .expect("queue a filler record");
                }
                for (token, report) in await_reports(&mut handle, 100).await {
                    report
                        .unwrap_or_else(|e| panic!("filler record {token} was not delivered: {e}"));
                }
            }
        }
    }
}

/// Moves partition leaders and group coordinators between a backend's brokers (numbered from 0 here).
trait Moves: Send + Sync {
    fn move_leader(&self, topic: &str, partition: i32, to: i32);
    fn move_group_coordinator(&self, group: &str, to: i32);
}

/// The simulated cluster moves a leadership at once; requests held on the old broker are answered so.
struct SimulatedMoves(Arc<Cluster>);

impl Moves for SimulatedMoves {
    fn move_leader(&self, topic: &str, partition: i32, to: i32) {
        self.0
            .move_leader(&Tp::new(topic, partition), to, sluice_sim::broker::now());
    }

    fn move_group_coordinator(&self, group: &str, to: i32) {
        let partition = Layout::coordinator_partition(CoordinatorKind::Group, group);
        self.0
            .move_leader(&partition, to, sluice_sim::broker::now());
    }
}

/// The embedded broker's ids count from 1.
struct EmbeddedMoves(Arc<EmbeddedBroker>);

impl Moves for EmbeddedMoves {
    fn move_leader(&self, topic: &str, partition: i32, to: i32) {
        self.0
            .move_leader(topic, partition, to + 1)
            .expect("the embedded broker moves a leader");
    }

    fn move_group_coordinator(&self, group: &str, to: i32) {
        self.0
            .move_coordinator(Coordinated::Group(group.to_owned()), to + 1)
            .expect("the embedded broker moves a coordinator");
    }
}

/// The network between the case's clients and the broker.
#[derive(Clone)]
enum Network {
    /// The case runs as the turmoil host `test`: holding its links to the brokers (as many as this)
    /// leaves every request unanswered.
    Simulated(usize),
    /// The embedded broker closes its connections and refuses new ones.
    Embedded(Arc<EmbeddedBroker>),
    /// The Tansu process is frozen: connections stay open and nothing is answered.
    Tansu(Arc<Tansu>),
}

impl Network {
    fn cut_off(&self) {
        match self {
            Network::Simulated(brokers) => {
                for broker in 0..*brokers {
                    turmoil::hold("test", broker_host(*brokers, broker));
                }
            }
            Network::Embedded(broker) => broker.set_reachable(false).expect("take the broker down"),
            Network::Tansu(broker) => broker.freeze(),
        }
    }

    fn restore(&self) {
        match self {
            Network::Simulated(brokers) => {
                for broker in 0..*brokers {
                    turmoil::release("test", broker_host(*brokers, broker));
                }
            }
            Network::Embedded(broker) => broker.set_reachable(true).expect("bring the broker up"),
            Network::Tansu(broker) => broker.thaw(),
        }
    }
}

/// Makes a backend's broker answer produce requests with a retriable error until told to stop.
trait ProduceFaults: Send + Sync {
    fn start(&self, error: RetriableProduceError, topic: &str, partitions: i32);
    fn stop(&self);
}

/// The simulated cluster refuses every batch to the topic's partitions
/// (`REQUEST_TIMED_OUT`: after appending it).
struct SimulatedFaults(Arc<Cluster>);

impl ProduceFaults for SimulatedFaults {
    fn start(&self, error: RetriableProduceError, topic: &str, partitions: i32) {
        self.0.start_produce_errors(ProduceErrors {
            topic: topic.to_owned(),
            partitions: (0..partitions).collect(),
            error: match error {
                RetriableProduceError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
                RetriableProduceError::RequestTimedOut => ErrorCode::RequestTimedOut,
            },
            percent: 100,
        });
    }

    fn stop(&self) {
        self.0.stop_produce_errors();
    }
}

/// The embedded broker refuses whole produce requests, appending nothing.
struct EmbeddedFaults(Arc<EmbeddedBroker>);

impl ProduceFaults for EmbeddedFaults {
    fn start(&self, error: RetriableProduceError, _: &str, _: i32) {
        self.0
            .fail_produce_requests(error, 100_000)
            .expect("the embedded broker takes produce errors");
    }

    fn stop(&self) {
        self.0
            .clear_produce_errors()
            .expect("the embedded broker clears produce errors");
    }
}

/// What a backend's broker does differently from Kafka, so a case can say so and assert what it can.
#[derive(Clone, Copy)]
struct Limits {
    /// The broker refuses every commit while the group rebalances (librdkafka's mock cluster), where Kafka
    /// accepts those of the current generation until the rebalance completes.
    refuses_commits_while_rebalancing: bool,
    /// Aborted transactions stay hidden from read_committed readers (the embedded broker writes no
    /// markers: its read_committed readers see aborted records).
    hides_aborted_records: bool,
    /// TxnOffsetCommit stores the offsets when the transaction commits (the embedded broker stores nothing).
    stores_transactional_offsets: bool,
    /// What InitProducerId with a transactional id does to the older producer of that id.
    older_producer: OlderProducer,
    /// A partition's end offset (ListOffsets LATEST) is one past its last record, whatever the batches
    /// it was written in.
    exact_end_offsets: bool,
}

/// What becomes of the older producer of a transactional id once a newer one registered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OlderProducer {
    /// It is fenced: its commit fails with a typed error, as in Kafka.
    Fenced,
    /// Nothing: it commits (the embedded broker).
    Commits,
    /// Its commit goes unanswered until its client gives up (Tansu).
    Unanswered,
}

/// How long a case waits for a commit the broker leaves unanswered.
const UNANSWERED_COMMIT: Duration = Duration::from_secs(10);

/// Generates `<sim>::<case>` and `<rdkafka>::<case>` for every case, on clusters of `brokers` brokers.
macro_rules! conformance {
    ($sim:ident, $rdkafka:ident, $brokers:expr; $($case:ident),* $(,)?) => {
        mod $sim {
            $(
                #[test]
                fn $case() {
                    super::in_simulation($brokers, super::$case);
                }
            )*
        }

        mod $rdkafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::on_embedded_broker($brokers)).await;
                }
            )*
        }
    };
}

conformance! {
    sim_three_brokers, rdkafka_three_brokers, 3;
    produce_and_fetch_follow_leader_moves,
    group_member_follows_its_coordinator,
}

/// The cases Tansu runs too (through rdkafka, one broker per case: a case that cuts the network off
/// freezes it). Not on Tansu: the three-broker cases (one broker), the produce-error cases and the
/// zombie case (it cannot be told to answer with errors) and the log-start case (its memory storage has
/// no retention to trigger). Where Tansu 0.6 departs from Kafka, [`Limits`] says so and the case asserts
/// what it does: it shows aborted records to read_committed readers (no abort markers), and it neither
/// fences the older producer of a transactional id nor completes its commit (EndTxn goes unanswered
/// until the client gives up), which no Kafka does.
macro_rules! on_tansu {
    ($($case:ident),* $(,)?) => {
        mod rdkafka_tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::on_tansu()).await;
                }
            )*
        }
    };
}

/// The one-broker cases: on the simulated cluster and the embedded broker, and those listed first on
/// Tansu too.
macro_rules! one_broker {
    (also on Tansu: $($shared:ident),* $(,)?; not on Tansu: $($other:ident),* $(,)?) => {
        conformance! { sim, rdkafka, 1; $($shared,)* $($other),* }
        on_tansu! { $($shared),* }
    };
}

one_broker! {
    also on Tansu:
    end_offset_counts_every_record_of_a_batch,
    produce_then_fetch_in_offset_order,
    member_told_to_skip_headers_reads_records_without_them,
    second_member_splits_the_partitions,
    leaving_member_hands_its_partitions_over,
    commits_are_visible_and_a_new_member_resumes_from_them,
    revoked_partitions_can_be_committed_before_the_next_poll,
    member_that_stops_polling_is_fenced,
    member_cut_off_past_its_session_loses_its_partitions,
    cooperative_member_gives_up_only_the_partitions_that_move,
    committed_transaction_is_visible_with_its_offsets,
    aborted_transaction_is_hidden_from_read_committed_readers,
    second_instance_fences_the_first;
    not on Tansu:
    zombie_recovering_from_a_failed_transaction_does_not_fence_its_successor,
    retried_batches_keep_partition_order_and_are_appended_once,
    delivery_outlasting_its_timeout_is_reported_failed,
    member_behind_the_log_start_resumes_there,
}

/// Records sent in one go share produce batches: the partition's end offset is one past the last of
/// them, and a log reader, which reads up to the end offsets as Kafka Connect's `KafkaBasedLog` does
/// (the worker's internal topics), reads every one.
async fn end_offset_counts_every_record_of_a_batch(env: Env) {
    const RECORDS: i64 = 100;
    let all = create_topic(&env, "batched", 1).await;
    let mut handle = env
        .kafka
        .producer(&ClientSettings::new())
        .expect("a producer");
    for seq in 0..RECORDS {
        send_one(&handle, "batched", 0, seq, seq as u64);
    }
    let offsets: Vec<i64> = await_reports(&mut handle, RECORDS as usize)
        .await
        .into_values()
        .map(|report| report.expect("delivered").1)
        .collect();
    assert_eq!(offsets, (0..RECORDS).collect::<Vec<_>>());
    let admin = env.kafka.admin().expect("an admin client");
    let end = admin.end_offsets(&all).await.expect("end offsets")[&all[0]];
    let mut reader = env
        .kafka
        .log_reader(&ClientSettings::new())
        .expect("a log reader");
    let read = reader
        .read_to_end(&all, DEADLINE)
        .await
        .expect("read to the end");
    if env.limits.exact_end_offsets {
        assert_eq!(end, RECORDS, "the end offset");
        assert_eq!(read.len(), RECORDS as usize, "records read to the end");
    } else {
        assert!(
            end < RECORDS && read.len() == end as usize,
            "Tansu's end offset counts batches short: {end} for {RECORDS} records, {} read",
            read.len()
        );
    }
}

/// Records produced to explicit partitions are acknowledged at consecutive offsets per partition, and a
/// group member reads them back in offset order, with their keys, values, headers and timestamps.
async fn produce_then_fetch_in_offset_order(env: Env) {
    let all = create_topic(&env, "orders", 3).await;
    let sent = produce(&env, "orders", 3, 5).await;
    for (tp, offsets) in &sent {
        assert_eq!(offsets, &[0, 1, 2, 3, 4], "acknowledged offsets of {tp}");
    }

    let mut members = [Member::join(&env, "a", "orders", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "15 records read back", |m| {
        m[0].records.len() >= 15
    })
    .await;
    let [a] = &mut members;
    assert_eq!(a.rebalances, vec![GroupEvent::Assigned(all.clone())]);
    assert_eq!(a.records.len(), 15, "records read: {:?}", a.records);
    for tp in &all {
        let read: Vec<&ConsumedRecord> = a
            .records
            .iter()
            .filter(|r| r.partition == tp.partition)
            .collect();
        let offsets: Vec<i64> = read.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4], "offsets read from {tp}");
        for (seq, record) in read.iter().enumerate() {
            let expected = Sent::new(tp.partition, seq as i64);
            assert_eq!(&*record.topic, "orders");
            assert_eq!(record.key.as_deref(), Some(expected.key.as_bytes()));
            assert_eq!(record.value.as_deref(), Some(expected.value.as_bytes()));
            assert_eq!(record.headers, expected.headers);
            assert_eq!(record.timestamp, Some(expected.timestamp));
        }
    }
    a.close().await;
}

/// A member told not to read headers gets the same records, each without its headers.
async fn member_told_to_skip_headers_reads_records_without_them(env: Env) {
    create_topic(&env, "tagged", 1).await;
    produce(&env, "tagged", 1, 3).await;
    let mut members = [Member::join(&env, "a", "tagged", RELAXED_MAX_POLL_MS)];
    members[0].consumer().read_headers(false);
    drive(&mut members, "3 records read back", |m| {
        m[0].records.len() >= 3
    })
    .await;
    let [a] = &mut members;
    let values: Vec<Option<Vec<u8>>> = a.records.iter().map(|r| r.value.clone()).collect();
    let expected: Vec<Option<Vec<u8>>> = (0..3)
        .map(|seq| Some(Sent::new(0, seq).value.into_bytes()))
        .collect();
    assert_eq!(values, expected);
    assert!(
        !Sent::new(0, 0).headers.is_empty(),
        "the records were sent with headers"
    );
    assert!(
        a.records.iter().all(|r| r.headers.is_empty()),
        "headers read: {:?}",
        a.records
    );
    a.close().await;
}

/// A single member gets every partition; a second member joining makes the first give them all up
/// (eager protocol), and the two end with a disjoint split covering every partition.
///
/// The embedded broker sometimes runs another rebalance round right after the split (each a full
/// revocation and a new assignment): Kafka promises no number of rounds, so the case checks every round
/// is eager and where the group ends, not how many rounds it took.
async fn second_member_splits_the_partitions(env: Env) {
    let all = create_topic(&env, "split", 4).await;
    let mut members = [Member::join(&env, "a", "split", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a alone owns every partition", |m| {
        m[0].owned == set(&all)
    })
    .await;
    let [a] = members;
    assert_eq!(a.rebalances, vec![GroupEvent::Assigned(all.clone())]);
    let mut members = [a, Member::join(&env, "b", "split", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a and b split the partitions", |m| {
        splits(m, &all)
    })
    .await;
    settle(&mut members).await;
    drive(&mut members, "a and b split the partitions again", |m| {
        splits(m, &all)
    })
    .await;
    let [mut a, mut b] = members;
    assert_eq!(
        a.rebalances.get(1),
        Some(&GroupEvent::Revoked(all.clone())),
        "a gives up everything when b joins: {}",
        a.describe()
    );
    assert_eager(&a);
    assert_eager(&b);
    a.close().await;
    b.close().await;
}

/// After one member leaves the group, the other ends up owning every partition.
async fn leaving_member_hands_its_partitions_over(env: Env) {
    let all = create_topic(&env, "leave", 4).await;
    let mut members = [
        Member::join(&env, "a", "leave", RELAXED_MAX_POLL_MS),
        Member::join(&env, "b", "leave", RELAXED_MAX_POLL_MS),
    ];
    drive(&mut members, "a and b split the partitions", |m| {
        splits(m, &all)
    })
    .await;
    let [a, mut b] = members;
    let b_had = b.owned.clone();
    b.close().await;
    let mut members = [a];
    drive(&mut members, "a owns every partition after b left", |m| {
        m[0].owned == set(&all)
    })
    .await;
    let [mut a] = members;
    assert!(
        matches!(a.rebalances.last(), Some(GroupEvent::Assigned(got)) if set(got).is_superset(&b_had)),
        "a's last rebalance should assign b's partitions {b_had:?}: {:?}",
        a.rebalances
    );
    assert_eager(&a);
    a.close().await;
}

/// Commits are visible through `committed`, and a new member of the group starts each partition at its
/// committed offset (a partition without one at the beginning, `auto.offset.reset=earliest`, which is
/// the log start: 0 while retention deleted nothing).
async fn commits_are_visible_and_a_new_member_resumes_from_them(env: Env) {
    let all = create_topic(&env, "resume", 3).await;
    produce(&env, "resume", 3, 10).await;
    let mut members = [Member::join(&env, "a", "resume", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a reads all 30 records", |m| {
        m[0].records.len() >= 30
    })
    .await;
    let [mut a] = members;
    let commit = BTreeMap::from([(all[0].clone(), 4), (all[1].clone(), 7)]);
    a.consumer()
        .commit(&commit)
        .await
        .expect("a member of the current generation commits");
    let expected = BTreeMap::from([
        (all[0].clone(), Some(4)),
        (all[1].clone(), Some(7)),
        (all[2].clone(), None),
    ]);
    let committed = a.consumer().committed(&all).await.expect("read commits");
    assert_eq!(committed, expected, "committed offsets seen by a");
    let starts = a
        .consumer()
        .log_start_offsets(&all)
        .await
        .expect("read log starts");
    assert_eq!(
        starts,
        all.iter().map(|tp| (tp.clone(), 0)).collect(),
        "nothing was deleted: every partition still starts at 0"
    );
    a.close().await;

    let mut members = [Member::join(&env, "b", "resume", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "b reads the 19 uncommitted records", |m| {
        m[0].records.len() >= 19
    })
    .await;
    let [mut b] = members;
    let committed = b.consumer().committed(&all).await.expect("read commits");
    assert_eq!(committed, expected, "committed offsets seen by b");
    let first: BTreeMap<i32, i64> = b
        .records
        .iter()
        .rev()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(
        first,
        BTreeMap::from([(0, 4), (1, 7), (2, 0)]),
        "first offset b read per partition"
    );
    assert_eq!(b.records.len(), 19, "records b read");
    b.close().await;
}

/// A member whose group committed an offset before the partition's log start (retention deleted the
/// records there) starts at the log start, as `auto.offset.reset=earliest` says, and not at 0.
async fn member_behind_the_log_start_resumes_there(env: Env) {
    let all = create_topic(&env, "retained", 1).await;
    produce(&env, "retained", 1, 10).await;
    let mut members = [Member::join(&env, "a", "retained", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a reads all 10 records", |m| {
        m[0].records.len() >= 10
    })
    .await;
    let [mut a] = members;
    a.consumer()
        .commit(&BTreeMap::from([(all[0].clone(), 2)]))
        .await
        .expect("a member of the current generation commits");
    a.close().await;

    env.retention().delete_oldest(&env, &all[0]).await;
    produce_from(&env, "retained", 1, 10, 1).await;
    let mut members = [Member::join(&env, "b", "retained", RELAXED_MAX_POLL_MS)];
    drive(
        &mut members,
        "b reads up to the record after the deletion",
        |m| {
            m[0].records
                .iter()
                .any(|r| r.value.as_deref() == Some(Sent::new(0, 10).value.as_bytes()))
        },
    )
    .await;
    let [mut b] = members;
    let start = b
        .consumer()
        .log_start_offsets(&all)
        .await
        .expect("read log starts")[&all[0]];
    assert!(
        start > 2,
        "retention deleted records past the committed offset: log start {start}"
    );
    let first = b.records.iter().map(|r| r.offset).min();
    assert_eq!(first, Some(start), "b starts at the log start");
    b.close().await;
}

/// A member told its partitions are revoked commits them before its next poll (the runtime flushes and
/// commits there), and the member that gets them next starts at that commit.
///
/// librdkafka's mock cluster cannot show this: it refuses every commit while the group rebalances, so on
/// the rdkafka backend the case asserts the refusal is reported as fenced and that nothing was stored.
async fn revoked_partitions_can_be_committed_before_the_next_poll(env: Env) {
    let all = create_topic(&env, "handover", 2).await;
    produce(&env, "handover", 2, 3).await;
    let mut members = [Member::join(&env, "a", "handover", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a alone reads all 6 records", |m| {
        m[0].records.len() >= 6
    })
    .await;
    let [a] = members;
    let mut members = [a, Member::join(&env, "b", "handover", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a is told its partitions are revoked", |m| {
        m[0].rebalances.contains(&GroupEvent::Revoked(all.clone()))
    })
    .await;
    let [mut a, b] = members;
    let commit: BTreeMap<TopicPartition, i64> = all.iter().map(|tp| (tp.clone(), 2)).collect();
    let outcome = a.consumer().commit(&commit).await;
    let expected: Option<i64> = if env.limits.refuses_commits_while_rebalancing {
        assert!(
            matches!(outcome, Err(KafkaError::RebalanceInProgress(_))),
            "this broker refuses commits while the group rebalances: got {outcome:?}"
        );
        None
    } else {
        outcome.expect("a commit of revoked partitions before the next poll is accepted");
        Some(2)
    };
    let mut members = [a, b];
    drive(&mut members, "a and b split the partitions", |m| {
        splits(m, &all)
    })
    .await;
    let [mut a, mut b] = members;
    let committed = b.consumer().committed(&all).await.expect("read commits");
    assert!(
        committed.values().all(|o| *o == expected),
        "committed offsets after the handover: {committed:?}, expected {expected:?} for each"
    );
    let b_owns: Vec<TopicPartition> = b.owned.iter().cloned().collect();
    let mut members = [b];
    drive(
        &mut members,
        "b reads its partitions from the commit",
        |m| {
            let want = if expected.is_some() { 1 } else { 3 };
            m[0].records.len() >= want * b_owns.len()
        },
    )
    .await;
    let [mut b] = members;
    let first = b.records.first().map(|r| r.offset);
    assert_eq!(first, Some(expected.unwrap_or(0)), "b's first offset");
    a.close().await;
    b.close().await;
}

/// A member that stops polling for longer than `max.poll.interval.ms` leaves the group (both backends
/// enforce the interval in the client, as the Java client does): its partitions move to the other member,
/// its commit is refused as fenced (and not stored), and its next polls report its partitions lost (on the
/// rdkafka backend after one failed poll saying the interval was exceeded, which the runtime logs).
async fn member_that_stops_polling_is_fenced(env: Env) {
    let all = create_topic(&env, "fence", 2).await;
    let mut members = [
        Member::join(&env, "a", "fence", STRICT_MAX_POLL_MS),
        Member::join(&env, "b", "fence", STRICT_MAX_POLL_MS),
    ];
    drive(&mut members, "a and b split the partitions", |m| {
        splits(m, &all)
    })
    .await;
    // Both apply their assignment at the next poll (librdkafka enforces max.poll.interval.ms only then).
    settle(&mut members).await;
    let [mut a, b] = members;
    let a_had: Vec<TopicPartition> = a.owned.iter().cloned().collect();
    let first_commit: BTreeMap<TopicPartition, i64> =
        a_had.iter().map(|tp| (tp.clone(), 1)).collect();
    a.consumer()
        .commit(&first_commit)
        .await
        .expect("a commits while it is a member");

    // Only b polls from here on: a is stuck in a long `put`.
    let mut others = [b];
    drive(
        &mut others,
        "b owns every partition once a stopped polling",
        |m| m[0].owned == set(&all),
    )
    .await;
    let [mut b] = others;

    let late_commit: BTreeMap<TopicPartition, i64> =
        a_had.iter().map(|tp| (tp.clone(), 2)).collect();
    let refused = a.consumer().commit(&late_commit).await;
    assert!(
        matches!(refused, Err(KafkaError::Fenced(_))),
        "a commit after a was thrown out must be fenced, got {refused:?}"
    );
    let stored = b.consumer().committed(&a_had).await.expect("read commits");
    assert!(
        stored.values().all(|o| *o == Some(1)),
        "the fenced commit must not be stored: {stored:?}"
    );

    let mut members = [a];
    drive(&mut members, "a learns its partitions were lost", |m| {
        m[0].rebalances.contains(&GroupEvent::Lost(a_had.clone()))
    })
    .await;
    let [mut a] = members;
    assert!(
        a.owned.is_empty(),
        "a still owns {:?} after losing them",
        a.owned
    );
    a.close().await;
    b.close().await;
}

/// A member cut off from the broker for longer than `session.timeout.ms` gives its partitions up as lost
/// while still cut off (both clients enforce the session themselves: no heartbeat answered within it), so
/// it never goes on holding partitions the coordinator has handed to someone else; once the broker is
/// back it joins again as a new member and gets them back.
async fn member_cut_off_past_its_session_loses_its_partitions(env: Env) {
    let all = create_topic(&env, "cutoff", 2).await;
    let mut members = [Member::join(&env, "a", "cutoff", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a owns every partition", |m| {
        m[0].owned == set(&all)
    })
    .await;
    // The assignment is applied at the next poll (librdkafka checks its session only from then on).
    settle(&mut members).await;

    env.network.cut_off();
    drive(
        &mut members,
        "a reports its partitions lost while cut off",
        |m| m[0].rebalances.contains(&GroupEvent::Lost(all.clone())),
    )
    .await;
    env.network.restore();
    let [a] = &members;
    assert!(
        a.owned.is_empty(),
        "a still owns partitions: {}",
        a.describe()
    );
    assert!(
        !a.rebalances
            .iter()
            .any(|e| matches!(e, GroupEvent::Revoked(_))),
        "lost, not revoked (nothing may be committed for them): {}",
        a.describe()
    );

    drive(&mut members, "a owns every partition again", |m| {
        m[0].owned == set(&all)
    })
    .await;
    let [mut a] = members;
    assert_eager(&a);
    a.close().await;
}

/// In a cooperative group (`cooperative-sticky`, KIP-429), a second member joining takes half the
/// partitions: the first member is told to give up only those, keeps consuming the others throughout, and
/// the second gets them in a follow-up rebalance (so no partition is owned twice). The first member
/// commits what it gives up before its next poll, in the generation whose assignment revoked it (a client
/// that committed with the generation it had before that rebalance was refused: the bug
/// `sink-group-rebalance` seed 54 once found), and the second member starts there.
async fn cooperative_member_gives_up_only_the_partitions_that_move(env: Env) {
    let all = create_topic(&env, "coop", 4).await;
    let mut members = [Member::cooperative(&env, "a", "coop")];
    drive(&mut members, "a alone owns every partition", |m| {
        m[0].owned == set(&all)
    })
    .await;
    let [a] = members;
    let mut members = [a, Member::cooperative(&env, "b", "coop")];
    drive(&mut members, "a is told to give some partitions up", |m| {
        m[0].rebalances
            .iter()
            .any(|e| matches!(e, GroupEvent::Revoked(_)))
    })
    .await;
    let [mut a, b] = members;
    let Some(GroupEvent::Revoked(given_up)) = a.rebalances.last().cloned() else {
        panic!("a's last event is its revocation: {}", a.describe());
    };
    let commit: BTreeMap<TopicPartition, i64> = given_up.iter().map(|tp| (tp.clone(), 0)).collect();
    let outcome = a.consumer().commit(&commit).await;
    // librdkafka's mock cluster refuses every commit while the group rebalances (see
    // `revoked_partitions_can_be_committed_before_the_next_poll`).
    let expected: Option<i64> = if env.limits.refuses_commits_while_rebalancing {
        assert!(
            matches!(outcome, Ok(()) | Err(KafkaError::RebalanceInProgress(_))),
            "this broker accepts the commit or refuses it while the group rebalances: got {outcome:?}"
        );
        outcome.is_ok().then_some(0)
    } else {
        outcome.expect("the partitions given up are committed before the next poll");
        Some(0)
    };
    let mut members = [a, b];
    drive(&mut members, "a and b split the partitions", |m| {
        splits(m, &all)
    })
    .await;
    settle(&mut members).await;
    drive(&mut members, "a and b split the partitions again", |m| {
        splits(m, &all)
    })
    .await;
    let [mut a, mut b] = members;
    assert_eq!(
        a.rebalances.first(),
        Some(&GroupEvent::Assigned(all.clone())),
        "{}",
        a.describe()
    );
    assert_eq!(given_up.len(), 2, "a gives up half: {}", a.describe());
    assert_eq!(
        b.owned,
        set(&given_up),
        "b gets what a gave up: {}",
        b.describe()
    );
    assert_incremental(&a);
    assert_incremental(&b);
    let committed = b
        .consumer()
        .committed(&given_up)
        .await
        .expect("read commits");
    assert!(
        committed.values().all(|o| *o == expected),
        "the commit of what a gave up: {committed:?}, expected {expected:?} for each"
    );
    a.close().await;
    b.close().await;
}

/// A committed transaction's records are all visible to a read_committed reader, and the group offsets it
/// carried are committed with it.
async fn committed_transaction_is_visible_with_its_offsets(env: Env) {
    let all = create_topic(&env, "txn-commit", 2).await;
    let producer = transactional(&env, "txn-commit-0").await;
    producer.producer.begin_transaction().expect("begin");
    send_values(&producer, "txn-commit", &[(0, "a0"), (1, "a1"), (0, "a2")]);
    let offsets = BTreeMap::from([(all[0].clone(), 2)]);
    producer
        .producer
        .send_offsets_to_transaction("txn-group", &offsets, DEADLINE)
        .await
        .expect("offsets join the transaction");
    producer
        .producer
        .commit_transaction(DEADLINE)
        .await
        .expect("commit");
    assert_eq!(
        read_values(&env, "read_committed", &all).await,
        ["a0", "a2", "a1"]
    );
    let committed = committed_offsets(&env, "txn-group", &all).await;
    let expected = env.limits.stores_transactional_offsets.then_some(2);
    assert_eq!(
        committed.get(&all[0]).copied().flatten(),
        expected,
        "the transaction's group offset (the embedded broker stores none)"
    );
}

/// An aborted transaction's records never reach a read_committed reader, while a read_uncommitted one
/// sees them; the next transaction of the same producer commits normally.
async fn aborted_transaction_is_hidden_from_read_committed_readers(env: Env) {
    let all = create_topic(&env, "txn-abort", 1).await;
    let producer = transactional(&env, "txn-abort-0").await;
    producer.producer.begin_transaction().expect("begin");
    send_values(
        &producer,
        "txn-abort",
        &[(0, "aborted-0"), (0, "aborted-1")],
    );
    producer.producer.flush(DEADLINE).await.expect("flush");
    producer
        .producer
        .abort_transaction(DEADLINE)
        .await
        .expect("abort");
    producer.producer.begin_transaction().expect("begin again");
    send_values(&producer, "txn-abort", &[(0, "kept")]);
    producer
        .producer
        .commit_transaction(DEADLINE)
        .await
        .expect("commit");
    assert_eq!(
        read_values(&env, "read_uncommitted", &all).await,
        ["aborted-0", "aborted-1", "kept"]
    );
    let committed = read_values(&env, "read_committed", &all).await;
    if env.limits.hides_aborted_records {
        assert_eq!(committed, ["kept"]);
    } else {
        assert_eq!(
            committed,
            ["aborted-0", "aborted-1", "kept"],
            "the embedded broker writes no abort marker, so read_committed sees aborted records"
        );
    }
}

/// A second producer with the same transactional.id fences the first: the first cannot commit (a typed
/// error), and only the second's records become visible.
async fn second_instance_fences_the_first(env: Env) {
    let all = create_topic(&env, "txn-fence", 1).await;
    let zombie = transactional(&env, "txn-fence-0").await;
    zombie.producer.begin_transaction().expect("begin");
    send_values(&zombie, "txn-fence", &[(0, "zombie")]);
    zombie.producer.flush(DEADLINE).await.expect("flush");
    let successor = transactional(&env, "txn-fence-0").await;
    let older = env.limits.older_producer;
    let wait = match older {
        OlderProducer::Unanswered => UNANSWERED_COMMIT,
        OlderProducer::Fenced | OlderProducer::Commits => DEADLINE,
    };
    let refused = zombie.producer.commit_transaction(wait).await;
    match older {
        OlderProducer::Fenced => {
            assert!(
                matches!(refused, Err(KafkaError::ProducerFenced(_))),
                "the zombie's commit: {refused:?}"
            );
            assert!(
                matches!(
                    zombie.producer.begin_transaction(),
                    Err(KafkaError::ProducerFenced(_))
                ),
                "a fenced producer stays fenced"
            );
        }
        OlderProducer::Commits => assert_eq!(
            refused,
            Ok(()),
            "the embedded broker does not fence the older producer"
        ),
        OlderProducer::Unanswered => assert!(
            matches!(refused, Err(KafkaError::Timeout(_))),
            "Tansu leaves the zombie's commit unanswered: {refused:?}"
        ),
    }
    successor.producer.begin_transaction().expect("begin");
    send_values(&successor, "txn-fence", &[(0, "successor")]);
    successor
        .producer
        .commit_transaction(DEADLINE)
        .await
        .expect("the successor commits");
    let committed = read_values(&env, "read_committed", &all).await;
    if older == OlderProducer::Fenced && env.limits.hides_aborted_records {
        assert_eq!(committed, ["successor"]);
    } else {
        assert_eq!(
            committed,
            ["zombie", "successor"],
            "the zombie's record shows: the embedded broker lets it commit, and neither it nor \
             Tansu writes the marker of the abort the successor's registration makes"
        );
    }
}

/// A transaction whose records failed (refused past `delivery.timeout.ms`) cannot commit; aborting it
/// recovers the producer by bumping its own epoch (KIP-360), naming the epoch it has. If another instance
/// registered the same transactional.id meanwhile, that recovery is refused as fenced: a zombie's
/// recovery must not fence the instance that replaced it, which commits afterwards.
async fn zombie_recovering_from_a_failed_transaction_does_not_fence_its_successor(env: Env) {
    let all = create_topic(&env, "txn-recover", 1).await;
    let settings = ClientSettings::from([("delivery.timeout.ms".to_owned(), "1500".to_owned())]);
    let zombie = env
        .kafka
        .transactional_producer(&settings, "txn-recover-0")
        .expect("a transactional producer");
    zombie
        .producer
        .init_transactions(DEADLINE)
        .await
        .expect("init_transactions");
    zombie.producer.begin_transaction().expect("begin");
    env.faults()
        .start(RetriableProduceError::NotLeaderOrFollower, "txn-recover", 1);
    send_values(&zombie, "txn-recover", &[(0, "zombie")]);
    let failed = zombie.producer.commit_transaction(DEADLINE).await;
    env.faults().stop();
    assert!(
        failed.is_err(),
        "a transaction whose record failed cannot commit"
    );
    let successor = transactional(&env, "txn-recover-0").await;
    let recovery = zombie.producer.abort_transaction(DEADLINE).await;
    if env.limits.older_producer == OlderProducer::Fenced {
        assert!(
            matches!(recovery, Err(KafkaError::ProducerFenced(_))),
            "the zombie's recovery: {recovery:?}"
        );
    }
    successor.producer.begin_transaction().expect("begin");
    send_values(&successor, "txn-recover", &[(0, "successor")]);
    successor
        .producer
        .commit_transaction(DEADLINE)
        .await
        .expect("the successor is not fenced by the zombie's recovery");
    let committed = read_values(&env, "read_committed", &all).await;
    assert_eq!(
        committed,
        ["successor"],
        "the failed record was never appended"
    );
}

/// Produce requests answered with a retriable error for a while are retried: with records sent in
/// rounds (several requests in flight) and idempotence, every record is acknowledged once, each partition
/// keeps the order the records were sent in, and the log holds each record once. On the simulated broker
/// `REQUEST_TIMED_OUT` comes after the batch was appended, so the retries must be recognized as such;
/// the embedded broker appends nothing before either error.
async fn retried_batches_keep_partition_order_and_are_appended_once(env: Env) {
    let errors = [
        RetriableProduceError::NotLeaderOrFollower,
        RetriableProduceError::RequestTimedOut,
    ];
    for (n, error) in errors.into_iter().enumerate() {
        let topic = format!("retried-{n}");
        let all = create_topic(&env, &topic, 3).await;
        env.faults().start(error, &topic, 3);
        let heal = async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            env.faults().stop();
            tokio::time::Instant::now()
        };
        let delivered = async {
            let sent = produce(&env, &topic, 3, 20).await;
            (sent, tokio::time::Instant::now())
        };
        let ((sent, delivered_at), healed_at) = tokio::join!(delivered, heal);
        assert!(
            delivered_at >= healed_at,
            "every record was acknowledged while the broker refused them ({error:?})"
        );
        for (tp, offsets) in &sent {
            assert_eq!(
                offsets,
                &(0..20).collect::<Vec<i64>>(),
                "offsets acknowledged for {tp} under {error:?}, in the order the records were sent"
            );
        }
        let expected: Vec<String> = (0..3)
            .flat_map(|p| (0..20).map(move |seq| Sent::new(p, seq).value))
            .collect();
        assert_eq!(
            read_values(&env, "read_uncommitted", &all).await,
            expected,
            "the log under {error:?}"
        );
    }
}

/// Records the broker refuses for longer than `delivery.timeout.ms` each get one failed delivery
/// report; once the broker accepts again, the producer delivers the next record, and nothing of the
/// failed ones was appended.
async fn delivery_outlasting_its_timeout_is_reported_failed(env: Env) {
    create_topic(&env, "expiring", 2).await;
    let settings = ClientSettings::from([("delivery.timeout.ms".to_owned(), "1500".to_owned())]);
    let mut handle = env.kafka.producer(&settings).expect("a producer");
    env.faults()
        .start(RetriableProduceError::NotLeaderOrFollower, "expiring", 2);
    let tokens = send_round(&handle, "expiring", 2, 0, 0);
    let reports = await_reports(&mut handle, tokens.len()).await;
    for (token, report) in &reports {
        assert!(
            report.is_err(),
            "record {token} was refused for longer than its delivery timeout: {report:?}"
        );
    }
    env.faults().stop();
    let tokens = send_round(&handle, "expiring", 2, 1, tokens.len() as u64);
    let reports = await_reports(&mut handle, tokens.len()).await;
    for (token, report) in reports {
        let (partition, offset) =
            report.unwrap_or_else(|e| panic!("record {token} after the fault: {e}"));
        assert_eq!(
            (partition, offset),
            (tokens[(token - 2) as usize], 0),
            "record {token}: the failed records were never appended"
        );
    }
}

/// Producers and group members follow partition leaders that move: records produced before, between
/// and after two moves of every partition's leader are each acknowledged once, at consecutive offsets,
/// and a member that keeps polling throughout reads each once, in order, without a rebalance.
async fn produce_and_fetch_follow_leader_moves(env: Env) {
    let all = create_topic(&env, "moving", 3).await;
    let mut members = [Member::join(&env, "a", "moving", RELAXED_MAX_POLL_MS)];
    let mut acknowledged: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
    // Each partition's leader moves to one broker, then to another: at least one move changes it.
    for (round, step) in [0, 1, 2].into_iter().enumerate() {
        if step > 0 {
            for partition in 0..3 {
                env.moves()
                    .move_leader("moving", partition, (partition + step) % 3);
            }
        }
        let sent = produce_from(&env, "moving", 3, round as i64 * 5, 5).await;
        for (tp, offsets) in sent {
            acknowledged.entry(tp).or_default().extend(offsets);
        }
        let wanted = (round + 1) * 15;
        drive(&mut members, "the member reads what was produced", |m| {
            m[0].records.len() >= wanted
        })
        .await;
    }
    for tp in &all {
        assert_eq!(
            acknowledged[tp],
            (0..15).collect::<Vec<i64>>(),
            "offsets acknowledged for {tp} across the moves"
        );
    }
    settle(&mut members).await;
    let [a] = &mut members;
    assert_eq!(
        a.rebalances,
        vec![GroupEvent::Assigned(all.clone())],
        "leader moves do not rebalance the group"
    );
    assert_eq!(a.records.len(), 45, "records read: {}", a.describe());
    for tp in &all {
        let offsets: Vec<i64> = a
            .records
            .iter()
            .filter(|r| r.partition == tp.partition)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..15).collect::<Vec<i64>>(),
            "offsets read of {tp}"
        );
    }
    a.close().await;
}

/// A group member follows its coordinator to another broker: it keeps its partitions (no rebalance,
/// no lost session), and its commits, sent until one is accepted as the runtime does each commit
/// interval, are stored and visible.
async fn group_member_follows_its_coordinator(env: Env) {
    let all = create_topic(&env, "steady", 3).await;
    produce(&env, "steady", 3, 4).await;
    let mut members = [Member::join(&env, "a", "steady", RELAXED_MAX_POLL_MS)];
    drive(&mut members, "a reads all 12 records", |m| {
        m[0].records.len() >= 12
    })
    .await;
    for (n, to) in [0, 1].into_iter().enumerate() {
        env.moves().move_group_coordinator(GROUP, to);
        // Heartbeats and polls go on past a session's worth of time.
        let until = tokio::time::Instant::now() + Duration::from_millis(SESSION_MS + 2_000);
        while tokio::time::Instant::now() < until {
            members[0].poll().await;
        }
        let offset = 2 + n as i64;
        let commit: BTreeMap<TopicPartition, i64> =
            all.iter().map(|tp| (tp.clone(), offset)).collect();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match members[0].consumer().commit(&commit).await {
                Ok(()) => break,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no commit accepted after the coordinator moved: {e}"
                    );
                    members[0].poll().await;
                }
            }
        }
        let expected: BTreeMap<TopicPartition, Option<i64>> =
            all.iter().map(|tp| (tp.clone(), Some(offset))).collect();
        let committed = members[0]
            .consumer()
            .committed(&all)
            .await
            .expect("read commits");
        assert_eq!(committed, expected, "committed offsets after move {n}");
    }
    let [a] = &mut members;
    assert_eq!(
        a.rebalances,
        vec![GroupEvent::Assigned(all.clone())],
        "the member kept its partitions: {}",
        a.describe()
    );
    a.close().await;
}

/// A transactional producer that has registered its id.
async fn transactional(env: &Env, id: &str) -> TransactionalHandle {
    let handle = env
        .kafka
        .transactional_producer(&ClientSettings::new(), id)
        .expect("a transactional producer");
    handle
        .producer
        .init_transactions(DEADLINE)
        .await
        .expect("init_transactions");
    handle
}

/// Queues records (partition, value) in the open transaction.
fn send_values(handle: &TransactionalHandle, topic: &str, values: &[(i32, &str)]) {
    for (token, (partition, value)) in values.iter().enumerate() {
        let record = ProduceRecord {
            topic,
            partition: Some(*partition),
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp: None,
        };
        handle
            .producer
            .send(&record, token as u64)
            .expect("queue a record");
    }
}

/// Every value in `partitions`, read to their end with this `isolation.level`, in partition then offset
/// order.
async fn read_values(env: &Env, isolation: &str, partitions: &[TopicPartition]) -> Vec<String> {
    let settings = ClientSettings::from([("isolation.level".to_owned(), isolation.to_owned())]);
    let mut reader = env.kafka.log_reader(&settings).expect("a log reader");
    let mut records = reader
        .read_to_end(partitions, DEADLINE)
        .await
        .expect("read to the end");
    records.sort_by_key(|r| (r.partition, r.offset));
    records
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap_or_default()).expect("text"))
        .collect()
}

/// A group's committed offsets, asked by a member that never joins.
async fn committed_offsets(
    env: &Env,
    group: &str,
    partitions: &[TopicPartition],
) -> BTreeMap<TopicPartition, Option<i64>> {
    let topics: BTreeSet<String> = partitions.iter().map(|tp| tp.topic.clone()).collect();
    let topics = topics.into_iter().collect();
    let mut consumer = env
        .kafka
        .group_consumer(&ClientSettings::new(), group, &Subscription::Topics(topics))
        .expect("a consumer");
    let committed = consumer
        .committed(partitions)
        .await
        .expect("committed offsets");
    consumer.close().await.expect("close");
    committed
}

/// The host name of broker `id` of `brokers`: `broker` alone, `broker-<id>` among several.
fn broker_host(brokers: usize, id: usize) -> String {
    match brokers {
        1 => "broker".to_owned(),
        _ => format!("broker-{id}"),
    }
}

/// Runs a case as the client of a turmoil simulation whose `brokers` broker hosts serve a fresh
/// simulated cluster.
fn in_simulation<F, Fut>(brokers: usize, case: F)
where
    F: FnOnce(Env) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listeners: Vec<String> = (0..brokers)
        .map(|id| format!("{}:{BROKER_PORT}", broker_host(brokers, id)))
        .collect();
    let bootstrap = listeners.join(",");
    let cluster = Arc::new(Cluster::new(BrokerConfig {
        listeners,
        ..BrokerConfig::default()
    }));
    let faults = Arc::new(SimulatedFaults(cluster.clone()));
    let moves = Arc::new(SimulatedMoves(cluster.clone()));
    let mut sim = turmoil::Builder::new()
        .rng_seed(1)
        .epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .simulation_duration(Duration::from_secs(600))
        .build();
    for id in 0..brokers {
        let cluster = cluster.clone();
        sim.host(broker_host(brokers, id), move || {
            let cluster = cluster.clone();
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await?;
                serve(listener, cluster, id as i32).await
            }
        });
    }
    sim.client("test", async move {
        let env = Env {
            kafka: Arc::new(SimBackend::new(bootstrap)),
            limits: Limits {
                refuses_commits_while_rebalancing: false,
                hides_aborted_records: true,
                stores_transactional_offsets: true,
                older_producer: OlderProducer::Fenced,
                exact_end_offsets: true,
            },
            network: Network::Simulated(brokers),
            faults: Some(faults),
            moves: Some(moves),
            retention: Some(Retention::Simulated(cluster)),
        };
        case(env).await;
        Ok(())
    });
    sim.run().expect("the simulation runs the case to its end");
}

/// The rdkafka backend on a fresh embedded cluster of `brokers` brokers (which the backend keeps
/// running).
fn on_embedded_broker(brokers: i32) -> Env {
    let broker = Arc::new(EmbeddedBroker::start(brokers).expect("start the embedded broker"));
    Env {
        kafka: Arc::new(RdkafkaBackend::embedded(broker.clone())),
        faults: Some(Arc::new(EmbeddedFaults(broker.clone()))),
        moves: Some(Arc::new(EmbeddedMoves(broker.clone()))),
        retention: Some(Retention::Embedded),
        limits: Limits {
            refuses_commits_while_rebalancing: true,
            hides_aborted_records: false,
            stores_transactional_offsets: false,
            older_producer: OlderProducer::Commits,
            exact_end_offsets: true,
        },
        network: Network::Embedded(broker),
    }
}

/// The rdkafka backend on a fresh Tansu broker (in-memory storage), which the backend keeps running.
fn on_tansu() -> Env {
    let broker = Arc::new(Tansu::start().unwrap_or_else(|e| panic!("start Tansu: {e}")));
    Env {
        kafka: Arc::new(RdkafkaBackend::new(
            broker.bootstrap(),
            ClientSettings::new(),
        )),
        // One broker, no injected errors, and no retention to trigger: the cases that need them do not
        // run on Tansu.
        faults: None,
        moves: None,
        retention: None,
        limits: Limits {
            refuses_commits_while_rebalancing: false,
            hides_aborted_records: false,
            stores_transactional_offsets: true,
            older_producer: OlderProducer::Unanswered,
            exact_end_offsets: false,
        },
        network: Network::Tansu(broker),
    }
}

/// Creates a topic through the admin client; its partitions, in order.
async fn create_topic(env: &Env, name: &str, partitions: i32) -> Vec<TopicPartition> {
    let admin = env.kafka.admin().expect("an admin client");
    let topic = NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        config: BTreeMap::new(),
    };
    assert!(
        admin.create_topic(&topic).await.expect("create a topic"),
        "{name} did not exist yet"
    );
    assert_eq!(
        admin.partition_count(name).await.expect("read metadata"),
        Some(partitions),
        "partitions of {name}"
    );
    (0..partitions)
        .map(|p| TopicPartition::new(name, p))
        .collect()
}

/// Record `seq` of partition `partition`, as [`produce`] sends it.
struct Sent {
    key: String,
    value: String,
    headers: Vec<KafkaHeader>,
    timestamp: i64,
}

impl Sent {
    fn new(partition: i32, seq: i64) -> Sent {
        Sent {
            key: format!("key-{partition}-{seq}"),
            value: format!("value-{partition}-{seq}"),
            headers: vec![
                KafkaHeader {
                    key: "seq".into(),
                    value: Some(seq.to_string().into_bytes()),
                },
                KafkaHeader {
                    key: "none".into(),
                    value: None,
                },
            ],
            timestamp: 1_767_225_600_000 + seq,
        }
    }
}

/// Sends `per_partition` records to each of `partitions` partitions, interleaved, in rounds a few
/// milliseconds apart (so that several produce requests are in flight), and waits for every
/// acknowledgement; the acknowledged offsets per partition, in the order the records were sent.
async fn produce(
    env: &Env,
    topic: &str,
    partitions: i32,
    per_partition: i64,
) -> BTreeMap<TopicPartition, Vec<i64>> {
    produce_from(env, topic, partitions, 0, per_partition).await
}

/// As [`produce`], records `first..first + per_partition` of each partition.
async fn produce_from(
    env: &Env,
    topic: &str,
    partitions: i32,
    first: i64,
    per_partition: i64,
) -> BTreeMap<TopicPartition, Vec<i64>> {
    let mut handle = env
        .kafka
        .producer(&ClientSettings::new())
        .expect("a producer");
    let mut tokens = Vec::new();
    for seq in first..first + per_partition {
        let round = send_round(&handle, topic, partitions, seq, tokens.len() as u64);
        tokens.extend(round);
        tokio::time::sleep(ROUND_GAP).await;
    }
    let mut offsets: BTreeMap<TopicPartition, Vec<i64>> = BTreeMap::new();
    for (token, report) in await_reports(&mut handle, tokens.len()).await {
        let (partition, offset) =
            report.unwrap_or_else(|e| panic!("record {token} was not delivered: {e}"));
        let wanted = tokens[token as usize];
        assert_eq!(partition, wanted, "partition of record {token}");
        offsets
            .entry(TopicPartition::new(topic, partition))
            .or_default()
            .push(offset);
    }
    offsets
}

/// Pause between the rounds [`produce`] sends.
const ROUND_GAP: Duration = Duration::from_millis(5);

/// Queues record `seq` of each of `partitions` partitions, with tokens from `first_token`; their
/// partitions, in token order.
fn send_round(
    handle: &ProducerHandle,
    topic: &str,
    partitions: i32,
    seq: i64,
    first_token: u64,
) -> Vec<i32> {
    (0..partitions)
        .inspect(|&partition| {
            send_one(
                handle,
                topic,
                partition,
                seq,
                first_token + partition as u64,
            );
        })
        .collect()
}

/// Queues record `seq` of `partition`, as [`Sent::new`] makes it, under `token`.
fn send_one(handle: &ProducerHandle, topic: &str, partition: i32, seq: i64, token: u64) {
    let sent = Sent::new(partition, seq);
    let record = ProduceRecord {
        topic,
        partition: Some(partition),
        key: Some(sent.key.as_bytes()),
        value: Some(sent.value.as_bytes()),
        headers: &sent.headers,
        timestamp: Some(sent.timestamp),
    };
    handle
        .producer
        .send(&record, token)
        .expect("queue a record");
}

/// Waits for `count` delivery reports, each token reported once; (partition, offset) or the error per
/// token, in token order.
async fn await_reports(
    handle: &mut ProducerHandle,
    count: usize,
) -> BTreeMap<u64, Result<(i32, i64), KafkaError>> {
    let mut reports = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while reports.len() < count {
        let delivery = tokio::time::timeout_at(deadline, handle.deliveries.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} records reported within {DEADLINE:?}",
                    reports.len()
                )
            })
            .expect("the delivery channel stays open");
        let report = delivery.result.map(|m| (m.partition, m.offset));
        assert!(
            reports.insert(delivery.token, report).is_none(),
            "record {} reported twice",
            delivery.token
        );
    }
    reports
}

/// A group member and everything it has seen.
struct Member {
    name: &'static str,
    consumer: Option<Box<dyn GroupConsumer>>,
    owned: BTreeSet<TopicPartition>,
    /// Every event but record batches, in order.
    rebalances: Vec<GroupEvent>,
    records: Vec<ConsumedRecord>,
    /// Failed polls: the runtime logs them and polls again, so a member does too.
    errors: Vec<KafkaError>,
}

impl Member {
    /// A member of an eager group (the range assignor).
    fn join(env: &Env, name: &'static str, topic: &str, max_poll_ms: u64) -> Member {
        Member::join_with(env, name, topic, max_poll_ms, "range")
    }

    /// A member of a cooperative group.
    fn cooperative(env: &Env, name: &'static str, topic: &str) -> Member {
        Member::join_with(env, name, topic, RELAXED_MAX_POLL_MS, "cooperative-sticky")
    }

    fn join_with(
        env: &Env,
        name: &'static str,
        topic: &str,
        max_poll_ms: u64,
        assignor: &str,
    ) -> Member {
        let settings: ClientSettings = [
            ("client.id", format!("conformance-{name}")),
            ("session.timeout.ms", SESSION_MS.to_string()),
            ("heartbeat.interval.ms", "500".to_owned()),
            ("max.poll.interval.ms", max_poll_ms.to_string()),
            ("auto.offset.reset", "earliest".to_owned()),
            ("enable.auto.commit", "false".to_owned()),
            ("partition.assignment.strategy", assignor.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let consumer = env
            .kafka
            .group_consumer(&settings, GROUP, &Subscription::Topics(vec![topic.into()]))
            .expect("a group consumer");
        Member {
            name,
            consumer: Some(consumer),
            owned: BTreeSet::new(),
            rebalances: Vec::new(),
            records: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn consumer(&mut self) -> &mut Box<dyn GroupConsumer> {
        self.consumer.as_mut().expect("the member is open")
    }

    /// Polls once. A poll that is still joining after twice its wait is cancelled (the runtime polls inside
    /// `select!`, so both backends' polls are cancel-safe) to let the other members poll.
    async fn poll(&mut self) {
        let poll = self.consumer().poll(500, POLL_WAIT);
        let Ok(outcome) = tokio::time::timeout(POLL_WAIT * 2, poll).await else {
            return;
        };
        match outcome {
            Ok(GroupEvent::Records(records)) => self.records.extend(records),
            Ok(event) => {
                match &event {
                    GroupEvent::Assigned(partitions) => {
                        self.owned.extend(partitions.iter().cloned())
                    }
                    GroupEvent::Revoked(partitions) | GroupEvent::Lost(partitions) => {
                        for tp in partitions {
                            self.owned.remove(tp);
                        }
                    }
                    GroupEvent::Records(_) => unreachable!("handled above"),
                }
                self.rebalances.push(event);
            }
            Err(e) => self.errors.push(e),
        }
    }

    async fn close(&mut self) {
        let consumer = self.consumer.take().expect("the member is open");
        consumer.close().await.expect("leave the group");
    }

    fn describe(&self) -> String {
        format!(
            "{}: owns {:?}, rebalances {:?}, {} records, poll errors {:?}",
            self.name,
            self.owned,
            self.rebalances,
            self.records.len(),
            self.errors
        )
    }
}

impl Drop for Member {
    /// A member still open here belongs to a failed case: it is leaked, because dropping an rdkafka
    /// consumer whose rebalance waits for the next poll blocks forever, which would hide the failure.
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            std::mem::forget(consumer);
        }
    }
}

/// Polls every member in turn until `done` holds; fails the case naming `what` after [`DEADLINE`].
async fn drive(members: &mut [Member], what: &str, done: impl Fn(&[Member]) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(members) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}: {}",
            describe(members)
        );
        for member in members.iter_mut() {
            member.poll().await;
        }
    }
}

/// Keeps every member polling for a while, so that a rebalance still under way shows.
async fn settle(members: &mut [Member]) {
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < until {
        for member in members.iter_mut() {
            member.poll().await;
        }
    }
}

/// Checks a member's rebalances follow the eager protocol: a revocation takes everything the member owns,
/// and an assignment comes only once it owns nothing.
fn assert_eager(member: &Member) {
    let mut owned = BTreeSet::new();
    for event in &member.rebalances {
        match event {
            GroupEvent::Assigned(partitions) => {
                assert!(
                    owned.is_empty(),
                    "assigned {partitions:?} while owning {owned:?}: {}",
                    member.describe()
                );
                owned = set(partitions);
            }
            GroupEvent::Revoked(partitions) | GroupEvent::Lost(partitions) => {
                assert_eq!(
                    set(partitions),
                    owned,
                    "a revocation must take everything: {}",
                    member.describe()
                );
                owned.clear();
            }
            GroupEvent::Records(_) => unreachable!("record batches are not kept as rebalances"),
        }
    }
}

/// Checks a member's rebalances follow the cooperative protocol: an assignment only adds partitions the
/// member does not own, a revocation takes only some of what it owns, and nothing is lost.
fn assert_incremental(member: &Member) {
    let mut owned = BTreeSet::new();
    for event in &member.rebalances {
        match event {
            GroupEvent::Assigned(partitions) => {
                assert!(
                    owned.is_disjoint(&set(partitions)),
                    "assigned {partitions:?} while owning {owned:?}: {}",
                    member.describe()
                );
                owned.extend(partitions.iter().cloned());
            }
            GroupEvent::Revoked(partitions) => {
                assert!(
                    set(partitions).is_subset(&owned) && set(partitions) != owned,
                    "a revocation takes only some of what is owned: {}",
                    member.describe()
                );
                for tp in partitions {
                    owned.remove(tp);
                }
            }
            GroupEvent::Lost(_) => panic!("nothing is lost: {}", member.describe()),
            GroupEvent::Records(_) => unreachable!("record batches are not kept as rebalances"),
        }
    }
}

/// Every member owns some partitions, no two own the same one, and together they own `all`.
fn splits(members: &[Member], all: &[TopicPartition]) -> bool {
    let mut union = BTreeSet::new();
    let mut total = 0;
    for member in members {
        if member.owned.is_empty() {
            return false;
        }
        total += member.owned.len();
        union.extend(member.owned.iter().cloned());
    }
    total == union.len() && union == set(all)
}

fn set(partitions: &[TopicPartition]) -> BTreeSet<TopicPartition> {
    partitions.iter().cloned().collect()
}

fn describe(members: &[Member]) -> String {
    members
        .iter()
        .map(Member::describe)
        .collect::<Vec<_>>()
        .join("; ")
}
