//! The keys every connector has, whatever its class (Kafka Connect's `ConnectorConfig`,
//! `SinkConnectorConfig` and the `topic.creation.*` keys of source connectors), and the converters
//! they select.

use std::sync::Arc;
use std::time::Duration;

use crate::api::PluginRegistry;
use crate::config::{ConfigDef, ConfigError, ConfigMap, ConfigType, ParsedConfig};
use crate::convert::{converter_from_config, Converter, HeaderConverter};
use crate::kafka::{ClientSettings, NewTopic, Subscription};
use crate::transforms::TransformChain;

use super::tolerance::{
    ErrorLog, RetryPolicy, ERRORS_LOG_ENABLE, ERRORS_LOG_INCLUDE_MESSAGES, ERRORS_RETRY_DELAY_MAX,
    ERRORS_RETRY_TIMEOUT,
};
use super::worker_config::{
    check_max_request_size, positive, strip_prefix, WorkerConfig, KEY_CONVERTER, MAX_REQUEST_SIZE,
    VALUE_CONVERTER,
};

pub const NAME: &str = "name";
pub const CONNECTOR_CLASS: &str = "connector.class";
pub const TASKS_MAX: &str = "tasks.max";
pub const TOPICS: &str = "topics";
pub const TOPICS_REGEX: &str = "topics.regex";
pub const ERRORS_TOLERANCE: &str = "errors.tolerance";
pub const HEADER_CONVERTER: &str = "header.converter";
pub const DLQ_TOPIC: &str = "errors.deadletterqueue.topic.name";
pub const DLQ_REPLICATION_FACTOR: &str = "errors.deadletterqueue.topic.replication.factor";
pub const DLQ_CONTEXT_HEADERS: &str = "errors.deadletterqueue.context.headers.enable";
pub const TOPIC_CREATION_PARTITIONS: &str = "topic.creation.default.partitions";
pub const TOPIC_CREATION_REPLICATION: &str = "topic.creation.default.replication.factor";
pub const EXACTLY_ONCE_SUPPORT: &str = "exactly.once.support";
pub const TRANSACTION_BOUNDARY: &str = "transaction.boundary";
pub const TRANSACTION_BOUNDARY_INTERVAL: &str = "transaction.boundary.interval.ms";
/// Kafka's `max.poll.records`: the most records one poll hands to a sink task's `put`.
pub const MAX_POLL_RECORDS: &str = "max.poll.records";
pub const PUT_FLUSH_LIMIT: &str = "put.flush.limit.ms";
pub const TASK_RESTART_POLICY: &str = "task.restart.policy";
pub const TASK_RESTART_BACKOFF: &str = "task.restart.backoff.ms";
pub const TASK_RESTART_BACKOFF_MAX: &str = "task.restart.backoff.max.ms";
/// The consumer key that bounds [`PUT_FLUSH_LIMIT`], and its Kafka default.
const MAX_POLL_INTERVAL: &str = "max.poll.interval.ms";
const DEFAULT_PUT_FLUSH_LIMIT: Duration = Duration::from_secs(600);
const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// librdkafka's name for Kafka's `max.request.size`.
const MESSAGE_MAX_BYTES: &str = "message.max.bytes";

/// Kafka's default `max.poll.records`.
pub const DEFAULT_MAX_POLL_RECORDS: usize = 500;

/// Prefixes of connector keys that are not the connector's own: client overrides, converters'
/// settings, transforms and predicates, error handling, topic creation groups, and Kafka Connect keys
/// of a distributed cluster that a standalone worker has no use for.
pub const OTHER_CONNECTOR_PREFIXES: &[&str] = &[
    "producer.override.",
    "consumer.override.",
    "admin.override.",
    "key.converter",
    "value.converter",
    "header.converter",
    "transforms",
    "predicates",
    "errors.",
    "topic.creation.",
    "offsets.storage.topic",
    "config.action.reload",
];

