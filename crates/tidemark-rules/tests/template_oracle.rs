//! Templates judged against Prometheus itself.
//!
//! `tests/template/*.test.yml` are `promtool test rules` files whose
//! expected alerts were written from promtool's own output (`regen.py`).
//! Each test here runs promtool on them (they must pass), then expands
//! the same rules over the same series with Tidemark's expander and
//! compares every templated label and annotation with the expected text.
//! Syntax errors are judged the same way against `promtool check rules`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;
use tidemark_rules::{check_alert_template, expand_alert_template_with_url, QueryRunner, QuerySample, TemplateData};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/template")
}

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn str_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Yaml::Mapping(m)) = v {
        for (k, v) in m {
            let k = k.as_str().expect("string key").to_string();
            let v = match v {
                Yaml::String(s) => s.clone(),
                other => serde_norway::to_string(other).expect("scalar").trim().to_string(),
            };
            out.insert(k, v);
        }
    }
    out
}

/// Prometheus' duration notation as used in these files (`0`, `30s`, `1m`, `2h`).
fn duration_ms(v: &Yaml) -> i64 {
    let s = match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        other => panic!("bad duration {other:?}"),
    };
    if s == "0" {
        return 0;
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).expect("unit"));
    let n: i64 = num.parse().expect("number");
    n * match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => panic!("unit {other}"),
    }
}

/// A series selector `name{k="v",...}` as written in `input_series`.
fn parse_series(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i + 1..s.len() - 1]),
        None => (s, ""),
    };
    if !name.is_empty() {
        labels.insert("__name__".to_string(), name.to_string());
    }
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').expect("label =");
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let after = after.strip_prefix('"').expect("quoted value");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, e) = chars.next().expect("escape");
                    value.push(match e {
                        'n' => '\n',
                        other => other,
                    });
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        rest = after[end..].trim_start_matches([',', ' ']).trim();
    }
    labels
}

/// The expanding notation of `input_series` values (`1 2 3`, `1x3`,
/// `1+2x3`, `NaN`, `Inf`, `_`): the value at each step, `None` when absent.
fn expand_values(s: &str) -> Vec<Option<f64>> {
    let num = |t: &str| -> f64 {
        match t {
            "NaN" => f64::NAN,
            "Inf" | "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            t => t.parse().unwrap_or_else(|_| panic!("value {t}")),
        }
    };
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        match tok.split_once('x') {
            None => out.push(Some(num(tok))),
            Some((start, n)) => {
                let n: usize = n.parse().expect("repeat count");
                // `a+bxn` / `a-bxn`; a bare `axn` repeats a.
                let b = start.as_bytes();
                let split = (1..b.len()).find(|&i| matches!(b[i], b'+' | b'-') && !matches!(b[i - 1], b'e' | b'E'));
                let (a, b) = match split {
                    Some(i) => (num(&start[..i]), num(&start[i..])),
                    None => (num(start), 0.0),
                };
                for k in 0..=n {
                    out.push(Some(a + b * k as f64));
                }
            }
        }
    }
    out
}

struct Series {
    labels: BTreeMap<String, String>,
    values: Vec<Option<f64>>,
}

/// The `query` function over the test's input series: instant selectors
/// (`name`, `name{k="v"}`) with Prometheus' 5 minute lookback, in the
/// order the series were written (promtool's storage returns them so).
struct SeriesRunner<'a> {
    series: &'a [Series],
    interval_ms: i64,
}

impl SeriesRunner<'_> {
    fn value_at(&self, s: &Series, t_ms: i64) -> Option<f64> {
        let last = (t_ms / self.interval_ms) as usize;
        (0..=last.min(s.values.len().saturating_sub(1)))
            .rev()
            .take_while(|i| t_ms - *i as i64 * self.interval_ms <= 300_000)
            .find_map(|i| s.values[i])
    }
}

impl QueryRunner for SeriesRunner<'_> {
    fn query(&self, expr: &str, t_ms: i64) -> Result<Vec<QuerySample>, String> {
        if !expr.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) || expr.contains([' ', '(', '[']) {
            return Err(format!("test runner only evaluates selectors, not {expr:?}"));
        }
        let want = parse_series(expr);
        let out: Vec<QuerySample> = self
            .series
            .iter()
            .filter(|s| want.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .filter_map(|s| self.value_at(s, t_ms).map(|value| QuerySample { labels: s.labels.clone(), value }))
            .collect();
        Ok(out)
    }
}

