//! The handler against the data: both answers decoded independently and
//! compared with what storage holds.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tidemark_storage::chunkenc::{prom_xor, FloatHistogramIterator, HistogramIterator, XorIterator};
use tidemark_storage::histogram::{FloatHistogram, Histogram, HistogramValue, Span};
use tidemark_storage::{Db, Labels, MatchOp, SampleIterator, ValueKind};

use super::*;
use crate::proto::read::{ChunkEncoding, LabelMatcher, MatcherType, Query};

/// What a query sees of one series: floats and histograms by time.
#[derive(Debug, Clone, PartialEq)]
enum Point {
    F(i64, u64),
    H(i64, HistogramValue),
}

/// Series (labels as pairs) and their points.
type SeriesPoints = Vec<(Vec<(String, String)>, Vec<Point>)>;

fn same(a: &[Point], b: &[Point]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Point::F(t1, v1), Point::F(t2, v2)) => t1 == t2 && v1 == v2,
            (Point::H(t1, h1), Point::H(t2, h2)) => t1 == t2 && h1.same_data(h2),
            _ => false,
        })
}

/// Storage's own answer: labels (as pairs) → points in `[mint, maxt]`.
fn expected(db: &Db, mint: i64, maxt: i64, ms: &[Matcher]) -> SeriesPoints {
    let mut out = Vec::new();
    for s in db.querier(mint, maxt).select(ms).unwrap() {
        let labels = s.labels().iter().map(|l| (l.name.to_owned(), l.value.to_owned())).collect();
        let mut pts = Vec::new();
        let mut it = s.iter();
        while it.next() {
            match it.kind() {
                ValueKind::Float => pts.push(Point::F(it.at().t, it.at().v.to_bits())),
                _ => {
                    let h = it.at_histogram().unwrap();
                    pts.push(Point::H(h.t, h.h));
                }
            }
        }
        out.push((labels, pts));
    }
    out
}

