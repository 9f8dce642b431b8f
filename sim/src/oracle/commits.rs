//! Checks made as the run goes, at each cluster event and source commit: a sink commit may not pass what
//! the destination holds durably, a source commit may not cover a record Kafka does not have yet, the
//! cluster keeps its own invariants ([`super::cluster`]); and the history the end-of-run judgement needs
//! (every commit, every producer initialization).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use super::cluster::{Commit, GroupInvariants, Ownership};
use super::dead_letters;
use super::durability::Durability;
use super::visible::VisibleIds;
use super::{Anomaly, AnomalyKind, Positions};
use crate::broker::{ClusterEvent, Logs};
use crate::protocol::Tp;
use crate::scenario::Scenario;

/// Checks at the moment of each commit.
pub struct CommitChecks {
    scenario: Scenario,
    sink_group: String,
    topic: String,
    durability: Durability,
    anomalies: Vec<Anomaly>,
    groups: GroupInvariants,
    /// Per stream, the highest seq such that it and every seq before it were in Kafka at a commit.
    verified: BTreeMap<i64, i64>,
    /// The source records in Kafka, followed from commit to commit.
    visible: VisibleIds,
    /// The source records with a dead letter in the source's queue, if it has one.
    source_letters: Option<(String, VisibleIds)>,
    /// (stream, first seq missing from Kafka, committed seq) seen at source commits, judged at the end.
    early: BTreeSet<(i64, i64, i64)>,
    /// Per stream, every source commit: when, and the seq it covers.
    source_commits: BTreeMap<i64, Vec<(Duration, i64)>>,
    /// When each transactional producer epoch (producer id, epoch) was initialized, and its
    /// transactional id.
    inits: BTreeMap<(i64, i16), (Duration, String)>,
    /// Ranges of the topic retention deleted after the sink's group had committed an offset of their
    /// partition.
    deleted_while_owed: Vec<(Tp, Range<i64>)>,
}

/// A record that became visible from a zombie instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZombieWrite {
    pub tp: Tp,
    pub offset: i64,
    pub detail: String,
}

impl CommitChecks {
    pub fn new(scenario: &Scenario, durability: Durability) -> CommitChecks {
        CommitChecks {
            scenario: scenario.clone(),
            sink_group: scenario.sink_group(),
            topic: scenario.topic().to_owned(),
            durability,
            anomalies: Vec::new(),
            groups: GroupInvariants::default(),
            verified: BTreeMap::new(),
            visible: VisibleIds::default(),
            source_letters: scenario
                .source_dead_letter_topic()
                .map(|queue| (queue, VisibleIds::default())),
            early: BTreeSet::new(),
            source_commits: BTreeMap::new(),
            inits: BTreeMap::new(),
            deleted_while_owed: Vec::new(),
        }
    }

    /// Where the sink's records become durable.
    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    /// Every commit of the sink's group the coordinator accepted, per partition, in order.
    pub fn sink_commits(&self) -> BTreeMap<Tp, Vec<Commit>> {
        self.groups
            .commits(&self.sink_group)
            .cloned()
            .unwrap_or_default()
    }

    /// Who owned which partition of the sink's group when.
    pub fn sink_ownership(&self) -> Ownership {
        self.groups
            .ownership(&self.sink_group)
            .cloned()
            .unwrap_or_default()
    }

    /// Ranges of the topic retention deleted after the sink's group had committed an offset of their
    /// partition: records the group owed, which a sink task must report if none wrote them.
    pub fn deleted_while_owed(&self) -> &[(Tp, Range<i64>)] {
        &self.deleted_while_owed
    }

    /// Every source commit, per stream: when, and the seq it covers.
    pub fn source_commits(&self) -> &BTreeMap<i64, Vec<(Duration, i64)>> {
        &self.source_commits
    }

