//! Rule files: the guides' seed file loads with the right fields, and each
//! kind of bad file is rejected by both Debian's `promtool check rules`
//! (2.42) and us, with the same position, group and rule where promtool
//! names them, and the same text where ours is promtool's.
//!
//! Where we differ from promtool 2.42 on purpose:
//! - `query_offset` and group `labels` (Prometheus 2.53+/3.x) are accepted;
//!   2.42 rejects them as unknown fields (`newer_fields.yml`).
//! - A negative `limit` is an error; Prometheus takes it as "no limit"
//!   (`negative_limit.yml`): the rule model's limit is unsigned, and a
//!   negative limit is always a slip.
//! - Unknown fields, wrong types and duplicate keys are reported with a
//!   line and column and in our words; promtool gives Go's decoder text
//!   with a line only. Their lines are compared.
//! - Bad durations carry the position, group and rule; promtool names none
//!   and stops at the first. Both reject; our position is asserted.
//! - Label and annotation name errors, template errors, and an absent
//!   `record`/`alert`/`expr` carry a position (the name, the template, the
//!   rule); promtool prints none or `0:0`. Group, rule and text are compared.
//! - PromQL messages are `tidemark_promql`'s: an unclosed parenthesis is
//!   placed at the parenthesis left open (promtool: at the end of the
//!   expression), and some syntax errors read differently. The position of
//!   the `expr` node, group and rule are compared.
//! - YAML syntax errors are placed where libyaml found them; promtool's
//!   text names a meaningless `line 1`. Both reject.
//! - Template checking is passed in by the caller; these tests pass a
//!   stand-in that rejects unbalanced `{{`/`}}` with Go's "unclosed
//!   action" text, so only group, rule and the label/annotation named are
//!   compared with promtool's real template parser.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tidemark_rules::{load_rule_file, parse_rule_text, GroupSpec, RuleFileErrors, RuleKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rule_files").join(name)
}

fn seed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/rules/seed-rules.yml")
}

/// Stand-in for the template module's parse check (see the list above).
fn balanced_braces(alert: &str, text: &str) -> Result<(), String> {
    if text.matches("{{").count() == text.matches("}}").count() {
        Ok(())
    } else {
        Err(format!("template: __alert_{alert}:1: unclosed action"))
    }
}

fn load(path: &Path) -> Result<Vec<GroupSpec>, RuleFileErrors> {
    load_rule_file(path, &balanced_braces)
}