/// Where an exactly-once source task ends one transaction and begins the next (`transaction.boundary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBoundary {
    /// After every batch `poll` returns.
    Poll,
    /// Every interval (`transaction.boundary.interval.ms`, by default `offset.flush.interval.ms`).
    Interval(Duration),
}

/// Every key a connector of this plugin accepts, in groups as Kafka Connect shows them (`Common`, the
/// kind's own, then the connector's own keys under its class name).
pub fn plugin_config_groups(
    class: &str,
    plugin: &crate::api::ConnectorPlugin,
) -> Vec<(String, ConfigDef)> {
    let (kind, own) = match plugin {
        crate::api::ConnectorPlugin::Source(make) => ("Source", make().config_def()),
        crate::api::ConnectorPlugin::Sink(make) => ("Sink", make().config_def()),
    };
    let extra = match plugin {
        crate::api::ConnectorPlugin::Source(_) => source_config_def(),
        crate::api::ConnectorPlugin::Sink(_) => sink_config_def(),
    };
    let simple = class.rsplit('.').next().unwrap_or(class);
    vec![
        ("Common".to_owned(), connector_config_def()),
        (kind.to_owned(), extra),
        (simple.to_owned(), own),
    ]
}

/// Keys common to all connectors.
pub fn connector_config_def() -> ConfigDef {
    ConfigDef::new()
        .required(NAME, ConfigType::String, "Unique name of the connector.")
        .check(|v| {
            if v.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        })
        .required(
            CONNECTOR_CLASS,
            ConfigType::Class,
            "The connector plugin to run.",
        )
        .optional(TASKS_MAX, ConfigType::Int, "1", "Most tasks to create.")
        .check(positive)
        .optional(
            ERRORS_TOLERANCE,
            ConfigType::String,
            "none",
            "none fails a task on a bad record; all skips it.",
        )
        .check(|v| match v {
            "none" | "all" => Ok(()),
            _ => Err("must be none or all".into()),
        })
        .optional(
            TASK_RESTART_POLICY,
            ConfigType::String,
            "none",
            "none leaves a failed task FAILED until an operator restarts it (as Kafka Connect); on-failure restarts it after task.restart.backoff.ms, doubling with each restart up to task.restart.backoff.max.ms.",
        )
        .check(|v| match v {
            "none" | "on-failure" => Ok(()),
            _ => Err("must be none or on-failure".into()),
        })
        .optional(
            TASK_RESTART_BACKOFF,
            ConfigType::Long,
            "1000",
            "With task.restart.policy=on-failure: milliseconds before a failed task's first restart.",
        )
        .check(positive)
        .optional(
            TASK_RESTART_BACKOFF_MAX,
            ConfigType::Long,
            "60000",
            "With task.restart.policy=on-failure: the longest wait before a restart.",
        )
        .check(positive)
        .optional(
            ERRORS_RETRY_TIMEOUT,
            ConfigType::Long,
            "0",
            "Milliseconds a retriable failure of a record's transformation is tried again; 0 never retries, -1 retries forever.",
        )
        .check(|v| match v.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(()),
            _ => Err("must be a number of milliseconds, 0, or -1 (forever)".into()),
        })
        .optional(
            ERRORS_RETRY_DELAY_MAX,
            ConfigType::Long,
            "60000",
            "The longest wait between two retries (they double from 300 ms, jittered).",
        )
        .check(positive)
        .optional(
            ERRORS_LOG_ENABLE,
            ConfigType::Boolean,
            "false",
            "Log every failed record at ERROR with its stage, class and origin (skipped records are always logged, at most once a minute otherwise).",
        )
        .optional(
            ERRORS_LOG_INCLUDE_MESSAGES,
            ConfigType::Boolean,
            "false",
            "With errors.log.enable: include the failed record's key, value and headers in its line.",
        )
}

