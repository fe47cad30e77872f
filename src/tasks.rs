//! One supervisor for the daemon's background tasks: one [`TaskTracker`], one
//! [`CancellationToken`], and [`Supervisor::spawn`]`(name, policy, factory)`.
//!
//! ```text
//!  spawn(name, policy, factory) ──► run factory(token) ──► returns after the token fired: stopped
//!                                          │
//!        panics / returns an error / returns before shutdown: a failure
//!                                          ▼
//!        log it with the name · drover_task_failures_total{task} += 1 · listed by /readyz
//!          Restart:  wait the backoff (1 s, doubling to 60 s; back to 1 s after a run of
//!                    60 s) ──► run factory(token) again
//!          Critical: cancel the token: every task stops and the daemon exits non-zero
//!
//!  stop(grace): wait for the token ──► wait `grace` for every task ──► log the names of
//!               those still running ──► keep waiting for them (a second signal exits at once)
//! ```
//!
//! Every task runs on its own tokio task inside the tracker, so a panic is caught by its
//! `JoinHandle` rather than taking down the loop that watches it. A task is a factory, not
//! a future, so that it can be started again after a failure; the token it receives is the
//! one shutdown cancels.
//!
//! [`TaskHealth`] is what the rest of the daemon sees: the state holds a clone, and
//! `/readyz` names the tasks that failed recently (a task stays listed until it has run
//! [`Backoff::settle`] since its last restart). A failing task does not make the replica
//! unready: it restarts on its own, and resolution works without, say, the webhook worker.
//!
//! This module imports no domain (it takes the failure counter, not the metrics), so the
//! unit tests below drive it with real panicking futures: restart, counter, the readiness
//! list and the shutdown report. The integration tests (`tests/api/supervisor.rs`) add a
//! panicking task to a real daemon through `Application::run_with` (`src/app.rs`) and watch
//! `/readyz` and `/metrics`, rather than planting a fault-injection point in a domain loop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// What happens when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Started again after a backoff, until shutdown.
    Restart,
    /// The daemon cannot work without it (the HTTP server): its failure stops the daemon,
    /// which then exits with an error naming the task.
    Critical,
}

/// How long a failed [`Policy::Restart`] task waits before it runs again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait after a first failure (or after a run that lasted `settle`).
    pub first: Duration,
    /// The wait doubles up to this.
    pub max: Duration,
    /// A run this long counts as healthy: the next failure waits `first` again, and the
    /// task leaves the readiness list.
    pub settle: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            settle: Duration::from_secs(60),
        }
    }
}

/// What a task's future returns: `()`, or a `Result` whose error is its failure.
pub trait TaskExit {
    /// The failure, if any.
    fn failure(self) -> Option<String>;
}

impl TaskExit for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> TaskExit for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| format!("failed: {e:#}"))
    }
}

/// A task that failed recently, as `/readyz` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FailingTask {
    /// The task's name (`wave-worker`, `webhook-worker`, …).
    pub task: String,
    /// Its failures since this replica started.
    pub failures: u64,
    /// The last one: `panicked: …`, `failed: …` or `returned before shutdown`.
    pub last_failure: String,
}

#[derive(Debug, Default)]
struct Status {
    running: bool,
    started: Option<Instant>,
    failures: u64,
    last_failure: Option<String>,
}

/// The tasks' current health, shared between the supervisor and `/readyz`. Cloning
/// shares it.
#[derive(Debug, Clone)]
pub struct TaskHealth {
    tasks: Arc<Mutex<BTreeMap<&'static str, Status>>>,
    settle: Duration,
}

impl Default for TaskHealth {
    fn default() -> Self {
        TaskHealth::new(Backoff::default().settle)
    }
}

impl TaskHealth {
    /// Health whose failed tasks leave the list after running `settle` again.
    pub fn new(settle: Duration) -> Self {
        TaskHealth {
            tasks: Arc::default(),
            settle,
        }
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut Status)) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        f(tasks.entry(name).or_default());
    }

    /// Tasks that failed and have not yet run `settle` since, by name.
    pub fn failing(&self) -> Vec<FailingTask> {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .iter()
            .filter_map(|(name, s)| {
                let last = s.last_failure.as_ref()?;
                let settled = s.running && s.started.is_some_and(|t| t.elapsed() >= self.settle);
                (!settled).then(|| FailingTask {
                    task: (*name).to_owned(),
                    failures: s.failures,
                    last_failure: last.clone(),
                })
            })
            .collect()
    }

    /// Tasks still running, by name.
    pub fn running(&self) -> Vec<&'static str> {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .iter()
            .filter(|(_, s)| s.running)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// A critical task failed: the daemon stopped because of it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("task {task} {failure}; the daemon stopped")]
