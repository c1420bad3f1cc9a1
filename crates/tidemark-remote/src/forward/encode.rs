//! Encoding a batch of samples as a remote-write request body: protobuf
//! (1.0 `WriteRequest` or 2.0 `Request` with its symbol table), then the
//! snappy block format.
//!
//! The protobuf is written by hand rather than through the `prost` structs
//! in [`crate::proto`] for one reason: proto3 encoders leave out fields equal
//! to their default, and `-0.0 == 0.0`, so a negative zero would arrive as
//! `+0.0`. Here every sample's value is written, so values arrive bit-exact
//! (negative zero, every NaN payload, the staleness marker). The bytes are
//! ordinary protobuf that any decoder (and the `prost` structs) reads.
//!
//! Native histograms are the one message encoded with prost
//! ([`crate::histogram::value_to_proto`]: integer histograms as integer,
//! float as float, custom bounds included); a sum of `-0.0`, which prost
//! leaves out, is written again after it (the last occurrence of a field
//! wins), so sums arrive bit-exact too (the histogram staleness marker is
//! a NaN sum).

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use tidemark_storage::histogram::HistogramValue;
use tidemark_storage::Labels;

use super::Protocol;

/// What a queued sample holds.
#[derive(Debug, Clone)]
pub(crate) enum QueuedValue {
    /// A float sample's value.
    Float(f64),
    /// A native histogram sample's value.
    Histogram(Box<HistogramValue>),
    /// An exemplar: its own labels and value (its time is the sample's).
    Exemplar(Box<(Labels, f64)>),
}

/// One sample waiting in a shard, with everything needed to send it.
#[derive(Debug, Clone)]
pub(crate) struct QueuedSample {
    /// The series' WAL reference: samples are grouped by it.
    pub series_ref: u64,
    pub labels: Arc<Labels>,
    pub t: i64,
    pub value: QueuedValue,
    /// The read chunk it came from, for acknowledgement.
    pub chunk: u64,
}

impl QueuedSample {
    /// Whether it is a native histogram sample.
    pub(crate) fn is_histogram(&self) -> bool {
        matches!(self.value, QueuedValue::Histogram(_))
    }

    /// Whether it is an exemplar.
    pub(crate) fn is_exemplar(&self) -> bool {
        matches!(self.value, QueuedValue::Exemplar(_))
    }
}

/// The snappy-compressed protobuf body of `batch`. Samples of one series
/// become one time series entry, in the order they were queued: its float
/// samples, then its native histograms.
pub(crate) fn encode(protocol: Protocol, batch: &[QueuedSample]) -> Result<Vec<u8>, snap::Error> {
    let raw = match protocol {
        Protocol::V1 => encode_v1(batch),
        Protocol::V2 => encode_v2(batch),
    };
    snap::raw::Encoder::new().compress_vec(&raw)
}

/// One series of a batch: its labels, float samples, histograms and
/// exemplars.
type Group<'a> = (&'a Labels, Vec<(i64, f64)>, Vec<(i64, &'a HistogramValue)>, Vec<(i64, &'a Labels, f64)>);

/// Groups samples by series, keeping first-appearance order of series and
/// queue order of samples (of each kind) within a series.
fn group(batch: &[QueuedSample]) -> Vec<Group<'_>> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Group<'_>> = Vec::new();
    for s in batch {
        let i = *index.entry(s.series_ref).or_insert_with(|| {
            out.push((&s.labels, Vec::new(), Vec::new(), Vec::new()));
            out.len() - 1
        });
        match &s.value {
            QueuedValue::Float(v) => out[i].1.push((s.t, *v)),
            QueuedValue::Histogram(h) => out[i].2.push((s.t, &**h)),
            QueuedValue::Exemplar(e) => out[i].3.push((s.t, &e.0, e.1)),
        }
    }
    out
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A `Sample` message (same in both versions): value always written.
fn put_samples(out: &mut Vec<u8>, field: u64, samples: &[(i64, f64)], scratch: &mut Vec<u8>) {
    for &(t, v) in samples {
        scratch.clear();
        put_tag(scratch, 1, FIXED64);
        scratch.extend_from_slice(&v.to_bits().to_le_bytes());
        if t != 0 {
            put_tag(scratch, 2, VARINT);
            put_varint(scratch, t as u64); // int64: two's complement
        }
        put_bytes(out, field, scratch);
    }
}

