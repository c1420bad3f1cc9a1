//! The rule unit-test corpus (`testdata/rules/`) must pass with Debian's
//! `promtool test rules` (Prometheus 2.42, the oracle) and with our runner;
//! `tidemark-only/` (what promtool 2.42 cannot check) with our runner alone.
//! Files that fail on purpose, written here, must fail on both with the
//! same report.

use std::path::{Path, PathBuf};

use tidemark_rules::unittest::{run_test_file, test_rules};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/rules")
}

/// The `*.test.yml` files directly in `dir`, sorted.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    v.sort();
    v
}

/// How many alert and expression cases a test file holds (each has one
/// `eval_time`).
fn count_cases(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("eval_time:") || l.starts_with("- eval_time:"))
        .count()
}

fn promtool_test(file: &Path) -> tidemark_testkit::PromtoolOutput {
    tidemark_testkit::promtool(["test".as_ref(), "rules".as_ref(), file.as_os_str()]).expect("promtool runs")
}

fn ours(files: &[PathBuf]) -> (bool, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let ok = test_rules(files, &mut out, &mut err).unwrap();
    (ok, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn run_all_with_tidemark(files: Vec<PathBuf>) {
    let mut failures = Vec::new();
    for f in files {
        if let Err(errs) = run_test_file(&f) {
            let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            failures.push(format!("{}:\n{}", f.display(), text.join("\n")));
        }
    }
    assert!(failures.is_empty(), "tidemark test rules failed:\n{}", failures.join("\n\n"));
}

#[test]
fn corpus_is_large_enough() {
    let total: usize = test_files(&corpus_dir()).iter().map(|p| count_cases(p)).sum();
    assert!(total >= 60, "the corpus must hold at least 60 cases, it holds {total}");
    assert!(corpus_dir().join("seed-rules.yml").exists());
}

#[test]
fn corpus_passes_with_promtool() {
    let files = test_files(&corpus_dir());
    assert!(files.len() >= 5, "corpus files missing: {files:?}");
    for f in &files {
        let out = promtool_test(f);
        assert!(
            out.success(),
            "promtool test rules {} failed (a wrong test):\n{}\n{}",
            f.display(),
            out.stdout,
            out.stderr
        );
        assert!(out.stdout.contains("  SUCCESS"), "{}", out.stdout);
    }
}

#[test]
fn corpus_passes_with_tidemark() {
    run_all_with_tidemark(test_files(&corpus_dir()));
}

#[test]
fn tidemark_only_cases_pass_with_tidemark() {
    let files = test_files(&corpus_dir().join("tidemark-only"));
    assert!(files.len() >= 2, "{files:?}");
    run_all_with_tidemark(files);
}

/// Rules for a test file that fails on purpose.
const FAILING_RULES: &str = r#"
groups:
  - name: g
    rules:
      - alert: Up
        expr: up == 1
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.job }} is up"}
      - record: job:up:sum
        expr: sum by (job) (up)
"#;

/// Every kind of mismatch promtool reports: a wrong alert list, an extra
/// alert, a wrong value, a missing series, a scalar, an unnamed group.
const FAILING_TEST: &str = r#"
rule_files: [rules.yml]
tests:
  - name: wrong on purpose
    interval: 1m
    input_series:
      - series: 'up{job="api", instance="a"}'
        values: '1x5'
      - series: 'up{job="db", instance="b"}'
        values: '0 0 1 1 1 1'
    alert_rule_test:
      # api fires from 1m; db is only pending at 2m.
      - eval_time: 2m
        alertname: Up
        exp_alerts:
          - exp_labels: {severity: page, job: db, instance: b}
            exp_annotations: {summary: "db is up"}
      - eval_time: 4m
        alertname: Up
        exp_alerts:
          - exp_labels: {severity: page, job: api, instance: a}
            exp_annotations: {summary: "api is up"}
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 4m
        exp_samples:
          - labels: 'job:up:sum{job="api"}'
            value: 1.5
          - labels: 'job:up:sum{job="db"}'
            value: 1
      - expr: nothing_here
        eval_time: 1m
        exp_samples:
          - labels: 'nothing_here'
            value: 0
  - interval: 1m
    input_series: []
    promql_expr_test:
      - expr: vector(0.1) * 3
        eval_time: 90s
        exp_samples:
          - labels: '{}'
            value: 0.3
      - expr: scalar(vector(2))
        eval_time: 0m
        exp_samples: []
