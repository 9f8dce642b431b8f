//! The database a JDBC sink writes, as a test-kit destination: the model database on its host, which
//! tells the kit every row a committed batch wrote. A row is known by the Kafka record it holds, so the
//! sink under test writes its records' coordinates (`kafka.coordinates.columns`, or `pk.mode=kafka`) and
//! its values as the one column `__connect_value`; an upsert keyed by the record's key
//! (`__connect_key`) is told as one, so the kit checks that each key ends with its latest record.

use std::sync::{Arc, Mutex};

use sluice_connectors::jdbc::database::{SqlValue, Write, WriteBatch, WriteKind};
use sluice_connectors::jdbc::sink::rows::{KAFKA_COLUMNS, KEY_COLUMN, VALUE_COLUMN};
use sluice_connectors::jdbc::timestamp::Timestamp;

use super::server::{self, WriteObserver};
use super::written_table::{DB_HOST, DB_PORT};
use super::{ModelDb, Precision};
use crate::kit::{DurableWrites, ExternalSink};

/// The sink's database.
#[derive(Debug, Default)]
pub struct SinkTables {
    /// The database of the run in progress.
    run: Mutex<Option<Arc<ModelDb>>>,
}

impl SinkTables {
    /// The database of the run in progress.
    pub fn database(&self) -> Option<Arc<ModelDb>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A written row's column.
fn cell<'a>(write: &'a Write, name: &str) -> Option<&'a SqlValue> {
    let i = write.columns.iter().position(|c| c == name)?;
    write.values.get(i)
}

/// The record a written row holds: (topic, partition, offset, value).
fn record(write: &Write) -> Option<(String, i32, i64, String)> {
    let [topic, partition, offset] = KAFKA_COLUMNS.map(|name| cell(write, name));
    match (topic?, partition?, offset?, cell(write, VALUE_COLUMN)?) {
        (
            SqlValue::Text(topic),
            SqlValue::Int(partition),
            SqlValue::Int(offset),
            SqlValue::Text(value),
        ) => Some((topic.clone(), *partition as i32, *offset, value.clone())),
        _ => None,
    }
}

impl ExternalSink for SinkTables {
    fn build(&self, sim: &mut turmoil::Sim<'_>, durable: DurableWrites) {
        let db = Arc::new(ModelDb::new(Timestamp(0), Precision::Micros));
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = Some(db.clone());
        let observer: WriteObserver = Arc::new(move |peer, batch: &WriteBatch| {
            for write in &batch.writes {
                if write.kind == WriteKind::Delete {
                    continue;
                }
                let Some((topic, partition, offset, value)) = record(write) else {
                    continue;
                };
                match (write.kind, cell(write, KEY_COLUMN)) {
                    (WriteKind::Upsert, Some(SqlValue::Text(key))) if write.key == [KEY_COLUMN] => {
                        durable.upserted(peer, key, &topic, partition, offset, &value)
                    }
                    _ => durable.written(peer, &topic, partition, offset, &value),
                }
            }
        });
        sim.host(DB_HOST, move || {
            let (db, observer) = (db.clone(), observer.clone());
            async move {
                db.recover();
                server::serve(db, DB_PORT, Some(observer)).await
            }
        });
    }

    fn hosts(&self) -> Vec<String> {
        vec![DB_HOST.to_owned()]
    }
}
