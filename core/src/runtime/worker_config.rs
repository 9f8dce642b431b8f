//! The worker's configuration (`worker.properties`): where Kafka is, default converters, offset storage
//! and commit timing, exactly-once source support, and the client settings passed to producers and
//! consumers.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    ConfigDef, ConfigError, ConfigMap, ConfigProviders, ConfigType, ParsedConfig, UnknownKey,
};
use crate::kafka::{ClientSettings, NewTopic};

pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
pub const KEY_CONVERTER: &str = "key.converter";
pub const VALUE_CONVERTER: &str = "value.converter";
pub const OFFSET_STORAGE_FILE: &str = "offset.storage.file.filename";
pub const OFFSET_FLUSH_INTERVAL: &str = "offset.flush.interval.ms";
pub const OFFSET_FLUSH_TIMEOUT: &str = "offset.flush.timeout.ms";
pub const SHUTDOWN_TIMEOUT: &str = "task.shutdown.graceful.timeout.ms";
pub const TOPIC_CREATION_ENABLE: &str = "topic.creation.enable";
pub const GROUP_ID: &str = "group.id";
pub const EXACTLY_ONCE_SOURCE_SUPPORT: &str = "exactly.once.source.support";
pub const EXACTLY_ONCE_SOURCE_GENERATION: &str = "exactly.once.source.generation";
pub const OFFSET_STORAGE_TOPIC: &str = "offset.storage.topic";
pub const OFFSET_STORAGE_PARTITIONS: &str = "offset.storage.partitions";
pub const OFFSET_STORAGE_REPLICATION_FACTOR: &str = "offset.storage.replication.factor";
pub const STATUS_INTERVAL: &str = "status.log.interval.ms";
pub const TOPIC_TRACKING_ENABLE: &str = "topic.tracking.enable";
pub const TOPIC_TRACKING_ALLOW_RESET: &str = "topic.tracking.allow.reset";

const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// Prefixes of worker keys that apply to every Kafka client the worker creates.
const COMMON_CLIENT_PREFIXES: &[&str] = &["security.", "sasl.", "ssl.", "client.dns.lookup"];

/// Prefixes of worker keys that are not the worker's own: a client's (`producer.`...), a converter's, and
/// Kafka Connect worker keys Sluice has no use for (plugins are built in; its REST API and metrics are
/// configured elsewhere), which a `connect-standalone.properties` may well hold.
const OTHER_WORKER_PREFIXES: &[&str] = &[
    "producer.",
    "consumer.",
    "admin.",
    "key.converter.",
    "value.converter.",
    "header.converter",
    "plugin.path",
    "plugin.discovery",
    "listeners",
    "rest.",
    "config.providers",
    "metric.reporters",
    "metrics.",
    "connector.client.config.override.policy",
];

