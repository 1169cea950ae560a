//! What each of a process's tasks says about itself, for `/ready`.
//!
//! Every long-running task of a worker (a consumer loop, the HTTP server)
//! has a named entry. A task that cannot do its job for now (its
//! dependency is down, its pull stream is being rebuilt) says so and is
//! `degraded` until it works again; a task that ended when it was not asked
//! to is `failed` for good. The process is ready only while every entry is
//! `ok`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One task's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Ok,
    /// Working around a problem that may pass; the reason says which.
    Degraded(String),
    /// Ended without being asked to; the reason says why.
    Failed(String),
}

/// The health of a process's tasks. Cheap to clone; clones share entries.
#[derive(Debug, Clone, Default)]
pub struct Health {
    tasks: Arc<Mutex<BTreeMap<String, TaskState>>>,
}

impl Health {
    /// An empty registry: a process with no tasks is ready.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `task`'s state. A failed task stays failed.
    pub fn set(&self, task: &str, state: TaskState) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        match tasks.get_mut(task) {
            Some(TaskState::Failed(_)) => {}
            Some(current) => *current = state,
            None => {
                tasks.insert(task.to_owned(), state);
            }
        }
    }

    /// `task` works.
    pub fn ok(&self, task: &str) {
        self.set(task, TaskState::Ok);
    }

    /// `task` works around a problem, named by `reason`.
    pub fn degraded(&self, task: &str, reason: impl Into<String>) {
        self.set(task, TaskState::Degraded(reason.into()));
    }

    /// `task` ended without being asked to, because of `reason`.
    pub fn failed(&self, task: &str, reason: impl Into<String>) {
        self.set(task, TaskState::Failed(reason.into()));
    }

    /// `task` ended as asked: it no longer counts.
    pub fn remove(&self, task: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(tasks.get(task), Some(TaskState::Failed(_))) {
            tasks.remove(task);
        }
    }

    /// The handle through which the task named `task` reports itself.
    #[must_use]
    pub fn task(&self, task: impl Into<String>) -> TaskHealth {
        TaskHealth {
            health: self.clone(),
            task: task.into(),
        }
    }

    /// Every task and its state, by name.
    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, TaskState> {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One task's entry in its process's [`Health`].
#[derive(Debug, Clone)]
pub struct TaskHealth {
    health: Health,
    task: String,
}

impl TaskHealth {
    /// The task's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.task
    }

    /// The task works.
    pub fn ok(&self) {
        self.health.ok(&self.task);
    }

    /// The task works around a problem, named by `reason`.
    pub fn degraded(&self, reason: impl Into<String>) {
        self.health.degraded(&self.task, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_task_stays_failed() {
        let h = Health::new();
        h.ok("detector.consumer.0");
        h.degraded("detector.consumer.0", "pull stream ended; rebuilding");
        assert_eq!(
            h.snapshot()["detector.consumer.0"],
            TaskState::Degraded("pull stream ended; rebuilding".into())
        );
        h.failed("detector.consumer.0", "consumer deleted");
        h.ok("detector.consumer.0");
        h.remove("detector.consumer.0");
        assert_eq!(
            h.snapshot()["detector.consumer.0"],
            TaskState::Failed("consumer deleted".into())
        );
    }

    #[test]
    fn a_task_that_stopped_as_asked_no_longer_counts() {
        let h = Health::new();
        h.ok("gateway.http");
        h.remove("gateway.http");
        assert!(h.snapshot().is_empty());
    }
}
