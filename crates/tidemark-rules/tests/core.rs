//! The evaluation core against a real in-memory database: recording rules
//! and their staleness, rule order, the alert state machine with `for` and
//! `keep_firing_for`, resends and resolution, limits, reload state carry-over
//! and `for` state restoration. Semantics follow Prometheus' `rules/`
//! package; the promtool corpus (`rule_unit_tests.rs`) checks them against
//! the real promtool.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tidemark_promql::{Engine, Value};
use tidemark_rules::notifier::Alert as Notification;
use tidemark_rules::{AlertSink, AlertState, Group, GroupSpec, RuleEnv, RuleHealth, RuleManager, RuleSpec};
use tidemark_storage::{Db, Labels, Matcher};

const MIN: i64 = 60_000;

#[derive(Default)]
struct Collector(Mutex<Vec<(i64, Notification)>>);

struct SinkAt(Arc<Collector>, Arc<Mutex<i64>>);

impl AlertSink for SinkAt {
    fn send(&self, alerts: Vec<Notification>) {
        let t = *self.1.lock();
        self.0 .0.lock().extend(alerts.into_iter().map(|a| (t, a)));
    }
}

struct Fixture {
    db: Arc<Db>,
    env: Arc<RuleEnv>,
    sent: Arc<Collector>,
    clock: Arc<Mutex<i64>>,
}

fn fixture() -> Fixture {
    let db = Arc::new(Db::in_memory().unwrap());
    let mut env = RuleEnv::new(db.clone(), Arc::new(Engine::default()));
    let sent = Arc::new(Collector::default());
    let clock = Arc::new(Mutex::new(0));
    env.sink = Some(Arc::new(SinkAt(sent.clone(), clock.clone())));
    env.external_url = "http://tidemark.example:9201".into();
    Fixture { db, env: Arc::new(env), sent, clock }
}

fn add(db: &Db, labels: &[(&str, &str)], samples: impl IntoIterator<Item = (i64, f64)>) {
    let l = Labels::new(labels.iter().copied()).unwrap();
    let mut app = db.appender();
    for (t, v) in samples {
        app.append(&l, t, v).unwrap();
    }
    app.commit().unwrap();
}