fn expand(alert: &str, text: &str, data: &TemplateData, t_ms: i64, runner: &SeriesRunner<'_>) -> String {
    // promtool's rule manager has no external URL for the URL functions.
    match expand_alert_template_with_url(alert, text, data, t_ms, Some(runner), None) {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

/// Checks one test file; returns the mismatches and how many values were compared.
fn check_file(test_path: &Path) -> (Vec<String>, usize) {
    let doc = load(test_path);
    let mut rules = Vec::new();
    for f in doc["rule_files"].as_sequence().expect("rule_files") {
        let rf = load(&fixtures().join(f.as_str().expect("file name")));
        for g in rf["groups"].as_sequence().expect("groups") {
            rules.extend(g["rules"].as_sequence().expect("rules").iter().cloned());
        }
    }
    let mut problems = Vec::new();
    let mut compared = 0;
    for group in doc["tests"].as_sequence().expect("tests") {
        let interval_ms = group.get("interval").map_or(60_000, duration_ms);
        let series: Vec<Series> = group["input_series"]
            .as_sequence()
            .expect("input_series")
            .iter()
            .map(|s| Series {
                labels: parse_series(s["series"].as_str().expect("series")),
                values: expand_values(s["values"].as_str().expect("values")),
            })
            .collect();
        let runner = SeriesRunner { series: &series, interval_ms };
        let external_labels = str_map(group.get("external_labels"));
        let external_url = group.get("external_url").and_then(Yaml::as_str).unwrap_or("").to_string();
        for test in group["alert_rule_test"].as_sequence().expect("alert_rule_test") {
            let t_ms = duration_ms(&test["eval_time"]);
            let alertname = test["alertname"].as_str().expect("alertname");
            let expected: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> = test["exp_alerts"]
                .as_sequence()
                .expect("exp_alerts")
                .iter()
                .map(|a| (str_map(a.get("exp_labels")), str_map(a.get("exp_annotations"))))
                .collect();
            let mut produced = 0;
            for rule in rules.iter().filter(|r| r.get("alert").and_then(Yaml::as_str) == Some(alertname)) {
                let expr = rule["expr"].as_str().expect("expr");
                let alerts = runner.query(expr, t_ms).expect("rule expressions are selectors");
                for sample in alerts {
                    produced += 1;
                    let data = TemplateData {
                        labels: sample.labels.clone(),
                        external_labels: external_labels.clone(),
                        external_url: external_url.clone(),
                        value: sample.value,
                    };
                    let mut labels = sample.labels.clone();
                    labels.remove("__name__");
                    for (k, text) in str_map(rule.get("labels")) {
                        labels.insert(k, expand(alertname, &text, &data, t_ms, &runner));
                    }
                    let Some((_, exp_ann)) = expected.iter().find(|(l, _)| *l == labels) else {
                        problems.push(format!("{alertname}: no expected alert with labels {labels:?}"));
                        continue;
                    };
                    compared += labels.len();
                    for (k, text) in str_map(rule.get("annotations")) {
                        let got = expand(alertname, &text, &data, t_ms, &runner);
                        compared += 1;
                        match exp_ann.get(&k) {
                            Some(want) if *want == got => {}
                            want => problems.push(format!(
                                "{}: {alertname} {labels:?} annotation {k}:\n  template: {text}\n  want: {want:?}\n  got:  {got:?}",
                                test_path.file_name().unwrap_or_default().to_string_lossy()
                            )),
                        }
                    }
                }
            }
            if produced != expected.len() {
                problems.push(format!("{alertname}: {produced} alerts, promtool expects {}", expected.len()));
            }
        }
    }
    (problems, compared)
}

fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "fixtures missing: {files:?}");
    files
}

#[test]
fn promtool_passes_every_fixture() {
    for f in test_files() {
        let out =
            tidemark_testkit::promtool(["test", "rules", f.to_str().expect("utf-8 path")]).expect("promtool runs");
        assert!(out.success(), "promtool test rules {} failed:\n{}\n{}", f.display(), out.stdout, out.stderr);
    }
}

#[test]
fn expander_matches_promtool_fixtures() {
    let mut all = Vec::new();
    let mut total = 0;
    for f in test_files() {
        let (problems, compared) = check_file(&f);
        assert!(compared > 0, "{} compared nothing", f.display());
        total += compared;
        all.extend(problems);
    }
    assert!(all.is_empty(), "{} of {total} values differ from Prometheus:\n{}", all.len(), all.join("\n"));
}

