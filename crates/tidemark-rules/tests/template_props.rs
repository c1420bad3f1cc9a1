//! Properties of the template expander on arbitrary input: it never
//! panics, parse checking agrees with expansion, and hostile templates
//! (deep recursion, exponential fan-out, runaway strings) end with an
//! error instead of exhausting the stack, time or memory.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tidemark_rules::{
    check_alert_template, expand_alert_template, AlertTemplate, QueryRunner, QuerySample, TemplateData, TemplateError,
};

struct TwoSeries;

impl QueryRunner for TwoSeries {
    fn query(&self, expr: &str, _t_ms: i64) -> Result<Vec<QuerySample>, String> {
        if expr.contains('(') {
            return Err(format!("cannot parse {expr:?}"));
        }
        Ok(vec![
            QuerySample { labels: BTreeMap::from([("instance".into(), "b".into())]), value: 2.5 },
            QuerySample { labels: BTreeMap::from([("instance".into(), "a".into())]), value: f64::NAN },
        ])
    }
}

fn data(value: f64) -> TemplateData {
    TemplateData {
        labels: BTreeMap::from([("job".into(), "api".into()), ("instance".into(), "host.example.com:9090".into())]),
        external_labels: BTreeMap::from([("region".into(), "eu".into())]),
        external_url: "http://prom.example.com/p".into(),
        value,
    }
}

/// Pieces of template syntax, so that generated text reaches deep into
/// the parser and executor rather than stopping at the first brace.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{{- ".to_string()),
        Just(" -}}".to_string()),
        Just("{{/* c */}}".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("|".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(":=".to_string()),
        Just("=".to_string()),
        Just(",".to_string()),
        Just("$x".to_string()),
        Just("$".to_string()),
        Just("$labels".to_string()),
        Just("$labels.job".to_string()),
        Just("$value".to_string()),
        Just(".".to_string()),
        Just(".Value".to_string()),
        Just(".Labels.instance".to_string()),
        Just("if".to_string()),
        Just("else".to_string()),
        Just("end".to_string()),
        Just("range".to_string()),
        Just("with".to_string()),
        Just("break".to_string()),
        Just("continue".to_string()),
        Just("define \"t\"".to_string()),
        Just("template \"t\"".to_string()),
        Just("block \"b\" .".to_string()),
        Just("nil".to_string()),
        Just("true".to_string()),
        Just("\"s\"".to_string()),
        Just("`raw`".to_string()),
        Just("'c'".to_string()),
        Just("1".to_string()),
        Just("-2.5e3".to_string()),
        Just("0x1F".to_string()),
        prop::sample::select(vec![
            "humanize",
            "humanize1024",
            "humanizeDuration",
            "humanizePercentage",
            "humanizeTimestamp",
            "printf \"%d %s %v %.2f %q %x %5.1e %-3t\"",
            "print",
            "println",
            "eq",
            "ne",
            "lt",
            "le",
            "gt",
            "ge",
            "and",
            "or",
            "not",
            "len",
            "index",
            "slice",
            "html",
            "js",
            "urlquery",
            "call",
            "query \"up\"",
            "query \"bad(\"",
            "first",
            "label \"instance\"",
            "value",
            "strvalue",
            "sortByLabel \"instance\"",
            "args",
            "reReplaceAll \"(a\" \"$1\"",
            "match \"[\"",
            "safeHtml",
            "title",
            "toUpper",
            "toLower",
            "stripPort",
            "stripDomain",
            "graphLink",
            "tableLink",
            "toTime",
            "parseDuration",
            "externalURL",
            "pathPrefix",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9 _.%\\-é∞]{0,4}",
    ]
}

fn templates() -> impl Strategy<Value = String> {
    prop_oneof![prop::collection::vec(piece(), 0..40).prop_map(|v| v.concat()), "\\PC{0,80}", any::<String>(),]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_check_agrees(text in templates(), value in prop_oneof![
        Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0), Just(-0.0), any::<f64>()
    ]) {
        let checked = check_alert_template("P", &text);
        let expanded = expand_alert_template("P", &text, &data(value), 1_700_000_000_000, Some(&TwoSeries));
        match (&checked, &expanded) {
            (Ok(()), Err(TemplateError::Parse { .. })) | (Err(_), Ok(_)) | (Err(_), Err(TemplateError::Exec { .. })) => {
                prop_assert!(false, "check {checked:?} disagrees with expand {expanded:?} for {text:?}");
            }
            (Err(c), Err(e)) => prop_assert_eq!(c.go_message(), e.go_message()),
            _ => {}
        }
        if let Ok(compiled) = AlertTemplate::parse("P", &text) {
            let again = compiled.expand(&data(value), 1_700_000_000_000, Some(&TwoSeries));
            prop_assert_eq!(&again, &expanded);
        }
        if let Err(e) = &expanded {
            let shown = e.to_string();
            prop_assert!(shown.starts_with("error parsing template __alert_P: template: __alert_P:")
                || shown.starts_with("error executing template __alert_P: template: __alert_P:"), "{shown}");
        }
    }

    #[test]
    fn value_prints_as_go_percent_v(value in any::<f64>()) {
        let out = expand_alert_template("V", "{{ $value }}", &data(value), 0, None).expect("expands");
        prop_assert_eq!(out, tidemark_promql::go_fmt::go_g(value));
    }
}

