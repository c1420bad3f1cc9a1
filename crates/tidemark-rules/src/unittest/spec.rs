//! What a `promtool test rules` file holds, read strictly (an unknown field
//! is an error, as promtool's `yaml.UnmarshalStrict` makes it).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// A whole test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files (globs), relative to the test file's directory.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Step of the evaluation loop, in ms (default 1m).
    #[serde(default, deserialize_with = "opt_duration")]
    pub evaluation_interval: Option<i64>,
    /// Groups evaluated first, in this order, at every step.
    #[serde(default)]
    pub group_eval_order: Vec<String>,
    /// The test groups.
    #[serde(default)]
    pub tests: Vec<TestGroup>,
}

/// Input series and the cases checked against them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroup {
    /// Spacing of input samples and the default group interval, in ms
    /// (default: the file's evaluation interval).
    #[serde(default, deserialize_with = "opt_duration")]
    pub interval: Option<i64>,
    /// The input series.
    #[serde(default)]
    pub input_series: Vec<InputSeries>,
    /// Alert checks.
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCase>,
    /// Expression checks.
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCase>,
    /// External labels, for templates.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// External URL, for templates.
    #[serde(default)]
    pub external_url: String,
    /// Name shown in failures.
    #[serde(default)]
    pub name: String,
}

/// One input series.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeries {
    /// The metric, e.g. `up{job="api"}`.
    #[serde(default)]
    pub series: String,
    /// The value sequence, e.g. `0+10x5 _ stale`.
    #[serde(default)]
    pub values: String,
}

/// The firing alerts expected of one alert name at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCase {
    /// When, in ms from 0.
    #[serde(default, deserialize_with = "duration")]
    pub eval_time: i64,
    /// The alert name (required).
    #[serde(default)]
    pub alertname: String,
    /// The expected firing alerts.
    #[serde(default)]
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One expected alert: its labels without `alertname`, its annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    /// Labels (the runner adds `alertname`).
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

/// An expression and the samples it must return at one time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCase {
    /// The PromQL expression.
    #[serde(default)]
    pub expr: String,
    /// When, in ms from 0.
    #[serde(default, deserialize_with = "duration")]
    pub eval_time: i64,
    /// The expected samples, in any order.
    #[serde(default)]
    pub exp_samples: Vec<ExpectedSample>,
}

/// One expected sample.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedSample {
    /// The metric, e.g. `up{job="api"}` or `{job="api"}`.
    #[serde(default)]
    pub labels: String,
    /// The value (`.inf`, `-.inf`, `.nan` in YAML).
    #[serde(default)]
    pub value: f64,
}

/// A duration as YAML gives it: a string (`5m`) or a bare integer (only `0`
/// is a valid duration without a unit, as in Prometheus).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Text(String),
    Int(i64),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let raw = RawDuration::deserialize(d)?;
    let text = match raw {
        RawDuration::Text(s) => s,
        RawDuration::Int(i) => i.to_string(),
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    duration(d).map(Some)
}

/// Parses a Prometheus duration (`model.ParseDuration`): units `y w d h m s
/// ms` in that order, each at most once, integers only; `0` alone is
/// allowed. Returns milliseconds.
///
/// ```
/// use tidemark_rules::unittest::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
/// assert!(parse_duration("1.5h").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let d = crate::file::parse_duration(text).map_err(|e| e.to_string())?;
    i64::try_from(d.as_millis()).map_err(|_| "duration out of range".to_string())
}

/// Parses a test file's YAML.
pub fn parse_test_file(yaml: &str) -> Result<TestFile, String> {
    serde_norway::from_str(yaml).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("0m").unwrap(), 0);
        assert_eq!(parse_duration("90s").unwrap(), 90_000);
        assert_eq!(parse_duration("1d2h3m4s5ms").unwrap(), 93_784_005);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400_000);
        for bad in ["", "5", "1.5m", "m", "1m1h", "1m1m", "-1m", "1 m", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_full_file_parses() {
        let f = parse_test_file(
            r#"
rule_files: [a.yml]
evaluation_interval: 30s
group_eval_order: [g1, g2]
tests:
  - interval: 1m
    name: t
    external_labels: {region: eu}
    external_url: http://x
    input_series:
      - series: 'up{job="a"}'
        values: '1x3'
    alert_rule_test:
      - eval_time: 2m
        alertname: A
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations: {summary: s}
    promql_expr_test:
      - expr: up
        eval_time: 0
        exp_samples:
          - labels: 'up{job="a"}'
            value: .inf
"#,
        )
        .unwrap();
        assert_eq!(f.evaluation_interval, Some(30_000));
        let t = &f.tests[0];
        assert_eq!(t.interval, Some(60_000));
        assert_eq!(t.alert_rule_test[0].eval_time, 120_000);
        assert_eq!(t.alert_rule_test[0].exp_alerts[0].exp_labels["severity"], "page");
        assert_eq!(t.promql_expr_test[0].exp_samples[0].value, f64::INFINITY);
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_errors() {
        assert!(parse_test_file("tests:\n  - intervall: 1m\n").unwrap_err().contains("intervall"));
        assert!(parse_test_file("rule_file: [a]\n").unwrap_err().contains("rule_file"));
        assert!(parse_test_file("tests:\n  - interval: 1.5m\n").is_err());
        assert!(parse_test_file("tests:\n  - alert_rule_test:\n      - eval_time: 5\n").is_err());
    }
}
