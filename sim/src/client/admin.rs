//! The simulated admin client: topic creation, partition counts, end offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{Admin, KafkaError, NewTopic};

use super::connection::{unexpected, Connection};
use crate::protocol::{Request, Response, Tp};

pub struct SimAdmin {
    connection: Connection,
}

impl SimAdmin {
    pub fn new(broker: &str, request_timeout: Duration) -> SimAdmin {
        SimAdmin {
            connection: Connection::new(broker, request_timeout),
        }
    }
}

#[async_trait]
impl Admin for SimAdmin {
    async fn create_topic(&self, topic: &NewTopic) -> Result<bool, KafkaError> {
        let request = Request::CreateTopic {
            name: topic.name.clone(),
            partitions: topic.partitions,
        };
        match self.connection.call(&request, Duration::ZERO).await? {
            Response::TopicCreated { created } => Ok(created),
            other => Err(unexpected(other)),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaError> {
        let request = Request::Metadata {
            topics: Some(vec![topic.to_owned()]),
            auto_create: false,
        };
        match self.connection.call(&request, Duration::ZERO).await? {
            Response::Metadata { topics } => Ok(topics.first().map(|(_, count)| *count)),
            other => Err(unexpected(other)),
        }
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let request = Request::EndOffsets {
            partitions: partitions
                .iter()
                .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
                .collect(),
        };
        match self.connection.call(&request, Duration::ZERO).await? {
            Response::EndOffsets { offsets } => Ok(offsets
                .into_iter()
                .map(|(tp, end)| (TopicPartition::new(tp.topic, tp.partition), end))
                .collect()),
            other => Err(unexpected(other)),
        }
    }
}
