//! The Prometheus exposition formats `/federate` writes: the protobuf
//! messages of `io.prometheus.client` (the subset federation uses, with the
//! field numbers of Prometheus' `prompb/io/prometheus/client/metrics.proto`),
//! content negotiation by `Accept` as Go's `expfmt.Negotiate` does it, and
//! the text format 0.0.4 of a metric family as `expfmt` writes it.
//!
//! The messages are public so that a client (or a test) can decode a
//! federation answer: each [`MetricFamily`] is length-delimited
//! ([`prost::Message::decode_length_delimited`]).

use crate::storage::histogram::{FloatHistogram, Histogram as IntHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

use super::json;

/// The content type of the delimited protobuf exposition.
pub const PROTO_DELIMITED_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The content type of the text exposition 0.0.4 (as `/federate` sends it).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label name and value (`io.prometheus.client.LabelPair`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LabelPair {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// The type of a metric family (`io.prometheus.client.MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// A counter.
    Counter = 0,
    /// A gauge.
    Gauge = 1,
    /// A summary.
    Summary = 2,
    /// A sample of unknown type (federated floats).
    Untyped = 3,
    /// A counter histogram (classic or native).
    Histogram = 4,
    /// A gauge histogram.
    GaugeHistogram = 5,
}

/// The value of an untyped metric (`io.prometheus.client.Untyped`).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Untyped {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// A classic bucket (`io.prometheus.client.Bucket`).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Bucket {
    /// Observations at or below `upper_bound` (integer counts).
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    /// Observations at or below `upper_bound` (float counts; overrides
    /// `cumulative_count` when positive).
    #[prost(double, tag = "4")]
    pub cumulative_count_float: f64,
    /// The inclusive upper bound.
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
}

/// A run of consecutive native buckets (`io.prometheus.client.BucketSpan`).
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (for the first: index of its first bucket).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// A histogram, classic or native (`io.prometheus.client.Histogram`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observation count (integer histograms).
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Observation count (float histograms; overrides `sample_count` when
    /// positive).
    #[prost(double, tag = "4")]
    pub sample_count_float: f64,
    /// Sum of observations.
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// Classic buckets, by increasing upper bound (+Inf optional).
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// Native schema.
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    /// Width of the zero bucket.
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    /// Zero bucket count (integer histograms).
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    /// Zero bucket count (float histograms).
    #[prost(double, tag = "8")]
    pub zero_count_float: f64,
    /// Spans of the negative buckets.
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    /// Negative bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    /// Absolute negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "11")]
    pub negative_count: Vec<f64>,
    /// Spans of the positive buckets.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Positive bucket counts as deltas (integer histograms).
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
    /// Absolute positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "14")]
    pub positive_count: Vec<f64>,
}

/// One series' sample (`io.prometheus.client.Metric`; the summary, gauge and
/// counter variants are not used by federation and left out).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// Labels other than the metric name.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The value of an untyped (float) sample.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    /// The value of a histogram sample.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// Sample timestamp in milliseconds.
    #[prost(int64, tag = "6")]
    pub timestamp_ms: i64,
}

/// A metric family (`io.prometheus.client.MetricFamily`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    /// The metric name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Help text (federation sends none).
    #[prost(string, tag = "2")]
    pub help: String,
    /// The [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "3")]
    pub r#type: i32,
    /// The samples.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// The exposition format a request negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text format 0.0.4.
    Text,
    /// Length-delimited protobuf `MetricFamily` messages.
    ProtoDelimited,
}

