//! The rdkafka log reader behind [`LogReader`]: a consumer that assigns partitions from their beginning
//! and reads up to the end offsets it saw when it started, outside any group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::client_log::ClientLog;
use super::{blocking, rd_error};
use crate::api::TopicPartition;
use crate::kafka::{ConsumedRecord, KafkaError, KafkaHeader, LogReader};

/// How long a poll waits for a message when none is ready. Short: the last poll of a transactional
/// partition finds only its commit marker, which librdkafka takes without returning a message, and
/// waits out the whole of this before the position shows the partition read to its end.
const POLL_WAIT: Duration = Duration::from_millis(10);
/// At most this many messages are read in one blocking call, between two looks at the positions.
const BATCH: usize = 10_000;

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
            let (low, high) = blocking(timeout, move || {
                consumer.fetch_watermarks(&topic, partition, timeout)
            })
            .await?
            .map_err(|e| rd_error(&e))?;
            // A partition with nothing left to read (never written, or every record deleted by
            // retention) is read to its end already: a consumer would find no message to move it.
            if high > low {
                ends.insert((tp.topic.clone(), tp.partition), high);
            }
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
        loop {
            // A read_committed consumer moves past control markers without returning them, so the
            // consumer's positions, not the last message's offset, say where a partition is.
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
            let unfinished = ends
                .iter()
                .any(|(tp, end)| positions.get(tp).copied().unwrap_or(0) < *end);
            if !unfinished {
                break;
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(format!(
                    "partitions not read to their end within {timeout:?}"
                )));
            }
            let consumer = self.consumer.clone();
            let left = deadline.saturating_duration_since(Instant::now()) + POLL_WAIT;
            let batch = blocking(left, move || read_batch(&consumer)).await??;
            for record in batch {
                let tp = (record.topic.to_string(), record.partition);
                // A batch may run past the end offsets seen at the start (records written since):
                // those are not read.
                let before_end = ends.get(&tp).is_some_and(|end| record.offset < *end);
                positions.insert(tp, record.offset + 1);
                if before_end {
                    out.push(record);
                }
            }
        }
        self.consumer.unassign().map_err(|e| rd_error(&e))?;
        Ok(out)
    }
}

/// The records ready now, up to [`BATCH`]; if none is, waits up to [`POLL_WAIT`] for the first.
fn read_batch(consumer: &BaseConsumer<ClientLog>) -> Result<Vec<ConsumedRecord>, KafkaError> {
    let mut batch = Vec::new();
    let mut wait = POLL_WAIT;
    while batch.len() < BATCH {
        match consumer.poll(wait) {
            Some(Ok(message)) => batch.push(consumed(&message)),
            Some(Err(e)) => return Err(rd_error(&e)),
            None => break,
        }
        wait = Duration::ZERO;
    }
    Ok(batch)
}

/// A message read, copied out as the runtime's record.
fn consumed(message: &BorrowedMessage<'_>) -> ConsumedRecord {
    ConsumedRecord {
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
    }
}