fn query(db: &Db, q: &str, t: i64) -> Vec<(String, f64)> {
    match Engine::default().instant_query(db, q, t).unwrap().value {
        Value::Vector(v) => {
            let mut out: Vec<_> = v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar { v, .. } => vec![(String::new(), v)],
        other => panic!("unexpected {other:?}"),
    }
}

fn raw(db: &Db, name: &str) -> Vec<(i64, f64)> {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let series = q.select(&[Matcher::equal("__name__", name)]).unwrap();
    let mut out = Vec::new();
    for s in series {
        out.extend(s.samples().unwrap().into_iter().map(|x| (x.t, x.v)));
    }
    out.sort_by_key(|x| x.0);
    out
}

fn eval_at(f: &Fixture, g: &Group, t: i64) {
    *f.clock.lock() = t;
    g.eval(t);
}

#[test]
fn recording_rule_writes_at_the_evaluation_time_and_marks_vanished_series_stale() {
    let f = fixture();
    add(&f.db, &[("__name__", "up"), ("job", "a")], (0..=4).map(|i| (i * MIN, 1.0)));
    add(&f.db, &[("__name__", "up"), ("job", "b")], (0..=1).map(|i| (i * MIN, 1.0)));
    let spec = GroupSpec::new("g")
        .label("team", "core")
        .rule(RuleSpec::recording("job:up:sum", "sum by (job) (up)").label("source", "rule"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, MIN);
    assert_eq!(
        query(&f.db, "job:up:sum", MIN),
        vec![
            (r#"{__name__="job:up:sum", job="a", source="rule", team="core"}"#.to_string(), 1.0),
            (r#"{__name__="job:up:sum", job="b", source="rule", team="core"}"#.to_string(), 1.0),
        ]
    );
    // job="b" stops reporting after 1m; at 7m its lookback has passed.
    eval_at(&f, &g, 7 * MIN);
    let b = raw(&f.db, "job:up:sum");
    let stale: Vec<_> = b.iter().filter(|(_, v)| tidemark_storage::is_stale_nan(*v)).collect();
    assert_eq!(stale.len(), 1, "one staleness marker for job=b: {b:?}");
    assert_eq!(stale[0].0, 7 * MIN);
    assert_eq!(
        query(&f.db, "job:up:sum", 7 * MIN),
        vec![(r#"{__name__="job:up:sum", job="a", source="rule", team="core"}"#.to_string(), 1.0)]
    );
}

#[test]
fn a_later_rule_reads_what_an_earlier_rule_recorded_at_the_same_timestamp() {
    let f = fixture();
    add(&f.db, &[("__name__", "x")], [(0, 3.0)]);
    let spec = GroupSpec::new("chain")
        .rule(RuleSpec::recording("x:double", "x * 2"))
        .rule(RuleSpec::recording("x:quad", "x:double * 2"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, MIN);
    assert_eq!(query(&f.db, "x:quad", MIN), vec![(r#"{__name__="x:quad"}"#.to_string(), 12.0)]);
}

#[test]
fn alert_goes_pending_then_firing_then_resolved_and_is_resent_as_resolved_for_15_minutes() {
    let f = fixture();
    let series = [("__name__", "errors"), ("job", "api")];
    // Above 5 from 0 to 10m, then 0.
    add(&f.db, &series, (0..=30).map(|i| (i * MIN, if i <= 10 { 10.0 } else { 0.0 })));
    let spec = GroupSpec::new("alerts").rule(
        RuleSpec::alerting("TooManyErrors", "errors > 5")
            .for_duration(Duration::from_secs(300))
            .label("severity", "page")
            .annotation("summary", "static text"),
    );
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    for i in 0..=5 {
        eval_at(&f, &g, i * MIN);
        let alerts = g.alerts();
        assert_eq!(alerts.len(), 1);
        let want = if i < 5 { AlertState::Pending } else { AlertState::Firing };
        assert_eq!(alerts[0].1.state, want, "at {i}m");
    }
    // ALERTS and ALERTS_FOR_STATE as Prometheus writes them.
    assert_eq!(
        query(&f.db, "ALERTS", 5 * MIN),
        vec![(
            r#"{__name__="ALERTS", alertname="TooManyErrors", alertstate="firing", job="api", severity="page"}"#
                .to_string(),
            1.0
        )]
    );
    assert_eq!(
        query(&f.db, "ALERTS_FOR_STATE", 5 * MIN),
        vec![(
            r#"{__name__="ALERTS_FOR_STATE", alertname="TooManyErrors", job="api", severity="page"}"#.to_string(),
            0.0
        )]
    );
    // The pending series ends with a staleness marker when the alert fires.
    let alerts_samples = raw(&f.db, "ALERTS");
    assert_eq!(alerts_samples.len(), 7, "pending at 0..4m, stale and firing at 5m: {alerts_samples:?}");
    assert!(tidemark_storage::is_stale_nan(alerts_samples[6].1) || tidemark_storage::is_stale_nan(alerts_samples[5].1));

    // Firing: sent at 5m, then again only after the resend delay (1m) has
    // passed: at 7m, 9m.
    for i in 6..=10 {
        eval_at(&f, &g, i * MIN);
    }
    let sent_times: Vec<i64> = f.sent.0.lock().iter().map(|(t, _)| t / MIN).collect();
    assert_eq!(sent_times, vec![5, 7, 9]);
    let first = f.sent.0.lock()[0].1.clone();
    assert_eq!(first.starts_at_ms, 5 * MIN);
    assert_eq!(first.ends_at_ms, Some(5 * MIN + 4 * MIN), "validUntil = ts + 4 * max(interval, resend delay)");
    assert_eq!(first.labels["alertname"], "TooManyErrors");
    assert_eq!(first.generator_url, "http://tidemark.example:9201/graph?g0.expr=errors+%3E+5&g0.tab=1");

    // 11m: the result is gone: resolved, sent at once with endsAt = 11m.
    eval_at(&f, &g, 11 * MIN);
    let last = f.sent.0.lock().last().unwrap().clone();
    assert_eq!(last, (11 * MIN, Notification { ends_at_ms: Some(11 * MIN), ..last.1.clone() }));
    assert_eq!(g.alerts()[0].1.state, AlertState::Inactive);
    assert!(query(&f.db, "ALERTS", 11 * MIN).is_empty(), "ALERTS goes stale when the alert resolves");
    // Resent as resolved every resend delay while kept (15 minutes).
    for i in 12..=27 {
        eval_at(&f, &g, i * MIN);
    }
    let resolved_sends: Vec<i64> = f
        .sent
        .0
        .lock()
        .iter()
        .filter(|(t, a)| *t >= 11 * MIN && a.ends_at_ms == Some(11 * MIN))
        .map(|(t, _)| t / MIN)
        .collect();
    assert_eq!(resolved_sends, vec![11, 13, 15, 17, 19, 21, 23, 25]);
    assert!(g.alerts().is_empty(), "dropped once resolved for more than 15 minutes");
}

#[test]
fn keep_firing_for_holds_a_firing_alert_after_its_result_is_gone() {
    let f = fixture();
    add(&f.db, &[("__name__", "flap")], (0..=10).map(|i| (i * MIN, if i <= 2 { 1.0 } else { 0.0 })));
    let spec =
        GroupSpec::new("k").rule(RuleSpec::alerting("Flap", "flap > 0").keep_firing_for(Duration::from_secs(180)));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    let mut states = Vec::new();
    for i in 0..=7 {
        eval_at(&f, &g, i * MIN);
        states.push(g.alerts().first().map(|a| (a.1.state, a.1.keep_firing_since_ms)));
    }
    use AlertState::*;
    assert_eq!(
        states,
        vec![
            Some((Firing, None)),
            Some((Firing, None)),
            Some((Firing, None)),
            Some((Firing, Some(3 * MIN))),
            Some((Firing, Some(3 * MIN))),
            Some((Firing, Some(3 * MIN))),
            Some((Inactive, Some(3 * MIN))),
            Some((Inactive, Some(3 * MIN))),
        ]
    );
}

#[test]
fn limit_fails_the_rule_and_clears_its_alerts() {
    let f = fixture();
    for i in 0..3 {
        add(&f.db, &[("__name__", "m"), ("i", &i.to_string())], [(0, 1.0)]);
    }
    let spec = GroupSpec::new("lim")
        .limit(2)
        .rule(RuleSpec::recording("m:copy", "m"))
        .rule(RuleSpec::alerting("Many", "m > 0"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, MIN);
    let st: Vec<_> = g.rules().iter().map(|r| r.status()).collect();
    assert_eq!(st[0].health, RuleHealth::Bad);
    assert_eq!(st[0].last_error.as_deref(), Some("exceeded limit of 2 with 3 series"));
    assert_eq!(st[1].last_error.as_deref(), Some("exceeded limit of 2 with 3 alerts"));
    assert!(g.alerts().is_empty());
    assert!(query(&f.db, "m:copy", MIN).is_empty(), "nothing recorded over the limit");
    assert_eq!(g.stats().rule_evaluation_failures, 2);
}

#[test]
fn duplicate_label_sets_and_bad_results_are_rule_errors_not_panics() {
    let f = fixture();
    add(&f.db, &[("__name__", "a"), ("x", "1")], [(0, 1.0)]);
    add(&f.db, &[("__name__", "b"), ("x", "1")], [(0, 1.0)]);
    let spec = GroupSpec::new("bad")
        .rule(RuleSpec::recording("ab", "{__name__=~\"a|b\"}"))
        .rule(RuleSpec::recording("s", "\"a string\""))
        .rule(RuleSpec::recording("after", "vector(1)"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, MIN);
    let errs: Vec<_> = g.rules().iter().map(|r| r.status().last_error).collect();
    assert_eq!(
        errs,
        vec![
            Some("vector contains metrics with the same labelset after applying rule labels".to_string()),
            Some("rule result is not a vector or scalar".to_string()),
            None
        ]
    );
    assert_eq!(query(&f.db, "after", MIN).len(), 1, "a failed rule does not stop the group");
}

#[test]
fn query_offset_evaluates_and_writes_in_the_past() {
    let f = fixture();
    add(&f.db, &[("__name__", "v")], [(0, 1.0), (2 * MIN, 2.0)]);
    let spec = GroupSpec::new("off").query_offset(Duration::from_secs(60)).rule(RuleSpec::recording("v:copy", "v"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, 2 * MIN);
    assert_eq!(raw(&f.db, "v:copy"), vec![(MIN, 1.0)]);
}

#[test]
fn reload_keeps_pending_progress_of_unchanged_rules_and_stales_removed_ones() {
    let f = fixture();
    add(&f.db, &[("__name__", "hot")], (0..=20).map(|i| (i * MIN, 1.0)));
    let rule = || RuleSpec::alerting("Hot", "hot > 0").for_duration(Duration::from_secs(600));
    let old =
        Group::new(GroupSpec::new("g").rule(rule()).rule(RuleSpec::recording("hot:copy", "hot")), f.env.clone(), false)
            .unwrap();
    for i in 0..=4 {
        eval_at(&f, &old, i * MIN);
    }
    // The reload changes another rule's expression (so the group is rebuilt)
    // and drops the recording rule.
    let new = Group::new(
        GroupSpec::new("g").rule(rule()).rule(RuleSpec::alerting("Other", "vector(0) > 1")),
        f.env.clone(),
        false,
    )
    .unwrap();
    assert!(!new.same_definition(old.spec()));
    new.copy_state(&old);
    eval_at(&f, &new, 5 * MIN);
    let a = &new.alerts()[0].1;
    assert_eq!((a.state, a.active_at_ms), (AlertState::Pending, 0), "the 'for' clock continued");
    for i in 6..=10 {
        eval_at(&f, &new, i * MIN);
    }
    assert_eq!(new.alerts()[0].1.state, AlertState::Firing, "fires 10m after it became active, not after the reload");
    let copy = raw(&f.db, "hot:copy");
    assert!(tidemark_storage::is_stale_nan(copy.last().unwrap().1), "removed rule's series marked stale: {copy:?}");
    assert_eq!(copy.last().unwrap().0, 5 * MIN);
}

#[test]
fn for_state_is_restored_after_a_restart_with_outage_tolerance_and_grace_period() {
    // Before the restart: active since 0, pending with for = 30m, last
    // evaluation at 10m (ALERTS_FOR_STATE holds activeAt = 0).
    let f = fixture();
    // (Not further ahead than 1h: the head refuses samples older than its
    // newest minus half a block range, as Prometheus' does.)
    add(&f.db, &[("__name__", "backlog")], (0..=40).map(|i| (i * MIN, 500.0)));
    let spec = || {
        GroupSpec::new("r").rule(RuleSpec::alerting("Backlog", "backlog > 100").for_duration(Duration::from_secs(1800)))
    };
    let before = Group::new(spec(), f.env.clone(), false).unwrap();
    for i in 0..=10 {
        eval_at(&f, &before, i * MIN);
    }
    assert_eq!(query(&f.db, "ALERTS_FOR_STATE", 10 * MIN)[0].1, 0.0);

    // Down from 10m to 15m. The new process restores: 20m of `for` were
    // left, more than the grace period, so activeAt moves by the downtime.
    let after = Group::new(spec(), f.env.clone(), true).unwrap();
    assert!(after.should_restore());
    eval_at(&f, &after, 15 * MIN);
    assert!(raw(&f.db, "ALERTS").iter().all(|s| s.0 <= 10 * MIN), "no ALERTS before the restore");
    eval_at(&f, &after, 16 * MIN);
    after.restore_for_state(16 * MIN);
    assert!(!after.should_restore());
    let a = &after.alerts()[0].1;
    assert_eq!(a.active_at_ms, 6 * MIN, "activeAt 0 + downtime (16m - 10m)");
    for i in 17..=36 {
        eval_at(&f, &after, i * MIN);
        let st = after.alerts()[0].1.state;
        assert_eq!(st == AlertState::Firing, i >= 36, "at {i}m: fires 30m after the restored activeAt");
    }
}

#[test]
fn restore_gives_at_least_the_grace_period_and_skips_short_for() {
    let f = fixture();
    let mut env = (*f.env).clone();
    env.for_grace_period = Duration::from_secs(600);
    let env = Arc::new(env);
    add(&f.db, &[("__name__", "q")], (0..=60).map(|i| (i * MIN, 1.0)));
    let spec = || {
        GroupSpec::new("r")
            .rule(RuleSpec::alerting("Long", "q > 0").for_duration(Duration::from_secs(1200)))
            .rule(RuleSpec::alerting("Short", "q > 0").for_duration(Duration::from_secs(300)))
    };
    let before = Group::new(spec(), env.clone(), false).unwrap();
    for i in 0..=15 {
        eval_at(&f, &before, i * MIN);
    }
    // Long had 5m left at 15m (< grace 10m): after restoring at 17m it fires
    // 10m later, at 27m. Short is not restored: it waits its full 5m.
    let after = Group::new(spec(), env, true).unwrap();
    eval_at(&f, &after, 16 * MIN);
    eval_at(&f, &after, 17 * MIN);
    after.restore_for_state(17 * MIN);
    let find = |name: &str| after.alerts().into_iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(find("Long").active_at_ms, 17 * MIN + 10 * MIN - 20 * MIN);
    assert_eq!(find("Short").active_at_ms, 16 * MIN);
}

#[test]
fn manager_runs_groups_on_their_schedule_and_reload_replaces_them() {
    let f = fixture();
    let manager = RuleManager::new((*f.env).clone());
    manager
        .update(vec![GroupSpec::new("fast")
            .interval(Duration::from_secs(1))
            .rule(RuleSpec::recording("tick", "vector(1)"))])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while manager.groups()[0].stats().iterations_scheduled < 2 {
        assert!(std::time::Instant::now() < deadline, "the group never ran twice");
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = manager.groups()[0].clone();
    // An identical reload keeps the running group.
    manager
        .update(vec![GroupSpec::new("fast")
            .interval(Duration::from_secs(1))
            .rule(RuleSpec::recording("tick", "vector(1)"))])
        .unwrap();
    assert!(Arc::ptr_eq(&first, &manager.groups()[0]));
    // A bad expression changes nothing.
    let err = manager.update(vec![GroupSpec::new("fast").rule(RuleSpec::recording("tick", "sum("))]).unwrap_err();
    assert!(err.to_string().contains("could not parse expression"), "{err}");
    assert!(Arc::ptr_eq(&first, &manager.groups()[0]));
    // Evaluation timestamps sit on the group's slot: at or before the given
    // time, less than an interval before it, a whole number of intervals apart.
    let second = 1_000_000_000i64;
    let (a, b) = (1_700_000_000_123_456_789i64, 1_700_000_077_987_654_321i64);
    let (sa, sb) = (first.eval_timestamp_ns(a), first.eval_timestamp_ns(b));
    assert!(sa <= a && a - sa < second && sb <= b && b - sb < second);
    assert_eq!((sb - sa) % second, 0);
    let last = first.stats().last_eval_timestamp_ms;
    let d = (last * 1_000_000 - sa).rem_euclid(second);
    assert!(d < 1_000_000 || d > second - 1_000_000, "the scheduler used the slot (to the ms): {d}");
    manager.stop();
}

#[test]
fn templates_are_parsed_once_and_expand_as_the_one_shot_expander_does() {
    use tidemark_rules::{expand_alert_template, TemplateData};
    let f = fixture();
    add(&f.db, &[("__name__", "q"), ("job", "api")], [(0, 0.25)]);
    let (good, bad) = ("{{ $labels.job }} at {{ $value | humanizePercentage }}", "{{ nope }}");
    let spec =
        GroupSpec::new("t").rule(RuleSpec::alerting("T", "q > 0").annotation("good", good).annotation("bad", bad));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    eval_at(&f, &g, MIN);
    let a = &g.alerts()[0].1;
    let data = TemplateData {
        labels: [("__name__", "q"), ("job", "api")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        external_labels: Default::default(),
        external_url: f.env.external_url.clone(),
        value: 0.25,
    };
    assert_eq!(a.annotations["good"], expand_alert_template("T", good, &data, MIN, None).unwrap());
    assert_eq!(a.annotations["good"], "api at 25%");
    let e = expand_alert_template("T", bad, &data, MIN, None).unwrap_err();
    assert_eq!(a.annotations["bad"], format!("<error expanding template: {e}>"));
}

/// A latency counter histogram of route `r` after `n` scrapes (schema 0,
/// two buckets growing at different speeds per route).
fn latency_histogram(n: u64, r: u64) -> tidemark_storage::histogram::Histogram {
    use tidemark_storage::histogram::{Histogram, Span};
    let (a, b) = (n * (r + 1), n * 2 + r);
    Histogram {
        schema: 0,
        count: a + b,
        sum: (a + 3 * b) as f64 * 0.1,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![a as i64, b as i64 - a as i64],
        ..Histogram::default()
    }
}

/// The histogram samples (and float samples) stored under `name`.
fn raw_mixed(
    db: &Db,
    name: &str,
) -> (Vec<tidemark_storage::Sample>, Vec<tidemark_storage::histogram::HistogramSample>) {
    use tidemark_storage::SampleIterator;
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let (mut f, mut h) = (Vec::new(), Vec::new());
    for s in q.select(&[Matcher::equal("__name__", name)]).unwrap() {
        let mut it = s.iter();
        it.drain_mixed_into(&mut f, &mut h);
        assert!(it.err().is_none(), "{:?}", it.err());
    }
    (f, h)
}

/// The native histograms `q` answers at `t`, by label set.
fn query_histograms(db: &Db, q: &str, t: i64) -> Vec<(String, tidemark_storage::histogram::FloatHistogram)> {
    match Engine::default().instant_query(db, q, t).unwrap().value {
        Value::Vector(v) => {
            let mut out: Vec<_> = v
                .into_iter()
                .map(|s| {
                    (
                        s.labels.to_string(),
                        *s.h.unwrap_or_else(|| panic!("{q}: a float where a histogram was expected")),
                    )
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn recording_rules_record_native_histograms_as_histograms() {
    use tidemark_storage::histogram::HistogramValue;
    let f = fixture();
    // Two routes of job "api", scraped every 15 s for 10 minutes; route 1 stops at 6m.
    for r in 0..2u64 {
        let l = Labels::new([("__name__", "latency_seconds"), ("job", "api"), ("route", ["/a", "/b"][r as usize])])
            .unwrap();
        let mut app = f.db.appender();
        let last = if r == 1 { 24 } else { 40 };
        for n in 0..=last {
            app.append_histogram(&l, n as i64 * 15_000, HistogramValue::Integer(latency_histogram(n, r))).unwrap();
        }
        app.commit().unwrap();
    }
    let spec = GroupSpec::new("latency")
        .rule(RuleSpec::recording("route:latency_seconds:rate1m", "rate(latency_seconds[1m])"))
        .rule(RuleSpec::recording("job:latency_seconds:rate1m", "sum by (job) (route:latency_seconds:rate1m)"))
        .rule(RuleSpec::recording("job:latency_seconds:p90", "histogram_quantile(0.9, job:latency_seconds:rate1m)"))
        .rule(RuleSpec::alerting("LatencyRecorded", "job:latency_seconds:rate1m"));
    let g = Group::new(spec, f.env.clone(), false).unwrap();
    for m in 2..=9 {
        eval_at(&f, &g, m * MIN);
    }

    // Each recorded sample is the histogram the expression answers at that time.
    let (floats, hs) = raw_mixed(&f.db, "job:latency_seconds:rate1m");
    assert!(floats.is_empty(), "{floats:?}");
    assert_eq!(hs.iter().map(|s| s.t).collect::<Vec<_>>(), (2..=9).map(|m| m * MIN).collect::<Vec<_>>());
    for s in &hs {
        let want = query_histograms(&f.db, "sum by (job) (rate(latency_seconds[1m]))", s.t);
        let HistogramValue::Float(got) = &s.h else {
            panic!("rule histograms are stored with float counts: {:?}", s.h)
        };
        assert_eq!(want.len(), 1);
        assert_eq!((got.count, got.sum), (want[0].1.count, want[0].1.sum), "at {}", s.t);
        assert_eq!(got.positive_buckets, want[0].1.positive_buckets, "at {}", s.t);
    }
    // A rule downstream of a recorded histogram reads it as a histogram.
    for m in 2..=9 {
        let direct = query(&f.db, "histogram_quantile(0.9, sum by (job) (rate(latency_seconds[1m])))", m * MIN);
        let recorded = query(&f.db, "job:latency_seconds:p90", m * MIN);
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].1, direct[0].1, "p90 at {m}m");
        assert!(recorded[0].1 > 0.0);
    }
    // Route 1's series vanished after 6m: a staleness marker ends its recorded series.
    let (route_floats, route_hs) = raw_mixed(&f.db, "route:latency_seconds:rate1m");
    assert!(route_floats.iter().all(|s| tidemark_storage::is_stale_nan(s.v)));
    assert_eq!(route_floats.len(), 1, "{route_floats:?}");
    assert_eq!(route_hs.len(), 8 + 5, "route 0 at 2..=9m, route 1 at 2..=6m");
    assert_eq!(query_histograms(&f.db, "route:latency_seconds:rate1m", 9 * MIN).len(), 1);
    // An alert on a histogram result fires with the value 0, as Prometheus' Sample.F.
    let alerts = raw(&f.db, "ALERTS");
    assert!(!alerts.is_empty());
    let firing: Vec<_> =
        g.alerts().into_iter().filter(|(name, a)| name == "LatencyRecorded" && a.state == AlertState::Firing).collect();
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(firing[0].1.value, 0.0);
    assert_eq!(g.rules().iter().filter(|r| r.status().health != RuleHealth::Good).count(), 0);
}
