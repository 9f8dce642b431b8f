//! An operator's REST calls during a run: pauses, stops, resumes, restarts, config changes and source
//! offset resets, made through the worker's control (what the REST API's handlers call) while rebalances
//! and faults go on. The driver sends each call to the worker it names; the worker serves them in order,
//! through whichever run of the worker is up (a call sent while the worker is down waits for it).
//!
//! After each call the connector must show the state asked for (RUNNING, PAUSED, STOPPED), and it must
//! still show it when the worker stops: otherwise a `wrong-connector-state` anomaly. What the operator
//! asked of each connector (with an answer) must outlive restarts of the worker, as the worker's
//! connector file keeps it: each connector is checked when the worker is back. A call the worker never
//! answered (it crashed or stopped meanwhile) may or may not have taken effect, so once the worker is
//! back the operator makes it again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_core::runtime::{State, TargetState, WorkerControl};
use tokio::sync::{mpsc, watch};

use super::journal::{lock, millis, SharedJournal};
use super::names::worker_name;
use crate::coverage::{self, Event};
use crate::faults::{Operation, Role};
use crate::oracle::{Anomaly, AnomalyKind};
use crate::timeline::{LaneKind, MarkKind};

/// A call, or the end of one that holds a connector for a while (a pause or a stop is resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Begin(Role, Operation),
    End(Role, Operation),
}

/// The calls sent to one worker, and what the operator asked of each of its connectors.
#[derive(Clone)]
pub(crate) struct Calls {
    sender: mpsc::UnboundedSender<Call>,
    inbox: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Call>>>,
    asked: Arc<Mutex<BTreeMap<String, TargetState>>>,
    /// A change of target state sent and not answered yet.
    pending: Arc<Mutex<Option<(String, TargetState)>>>,
    /// Counts config changes, each a new value of the changed key.
    revisions: Arc<AtomicU64>,
    /// Set while a call on the source is under way (the worker's source tasks stopping is expected).
    operating_source: Arc<AtomicBool>,
}

impl Calls {
    pub(crate) fn new() -> Calls {
        let (sender, inbox) = mpsc::unbounded_channel();
        Calls {
            sender,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
            asked: Arc::default(),
            pending: Arc::default(),
            revisions: Arc::default(),
            operating_source: Arc::default(),
        }
    }

    /// What tells the harness's watch of source tasks that the operator is stopping them.
    pub(crate) fn operating_source(&self) -> Arc<AtomicBool> {
        self.operating_source.clone()
    }

    pub(crate) fn send(&self, call: Call) {
        let _ = self.sender.send(call);
    }
}

/// The connectors of one run of a worker, by role.
pub(crate) struct Connectors {
    pub(crate) source: Option<String>,
    pub(crate) sink: String,
}

/// Serves the operator's calls through `control` until the worker is told to stop; then checks that
/// each connector shows what was last asked of it.
pub(crate) async fn serve(
    calls: Calls,
    control: WorkerControl,
    connectors: Connectors,
    journal: SharedJournal,
    worker: usize,
    mut stop: watch::Receiver<bool>,
) {
    control.view().ready().await;
    let operator = Operator {
        calls: &calls,
        control: &control,
        journal: &journal,
        worker,
    };
    let unanswered = calls
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some((name, target)) = unanswered {
        let source = connectors.source.as_deref() == Some(name.as_str());
        calls.operating_source.store(source, Ordering::Release);
        if control.set_target(&name, target).await.is_ok() {
            lock_asked(&calls.asked).insert(name, target);
        }
        calls.operating_source.store(false, Ordering::Release);
    }
    let asked = lock_asked(&calls.asked).clone();
    for (name, target) in asked {
        // A connector shows UNASSIGNED until the worker has started it.
        while control.view().status(&name).map(|s| s.state) == Some(State::Unassigned) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        operator.check(&name, target, "when the worker started again");
    }
    let mut inbox = calls.inbox.lock().await;
    let mut settled = true;
    loop {
        tokio::select! {
            biased;
            () = async { let _ = stop.wait_for(|stop| *stop).await; } => break,
            call = inbox.recv() => {
                let Some(call) = call else { break };
                let name = match call {
                    Call::Begin(Role::Source, _) | Call::End(Role::Source, _) => connectors.source.clone(),
                    Call::Begin(Role::Sink, _) | Call::End(Role::Sink, _) => Some(connectors.sink.clone()),
                };
                if let Some(name) = name {
                    let source = matches!(call, Call::Begin(Role::Source, _) | Call::End(Role::Source, _));
                    calls.operating_source.store(source, Ordering::Release);
                    settled = operator.make(call, &name).await;
                    calls.operating_source.store(false, Ordering::Release);
                }
            }
        }
    }
    if settled {
        for (name, target) in lock_asked(&calls.asked).clone() {
            operator.check(&name, target, "when the worker stopped");
        }
    }
}

