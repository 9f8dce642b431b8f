//! Connectors for a key-value service, written the way a third party writes a Sluice connector: against
//! `sluice-core`'s connector API only (no librdkafka in the build), reaching the service through the
//! [`Dialer`](sluice_core::net::Dialer) seam, so that the same code runs on the real network and in
//! Sluice's simulation, where its tests run it with the test kit (`tests/`).
//!
//! - [`journal`]: `KvJournalSinkConnector`, which appends records to a journal file on the worker's disk
//!   for the service's bulk loader, through the [`FileSystem`](sluice_core::fs::FileSystem) seam;
//! - [`protocol`]: the service's line protocol and a client for it;
//! - [`sink`]: `KvSinkConnector`, which writes each record under its Kafka coordinates;
//! - [`source`]: `KvLogSourceConnector`, which copies the service's event logs into a topic.

pub mod journal;
pub mod protocol;
pub mod sink;
pub mod source;

use std::sync::Arc;

use sluice_core::api::{ConnectorPlugin, PluginRegistry};
use sluice_core::fs::FileSystem;
use sluice_core::net::Dialer;

/// The sink's class name.
pub const SINK_CLASS: &str = "com.example.kv.KvSinkConnector";
/// The source's class name.
pub const SOURCE_CLASS: &str = "com.example.kv.KvLogSourceConnector";
/// The journal sink's class name.
pub const JOURNAL_CLASS: &str = "com.example.kv.KvJournalSinkConnector";

/// The crate's connectors, reaching the service through `dialer`.
pub fn register(registry: &mut PluginRegistry, dialer: Arc<dyn Dialer>) {
    registry.register(SINK_CLASS, sink_plugin(dialer.clone()));
    registry.register(SOURCE_CLASS, source_plugin(dialer));
}

/// The source connector's plugin, reaching the service through `dialer`.
pub fn source_plugin(dialer: Arc<dyn Dialer>) -> ConnectorPlugin {
    ConnectorPlugin::source(move || Box::new(source::KvLogSourceConnector::new(dialer.clone())))
}

/// A config check: `value` must be one of `options`.
fn one_of(value: &str, options: &[&str]) -> Result<(), String> {
    match options.contains(&value) {
        true => Ok(()),
        false => Err(format!("must be one of {}", options.join(", "))),
    }
}

/// The journal sink's plugin, keeping its journals on `fs`.
pub fn journal_plugin(fs: Arc<dyn FileSystem>) -> ConnectorPlugin {
    ConnectorPlugin::sink(move || Box::new(journal::KvJournalSinkConnector::new(fs.clone())))
}

/// The sink connector's plugin, reaching the service through `dialer`.
pub fn sink_plugin(dialer: Arc<dyn Dialer>) -> ConnectorPlugin {
    ConnectorPlugin::sink(move || Box::new(sink::KvSinkConnector::new(dialer.clone())))
}

#[cfg(test)]
mod tests {
    use sluice_core::api::Connector;
    use sluice_core::config::ConfigMap;
    use sluice_core::net::TcpDialer;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ConfigMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_unknown_bug_is_refused_with_the_ones_there_are() {
        let sink = sink::KvSinkConnector::new(Arc::new(TcpDialer));
        let error = sink
            .validate(&config(&[("kv.address", "kv:7000"), ("bug", "typo")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("bug"), "{error}");
        assert!(
            error.contains("none, commit-before-sync, keep-lost-writes"),
            "{error}"
        );
        let source = source::KvLogSourceConnector::new(Arc::new(TcpDialer));
        let error = source
            .validate(&config(&[
                ("kv.address", "log:7001"),
                ("topic", "t"),
                ("streams", "2"),
                ("bug", "typo"),
            ]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("none, offset-at-log-end"), "{error}");
        assert!(source
            .validate(&config(&[
                ("kv.address", "log:7001"),
                ("topic", "t"),
                ("streams", "2"),
            ]))
            .is_ok());
    }
}
