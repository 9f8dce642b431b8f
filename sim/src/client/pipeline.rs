//! A pipelined connection to a broker, as the producer keeps one to each partition leader: requests are
//! written as they are made, several may wait for their answers at once, and the answers come back in
//! request order (the broker serves a connection's requests in order). A task of its own reads the
//! answers into a channel the producer shares among its connections, each answer tagged with its
//! connection's id, so waiting for the next one can be given up (in a `select!`) without losing a
//! half-read frame.

use std::time::Duration;

use sluice_core::kafka::KafkaError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use turmoil::net::tcp::OwnedWriteHalf;
use turmoil::net::TcpStream;

use crate::protocol::{read_frame, write_frame, Request, Response};

/// An answer on connection `.0`: the response to its oldest unanswered request, or `None` once the
/// connection is broken.
pub type Answer = (u64, Option<Response>);

pub struct Pipeline {
    write: OwnedWriteHalf,
    reader: JoinHandle<()>,
}

impl Pipeline {
    /// Connects to `broker`, waiting at most `timeout`; answers go to `answered`, tagged with `id`.
    pub async fn connect(
        broker: &str,
        timeout: Duration,
        id: u64,
        answered: mpsc::UnboundedSender<Answer>,
    ) -> Result<Pipeline, KafkaError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(broker))
            .await
            .map_err(|_| broken(broker, "connection timed out"))?
            .map_err(|e| broken(broker, e))?;
        let (mut read, write) = stream.into_split();
        let reader = tokio::spawn(async move {
            while let Ok(Some(response)) = read_frame::<_, Response>(&mut read).await {
                if answered.send((id, Some(response))).is_err() {
                    return;
                }
            }
            let _ = answered.send((id, None));
        });
        Ok(Pipeline { write, reader })
    }

    /// Writes a request; its answer comes after those of the requests before it.
    pub async fn send(&mut self, request: &Request) -> Result<(), KafkaError> {
        write_frame(&mut self.write, request)
            .await
            .map_err(|e| KafkaError::Backend(format!("cannot send to the broker: {e}")))
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn broken(broker: &str, reason: impl std::fmt::Display) -> KafkaError {
    KafkaError::Backend(format!("broker {broker}: {reason}"))
}