    /// The cluster's invariants; a sink commit may not pass the destination's durable prefix; a producer's
    /// initialization fences its task's older instances.
    pub fn on_cluster_event(&mut self, at: Duration, event: &ClusterEvent, logs: &Logs) {
        self.groups.on_event(at, event, &mut self.anomalies);
        match event {
            ClusterEvent::ProducerInitialized {
                transactional_id,
                producer_id,
                epoch,
            } => {
                self.inits
                    .entry((*producer_id, *epoch))
                    .or_insert_with(|| (at, transactional_id.clone()));
                return;
            }
            ClusterEvent::RecordsDeleted { tp, deleted } if *tp.topic == *self.topic => {
                let owed = self
                    .groups
                    .commits(&self.sink_group)
                    .is_some_and(|commits| commits.get(tp).is_some_and(|c| !c.is_empty()));
                if owed {
                    self.deleted_while_owed.push((tp.clone(), deleted.clone()));
                }
                return;
            }
            _ => {}
        }
        let ClusterEvent::Committed {
            group,
            member_id,
            offsets,
            ..
        } = event
        else {
            return;
        };
        if *group != self.sink_group {
            return;
        }
        for (tp, offset) in offsets {
            let durable = self.durability.durable_end(logs, tp);
            if *offset > durable {
                self.anomalies.push(Anomaly {
                    kind: AnomalyKind::CommittedBeforeDurable,
                    detail: format!(
                        "{member_id} committed {tp} at offset {offset}, but the destination held only offsets below {durable} durably"
                    ),
                });
            }
        }
    }

    /// An operator set streams' source offsets (`seq` -1: removed, the source starts the stream over):
    /// what the source delivers after it is judged against these, not against its earlier commits.
    pub fn on_source_offsets_altered(&mut self, at: Duration, altered: &[(i64, i64)]) {
        for &(stream, seq) in altered {
            self.source_commits
                .entry(stream)
                .or_default()
                .push((at, seq));
        }
    }

