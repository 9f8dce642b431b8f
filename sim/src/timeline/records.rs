//! The records an anomaly's account names, found again among the destination's writes.
//!
//! The oracle names records in two ways: by the source's identity (`stream S seq N`, whose value is
//! `stream-S:N`) and by their Kafka position (`TOPIC-P offset N`, `TOPIC-P at offset N`). The timeline
//! writes them as `stream-S:N` and `TOPIC-P@N`.

use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;

use crate::workload::Write;

fn source_identity() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"stream[ -](\d+)(?: seq |:)(\d+)").expect("the pattern is valid")
    })
}

fn kafka_position() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"([A-Za-z0-9._]+-\d+) (?:at )?offset (\d+)").expect("the pattern is valid")
    })
}

fn stated_at() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"at (\d+) ms").expect("the pattern is valid"))
}

/// The records an anomaly's account names, in the order it names them, each once.
pub fn involved_records(detail: &str) -> Vec<String> {
    let mut found: Vec<(usize, String)> = source_identity()
        .captures_iter(detail)
        .filter_map(|c| Some((c.get(0)?.start(), format!("stream-{}:{}", &c[1], &c[2]))))
        .collect();
    found.extend(
        kafka_position()
            .captures_iter(detail)
            .filter_map(|c| Some((c.get(0)?.start(), format!("{}@{}", &c[1], &c[2])))),
    );
    found.sort();
    let mut records: Vec<String> = Vec::new();
    for (_, record) in found {
        if !records.contains(&record) {
            records.push(record);
        }
    }
    records
}

/// When the account says the anomaly happened: its first `at N ms`.
pub(super) fn stated_time(detail: &str) -> Option<Duration> {
    let captures = stated_at().captures(detail)?;
    Some(Duration::from_millis(captures[1].parse().ok()?))
}

/// Every write of these records, in time order.
pub(super) fn writes_of(records: &[String], writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .filter(|write| {
            let position = format!("{}@{}", write.tp, write.offset);
            records
                .iter()
                .any(|record| *record == position || *record == write.value)
        })
        .map(|write| {
            format!(
                "{} ms: {} (worker-{}) wrote {}@{} = {}",
                write.at.as_millis(),
                write.task,
                write.worker,
                write.tp,
                write.offset,
                write.value
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Tp;

    #[test]
    fn names_records_by_source_identity_and_kafka_position_once_each() {
        let detail = "connect-cluster-sequence-source-0 (epoch 2) wrote stream 0 seq 49 (sequences-3 offset 17), \
                      visible at 5120 ms, after connect-cluster-sequence-source-0 (epoch 3) took over at 4000 ms; \
                      stream-0:49 again, sequences-3 at offset 17";
        assert_eq!(involved_records(detail), ["stream-0:49", "sequences-3@17"]);
        assert_eq!(stated_time(detail), Some(Duration::from_millis(5120)));
        assert_eq!(
            stated_time("input line 4 never reached an output file"),
            None
        );
        assert!(involved_records("input line 4 never reached an output file").is_empty());
    }

    #[test]
    fn finds_the_writes_of_a_record_by_position_or_value() {
        let write = |offset, value: &str, at| Write {
            tp: Tp::new("sequences", 3),
            offset,
            value: value.to_owned(),
            task: "sink-0#1".to_owned(),
            worker: 1,
            epoch: 1,
            at: Duration::from_millis(at),
        };
        let writes = [
            write(17, "stream-0:49", 100),
            write(18, "stream-0:50", 100),
            write(17, "stream-0:49", 900),
        ];
        assert_eq!(
            writes_of(&["sequences-3@17".to_owned()], &writes),
            [
                "100 ms: sink-0#1 (worker-1) wrote sequences-3@17 = stream-0:49",
                "900 ms: sink-0#1 (worker-1) wrote sequences-3@17 = stream-0:49"
            ]
        );
        assert_eq!(writes_of(&["stream-0:50".to_owned()], &writes).len(), 1);
    }
}
