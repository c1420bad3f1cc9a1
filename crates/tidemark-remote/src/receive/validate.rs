//! Series validation: from label pairs as a sender wrote them to a
//! [`Labels`], or the reason the series is refused.
//!
//! Rules (the remote write specs, with Prometheus' choices where the specs
//! leave room):
//! - label names must be non-empty, unique and sorted byte-wise (both specs
//!   say MUST; Prometheus' receiver silently sorts, we refuse, so a broken
//!   sender is noticed rather than papered over);
//! - names must be valid under the configured [`NameValidation`] (UTF-8 by
//!   default, as Prometheus 3);
//! - a `__name__` label with a non-empty value is required;
//! - pairs with an empty value are dropped, as Prometheus does: an empty
//!   value means the label is absent.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tidemark_storage::{Labels, NameValidation, METRIC_NAME};

/// Why a series was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeriesError {
    /// A label name is empty.
    #[error("empty label name")]
    EmptyName,
    /// Label names are not sorted.
    #[error("labels are not sorted by name ({prev:?} before {next:?})")]
    Unsorted {
        /// The name that came first.
        prev: String,
        /// The smaller name that followed it.
        next: String,
    },
    /// A label name appears twice.
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    /// A label name is invalid under the validation scheme.
    #[error("invalid label name {0:?}")]
    InvalidName(String),
    /// The metric name is invalid under the validation scheme.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// No `__name__` label (or an empty one).
    #[error("missing metric name (__name__ label)")]
    MissingMetricName,
    /// A 2.0 series with neither samples nor histograms.
    #[error("series has no samples or histograms")]
    NoSamples,
    /// A 2.0 series whose symbol references do not resolve.
    #[error("{0}")]
    BadRefs(String),
}

/// Checks `pairs` (as sent) and builds the series' [`Labels`].
pub fn series_labels(pairs: &[(&str, &str)], scheme: NameValidation) -> Result<Labels, SeriesError> {
    let mut prev: Option<&str> = None;
    let mut metric_name = None;
    for &(name, value) in pairs {
        if name.is_empty() {
            return Err(SeriesError::EmptyName);
        }
        if let Some(p) = prev {
            match p.cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(SeriesError::Duplicate(name.to_owned())),
                std::cmp::Ordering::Greater => {
                    return Err(SeriesError::Unsorted { prev: p.to_owned(), next: name.to_owned() })
                }
            }
        }
        prev = Some(name);
        if name == METRIC_NAME {
            metric_name = Some(value);
        } else if !scheme.is_valid_label_name(name) {
            return Err(SeriesError::InvalidName(name.to_owned()));
        }
    }
    match metric_name {
        None | Some("") => return Err(SeriesError::MissingMetricName),
        Some(m) if !scheme.is_valid_metric_name(m) => return Err(SeriesError::InvalidMetricName(m.to_owned())),
        Some(_) => {}
    }
    // Sorted, unique, non-empty names; empty values dropped: exactly what
    // `from_sorted` requires.
    Ok(Labels::from_sorted(pairs.iter().copied().filter(|(_, v)| !v.is_empty())))
}

/// Formats label pairs as sent, `{__name__="up", job="api"}`, for error
/// messages (values escaped as PromQL string literals).
pub struct DisplayPairs<'a>(pub &'a [(&'a str, &'a str)]);

impl fmt::Display for DisplayPairs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
            f.write_str("=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => f.write_char(c)?,
                }
            }
            f.write_char('"')?;
        }
        f.write_char('}')
    }
}

/// The metadata family a series belongs to, from its metric name and type:
/// the suffixes a type's series carry besides the family name are removed
/// (`_bucket`, `_sum`, `_count` of histograms, `_gsum`/`_gcount` of gauge
/// histograms, `_sum`/`_count` of summaries, `_created` of counters,
/// histograms and summaries, `_info` of info metrics). A counter keeps
/// `_total`: Prometheus names text-format counter families with it, and its
/// `/api/v1/metadata` shows them so; a counter's `_created` series joins
/// the `_total` family.
pub fn family_name(metric: &str, kind: crate::MetricKind) -> Cow<'_, str> {
    use crate::MetricKind as K;
    if kind == K::Counter {
        return match metric.strip_suffix("_created") {
            Some(base) if !base.is_empty() => Cow::Owned(format!("{base}_total")),
            _ => Cow::Borrowed(metric),
        };
    }
    let suffixes: &[&str] = match kind {
        K::Counter => &[],
        K::Histogram => &["_bucket", "_sum", "_count", "_created"],
        K::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
        K::Summary => &["_sum", "_count", "_created"],
        K::Info => &["_info"],
        K::Unknown | K::Gauge | K::StateSet => &[],
    };
    for s in suffixes {
        if let Some(base) = metric.strip_suffix(s) {
            if !base.is_empty() {
                return Cow::Borrowed(base);
            }
        }
    }
    Cow::Borrowed(metric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricKind;

    #[test]
    fn rules() {
        let u = NameValidation::Utf8;
        let ok = series_labels(&[("__name__", "up"), ("env", ""), ("job", "a")], u).unwrap();
        assert_eq!(ok.to_string(), r#"{__name__="up", job="a"}"#);
        assert_eq!(series_labels(&[("__name__", "up"), ("", "x")], u), Err(SeriesError::EmptyName));
        assert!(matches!(series_labels(&[("job", "a"), ("__name__", "up")], u), Err(SeriesError::Unsorted { .. })));
        assert_eq!(
            series_labels(&[("__name__", "up"), ("a", "1"), ("a", "2")], u),
            Err(SeriesError::Duplicate("a".into()))
        );
        assert_eq!(series_labels(&[("job", "a")], u), Err(SeriesError::MissingMetricName));
        assert_eq!(series_labels(&[("__name__", ""), ("job", "a")], u), Err(SeriesError::MissingMetricName));
        assert!(series_labels(&[("__name__", "héllo.wörld"), ("ünï", "x")], u).is_ok());
        let l = NameValidation::Legacy;
        assert_eq!(series_labels(&[("__name__", "a.b")], l), Err(SeriesError::InvalidMetricName("a.b".into())));
        assert_eq!(series_labels(&[("__name__", "ab"), ("ü", "x")], l), Err(SeriesError::InvalidName("ü".into())));
    }

    #[test]
    fn display_and_family() {
        assert_eq!(DisplayPairs(&[("__name__", "x"), ("a", "q\"\\\n")]).to_string(), r#"{__name__="x", a="q\"\\\n"}"#);
        assert_eq!(family_name("http_duration_seconds_bucket", MetricKind::Histogram), "http_duration_seconds");
        assert_eq!(family_name("rpc_seconds_count", MetricKind::Summary), "rpc_seconds");
        assert_eq!(family_name("requests_total", MetricKind::Counter), "requests_total");
        assert_eq!(family_name("requests_created", MetricKind::Counter), "requests_total");
        assert_eq!(family_name("temp_count", MetricKind::Gauge), "temp_count");
        assert_eq!(family_name("_sum", MetricKind::Summary), "_sum");
    }
}
