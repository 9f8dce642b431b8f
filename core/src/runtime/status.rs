//! What each task of a worker is doing, for the worker's periodic status lines (one per task): whether it runs, failed
//! (and why) or stopped, and how many records it moved (acknowledged by Kafka for a source, handed to
//! `put` for a sink) since the last line, and whether a running task is blocked in a call past its
//! limit. An operator reading the log sees a task that failed or hangs while the others run on,
//! instead of a worker that looks healthy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::active_topics::{ActiveTopics, TopicTracker};
use super::metrics::{TaskMetrics, WorkerMetrics};

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

/// Every task's status, shared by the worker and its tasks, and the worker's metrics.
#[derive(Debug, Clone, Default)]
pub struct TaskStatuses {
    tasks: Arc<Mutex<BTreeMap<String, Status>>>,
    metrics: WorkerMetrics,
    topics: ActiveTopics,
}

impl TaskStatuses {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Status>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    pub fn active_topics(&self) -> &ActiveTopics {
        &self.topics
    }

    /// Registers a task as running; what it reports through the counter shows in the status lines, what
    /// it counts through `metrics` in the worker's metrics, and the topics it uses through `topics`.
    pub fn counter(&self, task: &str, metrics: TaskMetrics, topics: TopicTracker) -> TaskCounter {
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
            metrics,
            topics,
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

    /// A line for each task with its state, the records it moved since the last lines (which this
    /// starts counting afresh) and their rate over `period`, the time since then.
    pub fn lines(&self, period: Duration) -> Vec<String> {
        let mut statuses = self.lock();
        let seconds = period.as_secs_f64();
        statuses
            .iter_mut()
            .map(|(task, status)| {
                let moved = status.moved.swap(0, Ordering::Relaxed);
                let rate = match seconds > 0.0 {
                    true => moved as f64 / seconds,
                    false => 0.0,
                };
                let state = match (&status.state, &status.blocked) {
                    (TaskState::Running, None) => "running".to_owned(),
                    (TaskState::Running, Some(why)) => format!("running but BLOCKED ({why})"),
                    (TaskState::Stopped, _) => "stopped".to_owned(),
                    (TaskState::Failed(why), _) => format!("FAILED ({why})"),
                };
                format!("{task} {state}, {moved} records, {rate:.1}/s")
            })
            .collect()
    }
}

/// A task's side of its status.
#[derive(Debug, Clone, Default)]
pub struct TaskCounter {
    /// `None`: a task run outside a worker's status (its counts go nowhere).
    statuses: Option<TaskStatuses>,
    task: String,
    moved: Arc<AtomicU64>,
    metrics: TaskMetrics,
    topics: TopicTracker,
}

impl TaskCounter {
    /// The task used `topic` (wrote to it, or read from it).
    pub fn used_topic(&mut self, topic: &str) {
        self.topics.used(topic);
    }

    /// What the task counts in the worker's metrics.
    pub fn metrics(&self) -> &TaskMetrics {
        &self.metrics
    }

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
    fn each_task_has_a_line_with_its_state_and_the_records_since_the_last_lines() {
        let statuses = TaskStatuses::default();
        let source = statuses.counter("src-0", TaskMetrics::default(), TopicTracker::default());
        let sink = statuses.counter("sink-0", TaskMetrics::default(), TopicTracker::default());
        source.moved(5);
        source.moved(7);
        sink.moved(3);
        sink.ended(Some("cannot open out.txt".into()));
        let minute = Duration::from_secs(60);
        assert_eq!(
            statuses.lines(Duration::from_secs(2)),
            [
                "sink-0 FAILED (cannot open out.txt), 3 records, 1.5/s",
                "src-0 running, 12 records, 6.0/s"
            ]
        );
        source.blocked(Some("in put for over 30s".into()));
        assert_eq!(
            statuses.lines(minute),
            [
                "sink-0 FAILED (cannot open out.txt), 0 records, 0.0/s",
                "src-0 running but BLOCKED (in put for over 30s), 0 records, 0.0/s"
            ]
        );
        source.blocked(None);
        source.ended(None);
        source.moved(30);
        assert_eq!(
            statuses.lines(minute),
            [
                "sink-0 FAILED (cannot open out.txt), 0 records, 0.0/s",
                "src-0 stopped, 30 records, 0.5/s"
            ]
        );
    }

    #[test]
    fn a_counter_outside_a_worker_counts_nowhere() {
        let counter = TaskCounter::default();
        counter.moved(1);
        counter.ended(None);
    }
}