fn dur(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn seed_rules_load_with_their_fields() {
    let groups = load(&seed_path()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hyperstudy",
            "spheroseg",
            "spheroseg_recording",
            "hypersdk",
            "hypersdk_recording_rules",
            "slo.rules",
            "platform.critical",
            "ml-pipeline.critical"
        ]
    );
    assert_eq!(groups.iter().map(|g| g.rules.len()).sum::<usize>(), 20);
    let file = seed_path().display().to_string();
    assert!(groups.iter().all(|g| g.file == file && g.limit == 0 && g.query_offset.is_none() && g.labels.is_empty()));
    let intervals: Vec<Option<Duration>> = groups.iter().map(|g| g.interval).collect();
    assert_eq!(
        intervals,
        [None, Some(dur(30)), Some(dur(30)), None, Some(dur(30)), Some(dur(30)), Some(dur(30)), None]
    );

    let high_error = &groups[0].rules[0];
    assert_eq!(high_error.line, 8);
    assert_eq!(
        high_error.expr,
        "sum(rate(http_requests_total{status=~\"5..\"}[5m]))\n/\nsum(rate(http_requests_total[5m])) > 0.05\n"
    );
    assert_eq!(high_error.labels.get("severity").map(String::as_str), Some("critical"));
    let RuleKind::Alerting { alert, for_duration, keep_firing_for, annotations } = &high_error.kind else {
        panic!("HighErrorRate is an alerting rule: {high_error:?}")
    };
    assert_eq!(alert, "HighErrorRate");
    assert_eq!(*for_duration, dur(300));
    assert_eq!(*keep_firing_for, Duration::ZERO);
    assert_eq!(annotations.get("summary").map(String::as_str), Some("High error rate detected"));
    assert_eq!(annotations.get("description").map(String::as_str), Some("Error rate is above 5% for 5 minutes"));

    let recording = &groups[0].rules[5];
    assert_eq!(recording.kind, RuleKind::Recording { record: "job:http_requests:rate5m".into() });
    assert_eq!(recording.expr, "sum(rate(http_requests_total[5m])) by (job)");
    assert_eq!(recording.line, 37);

    let critical = &groups[6].rules[0];
    assert_eq!(critical.name(), "PlatformAvailabilityCritical");
    assert_eq!(critical.line, 117);
    assert_eq!(critical.labels.len(), 4);
    assert_eq!(
        critical.labels.get("runbook").map(String::as_str),
        Some("https://runbooks.footanalytics.com/platform-availability")
    );
    let RuleKind::Alerting { for_duration, annotations, .. } = &critical.kind else { panic!("{critical:?}") };
    assert_eq!(*for_duration, dur(120));
    assert_eq!(
        annotations["description"],
        "Platform availability is {{ $value | humanizePercentage }} which is below the 99% SLO for 2 minutes"
    );
    let gpu = &groups[7].rules[1];
    assert_eq!((gpu.name(), gpu.line), ("GPUUtilizationLow", 156));
    assert!(matches!(gpu.kind, RuleKind::Alerting { for_duration, .. } if for_duration == dur(1800)));
    // Every rule's line is the line of its `alert:` or `record:` key.
    let text = std::fs::read_to_string(seed_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for rule in groups.iter().flat_map(|g| &g.rules) {
        let line = lines[rule.line - 1].trim_start();
        assert!(line.ends_with(rule.name()) && line.starts_with("- "), "{}: line {}: {line}", rule.name(), rule.line);
    }
}

#[test]
fn seed_rules_check_like_promtool() {
    let seed = seed_path();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert!(tidemark_rules::check::check_rules(std::slice::from_ref(&seed), &balanced_braces, &mut out, &mut err));
    let promtool = tidemark_testkit::promtool(["check".as_ref(), "rules".as_ref(), seed.as_os_str()]).unwrap();
    assert!(promtool.success(), "{promtool:?}");
    assert_eq!(String::from_utf8(out).unwrap(), promtool.stdout);
    assert_eq!(String::from_utf8(err).unwrap(), promtool.stderr);
}

#[test]
fn newer_fields_load() {
    let groups = load(&fixture("newer_fields.yml")).unwrap_or_else(|e| panic!("{e}"));
    let g = &groups[0];
    assert_eq!((g.interval, g.query_offset, g.limit), (Some(dur(30)), Some(dur(60)), 10));
    assert_eq!(g.labels.get("team").map(String::as_str), Some("platform"));
    assert!(matches!(
        &g.rules[0].kind,
        RuleKind::Alerting { for_duration, keep_firing_for, .. } if *for_duration == dur(300) && *keep_firing_for == dur(600)
    ));
    // 2.42 knows keep_firing_for but not the two group fields.
    let out = promtool_check(&fixture("newer_fields.yml"));
    assert!(!out.success());
    assert_eq!(yaml_lines(&out.stderr), [6, 8], "{}", out.stderr);
}

/// An error line as promtool and we print it, taken apart.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    pos: Option<(usize, usize)>,
    pos_alt: Option<(usize, usize)>,
    group: Option<String>,
    rule: Option<(usize, String)>,
    message: String,
}