fn pairs(ls: &[Label]) -> Vec<(String, String)> {
    ls.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

fn matcher(t: MatcherType, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher { r#type: t as i32, name: name.into(), value: value.into() }
}

fn request(queries: Vec<Query>, accepted: &[ResponseType]) -> Vec<u8> {
    let req = ReadRequest { queries, accepted_response_types: accepted.iter().map(|&t| t as i32).collect() };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

fn query(mint: i64, maxt: i64, ms: Vec<LabelMatcher>) -> Query {
    Query { start_timestamp_ms: mint, end_timestamp_ms: maxt, matchers: ms, hints: None }
}

fn hist(i: u64) -> Histogram {
    Histogram {
        schema: 0,
        zero_threshold: 0.001,
        zero_count: i,
        count: 4 * i + 2,
        sum: i as f64 * 1.5,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![i as i64 + 1, i as i64],
        ..Histogram::default()
    }
}

fn fhist(i: u64) -> FloatHistogram {
    FloatHistogram {
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 0.5,
        count: 2.5 + i as f64,
        sum: 10.0 * i as f64,
        positive_spans: vec![Span { offset: 1, length: 1 }],
        positive_buckets: vec![2.0 + i as f64],
        ..FloatHistogram::default()
    }
}

/// Where the head's samples of [`populated`] start.
const HEAD_START: i64 = 7_200_000;

/// A database with float series (one 500 samples long, one with a
/// staleness marker), an integer and a float histogram series, partly in a
/// block (sealed encoding) and partly in the head.
fn populated(dir: &std::path::Path) -> Arc<Db> {
    let db = Db::builder(dir).out_of_order_window(Duration::from_secs(3600)).open().unwrap();
    let long = Labels::new([("__name__", "m"), ("job", "a")]).unwrap();
    let stale = Labels::new([("__name__", "m"), ("job", "b")]).unwrap();
    let h = Labels::new([("__name__", "h"), ("job", "a")]).unwrap();
    let fh = Labels::new([("__name__", "fh"), ("job", "a")]).unwrap();
    let mut app = db.appender();
    for i in 0..300i64 {
        app.append(&long, i * 1000, (i * i) as f64 / 7.0).unwrap();
    }
    for i in 0..10i64 {
        let v = if i == 5 { tidemark_storage::stale_nan() } else { i as f64 };
        app.append(&stale, i * 1000, v).unwrap();
    }
    for i in 0..150u64 {
        app.append_histogram(&h, i as i64 * 1000, HistogramValue::Integer(hist(i))).unwrap();
        app.append_histogram(&fh, i as i64 * 1000, HistogramValue::Float(fhist(i))).unwrap();
    }
    app.commit().unwrap();
    db.flush_head().unwrap();
    let mut app = db.appender();
    // The head starts where the block's 2 h range ends.
    for i in 300..500i64 {
        app.append(&long, HEAD_START + i * 1000, (i * i) as f64 / 7.0).unwrap();
    }
    for i in 150..200u64 {
        app.append_histogram(&h, HEAD_START + i as i64 * 1000, HistogramValue::Integer(hist(i))).unwrap();
    }
    app.commit().unwrap();
    Arc::new(db)
}

/// Reads the frames of a streamed body with a reader of our own (no code
/// shared with the writer): uvarint length, big-endian CRC32-C computed
/// bit by bit, the message.
fn read_frames(mut b: &[u8]) -> Vec<ChunkedReadResponse> {
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let (mut len, mut shift, mut i) = (0u64, 0, 0);
        loop {
            let byte = b[i];
            len |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            i += 1;
            if byte < 0x80 {
                break;
            }
        }
        let crc = u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        let msg = &b[i + 4..i + 4 + len as usize];
        assert_eq!(crc, crc32c_bitwise(msg), "frame checksum");
        out.push(ChunkedReadResponse::decode(msg).unwrap());
        b = &b[i + 4 + len as usize..];
    }
    out
}

/// Decodes a Prometheus chunk into points: XOR through the splice back and
/// our iterator, histogram chunks (Prometheus' encodings) with ours.
fn decode_chunk(c: &crate::proto::read::Chunk) -> Vec<Point> {
    let mut pts = Vec::new();
    match ChunkEncoding::try_from(c.r#type).unwrap() {
        ChunkEncoding::Xor => {
            let ours = prom_xor::from_prometheus(&c.data).unwrap();
            let mut it = XorIterator::new(&ours[..]);
            while it.next() {
                pts.push(Point::F(it.at().t, it.at().v.to_bits()));
            }
            assert!(it.err().is_none());
        }
        ChunkEncoding::Histogram => {
            let mut it = HistogramIterator::new(&c.data[..]);
            while it.next() {
                let h = it.at_histogram().unwrap();
                pts.push(Point::H(h.t, h.h));
            }
        }
        ChunkEncoding::FloatHistogram => {
            let mut it = FloatHistogramIterator::new(&c.data[..]);
            while it.next() {
                let h = it.at_histogram().unwrap();
                pts.push(Point::H(h.t, h.h));
            }
        }
        ChunkEncoding::Unknown => panic!("unknown chunk encoding"),
    }
    let ts: Vec<i64> = pts
        .iter()
        .map(|p| match p {
            Point::F(t, _) | Point::H(t, _) => *t,
        })
        .collect();
    assert_eq!((c.min_time_ms, c.max_time_ms), (ts[0], ts[ts.len() - 1]), "chunk bounds");
    pts
}

fn stream_bytes(answer: ReadAnswer) -> Vec<u8> {
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers, vec![("Content-Type", STREAMED_CONTENT_TYPE)]);
    let ReadBody::Stream(s) = answer.body else { panic!("expected a stream") };
    let mut out = Vec::new();
    for f in s {
        out.extend_from_slice(&f.unwrap());
    }
    out
}

/// Series of a streamed answer for query `index`, frames of one series joined.
fn streamed_series(frames: &[ChunkedReadResponse], index: i64) -> SeriesPoints {
    let mut out: SeriesPoints = Vec::new();
    for f in frames.iter().filter(|f| f.query_index == index) {
        assert_eq!(f.chunked_series.len(), 1, "one series per frame");
        let s = &f.chunked_series[0];
        let labels = pairs(&s.labels);
        let mut pts = Vec::new();
        for c in &s.chunks {
            pts.extend(decode_chunk(c));
        }
        match out.last_mut() {
            Some((l, p)) if *l == labels => p.extend(pts),
            _ => out.push((labels, pts)),
        }
    }
    out
}

fn check_equal(got: &SeriesPoints, want: &SeriesPoints) {
    assert_eq!(got.len(), want.len(), "series count");
    for ((gl, gp), (wl, wp)) in got.iter().zip(want) {
        assert_eq!(gl, wl);
        assert!(same(gp, wp), "{gl:?}: {} points streamed, {} stored", gp.len(), wp.len());
        for w in gp.windows(2) {
            let t = |p: &Point| match p {
                Point::F(t, _) | Point::H(t, _) => *t,
            };
            assert!(t(&w[0]) < t(&w[1]), "time order without overlap");
        }
    }
}

#[test]
fn streamed_chunks_hold_exactly_what_storage_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let reader = Reader::new(db.clone(), ReadOptions::default());
    // Whole range, then a range cutting chunks (block and head) in the middle.
    for (mint, maxt) in
        [(i64::MIN, i64::MAX), (0, 1_000_000), (57_500, 333_000), (149_000, 149_000), (200_000, HEAD_START + 420_500)]
    {
        let body = request(
            vec![query(mint, maxt, vec![matcher(MatcherType::Re, "__name__", ".+")])],
            &[ResponseType::StreamedXorChunks],
        );
        let frames = read_frames(&stream_bytes(reader.handle(&body)));
        let want = expected(&db, mint, maxt, &[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]);
        assert!(!want.is_empty());
        check_equal(&streamed_series(&frames, 0), &want);
    }
    let st = reader.stats();
    assert_eq!(st.streamed_requests, 5);
    assert_eq!(st.in_flight, 0, "the streams gave their slots back");
    assert!(st.chunks_sent > 0 && st.samples_sent > 0 && st.bytes_sent > 0);
}

