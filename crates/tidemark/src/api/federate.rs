//! `/federate`: the latest sample of every series matching `match[]`, as
//! Prometheus' federation endpoint writes it, in the exposition format the
//! `Accept` header negotiates (see [`super::exposition::Format::negotiate`]):
//! the delimited protobuf exposition, which carries native histograms, or
//! the text format 0.0.4 otherwise.
//!
//! - The latest sample within the lookback window before now, float or
//!   histogram; a series whose latest sample is a staleness marker (a stale
//!   NaN float, or a histogram whose sum is one) is left out.
//! - Samples are ordered by metric name (stably: within a name, by labels).
//!   A new family starts when the name changes, or when the sample kind
//!   changes (float, counter histogram, gauge histogram), so one name can
//!   give several families, as in Prometheus. Floats are `untyped`;
//!   histograms `HISTOGRAM`, or `GAUGE_HISTOGRAM` for a gauge hint. No
//!   `HELP`; nameless series are skipped.
//! - A histogram keeps its stored kind: an integer histogram is sent with
//!   integer counts and bucket deltas (`sample_count`, `zero_count`,
//!   `positive_delta`…), a float one with float counts (`sample_count_float`,
//!   `zero_count_float`, `positive_count`…). Custom-bucket histograms are
//!   sent as classic histograms (cumulative buckets), as Prometheus does.
//! - In the text format, exponential native histograms cannot be expressed
//!   and are left out (as Prometheus does); custom-bucket histograms are
//!   written as classic histograms (`_bucket`, `_sum`, `_count`).
//! - External labels the series lacks are appended after its own labels;
//!   `instance=""` is appended when neither has an `instance` label
//!   (Prometheus does this so the scraping server does not add its own).
//! - Text values are printed as Go's `%g`-like `FormatFloat(v, 'g', -1)`,
//!   timestamps in milliseconds.
//!
//! Metric and label names are written as stored; names outside the legacy
//! character set cannot be expressed in 0.0.4 and are not escaped.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prost::Message;
use tidemark_storage::histogram::{CounterResetHint, HistogramSample, HistogramValue, CUSTOM_BUCKETS_SCHEMA};
use tidemark_storage::{is_stale_nan, Labels, Sample, SampleIterator, METRIC_NAME};

use super::exposition::{self, Format, LabelPair, Metric, MetricFamily, MetricType, Untyped};
use super::params::parse_matchers;
use super::query::Arrived;
use super::response::{ApiError, ErrorType};
use super::{bounded, now_ms, ApiState, Interrupt, Reply};

