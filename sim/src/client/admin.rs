//! The simulated admin client: topic creation, partition counts, end offsets (from each partition's
//! leader), the cluster id.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{Admin, KafkaError, NewTopic};

use super::connection::unexpected;
use super::routing::Router;
use crate::protocol::{Request, Response, Tp};

pub struct SimAdmin {
    router: Router,
}

impl SimAdmin {
    pub fn new(bootstrap: &str, request_timeout: Duration) -> SimAdmin {
        SimAdmin {
            router: Router::new(bootstrap, request_timeout),
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
        match self.router.call_any(&request, Duration::ZERO).await? {
            Response::TopicCreated { created } => Ok(created),
            other => Err(unexpected(other)),
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<i32>, KafkaError> {
        let topics = self
            .router
            .metadata(Some(vec![topic.to_owned()]), false)
            .await?;
        Ok(topics.first().map(|(_, count)| *count))
    }

    async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let tps = partitions
            .iter()
            .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
            .collect();
        let answers = self
            .router
            .call_leaders(tps, Duration::ZERO, |partitions| Request::EndOffsets {
                partitions,
            })
            .await;
        let mut ends = BTreeMap::new();
        for (_, answer) in answers {
            match answer? {
                Response::EndOffsets { offsets } => ends.extend(
                    offsets
                        .into_iter()
                        .map(|(tp, end)| (TopicPartition::new(tp.topic, tp.partition), end)),
                ),
                other => return Err(unexpected(other)),
            }
        }
        Ok(ends)
    }

    async fn cluster_id(&self) -> Result<String, KafkaError> {
        let request = Request::Metadata {
            topics: Some(Vec::new()),
            auto_create: false,
        };
        match self.router.call_any(&request, Duration::ZERO).await? {
            Response::Metadata { cluster_id, .. } => Ok(cluster_id),
            other => Err(unexpected(other)),
        }
    }
}