/// `Histogram` messages (same in both versions) as field `field`.
fn put_histograms(out: &mut Vec<u8>, field: u64, hists: &[(i64, &HistogramValue)], scratch: &mut Vec<u8>) {
    for &(t, h) in hists {
        scratch.clear();
        let p = crate::histogram::value_to_proto(t, h);
        p.encode(scratch).unwrap_or_else(|_| unreachable!("a Vec grows as needed"));
        if p.sum == 0.0 && p.sum.is_sign_negative() {
            put_tag(scratch, 3, FIXED64);
            scratch.extend_from_slice(&p.sum.to_bits().to_le_bytes());
        }
        put_bytes(out, field, scratch);
    }
}

/// `Exemplar` messages as field `field`: labels (1.0: `Label` messages;
/// 2.0: packed symbol references from `label`), value (always written, so
/// it arrives bit-exact), timestamp.
fn put_exemplars<'a>(
    out: &mut Vec<u8>,
    field: u64,
    exemplars: &[(i64, &'a Labels, f64)],
    scratch: &mut Vec<u8>,
    mut label: impl FnMut(&mut Vec<u8>, &'a Labels),
) {
    for &(t, labels, v) in exemplars {
        scratch.clear();
        label(scratch, labels);
        put_tag(scratch, 2, FIXED64);
        scratch.extend_from_slice(&v.to_bits().to_le_bytes());
        if t != 0 {
            put_tag(scratch, 3, VARINT);
            put_varint(scratch, t as u64);
        }
        put_bytes(out, field, scratch);
    }
}

/// `prometheus.WriteRequest` { 1: repeated TimeSeries { 1: Label, 2: Sample,
/// 3: Exemplar, 4: Histogram } }.
pub(crate) fn encode_v1(batch: &[QueuedSample]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut ts, mut item, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for (labels, samples, hists, exemplars) in group(batch) {
        ts.clear();
        for l in labels.iter() {
            item.clear();
            put_bytes(&mut item, 1, l.name.as_bytes());
            put_bytes(&mut item, 2, l.value.as_bytes());
            put_bytes(&mut ts, 1, &item);
        }
        put_samples(&mut ts, 2, &samples, &mut scratch);
        put_exemplars(&mut ts, 3, &exemplars, &mut scratch, |out, labels| {
            let mut item = Vec::new();
            for l in labels.iter() {
                item.clear();
                put_bytes(&mut item, 1, l.name.as_bytes());
                put_bytes(&mut item, 2, l.value.as_bytes());
                put_bytes(out, 1, &item);
            }
        });
        put_histograms(&mut ts, 4, &hists, &mut scratch);
        put_bytes(&mut out, 1, &ts);
    }
    out
}

/// The packed symbol references of `labels` into `packed`, adding new
/// strings to the symbol table.
fn label_refs<'a>(
    labels: &'a Labels,
    refs: &mut HashMap<&'a str, u32>,
    symbols: &mut Vec<&'a str>,
    packed: &mut Vec<u8>,
) {
    packed.clear();
    for l in labels.iter() {
        for s in [l.name, l.value] {
            let r = *refs.entry(s).or_insert_with(|| {
                symbols.push(s);
                symbols.len() as u32 - 1
            });
            put_varint(packed, u64::from(r));
        }
    }
}

/// `io.prometheus.write.v2.Request` { 4: symbols, 5: TimeSeries { 1: packed
/// labels_refs, 2: Sample, 3: Histogram, 4: Exemplar } }.
pub(crate) fn encode_v2(batch: &[QueuedSample]) -> Vec<u8> {
    // The spec requires the empty string as symbol 0.
    let mut symbols: Vec<&str> = vec![""];
    let mut refs: HashMap<&str, u32> = HashMap::new();
    let groups = group(batch);
    let mut series = Vec::new();
    let (mut ts, mut packed, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for (labels, samples, hists, exemplars) in &groups {
        ts.clear();
        label_refs(labels, &mut refs, &mut symbols, &mut packed);
        put_bytes(&mut ts, 1, &packed);
        put_samples(&mut ts, 2, samples, &mut scratch);
        put_histograms(&mut ts, 3, hists, &mut scratch);
        put_exemplars(&mut ts, 4, exemplars, &mut scratch, |out, labels| {
            label_refs(labels, &mut refs, &mut symbols, &mut packed);
            if !packed.is_empty() {
                put_bytes(out, 1, &packed);
            }
        });
        put_bytes(&mut series, 5, &ts);
    }
    let mut out = Vec::with_capacity(series.len() + symbols.iter().map(|s| s.len() + 2).sum::<usize>());
    for s in &symbols {
        put_bytes(&mut out, 4, s.as_bytes());
    }
    out.extend_from_slice(&series);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{v1, v2};
    use prost::Message;

    fn q(series_ref: u64, labels: &Arc<Labels>, t: i64, v: f64) -> QueuedSample {
        QueuedSample { series_ref, labels: labels.clone(), t, value: QueuedValue::Float(v), chunk: 0 }
    }

    fn qh(series_ref: u64, labels: &Arc<Labels>, t: i64, h: HistogramValue) -> QueuedSample {
        QueuedSample { series_ref, labels: labels.clone(), t, value: QueuedValue::Histogram(Box::new(h)), chunk: 0 }
    }

    /// Histograms go in each series' entry after its floats, integer as
    /// integer and float as float, sums bit-exact (`-0.0`, the staleness
    /// marker), in both versions.
    #[test]
    fn histograms_round_trip_in_their_series_with_both_protocols() {
        use tidemark_storage::histogram::{FloatHistogram, Histogram, HistogramSample, Span};
        let a = Arc::new(Labels::new([("__name__", "lat"), ("job", "a")]).unwrap());
        let b = Arc::new(Labels::new([("__name__", "lat"), ("job", "b")]).unwrap());
        let int = HistogramValue::Integer(Histogram {
            count: 3,
            sum: -0.0,
            zero_count: 1,
            zero_threshold: 0.001,
            positive_spans: vec![Span { offset: -2, length: 2 }],
            positive_buckets: vec![1, 0],
            ..Histogram::default()
        });
        let float = HistogramValue::Float(FloatHistogram {
            schema: -53,
            count: 2.5,
            sum: tidemark_storage::stale_nan(),
            positive_spans: vec![Span { offset: 0, length: 2 }],
            positive_buckets: vec![0.5, 2.0],
            custom_values: vec![1.0],
            ..FloatHistogram::default()
        });
        let batch =
            vec![qh(1, &a, 5, int.clone()), q(1, &a, 1, 1.0), qh(2, &b, 7, float.clone()), qh(1, &a, 6, float.clone())];
        let want_a = [HistogramSample { t: 5, h: int }, HistogramSample { t: 6, h: float.clone() }];
        let want_b = [HistogramSample { t: 7, h: float }];
        let bytes = |h: &[crate::proto::Histogram]| -> Vec<Vec<u8>> {
            h.iter()
                .map(|p| crate::histogram::to_proto(&crate::histogram::from_proto(p).unwrap()).encode_to_vec())
                .collect()
        };
        let want = |w: &[HistogramSample]| -> Vec<Vec<u8>> {
            w.iter().map(|s| crate::histogram::to_proto(s).encode_to_vec()).collect()
        };
        let check_sum = |h: &crate::proto::Histogram, bits: u64| assert_eq!(h.sum.to_bits(), bits);

        let raw = snap::raw::Decoder::new().decompress_vec(&encode(Protocol::V1, &batch).unwrap()).unwrap();
        let req = v1::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[0].samples.len(), 1);
        assert_eq!(bytes(&req.timeseries[0].histograms), want(&want_a));
        assert_eq!(bytes(&req.timeseries[1].histograms), want(&want_b));
        check_sum(&req.timeseries[0].histograms[0], (-0.0f64).to_bits());
        check_sum(&req.timeseries[1].histograms[0], tidemark_storage::STALE_NAN_BITS);
        assert!(matches!(req.timeseries[0].histograms[0].count, Some(crate::proto::histogram::Count::CountInt(3))));

        let raw = snap::raw::Decoder::new().decompress_vec(&encode(Protocol::V2, &batch).unwrap()).unwrap();
        let req = v2::Request::decode(raw.as_slice()).unwrap();
        assert_eq!(bytes(&req.timeseries[0].histograms), want(&want_a));
        assert_eq!(bytes(&req.timeseries[1].histograms), want(&want_b));
        check_sum(&req.timeseries[0].histograms[0], (-0.0f64).to_bits());
        assert!(req.timeseries[1].samples.is_empty());
    }

    /// Exemplars go in their series' entry with their labels, value (bit
    /// for bit, -0.0 too) and time, in both versions; a series with only
    /// exemplars in the batch still has its entry.
    #[test]
    fn exemplars_round_trip_in_their_series_with_both_protocols() {
        let a = Arc::new(Labels::new([("__name__", "req_total"), ("job", "a")]).unwrap());
        let b = Arc::new(Labels::new([("__name__", "req_total"), ("job", "b")]).unwrap());
        let qe = |r: u64, l: &Arc<Labels>, t: i64, ex: &[(&str, &str)], v: f64| QueuedSample {
            series_ref: r,
            labels: l.clone(),
            t,
            value: QueuedValue::Exemplar(Box::new((Labels::new(ex.iter().copied()).unwrap(), v))),
            chunk: 0,
        };
        let batch = vec![
            q(1, &a, 10, 1.0),
            qe(1, &a, 9, &[("trace_id", "abc123")], 0.67),
            qe(2, &b, 11, &[], -0.0),
            qe(1, &a, 12, &[("span_id", "s1"), ("trace_id", "def")], 1.5),
        ];
        let raw = snap::raw::Decoder::new().decompress_vec(&encode(Protocol::V1, &batch).unwrap()).unwrap();
        let req = v1::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        let ex = &req.timeseries[0].exemplars;
        assert_eq!(ex.len(), 2);
        assert_eq!((ex[0].labels[0].name.as_str(), ex[0].labels[0].value.as_str()), ("trace_id", "abc123"));
        assert_eq!((ex[0].value, ex[0].timestamp), (0.67, 9));
        assert_eq!((ex[1].labels.len(), ex[1].value, ex[1].timestamp), (2, 1.5, 12));
        assert!(req.timeseries[1].samples.is_empty());
        assert_eq!(req.timeseries[1].exemplars[0].value.to_bits(), (-0.0f64).to_bits());
        assert!(req.timeseries[1].exemplars[0].labels.is_empty());

        let raw = snap::raw::Decoder::new().decompress_vec(&encode(Protocol::V2, &batch).unwrap()).unwrap();
        let req = v2::Request::decode(raw.as_slice()).unwrap();
        let sym = |r: &[u32]| -> Vec<&str> { r.iter().map(|&i| req.symbols[i as usize].as_str()).collect() };
        let ex = &req.timeseries[0].exemplars;
        assert_eq!(sym(&ex[0].labels_refs), ["trace_id", "abc123"]);
        assert_eq!(sym(&ex[1].labels_refs), ["span_id", "s1", "trace_id", "def"]);
        assert_eq!((ex[0].value, ex[0].timestamp), (0.67, 9));
        assert_eq!(req.timeseries[1].exemplars[0].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(sym(&req.timeseries[1].labels_refs), ["__name__", "req_total", "job", "b"]);
    }

    #[test]
    fn v1_and_v2_round_trip_grouped_by_series_in_order() {
        let a = Arc::new(Labels::new([("__name__", "up"), ("job", "a")]).unwrap());
        let b = Arc::new(Labels::new([("__name__", "up"), ("job", "b")]).unwrap());
        let stale = tidemark_storage::stale_nan();
        let batch = vec![q(1, &a, 1, 1.0), q(2, &b, 1, 2.0), q(1, &a, 2, stale), q(2, &b, 2, -0.0), q(2, &b, -5, 0.0)];

        let body = encode(Protocol::V1, &batch).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = v1::WriteRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(req.timeseries[0].labels[1].value, "a");
        let ts: Vec<i64> = req.timeseries[0].samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(ts, vec![1, 2]);
        assert_eq!(req.timeseries[0].samples[1].value.to_bits(), stale.to_bits());
        assert_eq!(req.timeseries[1].samples[1].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(req.timeseries[1].samples[2].timestamp, -5);
        assert_eq!(req.timeseries[1].samples[2].value.to_bits(), 0);

        let body = encode(Protocol::V2, &batch).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = v2::Request::decode(raw.as_slice()).unwrap();
        assert_eq!(req.symbols[0], "");
        let names: Vec<&str> =
            req.timeseries[1].labels_refs.iter().map(|&r| req.symbols[r as usize].as_str()).collect();
        assert_eq!(names, vec!["__name__", "up", "job", "b"]);
        // Shared strings appear once in the symbol table.
        assert_eq!(req.symbols.len(), 6);
        assert_eq!(req.timeseries[0].samples[1].value.to_bits(), stale.to_bits());
        assert_eq!(req.timeseries[1].samples[1].value.to_bits(), (-0.0f64).to_bits());
    }
}
