//! The simulated implementation of `sluice-core`'s Kafka seam: clients that talk to the simulated broker
//! over `turmoil::net`, so the runtime and connectors run unchanged inside the simulation.

mod admin;
mod assignor;
mod connection;
mod consumer;
mod fetcher;
mod heartbeat;
mod join;
mod membership;
mod pipeline;
mod producer;
mod reader;
mod routing;
mod settings;
mod transactions;

pub use admin::SimAdmin;
pub use consumer::SimGroupConsumer;
pub use producer::SimProducer;

use std::sync::Arc;
use std::time::Duration;

use sluice_core::kafka::{
    Admin, ClientSettings, ConsumedRecord, GroupConsumer, KafkaBackend, KafkaError, KafkaHeader,
    LogReader, ProducerHandle, Subscription, TransactionalHandle,
};

use crate::protocol::FetchedRecord;

/// A record read back from the broker, as the runtime gets it (`topic`: its topic's shared name;
/// `with_headers`: false for a reader told to skip them).
fn consumed(fetched: FetchedRecord, topic: Arc<str>, with_headers: bool) -> ConsumedRecord {
    let headers = if with_headers {
        fetched
            .record
            .headers
            .into_iter()
            .map(|(key, value)| KafkaHeader { key, value })
            .collect()
    } else {
        Vec::new()
    };
    ConsumedRecord {
        topic,
        partition: fetched.tp.partition,
        offset: fetched.offset,
        key: fetched.record.key,
        value: fetched.record.value,
        headers,
        timestamp: Some(fetched.record.timestamp),
    }
}

/// Clients of the simulated cluster reached through `broker` (`bootstrap.servers`: comma-separated
/// `host:port`s, turmoil host names).
pub struct SimBackend {
    broker: String,
}

impl SimBackend {
    pub fn new(bootstrap: impl Into<String>) -> SimBackend {
        SimBackend {
            broker: bootstrap.into(),
        }
    }
}

impl KafkaBackend for SimBackend {
    fn producer(&self, settings: &ClientSettings) -> Result<ProducerHandle, KafkaError> {
        SimProducer::start(&self.broker, settings)
    }

    fn group_consumer(
        &self,
        settings: &ClientSettings,
        group: &str,
        subscription: &Subscription,
    ) -> Result<Box<dyn GroupConsumer>, KafkaError> {
        Ok(Box::new(SimGroupConsumer::new(
            &self.broker,
            settings,
            group,
            subscription,
        )?))
    }

    fn admin(&self) -> Result<Arc<dyn Admin>, KafkaError> {
        Ok(Arc::new(SimAdmin::new(
            &self.broker,
            Duration::from_secs(30),
        )))
    }

    fn transactional_producer(
        &self,
        settings: &ClientSettings,
        transactional_id: &str,
    ) -> Result<TransactionalHandle, KafkaError> {
        SimProducer::start_transactional(&self.broker, settings, transactional_id)
    }

    fn log_reader(&self, settings: &ClientSettings) -> Result<Box<dyn LogReader>, KafkaError> {
        Ok(Box::new(reader::SimLogReader::new(&self.broker, settings)?))
    }

    fn describe(&self) -> String {
        format!("simulated broker at {}", self.broker)
    }
}
