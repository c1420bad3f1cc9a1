//! A rule group: its rules evaluated in order at one timestamp, the
//! samples they produce appended to the database, staleness markers for
//! series that disappear, alerts handed to the sink, and `for` state
//! restored after a start, as Prometheus' `rules/group.go`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tidemark_storage::histogram::HistogramValue;
use tidemark_storage::{stale_nan, AppendError, Labels};

use crate::alerting::{Alert, AlertState, AlertingRule};
use crate::env::{RuleEnv, RuleSample};
use crate::error::RuleError;
use crate::model::{GroupSpec, RuleKind};
use crate::recording::RecordingRule;
use crate::status::{RuleHealth, RuleStatus};
use std::sync::Arc;

/// One rule of a group.
#[derive(Debug)]
pub enum Rule {
    /// A recording rule.
    Recording(RecordingRule),
    /// An alerting rule.
    Alerting(AlertingRule),
}

impl Rule {
    /// The recorded metric or the alert name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.name,
            Rule::Alerting(r) => &r.name,
        }
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(r) => &r.expr,
        }
    }

    /// The expression as Prometheus prints it (`expr.String()`), as the
    /// rules API shows it.
    pub fn query(&self) -> &str {
        match self {
            Rule::Recording(r) => r.query(),
            Rule::Alerting(r) => r.query(),
        }
    }

    /// The rule's labels (group labels merged in).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Rule::Recording(r) => &r.labels,
            Rule::Alerting(r) => &r.labels,
        }
    }

    /// The outcome of the last evaluation.
    pub fn status(&self) -> RuleStatus {
        match self {
            Rule::Recording(r) => r.status.lock().clone(),
            Rule::Alerting(r) => r.status.lock().clone(),
        }
    }

    fn status_mut(&self) -> parking_lot::MutexGuard<'_, RuleStatus> {
        match self {
            Rule::Recording(r) => r.status.lock(),
            Rule::Alerting(r) => r.status.lock(),
        }
    }

    /// Identity across reloads (Prometheus' `nameAndLabels`).
    fn identity(&self) -> String {
        format!("{}{:?}", self.name(), self.labels())
    }
}

/// Counters and last-iteration figures of a group (its self-metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupStats {
    /// Iterations scheduled (evaluated or missed).
    pub iterations_scheduled: u64,
    /// Iterations missed because the previous one ran too long.
    pub iterations_missed: u64,
    /// Rule evaluations.
    pub rule_evaluations: u64,
    /// Rule evaluations that failed.
    pub rule_evaluation_failures: u64,
    /// Duration of the last iteration.
    pub last_duration: Duration,
    /// Wall-clock start of the last iteration (ms; 0 = never).
    pub last_evaluation_ms: i64,
    /// Evaluation timestamp of the last iteration (ms; 0 = never).
    pub last_eval_timestamp_ms: i64,
    /// Samples the last iteration produced.
    pub last_samples: u64,
    /// Duration of the `for` state restoration, once done.
    pub last_restore_duration: Option<Duration>,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Per rule: the series it wrote at its last successful evaluation.
    previous: Vec<HashSet<Labels>>,
    /// Series of rules that no longer exist, to be marked stale.
    stale: Vec<Labels>,
}

/// A group ready to evaluate. Evaluation is driven from outside: by the
/// [`RuleManager`](crate::RuleManager)'s scheduler, or by a test at chosen
/// timestamps.
///
/// ```
/// use std::sync::Arc;
/// use tidemark_rules::{Group, GroupSpec, RuleEnv, RuleSpec};
/// use tidemark_storage::{Db, Labels};
///
/// let db = Arc::new(Db::in_memory().unwrap());
/// let up = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
/// let mut app = db.appender();
/// app.append(&up, 0, 0.0).unwrap();
/// app.commit_relaxed().unwrap();
///
/// let env = Arc::new(RuleEnv::new(db.clone(), Arc::new(tidemark_promql::Engine::default())));
/// let spec = GroupSpec::new("example")
///     .rule(RuleSpec::recording("job:up:sum", "sum by (job) (up)"))
///     .rule(RuleSpec::alerting("InstanceDown", "up == 0"));
/// let group = Group::new(spec, env, false).unwrap();
/// group.eval(60_000);
/// let alerts = group.alerts();
/// assert_eq!(alerts[0].1.labels["alertname"], "InstanceDown");
/// ```
#[derive(Debug)]
pub struct Group {
    spec: GroupSpec,
    interval: Duration,
    query_offset: Duration,
    rules: Vec<Rule>,
    env: Arc<RuleEnv>,
    state: Mutex<GroupState>,
    stats: Mutex<GroupStats>,
    should_restore: std::sync::atomic::AtomicBool,
}