"#;

#[test]
fn failures_are_reported_as_promtool_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), FAILING_RULES).unwrap();
    let test = dir.path().join("wrong.test.yml");
    std::fs::write(&test, FAILING_TEST).unwrap();

    let p = promtool_test(&test);
    assert!(!p.success(), "promtool should fail:\n{}", p.stdout);
    let (ok, out, err) = ours(std::slice::from_ref(&test));
    assert!(!ok);
    assert_eq!(err, p.stderr, "stderr differs from promtool's");
    assert_eq!(out, p.stdout, "stdout differs from promtool's");
}

#[test]
fn a_rule_that_fails_to_evaluate_stops_its_test_group_as_in_promtool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: limited\n    limit: 1\n    rules:\n      - alert: TooMany\n        expr: up == 0\n",
    )
    .unwrap();
    let test = dir.path().join("limit.test.yml");
    std::fs::write(
        &test,
        "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{i=\"1\"}'\n        values: '1 0 0'\n      - series: 'up{i=\"2\"}'\n        values: '1 0 0'\n    alert_rule_test:\n      - eval_time: 2m\n        alertname: TooMany\n        exp_alerts: []\n",
    )
    .unwrap();
    let p = promtool_test(&test);
    assert!(!p.success());
    assert!(p.stderr.contains("rule: TooMany, time: 1m0s, err: exceeded limit of 1 with 2 alerts"), "{}", p.stderr);
    let (ok, out, err) = ours(std::slice::from_ref(&test));
    assert!(!ok);
    assert_eq!(err, p.stderr);
    assert_eq!(out, p.stdout);
}

#[test]
fn a_missing_test_file_fails_and_the_others_still_run() {
    let files = vec![corpus_dir().join("no-such.test.yml"), corpus_dir().join("series.test.yml")];
    let (ok, out, err) = ours(&files);
    assert!(!ok);
    assert!(err.starts_with("  FAILED:\nopen "), "{err}");
    assert!(err.contains("no-such.test.yml: no such file or directory\n"), "{err}");
    assert!(out.ends_with("  SUCCESS\n\n"), "{out}");
}

/// Writes `test` (and an empty rule file) to a temporary directory and
/// checks that promtool and our runner both fail with the same report.
fn same_failure_as_promtool(test: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), "groups: []\n").unwrap();
    let path = dir.path().join("t.test.yml");
    std::fs::write(&path, test).unwrap();
    let p = promtool_test(&path);
    assert!(!p.success(), "promtool should fail:\n{}", p.stdout);
    let (ok, out, err) = ours(std::slice::from_ref(&path));
    assert!(!ok);
    assert_eq!(err, p.stderr, "stderr differs from promtool's");
    assert_eq!(out, p.stdout, "stdout differs from promtool's");
    err
}

#[test]
fn a_missing_alertname_is_reported_as_promtool_reports_it() {
    let err = same_failure_as_promtool(
        "rule_files: [rules.yml]\ntests:\n  - name: nameless\n    input_series: []\n    alert_rule_test:\n      - eval_time: 90s\n        exp_alerts: []\n",
    );
    assert!(err.contains("misses required attribute alertname at eval_time 1m30s (in TestGroup nameless)"), "{err}");
}

#[test]
fn a_repeated_group_in_the_evaluation_order_is_reported_as_promtool_reports_it() {
    let err = same_failure_as_promtool("rule_files: [rules.yml]\ngroup_eval_order: [a, b, a]\ntests: []\n");
    assert!(err.contains("group name repeated in evaluation order: a"), "{err}");
}

#[test]
fn a_template_that_does_not_parse_fails_the_file_on_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Bad\n        expr: vector(1)\n        annotations:\n          summary: '{{ nope }}'\n",
    )
    .unwrap();
    let test = dir.path().join("t.test.yml");
    std::fs::write(&test, "rule_files: [rules.yml]\ntests:\n  - input_series: []\n").unwrap();
    let p = promtool_test(&test);
    assert!(!p.success());
    assert!(p.stderr.contains("function \"nope\" not defined"), "{}", p.stderr);
    let (ok, _, err) = ours(std::slice::from_ref(&test));
    assert!(!ok);
    assert!(err.contains("function \"nope\" not defined"), "{err}");
}