/// The dead letter queue's keys (KIP-298 for sinks; Sluice's sources have one too).
fn dead_letter_queue_def() -> ConfigDef {
    ConfigDef::new()
        .optional(
            DLQ_TOPIC,
            ConfigType::String,
            "",
            "With errors.tolerance=all: the topic records that cannot be converted or transformed are written to.",
        )
        .optional(
            DLQ_REPLICATION_FACTOR,
            ConfigType::Int,
            "3",
            "Replication factor of the dead letter queue topic when Sluice creates it.",
        )
        .check(positive)
        .optional(
            DLQ_CONTEXT_HEADERS,
            ConfigType::Boolean,
            "false",
            "Whether dead letters carry __connect.errors.* headers saying where they came from and why.",
        )
}

/// Extra keys of sink connectors.
pub fn sink_config_def() -> ConfigDef {
    dead_letter_queue_def()
        .optional(
            PUT_FLUSH_LIMIT,
            ConfigType::Long,
            "600000",
            "How long a sink task's put or flush may run while the runtime keeps the task in its group: it polls with the task's partitions paused, so a call longer than max.poll.interval.ms costs no rebalance. A call that runs longer is reported in the log and the status, and the task stops polling, so the group hands its partitions to other tasks after max.poll.interval.ms.",
        )
        .check(positive)
        .optional(TOPICS, ConfigType::List, "", "Topics to consume.")
        .optional(
            TOPICS_REGEX,
            ConfigType::String,
            "",
            "Regular expression of topics to consume.",
        )
        .check(|v| {
            regex::Regex::new(v)
                .map(drop)
                .map_err(|e| format!("not a regular expression: {e}"))
        })
}

/// Extra keys of source connectors (KIP-158 topic creation, default group only; KIP-618 exactly once;
/// the dead letter queue).
pub fn source_config_def() -> ConfigDef {
    dead_letter_queue_def()
        .optional(
            EXACTLY_ONCE_SUPPORT,
            ConfigType::String,
            "requested",
            "required refuses to start unless the worker runs exactly once and the connector says it can.",
        )
        .check(|v| match v {
            "requested" | "required" => Ok(()),
            _ => Err("must be requested or required".into()),
        })
        .optional(
            TRANSACTION_BOUNDARY,
            ConfigType::String,
            "poll",
            "With exactly-once source support: poll commits a transaction per poll, interval every transaction.boundary.interval.ms.",
        )
        .check(|v| match v {
            "poll" | "interval" => Ok(()),
            "connector" => Err("connector-defined transaction boundaries are not supported; use poll or interval".into()),
            _ => Err("must be poll or interval".into()),
        })
        .optional(
            TRANSACTION_BOUNDARY_INTERVAL,
            ConfigType::Long,
            "-1",
            "Milliseconds between transaction commits with transaction.boundary=interval; -1 uses offset.flush.interval.ms.",
        )
        .check(|v| match v.parse::<i64>() {
            Ok(n) if n > 0 || n == -1 => Ok(()),
            _ => Err("must be a positive number of milliseconds, or -1".into()),
        })
        .optional(
            TOPIC_CREATION_PARTITIONS,
            ConfigType::Int,
            "-1",
            "Partitions of topics this connector creates; -1 leaves creation to the broker.",
        )
        .optional(
            TOPIC_CREATION_REPLICATION,
            ConfigType::Int,
            "-1",
            "Replication factor of topics this connector creates; -1 uses the broker's default.",
        )
}

/// A connector's validated common config, with the worker's defaults resolved.
#[derive(Clone)]
pub struct ConnectorConfig {
    parsed: ParsedConfig,
    pub key_converter: Arc<dyn Converter>,
    pub value_converter: Arc<dyn Converter>,
    /// `header.converter`: the connector's, or the worker's.
    pub header_converter: HeaderConverter,
    /// The `transforms=` chain, applied to every record before it is converted (sources) or after
    /// (sinks).
    pub transforms: Arc<TransformChain>,
    offset_flush_interval: Duration,
    max_poll_records: usize,
    max_poll_interval: Duration,
    put_flush_limit: Duration,
    /// `errors.retry.*` and `errors.log.*`, read once: the record loops ask for them per record.
    retry_policy: RetryPolicy,
    error_log: ErrorLog,
}

