//! A pipelined connection to the broker, as the producer uses one: requests are written as they are
//! made, several may wait for their answers at once, and the answers come back in request order (the
//! broker serves a connection's requests in order). A task of its own reads the answers, so waiting for
//! the next one can be given up (in a `select!`) without losing a half-read frame.

use std::time::Duration;

use sluice_core::kafka::KafkaError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use turmoil::net::tcp::OwnedWriteHalf;
use turmoil::net::TcpStream;

use crate::protocol::{read_frame, write_frame, Request, Response};

pub struct Pipeline {
    write: OwnedWriteHalf,
    answers: mpsc::UnboundedReceiver<Response>,
    reader: JoinHandle<()>,
}

impl Pipeline {
    /// Connects to `broker`, waiting at most `timeout`.
    pub async fn connect(broker: &str, timeout: Duration) -> Result<Pipeline, KafkaError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(broker))
            .await
            .map_err(|_| broken(broker, "connection timed out"))?
            .map_err(|e| broken(broker, e))?;
        let (mut read, write) = stream.into_split();
        let (answered, answers) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Ok(Some(response)) = read_frame::<_, Response>(&mut read).await {
                if answered.send(response).is_err() {
                    return;
                }
            }
        });
        Ok(Pipeline {
            write,
            answers,
            reader,
        })
    }

    /// Writes a request; its answer comes from [`Pipeline::answer`] after those of the requests before it.
    pub async fn send(&mut self, request: &Request) -> Result<(), KafkaError> {
        write_frame(&mut self.write, request)
            .await
            .map_err(|e| KafkaError::Backend(format!("cannot send to the broker: {e}")))
    }

    /// The answer to the oldest unanswered request; `None` once the connection is broken.
    pub async fn answer(&mut self) -> Option<Response> {
        self.answers.recv().await
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