/// The keys of a standalone worker, with Kafka Connect's defaults.
pub fn worker_config_def() -> ConfigDef {
    ConfigDef::new()
        .optional(
            BOOTSTRAP_SERVERS,
            ConfigType::List,
            "",
            "Kafka brokers to connect to; empty starts an embedded broker in this process.",
        )
        .optional(
            KEY_CONVERTER,
            ConfigType::Class,
            JSON_CONVERTER,
            "Converter for record keys.",
        )
        .optional(
            VALUE_CONVERTER,
            ConfigType::Class,
            JSON_CONVERTER,
            "Converter for record values.",
        )
        .required(
            OFFSET_STORAGE_FILE,
            ConfigType::String,
            "File in which standalone mode stores source offsets.",
        )
        .check(|v| {
            if v.is_empty() {
                Err("must name a file".into())
            } else {
                Ok(())
            }
        })
        .optional(
            OFFSET_FLUSH_INTERVAL,
            ConfigType::Long,
            "60000",
            "How often offsets are committed, in milliseconds.",
        )
        .check(positive)
        .optional(
            OFFSET_FLUSH_TIMEOUT,
            ConfigType::Long,
            "5000",
            "How long a commit may wait for outstanding records, in milliseconds.",
        )
        .check(positive)
        .optional(
            SHUTDOWN_TIMEOUT,
            ConfigType::Long,
            "5000",
            "How long tasks may take to stop cleanly, in milliseconds.",
        )
        .check(positive)
        .optional(
            TOPIC_CREATION_ENABLE,
            ConfigType::Boolean,
            "true",
            "Whether source connectors may create their topics (topic.creation.* keys).",
        )
        .optional(
            GROUP_ID,
            ConfigType::String,
            "connect-cluster",
            "The worker cluster's name; exactly-once source tasks use <group.id>-<connector>-<task> as their transactional.id.",
        )
        .check(|v| {
            if v.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        })
        .optional(
            EXACTLY_ONCE_SOURCE_SUPPORT,
            ConfigType::String,
            "disabled",
            "enabled runs every source task with a transactional producer, its records and source offsets (in offset.storage.topic) committed together.",
        )
        .check(|v| match v {
            "disabled" | "enabled" => Ok(()),
            "preparing" => Err("preparing is a step of a distributed cluster's rolling upgrade, which Sluice does not have; use disabled or enabled".into()),
            _ => Err("must be disabled or enabled".into()),
        })
        .optional(
            EXACTLY_ONCE_SOURCE_GENERATION,
            ConfigType::String,
            "",
            "The generation of this worker's exactly-once source tasks, from whatever starts workers (a deployment's revision, say; Sluice's own key). A task records it in the offsets topic, and one of an older generation does not start, so a worker that regains the network after its task moved elsewhere never fences the newer instance. Unset: every start wins.",
        )
        .check(|v| match v {
            "" => Ok(()),
            v if v.parse::<u64>().is_ok() => Ok(()),
            _ => Err("must be a non-negative whole number, or empty".into()),
        })
        .optional(
            OFFSET_STORAGE_TOPIC,
            ConfigType::String,
            "connect-offsets",
            "The topic exactly-once source tasks keep their source offsets in.",
        )
        .check(|v| {
            if v.is_empty() {
                Err("must name a topic".into())
            } else {
                Ok(())
            }
        })
        .optional(
            OFFSET_STORAGE_PARTITIONS,
            ConfigType::Int,
            "25",
            "Partitions of the offsets topic, when the worker creates it.",
        )
        .check(positive)
        .optional(
            OFFSET_STORAGE_REPLICATION_FACTOR,
            ConfigType::Int,
            "3",
            "Replication factor of the offsets topic, when the worker creates it.",
        )
        .check(positive)
        .optional(
            STATUS_INTERVAL,
            ConfigType::Long,
            "60000",
            "How often the worker logs a status line (each task's state and the records it moved), in milliseconds (Sluice's own key).",
        )
        .check(positive)
        .optional(
            TOPIC_TRACKING_ENABLE,
            ConfigType::Boolean,
            "true",
            "Track the topics each connector uses, for GET /connectors/{name}/topics.",
        )
        .optional(
            TOPIC_TRACKING_ALLOW_RESET,
            ConfigType::Boolean,
            "true",
            "Allow PUT /connectors/{name}/topics/reset.",
        )
}

pub(crate) fn positive(v: &str) -> Result<(), String> {
    match v.parse::<i64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("must be a positive number".into()),
    }
}

/// Kafka's `max.request.size`: the largest request, and so the largest record, a producer sends.
pub(crate) const MAX_REQUEST_SIZE: &str = "max.request.size";

/// A producer's `max.request.size` (`key` as the operator wrote it) is a byte count: checked when the
/// configuration is read, where the error can name that key (librdkafka, which gets it as
/// `message.max.bytes`, would name its own).
pub(crate) fn check_max_request_size(key: &str, value: Option<&String>) -> Result<(), ConfigError> {
    match value {
        Some(value)
            if value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .is_none() =>
        {
            Err(ConfigError::single(
                key,
                format!("{value:?} is not a positive number of bytes"),
            ))
        }
        _ => Ok(()),
    }
}

/// A validated worker configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The keys, with config provider references filled in.
    parsed: ParsedConfig,
    providers: ConfigProviders,
}