#[test]
fn head_xor_chunks_go_out_spliced_and_block_chunks_re_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let reader = Reader::new(db.clone(), ReadOptions::default());
    let body = request(
        vec![query(0, i64::MAX, vec![matcher(MatcherType::Eq, "job", "a"), matcher(MatcherType::Eq, "__name__", "m")])],
        &[ResponseType::StreamedXorChunks],
    );
    let frames = read_frames(&stream_bytes(reader.handle(&body)));
    let chunks: Vec<_> = frames.iter().flat_map(|f| f.chunked_series[0].chunks.clone()).collect();
    assert!(chunks.iter().all(|c| c.r#type == ChunkEncoding::Xor as i32));
    assert!(chunks.iter().all(|c| u16::from_be_bytes([c.data[0], c.data[1]]) as usize <= chunks::SAMPLES_PER_CHUNK));
    // The head's chunks are its own bytes, translated.
    let series =
        db.querier(0, i64::MAX).select(&[Matcher::equal("job", "a"), Matcher::equal("__name__", "m")]).unwrap();
    let head_xor: Vec<Vec<u8>> = series[0]
        .chunks()
        .iter()
        .filter(|c| c.encoding == tidemark_storage::chunkenc::Encoding::Xor)
        .map(|c| prom_xor::to_prometheus(c.bytes.as_ref()).unwrap())
        .collect();
    assert!(!head_xor.is_empty());
    for h in &head_xor {
        assert!(chunks.iter().any(|c| &c.data == h), "head chunk sent as stored");
    }
    assert!(
        series[0].chunks().iter().any(|c| c.encoding == tidemark_storage::chunkenc::Encoding::Sealed),
        "the test has block chunks"
    );
}

#[test]
fn overlapping_out_of_order_chunks_are_merged() {
    let db = Arc::new(Db::builder_in_memory().out_of_order_window(Duration::from_secs(3600)).open().unwrap());
    let l = Labels::new([("__name__", "ooo")]).unwrap();
    let mut app = db.appender();
    for i in (0..200).step_by(2) {
        app.append(&l, i * 1000, i as f64).unwrap();
    }
    app.commit().unwrap();
    let mut app = db.appender();
    for i in (1..200).step_by(2) {
        app.append(&l, i * 1000, -(i as f64)).unwrap();
    }
    app.commit().unwrap();
    let s = &db.querier(0, i64::MAX).select(&[Matcher::equal("__name__", "ooo")]).unwrap()[0];
    assert!(s.chunks().windows(2).any(|w| w[1].mint <= w[0].maxt), "the test has overlapping chunks");
    let reader = Reader::new(db.clone(), ReadOptions::default());
    let body = request(
        vec![query(0, i64::MAX, vec![matcher(MatcherType::Eq, "__name__", "ooo")])],
        &[ResponseType::StreamedXorChunks],
    );
    let frames = read_frames(&stream_bytes(reader.handle(&body)));
    let want = expected(&db, 0, i64::MAX, &[Matcher::equal("__name__", "ooo")]);
    assert_eq!(want[0].1.len(), 200);
    check_equal(&streamed_series(&frames, 0), &want);
}

#[test]
fn a_series_over_the_frame_size_is_split_and_queries_keep_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let reader = Reader::new(db.clone(), ReadOptions { max_bytes_in_frame: 300, ..ReadOptions::default() });
    let body = request(
        vec![
            query(0, i64::MAX, vec![matcher(MatcherType::Eq, "__name__", "m")]),
            query(0, i64::MAX, vec![matcher(MatcherType::Eq, "__name__", "nothing")]),
            query(0, 100_000, vec![matcher(MatcherType::Eq, "__name__", "h")]),
        ],
        &[ResponseType::StreamedXorChunks, ResponseType::Samples],
    );
    let frames = read_frames(&stream_bytes(reader.handle(&body)));
    let long: Vec<_> =
        frames.iter().filter(|f| f.query_index == 0 && f.chunked_series[0].labels[1].value == "a").collect();
    assert!(long.len() > 2, "500 samples over 300-byte frames: {} frames", long.len());
    assert!(frames.iter().all(|f| f.query_index != 1));
    let idx: Vec<i64> = frames.iter().map(|f| f.query_index).collect();
    assert!(idx.windows(2).all(|w| w[0] <= w[1]), "queries in order");
    check_equal(&streamed_series(&frames, 0), &expected(&db, 0, i64::MAX, &[Matcher::equal("__name__", "m")]));
    check_equal(&streamed_series(&frames, 2), &expected(&db, 0, 100_000, &[Matcher::equal("__name__", "h")]));
}

