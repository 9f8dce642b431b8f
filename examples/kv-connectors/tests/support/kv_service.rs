//! A model of the key-value service the sink writes to, as a connector author writes one for the test
//! kit: a host that answers the service's protocol, keeps each connection's unsynced writes in its memory
//! (a crash of the host loses them) and its durable data outside the host (as a disk would), and tells the
//! kit each write that became durable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sluice_sim::kit::{answering_errors, DurableWrites, ExternalSink};
use sluice_sim::turmoil;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The service's host and port, as the sink's `kv.address` names them.
pub const ADDRESS: &str = "kv:7000";
const HOST: &str = "kv";
const PORT: u16 = 7000;

/// The key-value service.
pub struct KvService;

impl ExternalSink for KvService {
    fn build(&self, sim: &mut turmoil::Sim<'_>, durable: DurableWrites) {
        // The disk: it outlives crashes of the host.
        let disk: Disk = Arc::default();
        sim.host(HOST, move || serve(disk.clone(), durable.clone()));
    }

    fn hosts(&self) -> Vec<String> {
        vec![HOST.to_owned()]
    }
}

/// A key's value and the version written with it.
type Stored = (String, Option<String>);

type Disk = Arc<Mutex<BTreeMap<String, Stored>>>;

async fn serve(disk: Disk, durable: DurableWrites) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(connection(stream, peer, disk.clone(), durable.clone()));
    }
}

/// A write a connection made and has not synced.
struct Unsynced {
    key: String,
    value: String,
    version: Option<String>,
    only_if_newer: bool,
}

/// One client's connection: its writes stay in memory until it syncs them.
async fn connection(
    stream: turmoil::net::TcpStream,
    peer: SocketAddr,
    disk: Disk,
    durable: DurableWrites,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let mut unsynced: Vec<Unsynced> = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split(' ');
        let answer = match (
            // Overloaded, as the seed says (an errors-external fault): nothing is stored or synced.
            answering_errors().then_some("ERR"),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) {
            (Some(_), ..) => "ERR busy",
            (None, Some(verb @ ("PUT" | "UPSERT")), Some(key), Some(value), version, None) => {
                unsynced.push(Unsynced {
                    key: key.to_owned(),
                    value: value.to_owned(),
                    version: version.map(str::to_owned),
                    only_if_newer: verb == "UPSERT",
                });
                "OK"
            }
            (None, Some("SYNC"), None, None, None, None) => {
                let mut disk = disk.lock().unwrap_or_else(|e| e.into_inner());
                for entry in unsynced.drain(..) {
                    sync(&mut disk, entry, peer, &durable);
                }
                "SYNCED"
            }
            _ => "ERR unknown request",
        };
        write.write_all(format!("{answer}\n").as_bytes()).await?;
    }
    Ok(())
}

/// Makes one write durable, and tells the kit which record the key holds now.
fn sync(
    disk: &mut BTreeMap<String, Stored>,
    entry: Unsynced,
    peer: SocketAddr,
    durable: &DurableWrites,
) {
    let Some(version) = entry.version else {
        if let Some((topic, partition, offset)) = coordinates(&entry.key) {
            durable.written(peer, topic, partition, offset, &entry.value);
        }
        disk.insert(entry.key, (entry.value, None));
        return;
    };
    let Some((topic, partition, offset)) = coordinates(&version) else {
        disk.insert(entry.key, (entry.value, Some(version)));
        return;
    };
    let held = disk
        .get(&entry.key)
        .and_then(|(_, held)| held.as_deref())
        .and_then(coordinates);
    let newer_held = held.is_some_and(|(t, p, o)| t == topic && p == partition && o > offset);
    if entry.only_if_newer && newer_held {
        // The key holds a later record already: this one is superseded, and durable as such.
        durable.written(peer, topic, partition, offset, &entry.value);
        return;
    }
    durable.upserted(peer, &entry.key, topic, partition, offset, &entry.value);
    disk.insert(entry.key.clone(), (entry.value, Some(version.clone())));
}

/// The Kafka record a key names: the sink writes under `<topic>/<partition>/<offset>`.
fn coordinates(key: &str) -> Option<(&str, i32, i64)> {
    let mut parts = key.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some((parts.next()?, partition, offset))
}
