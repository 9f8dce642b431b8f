//! The production Kafka backend, on librdkafka through the `rdkafka` crate. No rdkafka type leaves this
//! module: the runtime sees only the traits of [`crate::kafka`].

mod admin;
mod client_log;
mod consumer;
mod embedded;
mod producer;
mod producer_events;
mod reader;
mod signalled_queue;
mod topic_handles;
mod transactional;

pub use embedded::{Coordinated, EmbeddedBroker, RetriableProduceError};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

use self::admin::RdAdmin;
use self::consumer::RdGroupConsumer;
use self::producer::RdProducer;
use self::reader::RdLogReader;
use self::transactional::RdTransactionalProducer;
use crate::api::TopicPartition;
use crate::kafka::{
    Admin, ClientSettings, GroupConsumer, KafkaBackend, KafkaError, LogReader, ProducerHandle,
    Subscription, TransactionalHandle,
};

/// Producer settings Kafka Connect uses for source tasks, before the worker's `producer.*` overrides:
/// no record may be reordered or duplicated by retries.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// Consumer settings for sink tasks: the runtime commits, and a new group starts from the beginning of
/// the topics, as in Kafka Connect. The rest bound what librdkafka keeps fetched ahead, which is most of
/// a sink worker's memory: each waiting message is an op of about 500 bytes besides its share of the
/// fetch buffer. librdkafka prefetches until 100,000 messages wait by default; a task takes at most 500
/// records per poll (Kafka's `max.poll.records`), and 5,000 keep it fed. A fetch is sent only while
/// fewer wait, but its response may bring up to `fetch.max.bytes` (50 MB by default, 4 MB here) at once,
/// so that caps the overshoot. Once the queue was full librdkafka waits `fetch.queue.backoff.ms` (1 s by
/// default) before fetching again, which stalls a sink that drains its queue quickly: 5 ms here. With
/// 20,000 waiting messages a million-record sink ran about 20% faster and peaked 7 MB higher (the raw
/// consumer of `sluice bench` uses these settings too); an operator trades back with
/// `consumer.queued.min.messages`. A subscribed topic that does not exist yet (a sink started next to
/// the source that creates it) is only noticed at the next metadata refresh, every 5 minutes by
/// default: every 5 seconds here.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("fetch.queue.backoff.ms", "5"),
    ("queued.min.messages", "5000"),
    ("fetch.max.bytes", "4194304"),
    ("topic.metadata.refresh.interval.ms", "5000"),
];

/// Settings of a log reader: it assigns partitions itself and never commits; librdkafka still wants a
/// group id.
const LOG_READER_DEFAULTS: &[(&str, &str)] = &[
    ("group.id", "sluice-log-reader"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// Talks to the cluster at `bootstrap.servers`, or to an [`EmbeddedBroker`].
pub struct RdkafkaBackend {
    bootstrap_servers: String,
    /// Settings for every client (`security.protocol`, ...), under the client's own overrides.
    common: ClientSettings,
    embedded: Option<Arc<EmbeddedBroker>>,
    /// The worker's admin client, made when first asked for and shared by every caller (the offsets
    /// topic, topic creation, dead letter queues, the REST API's offsets), as Kafka Connect's
    /// `SharedTopicAdmin` is: they all use the worker's settings, and each admin is two librdkafka
    /// clients, with their threads and buffers.
    admin: Mutex<Option<Arc<RdAdmin>>>,
}

impl RdkafkaBackend {
    pub fn new(bootstrap_servers: impl Into<String>, common: ClientSettings) -> RdkafkaBackend {
        RdkafkaBackend {
            bootstrap_servers: bootstrap_servers.into(),
            common,
            embedded: None,
            admin: Mutex::new(None),
        }
    }

    /// A backend for an embedded broker; topics are created through the broker itself.
    pub fn embedded(broker: Arc<EmbeddedBroker>) -> RdkafkaBackend {
        RdkafkaBackend {
            bootstrap_servers: broker.bootstrap_servers().to_owned(),
            common: ClientSettings::new(),
            embedded: Some(broker),
            admin: Mutex::new(None),
        }
    }

    fn client_config(
        &self,
        defaults: &[(&str, &str)],
        settings: &ClientSettings,
    ) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in self.common.iter().chain(settings) {
            config.set(k, v);
        }
        config
    }
}

impl KafkaBackend for RdkafkaBackend {
    fn producer(&self, settings: &ClientSettings) -> Result<ProducerHandle, KafkaError> {
        let config = self.client_config(PRODUCER_DEFAULTS, settings);
        let (producer, deliveries) = RdProducer::new(&config)?;
        Ok(ProducerHandle {
            producer: Box::new(producer),
            deliveries,
        })
    }

    fn group_consumer(
        &self,
        settings: &ClientSettings,
        group: &str,
        subscription: &Subscription,
    ) -> Result<Box<dyn GroupConsumer>, KafkaError> {
        let mut config = self.client_config(CONSUMER_DEFAULTS, settings);
        config.set("group.id", group);
        let topics = match subscription {
            Subscription::Topics(topics) => topics.clone(),
            // librdkafka treats a subscription starting with '^' as a regular expression; Kafka's
            // topics.regex must match the whole topic name.
            Subscription::Pattern(regex) => vec![format!("^({regex})$")],
        };
        Ok(Box::new(RdGroupConsumer::new(&config, &topics)?))
    }

    fn admin(&self) -> Result<Arc<dyn Admin>, KafkaError> {
        let mut shared = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(admin) = &*shared {
            return Ok(admin.clone());
        }
        let config = self.client_config(&[], &ClientSettings::new());
        let admin = Arc::new(RdAdmin::new(&config, self.embedded.clone())?);
        *shared = Some(admin.clone());
        Ok(admin)
    }

    fn transactional_producer(
        &self,
        settings: &ClientSettings,
        transactional_id: &str,
    ) -> Result<TransactionalHandle, KafkaError> {
        let mut config = self.client_config(PRODUCER_DEFAULTS, settings);
        config.set("transactional.id", transactional_id);
        let (producer, deliveries) = RdProducer::new(&config)?;
        Ok(TransactionalHandle {
            producer: Box::new(RdTransactionalProducer::new(
                producer,
                self.client_config(&[], &ClientSettings::new()),
            )),
            deliveries,
        })
    }

    fn log_reader(&self, settings: &ClientSettings) -> Result<Box<dyn LogReader>, KafkaError> {
        let config = self.client_config(LOG_READER_DEFAULTS, settings);
        Ok(Box::new(RdLogReader::new(&config)?))
    }

    fn describe(&self) -> String {
        match self.embedded {
            Some(_) => format!("embedded broker at {}", self.bootstrap_servers),
            None => self.bootstrap_servers.clone(),
        }
    }
}

/// A message's timestamp, as a consumed record or a delivery report carries it; `None` when
/// librdkafka has none.
///
/// # Safety
/// `message` must point to a live message.
unsafe fn message_timestamp(message: *const rdkafka::bindings::rd_kafka_message_t) -> Option<i64> {
    use rdkafka::bindings::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    let mut kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    // SAFETY: the message is alive per the caller.
    let timestamp = unsafe { rdkafka::bindings::rd_kafka_message_timestamp(message, &mut kind) };
    (timestamp != -1 && kind != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE).then_some(timestamp)
}

/// librdkafka's error in the seam's terms.
fn rd_error(error: &RdError) -> KafkaError {
    match error {
        RdError::ClientConfig(_, message, key, _) => KafkaError::Config {
            key: key.clone(),
            message: message.clone(),
        },
        e if matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        ) =>
        {
            KafkaError::ProducerFenced(e.to_string())
        }
        e if e.rdkafka_error_code() == Some(RDKafkaErrorCode::OperationTimedOut)
            || e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut) =>
        {
            KafkaError::Timeout(e.to_string())
        }
        e => KafkaError::Backend(e.to_string()),
    }
}