impl ConnectorConfig {
    /// Validates the common keys (`extra` adds the sink or source keys) and builds the converters
    /// (the connector's own `key.converter` / `value.converter` if it sets one, the worker's otherwise)
    /// and the transforms, from the classes `plugins` knows. Every wrong key is named.
    pub fn parse(
        props: &ConfigMap,
        extra: &ConfigDef,
        worker: &WorkerConfig,
        plugins: &PluginRegistry,
    ) -> Result<ConnectorConfig, ConfigError> {
        let parsed = connector_config_def().merge(extra).parse(props);
        let transforms = TransformChain::from_config(props, plugins);
        let (parsed, transforms) = match (parsed, transforms) {
            (Ok(parsed), Ok(transforms)) => (parsed, transforms),
            (parsed, transforms) => {
                let mut issues = Vec::new();
                issues.extend(parsed.err().into_iter().flat_map(|e| e.issues));
                issues.extend(transforms.err().into_iter().flat_map(|e| e.issues));
                return Err(ConfigError { issues });
            }
        };
        let retry_policy = RetryPolicy::new(
            parsed.long(ERRORS_RETRY_TIMEOUT),
            parsed.long(ERRORS_RETRY_DELAY_MAX),
        );
        let error_log = ErrorLog {
            each: parsed.boolean(ERRORS_LOG_ENABLE),
            include_messages: parsed.boolean(ERRORS_LOG_INCLUDE_MESSAGES),
        };
        // A source has no such key: the default is never used.
        let put_flush_limit = parsed
            .get(PUT_FLUSH_LIMIT)
            .and_then(|v| v.parse().ok())
            .map_or(DEFAULT_PUT_FLUSH_LIMIT, Duration::from_millis);
        let key_converter = converter_for(KEY_CONVERTER, props, worker, true)?;
        let value_converter = converter_for(VALUE_CONVERTER, props, worker, false)?;
        let header_class = props
            .get(HEADER_CONVERTER)
            .or_else(|| worker.props().get(HEADER_CONVERTER))
            .map_or("", String::as_str);
        let header_converter = HeaderConverter::from_config(HEADER_CONVERTER, header_class)?;
        let key = format!("producer.override.{MAX_REQUEST_SIZE}");
        check_max_request_size(&key, props.get(&key))?;
        Ok(ConnectorConfig {
            header_converter,
            parsed,
            key_converter,
            value_converter,
            transforms: Arc::new(transforms),
            offset_flush_interval: worker.offset_flush_interval(),
            max_poll_records: max_poll_records(props, worker)?,
            max_poll_interval: max_poll_interval(props, worker)?,
            put_flush_limit,
            retry_policy,
            error_log,
        })
    }

    pub fn name(&self) -> &str {
        self.parsed.string(NAME)
    }

    pub fn class(&self) -> &str {
        self.parsed.string(CONNECTOR_CLASS)
    }

    pub fn tasks_max(&self) -> usize {
        usize::try_from(self.parsed.int(TASKS_MAX)).unwrap_or(1)
    }

    pub fn props(&self) -> &ConfigMap {
        self.parsed.map()
    }

    /// With `task.restart.policy=on-failure`, how long before the restart of a task that failed for
    /// the `attempt`th time in a row (from 1): `task.restart.backoff.ms`, doubling, at most
    /// `task.restart.backoff.max.ms`. `None`: failed tasks stay failed.
    pub fn restart_backoff(&self, attempt: u32) -> Option<Duration> {
        if self.parsed.string(TASK_RESTART_POLICY) != "on-failure" {
            return None;
        }
        let first = u64::try_from(self.parsed.long(TASK_RESTART_BACKOFF)).unwrap_or(1);
        let max = u64::try_from(self.parsed.long(TASK_RESTART_BACKOFF_MAX)).unwrap_or(first);
        let doubled = first.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        Some(Duration::from_millis(doubled.min(max.max(first))))
    }

