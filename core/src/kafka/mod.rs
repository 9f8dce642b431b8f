//! The Kafka seam: the only way the runtime reaches Kafka.
//!
//! The runtime and connectors see these traits and plain Rust types, never a client library's. The
//! production implementation ([`rdkafka`](self::rdkafka)) wraps librdkafka; a simulated implementation can
//! sit behind the same traits. Every method is async and time is only ever `tokio::time`.
//!
//! The rdkafka backend is behind the `rdkafka` cargo feature (on by default): a connector crate, or a crate
//! that tests connectors under the simulation, builds with `default-features = false` and never compiles
//! librdkafka.

mod deliveries;
mod error;
#[cfg(feature = "rdkafka")]
pub mod rdkafka;
mod types;

pub use deliveries::{delivery_channel, DeliveryReceiver, DeliverySender};
pub use error::{KafkaError, SendError};
pub use types::{
    ClientSettings, ConsumedRecord, Delivery, GroupEvent, KafkaHeader, NewTopic, ProduceRecord,
    Subscription,
};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::api::TopicPartition;

/// The cluster id of the worker's in-process embedded broker.
pub const IN_PROCESS_CLUSTER_ID: &str = "sluice-embedded";

/// Creates the clients a worker needs. One per cluster; cheap to share.
pub trait KafkaBackend: Send + Sync {
    /// A producer and the channel its acknowledgements arrive on.
    fn producer(&self, settings: &ClientSettings) -> Result<ProducerHandle, KafkaError>;

    /// A member of consumer group `group`, subscribed to `subscription`.
    fn group_consumer(
        &self,
        settings: &ClientSettings,
        group: &str,
        subscription: &Subscription,
    ) -> Result<Box<dyn GroupConsumer>, KafkaError>;

    /// An admin client for topics and offsets; a backend may hand every caller the same one.
    fn admin(&self) -> Result<Arc<dyn Admin>, KafkaError>;

    /// A transactional producer with this `transactional.id`; it must call
    /// [`init_transactions`](TransactionalProducer::init_transactions) before its first transaction.
    fn transactional_producer(
        &self,
        settings: &ClientSettings,
        transactional_id: &str,
    ) -> Result<TransactionalHandle, KafkaError>;

    /// A reader of whole partitions outside any consumer group (`isolation.level` in `settings`).
    fn log_reader(&self, settings: &ClientSettings) -> Result<Box<dyn LogReader>, KafkaError>;

    /// Where this backend's cluster is, for logs (`bootstrap.servers`).
    fn describe(&self) -> String;
}

/// A producer and its acknowledgements: every record handed to `send` yields exactly one [`Delivery`]
/// on `deliveries`, tagged with the record's token.
pub struct ProducerHandle {
    pub producer: Box<dyn Producer>,
    pub deliveries: DeliveryReceiver,
}

/// A transactional producer and its acknowledgements, as [`ProducerHandle`]. A record is acknowledged when
/// Kafka appended it; it becomes visible to read_committed readers only when its transaction commits.
pub struct TransactionalHandle {
    pub producer: Box<dyn TransactionalProducer>,
    pub deliveries: DeliveryReceiver,
}

/// Writes records to Kafka.
#[async_trait]
pub trait Producer: Send + Sync {
    /// Hands a record to the producer without waiting. The acknowledgement arrives later on the
    /// delivery channel, tagged with `token`. [`SendError::QueueFull`] asks the caller to
    /// [`wait_for_room`](Producer::wait_for_room) and send the same record again.
    fn send(&self, record: &ProduceRecord<'_>, token: u64) -> Result<(), SendError>;

    /// Waits until an acknowledgement may have made room in a full queue.
    async fn wait_for_room(&self);

    /// Waits until every record handed to `send` has been acknowledged or has failed.
    async fn flush(&self, timeout: Duration) -> Result<(), KafkaError>;
}

/// A producer whose records, and consumer group offsets, become visible all together or not at all.
///
/// Every method fails with [`KafkaError::ProducerFenced`] once a newer instance with the same
/// `transactional.id` initialized (or the transaction coordinator aborted a transaction that outlived
/// `transaction.timeout.ms`): this instance is a zombie and must stop without committing anything.
#[async_trait]
pub trait TransactionalProducer: Producer {
    /// Registers the `transactional.id`: fences older instances and aborts the transaction they left open.
    async fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError>;