    /// A source commit of `seq` for `stream` at `at` needs every record up to it in Kafka. What is missing
    /// now is judged at the end: a record that arrived later was committed before it was durable, one that
    /// never did is lost.
    pub fn on_source_commit(&mut self, at: Duration, logs: &Logs, commits: &[(i64, i64)]) {
        let scenario = &self.scenario;
        self.visible.update(logs, &self.topic, |record| {
            scenario.identify(record.value.as_deref()?)
        });
        if let Some((queue, letters)) = &mut self.source_letters {
            letters.update(logs, queue, dead_letters::source_origin);
        }
        for &(stream, seq) in commits {
            self.source_commits
                .entry(stream)
                .or_default()
                .push((at, seq));
            // A record the source's converter refused or its transforms dropped is never in the
            // topic; its offset is committed anyway, once its dead letter is in the queue, if it has
            // one.
            let stored = |seq: i64| {
                self.dead_letter_stored((stream, seq)).unwrap_or_else(|| {
                    scenario.kept_out_of_kafka(seq) || self.visible.contains((stream, seq))
                })
            };
            let mut verified = self.verified.get(&stream).copied().unwrap_or(-1);
            while verified < seq && stored(verified + 1) {
                verified += 1;
            }
            self.verified.insert(stream, verified);
            if verified < seq {
                self.early.insert((stream, verified + 1, seq));
            }
        }
    }
    /// Records of the topic that became visible from zombie instances. An instance is a transactional
    /// producer's epoch (the connector is not asked to say which task instance wrote what): it started
    /// when the epoch was initialized, and a newer instance writing the same stream, whatever its
    /// transactional id, fences it from then on. A correct worker gives a task's every instance one
    /// transactional id, so the broker fences older epochs and no record of theirs becomes visible later;
    /// a misconfigured one (another id per worker) lets a zombie write on. Only transactional writes are
    /// judged. A fenced instance that initializes its producer again counts as a new instance: what it
    /// then writes a second time is caught as a duplicate, not as a zombie's write.
    pub fn zombie_writes(&self, logs: &Logs) -> Vec<ZombieWrite> {
        struct Seen {
            tp: Tp,
            offset: i64,
            id: (i64, i64),
            instance: (i64, i16),
            visible_at: Duration,
        }
        let mut seen = Vec::new();
        let mut writers: BTreeMap<i64, BTreeSet<(i64, i16)>> = BTreeMap::new();
        let partitions = logs.partition_count(&self.topic).unwrap_or(0);
        for partition in 0..partitions {
            let tp = Tp::new(self.topic.as_str(), partition);
            for committed in logs.committed_records(&tp) {
                let instance = (committed.producer_id, committed.epoch);
                let Some(id) = committed
                    .record
                    .value
                    .as_deref()
                    .and_then(|value| self.scenario.identify(value))
                    .filter(|_| self.inits.contains_key(&instance))
                else {
                    continue;
                };
                writers.entry(id.0).or_default().insert(instance);
                seen.push(Seen {
                    tp: tp.clone(),
                    offset: committed.offset,
                    id,
                    instance,
                    visible_at: committed.visible_at,
                });
            }
        }
        let mut zombies = Vec::new();
        for record in seen {
            let Some((mine, id)) = self.inits.get(&record.instance) else {
                continue;
            };
            let successor = writers[&record.id.0]
                .iter()
                .filter_map(|other| self.inits.get(other).map(|(at, id)| (*at, other, id)))
                .filter(|(at, _, _)| at > mine && *at < record.visible_at)
                .min();
            if let Some((at, (_, epoch), other)) = successor {
                zombies.push(ZombieWrite {
                    detail: format!(
                        "{id} (epoch {}) wrote stream {} seq {} ({} offset {}), visible at {} ms, after {other} (epoch {epoch}) took over at {} ms",
                        record.instance.1,
                        record.id.0,
                        record.id.1,
                        record.tp,
                        record.offset,
                        record.visible_at.as_millis(),
                        at.as_millis()
                    ),
                    tp: record.tp,
                    offset: record.offset,
                });
            }
        }
        zombies
    }

    /// The anomalies found so far, in the order found.
    pub fn found(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// An anomaly found outside the cluster's events (the harness checking a worker's offset file).
    pub fn report(&mut self, anomaly: Anomaly) {
        self.anomalies.push(anomaly);
    }

    /// For a record the source sends to its dead letter queue, whether its dead letter was in the
    /// queue at the last look; `None` for every other record (or without a queue).
    fn dead_letter_stored(&self, (stream, seq): (i64, i64)) -> Option<bool> {
        let (_, letters) = self.source_letters.as_ref()?;
        self.scenario
            .source_dead_lettered(seq)
            .then(|| letters.contains((stream, seq)))
    }

    /// Every anomaly found at commits, now that Kafka's final contents are known.
    pub fn anomalies(
        &mut self,
        logs: &Logs,
        positions: &Positions,
        zombie_writes: &[ZombieWrite],
    ) -> Vec<Anomaly> {
        if let Some((queue, letters)) = &mut self.source_letters {
            letters.update(logs, queue, dead_letters::source_origin);
        }
        let mut found = self.anomalies.clone();
        found.extend(zombie_writes.iter().map(|zombie| Anomaly {
            kind: AnomalyKind::ZombieWrite,
            detail: zombie.detail.clone(),
        }));
        let mut judged = BTreeSet::new();
        for &(stream, missing, committed) in &self.early {
            let arrived = self
                .dead_letter_stored((stream, missing))
                .unwrap_or_else(|| positions.contains_key(&(stream, missing)));
            if arrived && judged.insert((stream, missing)) {
                found.push(Anomaly {
                    kind: AnomalyKind::CommittedBeforeDurable,
                    detail: format!(
                        "source offset seq={committed} of stream {stream} was committed before Kafka acknowledged seq {missing}"
                    ),
                });
            }
        }
        found
    }
}