impl Format {
    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::ProtoDelimited => PROTO_DELIMITED_CONTENT_TYPE,
        }
    }

    /// Chooses the format for an `Accept` header as `expfmt.Negotiate`
    /// does: media ranges by decreasing quality (more specific first on a
    /// tie); the first that is the delimited protobuf exposition or
    /// `text/plain` (version 0.0.4 or none) wins; otherwise text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        struct Range<'a> {
            q: f64,
            specificity: u8,
            media: String,
            params: Vec<(String, &'a str)>,
        }
        let Some(accept) = accept else { return Format::Text };
        let mut ranges: Vec<Range<'_>> = Vec::new();
        for part in accept.split(',') {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            let mut q = 1.0;
            let mut params = Vec::new();
            for p in pieces {
                let Some((k, v)) = p.split_once('=') else { continue };
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().trim_matches('"');
                if k == "q" {
                    q = v.parse::<f64>().ok().filter(|q| q.is_finite()).unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
            let specificity = match media.split_once('/') {
                Some(("*", _)) => 0,
                Some((_, "*")) => 1,
                _ => 2,
            };
            ranges.push(Range { q, specificity, media, params });
        }
        ranges.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.specificity.cmp(&a.specificity)));
        for r in &ranges {
            let param = |name: &str| r.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            if r.media == "application/vnd.google.protobuf"
                && param("proto") == Some("io.prometheus.client.MetricFamily")
                && param("encoding") == Some("delimited")
            {
                return Format::ProtoDelimited;
            }
            if r.media == "text/plain" && matches!(param("version"), None | Some("") | Some("0.0.4")) {
                return Format::Text;
            }
        }
        Format::Text
    }
}

fn spans(s: &[Span]) -> Vec<BucketSpan> {
    s.iter().map(|s| BucketSpan { offset: s.offset, length: s.length }).collect()
}

/// Without any span, zero bucket or zero threshold, a native histogram
/// would read as a classic one; like `client_golang`, an empty span marks
/// it native.
fn mark_native(h: &mut Histogram) {
    if h.positive_span.is_empty() && h.negative_span.is_empty() && h.zero_threshold == 0.0 {
        let no_zero_count = h.zero_count == 0 && h.zero_count_float == 0.0;
        if no_zero_count {
            h.positive_span.push(BucketSpan { offset: 0, length: 0 });
        }
    }
}

/// The bucket indices of spans, in order (for custom buckets).
fn span_indices(s: &[Span]) -> impl Iterator<Item = i64> + '_ {
    let mut next = 0i64;
    s.iter().flat_map(move |sp| {
        let start = next + i64::from(sp.offset);
        next = start + i64::from(sp.length);
        start..next
    })
}

/// An integer histogram as its exposition: native (deltas) for exponential
/// schemas, classic cumulative buckets with integer counts for custom
/// buckets.
pub fn integer_histogram(h: &IntHistogram) -> Histogram {
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        let mut counts = vec![0u64; h.custom_values.len()];
        let mut acc = 0i64;
        for (i, d) in span_indices(&h.positive_spans).zip(&h.positive_buckets) {
            acc = acc.wrapping_add(*d);
            if let Some(c) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                *c = u64::try_from(acc).unwrap_or(0);
            }
        }
        let mut cumulative = 0u64;
        let bucket = h
            .custom_values
            .iter()
            .zip(counts)
            .map(|(&le, c)| {
                cumulative = cumulative.wrapping_add(c);
                Bucket { cumulative_count: cumulative, cumulative_count_float: 0.0, upper_bound: le }
            })
            .collect();
        return Histogram { sample_count: h.count, sample_sum: h.sum, bucket, ..Histogram::default() };
    }
    let mut out = Histogram {
        sample_count: h.count,
        sample_sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        negative_span: spans(&h.negative_spans),
        negative_delta: h.negative_buckets.clone(),
        positive_span: spans(&h.positive_spans),
        positive_delta: h.positive_buckets.clone(),
        ..Histogram::default()
    };
    mark_native(&mut out);
    out
}

/// A float histogram as its exposition: native (absolute counts) for
/// exponential schemas, classic cumulative buckets for custom buckets (as
/// Prometheus' federation does).
pub fn float_histogram(h: &FloatHistogram) -> Histogram {
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        let mut counts = vec![0f64; h.custom_values.len()];
        for (i, c) in span_indices(&h.positive_spans).zip(&h.positive_buckets) {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                *slot = *c;
            }
        }
        let mut cumulative = 0f64;
        let bucket = h
            .custom_values
            .iter()
            .zip(counts)
            .map(|(&le, c)| {
                cumulative += c;
                Bucket { cumulative_count: 0, cumulative_count_float: cumulative, upper_bound: le }
            })
            .collect();
        return Histogram { sample_count_float: h.count, sample_sum: h.sum, bucket, ..Histogram::default() };
    }
    let mut out = Histogram {
        sample_count_float: h.count,
        sample_sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count_float: h.zero_count,
        negative_span: spans(&h.negative_spans),
        negative_count: h.negative_buckets.clone(),
        positive_span: spans(&h.positive_spans),
        positive_count: h.positive_buckets.clone(),
        ..Histogram::default()
    };
    mark_native(&mut out);
    out
}