#[test]
fn samples_answer_holds_floats_histograms_and_external_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let ext = vec![("cluster".to_owned(), "eu".to_owned()), ("job".to_owned(), "ignored".to_owned())];
    let reader = Reader::new(db.clone(), ReadOptions { external_labels: ext, ..ReadOptions::default() });
    // `cluster="eu"` is the server's own external label: it matches.
    let body = request(
        vec![query(
            10_000,
            400_000,
            vec![matcher(MatcherType::Re, "__name__", "m|h|fh"), matcher(MatcherType::Eq, "cluster", "eu")],
        )],
        &[],
    );
    let answer = reader.handle(&body);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers, vec![("Content-Type", SAMPLES_CONTENT_TYPE), ("Content-Encoding", "snappy")]);
    let ReadBody::Bytes(b) = answer.body else { panic!() };
    let resp = ReadResponse::decode(snap::raw::Decoder::new().decompress_vec(&b).unwrap().as_slice()).unwrap();
    assert_eq!(resp.results.len(), 1);
    let want = expected(&db, 10_000, 400_000, &[Matcher::new(MatchOp::Regex, "__name__", "m|h|fh").unwrap()]);
    let got = &resp.results[0].timeseries;
    assert_eq!(got.len(), want.len());
    for (ts, (wl, wp)) in got.iter().zip(&want) {
        let mut wl = wl.clone();
        wl.push(("cluster".into(), "eu".into()));
        wl.sort();
        assert_eq!(pairs(&ts.labels), wl, "external label added, the series' own job kept");
        let mut pts: Vec<Point> = ts.samples.iter().map(|s| Point::F(s.timestamp, s.value.to_bits())).collect();
        for h in &ts.histograms {
            let h = crate::histogram::from_proto(h).unwrap();
            pts.push(Point::H(h.t, h.h));
        }
        assert!(same(&pts, wp), "{wl:?}");
    }
    // The staleness marker survives bit for bit.
    let body = request(vec![query(0, 100_000, vec![matcher(MatcherType::Eq, "job", "b")])], &[ResponseType::Samples]);
    let ReadBody::Bytes(b) = reader.handle(&body).body else { panic!() };
    let resp = ReadResponse::decode(snap::raw::Decoder::new().decompress_vec(&b).unwrap().as_slice()).unwrap();
    assert!(tidemark_storage::is_stale_nan(resp.results[0].timeseries[0].samples[5].value));
    // Any other value of an external label selects nothing.
    let body = request(vec![query(0, i64::MAX, vec![matcher(MatcherType::Eq, "cluster", "us")])], &[]);
    let ReadBody::Bytes(b) = reader.handle(&body).body else { panic!() };
    let resp = ReadResponse::decode(snap::raw::Decoder::new().decompress_vec(&b).unwrap().as_slice()).unwrap();
    assert!(resp.results[0].timeseries.is_empty());
}