fn parse_line(file: &str, text: &str) -> Line {
    let re = regex::Regex::new(
        r#"^(?:(\d+):(\d+): )?(?:(\d+):(\d+): )?(?:group "((?:[^"\\]|\\.)*)"(?:, rule (\d+), "((?:[^"\\]|\\.)*)")?: )?(.*)$"#,
    )
    .unwrap();
    let rest = text.strip_prefix(&format!("{file}: ")).unwrap_or_else(|| panic!("{text:?} does not start with {file}"));
    let c = re.captures(rest).unwrap();
    let num = |i: usize| c.get(i).map(|m| m.as_str().parse::<usize>().unwrap());
    let pair = |i: usize| num(i).zip(num(i + 1)).filter(|&p| p != (0, 0));
    Line {
        pos: pair(1),
        pos_alt: pair(3),
        group: c.get(5).map(|m| m.as_str().to_string()),
        rule: num(6).map(|i| (i, c[7].to_string())),
        message: c[8].to_string(),
    }
}

fn promtool_check(path: &Path) -> tidemark_testkit::PromtoolOutput {
    tidemark_testkit::promtool(["check".as_ref(), "rules".as_ref(), path.as_os_str()]).unwrap()
}

/// The lines promtool's `yaml: unmarshal errors:` list names.
fn yaml_lines(stderr: &str) -> Vec<usize> {
    stderr.lines().filter_map(|l| l.strip_prefix("  line ")?.split(':').next()?.parse().ok()).collect()
}

/// How our errors for a bad file compare with promtool's.
#[derive(Debug, Clone, Copy)]
enum Oracle {
    /// Promtool prints the same lines.
    Same,
    /// Each of promtool's errors is one of ours: same group and rule, same
    /// position where promtool gives one, and the same message up to
    /// `prefix` characters, or whole when `None`.
    Matches(Option<usize>),
    /// Promtool's `yaml: unmarshal errors` lines are the lines of ours.
    YamlLines,
    /// Promtool rejects the file without naming a place.
    Rejects,
    /// Promtool 2.42 accepts the file (see the list at the top).
    Accepts,
}

