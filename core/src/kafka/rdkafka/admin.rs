//! The rdkafka admin client behind [`Admin`], with topic creation routed to the embedded broker when
//! there is one (the mock cluster does not implement CreateTopics), and refused with directions when
//! the broker is another process's embedded broker (`sluice broker`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client_log::ClientLog;
use super::{blocking, rd_error, watermarks, EmbeddedBroker};
use crate::api::TopicPartition;
use crate::kafka::{Admin, KafkaError, NewTopic, IN_PROCESS_CLUSTER_ID};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an admin's consumer may take to join a group, and how often it polls meanwhile.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
const JOIN_POLL: Duration = Duration::from_millis(100);

/// How librdkafka's mock cluster, the embedded broker, names itself (`mockCluster<hex>`).
const EMBEDDED_CLUSTER_ID_PREFIX: &str = "mockCluster";

pub(super) struct RdAdmin {
    /// The admin client's config, for the consumers that speak for a group.
    config: rdkafka::ClientConfig,
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
            config: config.clone(),
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

    async fn topics(&self) -> Result<BTreeMap<String, i32>, KafkaError> {
        let consumer = self.metadata.clone();
        let metadata = blocking(METADATA_TIMEOUT * 2, move || {
            consumer.fetch_metadata(None, METADATA_TIMEOUT)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
            .collect())
    }

    async fn group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let consumer = self.group_client(group)?;
        let list = partition_list(partitions.iter().map(|tp| (tp, Offset::Invalid)))?;
        let committed = blocking(METADATA_TIMEOUT * 2, move || {
            consumer.committed_offsets(list, METADATA_TIMEOUT)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => {
                    Some((TopicPartition::new(e.topic(), e.partition()), offset))
                }
                _ => None,
            })
            .collect())
    }

    async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError> {
        let consumer = self.group_client(group)?;
        let list = partition_list(offsets.iter().map(|(tp, o)| (tp, Offset::Offset(*o))))?;
        let retry = list.clone();
        match blocking(METADATA_TIMEOUT * 2, move || {
            consumer.commit(&list, CommitMode::Sync)
        })
        .await?
        {
            Ok(()) => Ok(()),
            // librdkafka's mock cluster (the embedded broker) refuses commits from outside a group it
            // has seen, even an empty one; a member of the group may commit.
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownMemberId) => {
                let mut consumer = self.config.clone();
                // The shortest session brokers allow: a broker that misses this member's leave
                // forgets it soon, and the connector's own consumers join without waiting long.
                consumer
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("session.timeout.ms", "6000")
                    .set("heartbeat.interval.ms", "1000");
                let consumer: BaseConsumer<ClientLog> = consumer
                    .create_with_context(ClientLog)
                    .map_err(|e| rd_error(&e))?;
                let topics: Vec<String> = offsets
                    .keys()
                    .map(|tp| tp.topic.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                blocking(JOIN_TIMEOUT * 2, move || {
                    commit_as_member(&consumer, &topics, &retry)
                })
                .await?
            }
            Err(e) => Err(rd_error(&e)),
        }
    }

    async fn delete_group(&self, group: &str) -> Result<(), KafkaError> {
        // librdkafka's mock cluster has no DeleteGroups, and librdkafka aborts the process (a failed
        // assertion in its queue code) when it is asked anyway: never ask it.
        let cluster = self.cluster_id().await?;
        if cluster == IN_PROCESS_CLUSTER_ID || cluster.starts_with(EMBEDDED_CLUSTER_ID_PREFIX) {
            return Err(KafkaError::Backend(format!(
                "cannot delete consumer group {group:?}: the embedded broker does not support DeleteGroups; set each partition's offset instead"
            )));
        }
        let results = self
            .admin
            .delete_groups(
                &[group],
                &AdminOptions::new()
                    .operation_timeout(Some(METADATA_TIMEOUT))
                    .request_timeout(Some(METADATA_TIMEOUT)),
            )
            .await
            .map_err(|e| rd_error(&e))?;
        match results.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::GroupIdNotFound))) | Some(Ok(_)) | None => Ok(()),
            Some(Err((_, code))) => Err(KafkaError::Backend(format!(
                "cannot delete consumer group {group:?}: {code}"
            ))),
        }
    }
}

impl RdAdmin {
    /// A consumer of `group` that never joins it: it only fetches and commits the group's offsets.
    fn group_client(&self, group: &str) -> Result<BaseConsumer<ClientLog>, KafkaError> {
        let mut config = self.config.clone();
        config.set("group.id", group);
        config.set("enable.auto.commit", "false");
        config
            .create_with_context(ClientLog)
            .map_err(|e| rd_error(&e))
    }
}

/// Joins the group (subscribed to `topics`), commits `offsets` as its member, and leaves it.
fn commit_as_member(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
    offsets: &TopicPartitionList,
) -> Result<(), KafkaError> {
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| rd_error(&e))?;
    let polls = JOIN_TIMEOUT.as_millis() / JOIN_POLL.as_millis();
    let mut joined = false;
    for _ in 0..polls {
        // Fetched records are dropped: this consumer never consumes, nor commits what it polls.
        let _ = consumer.poll(JOIN_POLL);
        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
            joined = true;
            break;
        }
    }
    let committed = match joined {
        true => consumer
            .commit(offsets, CommitMode::Sync)
            .map_err(|e| rd_error(&e)),
        false => Err(KafkaError::Timeout(format!(
            "could not join the consumer group to commit its offsets within {JOIN_TIMEOUT:?}"
        ))),
    };
    consumer.unsubscribe();
    committed
}

/// A librdkafka partition list of these partitions and offsets.
fn partition_list<'a>(
    entries: impl Iterator<Item = (&'a TopicPartition, Offset)>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for (tp, offset) in entries {
        list.add_partition_offset(&tp.topic, tp.partition, offset)
            .map_err(|e| rd_error(&e))?;
    }
    Ok(list)
}