/// The state a connector shows when `target` was asked for.
fn expected(target: TargetState) -> State {
    match target {
        TargetState::Started => State::Running,
        TargetState::Paused => State::Paused,
        TargetState::Stopped => State::Stopped,
    }
}

fn lock_asked(
    asked: &Mutex<BTreeMap<String, TargetState>>,
) -> std::sync::MutexGuard<'_, BTreeMap<String, TargetState>> {
    asked.lock().unwrap_or_else(|e| e.into_inner())
}

struct Operator<'a> {
    calls: &'a Calls,
    control: &'a WorkerControl,
    journal: &'a SharedJournal,
    worker: usize,
}

impl Operator<'_> {
    /// Makes one call; whether it took effect (a call the worker refused because it is stopping did not).
    async fn make(&self, call: Call, name: &str) -> bool {
        let target = match call {
            Call::Begin(_, Operation::Pause) => Some(TargetState::Paused),
            Call::Begin(_, Operation::Stop | Operation::ResetOffsets) => Some(TargetState::Stopped),
            Call::End(_, Operation::Pause | Operation::Stop | Operation::ResetOffsets) => {
                Some(TargetState::Started)
            }
            _ => None,
        };
        let outcome = match (call, target) {
            (_, Some(target)) => {
                *self.pending() = Some((name.to_owned(), target));
                let answer = self.control.set_target(name, target).await;
                if answer.is_ok() {
                    *self.pending() = None;
                    lock_asked(&self.calls.asked).insert(name.to_owned(), target);
                }
                answer
            }
            (Call::Begin(_, Operation::Restart), None) => {
                self.control.restart(name, true, false).await
            }
            (Call::Begin(_, Operation::ChangeConfig), None) => {
                let mut config = self.control.view().config(name).unwrap_or_default();
                let revision = self.calls.revisions.fetch_add(1, Ordering::Relaxed) + 1;
                config.insert("sim.revision".into(), revision.to_string());
                self.control.put(config).await.map(|_created| ())
            }
            _ => Ok(()),
        };
        let outcome = match (outcome, call) {
            (Ok(()), Call::Begin(Role::Source, Operation::ResetOffsets)) => {
                self.control.reset_offsets(name).await.map(|_| {
                    coverage::reached(Event::SourceOffsetsReset);
                })
            }
            (outcome, _) => outcome,
        };
        let what = match call {
            Call::Begin(_, operation) => format!("{operation:?}").to_lowercase(),
            Call::End(..) => "resume".to_owned(),
        };
        match outcome {
            Ok(()) => {
                coverage::reached(Event::OperatorCall);
                self.line(format!("operator: {what} {name}"));
                let asked = lock_asked(&self.calls.asked)
                    .get(name)
                    .copied()
                    .unwrap_or(TargetState::Started);
                self.check(name, asked, &format!("after {what}"));
                true
            }
            Err(e) => {
                self.line(format!("operator: {what} {name} refused: {e}"));
                false
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<(String, TargetState)>> {
        self.calls.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reports an anomaly unless the connector shows the state `target` asks for.
    fn check(&self, name: &str, target: TargetState, when: &str) {
        let expected = expected(target);
        let shown = self.control.view().status(name).map(|s| s.state);
        if shown != Some(expected) {
            let anomaly = Anomaly {
                kind: AnomalyKind::WrongConnectorState,
                detail: format!(
                    "worker-{}: {name} shows {shown:?} {when}, but the operator asked for {expected:?}",
                    self.worker
                ),
            };
            let now = crate::broker::now();
            lock(self.journal).check(now, |checks| checks.report(anomaly));
        }
    }

    fn line(&self, line: String) {
        let at = crate::broker::now();
        let lane = worker_name(self.worker);
        let mut journal = lock(self.journal);
        journal.trace.push(format!("{} {line}", millis(at)));
        journal.timeline.mark(
            (LaneKind::Worker, &lane),
            at,
            MarkKind::Lifecycle,
            "operator",
            line,
        );
    }
}
