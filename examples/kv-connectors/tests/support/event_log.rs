//! A model of the service's event logs, which the source reads, as a connector author writes one for the
//! test kit: a host serving logs that grow over simulated time.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::api::{SourceOffset, SourcePartition};
use sluice_sim::kit::{answering_errors, ExternalSource, SourceRecords};
use sluice_sim::turmoil;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The event logs' host and port, as the source's `kv.address` names them.
pub const LOG_ADDRESS: &str = "log:7001";
const LOG_HOST: &str = "log";
const LOG_PORT: u16 = 7001;

/// The service's event logs, growing as the kit's record times say.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventLog {
    /// Each log is a customer's orders, and each event a JSON order (`{"customer":S,"order":N,...}`)
    /// rather than the kit's `stream-S:N` text: the model reads each record's identity back itself.
    pub orders: bool,
}

impl EventLog {
    /// Events carrying the kit's `stream-S:N` text.
    pub fn plain() -> EventLog {
        EventLog { orders: false }
    }

    /// Events that are JSON orders.
    pub fn orders() -> EventLog {
        EventLog { orders: true }
    }

    /// The text of record `seq` of `stream`.
    fn event(&self, stream: i64, seq: i64) -> String {
        if self.orders {
            format!(
                r#"{{"customer": {stream}, "order": {seq}, "total": "{}.{:02}"}}"#,
                10 + seq % 90,
                seq % 100
            )
        } else {
            SourceRecords::value(stream, seq)
        }
    }
}

impl ExternalSource for EventLog {
    fn build(&self, sim: &mut turmoil::Sim<'_>, records: SourceRecords) {
        let records = Arc::new(records);
        let log = *self;
        sim.host(LOG_HOST, move || serve_log(log, records.clone()));
    }

    fn hosts(&self) -> Vec<String> {
        vec![LOG_HOST.to_owned()]
    }

    /// `{"stream": S}` at `{"next": N}` has read up to record N-1.
    fn covered(&self, partition: &SourcePartition, offset: &SourceOffset) -> Option<(i64, i64)> {
        let stream = partition.get("stream")?.as_i64()?;
        let next = offset.get("next")?.as_i64()?;
        Some((stream, next - 1))
    }

    /// An order is (customer, order number), and must be the order this log wrote.
    fn identify(&self, value: &[u8]) -> Option<(i64, i64)> {
        if !self.orders {
            return SourceRecords::identify(value);
        }
        let order: serde_json::Value = serde_json::from_slice(value).ok()?;
        let id = (
            order.get("customer")?.as_i64()?,
            order.get("order")?.as_i64()?,
        );
        (self.event(id.0, id.1).as_bytes() == value).then_some(id)
    }
}

async fn serve_log(log: EventLog, records: Arc<SourceRecords>) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", LOG_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(log_connection(log, stream, records.clone()));
    }
}

async fn log_connection(
    log: EventLog,
    stream: turmoil::net::TcpStream,
    records: Arc<SourceRecords>,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split(' ').collect();
        let answer = match words[..] {
            // Overloaded, as the seed says (an errors-external fault).
            _ if answering_errors() => "ERR busy".to_owned(),
            ["READ", stream, from, max] => match (
                stream.parse::<i64>(),
                from.parse::<i64>(),
                max.parse::<i64>(),
            ) {
                (Ok(stream), Ok(from), Ok(max)) if (0..records.streams).contains(&stream) => {
                    let now = turmoil::sim_elapsed().unwrap_or(Duration::ZERO);
                    let end = records.appeared(stream, now);
                    let mut answer = String::new();
                    for seq in from.max(0)..end.min(from.max(0) + max) {
                        answer.push_str(&format!("EVENT {seq} {}\n", log.event(stream, seq)));
                    }
                    answer.push_str(&format!("END {end}"));
                    answer
                }
                _ => "ERR bad READ".to_owned(),
            },
            _ => "ERR unknown request".to_owned(),
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}
