//! The rdkafka log reader behind [`LogReader`]: a consumer that assigns partitions from their beginning
//! and reads up to the end offsets it saw when it started, outside any group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::client_log::ClientLog;
use super::{blocking, rd_error};
use crate::api::TopicPartition;
use crate::kafka::{ConsumedRecord, KafkaError, KafkaHeader, LogReader};

/// How long one poll waits for a message.
const POLL_WAIT: Duration = Duration::from_millis(100);

pub(super) struct RdLogReader {
    consumer: Arc<BaseConsumer<ClientLog>>,
}

impl RdLogReader {
    pub(super) fn new(config: &rdkafka::ClientConfig) -> Result<RdLogReader, KafkaError> {
        Ok(RdLogReader {
            consumer: Arc::new(
                config
                    .create_with_context(ClientLog)
                    .map_err(|e| rd_error(&e))?,
            ),
        })
    }
}

#[async_trait]
impl LogReader for RdLogReader {
    async fn read_to_end(
        &mut self,
        partitions: &[TopicPartition],
        timeout: Duration,
    ) -> Result<Vec<ConsumedRecord>, KafkaError> {
        let deadline = Instant::now() + timeout;
        let mut ends = BTreeMap::new();
        for tp in partitions {
            let (consumer, topic, partition) =
                (self.consumer.clone(), tp.topic.clone(), tp.partition);
            let (_, high) = blocking(timeout, move || {
                consumer.fetch_watermarks(&topic, partition, timeout)
            })
            .await?
            .map_err(|e| rd_error(&e))?;
            ends.insert((tp.topic.clone(), tp.partition), high);
        }
        let mut assignment = TopicPartitionList::new();
        for tp in partitions {
            assignment
                .add_partition_offset(&tp.topic, tp.partition, Offset::Beginning)
                .map_err(|e| rd_error(&e))?;
        }
        self.consumer
            .assign(&assignment)
            .map_err(|e| rd_error(&e))?;
        let mut positions: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let mut out = Vec::new();
        let unfinished = |positions: &BTreeMap<(String, i32), i64>| {
            ends.iter()
                .any(|(tp, end)| *end > 0 && positions.get(tp).copied().unwrap_or(0) < *end)
        };
        while unfinished(&positions) {
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(format!(
                    "partitions not read to their end within {timeout:?}"
                )));
            }
            let consumer = self.consumer.clone();
            let polled = blocking(POLL_WAIT * 2, move || {
                consumer.poll(POLL_WAIT).map(|m| m.map(|m| m.detach()))
            })
            .await?;
            match polled {
                Some(Ok(message)) => {
                    positions.insert(
                        (message.topic().to_owned(), message.partition()),
                        message.offset() + 1,
                    );
                    out.push(ConsumedRecord {
                        topic: message.topic().into(),
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                        headers: message
                            .headers()
                            .map(|headers| {
                                headers
                                    .iter()
                                    .map(|h| KafkaHeader {
                                        key: h.key.to_owned(),
                                        value: h.value.map(<[u8]>::to_vec),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        timestamp: message.timestamp().to_millis(),
                    });
                }
                Some(Err(e)) => return Err(rd_error(&e)),
                None => {}
            }
            // A read_committed consumer moves past control markers without returning them.
            if let Ok(list) = self.consumer.position() {
                for element in list.elements() {
                    if let Offset::Offset(next) = element.offset() {
                        let position = positions
                            .entry((element.topic().to_owned(), element.partition()))
                            .or_insert(0);
                        *position = (*position).max(next);
                    }
                }
            }
        }
        self.consumer.unassign().map_err(|e| rd_error(&e))?;
        Ok(out)
    }
}