#[test]
fn negotiation_takes_the_first_supported_type() {
    assert_eq!(negotiate(&[]).unwrap(), ResponseType::Samples);
    assert_eq!(negotiate(&[0, 1]).unwrap(), ResponseType::Samples);
    assert_eq!(negotiate(&[1, 0]).unwrap(), ResponseType::StreamedXorChunks);
    assert_eq!(negotiate(&[9, 1]).unwrap(), ResponseType::StreamedXorChunks);
    let db = Arc::new(Db::in_memory().unwrap());
    let reader = Reader::new(db, ReadOptions::default());
    let req = ReadRequest { queries: vec![], accepted_response_types: vec![4, 9] };
    let answer = reader.handle(&snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap());
    assert_eq!(answer.status, 400);
    let ReadBody::Bytes(b) = answer.body else { panic!() };
    assert!(String::from_utf8(b)
        .unwrap()
        .starts_with("server does not support any of the requested response types: [4, 9]"));
}

fn error_text(a: ReadAnswer) -> (u16, String) {
    let ReadBody::Bytes(b) = a.body else { panic!("an error has a text body") };
    (a.status, String::from_utf8(b).unwrap())
}

#[test]
fn limits_and_bad_requests_are_answered_with_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let reader = Reader::new(
        db.clone(),
        ReadOptions { sample_limit: 499, max_body_bytes: 1000, max_decompressed_bytes: 2000, ..ReadOptions::default() },
    );
    let m = || vec![matcher(MatcherType::Eq, "__name__", "m")];
    // 500 samples in one query of a SAMPLES answer: one too many.
    assert_eq!(
        error_text(reader.handle(&request(vec![query(0, i64::MAX, m())], &[]))),
        (400, "exceeded sample limit (499)\n".into())
    );
    // The limit is per query, as Prometheus', and streams are not limited.
    assert_eq!(reader.handle(&request(vec![query(0, 498_000, m()), query(0, 498_000, m())], &[])).status, 200);
    assert_eq!(reader.handle(&request(vec![query(0, i64::MAX, m())], &[ResponseType::StreamedXorChunks])).status, 200);
    let (s, t) = error_text(reader.handle(&[0u8; 1001]));
    assert_eq!((s, t.as_str()), (413, "request body of 1001 bytes is larger than the limit of 1000 bytes\n"));
    let big = snap::raw::Encoder::new().compress_vec(&vec![0u8; 2001]).unwrap();
    assert_eq!(error_text(reader.handle(&big)), (413, "snappy: decoded length 2001 exceeds limit 2000\n".into()));
    assert_eq!(error_text(reader.handle(b"\x05\xff\xff")).0, 400);
    let not_proto = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff").unwrap();
    assert!(error_text(reader.handle(&not_proto)).1.starts_with("cannot decode the read request"));
    assert_eq!(
        error_text(reader.handle(&request(vec![query(0, 1, m()), query(0, 1, vec![])], &[]))),
        (400, "query 1: no matchers\n".into())
    );
    assert_eq!(reader.stats().failed_requests, 6);
}