/// Runs a blocking librdkafka call (sync commit, flush, leaving the group) off the async threads, and
/// gives up waiting after `limit`: some of them (a sync commit, leaving the group) have no timeout of
/// their own and would otherwise hang a task, and the process's exit, while Kafka is unreachable.
/// Runs a librdkafka call that may never return (destroying a client: librdkafka now and then waits
/// forever for a group that is gone) on a thread of its own, detached: a runtime shutting down waits
/// for its blocking tasks, but not for this thread. The call's thread is leaked if it hangs.
async fn detached<F>(limit: Duration, call: F) -> Result<(), KafkaError>
where
    F: FnOnce() + Send + 'static,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    // The production backend never runs simulated.
    #[allow(clippy::disallowed_methods)]
    std::thread::Builder::new()
        .name("sluice-rdkafka-close".into())
        .spawn(move || {
            call();
            let _ = done.send(());
        })
        .map_err(|e| KafkaError::Backend(format!("cannot start a thread: {e}")))?;
    match tokio::time::timeout(limit, finished).await {
        Ok(_) => Ok(()),
        Err(_) => Err(KafkaError::Timeout(format!(
            "Kafka did not answer within {limit:?}"
        ))),
    }
}

/// Each partition's watermarks, `(low, high)`: its log start and its end.
async fn watermarks<C: ConsumerContext + 'static>(
    consumer: &Arc<BaseConsumer<C>>,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, (i64, i64)>, KafkaError> {
    let mut found = BTreeMap::new();
    for p in partitions {
        let consumer = consumer.clone();
        let (topic, partition) = (p.topic.clone(), p.partition);
        let marks = blocking(timeout * 2, move || {
            consumer.fetch_watermarks(&topic, partition, timeout)
        })
        .await?
        .map_err(|e| rd_error(&e))?;
        found.insert(p.clone(), marks);
    }
    Ok(found)
}

async fn blocking<T, F>(limit: Duration, call: F) -> Result<T, KafkaError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // librdkafka's synchronous calls block their thread; the production backend never runs simulated.
    #[allow(clippy::disallowed_methods)]
    let handle = tokio::task::spawn_blocking(call);
    match tokio::time::timeout(limit, handle).await {
        Ok(joined) => {
            joined.map_err(|e| KafkaError::Backend(format!("blocking Kafka call failed: {e}")))
        }
        Err(_) => Err(KafkaError::Timeout(format!(
            "Kafka did not answer within {limit:?}"
        ))),
    }
}