    /// The dead letter queue's topic, its replication factor and whether its records carry context
    /// headers: set with `errors.deadletterqueue.topic.name`.
    pub fn dead_letter_queue(&self) -> Option<(&str, i16, bool)> {
        let topic = self.parsed.get(DLQ_TOPIC).filter(|t| !t.is_empty())?;
        let replication =
            i16::try_from(self.parsed.int(DLQ_REPLICATION_FACTOR)).unwrap_or(i16::MAX);
        Some((topic, replication, self.parsed.boolean(DLQ_CONTEXT_HEADERS)))
    }

    /// How long a retriable failure is tried again (`errors.retry.*`).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry_policy
    }

    /// How skipped records are logged (`errors.log.*`).
    pub fn error_log(&self) -> ErrorLog {
        self.error_log
    }

    /// Whether bad records are skipped (`errors.tolerance=all`) rather than failing the task.
    pub fn tolerates_errors(&self) -> bool {
        self.parsed.string(ERRORS_TOLERANCE) == "all"
    }

    pub fn offset_flush_interval(&self) -> Duration {
        self.offset_flush_interval
    }

    /// Whether the connector demands exactly-once delivery (`exactly.once.support=required`).
    pub fn exactly_once_required(&self) -> bool {
        self.parsed.get(EXACTLY_ONCE_SUPPORT) == Some("required")
    }

    /// Where exactly-once transactions end (`transaction.boundary`).
    pub fn transaction_boundary(&self) -> TransactionBoundary {
        match self.parsed.get(TRANSACTION_BOUNDARY) {
            Some("interval") => TransactionBoundary::Interval(
                u64::try_from(self.parsed.long(TRANSACTION_BOUNDARY_INTERVAL))
                    .map(Duration::from_millis)
                    .unwrap_or(self.offset_flush_interval),
            ),
            _ => TransactionBoundary::Poll,
        }
    }

    /// The sink's subscription: exactly one of `topics` and `topics.regex` must be set.
    pub fn subscription(&self) -> Result<Subscription, ConfigError> {
        let topics = self.parsed.list(TOPICS);
        let regex = self.parsed.string(TOPICS_REGEX);
        match (topics.is_empty(), regex.is_empty()) {
            (false, true) => Ok(Subscription::Topics(topics)),
            (true, false) => Ok(Subscription::Pattern(regex.to_owned())),
            (false, false) => Err(ConfigError::single(
                TOPICS,
                "topics and topics.regex are mutually exclusive; set only one",
            )),
            (true, true) => Err(ConfigError::single(
                TOPICS,
                "a sink connector must set topics or topics.regex",
            )),
        }
    }

    /// The topic to create for `topic`, if this connector asks for topic creation.
    pub fn new_topic(&self, topic: &str) -> Option<NewTopic> {
        let partitions = self.parsed.int(TOPIC_CREATION_PARTITIONS);
        (partitions > 0).then(|| NewTopic {
            name: topic.to_owned(),
            partitions,
            replication_factor: i16::try_from(self.parsed.int(TOPIC_CREATION_REPLICATION))
                .ok()
                .filter(|rf| *rf > 0)
                .unwrap_or(1),
            config: strip_prefix(self.props(), "topic.creation.default.")
                .into_iter()
                .filter(|(k, _)| k != "partitions" && k != "replication.factor")
                .collect(),
        })
    }

    /// The connector's `producer.override.*` keys over the worker's `producer.*` keys, each with Kafka's
    /// `max.request.size` under librdkafka's name for it, `message.max.bytes` (so a connector's
    /// `max.request.size` overrides the worker's `message.max.bytes`).
    pub fn producer_settings(&self, worker: &WorkerConfig) -> ClientSettings {
        let mut settings = librdkafka_names(worker.producer_settings());
        settings.extend(librdkafka_names(strip_prefix(
            self.props(),
            "producer.override.",
        )));
        settings
    }

    /// The connector's `consumer.override.*` keys over the worker's `consumer.*` keys, but for
    /// `max.poll.records`, a Java client key that the runtime applies itself.
    pub fn consumer_settings(&self, worker: &WorkerConfig) -> ClientSettings {
        let mut settings = worker.consumer_settings();
        settings.extend(strip_prefix(self.props(), "consumer.override."));
        settings.remove(MAX_POLL_RECORDS);
        settings
    }

    /// The most records handed to one `put` of a sink task.
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }

    /// How long a sink task's `put` or `flush` may run while the task keeps its partitions.
    pub fn put_flush_limit(&self) -> Duration {
        self.put_flush_limit
    }

    /// The sink consumer's `max.poll.interval.ms`, which is also how long its group waits for it to
    /// rejoin in a rebalance.
    pub fn max_poll_interval(&self) -> Duration {
        self.max_poll_interval
    }
}