fn plain(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `GET|POST /federate?match[]=…`.
pub(crate) async fn federate(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let format = Format::negotiate(req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{}\n", e.message)),
    };
    let p = &a.params;
    if let Some(e) = &p.error {
        return plain(StatusCode::BAD_REQUEST, format!("error parsing form values: {e}\n"));
    }
    let sets = match parse_matchers(&p.all("match[]")) {
        Ok(s) => s,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let st2 = st.clone();
    // The body is handed over in this slot; the `Reply` (a JSON envelope's
    // data) is not used.
    let body: Arc<Mutex<Vec<u8>>> = Arc::default();
    let slot = body.clone();
    let result = bounded(&st, a.at, a.token.clone(), move |interrupt| {
        let latest = collect(&st2, &sets, interrupt)?;
        let families = families(&latest, &st2.options.external_labels, format);
        *slot.lock() = encode(&families, format);
        Ok(Reply::new(String::new()))
    })
    .await;
    match result {
        Ok(_) => {
            let bytes = std::mem::take(&mut *body.lock());
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
            r
        }
        Err(e) => {
            let status = match e.kind {
                ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            plain(status, format!("{}\n", e.message))
        }
    }
}

/// The latest value of a series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Latest {
    /// A float.
    Float(f64),
    /// A histogram, of its stored kind.
    Histogram(HistogramValue),
}

/// The latest sample of every matching series (stale ones left out), sorted
/// stably by metric name.
fn collect(
    st: &ApiState,
    sets: &[Vec<tidemark_storage::Matcher>],
    interrupt: Interrupt<'_>,
) -> Result<Vec<(Labels, i64, Latest)>, ApiError> {
    let maxt = now_ms();
    let lookback = i64::try_from(st.options.lookback_delta.as_millis()).unwrap_or(i64::MAX);
    let q = st.db.querier(maxt.saturating_sub(lookback), maxt);
    let mut latest: Vec<(Labels, i64, Latest)> = Vec::new();
    let mut seen: BTreeSet<Labels> = BTreeSet::new();
    let mut floats: Vec<Sample> = Vec::new();
    let mut hists: Vec<HistogramSample> = Vec::new();
    for set in sets {
        interrupt()?;
        for (i, s) in q.select(set).map_err(|e| ApiError::internal(e.to_string()))?.into_iter().enumerate() {
            if i % 1024 == 1023 {
                interrupt()?;
            }
            if sets.len() > 1 && !seen.insert(s.labels().clone()) {
                continue;
            }
            let mut it = s.iter();
            let last = if it.has_histograms() {
                floats.clear();
                hists.clear();
                it.drain_mixed_into(&mut floats, &mut hists);
                match (floats.last(), hists.pop()) {
                    (Some(f), Some(h)) if f.t > h.t => Some((f.t, Latest::Float(f.v))),
                    (_, Some(h)) => Some((h.t, Latest::Histogram(h.h))),
                    (Some(f), None) => Some((f.t, Latest::Float(f.v))),
                    (None, None) => None,
                }
            } else {
                let mut last = None;
                while it.next() {
                    last = Some(it.at());
                }
                last.map(|smp| (smp.t, Latest::Float(smp.v)))
            };
            if let Some(e) = it.err() {
                return Err(ApiError::internal(e.to_string()));
            }
            let stale = match &last {
                Some((_, Latest::Float(v))) => is_stale_nan(*v),
                Some((_, Latest::Histogram(h))) => h.is_stale(),
                None => true,
            };
            if let (false, Some((t, v))) = (stale, last) {
                latest.push((s.labels().clone(), t, v));
            }
        }
    }
    // Grouped by name; within a name, label order (the sort is stable).
    latest.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    Ok(latest)
}

/// What decides a family besides its name: floats, counter histograms and
/// gauge histograms each need their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Float,
    Histogram,
    GaugeHistogram,
}

/// Groups `latest` (sorted by metric name) into metric families as
/// Prometheus' federation does, with the external labels added; for the
/// text format, exponential native histograms are left out.
pub(crate) fn families(
    latest: &[(Labels, i64, Latest)],
    external: &[(String, String)],
    format: Format,
) -> Vec<MetricFamily> {
    let mut ext: Vec<(&str, &str)> = external.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if !ext.iter().any(|(k, _)| *k == "instance") {
        ext.push(("instance", ""));
    }
    ext.sort();
    let mut out: Vec<MetricFamily> = Vec::new();
    let mut last: Option<(&str, Kind)> = None;
    for (labels, t, v) in latest {
        let Some(name) = labels.metric_name() else { continue };
        let kind = match v {
            Latest::Float(_) => Kind::Float,
            Latest::Histogram(h) => {
                let (schema, hint) = match h {
                    HistogramValue::Integer(h) => (h.schema, h.counter_reset_hint),
                    HistogramValue::Float(h) => (h.schema, h.counter_reset_hint),
                };
                // The text format has no native histograms; custom buckets
                // go as classic ones.
                if format == Format::Text && schema != CUSTOM_BUCKETS_SCHEMA {
                    continue;
                }
                if hint == CounterResetHint::Gauge {
                    Kind::GaugeHistogram
                } else {
                    Kind::Histogram
                }
            }
        };
        if last != Some((name, kind)) {
            let ty = match kind {
                Kind::Float => MetricType::Untyped,
                Kind::Histogram => MetricType::Histogram,
                Kind::GaugeHistogram => MetricType::GaugeHistogram,
            };
            out.push(MetricFamily { name: name.to_string(), r#type: ty as i32, ..MetricFamily::default() });
            last = Some((name, kind));
        }
        let mut label: Vec<LabelPair> = labels
            .iter()
            .filter(|l| l.name != METRIC_NAME)
            .map(|l| LabelPair { name: l.name.to_string(), value: l.value.to_string() })
            .collect();
        for (k, v) in &ext {
            if labels.get(k).is_none() {
                label.push(LabelPair { name: k.to_string(), value: v.to_string() });
            }
        }
        let mut m = Metric { label, timestamp_ms: *t, ..Metric::default() };
        match v {
            Latest::Float(f) => m.untyped = Some(Untyped { value: *f }),
            Latest::Histogram(HistogramValue::Integer(h)) => m.histogram = Some(exposition::integer_histogram(h)),
            Latest::Histogram(HistogramValue::Float(h)) => m.histogram = Some(exposition::float_histogram(h)),
        }
        if let Some(fam) = out.last_mut() {
            fam.metric.push(m);
        }
    }
    out
}

/// The families in `format`.
fn encode(families: &[MetricFamily], format: Format) -> Vec<u8> {
    match format {
        Format::ProtoDelimited => {
            let mut buf = Vec::new();
            for f in families {
                // Writing to a Vec cannot run out of space.
                let _ = f.encode_length_delimited(&mut buf);
            }
            buf
        }
        Format::Text => {
            let mut s = String::new();
            for f in families {
                exposition::push_text_family(&mut s, f);
            }
            s.into_bytes()
        }
    }
}

/// Writes floats (sorted by metric name) in the text format.
#[cfg(test)]
pub(crate) fn render(latest: &[(Labels, i64, f64)], external: &[(String, String)]) -> String {
    let latest: Vec<(Labels, i64, Latest)> =
        latest.iter().map(|(l, t, v)| (l.clone(), *t, Latest::Float(*v))).collect();
    String::from_utf8(encode(&families(&latest, external, Format::Text), Format::Text)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_prometheus_federation() {
        let l = |pairs: &[(&str, &str)]| Labels::new(pairs.iter().copied()).unwrap();
        let latest = vec![
            (l(&[("__name__", "a"), ("job", "x\"y")]), 1000, 1_000_000.0),
            (l(&[("__name__", "a"), ("instance", "i"), ("job", "z")]), 2000, -0.0),
            (l(&[("__name__", "b")]), 3000, f64::NAN),
        ];
        let text = render(&latest, &[("dc".into(), "eu".into())]);
        assert_eq!(
            text,
            "# TYPE a untyped\n\
             a{job=\"x\\\"y\",dc=\"eu\",instance=\"\"} 1e+06 1000\n\
             a{instance=\"i\",job=\"z\",dc=\"eu\"} 0 2000\n\
             # TYPE b untyped\n\
             b{dc=\"eu\",instance=\"\"} NaN 3000\n"
        );
    }
}
