//! Native histograms through the receiver, 1.0 and 2.0: golden request
//! bodies holding every kind (exponential schemas 0, 3 and 8 with negative
//! and zero buckets, NaN sums, a counter reset, a gauge histogram, float
//! histograms, custom-bucket histograms, a staleness marker, a series that
//! turns from floats into histograms) read back equal from storage; partial
//! acceptance (invalid, out of order, duplicate, too old, future, mixed
//! kinds) with its counts, body and header; malformed histogram messages;
//! the series cache path.

use std::path::PathBuf;
use std::sync::Arc;

use prost::Message;
use tidemark_remote::codec::{compress, encode_v1, encode_v2, SymbolTable};
use tidemark_remote::histogram::{from_proto, to_proto};
use tidemark_remote::proto::{self, v1, v2, MetricType};
use tidemark_remote::receive::{HISTOGRAMS_WRITTEN, SAMPLES_WRITTEN};
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions, RejectReason, WriteResponse};
use tidemark_storage::histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark_storage::{stale_nan, Db, Matcher, SampleIterator, STALE_NAN_BITS};

/// The receiver's clock in every test (2023-11-14T22:13:20Z).
const NOW: i64 = 1_700_000_000_000;
const V1: Option<&str> = Some("application/x-protobuf");
const V2: Option<&str> = Some("application/x-protobuf;proto=io.prometheus.write.v2.Request");
const SNAPPY: Option<&str> = Some("snappy");

fn receiver() -> (Arc<Db>, Receiver) {
    let db = Arc::new(Db::in_memory().expect("in-memory db"));
    let r = Receiver::new(db.clone(), Arc::new(MetadataStore::new()), ReceiverOptions::default());
    (db, r)
}

fn send(r: &Receiver, ct: Option<&str>, body: &[u8]) -> WriteResponse {
    r.handle_at(ct, SNAPPY, body, NOW)
}

// ------------------------------------------------------------ histograms

/// Bucket counts as the deltas integer histograms carry.
fn deltas(counts: &[i64]) -> Vec<i64> {
    let mut prev = 0;
    counts
        .iter()
        .map(|&c| {
            let d = c - prev;
            prev = c;
            d
        })
        .collect()
}

fn spans(s: &[(i32, u32)]) -> Vec<Span> {
    s.iter().map(|&(offset, length)| Span { offset, length }).collect()
}

/// An integer histogram from absolute bucket counts; its count is the sum
/// of every bucket and the zero bucket.
#[allow(clippy::too_many_arguments)]
fn int_hist(
    schema: i32,
    zero_count: u64,
    pos: &[(i32, u32)],
    pos_counts: &[i64],
    neg: &[(i32, u32)],
    neg_counts: &[i64],
    sum: f64,
    hint: CounterResetHint,
) -> HistogramValue {
    let count = zero_count + pos_counts.iter().chain(neg_counts).sum::<i64>() as u64;
    HistogramValue::Integer(Histogram {
        counter_reset_hint: hint,
        schema,
        zero_threshold: if schema == CUSTOM_BUCKETS_SCHEMA { 0.0 } else { 0.001 },
        zero_count,
        count,
        sum,
        positive_spans: spans(pos),
        negative_spans: spans(neg),
        positive_buckets: deltas(pos_counts),
        negative_buckets: deltas(neg_counts),
        custom_values: Vec::new(),
    })
}

/// A float histogram from absolute bucket counts.
#[allow(clippy::too_many_arguments)]
fn float_hist(
    schema: i32,
    zero_count: f64,
    pos: &[(i32, u32)],
    pos_counts: &[f64],
    neg: &[(i32, u32)],
    neg_counts: &[f64],
    sum: f64,
    hint: CounterResetHint,
) -> HistogramValue {
    let count = zero_count + pos_counts.iter().chain(neg_counts).sum::<f64>();
    HistogramValue::Float(FloatHistogram {
        counter_reset_hint: hint,
        schema,
        zero_threshold: if schema == CUSTOM_BUCKETS_SCHEMA { 0.0 } else { 0.001 },
        zero_count,
        count,
        sum,
        positive_spans: spans(pos),
        negative_spans: spans(neg),
        positive_buckets: pos_counts.to_vec(),
        negative_buckets: neg_counts.to_vec(),
        custom_values: Vec::new(),
    })
}

