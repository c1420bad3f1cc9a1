//! `tidemark test rules`: unit tests for rule files in the format of
//! `promtool test rules`, run the way promtool runs them.
//!
//! For each test group of a test file: the input series are expanded and
//! appended at `i × interval` from time 0 (lazily, each sample just before
//! the first evaluation at or after its time); every group of every rule
//! file is evaluated at every `evaluation_interval` step from 0 up to the
//! latest `eval_time` of the test group — whatever the group's own interval
//! — in `group_eval_order`; after each step the alert checks whose
//! `eval_time` falls before the next step compare the *firing* alerts
//! (labels with `alertname`, expanded annotations) with the expected ones;
//! after the loop each `promql_expr_test` runs its query at its time. A
//! rule that fails to evaluate ends the test group. Results and messages
//! are promtool 2.42's, so its output and ours can be diffed.
//!
//! ```no_run
//! let mut out = std::io::stdout();
//! let mut err = std::io::stderr();
//! let ok = tidemark_rules::unittest::test_rules(&["rules/alerts.test.yml"], &mut out, &mut err).unwrap();
//! std::process::exit(if ok { 0 } else { 1 });
//! ```

mod report;
mod series;
mod spec;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidemark_promql::{Engine, EngineOptions};
use tidemark_storage::{Db, Labels};

use crate::{AlertState, Group, Rule, RuleEnv};

pub use report::{format_float_e, go_duration_string, labels_string, model_duration_string, AlertLabelsAndAnnotations};
pub use series::{expand_values, parse_metric, SeriesError};
pub use spec::{parse_duration, parse_test_file, TestFile, TestGroup};

use report::{alerts_string, go_quote, indent_lines, sample_string};

/// Why a test file or one of its cases failed. The `Display` text is what
/// promtool prints for the same failure (storage and parser messages are
/// ours).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitTestError {
    /// The test file cannot be read.
    #[error("open {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// The test file is not valid YAML for the format (unknown field, bad
    /// duration, wrong type).
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// The YAML reader's message.
        message: String,
    },
    /// A group appears twice in `group_eval_order`.
    #[error("group name repeated in evaluation order: {0}")]
    GroupOrderRepeated(String),
    /// A rule file cannot be loaded, or a group cannot be built from it.
    #[error("{0}")]
    RuleFile(String),
    /// An `alert_rule_test` item has no `alertname`.
    #[error("an item under alert_rule_test misses required attribute alertname at eval_time {eval_time}{in_group}", eval_time = model_duration_string(*.eval_time_ms), in_group = test_group_suffix(.test_group))]
    MissingAlertname {
        /// The item's `eval_time` (ms).
        eval_time_ms: i64,
        /// The test group's name (may be empty).
        test_group: String,
    },
    /// An input series does not parse.
    #[error("{series} {values}: {source}")]
    InputSeries {
        /// The `series` text.
        series: String,
        /// The `values` text.
        values: String,
        /// What is wrong.
        source: SeriesError,
    },
    /// Input samples could not be appended to the test database.
    #[error("loading input series: {0}")]
    Load(String),
    /// A rule failed to evaluate; the test group stops there.
    #[error("    rule: {rule}, time: {time}, err: {message}", time = go_duration_string(*.time_ms))]
    RuleEval {
        /// The rule's name.
        rule: String,
        /// The evaluation time (ms).
        time_ms: i64,
        /// The rule's error.
        message: String,
    },
    /// The firing alerts differ from the expected ones.
    #[error("{name}    alertname: {alertname}, time: {time}, \n        exp:{exp}, \n        got:{got}", name = test_name_prefix(.test_group), time = model_duration_string(*.eval_time_ms), exp = indent_lines(&alerts_string(.expected), "            "), got = indent_lines(&alerts_string(.got), "            "))]
    AlertMismatch {
        /// The test group's name (may be empty).
        test_group: String,
        /// The alert name checked.
        alertname: String,
        /// The `eval_time` (ms).
        eval_time_ms: i64,
        /// Expected alerts, sorted.
        expected: Vec<AlertLabelsAndAnnotations>,
        /// Firing alerts, sorted.
        got: Vec<AlertLabelsAndAnnotations>,
    },
    /// A `promql_expr_test` query failed, or its expected labels do not parse.
    #[error("    expr: {expr}, time: {time}, err: {message}", expr = go_quote(.expr), time = model_duration_string(*.eval_time_ms))]
    ExprError {
        /// The expression.
        expr: String,
        /// The `eval_time` (ms).
        eval_time_ms: i64,
        /// What went wrong.
        message: String,
    },
    /// A `promql_expr_test` returned other samples than expected.
    #[error("    expr: {expr}, time: {time},\n        exp: {exp}\n        got: {got}", expr = go_quote(.expr), time = model_duration_string(*.eval_time_ms), exp = samples_string(.expected), got = samples_string(.got))]
    ExprMismatch {
        /// The expression.
        expr: String,
        /// The `eval_time` (ms).
        eval_time_ms: i64,
        /// Expected samples, sorted by labels.
        expected: Vec<(BTreeMap<String, String>, f64)>,
        /// Returned samples, sorted by labels.
        got: Vec<(BTreeMap<String, String>, f64)>,
    },
}

