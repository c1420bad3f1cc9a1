//! The rule manager: runs every group on its own schedule (one thread per
//! group), replaces the rule set on reload keeping the state of unchanged
//! rules, and stops everything on shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::env::RuleEnv;
use crate::error::RuleError;
use crate::group::{now_ms, Group};
use crate::model::GroupSpec;

/// A stop flag a sleeping thread can wait on.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    fn stop(&self) {
        *self.stopped.lock() = true;
        self.cv.notify_all();
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    /// Sleeps until wall-clock `deadline_ns`; true if stopped meanwhile.
    fn sleep_until_ns(&self, deadline_ns: i64) -> bool {
        let mut stopped = self.stopped.lock();
        loop {
            if *stopped {
                return true;
            }
            let now = now_ns();
            if now >= deadline_ns {
                return false;
            }
            let wait = Duration::from_nanos((deadline_ns - now) as u64);
            self.cv.wait_for(&mut stopped, wait);
        }
    }
}

#[derive(Debug)]
struct Running {
    group: Arc<Group>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop_and_join(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs rule groups (Prometheus' `rules.Manager`).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tidemark_rules::{GroupSpec, RuleEnv, RuleManager, RuleSpec};
///
/// let db = Arc::new(tidemark_storage::Db::in_memory().unwrap());
/// let env = RuleEnv::new(db, Arc::new(tidemark_promql::Engine::default()));
/// let manager = RuleManager::new(env);
/// manager
///     .update(vec![GroupSpec::new("g").interval(Duration::from_secs(15)).rule(RuleSpec::recording("one", "vector(1)"))])
///     .unwrap();
/// assert_eq!(manager.groups().len(), 1);
/// manager.stop();
/// ```
#[derive(Debug)]
pub struct RuleManager {
    env: Arc<RuleEnv>,
    groups: Mutex<BTreeMap<(String, String), Running>>,
    /// Set by the first update: groups of later updates do not restore
    /// `for` state (they are new rules, not a restart).
    started: AtomicBool,
    /// Removed groups waiting to mark their series stale.
    removed: Mutex<Vec<JoinHandle<()>>>,
    stopping: Arc<StopSignal>,
    /// False for [`RuleManager::unscheduled`]: groups get no thread.
    scheduled: bool,
}

impl RuleManager {
    /// A manager with no groups.
    pub fn new(env: RuleEnv) -> RuleManager {
        RuleManager::with_schedule(env, true)
    }

    /// A manager whose groups are never evaluated on their own: the caller
    /// drives them ([`groups`](Self::groups), then
    /// [`Group::eval_iteration`] at timestamps of its choosing). For tests
    /// of what reads the manager (the HTTP API, self-metrics) and for
    /// embedders with their own clock; [`update`](Self::update) works as
    /// for a scheduled manager.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tidemark_rules::{GroupSpec, RuleEnv, RuleManager, RuleSpec};
    ///
    /// let db = Arc::new(tidemark_storage::Db::in_memory().unwrap());
    /// let manager = RuleManager::unscheduled(RuleEnv::new(db, Arc::new(tidemark_promql::Engine::default())));
    /// manager.update(vec![GroupSpec::new("g").rule(RuleSpec::recording("one", "vector(1)"))]).unwrap();
    /// manager.groups()[0].eval_iteration(60_000);
    /// assert_eq!(manager.groups()[0].stats().last_eval_timestamp_ms, 60_000);
    /// ```
    pub fn unscheduled(env: RuleEnv) -> RuleManager {
        RuleManager::with_schedule(env, false)
    }

    fn with_schedule(env: RuleEnv, scheduled: bool) -> RuleManager {
        RuleManager {
            env: Arc::new(env),
            groups: Mutex::default(),
            started: AtomicBool::new(false),
            removed: Mutex::default(),
            stopping: Arc::default(),
            scheduled,
        }
    }

    /// The shared environment.
    pub fn env(&self) -> &Arc<RuleEnv> {
        &self.env
    }

    /// Replaces the rule set with `specs`. Every group is built first; if
    /// one fails, nothing changes. Groups whose definition did not change
    /// keep running untouched; changed ones restart with the state of their
    /// unchanged rules; removed ones stop and their series are marked stale
    /// two intervals later (a renamed rule has written by then).
    pub fn update(&self, specs: Vec<GroupSpec>) -> Result<(), RuleError> {
        if self.stopping.is_stopped() {
            return Ok(());
        }
        let first = !self.started.load(Ordering::Acquire);
        let mut groups = self.groups.lock();
        let mut seen = std::collections::HashSet::new();
        let mut built: Vec<((String, String), Option<Group>)> = Vec::with_capacity(specs.len());
        for spec in specs {
            let key = (spec.file.clone(), spec.name.clone());
            if !seen.insert(key.clone()) {
                return Err(RuleError::DuplicateGroup { file: spec.file.clone(), name: spec.name.clone() });
            }
            match groups.get(&key) {
                Some(old) if old.group.same_definition(&spec) => built.push((key, None)),
                _ => built.push((key, Some(Group::new(spec, self.env.clone(), first)?))),
            }
        }
        let mut old_groups = std::mem::take(&mut *groups);
        for (key, new) in built {
            match new {
                None => {
                    let running = old_groups.remove(&key).expect("kept group exists");
                    groups.insert(key, running);
                }
                Some(group) => {
                    if let Some(mut old) = old_groups.remove(&key) {
                        old.stop_and_join();
                        group.copy_state(&old.group);
                    }
                    groups.insert(key, self.spawn(Arc::new(group)));
                }
            }
        }
        for (_, mut old) in old_groups {
            old.stop_and_join();
            let group = old.group.clone();
            let stopping = self.stopping.clone();
            let wait = 2 * group.interval();
            let handle = std::thread::Builder::new()
                .name("rules-stale".into())
                .spawn(move || {
                    let deadline = now_ns() + wait.as_nanos() as i64;
                    let now = now_ms();
                    if !stopping.sleep_until_ns(deadline) {
                        group.mark_all_stale(now);
                    }
                })
                .ok();
            let mut removed = self.removed.lock();
            removed.retain(|h| !h.is_finished());
            removed.extend(handle);
        }
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    fn spawn(&self, group: Arc<Group>) -> Running {
        let stop = Arc::new(StopSignal::default());
        if !self.scheduled {
            return Running { group, stop, thread: None };
        }
        let thread = {
            let g = group.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("rules-{}", group.name().chars().take(8).collect::<String>()))
                .spawn(move || run_group(&g, &stop))
                .map_err(|e| tracing::error!(group = %group.name(), error = %e, "cannot start the group's thread"))
                .ok()
        };
        Running { group, stop, thread }
    }

    /// The running groups, ordered by file then name.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups.lock().values().map(|r| r.group.clone()).collect()
    }

    /// Stops every group: queries in flight are cancelled, threads joined.
    pub fn stop(&self) {
        self.stopping.stop();
        self.env.cancel.cancel();
        let mut groups = self.groups.lock();
        for r in groups.values_mut() {
            r.stop_and_join();
        }
        for h in self.removed.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The group's schedule (Prometheus' `Group.run`): wait for the group's
/// first slot, evaluate at `slot`, `slot + interval`, …; an iteration that
/// overruns skips the slots it covered and counts them missed. With
/// `should_restore`, `for` state is restored after the second iteration, so
/// recording rules the alerts read have caught up.
fn run_group(group: &Group, stop: &StopSignal) {
    let interval = group.interval().as_nanos().max(1_000_000) as i64;
    let mut eval_ts = group.eval_timestamp_ns(now_ns()) + interval;
    if stop.sleep_until_ns(eval_ts) {
        return;
    }
    group.eval_iteration(eval_ts / 1_000_000);
    let mut restore_pending = group.should_restore();
    loop {
        if stop.sleep_until_ns(eval_ts + interval) {
            return;
        }
        let missed = ((now_ns() - eval_ts) / interval - 1).max(0);
        if missed > 0 {
            group.count_missed(missed as u64);
        }
        eval_ts += (missed + 1) * interval;
        group.eval_iteration(eval_ts / 1_000_000);
        if restore_pending {
            group.restore_for_state(now_ms());
            restore_pending = false;
        }
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}