fn with_bounds(mut h: HistogramValue, bounds: &[f64]) -> HistogramValue {
    match &mut h {
        HistogramValue::Integer(h) => h.custom_values = bounds.to_vec(),
        HistogramValue::Float(h) => h.custom_values = bounds.to_vec(),
    }
    h
}

use CounterResetHint::{CounterReset, Gauge, NotCounterReset, Unknown};

/// One golden series: its name, float samples (before its histograms) and
/// histogram samples.
struct GoldenSeries {
    name: &'static str,
    floats: Vec<(i64, f64)>,
    histograms: Vec<HistogramSample>,
}

/// Three scrapes, 15 s apart, ending at NOW.
const T: [i64; 3] = [NOW - 30_000, NOW - 15_000, NOW];

fn at(t: i64, h: HistogramValue) -> HistogramSample {
    HistogramSample { t, h }
}

/// Every kind of native histogram, one series each.
fn golden_series() -> Vec<GoldenSeries> {
    let bounds = [0.1, 0.5, 1.0, 2.5];
    vec![
        // Schema 0, growing, then a counter reset (smaller counts, hinted).
        GoldenSeries {
            name: "exp_schema0_seconds",
            floats: vec![],
            histograms: vec![
                at(T[0], int_hist(0, 2, &[(-1, 2), (1, 1)], &[2, 1, 3], &[(0, 1)], &[1], 4.25, Unknown)),
                at(T[1], int_hist(0, 3, &[(-1, 2), (1, 1)], &[4, 2, 5], &[(0, 1)], &[1], 9.5, NotCounterReset)),
                at(T[2], int_hist(0, 0, &[(0, 1)], &[1], &[], &[], 0.75, CounterReset)),
            ],
        },
        // Schema 3 with negative buckets over two spans and a zero bucket.
        GoldenSeries {
            name: "exp_schema3_bytes",
            floats: vec![],
            histograms: vec![
                at(T[0], int_hist(3, 5, &[(3, 3)], &[1, 0, 7], &[(-2, 2), (3, 1)], &[2, 3, 1], -12.5, Unknown)),
                at(T[1], int_hist(3, 6, &[(3, 3)], &[1, 1, 8], &[(-2, 2), (3, 1)], &[2, 4, 1], -13.0, NotCounterReset)),
            ],
        },
        // Schema 8 float histogram (fractional counts, as after a rate).
        GoldenSeries {
            name: "exp_schema8_float",
            floats: vec![],
            histograms: vec![
                at(T[0], float_hist(8, 0.5, &[(100, 4)], &[0.25, 1.5, 0.0, 3.75], &[(7, 1)], &[0.125], 2.5, Unknown)),
                at(T[1], float_hist(8, 0.0, &[(-300, 2)], &[1e-3, 2e6], &[], &[], 1e9, Unknown)),
            ],
        },
        // A NaN sum (not the staleness one), then the staleness marker.
        GoldenSeries {
            name: "exp_nan_sum",
            floats: vec![],
            histograms: vec![
                at(T[0], int_hist(-2, 1, &[(0, 2)], &[1, 1], &[], &[], f64::NAN, Unknown)),
                at(T[1], HistogramValue::Integer(Histogram { sum: stale_nan(), ..Histogram::default() })),
            ],
        },
        // A gauge histogram (float, hinted gauge): counts go down freely.
        GoldenSeries {
            name: "gauge_queue_depth",
            floats: vec![],
            histograms: vec![
                at(T[0], float_hist(1, 3.0, &[(0, 3)], &[4.0, 2.0, 1.0], &[], &[], 20.0, Gauge)),
                at(T[1], float_hist(1, 1.0, &[(0, 3)], &[1.0, 0.0, 1.0], &[], &[], 5.0, Gauge)),
            ],
        },
        // Custom buckets (NHCB), integer and float; the last bucket is +Inf.
        GoldenSeries {
            name: "nhcb_request_seconds",
            floats: vec![],
            histograms: vec![
                at(T[0], with_bounds(int_hist(-53, 0, &[(0, 5)], &[1, 2, 0, 4, 1], &[], &[], 7.5, Unknown), &bounds)),
                at(
                    T[1],
                    with_bounds(
                        int_hist(-53, 0, &[(0, 2), (1, 2)], &[2, 3, 5, 1], &[], &[], 9.0, NotCounterReset),
                        &bounds,
                    ),
                ),
            ],
        },
        GoldenSeries {
            name: "nhcb_float",
            floats: vec![],
            histograms: vec![at(
                T[2],
                with_bounds(float_hist(-53, 0.0, &[(1, 2)], &[0.5, 1.5], &[], &[], 1.25, Unknown), &bounds),
            )],
        },
        // A series scraped as floats first, then as native histograms.
        GoldenSeries {
            name: "turns_native",
            floats: vec![(T[0], 3.0)],
            histograms: vec![
                at(T[1], int_hist(0, 0, &[(0, 1)], &[3], &[], &[], 3.0, Unknown)),
                at(T[2], int_hist(0, 0, &[(0, 1)], &[4], &[], &[], 4.0, NotCounterReset)),
            ],
        },
    ]
}

