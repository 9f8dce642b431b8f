//! Slow calls keep their members: while a sink task's `put` or flush runs, the runtime polls with the
//! task's partitions paused, and gives a revocation up rather than keep a rebalance waiting past half of
//! `max.poll.interval.ms`; only a call past `put.flush.limit.ms` stops the polling. So in a run whose
//! only faults are stalled and failed calls, a member thrown out of the sink's group (its session
//! expired, it missed a rebalance, or it left for not polling in time) is `thrown-out-below-limit`
//! unless a stall of its worker ran past the limit before it went.
//!
//! A stall longer than `max.poll.interval.ms` (which alone would have thrown the member out) but within
//! the limit, whose worker's members all stayed in while it ran, counts as
//! [`Event::SlowCallKeptMembership`]: the path this check is about was reached.

use std::time::Duration;

use crate::broker::Departure;
use crate::coverage::{Coverage, Event};
use crate::faults::FaultKind;
use crate::scenario::Scenario;
use crate::workload::{member_worker, Strike};

use super::cluster::Ownership;
use super::{Anomaly, AnomalyKind};

/// Fault kinds that cannot throw a member out but through a slow call.
const CALL_FAULTS: [FaultKind; 4] = [
    FaultKind::StallFlush,
    FaultKind::StallPut,
    FaultKind::FailFlush,
    FaultKind::Latency,
];

/// Judges the sink group's departures against the stalls that struck its workers.
pub fn check(
    scenario: &Scenario,
    strikes: &[Strike],
    sink_group: &Ownership,
    coverage: &mut Coverage,
) -> Vec<Anomaly> {
    let limit = scenario.put_flush_limit;
    let thrown_out: Vec<(&str, Duration, Departure)> = sink_group
        .departures()
        .filter(|(_, _, why)| *why != Departure::Left)
        .collect();
    for strike in strikes {
        let stalled = strike.to.saturating_sub(strike.from);
        let stayed = !thrown_out.iter().any(|(member, at, _)| {
            member_worker(member) == Some(strike.worker) && (strike.from..=strike.to).contains(at)
        });
        if stalled > scenario.max_poll_interval && stalled < limit && stayed {
            *coverage.entry(Event::SlowCallKeptMembership).or_insert(0) += 1;
        }
    }
    if !scenario
        .faults
        .iter()
        .all(|kind| CALL_FAULTS.contains(kind))
    {
        return Vec::new();
    }
    thrown_out
        .into_iter()
        .filter(|(member, at, _)| {
            !strikes.iter().any(|strike| {
                member_worker(member) == Some(strike.worker)
                    && strike.to.saturating_sub(strike.from) > limit
                    && strike.from + limit <= *at
            })
        })
        .map(|(member, at, why)| Anomaly {
            kind: AnomalyKind::ThrownOutBelowLimit,
            detail: format!(
                "{member} was thrown out of the sink's group ({why:?}) at {} ms, though no stall of its worker ran past put.flush.limit.ms ({} ms)",
                at.as_millis(),
                limit.as_millis()
            ),
        })
        .collect()
}