/// Go's `expfmt` `writeFloat`: `1`, `0`, `-1`, `NaN`, `+Inf`, `-Inf`
/// exactly, otherwise `FormatFloat(f, 'g', -1, 64)`.
fn push_float(out: &mut String, v: f64) {
    if v == 0.0 {
        out.push('0');
    } else {
        json::push_go_g(out, v);
    }
}

fn escape_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_sample(out: &mut String, name: &str, suffix: &str, m: &Metric, le: Option<f64>, v: f64) {
    out.push_str(name);
    out.push_str(suffix);
    let mut first = true;
    let mut open = |out: &mut String| {
        out.push(if first { '{' } else { ',' });
        first = false;
    };
    for l in &m.label {
        open(out);
        out.push_str(&l.name);
        out.push_str("=\"");
        escape_value(out, &l.value);
        out.push('"');
    }
    if let Some(le) = le {
        open(out);
        out.push_str("le=\"");
        push_float(out, le);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    push_float(out, v);
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(m.timestamp_ms));
    out.push('\n');
}

/// Appends one family in the text format 0.0.4, as `expfmt` writes it
/// (no `HELP` line; a gauge histogram is written as a histogram; a
/// histogram is written from its classic buckets, +Inf added from the
/// count). Families of other types are not written.
pub fn push_text_family(out: &mut String, mf: &MetricFamily) {
    let ty = match MetricType::try_from(mf.r#type) {
        Ok(MetricType::Untyped) => "untyped",
        Ok(MetricType::Histogram | MetricType::GaugeHistogram) => "histogram",
        _ => return,
    };
    out.push_str("# TYPE ");
    out.push_str(&mf.name);
    out.push(' ');
    out.push_str(ty);
    out.push('\n');
    let name = mf.name.as_str();
    for m in &mf.metric {
        if let Some(u) = &m.untyped {
            push_sample(out, name, "", m, None, u.value);
        } else if let Some(h) = &m.histogram {
            let mut inf_seen = false;
            for b in &h.bucket {
                let c =
                    if b.cumulative_count_float != 0.0 { b.cumulative_count_float } else { b.cumulative_count as f64 };
                push_sample(out, name, "_bucket", m, Some(b.upper_bound), c);
                inf_seen |= b.upper_bound == f64::INFINITY;
            }
            let count = if h.sample_count_float != 0.0 { h.sample_count_float } else { h.sample_count as f64 };
            if !inf_seen {
                push_sample(out, name, "_bucket", m, Some(f64::INFINITY), count);
            }
            push_sample(out, name, "_sum", m, None, h.sample_sum);
            push_sample(out, name, "_count", m, None, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_expfmt() {
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("")), Format::Text);
        assert_eq!(Format::negotiate(Some(proto)), Format::ProtoDelimited);
        assert_eq!(Format::negotiate(Some(PROTO_DELIMITED_CONTENT_TYPE)), Format::ProtoDelimited);
        // Prometheus 2.42's scrape Accept header with native histograms on.
        let scrape = format!(
            "{proto},application/openmetrics-text;version=1.0.0;q=0.8,\
             application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        );
        assert_eq!(Format::negotiate(Some(&scrape)), Format::ProtoDelimited);
        // Without native histograms it asks for text first.
        let text_first = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(text_first)), Format::Text);
        // Quality decides, not order.
        assert_eq!(Format::negotiate(Some(&format!("text/plain;q=0.2,{proto};q=0.9"))), Format::ProtoDelimited);
        assert_eq!(Format::negotiate(Some(&format!("text/plain;q=0.9,{proto};q=0.2"))), Format::Text);
        // Other encodings of the protobuf format are not served.
        let compact = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text";
        assert_eq!(Format::negotiate(Some(compact)), Format::Text);
        assert_eq!(Format::negotiate(Some("application/vnd.google.protobuf;encoding=delimited")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain;version=1.0.0")), Format::Text);
    }

    #[test]
    fn integer_native_histogram_keeps_deltas() {
        let h = IntHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2,
            count: 12,
            sum: 18.5,
            positive_spans: vec![Span { offset: -1, length: 2 }, Span { offset: 1, length: 1 }],
            positive_buckets: vec![3, -1, 4],
            negative_spans: vec![Span { offset: 0, length: 1 }],
            negative_buckets: vec![1],
            ..IntHistogram::default()
        };
        let p = integer_histogram(&h);
        assert_eq!(p.sample_count, 12);
        assert_eq!(p.sample_count_float, 0.0);
        assert_eq!(p.zero_count, 2);
        assert_eq!(p.schema, 1);
        assert_eq!(p.positive_delta, vec![3, -1, 4]);
        assert!(p.positive_count.is_empty());
        assert_eq!(p.positive_span, vec![BucketSpan { offset: -1, length: 2 }, BucketSpan { offset: 1, length: 1 }]);
        assert_eq!(p.negative_delta, vec![1]);
        assert!(p.bucket.is_empty());
    }

    #[test]
    fn float_native_histogram_keeps_absolute_counts_and_empty_ones_stay_native() {
        let h = FloatHistogram {
            schema: 0,
            count: 3.5,
            sum: 1.0,
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![1.5, 2.0],
            ..FloatHistogram::default()
        };
        let p = float_histogram(&h);
        assert_eq!(p.sample_count_float, 3.5);
        assert_eq!(p.positive_count, vec![1.5, 2.0]);
        assert!(p.positive_delta.is_empty());
        let empty = float_histogram(&FloatHistogram::default());
        assert_eq!(empty.positive_span, vec![BucketSpan { offset: 0, length: 0 }]);
        let empty = integer_histogram(&IntHistogram::default());
        assert_eq!(empty.positive_span, vec![BucketSpan { offset: 0, length: 0 }]);
    }

    #[test]
    fn custom_buckets_become_classic_cumulative_buckets() {
        // Bounds 1, 2, 5; buckets 0 and 2 populated, plus the +Inf bucket (3).
        let h = IntHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 10,
            sum: 30.0,
            positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 2 }],
            positive_buckets: vec![2, 1, 4], // counts 2, 3, 7
            custom_values: vec![1.0, 2.0, 5.0],
            ..IntHistogram::default()
        };
        let p = integer_histogram(&h);
        let got: Vec<(f64, u64)> = p.bucket.iter().map(|b| (b.upper_bound, b.cumulative_count)).collect();
        assert_eq!(got, vec![(1.0, 2), (2.0, 2), (5.0, 5)]);
        assert!(p.positive_span.is_empty() && p.schema == 0);
        let f = float_histogram(&h.to_float());
        let got: Vec<(f64, f64)> = f.bucket.iter().map(|b| (b.upper_bound, b.cumulative_count_float)).collect();
        assert_eq!(got, vec![(1.0, 2.0), (2.0, 2.0), (5.0, 5.0)]);
        assert_eq!(f.sample_count_float, 10.0);

        let mf = MetricFamily {
            name: "lat".into(),
            r#type: MetricType::Histogram as i32,
            metric: vec![Metric {
                label: vec![LabelPair { name: "job".into(), value: "a".into() }],
                histogram: Some(p),
                timestamp_ms: 7,
                ..Metric::default()
            }],
            ..MetricFamily::default()
        };
        let mut text = String::new();
        push_text_family(&mut text, &mf);
        assert_eq!(
            text,
            "# TYPE lat histogram\n\
             lat_bucket{job=\"a\",le=\"1\"} 2 7\n\
             lat_bucket{job=\"a\",le=\"2\"} 2 7\n\
             lat_bucket{job=\"a\",le=\"5\"} 5 7\n\
             lat_bucket{job=\"a\",le=\"+Inf\"} 10 7\n\
             lat_sum{job=\"a\"} 30 7\n\
             lat_count{job=\"a\"} 10 7\n"
        );
    }
}