fn golden_labels(name: &str) -> Vec<(&str, &str)> {
    vec![("__name__", name), ("job", "golden")]
}

fn golden_v1() -> v1::WriteRequest {
    v1::WriteRequest {
        timeseries: golden_series()
            .into_iter()
            .map(|s| v1::TimeSeries {
                labels: golden_labels(s.name)
                    .into_iter()
                    .map(|(n, v)| v1::Label { name: n.into(), value: v.into() })
                    .collect(),
                samples: s.floats.iter().map(|&(t, v)| proto::Sample { value: v, timestamp: t }).collect(),
                histograms: s.histograms.iter().map(to_proto).collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

fn golden_v2() -> v2::Request {
    let mut st = SymbolTable::new();
    let series = golden_series()
        .into_iter()
        .map(|s| {
            let samples = s.floats.iter().map(|&(t, v)| proto::Sample { value: v, timestamp: t }).collect();
            let mut ts = st.series(&golden_labels(s.name), samples);
            ts.histograms = s.histograms.iter().map(to_proto).collect();
            ts.metadata = Some(st.metadata(MetricType::Histogram, "A golden histogram.", "seconds"));
            ts
        })
        .collect();
    st.into_request(series)
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/remote")
}

fn golden_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![("v1_histograms.bin", encode_v1(&golden_v1())), ("v2_histograms.bin", encode_v2(&golden_v2()))]
}

/// Rewrites the golden histogram bodies: `cargo test -p tidemark-remote
/// --test receive_histograms -- --ignored regenerate_golden_files`.
#[test]
#[ignore = "rewrites testdata/remote/v*_histograms.bin"]
fn regenerate_golden_files() {
    std::fs::create_dir_all(golden_dir()).expect("dir");
    for (name, bytes) in golden_bodies() {
        std::fs::write(golden_dir().join(name), bytes).expect("write");
    }
}

/// The committed files are what the generator writes (also checks that a
/// change to the encoders or to `to_proto` is noticed).
#[test]
fn golden_files_are_up_to_date() {
    for (name, bytes) in golden_bodies() {
        let path = golden_dir().join(name);
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run the ignored regenerate_golden_files test)", path.display()));
        assert!(committed == bytes, "{} differs from the generator (run regenerate_golden_files)", path.display());
    }
}

/// A series' floats (t, bits) and histograms read back from storage.
fn read_back(db: &Db, name: &str) -> (Vec<(i64, u64)>, Vec<HistogramSample>) {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let series = q.select(&[Matcher::equal("__name__", name)]).expect("select");
    assert_eq!(series.len(), 1, "{name}: one series");
    let mut it = series[0].iter();
    let (mut floats, mut hists) = (Vec::new(), Vec::new());
    it.drain_mixed_into(&mut floats, &mut hists);
    assert!(it.err().is_none(), "{name}: {:?}", it.err());
    (floats.iter().map(|s| (s.t, s.v.to_bits())).collect(), hists)
}

/// Histograms compared through their wire form: NaN sums by their bits,
/// and every field (kind, schema, spans, deltas or counts, bounds, hint).
fn wire(h: &HistogramSample) -> Vec<u8> {
    to_proto(h).encode_to_vec()
}

/// [`wire`] of the histogram as data: empty buckets dropped (storage may
/// give a sample the bucket layout of its chunk, with empty buckets where
/// the sample had none, as Prometheus' chunks do) and without the
/// counter-reset hint. Storage keeps hints as
/// Prometheus' chunks do (a chunk header, see `CounterResetHeader::sample_hint`):
/// a reader gets `Unknown` for a chunk's first sample and `NotCounterReset`
/// after it, `Gauge` always for gauge histograms; what was sent is not
/// kept per sample. [`check_hint`] checks what matters of it.
fn wire_without_hint(h: &HistogramSample) -> Vec<u8> {
    let mut h = h.clone();
    match &mut h.h {
        HistogramValue::Integer(h) => drop(h.compact(0)),
        HistogramValue::Float(h) => drop(h.compact(0)),
    }
    let mut p = to_proto(&h);
    p.reset_hint = 0;
    p.encode_to_vec()
}

/// A gauge histogram reads back as a gauge; a sample sent as a counter
/// reset never reads back as `NotCounterReset` (which would hide the
/// reset from `rate`); others read back `Unknown` or `NotCounterReset`.
fn check_hint(name: &str, got: CounterResetHint, sent: CounterResetHint) {
    let ok = match sent {
        Gauge => got == Gauge,
        CounterReset => matches!(got, Unknown | CounterReset),
        Unknown | NotCounterReset => matches!(got, Unknown | NotCounterReset),
    };
    assert!(ok, "{name}: sent hint {sent:?}, read back {got:?}");
}

fn hint(h: &HistogramValue) -> CounterResetHint {
    match h {
        HistogramValue::Integer(h) => h.counter_reset_hint,
        HistogramValue::Float(h) => h.counter_reset_hint,
    }
}

fn check_golden_read_back(db: &Db) {
    for s in golden_series() {
        let (floats, hists) = read_back(db, s.name);
        let want: Vec<_> = s.floats.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(floats, want, "{}: floats", s.name);
        assert_eq!(hists.len(), s.histograms.len(), "{}: {hists:?}", s.name);
        for (got, want) in hists.iter().zip(&s.histograms) {
            assert_eq!(wire_without_hint(got), wire_without_hint(want), "{}: {got:?} != {want:?}", s.name);
            check_hint(s.name, hint(&got.h), hint(&want.h));
            assert_eq!(
                matches!(got.h, HistogramValue::Integer(_)),
                matches!(want.h, HistogramValue::Integer(_)),
                "{}: kind kept",
                s.name
            );
        }
    }
    // The staleness marker kept its exact bits.
    let (_, hists) = read_back(db, "exp_nan_sum");
    assert_eq!(hists[1].h.sum().to_bits(), STALE_NAN_BITS);
    assert!(hists[0].h.sum().is_nan() && hists[0].h.sum().to_bits() != STALE_NAN_BITS);
}

fn golden_histogram_count() -> usize {
    golden_series().iter().map(|s| s.histograms.len()).sum()
}

#[test]
fn golden_v1_histograms_read_back_equal() {
    let body = std::fs::read(golden_dir().join("v1_histograms.bin")).expect("golden file");
    let (db, r) = receiver();
    let resp = send(&r, V1, &body);
    assert_eq!((resp.status, resp.body.as_str()), (204, ""));
    check_golden_read_back(&db);
    let s = r.stats();
    assert_eq!((s.samples_appended, s.histograms_appended), (1, golden_histogram_count() as u64));
    assert_eq!(s.histograms_rejected, [0; RejectReason::COUNT]);
}

#[test]
fn golden_v2_histograms_read_back_equal_and_are_counted_in_the_header() {
    let body = std::fs::read(golden_dir().join("v2_histograms.bin")).expect("golden file");
    let (db, r) = receiver();
    let resp = send(&r, V2, &body);
    assert_eq!((resp.status, resp.body.as_str()), (204, ""));
    assert_eq!(resp.header(SAMPLES_WRITTEN), Some("1"));
    assert_eq!(resp.header(HISTOGRAMS_WRITTEN), Some(golden_histogram_count().to_string().as_str()));
    check_golden_read_back(&db);
    // Histogram-only series are valid in 2.0 and carry their metadata.
    assert_eq!(r.metadata().get(None, None, None)["nhcb_float"][0].unit, "seconds");
    // Sent again: as for floats, each series' newest sample is an
    // identical duplicate (a no-op), the older ones are out of order.
    let again = send(&r, V2, &body);
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("(out_of_order: 8)"), "{}", again.body);
    check_golden_read_back(&db);
}

/// Both versions carry the same message: the same bodies decoded by prost
/// hold exactly the golden histograms.
#[test]
fn golden_bodies_hold_the_golden_histograms() {
    let raw = tidemark_remote::receive::decompress(&encode_v1(&golden_v1()), 1 << 20).expect("snappy");
    let req = v1::WriteRequest::decode(raw.as_slice()).expect("prost");
    let want: Vec<Vec<u8>> = golden_series().iter().flat_map(|s| s.histograms.iter().map(wire)).collect();
    let got: Vec<Vec<u8>> = req
        .timeseries
        .iter()
        .flat_map(|t| t.histograms.iter().map(|h| wire(&from_proto(h).expect("readable"))))
        .collect();
    assert_eq!(got, want);
}

// ------------------------------------------------------- partial acceptance

fn hist_series_v1(name: &str, hists: Vec<proto::Histogram>) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: vec![v1::Label { name: "__name__".into(), value: name.into() }],
        histograms: hists,
        ..Default::default()
    }
}

