//! The simulated admin client: topic creation, partition counts and the topics, end offsets (from each
//! partition's leader), the cluster id, and a consumer group's offsets (from its coordinator).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::api::TopicPartition;
use sluice_core::kafka::{Admin, KafkaError, NewTopic};

use super::connection::unexpected;
use super::routing::Router;
use crate::protocol::{CoordinatorKind, Request, Response, Tp};

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
                        .map(|(tp, end)| (TopicPartition::new(&*tp.topic, tp.partition), end)),
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

    async fn topics(&self) -> Result<BTreeMap<String, i32>, KafkaError> {
        Ok(self
            .router
            .metadata(None, false)
            .await?
            .into_iter()
            .collect())
    }

    async fn group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>, KafkaError> {
        let request = Request::OffsetFetch {
            group: group.to_owned(),
            partitions: partitions
                .iter()
                .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
                .collect(),
        };
        match self.to_coordinator(group, &request).await? {
            Response::Committed { offsets } => Ok(offsets
                .into_iter()
                .filter_map(|(tp, offset)| {
                    Some((TopicPartition::new(&*tp.topic, tp.partition), offset?))
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), KafkaError> {
        let request = Request::AdminOffsetCommit {
            group: group.to_owned(),
            offsets: offsets
                .iter()
                .map(|(tp, offset)| (Tp::new(tp.topic.clone(), tp.partition), *offset))
                .collect(),
        };
        self.to_coordinator(group, &request).await.and_then(done)
    }

    async fn delete_group(&self, group: &str) -> Result<(), KafkaError> {
        let request = Request::DeleteGroup {
            group: group.to_owned(),
        };
        self.to_coordinator(group, &request).await.and_then(done)
    }
}

impl SimAdmin {
    async fn to_coordinator(&self, group: &str, request: &Request) -> Result<Response, KafkaError> {
        self.router
            .call_coordinator(CoordinatorKind::Group, group, request, Duration::ZERO)
            .await
    }
}

/// An answer that is only done or an error.
fn done(answer: Response) -> Result<(), KafkaError> {
    match answer {
        Response::Done => Ok(()),
        Response::Error(code) => Err(KafkaError::Backend(format!("the broker refused: {code}"))),
        other => Err(unexpected(other)),
    }
}
