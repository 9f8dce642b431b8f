//! The rdkafka admin client behind [`Admin`], with topic creation routed to the embedded broker when
//! there is one (the mock cluster does not implement CreateTopics), and refused with directions when
//! the broker is another process's embedded broker (`sluice broker`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::client_log::ClientLog;
use super::{blocking, rd_error, watermarks, EmbeddedBroker};
use crate::api::TopicPartition;
use crate::kafka::{Admin, KafkaError, NewTopic, IN_PROCESS_CLUSTER_ID};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How librdkafka's mock cluster, the embedded broker, names itself (`mockCluster<hex>`).
const EMBEDDED_CLUSTER_ID_PREFIX: &str = "mockCluster";

pub(super) struct RdAdmin {
    admin: AdminClient<ClientLog>,
    /// Metadata and watermark queries go through a consumer without a group.
    metadata: Arc<BaseConsumer<ClientLog>>,
    embedded: Option<Arc<EmbeddedBroker>>,
}

impl RdAdmin {
    pub(super) fn new(
        config: &rdkafka::ClientConfig,
        embedded: Option<Arc<EmbeddedBroker>>,
    ) -> Result<RdAdmin, KafkaError> {
        Ok(RdAdmin {
            admin: config
                .create_with_context(ClientLog)
                .map_err(|e| rd_error(&e))?,
            metadata: Arc::new(
                config
                    .create_with_context(ClientLog)
                    .map_err(|e| rd_error(&e))?,
            ),
            embedded,
        })
    }
}

#[async_trait]
impl Admin for RdAdmin {
    async fn create_topic(&self, topic: &NewTopic) -> Result<bool, KafkaError> {
        if self.partition_count(&topic.name).await?.is_some() {
            return Ok(false);
        }
        if let Some(broker) = &self.embedded {
            let broker = broker.clone();
            let (name, partitions, rf) = (
                topic.name.clone(),
                topic.partitions,
                i32::from(topic.replication_factor),
            );
            blocking(METADATA_TIMEOUT, move || {
                broker.create_topic(&name, partitions, rf)
            })
            .await??;
            return Ok(true);
        }
        // Another process's embedded broker would let CreateTopics time out after a while.
        if self
            .cluster_id()
            .await?
            .starts_with(EMBEDDED_CLUSTER_ID_PREFIX)
        {
            return Err(KafkaError::Backend(format!(
                "cannot create topic {:?}: the broker is an embedded broker (`sluice broker`), which creates topics only for its own process; start it with `sluice broker --topic {}:{}`, or leave out the topic.creation.* keys and let it create the topic when first written",
                topic.name, topic.name, topic.partitions
            )));
        }
        let mut new = RdNewTopic::new(
            &topic.name,
            topic.partitions,
            TopicReplication::Fixed(i32::from(topic.replication_factor)),
        );
        for (k, v) in &topic.config {
            new = new.set(k, v);
        }
        let results = self
            .admin
            .create_topics(
                [&new],
                &AdminOptions::new()
                    .operation_timeout(Some(METADATA_TIMEOUT))
                    .request_timeout(Some(METADATA_TIMEOUT)),
            )
            .await
            .map_err(|e| rd_error(&e))?;
        match results.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
            Some(Err((name, code))) => Err(KafkaError::Backend(format!(
                "cannot create topic {name}: {code}"
            ))),
            _ => Ok(true),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaError> {
        let consumer = self.metadata.clone();
        let name = topic.to_owned();
        let metadata = blocking(METADATA_TIMEOUT * 2, move || {
            consumer.fetch_metadata(Some(&name), METADATA_TIMEOUT)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let marks = watermarks(&self.metadata, partitions, METADATA_TIMEOUT).await?;
        Ok(marks.into_iter().map(|(p, (_, high))| (p, high)).collect())
    }

    /// The in-process embedded broker is new, and empty, at every start of the worker; it is named
    /// [`IN_PROCESS_CLUSTER_ID`] so that a worker that runs on it again keeps its offsets. Another
    /// process's (`sluice broker`) has the mock cluster's own id, new with each start of that process.
    async fn cluster_id(&self) -> Result<String, KafkaError> {
        if self.embedded.is_some() {
            return Ok(IN_PROCESS_CLUSTER_ID.to_owned());
        }
        let metadata = self.metadata.clone();
        blocking(METADATA_TIMEOUT * 2, move || {
            let id = metadata.client().fetch_cluster_id(METADATA_TIMEOUT);
            if id.is_none() {
                // Serves the client's queued error events, which say why (through `ClientLog`).
                let _ = metadata.poll(Duration::ZERO);
            }
            id
        })
        .await?
        .ok_or_else(|| {
            KafkaError::Timeout(format!(
                "Kafka did not tell its cluster id within {METADATA_TIMEOUT:?}"
            ))
        })
    }
}