fn simple(t: i64, n: i64) -> proto::Histogram {
    to_proto(&at(t, int_hist(0, 0, &[(0, 1)], &[n], &[], &[], n as f64, Unknown)))
}

/// Each reason a histogram is refused, alone among good ones: the good
/// ones are stored, the answer is 400 with counts by reason and the first
/// reason per series.
#[test]
fn rejected_histograms_are_counted_by_reason_and_the_rest_stored() {
    let (db, r) = receiver();
    let first =
        vec![hist_series_v1("h", vec![simple(NOW - 10_000, 1)]), hist_series_v1("h2", vec![simple(NOW - 2_000, 1)])];
    let resp = send(&r, V1, &encode_v1(&v1::WriteRequest { timeseries: first, metadata: vec![] }));
    assert_eq!(resp.status, 204, "{}", resp.body);

    // Count 5 but buckets hold 2: storage's validation message.
    let mut invalid = simple(NOW - 5_000, 2);
    invalid.count = Some(proto::histogram::Count::CountInt(5));
    // Integer count, float bucket counts.
    let mut mixed = simple(NOW - 4_000, 2);
    mixed.positive_counts = vec![2.0];
    let series = vec![
        hist_series_v1("h", vec![simple(NOW - 20_000, 1), simple(NOW - 3_000, 3)]),
        hist_series_v1("h4", vec![invalid]),
        hist_series_v1("h5", vec![mixed]),
        // Another value at a stored timestamp; in the future.
        hist_series_v1("h2", vec![simple(NOW - 2_000, 9), simple(NOW + 3_600_000, 1)]),
        // Too old for the head (its newest sample is NOW - 2 s: far older
        // than the head's window).
        hist_series_v1("h3", vec![simple(NOW - 100 * 86_400_000, 1)]),
    ];
    let resp = send(&r, V1, &encode_v1(&v1::WriteRequest { timeseries: series, metadata: vec![] }));
    assert_eq!(resp.status, 400, "{}", resp.body);
    let body = &resp.body;
    assert!(
        body.starts_with("stored 0 samples and 1 histograms, rejected 0 samples and 6 histograms of 5 series ("),
        "{body}"
    );
    for part in ["out_of_order: 1", "too_old: 1", "duplicate: 1", "future_timestamp: 1", "invalid_histogram: 2"] {
        assert!(body.contains(part), "{part} in {body}");
    }
    assert!(body.contains("{__name__=\"h4\"}: invalid histogram: 2 observations found in buckets"), "{body}");
    assert!(body.contains("{__name__=\"h5\"}: invalid histogram: histogram mixes integer and float"), "{body}");
    let s = r.stats();
    assert_eq!(s.histograms_appended, 3);
    assert_eq!(resp.header(HISTOGRAMS_WRITTEN), None, "1.0 answers carry no written headers");
    for (reason, n) in [
        (RejectReason::OutOfOrder, 1),
        (RejectReason::Duplicate, 1),
        (RejectReason::FutureTimestamp, 1),
        (RejectReason::InvalidHistogram, 2),
        (RejectReason::TooOld, 1),
        (RejectReason::InvalidSeries, 0),
    ] {
        assert_eq!(s.histograms_rejected_for(reason), n, "{reason:?}");
    }
    assert_eq!(s.samples_rejected, [0; RejectReason::COUNT], "float counters untouched");
    let ts = |name| read_back(&db, name).1.iter().map(|h| h.t).collect::<Vec<_>>();
    assert_eq!(ts("h"), vec![NOW - 10_000, NOW - 3_000]);
    assert_eq!(ts("h2"), vec![NOW - 2_000]);
}

