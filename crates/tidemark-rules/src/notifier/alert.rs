//! What an alert notification carries, and its Alertmanager API v2 JSON
//! exactly as Prometheus writes it.
//!
//! Prometheus 2.42 posts `[{"annotations":{…},"endsAt":"…","startsAt":"…",
//! "generatorURL":"…","labels":{…}}]`: keys in that order (the generated
//! OpenAPI model marshals its own fields, then the embedded `Alert`'s),
//! `annotations` left out when empty, `generatorURL` left out when empty,
//! label and annotation maps sorted by key, times as RFC 3339 in UTC with
//! exactly three fractional digits, and strings escaped as Go's
//! `encoding/json` escapes them (HTML-safe: `<`, `>`, `&` as `\u003c`…, and
//! U+2028/U+2029). We checked this byte for byte against a capture of what
//! a real Prometheus 2.42 sent (see `tests/notifier.rs`,
//! `body_is_byte_for_byte_what_prometheus_sends`).

use std::collections::BTreeMap;

/// One alert as sent to Alertmanager: its identity (labels), its
/// description (annotations) and its activity interval.
///
/// The alerting code decides the times: `ends_at_ms` of a firing alert is
/// in the future (Prometheus: evaluation time + 4 × max(resend delay,
/// group interval)) so Alertmanager resolves it by itself if Tidemark stops
/// sending; a resolved alert has `ends_at_ms` at or before now.
///
/// ```
/// use std::collections::BTreeMap;
/// use tidemark_rules::notifier::Alert;
///
/// let alert = Alert {
///     labels: BTreeMap::from([("alertname".to_string(), "HighErrorRate".to_string())]),
///     annotations: BTreeMap::from([("summary".to_string(), "5% errors".to_string())]),
///     starts_at_ms: 1_700_000_000_000,
///     ends_at_ms: Some(1_700_000_240_000),
///     generator_url: "http://tidemark:9090/graph?g0.expr=up".to_string(),
/// };
/// assert_eq!(alert.name(), "HighErrorRate");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The alert's identity; must include `alertname`. A label with an
    /// empty value counts as absent (Prometheus' label sets cannot hold
    /// one) and is not sent.
    pub labels: BTreeMap<String, String>,
    /// Descriptive text (`summary`, `description`, …); empty values are
    /// sent as they are.
    pub annotations: BTreeMap<String, String>,
    /// When the alert became active, milliseconds since the Unix epoch.
    pub starts_at_ms: i64,
    /// When the alert ends (resolved if not after now). `None` is sent as
    /// Go's zero time, which Alertmanager reads as "not set" and replaces
    /// with now + its `resolve_timeout`.
    pub ends_at_ms: Option<i64>,
    /// Link back to the expression that produced the alert; left out of
    /// the JSON when empty.
    pub generator_url: String,
}

impl Alert {
    /// The `alertname` label, or `""`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map(String::as_str).unwrap_or("")
    }
}

/// The earliest and latest instants we format: 0001-01-01T00:00:00.000Z and
/// 9999-12-31T23:59:59.999Z. Outside this range RFC 3339 has no four-digit
/// year, and Alertmanager would reject the whole batch; clamping keeps the
/// other alerts of the batch deliverable.
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// `ms` since the epoch as Go's `2006-01-02T15:04:05.000Z07:00` in UTC
/// (what `strfmt.DateTime` marshals to), clamped to years 1…9999.
pub(crate) fn format_time(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Year, month, day of the proleptic Gregorian calendar for `days` since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends `s` as a JSON string the way Go's `json.Marshal` writes it.
pub(crate) fn write_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Every other control character, and the HTML-sensitive ones Go
            // escapes by default, as \u00xx with lower-case hex (Go before
            // 1.22, which built Prometheus 2.42, has no \b or \f).
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32 as u8;
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
            // JavaScript line terminators, escaped by Go so the JSON is
            // also valid JavaScript.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_map<'a>(out: &mut String, entries: impl Iterator<Item = (&'a String, &'a String)>) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, k);
        out.push(':');
        write_json_string(out, v);
    }
    out.push('}');
}

/// The body of `POST /api/v2/alerts` for `alerts`.
pub(crate) fn encode_batch<A: std::ops::Deref<Target = Alert>>(alerts: &[A]) -> String {
    let mut out = String::with_capacity(alerts.len() * 256 + 2);
    out.push('[');
    for (i, a) in alerts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if !a.annotations.is_empty() {
            out.push_str("\"annotations\":");
            write_map(&mut out, a.annotations.iter());
            out.push(',');
        }
        out.push_str("\"endsAt\":\"");
        out.push_str(&a.ends_at_ms.map(format_time).unwrap_or_else(|| "0001-01-01T00:00:00.000Z".to_string()));
        out.push_str("\",\"startsAt\":\"");
        out.push_str(&format_time(a.starts_at_ms));
        out.push('"');
        if !a.generator_url.is_empty() {
            out.push_str(",\"generatorURL\":");
            write_json_string(&mut out, &a.generator_url);
        }
        out.push_str(",\"labels\":");
        write_map(&mut out, a.labels.iter().filter(|(_, v)| !v.is_empty()));
        out.push('}');
    }
    out.push(']');
    out
}

/// `labels` with every external label added whose name the alert lacks
/// (or holds with an empty value), as Prometheus' notifier does before
/// queueing.
pub(crate) fn with_external_labels(mut alert: Alert, external: &BTreeMap<String, String>) -> Alert {
    alert.labels.retain(|_, v| !v.is_empty());
    for (k, v) in external {
        if !v.is_empty() && !alert.labels.contains_key(k) {
            alert.labels.insert(k.clone(), v.clone());
        }
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn times_are_rfc3339_millis_in_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_796_477_981_922), "2026-12-05T13:39:41.922Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_time(i64::MIN), "0001-01-01T00:00:00.000Z");
        assert_eq!(format_time(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let mut s = String::new();
        write_json_string(&mut s, "a\nb\tc\u{8}\u{c}\u{2028}\u{1}/<&>\"\\é\u{7f}\r\u{2029}");
        assert_eq!(s, r#""a\nb\tc\u0008\u000c\u2028\u0001/\u003c\u0026\u003e\"\\é"#.to_string() + "\u{7f}\\r\\u2029\"");
    }

    #[test]
    fn external_labels_fill_only_missing_or_empty_labels() {
        let a = Alert {
            labels: map(&[("alertname", "A"), ("zone", ""), ("cluster", "own")]),
            annotations: BTreeMap::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
        };
        let a = with_external_labels(a, &map(&[("cluster", "c1"), ("zone", "z1"), ("empty", "")]));
        assert_eq!(a.labels, map(&[("alertname", "A"), ("cluster", "own"), ("zone", "z1")]));
    }

    #[test]
    fn empty_annotations_and_generator_url_are_left_out() {
        let a = Alert {
            labels: map(&[("alertname", "A"), ("e", "")]),
            annotations: BTreeMap::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
        };
        assert_eq!(
            encode_batch(&[&a]),
            r#"[{"endsAt":"0001-01-01T00:00:00.000Z","startsAt":"1970-01-01T00:00:00.000Z","labels":{"alertname":"A"}}]"#
        );
        assert_eq!(encode_batch::<&Alert>(&[]), "[]");
    }
}
