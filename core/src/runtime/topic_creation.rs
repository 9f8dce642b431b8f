//! The topics a source task writes to, created on first use when the connector's `topic.creation.*`
//! settings cover them (Kafka Connect's `TopicCreation`), and remembered so each is checked once.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::kafka::Admin;

use super::connector_config::ConnectorConfig;
use super::TaskError;

/// Creates a task's topics on first use; without an admin client it only remembers them.
pub struct TopicCreator {
    admin: Option<Arc<dyn Admin>>,
    known: BTreeSet<String>,
}

impl TopicCreator {
    /// `admin` is set when the connector may create its topics.
    pub fn new(admin: Option<Arc<dyn Admin>>) -> TopicCreator {
        TopicCreator {
            admin,
            known: BTreeSet::new(),
        }
    }

    /// Whether `topic` was seen before: a record to a known topic can be sent without awaiting
    /// [`ensure`](Self::ensure).
    pub fn knows(&self, topic: &str) -> bool {
        self.known.contains(topic)
    }

    /// Creates `topic` unless it was seen before or the connector's settings do not cover it.
    pub async fn ensure(
        &mut self,
        task: &str,
        config: &ConnectorConfig,
        topic: &str,
    ) -> Result<(), TaskError> {
        if self.knows(topic) {
            return Ok(());
        }
        if let (Some(admin), Some(new_topic)) = (&self.admin, config.new_topic(topic)) {
            let created =
                admin
                    .create_topic(&new_topic)
                    .await
                    .map_err(|e| TaskError::TopicCreation {
                        task: task.to_owned(),
                        topic: topic.to_owned(),
                        source: e,
                    })?;
            if created {
                tracing::info!(
                    task,
                    topic,
                    partitions = new_topic.partitions,
                    "created topic"
                );
            }
        }
        self.known.insert(topic.to_owned());
        Ok(())
    }
}