/// The connector's `consumer.override.max.poll.records`, else the worker's `consumer.max.poll.records`,
/// else Kafka's default.
fn max_poll_records(props: &ConfigMap, worker: &WorkerConfig) -> Result<usize, ConfigError> {
    let connector_key = format!("consumer.override.{MAX_POLL_RECORDS}");
    let (key, value) = match props.get(&connector_key) {
        Some(value) => (connector_key, value.clone()),
        None => match worker.consumer_settings().get(MAX_POLL_RECORDS) {
            Some(value) => (
                format!("consumer.{MAX_POLL_RECORDS} (worker)"),
                value.clone(),
            ),
            None => return Ok(DEFAULT_MAX_POLL_RECORDS),
        },
    };
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::single(key, format!("{value:?} is not a positive integer")))
}

/// One level's producer settings with `max.request.size` as `message.max.bytes`; an explicit
/// `message.max.bytes` of the same level wins.
fn librdkafka_names(mut settings: ClientSettings) -> ClientSettings {
    if let Some(size) = settings.remove(MAX_REQUEST_SIZE) {
        settings.entry(MESSAGE_MAX_BYTES.into()).or_insert(size);
    }
    settings
}

/// The consumer's `max.poll.interval.ms`: the connector's `consumer.override.`, the worker's `consumer.`, or
/// Kafka's default.
fn max_poll_interval(props: &ConfigMap, worker: &WorkerConfig) -> Result<Duration, ConfigError> {
    let connector_key = format!("consumer.override.{MAX_POLL_INTERVAL}");
    let (key, value) = match props.get(&connector_key) {
        Some(value) => (connector_key, value.clone()),
        None => match worker.consumer_settings().get(MAX_POLL_INTERVAL) {
            Some(value) => (
                format!("consumer.{MAX_POLL_INTERVAL} (worker)"),
                value.clone(),
            ),
            None => return Ok(DEFAULT_MAX_POLL_INTERVAL),
        },
    };
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| {
            ConfigError::single(
                key,
                format!("{value:?} is not a positive number of milliseconds"),
            )
        })
}