pub struct CriticalFailure {
    /// The task's name.
    pub task: &'static str,
    /// What happened to it.
    pub failure: String,
}

/// How the tasks stopped.
#[derive(Debug)]
pub struct Stopped {
    /// Tasks that had not stopped when the shutdown grace ran out (they were waited for).
    pub late: Vec<&'static str>,
    /// The critical task whose failure stopped the daemon, if any.
    pub critical: Option<CriticalFailure>,
}

/// Runs named background tasks under one token; see the module header.
#[derive(Clone)]
pub struct Supervisor {
    tracker: TaskTracker,
    token: CancellationToken,
    health: TaskHealth,
    failures: IntCounterVec,
    backoff: Backoff,
    critical: Arc<Mutex<Option<CriticalFailure>>>,
}

impl Supervisor {
    /// A supervisor whose tasks stop when `token` is cancelled, recording into `health`
    /// and counting failures in `failures` (labelled by task name).
    pub fn new(token: CancellationToken, health: TaskHealth, failures: IntCounterVec) -> Self {
        Supervisor {
            tracker: TaskTracker::new(),
            token,
            backoff: Backoff {
                settle: health.settle,
                ..Backoff::default()
            },
            health,
            failures,
            critical: Arc::default(),
        }
    }

    /// The same supervisor with another restart backoff (the tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The token every task watches; cancelling it starts the shutdown.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Runs `factory(token)` as the task `name`, supervised under `policy`.
    pub fn spawn<F, Fut>(&self, name: &'static str, policy: Policy, factory: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskExit + Send,
    {
        // The series exists (at 0) from the start, so an alert on its increase has a base.
        self.failures.with_label_values(&[name]);
        let this = self.clone();
        self.tracker.spawn(this.supervise(name, policy, factory));
    }

    async fn supervise<F, Fut>(self, name: &'static str, policy: Policy, mut factory: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskExit + Send,
    {
        let mut delay = self.backoff.first;
        loop {
            let started = Instant::now();
            self.health.update(name, |s| {
                s.running = true;
                s.started = Some(started);
            });
            let run =
                factory(self.token.clone()).instrument(tracing::info_span!("task", name = name));
            let failure = match self.tracker.spawn(run).await {
                Ok(exit) => exit.failure().or_else(|| {
                    (!self.token.is_cancelled()).then(|| "returned before shutdown".to_owned())
                }),
                Err(e) if e.is_panic() => Some(format!("panicked: {}", panic_message(e))),
                Err(e) => Some(format!("was cancelled: {e}")),
            };
            let Some(failure) = failure else {
                self.health.update(name, |s| s.running = false);
                return;
            };
            self.failures.with_label_values(&[name]).inc();
            self.health.update(name, |s| {
                s.running = false;
                s.failures += 1;
                s.last_failure = Some(failure.clone());
            });
            if policy == Policy::Critical {
                tracing::error!(task = name, %failure, "a critical task stopped: stopping the daemon");
                self.critical
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(CriticalFailure {
                        task: name,
                        failure,
                    });
                self.token.cancel();
                return;
            }
            if self.token.is_cancelled() {
                tracing::error!(task = name, %failure, "task failed while shutting down");
                return;
            }
            if started.elapsed() >= self.backoff.settle {
                delay = self.backoff.first;
            }
            tracing::error!(task = name, %failure, restart_in = ?delay, "task failed; restarting it");
            tokio::select! {
                _ = self.token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.backoff.max);
        }
    }

    /// Waits until shutdown starts (the token is cancelled: a signal, or a critical task
    /// failed), then for every task, logging by name those not stopped within `grace`.
    pub async fn stop(self, grace: Duration) -> Stopped {
        self.token.cancelled().await;
        self.tracker.close();
        let mut late = Vec::new();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            late = self.health.running();
            tracing::warn!(tasks = ?late, ?grace,
                "tasks did not stop within the shutdown grace; still waiting for them");
            self.tracker.wait().await;
        }
        let critical = self
            .critical
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Stopped { late, critical }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(40),
        settle: Duration::from_secs(60),
    };

    fn supervisor() -> (Supervisor, TaskHealth, IntCounterVec) {
        let failures = IntCounterVec::new(prometheus::Opts::new("f", "f"), &["task"]).unwrap();
        let health = TaskHealth::new(FAST.settle);
        let s = Supervisor::new(CancellationToken::new(), health.clone(), failures.clone())
            .with_backoff(FAST);
        (s, health, failures)
    }

    async fn wait_for(mut done: impl FnMut() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("condition within 10 s");
    }

    #[tokio::test]
    async fn a_panicking_task_is_counted_listed_and_restarted_until_it_runs() {
        let (s, health, failures) = supervisor();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        s.spawn("flaky", Policy::Restart, move |token: CancellationToken| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("flaky run {n} broke");
                }
                token.cancelled().await;
            }
        });
        wait_for(|| runs.load(Ordering::SeqCst) == 3).await;
        let listed = health.failing();
        s.token().cancel();
        let stopped = s.stop(Duration::from_secs(5)).await;

        assert_eq!(failures.with_label_values(&["flaky"]).get(), 2);
        assert_eq!(
            listed,
            vec![FailingTask {
                task: "flaky".into(),
                failures: 2,
                last_failure: "panicked: flaky run 1 broke".into(),
            }]
        );
        assert!(stopped.late.is_empty(), "{:?}", stopped.late);
        assert!(stopped.critical.is_none());
    }

    #[tokio::test]
    async fn a_task_returning_early_or_with_an_error_is_a_failure_and_one_that_settles_is_not_listed(
    ) {
        let failures = IntCounterVec::new(prometheus::Opts::new("f", "f"), &["task"]).unwrap();
        let settle = Duration::from_millis(50);
        let health = TaskHealth::new(settle);
        let s = Supervisor::new(CancellationToken::new(), health.clone(), failures.clone())
            .with_backoff(Backoff { settle, ..FAST });
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        s.spawn("early", Policy::Restart, move |token: CancellationToken| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Ok(()),
                    1 => Err("the database went away"),
                    _ => {
                        token.cancelled().await;
                        Ok(())
                    }
                }
            }
        });
        wait_for(|| runs.load(Ordering::SeqCst) == 3).await;
        let failing_at_once = health.failing();
        wait_for(|| health.failing().is_empty()).await;
        s.token().cancel();
        s.stop(Duration::from_secs(5)).await;

        assert_eq!(failures.with_label_values(&["early"]).get(), 2);
        assert_eq!(failing_at_once.len(), 1);
        assert_eq!(
            failing_at_once[0].last_failure,
            "failed: the database went away"
        );
    }

    #[tokio::test]
    async fn a_critical_task_that_panics_stops_every_task_and_is_reported() {
        let (s, _health, failures) = supervisor();
        let stopped_cleanly = Arc::new(AtomicU32::new(0));
        let c = stopped_cleanly.clone();
        s.spawn(
            "worker",
            Policy::Restart,
            move |token: CancellationToken| {
                let c = c.clone();
                async move {
                    token.cancelled().await;
                    c.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        fn serve() {
            panic!("listener broke")
        }
        s.spawn(
            "http",
            Policy::Critical,
            |_token: CancellationToken| async { serve() },
        );
        let stopped = tokio::time::timeout(Duration::from_secs(10), s.stop(Duration::from_secs(5)))
            .await
            .expect("a critical failure starts the shutdown by itself");

        let critical = stopped.critical.expect("the critical failure");
        assert_eq!(critical.task, "http");
        assert_eq!(critical.failure, "panicked: listener broke");
        assert_eq!(failures.with_label_values(&["http"]).get(), 1);
        assert_eq!(
            stopped_cleanly.load(Ordering::SeqCst),
            1,
            "the others stopped"
        );
    }

    #[tokio::test]
    async fn shutdown_names_a_task_that_outlives_the_grace_and_still_waits_for_it() {
        let (s, _health, _failures) = supervisor();
        let finished = Arc::new(AtomicU32::new(0));
        let f = finished.clone();
        s.spawn(
            "slow-drain",
            Policy::Restart,
            move |token: CancellationToken| {
                let f = f.clone();
                async move {
                    token.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        s.spawn(
            "quick",
            Policy::Restart,
            |token: CancellationToken| async move {
                token.cancelled().await;
            },
        );
        s.token().cancel();
        let stopped = s.stop(Duration::from_millis(50)).await;

        assert_eq!(stopped.late, vec!["slow-drain"]);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "waited for it after all"
        );
    }
}
