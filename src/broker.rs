//! `sluice broker`: the embedded Kafka-protocol broker on its own, for other clients (kcat, tests).

use sluice_core::kafka::rdkafka::EmbeddedBroker;
use sluice_core::kafka::KafkaError;

use crate::signals;

/// Arguments of `sluice broker`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of brokers in the cluster.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topics to create first, as NAME or NAME:PARTITIONS (repeatable).
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    topics: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "--topic {0:?}: expected NAME or NAME:PARTITIONS with a positive number of partitions"
    )]
    Topic(String),
}

pub async fn run(args: Args) -> Result<(), BrokerError> {
    let topics = args
        .topics
        .iter()
        .map(|spec| parse_topic(spec).ok_or_else(|| BrokerError::Topic(spec.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let broker = EmbeddedBroker::start(args.brokers)?;
    for (name, partitions) in &topics {
        broker.create_topic(name, *partitions, 1)?;
    }
    println!("{}", broker.bootstrap_servers());
    tracing::info!(
        bootstrap_servers = broker.bootstrap_servers(),
        "embedded broker running; Ctrl-C stops it"
    );
    signals::terminated().await;
    Ok(())
}

fn parse_topic(spec: &str) -> Option<(String, i32)> {
    let (name, partitions) = match spec.split_once(':') {
        Some((name, n)) => (name, n.parse().ok().filter(|n: &i32| *n > 0)?),
        None => (spec, 1),
    };
    (!name.is_empty()).then(|| (name.to_owned(), partitions))
}
