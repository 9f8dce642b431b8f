//! One client connection to the simulated broker: request, response, reconnect.
//!
//! A call takes the stream out of its slot for the duration of the request, so a call that times out or is
//! cancelled (its future dropped mid-request) drops the connection instead of leaving an unread response
//! on it; the next call connects again.

use std::time::Duration;

use sluice_core::kafka::KafkaError;
use tokio::sync::Mutex;
use turmoil::net::TcpStream;

use crate::protocol::{read_frame, write_frame, ErrorCode, Request, Response};

pub struct Connection {
    broker: String,
    request_timeout: Duration,
    stream: Mutex<Option<TcpStream>>,
}

impl Connection {
    pub fn new(broker: &str, request_timeout: Duration) -> Connection {
        Connection {
            broker: broker.to_owned(),
            request_timeout,
            stream: Mutex::new(None),
        }
    }

    /// Sends a request and waits for its response, for `request.timeout.ms` plus `extra_wait` (the time the
    /// broker may hold the request on purpose, as a long-polling fetch or a join does).
    pub async fn call(
        &self,
        request: &Request,
        extra_wait: Duration,
    ) -> Result<Response, KafkaError> {
        let mut slot = self.stream.lock().await;
        let existing = slot.take();
        let exchange = async {
            let mut stream = match existing {
                Some(stream) => stream,
                None => TcpStream::connect(self.broker.as_str())
                    .await
                    .map_err(|e| unreachable(&self.broker, e))?,
            };
            write_frame(&mut stream, request)
                .await
                .map_err(|e| unreachable(&self.broker, e))?;
            match read_frame(&mut stream).await {
                Ok(Some(response)) => Ok((stream, response)),
                Ok(None) => Err(unreachable(&self.broker, "connection closed")),
                Err(e) => Err(unreachable(&self.broker, e)),
            }
        };
        match tokio::time::timeout(self.request_timeout + extra_wait, exchange).await {
            Ok(Ok((stream, response))) => {
                *slot = Some(stream);
                Ok(response)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(KafkaError::Timeout(format!(
                "no response from broker {} within {:?}",
                self.broker,
                self.request_timeout + extra_wait
            ))),
        }
    }
}

fn unreachable(broker: &str, reason: impl std::fmt::Display) -> KafkaError {
    KafkaError::Backend(format!("broker {broker}: {reason}"))
}

/// A response the request did not expect, or an error code, as a [`KafkaError`].
pub fn unexpected(response: Response) -> KafkaError {
    match response {
        Response::Error(code) => code_error(code),
        other => KafkaError::Backend(format!("unexpected response from the broker: {other:?}")),
    }
}

pub fn code_error(code: ErrorCode) -> KafkaError {
    match code {
        ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
            KafkaError::Fenced(code.to_string())
        }
        ErrorCode::RebalanceInProgress => KafkaError::RebalanceInProgress(code.to_string()),
        ErrorCode::ProducerFenced => KafkaError::ProducerFenced(code.to_string()),
        other => KafkaError::Backend(other.to_string()),
    }
}