impl WorkerConfig {
    pub fn parse(props: &ConfigMap) -> Result<WorkerConfig, ConfigError> {
        // Left out, the key runs the worker on the embedded broker; set but empty, it is a mistake,
        // and committing offsets to a broker that vanishes with the process would lose data.
        if props
            .get(BOOTSTRAP_SERVERS)
            .is_some_and(|servers| servers.trim().is_empty())
        {
            return Err(ConfigError::single(
                BOOTSTRAP_SERVERS,
                "is empty: name the Kafka brokers (host:port,...), or leave the key out to run on the embedded broker",
            ));
        }
        let providers = ConfigProviders::from_worker(props)?;
        let props = providers.resolve(props)?;
        let key = format!("producer.{MAX_REQUEST_SIZE}");
        check_max_request_size(&key, props.get(&key))?;
        Ok(WorkerConfig {
            parsed: worker_config_def().parse(&props)?,
            providers,
        })
    }

    /// The config providers the worker declares, which fill in references in connector configs.
    pub fn providers(&self) -> &ConfigProviders {
        &self.providers
    }

    /// The supplied keys the worker does not know (each with the key it likely misspells): worth a
    /// warning at start, as a misspelled key silently falls back to its default.
    pub fn unknown_keys(&self) -> Vec<UnknownKey> {
        let prefixes: Vec<&str> = COMMON_CLIENT_PREFIXES
            .iter()
            .chain(OTHER_WORKER_PREFIXES)
            .copied()
            .collect();
        worker_config_def().unknown_keys(self.parsed.map(), &prefixes)
    }

    pub fn props(&self) -> &ConfigMap {
        self.parsed.map()
    }

    /// `None` when the worker should start an embedded broker.
    pub fn bootstrap_servers(&self) -> Option<String> {
        let servers = self.parsed.list(BOOTSTRAP_SERVERS);
        (!servers.is_empty()).then(|| servers.join(","))
    }

    pub fn offset_file(&self) -> PathBuf {
        PathBuf::from(self.parsed.string(OFFSET_STORAGE_FILE))
    }

    /// `topic.tracking.enable`.
    pub fn topic_tracking(&self) -> bool {
        self.parsed.boolean(TOPIC_TRACKING_ENABLE)
    }

    /// `topic.tracking.allow.reset`.
    pub fn topic_tracking_reset(&self) -> bool {
        self.parsed.boolean(TOPIC_TRACKING_ALLOW_RESET)
    }

    /// `status.log.interval.ms`.
    pub fn status_interval(&self) -> Duration {
        millis(&self.parsed, STATUS_INTERVAL)
    }

    pub fn offset_flush_interval(&self) -> Duration {
        millis(&self.parsed, OFFSET_FLUSH_INTERVAL)
    }

    pub fn offset_flush_timeout(&self) -> Duration {
        millis(&self.parsed, OFFSET_FLUSH_TIMEOUT)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        millis(&self.parsed, SHUTDOWN_TIMEOUT)
    }

    pub fn topic_creation_enabled(&self) -> bool {
        self.parsed.boolean(TOPIC_CREATION_ENABLE)
    }

    /// The worker cluster's name (`group.id`).
    pub fn group_id(&self) -> &str {
        self.parsed.string(GROUP_ID)
    }

    /// Whether source tasks run exactly once (`exactly.once.source.support=enabled`).
    pub fn exactly_once_source(&self) -> bool {
        self.parsed.string(EXACTLY_ONCE_SOURCE_SUPPORT) == "enabled"
    }

    /// The offsets topic (`offset.storage.*`) as the worker creates it: compacted, as Kafka Connect's.
    /// `exactly.once.source.generation`, if set.
    pub fn source_generation(&self) -> Option<u64> {
        self.parsed
            .string(EXACTLY_ONCE_SOURCE_GENERATION)
            .parse()
            .ok()
    }

    pub fn offsets_topic(&self) -> NewTopic {
        NewTopic {
            name: self.parsed.string(OFFSET_STORAGE_TOPIC).to_owned(),
            partitions: self.parsed.int(OFFSET_STORAGE_PARTITIONS),
            replication_factor: i16::try_from(self.parsed.int(OFFSET_STORAGE_REPLICATION_FACTOR))
                .unwrap_or(i16::MAX),
            config: ClientSettings::from([("cleanup.policy".into(), "compact".into())]),
        }
    }

