//! The topics each connector's tasks have used since it was created or its set was last reset (Kafka
//! Connect's active topics, KIP-558): those a source's records went to, after transforms, and those a
//! sink's records came from. Operators read them over REST, to see where a connector's data goes when
//! a transform or a regex subscription decides it.
//!
//! Tasks note a topic the first time they use it: each keeps the topics it has noted, so a record costs
//! a look-up in the task's own set and an atomic read (has a reset happened?), never the shared lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Every connector's active topics, shared by the worker and its tasks.
#[derive(Debug, Clone, Default)]
pub struct ActiveTopics {
    by_connector: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    /// Counts resets, so that tasks forget what they noted before one.
    resets: Arc<AtomicU64>,
}

impl ActiveTopics {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, BTreeSet<String>>> {
        self.by_connector.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connector's active topics, sorted.
    pub fn of(&self, connector: &str) -> Vec<String> {
        self.lock()
            .get(connector)
            .map(|topics| topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Empties the connector's set: topics count again from their next use.
    pub fn reset(&self, connector: &str) {
        self.lock().remove(connector);
        self.resets.fetch_add(1, Ordering::Release);
    }

    /// What a task of `connector` notes its topics through.
    pub fn tracker(&self, connector: &str) -> TopicTracker {
        TopicTracker {
            topics: Some(self.clone()),
            connector: connector.to_owned(),
            noted: BTreeSet::new(),
            resets_seen: self.resets.load(Ordering::Acquire),
        }
    }
}

/// A task's side of its connector's active topics. The default notes nothing (a task run outside a
/// worker, or a worker with `topic.tracking.enable=false`).
#[derive(Debug, Clone, Default)]
pub struct TopicTracker {
    topics: Option<ActiveTopics>,
    connector: String,
    noted: BTreeSet<String>,
    resets_seen: u64,
}

impl TopicTracker {
    /// The task used `topic`.
    pub fn used(&mut self, topic: &str) {
        let Some(topics) = &self.topics else {
            return;
        };
        let resets = topics.resets.load(Ordering::Acquire);
        if resets != self.resets_seen {
            self.resets_seen = resets;
            self.noted.clear();
        }
        if self.noted.contains(topic) {
            return;
        }
        topics
            .lock()
            .entry(self.connector.clone())
            .or_default()
            .insert(topic.to_owned());
        self.noted.insert(topic.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_noted_once_per_connector_and_again_after_a_reset() {
        let topics = ActiveTopics::default();
        let mut first = topics.tracker("c");
        let mut second = topics.tracker("c");
        let mut other = topics.tracker("d");
        first.used("b");
        first.used("a");
        second.used("b");
        other.used("z");
        assert_eq!(topics.of("c"), ["a", "b"]);
        assert_eq!(topics.of("d"), ["z"]);
        topics.reset("c");
        assert!(topics.of("c").is_empty());
        first.used("a");
        assert_eq!(topics.of("c"), ["a"], "noted again after the reset");
        assert_eq!(topics.of("d"), ["z"]);
        TopicTracker::default().used("x");
    }
}