/// A series rejected as a whole (its labels) counts its histograms under
/// `invalid_series`; an unresolvable 2.0 reference too.
#[test]
fn invalid_series_reject_their_histograms() {
    let (_db, r) = receiver();
    let mut st = SymbolTable::new();
    let mut no_name = st.series(&[("job", "x")], vec![]);
    no_name.histograms = vec![simple(NOW, 1), simple(NOW + 1, 2)];
    let bad_ref = v2::TimeSeries { labels_refs: vec![1, 99], histograms: vec![simple(NOW, 1)], ..Default::default() };
    let resp = send(&r, V2, &encode_v2(&st.into_request(vec![no_name, bad_ref])));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(resp.header(HISTOGRAMS_WRITTEN), Some("0"));
    assert_eq!(r.stats().histograms_rejected_for(RejectReason::InvalidSeries), 3);
}

/// A message whose structure is wrong (a span field with the wrong wire
/// type) makes the body malformed: 400, nothing stored, as for any other
/// malformed field.
#[test]
fn a_malformed_histogram_message_refuses_the_body() {
    let (db, r) = receiver();
    let good = v1::TimeSeries {
        labels: vec![v1::Label { name: "__name__".into(), value: "ok".into() }],
        samples: vec![proto::Sample { value: 1.0, timestamp: NOW }],
        ..Default::default()
    };
    let mut raw = v1::WriteRequest { timeseries: vec![good], metadata: vec![] }.encode_to_vec();
    // TimeSeries { 1: __name__="bad", 4: Histogram { 8: varint 1 } }.
    let label = [0x0a, 0x08, 0x5f, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x5f, 0x5f, 0x12, 0x03, b'b', b'a', b'd'];
    let mut ts = vec![0x0a, label.len() as u8];
    ts.extend_from_slice(&label);
    ts.extend_from_slice(&[0x22, 0x02, 0x40, 0x01]);
    raw.push(0x0a);
    raw.push(ts.len() as u8);
    raw.extend_from_slice(&ts);
    assert!(v1::WriteRequest::decode(raw.as_slice()).is_err(), "prost refuses it too");
    let resp = send(&r, V1, &compress(&raw));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.starts_with("cannot decode prometheus.WriteRequest"), "{}", resp.body);
    assert!(db.querier(0, i64::MAX / 2).select(&[Matcher::equal("__name__", "ok")]).expect("select").is_empty());
}