    /// Settings for every client: the worker's security keys.
    pub fn common_client_settings(&self) -> ClientSettings {
        self.props()
            .iter()
            .filter(|(k, _)| COMMON_CLIENT_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The worker's `producer.*` keys, prefix removed.
    pub fn producer_settings(&self) -> ClientSettings {
        strip_prefix(self.props(), "producer.")
    }

    /// The worker's `consumer.*` keys, prefix removed.
    pub fn consumer_settings(&self) -> ClientSettings {
        strip_prefix(self.props(), "consumer.")
    }
}

pub(crate) fn millis(parsed: &ParsedConfig, key: &str) -> Duration {
    Duration::from_millis(u64::try_from(parsed.long(key)).unwrap_or_default())
}

/// The keys that start with `prefix`, with the prefix removed.
pub fn strip_prefix(props: &ConfigMap, prefix: &str) -> ConfigMap {
    props
        .range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k[prefix.len()..].to_owned(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_prefixes() {
        let props = ConfigMap::from([
            (OFFSET_STORAGE_FILE.into(), "/tmp/o".into()),
            ("producer.linger.ms".into(), "10".into()),
            ("consumer.fetch.min.bytes".into(), "1".into()),
            ("security.protocol".into(), "PLAINTEXT".into()),
        ]);
        let config = WorkerConfig::parse(&props).unwrap();
        assert_eq!(config.bootstrap_servers(), None);
        assert_eq!(config.offset_flush_interval(), Duration::from_secs(60));
        assert_eq!(config.producer_settings()["linger.ms"], "10");
        assert_eq!(config.consumer_settings()["fetch.min.bytes"], "1");
        assert_eq!(config.common_client_settings().len(), 1);
    }

    #[test]
    fn exactly_once_keys() {
        let mut props = ConfigMap::from([(OFFSET_STORAGE_FILE.into(), "/tmp/o".into())]);
        let config = WorkerConfig::parse(&props).unwrap();
        assert!(!config.exactly_once_source());
        assert_eq!(config.group_id(), "connect-cluster");
        assert_eq!(config.offsets_topic().name, "connect-offsets");
        assert_eq!(config.offsets_topic().partitions, 25);
        props.insert(EXACTLY_ONCE_SOURCE_SUPPORT.into(), "enabled".into());
        assert!(WorkerConfig::parse(&props).unwrap().exactly_once_source());
        for bad in ["yes", "preparing"] {
            props.insert(EXACTLY_ONCE_SOURCE_SUPPORT.into(), bad.into());
            let err = WorkerConfig::parse(&props).unwrap_err();
            assert_eq!(err.issues[0].key, EXACTLY_ONCE_SOURCE_SUPPORT, "{bad}");
        }
    }

    #[test]
    fn source_generation_is_a_whole_number_or_unset() {
        let mut props = ConfigMap::from([(OFFSET_STORAGE_FILE.into(), "/tmp/o".into())]);
        assert_eq!(
            WorkerConfig::parse(&props).unwrap().source_generation(),
            None
        );
        props.insert(EXACTLY_ONCE_SOURCE_GENERATION.into(), "42".into());
        assert_eq!(
            WorkerConfig::parse(&props).unwrap().source_generation(),
            Some(42)
        );
        for bad in ["-1", "two", "1.5"] {
            props.insert(EXACTLY_ONCE_SOURCE_GENERATION.into(), bad.into());
            let err = WorkerConfig::parse(&props).unwrap_err();
            assert_eq!(err.issues[0].key, EXACTLY_ONCE_SOURCE_GENERATION, "{bad}");
        }
    }

    #[test]
    fn missing_offset_file_is_named() {
        let err = WorkerConfig::parse(&ConfigMap::new()).unwrap_err();
        assert_eq!(err.issues[0].key, OFFSET_STORAGE_FILE);
    }
}