impl Group {
    /// Builds a group from its spec. Every expression must parse.
    /// `should_restore` asks for `for` state to be restored from
    /// `ALERTS_FOR_STATE` (at a start; not for groups added by a reload).
    pub fn new(spec: GroupSpec, env: Arc<RuleEnv>, should_restore: bool) -> Result<Group, RuleError> {
        let interval = spec.interval.unwrap_or(env.evaluation_interval);
        let query_offset = spec.query_offset.unwrap_or(env.query_offset);
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.iter().enumerate() {
            let parsed = tidemark_promql::parse(&r.expr).map_err(|e| RuleError::Parse {
                group: spec.name.clone(),
                index: i + 1,
                name: r.name().to_string(),
                message: e.to_string(),
            })?;
            let mut labels = spec.labels.clone();
            labels.extend(r.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            rules.push(match &r.kind {
                RuleKind::Recording { record } => {
                    Rule::Recording(RecordingRule::new(record.clone(), r.expr.clone(), parsed.to_string(), labels))
                }
                RuleKind::Alerting { alert, for_duration, keep_firing_for, annotations } => {
                    Rule::Alerting(AlertingRule::new(
                        alert.clone(),
                        r.expr.clone(),
                        parsed.to_string(),
                        *for_duration,
                        *keep_firing_for,
                        labels,
                        annotations.clone(),
                        !should_restore,
                    ))
                }
            });
        }
        let previous = vec![HashSet::new(); rules.len()];
        Ok(Group {
            spec,
            interval,
            query_offset,
            rules,
            env,
            state: Mutex::new(GroupState { previous, stale: Vec::new() }),
            stats: Mutex::default(),
            should_restore: std::sync::atomic::AtomicBool::new(should_restore),
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The file it came from (empty for groups built in code).
    pub fn file(&self) -> &str {
        &self.spec.file
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }

    /// Evaluation interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Query offset in force.
    pub fn query_offset(&self) -> Duration {
        self.query_offset
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The group's counters and last-iteration figures.
    pub fn stats(&self) -> GroupStats {
        self.stats.lock().clone()
    }

    /// Every alert of every alerting rule (resolved ones included), with the
    /// alert name, in rule order.
    pub fn alerts(&self) -> Vec<(String, Alert)> {
        let mut out = Vec::new();
        for r in &self.rules {
            if let Rule::Alerting(a) = r {
                out.extend(a.alerts().into_iter().map(|al| (a.name.clone(), al)));
            }
        }
        out
    }

    /// Counts iterations skipped because the previous one overran.
    pub fn count_missed(&self, n: u64) {
        let mut st = self.stats.lock();
        st.iterations_missed += n;
        st.iterations_scheduled += n;
    }

    /// Whether `for` state restoration is still to be done.
    pub fn should_restore(&self) -> bool {
        self.should_restore.load(Ordering::Acquire)
    }

    /// Prometheus' group key: `file;name`.
    pub fn key(&self) -> String {
        format!("{};{}", self.spec.file, self.spec.name)
    }

    /// Prometheus' per-group phase: the evaluation timestamp (ns) at or
    /// before `now_ns` on this group's slot, so that groups with the same
    /// interval do not all run at once (`Group.EvalTimestamp`). The phase is
    /// Prometheus' own (xxhash64 of the `{file, name}` label set), so a
    /// group runs at the same instants in Tidemark and in Prometheus.
    pub fn eval_timestamp_ns(&self, now_ns: i64) -> i64 {
        let interval = self.interval.as_nanos().max(1) as u64;
        let offset = (group_hash(&self.spec.file, &self.spec.name) % interval) as i64;
        let adj = now_ns - offset;
        let base = adj - adj.rem_euclid(interval as i64);
        base + offset
    }

    /// One iteration at `ts` (ms): every rule in order, with the counters
    /// Prometheus keeps (`DefaultEvalIterationFunc`).
    pub fn eval_iteration(&self, ts: i64) {
        let started_wall = now_ms();
        let started = Instant::now();
        let samples = self.eval(ts);
        let mut st = self.stats.lock();
        st.iterations_scheduled += 1;
        st.last_duration = started.elapsed();
        st.last_evaluation_ms = started_wall;
        st.last_eval_timestamp_ms = ts;
        st.last_samples = samples;
    }

    /// Evaluates every rule in order at `ts` (ms) — a rule sees what an
    /// earlier rule of the group appended at the same timestamp — appends
    /// the results, marks vanished series stale and sends alerts. Failures
    /// are recorded in each rule's status, never returned. Returns the number
    /// of samples produced.
    pub fn eval(&self, ts: i64) -> u64 {
        let offset_ms = self.query_offset.as_millis() as i64;
        let limit = self.spec.limit;
        let mut samples_total = 0u64;
        for (i, rule) in self.rules.iter().enumerate() {
            if self.env.cancel.is_cancelled() {
                return samples_total;
            }
            let started_wall = now_ms();
            let started = Instant::now();
            self.stats.lock().rule_evaluations += 1;
            let result = match rule {
                Rule::Recording(r) => r.eval(&self.env, ts - offset_ms, limit),
                Rule::Alerting(r) => r
                    .eval(&self.env, ts, offset_ms, limit)
                    .map(|v| v.into_iter().map(|(l, v)| RuleSample::Float(l, v)).collect()),
            };
            let outcome = match result {
                Err(e) => Err(e),
                Ok(vector) => {
                    samples_total += vector.len() as u64;
                    if let Rule::Alerting(r) = rule {
                        let alerts = r.alerts_to_send(&self.env, ts, self.interval);
                        if let (Some(sink), false) = (&self.env.sink, alerts.is_empty()) {
                            sink.send(alerts);
                        }
                    }
                    self.append_results(i, rule, vector, ts - offset_ms)
                }
            };
            let mut status = rule.status_mut();
            status.last_evaluation_ms = started_wall;
            status.evaluation_time = started.elapsed();
            match outcome {
                Ok(()) => {
                    status.health = RuleHealth::Good;
                    status.last_error = None;
                }
                Err(e) => {
                    if !self.env.cancel.is_cancelled() {
                        tracing::warn!(group = %self.spec.name, rule = %rule.name(), index = i, error = %e, "evaluating rule failed");
                    }
                    status.health = RuleHealth::Bad;
                    status.last_error = Some(e.to_string());
                    self.stats.lock().rule_evaluation_failures += 1;
                }
            }
        }
        self.cleanup_stale_series(ts);
        samples_total
    }

    /// Appends one rule's results at `t` and staleness markers for the
    /// series it wrote last time and not now. A sample the database refuses
    /// as out of order, too old or duplicate is dropped and counted (as in
    /// Prometheus); a commit failure fails the rule and keeps the previous
    /// series set, so their staleness markers are written later.
    fn append_results(&self, index: usize, rule: &Rule, vector: Vec<RuleSample>, t: i64) -> Result<(), RuleError> {
        let mut state = self.state.lock();
        let mut app = self.env.db.appender();
        let mut returned = HashSet::with_capacity(vector.len());
        let mut first_error: Option<String> = None;
        let (mut out_of_order, mut too_old, mut duplicates) = (0usize, 0usize, 0usize);
        for sample in vector {
            let (labels, appended) = match sample {
                RuleSample::Float(l, v) => {
                    let r = app.append(&l, t, v);
                    (l, r)
                }
                RuleSample::Histogram(l, h) => {
                    let r = app.append_histogram(&l, t, HistogramValue::Float(*h));
                    (l, r)
                }
            };
            match appended {
                Ok(_) => {
                    returned.insert(labels);
                }
                Err(e) => {
                    match e {
                        AppendError::OutOfOrder { .. } => out_of_order += 1,
                        AppendError::TooOld { .. } => too_old += 1,
                        AppendError::DuplicateTimestamp { .. } => duplicates += 1,
                        _ => tracing::warn!(rule = %rule.name(), error = %e, "rule evaluation result discarded"),
                    }
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if out_of_order + too_old + duplicates > 0 {
            tracing::warn!(rule = %rule.name(), out_of_order, too_old, duplicates, "rule results dropped by storage");
        }
        for lset in &state.previous[index] {
            if !returned.contains(lset) {
                // Errors here are expected when another rule writes the series.
                let _ = app.append(lset, t, stale_nan());
            }
        }
        app.commit_relaxed().map_err(|e| RuleError::Append(e.to_string()))?;
        state.previous[index] = returned;
        match first_error {
            Some(e) => Err(RuleError::Append(e)),
            None => Ok(()),
        }
    }

    /// Marks stale the series of rules removed by a reload (or of a removed
    /// group, [`Group::mark_all_stale`]).
    fn cleanup_stale_series(&self, ts: i64) {
        let mut state = self.state.lock();
        if state.stale.is_empty() {
            return;
        }
        let t = ts - self.query_offset.as_millis() as i64;
        let mut app = self.env.db.appender();
        for s in &state.stale {
            let _ = app.append(s, t, stale_nan());
        }
        match app.commit_relaxed() {
            Ok(()) => state.stale.clear(),
            Err(e) => {
                tracing::warn!(group = %self.spec.name, error = %e, "writing staleness markers for removed rules failed")
            }
        }
    }

    /// Marks stale, at `ts`, every series this group wrote at its last
    /// evaluation: for a group removed from the configuration.
    pub fn mark_all_stale(&self, ts: i64) {
        {
            let mut state = self.state.lock();
            let previous = std::mem::take(&mut state.previous);
            for set in previous {
                state.stale.extend(set);
            }
        }
        self.cleanup_stale_series(ts);
    }

    /// Takes over the state of the group this one replaces in a reload
    /// (Prometheus' `CopyState`): for rules with the same name and labels,
    /// the series written last time and the alerts with their `for`
    /// progress; series of rules that are gone are marked stale at the next
    /// evaluation.
    pub fn copy_state(&self, from: &Group) {
        {
            let mut to_stats = self.stats.lock();
            let from_stats = from.stats.lock();
            to_stats.last_duration = from_stats.last_duration;
            to_stats.last_evaluation_ms = from_stats.last_evaluation_ms;
            to_stats.last_eval_timestamp_ms = from_stats.last_eval_timestamp_ms;
        }
        let mut by_identity: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (fi, r) in from.rules.iter().enumerate() {
            by_identity.entry(r.identity()).or_default().push(fi);
        }
        let mut from_state = from.state.lock();
        let mut state = self.state.lock();
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(indexes) = by_identity.get_mut(&rule.identity()) else { continue };
            if indexes.is_empty() {
                continue;
            }
            let fi = indexes.remove(0);
            state.previous[i] = from_state.previous.get(fi).cloned().unwrap_or_default();
            if let (Rule::Alerting(to), Rule::Alerting(old)) = (rule, &from.rules[fi]) {
                let old_active = old.active.lock();
                let mut active = to.active.lock();
                for (k, a) in old_active.iter() {
                    active.insert(k.clone(), a.clone());
                }
                *to.status.lock() = old.status.lock().clone();
            } else {
                *rule.status_mut() = from.rules[fi].status();
            }
        }
        state.stale = std::mem::take(&mut from_state.stale);
        for (fi, _) in from.rules.iter().enumerate() {
            let unmatched = by_identity.get(&from.rules[fi].identity()).is_some_and(|v| v.contains(&fi));
            if unmatched {
                if let Some(set) = from_state.previous.get(fi) {
                    state.stale.extend(set.iter().cloned());
                }
            }
        }
    }

    /// Restores the `for` progress of pending and firing alerts from the
    /// `ALERTS_FOR_STATE` series, at wall-clock `now` (ms), with the
    /// environment's outage tolerance and grace period (Prometheus'
    /// `RestoreForState`). Call it after the first evaluations of a group
    /// that [`should_restore`](Self::should_restore).
    pub fn restore_for_state(&self, now: i64) {
        let started = Instant::now();
        let tolerance_ms = self.env.outage_tolerance.as_millis() as i64;
        let grace_ms = self.env.for_grace_period.as_millis() as i64;
        let querier = self.env.db.querier(now - tolerance_ms, now);
        for rule in &self.rules {
            let Rule::Alerting(r) = rule else { continue };
            let hold_ms = r.hold.as_millis() as i64;
            if hold_ms < grace_ms {
                // Waiting `for` from scratch is shorter than the grace period.
                r.restored.store(true, Ordering::Release);
                continue;
            }
            let series = match querier.select(&r.for_state_matchers()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(alert = %r.name, error = %e, "failed to restore 'for' state");
                    r.restored.store(true, Ordering::Release);
                    continue;
                }
            };
            let mut last_by_labels = std::collections::HashMap::with_capacity(series.len());
            for s in &series {
                let key = s.labels().without(&["__name__"]);
                match s.samples() {
                    Ok(samples) => {
                        if let Some(last) = samples.last() {
                            last_by_labels.insert(key, *last);
                        }
                    }
                    Err(e) => tracing::error!(alert = %r.name, error = %e, "failed to read 'for' state"),
                }
            }
            let mut active = r.active.lock();
            for (key, a) in active.iter_mut() {
                let Some(last) = last_by_labels.get(key) else { continue };
                if tidemark_storage::is_stale_nan(last.v) {
                    continue; // the alert was not active when we went down
                }
                let down_at = last.t.div_euclid(1000) * 1000;
                let mut restored_active_at = (last.v as i64) * 1000;
                let spent_pending = down_at - restored_active_at;
                let remaining = hold_ms - spent_pending;
                if remaining <= 0 {
                    // It was firing: the next evaluation fires it again.
                } else if remaining < grace_ms {
                    restored_active_at = now + grace_ms - hold_ms;
                } else {
                    restored_active_at += now - down_at;
                }
                a.active_at_ms = restored_active_at;
                tracing::debug!(alert = %r.name, labels = %key, active_at_ms = restored_active_at, "'for' state restored");
            }
            r.restored.store(true, Ordering::Release);
        }
        self.should_restore.store(false, Ordering::Release);
        self.stats.lock().last_restore_duration = Some(started.elapsed());
    }

    /// Whether this group would evaluate exactly as `other` (Prometheus'
    /// `Group.Equals`): a reload keeps such a group running untouched.
    pub fn same_definition(&self, other: &GroupSpec) -> bool {
        strip_lines(&self.spec) == strip_lines(other)
    }

    /// The rule states of alerting rules (for the API): the state of rule
    /// `i`, or `None` for a recording rule.
    pub fn alerting_state(&self, i: usize) -> Option<AlertState> {
        match self.rules.get(i)? {
            Rule::Alerting(a) => Some(a.state()),
            Rule::Recording(_) => None,
        }
    }
}

fn strip_lines(g: &GroupSpec) -> GroupSpec {
    let mut g = g.clone();
    for r in &mut g.rules {
        r.line = 0;
    }
    g
}

/// Prometheus' `labels.Labels.Hash` of `{file=<file>, name=<name>}`:
/// xxhash64 over `name 0xff value 0xff` for each label in name order.
fn group_hash(file: &str, name: &str) -> u64 {
    let mut b = Vec::with_capacity(file.len() + name.len() + 12);
    for (n, v) in [("file", file), ("name", name)] {
        b.extend_from_slice(n.as_bytes());
        b.push(0xff);
        b.extend_from_slice(v.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_hash_layout() {
        // xxhash64 of the empty input is the published test vector; the
        // group hash is over the Go label encoding `file\xff<f>\xffname\xff<g>\xff`.
        assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(group_hash("f", "g"), xxhash_rust::xxh64::xxh64(b"file\xfff\xffname\xffg\xff", 0));
        assert_ne!(group_hash("f", "g"), group_hash("g", "f"));
    }
}
