//! The rdkafka transactional producer behind [`TransactionalProducer`]: the idempotent [`RdProducer`]
//! with a `transactional.id`, whose transaction calls (blocking in librdkafka) run off the async threads.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::client_log::ClientLog;
use super::producer::{DeliveryForwarder, RdProducer};
use super::{blocking, rd_error};
use crate::api::TopicPartition;
use crate::kafka::{KafkaError, ProduceRecord, Producer, SendError, TransactionalProducer};

pub(super) struct RdTransactionalProducer {
    producer: RdProducer,
    /// The client settings, for the consumer whose group metadata `send_offsets_to_transaction` needs.
    config: rdkafka::ClientConfig,
}

impl RdTransactionalProducer {
    pub(super) fn new(producer: RdProducer, config: rdkafka::ClientConfig) -> Self {
        RdTransactionalProducer { producer, config }
    }

    /// Runs one transaction call with librdkafka's own `timeout`, and waits a little longer for it.
    async fn call<F>(&self, timeout: Duration, call: F) -> Result<(), KafkaError>
    where
        F: FnOnce(&BaseProducer<DeliveryForwarder>, Duration) -> Result<(), RdError>
            + Send
            + 'static,
    {
        let client = self.producer.client();
        blocking(timeout * 2, move || {
            let called = call(&client, timeout);
            // librdkafka's commit and abort wait for the reports the serving task takes (rdkafka's
            // commit polls as well, when anything is left to flush): hand over what was gathered.
            client.context().forward();
            called
        })
        .await?
        .map_err(|e| rd_error(&e))
    }
}

#[async_trait]
impl Producer for RdTransactionalProducer {
    fn send(&self, record: &ProduceRecord<'_>, token: u64) -> Result<(), SendError> {
        self.producer.send(record, token)
    }

    async fn wait_for_room(&self) {
        self.producer.wait_for_room().await
    }

    async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout).await
    }
}

#[async_trait]
impl TransactionalProducer for RdTransactionalProducer {
    async fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.call(timeout, |p, t| p.init_transactions(t)).await
    }

    fn begin_transaction(&self) -> Result<(), KafkaError> {
        self.producer
            .client()
            .begin_transaction()
            .map_err(|e| rd_error(&e))
    }

    async fn send_offsets_to_transaction(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for (tp, offset) in offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| rd_error(&e))?;
        }
        // librdkafka takes the group from a consumer's metadata; one that never joins gives just the group.
        let mut config = self.config.clone();
        config.set("group.id", group);
        let consumer: BaseConsumer<ClientLog> = config
            .create_with_context(ClientLog)
            .map_err(|e| rd_error(&e))?;
        let metadata = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Backend(format!("no group metadata for group {group:?}")))?;
        self.call(timeout, move |p, t| {
            p.send_offsets_to_transaction(&list, &metadata, t)
        })
        .await
    }

    async fn commit_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        // rdkafka's commit flushes first, by polling in rounds that each wait out 100 ms however
        // soon the last report comes; the producer's own flush waits only until the serving task has
        // taken them, and leaves the commit nothing to flush.
        self.producer.flush(timeout).await?;
        self.call(timeout, |p, t| p.commit_transaction(t)).await
    }

    async fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.call(timeout, |p, t| p.abort_transaction(t)).await
    }
}
