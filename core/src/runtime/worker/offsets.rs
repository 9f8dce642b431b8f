//! A connector's offsets as operators read and change them (KIP-875): a source's committed source
//! offsets in the worker's offset store (or, with exactly-once source support, in the offsets topic), a
//! sink's in its consumer group (`connect-<name>`). Changes are
//! allowed only while the connector is stopped, so that no task commits over them; the connector's
//! `alter_offsets` hook sees (and may refuse) each change before it is written.

use std::collections::BTreeMap;

use regex::Regex;

use crate::api::TopicPartition;
use crate::kafka::{Admin, ClientSettings, ProduceRecord, Subscription};
use crate::runtime::connector_config::ConnectorConfig;
use crate::runtime::offsets_topic::{offset_key, offset_value, TopicOffsets};
use crate::runtime::records::send_when_room;

use super::control::{ControlError, OffsetChanges, StoredOffsets, TargetState};
use super::herder::Herder;
use super::Plugin;

/// The consumer group of a sink connector's tasks.
pub(super) fn sink_group(connector: &str) -> String {
    format!("connect-{connector}")
}

impl Herder<'_> {
    /// A connector's committed offsets, whatever its state.
    pub(super) async fn offsets(&self, name: &str) -> Result<StoredOffsets, ControlError> {
        let running = self
            .connectors
            .get(name)
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
        match &running.plugin {
            Plugin::Sink(_) => {
                let admin = self.admin(name, "read")?;
                let partitions = sink_partitions(&*admin, &running.config)
                    .await
                    .map_err(|reason| offsets_error(name, "read", reason))?;
                let offsets = admin
                    .group_offsets(&sink_group(name), &partitions)
                    .await
                    .map_err(|e| offsets_error(name, "read", e.to_string()))?;
                Ok(StoredOffsets::Sink(offsets))
            }
            Plugin::Source(_) if self.worker.config.exactly_once_source() => {
                let admin = self.admin(name, "read")?;
                let settings = ClientSettings::from([(
                    "isolation.level".to_owned(),
                    "read_committed".to_owned(),
                )]);
                let mut reader = self
                    .worker
                    .backend
                    .log_reader(&settings)
                    .map_err(|e| offsets_error(name, "read", e.to_string()))?;
                let topic = self.worker.config.offsets_topic().name;
                let offsets = TopicOffsets::read(
                    &mut *reader,
                    &*admin,
                    &topic,
                    name,
                    self.worker.config.offset_flush_timeout(),
                )
                .await
                .map_err(|e| offsets_error(name, "read", e.to_string()))?;
                Ok(StoredOffsets::Source(offsets.entries()))
            }
            Plugin::Source(_) => {
                let store = self
                    .worker
                    .offsets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                Ok(StoredOffsets::Source(store.offsets(name)))
            }
        }
    }

    /// Changes (`Some`) or resets (`None`) the offsets of a stopped connector. True if the connector
    /// says it took care of offsets it keeps in its own system.
    pub(super) async fn alter_offsets(
        &mut self,
        name: &str,
        changes: Option<OffsetChanges>,
    ) -> Result<bool, ControlError> {
        let running = self
            .connectors
            .get(name)
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
        if running.target != TargetState::Stopped {
            return Err(ControlError::NotStopped(name.to_owned()));
        }
        let doing = match changes {
            Some(_) => "altered",
            None => "reset",
        };
        let stored = self.offsets(name).await?;
        let current = match &stored {
            StoredOffsets::Sink(offsets) => offsets.clone(),
            StoredOffsets::Source(_) => BTreeMap::new(),
        };
        let changes = match changes {
            Some(changes) => changes,
            None => match stored {
                StoredOffsets::Source(offsets) => {
                    OffsetChanges::Source(offsets.into_iter().map(|(p, _)| (p, None)).collect())
                }
                StoredOffsets::Sink(offsets) => {
                    OffsetChanges::Sink(offsets.into_keys().map(|tp| (tp, None)).collect())
                }
            },
        };
        let running = self
            .connectors
            .get(name)
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
        let props = running.config.props();
        let refused = |e: crate::api::ConnectError| {
            ControlError::BadOffsets(format!("Connector {name} refused the offsets: {}", e))
        };
        let handled = match (&running.plugin, changes) {
            (Plugin::Source(connector), OffsetChanges::Source(changes)) => {
                let handled = connector.alter_offsets(props, &changes).map_err(refused)?;
                match self.worker.config.exactly_once_source() {
                    true => self.write_topic_offsets(name, doing, &changes).await?,
                    false => self
                        .worker
                        .offsets
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .alter(name, &changes)
                        .map_err(|e| offsets_error(name, doing, e.to_string()))?,
                }
                handled
            }
            (Plugin::Sink(connector), OffsetChanges::Sink(changes)) => {
                let handled = connector.alter_offsets(props, &changes).map_err(refused)?;
                let admin = self.admin(name, doing)?;
                write_sink_offsets(&*admin, name, doing, &current, &changes).await?;
                handled
            }
            (Plugin::Source(_), OffsetChanges::Sink(_)) => {
                return Err(ControlError::BadOffsets(format!(
                    "Connector {name} is a source connector: its partitions are source partitions, not Kafka topic partitions"
                )))
            }
            (Plugin::Sink(_), OffsetChanges::Source(_)) => {
                return Err(ControlError::BadOffsets(format!(
                    "Connector {name} is a sink connector: its partitions are {{\"kafka_topic\": ..., \"kafka_partition\": ...}} and its offsets {{\"kafka_offset\": ...}}"
                )))
            }
        };
        tracing::info!(connector = %name, "the connector's offsets were {doing} by an operator");
        Ok(handled)
    }

    fn admin(
        &self,
        name: &str,
        doing: &'static str,
    ) -> Result<std::sync::Arc<dyn Admin>, ControlError> {
        self.worker
            .backend
            .admin()
            .map_err(|e| offsets_error(name, doing, e.to_string()))
    }

    /// Writes a source's offset changes to the offsets topic, where its exactly-once tasks keep them:
    /// Kafka Connect's records (a null value removes a partition's offset), keyed as the tasks key
    /// theirs, so each lands in the partition of the record it replaces and is read after it.
    async fn write_topic_offsets(
        &self,
        name: &str,
        doing: &'static str,
        changes: &[(
            crate::api::SourcePartition,
            Option<crate::api::SourceOffset>,
        )],
    ) -> Result<(), ControlError> {
        let failed = |e: crate::kafka::KafkaError| offsets_error(name, doing, e.to_string());
        let mut settings = self.worker.config.common_client_settings();
        settings.insert("client.id".into(), format!("connector-offsets-{name}"));
        let producer = self.worker.backend.producer(&settings).map_err(failed)?;
        let topic = self.worker.config.offsets_topic().name;
        for (token, (partition, offset)) in changes.iter().enumerate() {
            let key = offset_key(name, partition);
            let value = offset.as_ref().map(offset_value);
            let record = ProduceRecord {
                topic: &topic,
                partition: None,
                key: Some(&key),
                value: value.as_deref(),
                headers: &[],
                timestamp: None,
            };
            send_when_room(&*producer.producer, &record, token as u64)
                .await
                .map_err(|e| offsets_error(name, doing, e.to_string()))?;
        }
        let timeout = self.worker.config.offset_flush_timeout();
        producer.producer.flush(timeout).await.map_err(failed)?;
        let mut deliveries = producer.deliveries;
        for _ in changes {
            match tokio::time::timeout(timeout, deliveries.recv()).await {
                Ok(Some(delivery)) => {
                    delivery
                        .result
                        .map_err(|e| offsets_error(name, doing, e.to_string()))?;
                }
                Ok(None) | Err(_) => {
                    return Err(offsets_error(
                        name,
                        doing,
                        format!("Kafka did not acknowledge the offsets within {timeout:?}"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Writes a sink's offset changes to its consumer group (whose committed offsets are `current`), which
/// has no member while the connector is stopped. Removing every offset deletes the group; removing only
/// some is not possible (librdkafka has no OffsetDelete), and says so.
async fn write_sink_offsets(
    admin: &dyn Admin,
    name: &str,
    doing: &'static str,
    current: &BTreeMap<TopicPartition, i64>,
    changes: &BTreeMap<TopicPartition, Option<i64>>,
) -> Result<(), ControlError> {
    if changes.is_empty() {
        return Ok(());
    }
    let group = sink_group(name);
    let set: BTreeMap<TopicPartition, i64> = changes
        .iter()
        .filter_map(|(tp, offset)| Some((tp.clone(), (*offset)?)))
        .collect();
    if set.len() == changes.len() {
        return admin
            .commit_group_offsets(&group, &set)
            .await
            .map_err(|e| offsets_error(name, doing, e.to_string()));
    }
    let removes_all = set.is_empty() && current.keys().all(|tp| changes.contains_key(tp));
    if !removes_all {
        return Err(ControlError::BadOffsets(
            "Removing the offsets of only some partitions of a sink connector is not supported: remove them all (DELETE /connectors/{name}/offsets), or set each to a Kafka offset".to_owned(),
        ));
    }
    admin
        .delete_group(&group)
        .await
        .map_err(|e| offsets_error(name, doing, e.to_string()))
}

/// The partitions a sink's consumer group reads: its topics' (or those its pattern matches).
async fn sink_partitions(
    admin: &dyn Admin,
    config: &ConnectorConfig,
) -> Result<Vec<TopicPartition>, String> {
    let topics: Vec<(String, i32)> = match config.subscription().map_err(|e| e.to_string())? {
        Subscription::Topics(topics) => {
            let mut counted = Vec::new();
            for topic in topics {
                if let Some(count) = admin
                    .partition_count(&topic)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    counted.push((topic, count));
                }
            }
            counted
        }
        Subscription::Pattern(pattern) => {
            let whole = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
            admin
                .topics()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|(topic, _)| whole.is_match(topic))
                .collect()
        }
    };
    Ok(topics
        .into_iter()
        .flat_map(|(topic, count)| (0..count).map(move |p| TopicPartition::new(topic.clone(), p)))
        .collect())
}

fn offsets_error(connector: &str, doing: &'static str, reason: String) -> ControlError {
    ControlError::Offsets {
        connector: connector.to_owned(),
        doing,
        reason,
    }
}
