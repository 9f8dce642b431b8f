//! The sink's dead letter queue: every record its converter refused or its destination rejected (and
//! reported as errant) must be in the queue, found by the `__connect.errors.topic`, `.partition` and
//! `.offset` context headers of its dead letter (`dead-letter-missing` otherwise), and nothing else may
//! be (`dead-letter-unexpected`). With the destination's check, every record of the topic is then
//! accounted for exactly once: written, or dead-lettered. A dead letter may come twice (a crash between
//! its write and the commit past it), as a record may be written twice.

use std::collections::{BTreeMap, BTreeSet};

use crate::broker::{Entry, Logs};
use crate::protocol::{Record, Tp};
use crate::scenario::Scenario;

use super::{Anomaly, AnomalyKind, Tally};

/// Checks the queue against the records of the pipeline's topic (`positions`: each source record's
/// Kafka offsets); `deleted` are records retention took before any sink task had them.
pub fn check(
    scenario: &Scenario,
    logs: &Logs,
    positions: &BTreeMap<(i64, i64), Vec<(Tp, i64)>>,
    deleted: &BTreeSet<(Tp, i64)>,
    tally: &mut Tally,
) -> Vec<Anomaly> {
    let Some(queue) = scenario.dead_letter_topic() else {
        return Vec::new();
    };
    let letters = dead_letters(logs, &queue);
    tally.dead_lettered = letters.values().map(|n| *n as i64).sum();
    let mut found = Vec::new();
    for ((_, seq), copies) in positions {
        let dead = scenario.sink_dead_lettered(*seq);
        for position in copies {
            let lettered = letters.contains_key(position);
            let (tp, offset) = position;
            if dead && !lettered && !deleted.contains(position) {
                found.push(Anomaly {
                    kind: AnomalyKind::DeadLetterMissing,
                    detail: format!("{tp} offset {offset} was skipped by the sink but is not in its dead letter queue {queue}"),
                });
            } else if !dead && lettered {
                found.push(Anomaly {
                    kind: AnomalyKind::DeadLetterUnexpected,
                    detail: format!("{tp} offset {offset} is in the dead letter queue {queue} though the sink could write it"),
                });
            }
        }
    }
    found
}

/// The records the queue holds, by where their context headers say they came from, with how many
/// dead letters each has.
fn dead_letters(logs: &Logs, queue: &str) -> BTreeMap<(Tp, i64), usize> {
    let mut letters = BTreeMap::new();
    for record in queue_records(logs, queue) {
        let origin = (
            header(record, "__connect.errors.topic"),
            header(record, "__connect.errors.partition").and_then(|p| p.parse().ok()),
            header(record, "__connect.errors.offset").and_then(|o| o.parse().ok()),
        );
        if let (Some(topic), Some(partition), Some(offset)) = origin {
            *letters
                .entry((Tp::new(topic, partition), offset))
                .or_insert(0) += 1;
        }
    }
    letters
}

/// The source's dead letter queue: every record its converter refused or its transforms failed on must
/// have a dead letter there, found by the `__connect.errors.source.partition` and `.source.offset`
/// context headers (`{"stream":S}`, `{"seq":N}`), and no other record may. A dead letter may come
/// twice (a crash between its acknowledgement and the commit of its offset).
pub fn check_source(scenario: &Scenario, logs: &Logs, tally: &mut Tally) -> Vec<Anomaly> {
    let Some(queue) = scenario.source_dead_letter_topic() else {
        return Vec::new();
    };
    let mut letters: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for origin in queue_records(logs, &queue)
        .into_iter()
        .filter_map(source_origin)
    {
        *letters.entry(origin).or_insert(0) += 1;
    }
    tally.source_dead_lettered = letters.values().map(|n| *n as i64).sum();
    let mut found = Vec::new();
    for stream in 0..scenario.streams {
        for seq in 0..scenario.records_per_stream {
            let dead = scenario.source_dead_lettered(seq);
            let lettered = letters.contains_key(&(stream, seq));
            if dead && !lettered {
                found.push(Anomaly {
                    kind: AnomalyKind::DeadLetterMissing,
                    detail: format!("stream {stream} seq {seq} was refused by the source's converter or transforms but is not in its dead letter queue {queue}"),
                });
            } else if !dead && lettered {
                found.push(Anomaly {
                    kind: AnomalyKind::DeadLetterUnexpected,
                    detail: format!("stream {stream} seq {seq} is in the source's dead letter queue {queue} though the source could send it"),
                });
            }
        }
    }
    found
}

