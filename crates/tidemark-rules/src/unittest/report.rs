//! promtool's spellings of what a failed case shows: label sets, floats,
//! durations and alert lists, so a user can diff our output against
//! `promtool test rules`'.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A label set as Prometheus' `labels.Labels.String()` prints it:
/// `{a="1", b="2"}` with Go-quoted values, sorted by name.
pub fn labels_string(labels: &BTreeMap<String, String>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&go_quote(v));
    }
    s.push('}');
    s
}

pub use crate::template::go_quote;

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: the shortest digits that
/// read back as `v`, an upper-case `E` and a signed exponent of at least
/// two digits (`1.5E+00`, `-9.899999999999989E+01`, `+Inf`, `NaN`).
pub fn format_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:e}` prints the shortest round-tripping digits too, as
    // `1.5e0`; only the exponent's spelling differs.
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    format!("{mantissa}E{sign}{digits:0>2}")
}

/// Prometheus' `model.Duration.String()`: `0s`, `90s` as `1m30s`, `1h`,
/// `2w`, years and weeks only when exact. `ms` is milliseconds.
pub fn model_duration_string(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms;
    let mut out = String::new();
    if rest < 0 {
        // model.Duration is unsigned in practice; keep the sign visible.
        out.push('-');
        rest = -rest;
    }
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && rest % mult != 0 {
            continue;
        }
        let n = rest / mult;
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
            rest -= n * mult;
        }
    }
    out
}

/// Go's `time.Duration.String()` for a whole number of milliseconds:
/// `0s`, `1m0s`, `1h2m3.5s`, `500ms`.
pub fn go_duration_string(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let neg = ms < 0;
    let abs = ms.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if abs < 1000 {
        let _ = write!(out, "{abs}ms");
        return out;
    }
    let h = abs / 3_600_000;
    let m = abs / 60_000 % 60;
    let s = abs / 1000 % 60;
    let frac = abs % 1000;
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        let f = format!("{frac:03}");
        let _ = write!(out, ".{}", f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// promtool's `indentLines`: every line after the first gets `indent`.
pub fn indent_lines(lines: &str, indent: &str) -> String {
    let mut out = String::with_capacity(lines.len());
    for (i, l) in lines.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(indent);
        }
        out.push_str(l);
    }
    out
}

/// One alert as a failed case shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertLabelsAndAnnotations {
    /// Labels, `alertname` included.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// promtool's `labelsAndAnnotations.String()`: `[]`, or a numbered list
/// of `Labels:{…}` / `Annotations:{…}` pairs.
pub fn alerts_string(alerts: &[AlertLabelsAndAnnotations]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let mut s = String::from("[");
    for (i, a) in alerts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let one = format!("\nLabels:{}\nAnnotations:{}", labels_string(&a.labels), labels_string(&a.annotations));
        let _ = write!(s, "\n{i}:{}", indent_lines(&one, "  "));
    }
    s.push_str("\n]");
    s
}

/// One sample as a failed `promql_expr_test` shows it.
pub fn sample_string(labels: &BTreeMap<String, String>, value: f64) -> String {
    format!("{} {}", labels_string(labels), format_float_e(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn floats_as_go_prints_them_with_e() {
        assert_eq!(format_float_e(0.0), "0E+00");
        assert_eq!(format_float_e(1.0), "1E+00");
        assert_eq!(format_float_e(5.0), "5E+00");
        assert_eq!(format_float_e(20.0), "2E+01");
        assert_eq!(format_float_e(-98.99999999999989), "-9.899999999999989E+01");
        assert_eq!(format_float_e(0.1), "1E-01");
        assert_eq!(format_float_e(1.5e-300), "1.5E-300");
        assert_eq!(format_float_e(1e100), "1E+100");
        assert_eq!(format_float_e(f64::NAN), "NaN");
        assert_eq!(format_float_e(f64::INFINITY), "+Inf");
        assert_eq!(format_float_e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn durations_both_ways() {
        assert_eq!(model_duration_string(0), "0s");
        assert_eq!(model_duration_string(120_000), "2m");
        assert_eq!(model_duration_string(90_000), "1m30s");
        assert_eq!(model_duration_string(3_600_000), "1h");
        assert_eq!(model_duration_string(14 * 86_400_000), "2w");
        assert_eq!(model_duration_string(15 * 86_400_000), "15d");
        assert_eq!(model_duration_string(1_500), "1s500ms");
        assert_eq!(go_duration_string(0), "0s");
        assert_eq!(go_duration_string(60_000), "1m0s");
        assert_eq!(go_duration_string(3_723_500), "1h2m3.5s");
        assert_eq!(go_duration_string(500), "500ms");
        assert_eq!(go_duration_string(7_200_000), "2h0m0s");
    }

    #[test]
    fn labels_and_quotes() {
        assert_eq!(labels_string(&map(&[("b", "2"), ("a", "x\"y\n")])), r#"{a="x\"y\n", b="2"}"#);
        assert_eq!(labels_string(&BTreeMap::new()), "{}");
        assert_eq!(go_quote("é\u{1}\\"), "\"é\\x01\\\\\"");
    }

    #[test]
    fn alert_lists_as_promtool_prints_them() {
        assert_eq!(alerts_string(&[]), "[]");
        let a = AlertLabelsAndAnnotations { labels: map(&[("alertname", "A")]), annotations: map(&[("s", "x")]) };
        let b = AlertLabelsAndAnnotations { labels: map(&[("alertname", "B")]), annotations: BTreeMap::new() };
        assert_eq!(
            alerts_string(&[a, b]),
            "[\n0:\n  Labels:{alertname=\"A\"}\n  Annotations:{s=\"x\"},\n1:\n  Labels:{alertname=\"B\"}\n  Annotations:{}\n]"
        );
    }

    #[test]
    fn indenting() {
        assert_eq!(indent_lines("a\nb\nc", "  "), "a\n  b\n  c");
        assert_eq!(indent_lines("a", "  "), "a");
    }
}