fn converter_for(
    key: &str,
    connector: &ConfigMap,
    worker: &WorkerConfig,
    is_key: bool,
) -> Result<Arc<dyn Converter>, ConfigError> {
    let source = if connector.contains_key(key) {
        connector
    } else {
        worker.props()
    };
    let class = source.get(key).map(String::as_str).unwrap_or_default();
    let settings = strip_prefix(source, &format!("{key}."));
    converter_from_config(key, class, &settings, is_key).map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::worker_config::OFFSET_STORAGE_FILE;

    fn worker(props: &[(&str, &str)]) -> WorkerConfig {
        let mut all = ConfigMap::from([(OFFSET_STORAGE_FILE.into(), "/tmp/o".into())]);
        all.extend(props.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        WorkerConfig::parse(&all).unwrap()
    }

    fn sink(props: &[(&str, &str)], worker: &WorkerConfig) -> Result<ConnectorConfig, ConfigError> {
        let mut all = ConfigMap::from([
            (NAME.into(), "copy".into()),
            (CONNECTOR_CLASS.into(), "FileStreamSink".into()),
            (TOPICS.into(), "lines".into()),
        ]);
        all.extend(props.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ConnectorConfig::parse(&all, &sink_config_def(), worker, &PluginRegistry::new())
    }

    #[test]
    fn max_poll_records_is_applied_by_the_runtime_not_passed_to_the_client() {
        let plain = worker(&[]);
        assert_eq!(sink(&[], &plain).unwrap().max_poll_records(), 500);

        let tuned = worker(&[
            ("consumer.max.poll.records", "2000"),
            ("consumer.fetch.min.bytes", "1"),
        ]);
        assert_eq!(sink(&[], &tuned).unwrap().max_poll_records(), 2000);
        let config = sink(&[("consumer.override.max.poll.records", "50")], &tuned).unwrap();
        assert_eq!(config.max_poll_records(), 50);
        let client = config.consumer_settings(&tuned);
        assert_eq!(client.get("fetch.min.bytes").map(String::as_str), Some("1"));
        assert!(!client.contains_key(MAX_POLL_RECORDS), "{client:?}");
    }

    #[test]
    fn max_request_size_reaches_the_producer_under_librdkafkas_name() {
        let tuned = worker(&[("producer.max.request.size", "2097152")]);
        let client = sink(&[], &tuned).unwrap().producer_settings(&tuned);
        assert_eq!(
            client.get(MESSAGE_MAX_BYTES).map(String::as_str),
            Some("2097152")
        );
        assert!(!client.contains_key(MAX_REQUEST_SIZE), "{client:?}");

        let config = sink(&[("producer.override.max.request.size", "4096")], &tuned).unwrap();
        let client = config.producer_settings(&tuned);
        assert_eq!(
            client.get(MESSAGE_MAX_BYTES).map(String::as_str),
            Some("4096")
        );

        let error = sink(&[("producer.override.max.request.size", "lots")], &tuned)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "producer.override.max.request.size: \"lots\" is not a positive number of bytes"
        );
        let mut bad_worker = ConfigMap::from([(OFFSET_STORAGE_FILE.into(), "/tmp/o".into())]);
        bad_worker.insert("producer.max.request.size".into(), "-1".into());
        let error = WorkerConfig::parse(&bad_worker).err().unwrap();
        assert_eq!(
            error.to_string(),
            "producer.max.request.size: \"-1\" is not a positive number of bytes"
        );

        let both = worker(&[
            ("producer.max.request.size", "2097152"),
            ("producer.message.max.bytes", "3000000"),
        ]);
        let client = sink(&[], &both).unwrap().producer_settings(&both);
        assert_eq!(
            client.get(MESSAGE_MAX_BYTES).map(String::as_str),
            Some("3000000")
        );
        // The connector's override beats the worker's setting, whichever name either uses.
        let config = sink(&[("producer.override.max.request.size", "4096")], &both).unwrap();
        let client = config.producer_settings(&both);
        assert_eq!(
            client.get(MESSAGE_MAX_BYTES).map(String::as_str),
            Some("4096")
        );
    }

    #[test]
    fn a_bad_max_poll_records_names_its_key() {
        let error = sink(&[("consumer.override.max.poll.records", "0")], &worker(&[]))
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "consumer.override.max.poll.records: \"0\" is not a positive integer"
        );
        let error = sink(&[], &worker(&[("consumer.max.poll.records", "many")]))
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "consumer.max.poll.records (worker): \"many\" is not a positive integer"
        );
    }
}
