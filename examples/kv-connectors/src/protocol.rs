//! The key-value service's protocol: one request per line, one answer line each.
//!
//! - `PUT <key> <value> [<version>]` stores a value (not yet durable), with an optional version the
//!   service keeps beside it (an upsert's record coordinates `<topic>/<partition>/<offset>`): `OK`;
//! - `UPSERT <key> <value> <version>` does the same unless, when it syncs, the key holds a newer
//!   version of the same topic and partition (a later offset): then it leaves the key alone: `OK`;
//! - `SYNC` makes everything this connection stored durable: `SYNCED` once it is;
//! - `READ <stream> <from> <max>` reads an event log: up to `max` lines `EVENT <seq> <text>` from
//!   `from` on, then `END <next>`, where `next` is the log's end;
//! - an answer `ERR <message>` refuses a request.
//!
//! What a connection stored and did not sync is dropped when the connection closes, as an open
//! transaction is rolled back. Requests may be pipelined: answers come in order.
//!
//! Keys and values are single tokens of printable text without spaces.

use std::io;

use sluice_core::net::{Connection, Dialer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What can go wrong talking to the service.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot reach the key-value service at {address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error("the connection to the key-value service broke: {0}")]
    Io(#[from] io::Error),
    #[error("the key-value service closed the connection")]
    Closed,
    #[error("the key-value service refused {request}: {answer}")]
    Refused {
        request: &'static str,
        answer: String,
    },
    #[error("{what} {text:?} has a space or a line break, which the protocol cannot carry")]
    NotAToken { what: &'static str, text: String },
}

/// A value to store under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Kept beside the value: which record the value came from, for a sink that upserts by key.
    pub version: Option<String>,
    /// Stored only if the key does not hold a newer version by then (`UPSERT`).
    pub only_if_newer: bool,
}

/// One connection to the service.
pub struct KvClient {
    stream: BufReader<Box<dyn Connection>>,
}

impl KvClient {
    pub async fn connect(dialer: &dyn Dialer, address: &str) -> Result<KvClient, KvError> {
        let stream = dialer
            .dial(address)
            .await
            .map_err(|source| KvError::Connect {
                address: address.to_owned(),
                source,
            })?;
        Ok(KvClient {
            stream: BufReader::new(stream),
        })
    }

    /// Stores each value under its key, in one round trip; durable only after [`sync`](KvClient::sync).
    pub async fn put_all(&mut self, entries: &[Entry]) -> Result<(), KvError> {
        let mut lines = String::new();
        for Entry {
            key,
            value,
            version,
            only_if_newer,
        } in entries
        {
            token("key", key)?;
            token("value", value)?;
            let verb = if *only_if_newer { "UPSERT" } else { "PUT" };
            match version {
                Some(version) => {
                    token("version", version)?;
                    lines.push_str(&format!("{verb} {key} {value} {version}\n"));
                }
                None => lines.push_str(&format!("{verb} {key} {value}\n")),
            }
        }
        self.stream.get_mut().write_all(lines.as_bytes()).await?;
        for _ in entries {
            self.answer("PUT", "OK").await?;
        }
        Ok(())
    }

    /// Makes everything this connection stored durable.
    pub async fn sync(&mut self) -> Result<(), KvError> {
        self.request("SYNC", "SYNC\n", "SYNCED").await
    }

    /// Up to `max` events of `stream` from `from` on, and where the log ended when it was read.
    pub async fn read(
        &mut self,
        stream: i64,
        from: i64,
        max: usize,
    ) -> Result<(Vec<(i64, String)>, i64), KvError> {
        self.stream
            .get_mut()
            .write_all(format!("READ {stream} {from} {max}\n").as_bytes())
            .await?;
        let mut events = Vec::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(KvError::Closed);
            }
            let mut words = line.trim_end().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("EVENT"), Some(seq), Some(text)) => match seq.parse() {
                    Ok(seq) => events.push((seq, text.to_owned())),
                    Err(_) => return Err(refused("READ", &line)),
                },
                (Some("END"), Some(end), None) => match end.parse() {
                    Ok(end) => return Ok((events, end)),
                    Err(_) => return Err(refused("READ", &line)),
                },
                // The late answer to a SYNC sent without waiting.
                (Some("SYNCED"), None, None) => continue,
                _ => return Err(refused("READ", &line)),
            }
        }
    }

    /// Sends SYNC without waiting for the answer.
    pub async fn sync_without_waiting(&mut self) -> Result<(), KvError> {
        self.stream.get_mut().write_all(b"SYNC\n").await?;
        Ok(())
    }

    async fn request(
        &mut self,
        request: &'static str,
        line: &str,
        expected: &str,
    ) -> Result<(), KvError> {
        self.stream.get_mut().write_all(line.as_bytes()).await?;
        self.answer(request, expected).await
    }

    async fn answer(&mut self, request: &'static str, expected: &str) -> Result<(), KvError> {
        loop {
            let mut answer = String::new();
            if self.stream.read_line(&mut answer).await? == 0 {
                return Err(KvError::Closed);
            }
            match answer.trim_end() {
                answer if answer == expected => return Ok(()),
                // The late answer to a SYNC sent without waiting.
                "SYNCED" => continue,
                other => {
                    return Err(KvError::Refused {
                        request,
                        answer: other.to_owned(),
                    })
                }
            }
        }
    }
}

fn token(what: &'static str, text: &str) -> Result<(), KvError> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace()) {
        return Err(KvError::NotAToken {
            what,
            text: text.to_owned(),
        });
    }
    Ok(())
}

fn refused(request: &'static str, answer: &str) -> KvError {
    KvError::Refused {
        request,
        answer: answer.trim_end().to_owned(),
    }
}
