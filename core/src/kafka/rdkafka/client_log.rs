//! librdkafka's own log lines and client errors, in the worker's log: the first of each cause in words a
//! user understands ("cannot reach Kafka at 127.0.0.1:9092: connection refused; retrying"), then a count at
//! most once a minute. Left to itself, librdkafka reports a broker it cannot reach about 40 times a
//! second, from every client, burying the line that says what is wrong.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError as RdError;

use crate::runtime::repeated::Repeated;

/// The repeated causes seen by every client of the process, by cause.
static SEEN: Mutex<BTreeMap<String, Repeated>> = Mutex::new(BTreeMap::new());

/// The context of the backend's clients that have no other job (admin, metadata, log readers): reports
/// through this module.
pub struct ClientLog;

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(level, facility, message);
    }

    fn error(&self, error: RdError, reason: &str) {
        report_error(&error, reason);
    }
}

/// Metadata and log readers are consumers outside any group: nothing to rebalance.
impl ConsumerContext for ClientLog {}

/// A librdkafka log line: warnings and errors once per cause, then counted; the rest at debug level.
pub fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => {
            let (cause, words) = plain_words(message);
            let key = cause.unwrap_or_else(|| format!("log:{facility}"));
            if let Some(more) = happened(&key) {
                tracing::warn!(target: "librdkafka", facility, more_since_last_line = more, "{words}");
            }
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", facility, "{message}");
        }
    }
}

/// A client error librdkafka raised (it retries by itself): once per cause, then counted.
pub fn report_error(error: &RdError, reason: &str) {
    let (cause, words) = plain_words(reason);
    let key = cause.unwrap_or_else(|| format!("error:{error}"));
    if let Some(more) = happened(&key) {
        tracing::error!(target: "librdkafka", more_since_last_line = more, detail = %error, "{words}");
    }
}

/// Whether to log this cause now (`Some(n)`: `n` more happened since its last line).
fn happened(cause: &str) -> Option<u64> {
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    seen.entry(cause.to_owned()).or_default().happened()
}

/// What a librdkafka message means, and its cause when it is one of those repeated while Kafka is away:
/// "cannot reach Kafka at ADDRESS: CAUSE; retrying", "cannot reach any Kafka broker (1/1 brokers are
/// down); retrying". Other messages are kept as they are.
fn plain_words(message: &str) -> (Option<String>, String) {
    if let Some((address, cause)) = connect_failure(message) {
        return (
            Some(format!("unreachable:{address}")),
            format!("cannot reach Kafka at {address}: {cause}; retrying"),
        );
    }
    if message.contains("brokers are down") {
        let count = message
            .split_whitespace()
            .find(|word| word.contains('/'))
            .unwrap_or("all");
        return (
            Some("all-brokers-down".to_owned()),
            format!("cannot reach any Kafka broker ({count} brokers are down); retrying"),
        );
    }
    (None, message.to_owned())
}

/// The address and cause of "... Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in
/// state CONNECT)".
fn connect_failure(message: &str) -> Option<(String, String)> {
    let rest = &message[message.find("Connect to ")? + "Connect to ".len()..];
    let (address, rest) = rest.split_once(" failed: ")?;
    let address = address
        .trim_start_matches("ipv4#")
        .trim_start_matches("ipv6#");
    let cause = rest.split(" (after").next().unwrap_or(rest).trim();
    let mut chars = cause.chars();
    let cause = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::from("connection failed"),
    };
    Some((address.to_owned(), cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_said_in_plain_words() {
        let (cause, words) = plain_words(
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT, 1 identical error(s) suppressed)",
        );
        assert_eq!(cause.as_deref(), Some("unreachable:127.0.0.1:1"));
        assert_eq!(
            words,
            "cannot reach Kafka at 127.0.0.1:1: connection refused; retrying"
        );
        let (cause, words) = plain_words("1/1 brokers are down");
        assert_eq!(cause.as_deref(), Some("all-brokers-down"));
        assert_eq!(
            words,
            "cannot reach any Kafka broker (1/1 brokers are down); retrying"
        );
        assert_eq!(
            plain_words("something else"),
            (None, "something else".to_owned())
        );
    }
}
