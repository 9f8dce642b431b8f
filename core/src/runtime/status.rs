//! What each task of a worker is doing, for the worker's periodic status line: whether it runs, failed
//! (and why) or stopped, and how many records it moved (acknowledged by Kafka for a source, handed to
//! `put` for a sink) since the last line, and whether a running task is blocked in a call past its
//! limit. An operator reading the log sees a task that failed or hangs while the others run on,
//! instead of a worker that looks healthy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Failed(String),
    Stopped,
}

#[derive(Debug)]
struct Status {
    state: TaskState,
    /// Why a running task makes no progress (a `put` or `flush` past its limit), while it is so.
    blocked: Option<String>,
    /// Records moved since the last status line: counted by the task without the lock, as it moves
    /// each record.
    moved: Arc<AtomicU64>,
}

/// Every task's status, shared by the worker and its tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskStatuses(Arc<Mutex<BTreeMap<String, Status>>>);

impl TaskStatuses {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Status>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a task as running; what it reports through the counter shows in the status line.
    pub fn counter(&self, task: &str) -> TaskCounter {
        let moved = Arc::new(AtomicU64::new(0));
        self.lock().insert(
            task.to_owned(),
            Status {
                state: TaskState::Running,
                blocked: None,
                moved: moved.clone(),
            },
        );
        TaskCounter {
            statuses: Some(self.clone()),
            task: task.to_owned(),
            moved,
        }
    }

    /// A task's state, and why it is blocked if it is.
    pub fn state(&self, task: &str) -> Option<(TaskState, Option<String>)> {
        self.lock()
            .get(task)
            .map(|status| (status.state.clone(), status.blocked.clone()))
    }

    /// Forgets a task (its connector was deleted or stopped).
    pub fn remove(&self, task: &str) {
        self.lock().remove(task);
    }

    /// One line with every task's state and the records it moved since the last line (which this
    /// starts counting afresh).
    pub fn line(&self) -> String {
        let mut statuses = self.lock();
        let mut line = String::new();
        for (task, status) in statuses.iter_mut() {
            if !line.is_empty() {
                line.push_str("; ");
            }
            let moved = status.moved.swap(0, Ordering::Relaxed);
            let _ = match (&status.state, &status.blocked) {
                (TaskState::Running, None) => write!(line, "{task} running, {moved} records"),
                (TaskState::Running, Some(why)) => {
                    write!(line, "{task} running but BLOCKED ({why}), {moved} records")
                }
                (TaskState::Stopped, _) => write!(line, "{task} stopped, {moved} records"),
                (TaskState::Failed(why), _) => {
                    write!(line, "{task} FAILED ({why}), {moved} records")
                }
            };
        }
        line
    }
}

/// A task's side of its status.
#[derive(Debug, Clone, Default)]
pub struct TaskCounter {
    /// `None`: a task run outside a worker's status (its counts go nowhere).
    statuses: Option<TaskStatuses>,
    task: String,
    moved: Arc<AtomicU64>,
}

impl TaskCounter {
    fn update(&self, change: impl FnOnce(&mut Status)) {
        if let Some(statuses) = &self.statuses {
            if let Some(status) = statuses.lock().get_mut(&self.task) {
                change(status);
            }
        }
    }

    /// The task moved `records` records.
    pub fn moved(&self, records: u64) {
        self.moved.fetch_add(records, Ordering::Relaxed);
    }

    /// The task is blocked for this reason (`None`: no longer).
    pub fn blocked(&self, why: Option<String>) {
        self.update(|status| status.blocked = why);
    }

    /// The task ended: stopped, or failed for this reason.
    pub fn ended(&self, failure: Option<String>) {
        self.update(|status| {
            status.state = match failure {
                Some(why) => TaskState::Failed(why),
                None => TaskState::Stopped,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_gives_each_task_its_state_and_the_records_since_the_last_line() {
        let statuses = TaskStatuses::default();
        let source = statuses.counter("src-0");
        let sink = statuses.counter("sink-0");
        source.moved(5);
        source.moved(7);
        sink.moved(3);
        sink.ended(Some("cannot open out.txt".into()));
        assert_eq!(
            statuses.line(),
            "sink-0 FAILED (cannot open out.txt), 3 records; src-0 running, 12 records"
        );
        source.blocked(Some("in put for over 30s".into()));
        assert_eq!(
            statuses.line(),
            "sink-0 FAILED (cannot open out.txt), 0 records; src-0 running but BLOCKED (in put for over 30s), 0 records"
        );
        source.blocked(None);
        source.ended(None);
        assert_eq!(
            statuses.line(),
            "sink-0 FAILED (cannot open out.txt), 0 records; src-0 stopped, 0 records"
        );
    }

    #[test]
    fn a_counter_outside_a_worker_counts_nowhere() {
        let counter = TaskCounter::default();
        counter.moved(1);
        counter.ended(None);
    }
}