/// The second request of a histogram-only series finds it in the series
/// cache (its labels left unsplit) and appends by its ref.
#[test]
fn known_histogram_series_take_the_cached_path() {
    let (db, r) = receiver();
    for i in 0..4 {
        let t = NOW - 40_000 + i * 10_000;
        let body = encode_v1(&v1::WriteRequest {
            timeseries: vec![
                hist_series_v1("cached_h", vec![simple(t, i + 1)]),
                hist_series_v1("cached_h2", vec![simple(t, 2 * i + 1), simple(t + 1, 2 * i + 2)]),
            ],
            metadata: vec![],
        });
        let resp = send(&r, V1, &body);
        assert_eq!(resp.status, 204, "{}", resp.body);
    }
    assert_eq!(read_back(&db, "cached_h").1.len(), 4);
    assert_eq!(read_back(&db, "cached_h2").1.len(), 8);
    assert_eq!(r.stats().histograms_appended, 12);
}

/// A histogram at the timestamp of a stored float sample is refused as a
/// duplicate (and a float at a histogram's as well); within one request
/// the float, appended first, is what is kept.
#[test]
fn a_histogram_at_a_float_timestamp_is_a_duplicate() {
    let (db, r) = receiver();
    let body = |floats: Vec<proto::Sample>, hists| {
        let mut s = hist_series_v1("both", hists);
        s.samples = floats;
        encode_v1(&v1::WriteRequest { timeseries: vec![s], metadata: vec![] })
    };
    let f = |t| proto::Sample { value: 1.0, timestamp: t };
    assert_eq!(send(&r, V1, &body(vec![f(NOW - 2)], vec![simple(NOW - 1, 1)])).status, 204);
    let resp = send(&r, V1, &body(vec![], vec![simple(NOW - 2, 1)]));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("duplicate: 1"), "{}", resp.body);
    let resp = send(&r, V1, &body(vec![f(NOW - 1)], vec![]));
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.body.contains("duplicate: 1"), "{}", resp.body);
    let (floats, hists) = read_back(&db, "both");
    assert_eq!(floats.iter().map(|x| x.0).collect::<Vec<_>>(), vec![NOW - 2]);
    assert_eq!(hists.iter().map(|h| h.t).collect::<Vec<_>>(), vec![NOW - 1]);
}

