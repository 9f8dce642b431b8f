//! The error a connector or task returns, and whether the runtime may retry it.

use crate::config::ConfigError;

/// An error from a connector or task, as Connect's `ConnectException` / `RetriableException`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The configuration is invalid; names every bad key.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A transient failure: the runtime retries the same call (a sink's `put` gets the same batch again).
    #[error("retriable: {0}")]
    Retriable(String),
    /// A failure of the external system or of the data; the task fails.
    #[error("{0}")]
    Fatal(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ConnectError {
    pub fn fatal(message: impl Into<String>) -> ConnectError {
        ConnectError::Fatal(message.into())
    }

    pub fn retriable(message: impl Into<String>) -> ConnectError {
        ConnectError::Retriable(message.into())
    }

    /// An I/O error, with what was being done (and to which file).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ConnectError {
        ConnectError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, ConnectError::Retriable(_))
    }
}
