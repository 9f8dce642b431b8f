//! What the runtime told the operator, where the oracle holds it to its word: today, the records retention
//! deleted before a sink task read them. The runtime says so in its log (an ERROR from
//! `sluice_core::runtime::retention` with the fields `partition`, `from` and `to`), so the simulation reads
//! the log: for the length of a run, a `tracing` subscriber passes every event on to the one already in
//! place (the `sluice sim` command's, or none) and keeps those reports.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use tracing::dispatcher::{self, DefaultGuard, Dispatch};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::span::Current;

use crate::protocol::Tp;

/// Where the runtime reports records deleted by retention.
const RETENTION_TARGET: &str = "sluice_core::runtime::retention";

type Reports = Arc<Mutex<Vec<(Tp, Range<i64>)>>>;

/// Listens to the runtime's log on this thread (where the whole simulation runs) until dropped.
pub(super) struct Listening {
    reports: Reports,
    _guard: DefaultGuard,
}

/// Starts listening.
pub(super) fn listen() -> Listening {
    let reports = Reports::default();
    let inner = dispatcher::get_default(Dispatch::clone);
    let guard = dispatcher::set_default(&Dispatch::new(PassOn {
        inner,
        reports: reports.clone(),
    }));
    Listening {
        reports,
        _guard: guard,
    }
}

impl Listening {
    /// The ranges sink tasks reported as deleted by retention so far, in the order told.
    pub(super) fn reported(&self) -> Vec<(Tp, Range<i64>)> {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops listening; the ranges sink tasks reported as deleted by retention, in the order told.
    pub(super) fn finish(self) -> Vec<(Tp, Range<i64>)> {
        let reports = std::mem::take(&mut *self.reports.lock().unwrap_or_else(|e| e.into_inner()));
        reports
    }
}

fn is_retention_report(metadata: &Metadata<'_>) -> bool {
    metadata.is_event()
        && *metadata.level() == Level::ERROR
        && metadata.target() == RETENTION_TARGET
}

/// Passes everything on to `inner`, keeping the retention reports on the way.
struct PassOn {
    inner: Dispatch,
    reports: Reports,
}

impl Subscriber for PassOn {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match is_retention_report(metadata) {
            true => Interest::always(),
            false => self.inner.register_callsite(metadata),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_retention_report(metadata) || self.inner.enabled(metadata)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event(&self, event: &Event<'_>) {
        if is_retention_report(event.metadata()) {
            let mut fields = ReportFields::default();
            event.record(&mut fields);
            if let (Some(tp), Some(from), Some(to)) = (fields.partition, fields.from, fields.to) {
                self.reports
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((tp, from..to));
            }
        }
        if self.inner.enabled(event.metadata()) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> Current {
        self.inner.current_span()
    }
}

/// The fields of a retention report.
#[derive(Default)]
struct ReportFields {
    partition: Option<Tp>,
    from: Option<i64>,
    to: Option<i64>,
}

impl Visit for ReportFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "from" => self.from = Some(value),
            "to" => self.to = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "partition" {
            // Displayed as `topic-partition`; a topic name may contain dashes, a partition number not.
            let text = format!("{value:?}");
            self.partition = text
                .rsplit_once('-')
                .and_then(|(topic, partition)| Some(Tp::new(topic, partition.parse().ok()?)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reports_are_kept_and_other_events_are_not() {
        let listening = listen();
        tracing::error!(target: "sluice_core::runtime::retention", partition = %"my-topic-3", lost = 5i64, from = 10i64, to = 15i64, "deleted");
        tracing::warn!(target: "sluice_core::runtime::retention", partition = %"my-topic-3", from = 1i64, to = 2i64, "not an error");
        tracing::error!(target: "elsewhere", partition = %"my-topic-3", from = 1i64, to = 2i64, "another error");
        assert_eq!(listening.finish(), vec![(Tp::new("my-topic", 3), 10..15)]);
    }
}