/// Both kinds at one new timestamp of a series in one commit: Prometheus
/// keeps the float (committed first) and drops the histogram. Storage keeps the one appended first in the batch and refuses
/// the other with a duplicate-timestamp error, so the receiver (which
/// appends a series' floats before its histograms) counts it as rejected.
#[test]
fn a_float_and_a_histogram_at_one_timestamp_in_one_commit_keep_one() {
    let db = Db::in_memory().expect("db");
    let l = tidemark_storage::Labels::new([("__name__", "both")]).expect("labels");
    let h = |t| from_proto(&simple(t, 1)).expect("histogram").h;
    // The series holds a float and a histogram already.
    let mut app = db.appender();
    let r = app.append(&l, NOW - 2, 1.0).expect("float");
    app.append_histogram_ref(r, NOW - 1, h(NOW - 1)).expect("histogram");
    app.commit().expect("commit");
    // Each kind at the other's timestamp: refused.
    let mut app = db.appender();
    assert!(app.append_histogram_ref(r, NOW - 2, h(NOW - 2)).is_err());
    app.commit().expect("commit");
    let mut app = db.appender();
    assert!(app.append(&l, NOW - 1, 1.0).is_err());
    app.commit().expect("commit");
    let mut app = db.appender();
    let r = app.append(&l, NOW, 1.0).expect("float");
    let res = app.append_histogram_ref(r, NOW, h(NOW));
    app.commit().expect("commit");
    let (floats, hists) = read_back(&db, "both");
    assert!(matches!(res, Err(tidemark_storage::AppendError::DuplicateTimestamp { .. })), "{res:?}");
    let floats: Vec<i64> = floats.iter().map(|f| f.0).collect();
    let hists: Vec<i64> = hists.iter().map(|h| h.t).collect();
    assert_eq!((floats, hists), (vec![NOW - 2, NOW], vec![NOW - 1]));
}