/// Templates with syntax errors: `check_alert_template` must report what
/// `promtool check rules` reports, word for word.
#[test]
fn check_matches_promtool_check_rules() {
    let cases: &[(&str, &str)] = &[
        ("unknown_func", "{{ nope }}"),
        ("unclosed_action", "{{ $value | humanize "),
        ("unexpected_eof", "{{ if 1 }}x"),
        ("undefined_var", "{{ $undefined }}"),
        ("stray_end", "{{ end }}"),
        ("stray_else", "{{ else }}"),
        ("pipe_literal", "{{ printf \"%d\" 1 | 2 }}"),
        ("unclosed_paren", "line\n{{ (1 }}"),
        ("extra_paren", "{{ 1) }}"),
        ("bad_number", "{{ 1x }}"),
        ("bad_char", "{{ # }}"),
        ("unterminated_string", "{{ \"abc }}"),
        ("unclosed_comment", "{{/* abc }}"),
        ("comment_no_delim", "{{/* abc */ x }}"),
        ("empty_action", "{{ }}"),
        ("bad_decl", "{{ $x := }}"),
        ("range_decl", "{{ range $a, $b, $c := $labels }}{{ end }}"),
        ("with_else_if", "{{ with 1 }}{{ else if 2 }}{{ end }}"),
        ("define_nested", "{{ if 1 }}{{ define \"a\" }}{{ end }}{{ end }}"),
        ("break_outside", "{{ break }}"),
        ("tmpl_function", "{{ tmpl \"x\" . }}"),
        ("dot_after_literal", "{{ \"a\".b }}"),
        ("assign_undeclared", "{{ $y = 1 }}"),
        ("multi_line_later", "a\nb\n{{ if }}{{ end }}"),
        ("redefine", "{{ define \"a\" }}x{{ end }}{{ define \"a\" }}y{{ end }}"),
        ("ok_pipe_end", "{{ .Foo | }}"),
        ("multi_unclosed", "a\n{{ 1 \n\n"),
        ("multi_string", "{{ \"abc\n }}"),
        ("multi_paren", "x\n{{ (1\n| printf \"%d\" }}"),
        ("ok_raw_multiline", "{{ `a\nb` }}"),
        ("else_twice", "{{ if 1 }}{{ else }}{{ else }}{{ end }}"),
        ("range_non_var", "{{ range $a, 1 }}{{ end }}"),
        ("decl_in_command", "{{ printf $x := 1 }}"),
        ("colon", "{{ $x : 1 }}"),
        ("template_no_name", "{{ template x }}"),
        ("define_bad_name", "{{ define x }}{{ end }}"),
        ("bad_escape", "{{ \"\\q\" }}"),
        ("big_int", "{{ 99999999999999999999 }}"),
        ("char_const", "{{ 'ab' }}"),
        ("break_in_block", "{{ range $labels }}{{ block \"b\" . }}{{ break }}{{ end }}{{ end }}"),
        ("outer_var_in_block", "{{ $x := 1 }}{{ block \"b\" . }}{{ $x }}{{ end }}"),
        ("ok_everything", "{{ range $i, $v := query \"up\" }}{{ $v.Value | humanize }}{{ end }}{{/* c */}}{{- 3 -}}"),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut yaml =
        String::from("groups:\n- name: g\n  rules:\n  - alert: Check\n    expr: vector(1)\n    annotations:\n");
    for (name, text) in cases {
        yaml.push_str(&format!("      {name}: {}\n", serde_json::to_string(text).expect("json string")));
    }
    let path = dir.path().join("check.rules.yml");
    std::fs::write(&path, yaml).expect("write rule file");
    let out =
        tidemark_testkit::promtool(["check", "rules", path.to_str().expect("utf-8 path")]).expect("promtool runs");
    let text = format!("{}{}", out.stdout, out.stderr);
    let mut promtool: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(i) = line.find("annotation \"") {
            let rest = &line[i + "annotation \"".len()..];
            let (name, msg) = rest.split_once("\": ").expect("annotation message");
            promtool.insert(name.to_string(), msg.to_string());
        }
    }
    let mut problems = Vec::new();
    for (name, text) in cases {
        let ours = check_alert_template("Check", text).err().map(|e| e.to_string());
        let theirs = promtool.get(*name).cloned();
        if ours != theirs {
            problems.push(format!("{name} {text:?}:\n  promtool: {theirs:?}\n  ours:     {ours:?}"));
        }
    }
    assert!(promtool.len() >= 20, "promtool reported too few errors:\n{text}");
    assert!(problems.is_empty(), "check differs from promtool:\n{}", problems.join("\n"));
}