fn exec_error(text: &str) -> String {
    match expand_alert_template("H", text, &data(1.0), 0, Some(&TwoSeries)) {
        Err(TemplateError::Exec { message, .. }) => message,
        other => panic!("expected an execution error for {text:?}, got {other:?}"),
    }
}

#[test]
fn recursive_templates_stop_at_the_depth_limit() {
    let msg = exec_error(r#"{{ define "a" }}x{{ template "a" . }}{{ end }}{{ template "a" . }}"#);
    assert!(msg.contains("exceeded maximum template depth (100)"), "{msg}");
}

#[test]
fn exponential_fan_out_stops_at_the_step_budget() {
    let mut text = String::from(r#"{{ define "t0" }}{{ len . }}{{ end }}"#);
    for i in 1..40 {
        text.push_str(&format!(
            r#"{{{{ define "t{i}" }}}}{{{{ template "t{p}" . }}}}{{{{ template "t{p}" . }}}}{{{{ end }}}}"#,
            p = i - 1
        ));
    }
    text.push_str(r#"{{ template "t39" "abc" }}"#);
    let msg = exec_error(&text);
    assert!(msg.contains("exceeded") && (msg.contains("steps") || msg.contains("bytes")), "{msg}");
}

#[test]
fn runaway_strings_stop_at_the_size_limit() {
    let mut text = String::from(r#"{{ $s := "0123456789abcdef" }}"#);
    for _ in 0..30 {
        text.push_str(r#"{{ $s = printf "%s%s" $s $s }}"#);
    }
    let msg = exec_error(&text);
    assert!(msg.contains("built a string over"), "{msg}");
}

#[test]
fn huge_printf_widths_stop_at_the_size_limit() {
    let text = format!("{{{{ printf \"{}\" {}}}}}", "%1000000d".repeat(100), "1 ".repeat(100));
    let msg = exec_error(&text);
    assert!(msg.contains("printf built a string over"), "{msg}");
}

#[test]
fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
    let text = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let err = check_alert_template("N", &text).expect_err("too deep");
    assert!(err.to_string().ends_with("max expression depth exceeded"), "{err}");
    let ifs = format!("{}x{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
    assert!(check_alert_template("N", &ifs).is_err());
}

#[test]
fn large_query_results_range_fine() {
    struct Many;
    impl QueryRunner for Many {
        fn query(&self, _: &str, _: i64) -> Result<Vec<QuerySample>, String> {
            Ok((0..50_000)
                .map(|i| QuerySample { labels: BTreeMap::from([("i".into(), i.to_string())]), value: i as f64 })
                .collect())
        }
    }
    let out = expand_alert_template("L", r#"{{ range query "x" }}{{ .Value }},{{ end }}"#, &data(0.0), 0, Some(&Many))
        .expect("expands");
    assert_eq!(out.matches(',').count(), 50_000);
    assert!(out.starts_with("0,1,2,") && out.ends_with("49999,"));
}
