//! The embedded broker: librdkafka's mock cluster, a real Kafka-protocol broker on 127.0.0.1 that lives in
//! this process, so Sluice runs with nothing installed.
//!
//! The mock cluster is not `Send`, so it lives on a thread of its own; topic creation (which its admin
//! API cannot do), network faults and leader and coordinator moves are sent to that thread over a
//! channel.

use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::thread;

use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::kafka::KafkaError;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        reply: std_mpsc::Sender<Result<(), KafkaError>>,
    },
    SetReachable {
        reachable: bool,
        reply: std_mpsc::Sender<Result<(), KafkaError>>,
    },
    ProduceErrors {
        errors: Option<(RetriableProduceError, usize)>,
        reply: std_mpsc::Sender<()>,
    },
    MoveLeader {
        topic: String,
        partition: i32,
        broker: i32,
        reply: std_mpsc::Sender<Result<(), KafkaError>>,
    },
    MoveCoordinator {
        coordinated: Coordinated,
        broker: i32,
        reply: std_mpsc::Sender<Result<(), KafkaError>>,
    },
    Stop,
}

/// What a coordinator coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordinated {
    /// A consumer group, by group id.
    Group(String),
    /// A transactional producer, by transactional id.
    Transaction(String),
}

/// A retriable error the embedded broker can answer produce requests with, to test a producer's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetriableProduceError {
    /// `NOT_LEADER_OR_FOLLOWER`.
    NotLeaderOrFollower,
    /// `REQUEST_TIMED_OUT` (the mock cluster appends nothing before answering with it).
    RequestTimedOut,
}

/// A running embedded broker. Dropping it stops the broker.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    commands: Mutex<std_mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a mock cluster of `brokers` brokers and waits until it listens.
    pub fn start(brokers: i32) -> Result<EmbeddedBroker, KafkaError> {
        let (commands, inbox) = std_mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        // The mock cluster is not Send: it must be created and used on one thread.
        #[allow(clippy::disallowed_methods)]
        let thread = thread::Builder::new()
            .name("sluice-embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::<DefaultProducerContext>::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready_tx.send(Err(KafkaError::Backend(format!(
                            "cannot start the embedded broker: {e}"
                        ))));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok(command) = inbox.recv() {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            replication_factor,
                            reply,
                        } => {
                            let result = cluster
                                .create_topic(&name, partitions, replication_factor)
                                .map_err(|e| {
                                    KafkaError::Backend(format!("cannot create topic {name}: {e}"))
                                });
                            let _ = reply.send(result);
                        }
                        Command::SetReachable { reachable, reply } => {
                            // -1: every broker of the cluster.
                            let result = match reachable {
                                true => cluster.broker_up(-1),
                                false => cluster.broker_down(-1),
                            };
                            let _ = reply.send(result.map_err(|e| {
                                KafkaError::Backend(format!(
                                    "cannot set the brokers up or down: {e}"
                                ))
                            }));
                        }
                        Command::ProduceErrors { errors, reply } => {
                            match errors {
                                Some((error, count)) => {
                                    let code = match error {
                                        RetriableProduceError::NotLeaderOrFollower => {
                                            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
                                        }
                                        RetriableProduceError::RequestTimedOut => {
                                            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT
                                        }
                                    };
                                    cluster.request_errors(
                                        RDKafkaApiKey::Produce,
                                        &vec![code; count],
                                    );
                                }
                                None => cluster.clear_request_errors(RDKafkaApiKey::Produce),
                            }
                            let _ = reply.send(());
                        }
                        Command::MoveLeader {
                            topic,
                            partition,
                            broker,
                            reply,
                        } => {
                            let result = cluster
                                .partition_leader(&topic, partition, Some(broker))
                                .map_err(|e| {
                                    KafkaError::Backend(format!(
                                        "cannot move the leader of {topic}-{partition} to broker {broker}: {e}"
                                    ))
                                });
                            let _ = reply.send(result);
                        }
                        Command::MoveCoordinator {
                            coordinated,
                            broker,
                            reply,
                        } => {
                            let described = format!("{coordinated:?}");
                            let coordinator = match coordinated {
                                Coordinated::Group(id) => MockCoordinator::Group(id),
                                Coordinated::Transaction(id) => MockCoordinator::Transaction(id),
                            };
                            let result = cluster.coordinator(coordinator, broker).map_err(|e| {
                                KafkaError::Backend(format!(
                                    "cannot move the coordinator of {described} to broker {broker}: {e}"
                                ))
                            });
                            let _ = reply.send(result);
                        }
                        Command::Stop => break,
                    }
                }
            })
            .map_err(|e| KafkaError::Backend(format!("cannot start the embedded broker: {e}")))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| KafkaError::Backend("the embedded broker thread died".into()))??;
        Ok(EmbeddedBroker {
            bootstrap_servers,
            commands: Mutex::new(commands),
            thread: Some(thread),
        })
    }

    /// `host:port,...` of the broker's listeners.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates a topic on the mock cluster (it accepts an existing name and keeps the topic as it is).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<(), KafkaError> {
        self.call(|reply| Command::CreateTopic {
            name: name.to_owned(),
            partitions,
            replication_factor,
            reply,
        })
    }

    /// Cuts the brokers off from every client (their connections are closed and new ones refused), or
    /// lets clients connect again: a network fault for tests of what clients do without a broker.
    pub fn set_reachable(&self, reachable: bool) -> Result<(), KafkaError> {
        self.call(|reply| Command::SetReachable { reachable, reply })
    }

    /// Makes broker `broker` (ids count from 1) the leader of a partition, as a reassignment or an
    /// election does: requests to the old leader are refused with NOT_LEADER_OR_FOLLOWER.
    pub fn move_leader(&self, topic: &str, partition: i32, broker: i32) -> Result<(), KafkaError> {
        self.call(|reply| Command::MoveLeader {
            topic: topic.to_owned(),
            partition,
            broker,
            reply,
        })
    }

    /// Makes broker `broker` (ids count from 1) the coordinator of a group or transactional id:
    /// requests to the old one are refused with NOT_COORDINATOR.
    pub fn move_coordinator(
        &self,
        coordinated: Coordinated,
        broker: i32,
    ) -> Result<(), KafkaError> {
        self.call(|reply| Command::MoveCoordinator {
            coordinated,
            broker,
            reply,
        })
    }

    /// Sends a command to the broker's thread and waits for its reply.
    fn call(
        &self,
        command: impl FnOnce(std_mpsc::Sender<Result<(), KafkaError>>) -> Command,
    ) -> Result<(), KafkaError> {
        let (reply, answer) = std_mpsc::channel();
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(command(reply))
            .map_err(|_| KafkaError::Backend("the embedded broker has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| KafkaError::Backend("the embedded broker has stopped".into()))?
    }
}

impl EmbeddedBroker {
    /// Answers the next `count` produce requests with `error` (tests of a producer's retries and
    /// delivery timeout).
    pub fn fail_produce_requests(
        &self,
        error: RetriableProduceError,
        count: usize,
    ) -> Result<(), KafkaError> {
        self.produce_errors(Some((error, count)))
    }

    /// Answers produce requests normally again.
    pub fn clear_produce_errors(&self) -> Result<(), KafkaError> {
        self.produce_errors(None)
    }

    fn produce_errors(
        &self,
        errors: Option<(RetriableProduceError, usize)>,
    ) -> Result<(), KafkaError> {
        let (reply, answer) = std_mpsc::channel();
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Command::ProduceErrors { errors, reply })
            .map_err(|_| KafkaError::Backend("the embedded broker has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| KafkaError::Backend("the embedded broker has stopped".into()))
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