    /// Starts a transaction; records sent from now on belong to it.
    fn begin_transaction(&self) -> Result<(), KafkaError>;

    /// Adds consumer group offsets to the transaction, applied only if it commits.
    async fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError>;

    /// Waits for every record sent in the transaction, then commits it.
    async fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError>;

    /// Aborts the transaction: its records are never visible to read_committed readers.
    async fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError>;
}

/// Reads whole partitions outside any group, as Kafka Connect's `KafkaBasedLog` reads its internal topics.
#[async_trait]
pub trait LogReader: Send {
    /// Every record of `partitions`, from their beginning up to their end offsets as of the call, in
    /// offset order per partition. With `isolation.level=read_committed` this waits for open
    /// transactions to end and leaves out aborted records.
    async fn read_to_end(
        &mut self,
        partitions: &[TopicPartition],
        timeout: Duration,
    ) -> Result<Vec<ConsumedRecord>, KafkaError>;
}

/// A member of a consumer group.
///
/// Rebalances surface as events from `poll`. Partitions named by [`GroupEvent::Revoked`] stay owned
/// until the next call to `poll`, so the caller can flush and commit them first; partitions named by
/// [`GroupEvent::Assigned`] start fetching at the next `poll`, from the committed offset or from an
/// offset given to `seek` in between.
#[async_trait]
pub trait GroupConsumer: Send {
    /// The next event: a rebalance, or a batch of at most `max_records` records (possibly empty once
    /// `max_wait` has passed without any).
    async fn poll(
        &mut self,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<GroupEvent, KafkaError>;

    /// Commits offsets ("next offset to read") synchronously. Fails with [`KafkaError::Fenced`] when
    /// this member is no longer part of the group, and with [`KafkaError::RebalanceInProgress`] while
    /// the group forms a new generation, or when it formed one with this member before the member heard
    /// (`ILLEGAL_GENERATION`: the commit carried the generation before).
    async fn commit(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), KafkaError>;

    /// The group's committed offsets for these partitions (`None`: nothing committed).
    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError>;

    /// The first offset each partition still holds (its log start): records below it were deleted by
    /// retention.
    async fn log_start_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError>;

    /// Moves the fetch position of an owned (or just assigned) partition.
    fn seek(&mut self, partition: &TopicPartition, offset: i64) -> Result<(), KafkaError>;

    /// Stops fetching these partitions while staying in the group.
    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError>;

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), KafkaError>;

    /// Whether records come with their headers (they do until told otherwise); without, each comes
    /// with none, and the client does not read them.
    fn read_headers(&mut self, read: bool);

    /// Leaves the group. The caller must have committed what it wanted to first.
    async fn close(self: Box<Self>) -> Result<(), KafkaError>;
}

/// Topic and offset administration.
#[async_trait]
pub trait Admin: Send + Sync {
    /// Creates a topic; `Ok(false)` if it already existed.
    async fn create_topic(&self, topic: &NewTopic) -> Result<bool, KafkaError>;

    /// The number of partitions of a topic, `None` if it does not exist.
    async fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaError>;

    /// The end offset (high watermark) of each partition.
    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError>;

    /// The cluster's id, which names one Kafka cluster for as long as it lives (the worker binds its
    /// source offsets to it). A broker that does not answer is an error the caller may retry.
    async fn cluster_id(&self) -> Result<String, KafkaError>;

    /// Every topic's name and partition count.
    async fn topics(&self) -> Result<BTreeMap<String, i32>, KafkaError>;

    /// The offsets a consumer group committed for these partitions; partitions without one are left out.
    async fn group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError>;

    /// Commits offsets for a consumer group that has no active member (an operator's change while its
    /// consumers are stopped); a group with members refuses it.
    async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError>;

    /// Deletes a consumer group with no active member, and with it every offset it committed; a group
    /// that does not exist is no error.
    async fn delete_group(&self, group: &str) -> Result<(), KafkaError>;
}