#[test]
fn concurrent_reads_over_the_limit_wait_then_get_503() {
    let db = Arc::new(Db::in_memory().unwrap());
    let mut app = db.appender();
    app.append(&Labels::new([("__name__", "x")]).unwrap(), 1, 1.0).unwrap();
    app.commit().unwrap();
    let reader =
        Reader::new(db, ReadOptions { max_concurrent: 1, queue_timeout: Duration::ZERO, ..ReadOptions::default() });
    let body = request(
        vec![query(0, 10, vec![matcher(MatcherType::Eq, "__name__", "x")])],
        &[ResponseType::StreamedXorChunks],
    );
    // A stream holds its slot until it is consumed or dropped.
    let held = reader.handle(&body);
    assert_eq!(held.status, 200);
    assert_eq!(reader.stats().in_flight, 1);
    let (status, text) = error_text(reader.handle(&body));
    assert_eq!(status, 503);
    assert!(text.starts_with("too many concurrent remote reads: 1 running"), "{text}");
    drop(held);
    assert_eq!(reader.handle(&body).status, 200);
}

#[test]
fn hints_are_accepted_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let reader = Reader::new(db, ReadOptions::default());
    let mut q = query(0, i64::MAX, vec![matcher(MatcherType::Eq, "__name__", "m")]);
    let plain = reader.handle(&request(vec![q.clone()], &[]));
    q.hints = Some(crate::proto::read::ReadHints {
        step_ms: 60_000,
        func: "rate".into(),
        start_ms: 1,
        end_ms: 2,
        grouping: vec!["job".into()],
        by: true,
        range_ms: 300_000,
    });
    let hinted = reader.handle(&request(vec![q], &[]));
    let (ReadBody::Bytes(a), ReadBody::Bytes(b)) = (plain.body, hinted.body) else { panic!() };
    assert_eq!(a, b);
}

#[test]
fn a_stream_reads_storage_only_as_its_frames_are_taken() {
    let db = Arc::new(Db::in_memory().unwrap());
    let mut app = db.appender();
    for i in 0..50 {
        let l = Labels::new([("__name__", "many"), ("i", &i.to_string())]).unwrap();
        for k in 0..10 {
            app.append(&l, k * 1000, k as f64).unwrap();
        }
    }
    app.commit().unwrap();
    let reader = Reader::new(db, ReadOptions::default());
    let body = request(
        vec![query(0, i64::MAX, vec![matcher(MatcherType::Eq, "__name__", "many")])],
        &[ResponseType::StreamedXorChunks],
    );
    let answer = reader.handle(&body);
    // Only the first series' frame is built before the answer starts.
    assert_eq!(reader.stats().samples_sent, 10);
    let ReadBody::Stream(mut frames) = answer.body else { panic!() };
    frames.next().unwrap().unwrap();
    frames.next().unwrap().unwrap();
    assert_eq!(reader.stats().samples_sent, 20, "one more series per frame taken");
    assert_eq!(frames.count(), 48);
    assert_eq!(reader.stats().samples_sent, 500);
}