/// The source record (stream, seq) a source dead letter is of, by its `__connect.errors.source.partition`
/// and `.source.offset` context headers.
pub fn source_origin(letter: &Record) -> Option<(i64, i64)> {
    let number = |name: &str, key: &str| {
        let json: serde_json::Value = serde_json::from_str(header(letter, name)?).ok()?;
        json.get(key)?.as_i64()
    };
    Some((
        number("__connect.errors.source.partition", "stream")?,
        number("__connect.errors.source.offset", "seq")?,
    ))
}

/// The records of every partition of `queue`.
fn queue_records<'l>(logs: &'l Logs, queue: &str) -> Vec<&'l Record> {
    let mut records = Vec::new();
    for (name, partitions) in logs.topics() {
        if name != queue {
            continue;
        }
        for partition in 0..partitions {
            for entry in logs.entries(&Tp::new(queue, partition)) {
                if let Entry::Data { record, .. } = entry {
                    records.push(record);
                }
            }
        }
    }
    records
}

/// A record's header, as text.
fn header<'r>(record: &'r Record, key: &str) -> Option<&'r str> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::protocol::ProduceBatch;

    /// A source dead letter of record `seq` of stream `stream`, with its context headers.
    fn letter(stream: i64, seq: i64) -> Record {
        let header = |key: &str, value: String| (key.to_owned(), Some(value.into_bytes()));
        Record {
            key: None,
            value: Some(format!("stream-{stream}:{seq}").into_bytes()),
            headers: vec![
                header(
                    "__connect.errors.source.partition",
                    format!("{{\"stream\":{stream}}}"),
                ),
                header(
                    "__connect.errors.source.offset",
                    format!("{{\"seq\":{seq}}}"),
                ),
            ],
            timestamp: 0,
        }
    }

    #[test]
    fn every_source_dead_letter_is_owed_and_no_other() {
        let scenario = Scenario {
            dead_letters: true,
            transforms: true,
            streams: 1,
            records_per_stream: 100,
            ..Scenario::base("source-dead-letters")
        };
        let queue = scenario.source_dead_letter_topic().unwrap();
        let owed: Vec<i64> = (0..100)
            .filter(|&seq| scenario.source_dead_lettered(seq))
            .collect();
        // Records the transforms fail on (every 13th) and the one the converter refuses (the 97th).
        assert_eq!(owed, [6, 19, 32, 45, 58, 71, 84, 96, 97]);
        let mut logs = Logs::default();
        logs.create(&queue, 1).unwrap();
        // All but the first, one twice, and one of a record the source could send.
        let records: Vec<Record> = owed[1..]
            .iter()
            .chain([&owed[1], &0])
            .map(|&seq| letter(0, seq))
            .collect();
        let producer = logs.new_producer_id();
        let batch = ProduceBatch {
            tp: Tp::new(queue.as_str(), 0),
            base_sequence: 0,
            records,
        };
        logs.append(producer, 0, false, batch, Duration::ZERO)
            .unwrap();
        let mut tally = Tally::default();
        let found: Vec<(AnomalyKind, String)> = check_source(&scenario, &logs, &mut tally)
            .into_iter()
            .map(|a| (a.kind, a.detail))
            .collect();
        assert_eq!(tally.source_dead_lettered, 10);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, AnomalyKind::DeadLetterUnexpected);
        assert!(found[0].1.starts_with("stream 0 seq 0 "), "{found:?}");
        assert_eq!(found[1].0, AnomalyKind::DeadLetterMissing);
        assert!(found[1].1.starts_with("stream 0 seq 6 "), "{found:?}");
    }
}