fn test_group_suffix(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" (in TestGroup {name})")
    }
}

fn test_name_prefix(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("    name: {name},\n")
    }
}

fn samples_string(samples: &[(BTreeMap<String, String>, f64)]) -> String {
    if samples.is_empty() {
        return "nil".to_string();
    }
    samples.iter().map(|(l, v)| sample_string(l, *v)).collect::<Vec<_>>().join(", ")
}

/// Runs every test file as `promtool test rules FILE…` does, writing
/// promtool's report: `Unit Testing:  FILE` and `  SUCCESS` on `out`,
/// `  FAILED:` and each failure on `err`. Returns whether every file passed
/// (promtool's exit code 0); `Err` only when writing the report fails.
pub fn test_rules<P: AsRef<Path>>(files: &[P], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<bool> {
    let mut all_ok = true;
    for f in files {
        let path = f.as_ref();
        writeln!(out, "Unit Testing:  {}", path.display())?;
        out.flush()?;
        let mut warnings = Vec::new();
        match run_test_file_with_warnings(path, &mut warnings) {
            Ok(()) => {
                for w in &warnings {
                    writeln!(err, "{w}")?;
                }
                writeln!(out, "  SUCCESS")?;
            }
            Err(errors) => {
                for w in &warnings {
                    writeln!(err, "{w}")?;
                }
                writeln!(err, "  FAILED:")?;
                for e in &errors {
                    writeln!(err, "{e}")?;
                    writeln!(out)?;
                }
                all_ok = false;
            }
        }
        writeln!(out)?;
        out.flush()?;
        err.flush()?;
    }
    Ok(all_ok)
}

/// Runs one test file; `Err` holds every failure, in promtool's order.
pub fn run_test_file(path: &Path) -> Result<(), Vec<UnitTestError>> {
    run_test_file_with_warnings(path, &mut Vec::new())
}

fn run_test_file_with_warnings(path: &Path, warnings: &mut Vec<String>) -> Result<(), Vec<UnitTestError>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![UnitTestError::Read { path: shown.clone(), message: go_io_message(&e) }])?;
    let file = parse_test_file(&text).map_err(|message| vec![UnitTestError::Yaml { path: shown.clone(), message }])?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for pattern in &file.rule_files {
        let full = if pattern.is_empty() || Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let full = full.display().to_string();
        match crate::expand_globs(std::slice::from_ref(&full)) {
            Ok(matched) if matched.is_empty() => warnings.push(format!("  WARNING: no file match pattern {full}")),
            Ok(matched) => rule_files.extend(matched),
            Err(e) => return Err(e.errors.iter().map(|e| UnitTestError::RuleFile(e.to_string())).collect()),
        }
    }
    let eval_interval = file.evaluation_interval.filter(|&i| i > 0).unwrap_or(60_000);
    let mut order = HashMap::new();
    for (i, name) in file.group_eval_order.iter().enumerate() {
        if order.insert(name.clone(), i).is_some() {
            return Err(vec![UnitTestError::GroupOrderRepeated(name.clone())]);
        }
    }
    let mut errors = Vec::new();
    for tg in &file.tests {
        let interval = tg.interval.filter(|&i| i > 0).unwrap_or(eval_interval);
        if let Err(mut e) = run_test_group(tg, interval, eval_interval, &order, &rule_files) {
            errors.append(&mut e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Go's wording for the common reasons a file cannot be opened.
fn go_io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => e.to_string(),
    }
}

/// The input samples of a test group, in time order, appended as time goes.
struct LazyInput {
    samples: Vec<(i64, Labels, f64)>,
    next: usize,
}

impl LazyInput {
    fn new(tg: &TestGroup, interval: i64) -> Result<LazyInput, UnitTestError> {
        // A series given twice keeps its last definition, as promtool's
        // loader (keyed by label hash) does.
        let mut defs: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
        for s in &tg.input_series {
            let bad =
                |source| UnitTestError::InputSeries { series: s.series.clone(), values: s.values.clone(), source };
            let metric = parse_metric(&s.series).map_err(bad)?;
            let values = expand_values(&s.values).map_err(bad)?;
            let labels = Labels::new(metric.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| UnitTestError::Load(format!("{}: {e}", s.series)))?;
            defs.insert(labels, values);
        }
        let mut samples = Vec::new();
        for (labels, values) in defs {
            for (i, v) in values.into_iter().enumerate() {
                if let Some(v) = v {
                    let t = (i as i64).checked_mul(interval).ok_or_else(|| {
                        UnitTestError::Load(format!(
                            "sample {i} of {labels:?} lies beyond the representable time range"
                        ))
                    })?;
                    samples.push((t, labels.clone(), v));
                }
            }
        }
        samples.sort_by_key(|s| s.0);
        Ok(LazyInput { samples, next: 0 })
    }

    /// Appends every sample at or before `ts`.
    fn load_till(&mut self, db: &Db, ts: i64) -> Result<(), UnitTestError> {
        let end = self.next + self.samples[self.next..].partition_point(|s| s.0 <= ts);
        if end == self.next {
            return Ok(());
        }
        let mut app = db.appender();
        for (t, labels, v) in &self.samples[self.next..end] {
            app.append(labels, *t, *v).map_err(|e| UnitTestError::Load(format!("{labels:?} at {t}: {e}")))?;
        }
        app.commit().map_err(|e| UnitTestError::Load(e.to_string()))?;
        self.next = end;
        Ok(())
    }
}

fn run_test_group(
    tg: &TestGroup,
    interval: i64,
    eval_interval: i64,
    order: &HashMap<String, usize>,
    rule_files: &[PathBuf],
) -> Result<(), Vec<UnitTestError>> {
    let one = |e: UnitTestError| vec![e];
    let mut input = LazyInput::new(tg, interval).map_err(one)?;
    let db = Arc::new(Db::in_memory().map_err(|e| one(UnitTestError::Load(e.to_string())))?);
    let engine = Arc::new(Engine::new(EngineOptions {
        default_subquery_step: std::time::Duration::from_millis(eval_interval as u64),
        parallelism: 1,
        ..EngineOptions::default()
    }));
    let mut env = RuleEnv::new(db.clone(), engine);
    env.external_labels = tg.external_labels.clone();
    env.external_url = tg.external_url.clone();
    // promtool loads groups with the test group's interval as their default.
    env.evaluation_interval = std::time::Duration::from_millis(interval as u64);
    let env = Arc::new(env);

    let mut groups = Vec::new();
    let mut load_errors = Vec::new();
    for f in rule_files {
        match crate::load_rule_file(f, &check_template) {
            Ok(specs) => {
                for spec in specs {
                    match Group::new(spec, env.clone(), false) {
                        Ok(g) => groups.push(g),
                        Err(e) => load_errors.push(UnitTestError::RuleFile(format!("{}: {e}", f.display()))),
                    }
                }
            }
            Err(e) => load_errors.extend(e.errors.iter().map(|e| UnitTestError::RuleFile(e.to_string()))),
        }
    }
    if !load_errors.is_empty() {
        return Err(load_errors);
    }
    // Listed groups in their order; unlisted ones count as position 0, as
    // in promtool (which leaves their relative order to chance; we keep
    // file order).
    groups.sort_by_key(|g| order.get(g.name()).copied().unwrap_or(0));

    let mut alert_tests: BTreeMap<i64, Vec<&spec::AlertTestCase>> = BTreeMap::new();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            return Err(one(UnitTestError::MissingAlertname {
                eval_time_ms: a.eval_time,
                test_group: tg.name.clone(),
            }));
        }
        alert_tests.entry(a.eval_time).or_default().push(a);
    }
    let alert_times: Vec<i64> = alert_tests.keys().copied().collect();
    let max_eval = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time)
        .chain(tg.promql_expr_test.iter().map(|p| p.eval_time))
        .max()
        .unwrap_or(0);

    let mut errors = Vec::new();
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_eval {
        input.load_till(&db, ts).map_err(one)?;
        let mut eval_errors = Vec::new();
        for g in &groups {
            g.eval(ts);
            for r in g.rules() {
                if let Some(message) = r.status().last_error {
                    eval_errors.push(UnitTestError::RuleEval { rule: r.name().to_string(), time_ms: ts, message });
                }
            }
        }
        if !eval_errors.is_empty() {
            errors.append(&mut eval_errors);
            return Err(errors);
        }
        let next = ts.saturating_add(eval_interval);
        while curr < alert_times.len() && ts <= alert_times[curr] && alert_times[curr] < next {
            let t = alert_times[curr];
            let cases = &alert_tests[&t];
            let names: BTreeSet<&str> = cases.iter().map(|c| c.alertname.as_str()).collect();
            let got = firing_alerts(&groups, &names);
            for case in cases {
                let mut got_alerts = got.get(case.alertname.as_str()).cloned().unwrap_or_default();
                let mut expected: Vec<AlertLabelsAndAnnotations> = case
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut labels = a.exp_labels.clone();
                        labels.insert("alertname".to_string(), case.alertname.clone());
                        AlertLabelsAndAnnotations { labels, annotations: a.exp_annotations.clone() }
                    })
                    .collect();
                got_alerts.sort();
                expected.sort();
                if expected != got_alerts {
                    errors.push(UnitTestError::AlertMismatch {
                        test_group: tg.name.clone(),
                        alertname: case.alertname.clone(),
                        eval_time_ms: t,
                        expected,
                        got: got_alerts,
                    });
                }
            }
            curr += 1;
        }
        if next == ts || next == i64::MAX {
            break;
        }
        ts = next;
    }

    for case in &tg.promql_expr_test {
        let got = match env.query(&case.expr, case.eval_time) {
            Ok(v) => v,
            Err(message) => {
                errors.push(UnitTestError::ExprError {
                    expr: case.expr.clone(),
                    eval_time_ms: case.eval_time,
                    message,
                });
                continue;
            }
        };
        let mut got: Vec<(BTreeMap<String, String>, f64)> = got
            .into_iter()
            .map(|(l, v)| (l.iter().map(|p| (p.name.to_string(), p.value.to_string())).collect(), v))
            .collect();
        let mut expected = Vec::with_capacity(case.exp_samples.len());
        let mut bad = None;
        for s in &case.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => expected.push((l, s.value)),
                Err(e) => {
                    bad = Some(format!("labels {}: {e}", go_quote(&s.labels)));
                    break;
                }
            }
        }
        if let Some(message) = bad {
            errors.push(UnitTestError::ExprError { expr: case.expr.clone(), eval_time_ms: case.eval_time, message });
            continue;
        }
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        // Values compare with ==, as promtool 2.42's reflect.DeepEqual does:
        // NaN never matches, 0 matches -0.
        let same = expected.len() == got.len() && expected.iter().zip(&got).all(|(e, g)| e.0 == g.0 && e.1 == g.1);
        if !same {
            errors.push(UnitTestError::ExprMismatch {
                expr: case.expr.clone(),
                eval_time_ms: case.eval_time,
                expected,
                got,
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Alert templates must parse when a rule file loads, as Prometheus'
/// rule-file validation requires.
fn check_template(alert: &str, text: &str) -> Result<(), String> {
    crate::template::check_alert_template(alert, text).map_err(|e| e.to_string())
}

/// The firing alerts of the alerting rules named in `names`, across every
/// group (one alert name may be in several groups).
fn firing_alerts(groups: &[Group], names: &BTreeSet<&str>) -> HashMap<String, Vec<AlertLabelsAndAnnotations>> {
    let mut got: HashMap<String, Vec<AlertLabelsAndAnnotations>> = HashMap::new();
    for g in groups {
        for r in g.rules() {
            let Rule::Alerting(rule) = r else { continue };
            if !names.contains(rule.name()) {
                continue;
            }
            let entry = got.entry(rule.name().to_string()).or_default();
            for a in rule.alerts() {
                if a.state == AlertState::Firing {
                    entry.push(AlertLabelsAndAnnotations { labels: a.labels, annotations: a.annotations });
                }
            }
        }
    }
    got
}