/// The bad files, what we print for each, and how that compares with promtool.
const BAD_FILES: &[(&str, Oracle, &[&str])] = &[
    (
        "unknown_fields.yml",
        Oracle::YamlLines,
        &[
            r#"3:5: group "api": unknown field "evaluation_interval" (expected one of name, interval, query_offset, limit, labels, rules)"#,
            r#"7:9: group "api", rule 1, "job:up:sum": unknown field "description" (expected one of record, alert, expr, for, keep_firing_for, labels, annotations)"#,
            r#"12:9: group "db", rule 1, "DbDown": unknown field "summary" (expected one of record, alert, expr, for, keep_firing_for, labels, annotations)"#,
        ],
    ),
    ("duplicate_group.yml", Oracle::Same, &[r#"10:5: groupname: "api" is repeated in the same file"#]),
    (
        "empty_group_name.yml",
        Oracle::Same,
        &[
            "2:5: Groupname must not be empty",
            "6:5: Groupname must not be empty",
            r#"6:5: groupname: "" is repeated in the same file"#,
        ],
    ),
    (
        "record_and_alert.yml",
        Oracle::Same,
        &[r#"4:17: 5:16: group "api", rule 1, "JobDown": only one of 'record' and 'alert' must be set"#],
    ),
    (
        "neither_record_nor_alert.yml",
        Oracle::Matches(None),
        &[r#"6:9: group "api", rule 2, "": one of 'record' or 'alert' must be set"#],
    ),
    (
        "alerting_fields_on_recording_rule.yml",
        Oracle::Same,
        &[
            r#"4:17: group "api", rule 1, "job:up:sum": invalid field 'for' in recording rule"#,
            r#"7:17: group "api", rule 2, "job:up:count": invalid field 'keep_firing_for' in recording rule"#,
            r#"10:17: group "api", rule 3, "job:up:min": invalid field 'annotations' in recording rule"#,
        ],
    ),
    (
        "invalid_record_name.yml",
        Oracle::Same,
        &[
            r#"4:17: group "api", rule 1, "5xx:rate5m": invalid recording rule name: 5xx:rate5m"#,
            r#"6:17: group "api", rule 2, "job:http-requests:rate5m": invalid recording rule name: job:http-requests:rate5m"#,
        ],
    ),
    (
        "invalid_label_name.yml",
        Oracle::Matches(None),
        &[
            r#"7:11: group "api", rule 1, "ApiDown": invalid label name: team-name"#,
            r#"11:11: group "api", rule 2, "job:up:sum": invalid label name: __name__"#,
        ],
    ),
    (
        "invalid_annotation_name.yml",
        Oracle::Matches(None),
        &[r#"7:11: group "api", rule 1, "ApiDown": invalid annotation name: run-book"#],
    ),
    (
        "bad_expression.yml",
        Oracle::Matches(Some("could not parse expression: ".len())),
        &[
            r#"5:15: group "api", rule 1, "HighErrorRate": could not parse expression: 3:4: parse error: unclosed left parenthesis"#,
            r#"11:15: group "api", rule 2, "job:latency:p95": could not parse expression: 1:70: parse error: unexpected character inside brackets: ')'"#,
            r#"13:15: group "api", rule 3, "Flapping": could not parse expression: 1:19: parse error: invalid promql query"#,
            r#"15:15: group "api", rule 4, "job:up:sum": could not parse expression: 1:19: parse error: invalid promql query"#,
        ],
    ),
    (
        "missing_expr.yml",
        Oracle::Matches(None),
        &[
            r#"4:9: group "api", rule 1, "ApiDown": field 'expr' must be set in rule"#,
            r#"7:15: group "api", rule 2, "job:up:sum": field 'expr' must be set in rule"#,
        ],
    ),
    (
        "bad_template.yml",
        // Up to and including `label "severity": template: __alert_NAME:1:`.
        Oracle::Matches(Some(0)),
        &[
            r#"7:21: group "api", rule 1, "HighLatency": label "severity": template: __alert_HighLatency:1: unclosed action"#,
            r#"11:20: group "api", rule 2, "ApiDown": annotation "summary": template: __alert_ApiDown:1: unclosed action"#,
        ],
    ),
    (
        "bad_for_duration.yml",
        Oracle::Rejects,
        &[r#"6:14: group "api", rule 1, "ApiDown": not a valid duration string: "1h30""#],
    ),
    ("bad_interval.yml", Oracle::Rejects, &[r#"3:15: group "api": not a valid duration string: "30sec""#]),
    (
        "bad_keep_firing_for.yml",
        Oracle::Rejects,
        &[r#"6:26: group "api", rule 1, "ApiDown": not a valid duration string: "1.5m""#],
    ),
    (
        "negative_limit.yml",
        Oracle::Accepts,
        &[r#"3:12: group "api": invalid field 'limit': -1 is negative (0 means no limit)"#],
    ),
    (
        "wrong_types.yml",
        Oracle::YamlLines,
        &[
            r#"3:12: group "api": field 'limit': expected an integer, got string "ten""#,
            r#"7:9: group "api", rule 1, "ApiDown": field 'labels': expected a mapping of names to strings, got a list"#,
        ],
    ),
    ("duplicate_key.yml", Oracle::YamlLines, &[r#"6:9: mapping key "expr" already defined at line 5"#]),
    (
        "yaml_syntax.yml",
        Oracle::Rejects,
        &["6:6: yaml: did not find expected key at line 6 column 6, while parsing a block mapping at line 2 column 5"],
    ),
];

#[test]
fn bad_files_are_rejected_as_promtool_rejects_them() {
    let mut failures = Vec::new();
    for (name, oracle, expected) in BAD_FILES {
        let path = fixture(name);
        let file = path.display().to_string();
        let ours: Vec<String> = match load(&path) {
            Ok(groups) => {
                failures.push(format!("{name}: loaded {groups:?}"));
                continue;
            }
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        };
        let want: Vec<String> = expected.iter().map(|l| format!("{file}: {l}")).collect();
        if ours != want {
            failures.push(format!("{name}: ours\n  {}\nwanted\n  {}", ours.join("\n  "), want.join("\n  ")));
            continue;
        }
        let promtool = promtool_check(&path);
        if matches!(oracle, Oracle::Accepts) {
            if !promtool.success() {
                failures.push(format!("{name}: promtool 2.42 was expected to accept it: {}", promtool.stderr));
            }
            continue;
        }
        if promtool.status.code() != Some(1) || !promtool.stderr.starts_with("  FAILED:\n") {
            failures.push(format!("{name}: promtool did not reject it: {promtool:?}"));
            continue;
        }
        let theirs: Vec<&str> = promtool.stderr.lines().skip(1).collect();
        let ours_parsed: Vec<Line> = ours.iter().map(|l| parse_line(&file, l)).collect();
        match oracle {
            Oracle::Same => {
                let mut a = ours.clone();
                let mut b: Vec<String> = theirs.iter().map(|s| s.to_string()).collect();
                a.sort();
                b.sort();
                if a != b {
                    failures.push(format!("{name}: promtool printed\n  {}", b.join("\n  ")));
                }
            }
            Oracle::Matches(prefix) => {
                if theirs.len() != ours.len() {
                    failures.push(format!("{name}: promtool printed {} errors: {theirs:?}", theirs.len()));
                }
                for t in &theirs {
                    let t = parse_line(&file, t);
                    let message_len = match prefix {
                        None => t.message.len(),
                        // Up to the third `:` (what is named, "template", its name and line).
                        Some(0) => t.message.match_indices(':').nth(3).map_or(t.message.len(), |(i, _)| i + 1),
                        Some(n) => *n,
                    };
                    let found = ours_parsed.iter().any(|o| {
                        o.group == t.group
                            && o.rule == t.rule
                            && (t.pos.is_none() || o.pos == t.pos)
                            && (t.pos_alt.is_none() || o.pos_alt == t.pos_alt)
                            && o.message.get(..message_len) == t.message.get(..message_len)
                    });
                    if !found {
                        failures.push(format!("{name}: no error of ours matches promtool's {t:?}"));
                    }
                }
            }
            Oracle::YamlLines => {
                let lines = yaml_lines(&promtool.stderr);
                let our_lines: Vec<usize> = ours_parsed.iter().filter_map(|l| l.pos.map(|p| p.0)).collect();
                if lines.is_empty() || lines != our_lines {
                    failures.push(format!("{name}: promtool names lines {lines:?}, ours {our_lines:?}"));
                }
            }
            Oracle::Rejects | Oracle::Accepts => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_of_a_file_are_reported_together() {
    let text = "groups:
  - name: a
    interval: 1x
    rules:
      - record: bad-name
        expr: up
        for: 5m
      - alert: A
        expr: sum(
        labels:
          1x: y
  - name: a
    rules: []
";
    let err = parse_rule_text("f.yml", text, &balanced_braces).unwrap_err();
    let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            r#"f.yml: 3:15: group "a": not a valid duration string: "1x""#,
            r#"f.yml: 5:17: group "a", rule 1, "bad-name": invalid field 'for' in recording rule"#,
            r#"f.yml: 5:17: group "a", rule 1, "bad-name": invalid recording rule name: bad-name"#,
            r#"f.yml: 9:15: group "a", rule 2, "A": could not parse expression: 1:4: parse error: unclosed left parenthesis"#,
            r#"f.yml: 11:11: group "a", rule 2, "A": invalid label name: 1x"#,
            r#"f.yml: 12:5: groupname: "a" is repeated in the same file"#,
        ]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn a_value_of_the_wrong_type_is_one_error() {
    let cases = [
        ("groups: [1]\n", r#"t.yml: 1:10: field 'groups': expected a list of mappings, got number 1"#),
        ("groups: {a: 1}\n", r#"t.yml: 1:1: field 'groups': expected a list, got a mapping"#),
        ("- a\n", r#"t.yml: 1:1: field 'groups': expected a mapping with a 'groups' list, got a list"#),
        ("groups:\n- name: [x]\n", r#"t.yml: 2:9: field 'name': expected a string, got a list"#),
        (
            "groups:\n- name: g\n  rules: [up]\n",
            r#"t.yml: 3:11: group "g", rule 1, "": field 'rules': expected a list of mappings, got string "up""#,
        ),
        (
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels: {a: {b: c}}\n",
            r#"t.yml: 6:17: group "g", rule 1, "r": field 'labels': expected a string, got a mapping"#,
        ),
    ];
    for (text, want) in cases {
        let err = parse_rule_text("t.yml", text, &balanced_braces).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
    }
}

#[test]
fn hostile_yaml_is_an_error_not_a_crash() {
    // serde_norway (libyaml) takes time quadratic in flow depth: these
    // would take a minute each without the position pass's depth check.
    let deep_flow = format!("groups: {}", "[".repeat(100_000));
    // Only the first document is read, as Prometheus reads only the first.
    let deep_second_document = format!("groups: []\n---\n{}", "{a: ".repeat(100_000));
    assert_eq!(parse_rule_text("h.yml", &deep_second_document, &balanced_braces), Ok(Vec::new()));
    let deep_block: String = (0..5_000).map(|i| format!("{}- \n", " ".repeat(i * 2))).collect();
    let mut laughs = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (i, c) in ('b'..='j').enumerate() {
        let prev = (b'a' + i as u8) as char;
        laughs.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    laughs.push_str("groups: *j\n");
    for text in [deep_flow, deep_block, laughs] {
        let err = parse_rule_text("h.yml", &text, &balanced_braces).unwrap_err();
        assert_eq!(err.len(), 1, "{err}");
        assert!(err.to_string().starts_with("h.yml: "), "{err}");
    }
}

#[test]
fn odd_but_valid_yaml_loads_as_go_reads_it() {
    // Flow style, anchors and merges, a number as a record name's text,
    // null fields, a second document (ignored, as Prometheus ignores it).
    let text = "groups:
- {name: flow, interval: 1m, rules: [{record: 'a:b', expr: up}]}
- name: anchors
  rules:
  - &base
    alert: Base
    expr: up == 0
    labels: {severity: page}
  - <<: *base
    alert: Derived
    for:
---
groups: [{name: second, rules: [{bogus: 1}]}]
";
    let groups = parse_rule_text("odd.yml", text, &balanced_braces).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].interval, Some(dur(60)));
    assert_eq!(groups[0].rules[0].name(), "a:b");
    assert_eq!(groups[0].rules[0].line, 2);
    let derived = &groups[1].rules[1];
    assert_eq!((derived.name(), derived.expr.as_str(), derived.line), ("Derived", "up == 0", 9));
    assert_eq!(derived.labels.get("severity").map(String::as_str), Some("page"));

    assert!(parse_rule_text("e.yml", "", &balanced_braces).unwrap().is_empty());
    assert!(parse_rule_text("e.yml", "groups:\n", &balanced_braces).unwrap().is_empty());
    assert!(parse_rule_text("e.yml", "# only a comment\n", &balanced_braces).unwrap().is_empty());
}

#[test]
fn crlf_line_ends_keep_positions() {
    let text = "groups:\r\n  - name: g\r\n    rules:\r\n      - alert: A\r\n        expr: |\r\n          sum(up\r\n      - record: 1x\r\n        expr: up\r\n";
    let err = parse_rule_text("crlf.yml", text, &balanced_braces).unwrap_err();
    let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
    // Positions of the nodes as promtool 2.42 prints them for this file.
    assert_eq!(
        lines,
        [
            r#"crlf.yml: 5:15: group "g", rule 1, "A": could not parse expression: 1:4: parse error: unclosed left parenthesis"#,
            r#"crlf.yml: 7:17: group "g", rule 2, "1x": invalid recording rule name: 1x"#,
        ]
    );
}

#[test]
fn columns_count_characters() {
    let text = "groups:\n- name: g\n  rules:\n  - {alert: \"ééé\", expr: \"up +\"}\n";
    let err = parse_rule_text("utf.yml", text, &balanced_braces).unwrap_err();
    // promtool 2.42 places this expression at 4:26 too (in bytes it would be 4:29).
    assert!(
        err.to_string().starts_with(r#"utf.yml: 4:26: group "g", rule 1, "ééé": could not parse expression: "#),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yml");
    let err = load(&missing).unwrap_err();
    let m = missing.display();
    assert_eq!(err.to_string(), format!("{m}: open {m}: no such file or directory"));

    let err = load(dir.path()).unwrap_err();
    let d = dir.path().display();
    assert_eq!(err.to_string(), format!("{d}: read {d}: is a directory"));

    let latin1 = dir.path().join("latin1.yml");
    std::fs::write(&latin1, b"groups:\n- name: caf\xe9\n").unwrap();
    let err = load(&latin1).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: yaml: invalid UTF-8 in the file (at byte 19)", latin1.display()));
}

#[test]
fn check_rules_prints_promtools_shape_on_stdout_and_stderr() {
    let files =
        [fixture("duplicate_group.yml"), seed_path(), fixture("duplicate_rules.yml"), fixture("record_and_alert.yml")];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let ok = tidemark_rules::check::check_rules(&files, &balanced_braces, &mut out, &mut err);
    let promtool = tidemark_testkit::promtool(
        ["check", "rules"].iter().map(std::ffi::OsStr::new).chain(files.iter().map(|f| f.as_os_str())),
    )
    .unwrap();
    assert!(!ok);
    assert_eq!(promtool.status.code(), Some(1));
    assert_eq!(String::from_utf8(out).unwrap(), promtool.stdout);
    assert_eq!(String::from_utf8(err).unwrap(), promtool.stderr);

    // Duplicate rules are a lint report that does not fail the check.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let lint_only = [fixture("duplicate_rules.yml")];
    assert!(tidemark_rules::check::check_rules(&lint_only, &balanced_braces, &mut out, &mut err));
    let promtool = promtool_check(&lint_only[0]);
    assert!(promtool.success());
    assert_eq!(String::from_utf8(err).unwrap(), promtool.stderr);
}

/// Pieces of rule files, to make texts that are nearly YAML and nearly rules.
const PIECES: &[&str] = &[
    "groups:",
    "\n",
    "  ",
    "- ",
    "name: ",
    "rules:",
    "record: ",
    "alert: ",
    "expr: ",
    "for: ",
    "labels:",
    "annotations:",
    "interval: ",
    "limit: ",
    "query_offset: ",
    "keep_firing_for: ",
    "5m",
    "-1",
    "x:y",
    "up",
    "sum(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "|",
    ">-",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: ",
    "!!str ",
    "? ",
    "#c",
    "---",
    "{{ $value }}",
    "é",
    "\t",
    "\r\n",
    "~",
    "null",
    "0",
    "1h30m",
    "{{",
    "%",
    "@",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn nearly_rule_files_never_panic(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..80)) {
        let text = pieces.concat();
        match parse_rule_text("p.yml", &text, &balanced_braces) {
            Ok(groups) => prop_assert!(groups.iter().all(|g| g.file == "p.yml")),
            Err(e) => prop_assert!(!e.is_empty() && e.to_string().lines().all(|l| l.starts_with("p.yml: "))),
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_rule_text("p.yml", &text, &balanced_braces);
    }
}

/// A rule as a generated file writes it: (alert or record name, is alert,
/// expression, `for` in minutes, labels, annotations).
type GenRule = (String, bool, String, u64, Vec<(String, String)>, Vec<(String, String)>);

fn gen_rule() -> impl Strategy<Value = GenRule> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        any::<bool>(),
        prop::sample::select(vec!["up", "sum by (job) (rate(x_total[5m]))", "a / b > 0.5", "vector(1)"]),
        0u64..120,
        // Printable text without braces: the stand-in template check
        // rejects unbalanced `{{`.
        prop::collection::vec(("[a-z_][a-z0-9_]{0,6}", "[ -z|~]{0,12}"), 0..3),
        prop::collection::vec(("[a-z_][a-z0-9_]{0,6}", "[ -z|~é\n]{0,12}"), 0..3),
    )
        .prop_map(|(name, alert, expr, for_min, labels, annotations)| {
            // Recording rules have no `for` or annotations.
            let (for_min, annotations) = if alert { (for_min, annotations) } else { (0, Vec::new()) };
            (name, alert, expr.to_string(), for_min, labels, annotations)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_files_load_back_as_written(
        groups in prop::collection::vec(
            (prop::option::of(1u64..600), 0usize..50, prop::collection::vec(gen_rule(), 0..5)),
            0..4,
        )
    ) {
        use serde_norway::{Mapping, Value};
        let s = |t: &str| Value::String(t.to_string());
        let pairs = |p: &[(String, String)]| {
            let mut m = Mapping::new();
            for (k, v) in p {
                m.insert(s(k), s(v));
            }
            Value::Mapping(m)
        };
        let mut doc_groups = Vec::new();
        for (i, (interval, limit, rules)) in groups.iter().enumerate() {
            let mut g = Mapping::new();
            g.insert(s("name"), s(&format!("group-{i}")));
            if let Some(secs) = interval {
                g.insert(s("interval"), s(&format!("{secs}s")));
            }
            g.insert(s("limit"), Value::Number((*limit as u64).into()));
            let mut rs = Vec::new();
            for (name, alert, expr, for_min, labels, annotations) in rules {
                let mut r = Mapping::new();
                r.insert(s(if *alert { "alert" } else { "record" }), s(name));
                r.insert(s("expr"), s(expr));
                if *for_min > 0 {
                    r.insert(s("for"), s(&format!("{for_min}m")));
                }
                r.insert(s("labels"), pairs(labels));
                if *alert {
                    r.insert(s("annotations"), pairs(annotations));
                }
                rs.push(Value::Mapping(r));
            }
            g.insert(s("rules"), Value::Sequence(rs));
            doc_groups.push(Value::Mapping(g));
        }
        let mut doc = Mapping::new();
        doc.insert(s("groups"), Value::Sequence(doc_groups));
        let text = serde_norway::to_string(&Value::Mapping(doc)).unwrap();

        let loaded = parse_rule_text("gen.yml", &text, &balanced_braces).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(loaded.len(), groups.len());
        let lines: Vec<&str> = text.lines().collect();
        for (g, (interval, limit, rules)) in loaded.iter().zip(&groups) {
            prop_assert_eq!(g.interval, interval.map(Duration::from_secs));
            prop_assert_eq!(g.limit, *limit);
            prop_assert_eq!(g.rules.len(), rules.len());
            for (r, (name, alert, expr, for_min, labels, annotations)) in g.rules.iter().zip(rules) {
                prop_assert_eq!(r.name(), name.as_str());
                prop_assert_eq!(&r.expr, expr);
                let want_labels: std::collections::BTreeMap<String, String> = labels.iter().cloned().collect();
                prop_assert_eq!(&r.labels, &want_labels);
                match &r.kind {
                    RuleKind::Alerting { for_duration, annotations: a, .. } => {
                        prop_assert!(*alert);
                        prop_assert_eq!(*for_duration, Duration::from_secs(for_min * 60));
                        let want: std::collections::BTreeMap<String, String> = annotations.iter().cloned().collect();
                        prop_assert_eq!(a, &want);
                    }
                    RuleKind::Recording { .. } => prop_assert!(!*alert),
                }
                // The rule's line is where its first key is written.
                let key = if *alert { "alert:" } else { "record:" };
                prop_assert!(lines[r.line - 1].trim_start().starts_with(&format!("- {key}")), "line {}: {}", r.line, lines[r.line - 1]);
            }
        }
    }
}
