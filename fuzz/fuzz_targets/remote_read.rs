//! Arbitrary bytes as a remote read body must never panic the read
//! handler, and every answer must be 200, 400 or 413 (an in-memory store
//! has no failing reads; the concurrency limit is off). The first byte
//! picks whether the rest is sent as is (exercising snappy and the limits)
//! or snappy-compressed first (exercising the protobuf decoding, the
//! matchers, negotiation and both answers). A 200 must be a well-formed
//! answer of the negotiated type: a `ReadResponse` with one result per
//! query, or frames with correct lengths and CRC32-C, each one
//! `ChunkedReadResponse` with a query index in range and decodable chunks.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tidemark_remote::proto::read::{ChunkEncoding, ChunkedReadResponse, ReadRequest, ReadResponse};
use tidemark_remote::codec;
use tidemark_remote::read::{ReadBody, ReadOptions, Reader};
use tidemark_remote::receive::decompress;
use tidemark_storage::chunkenc::{prom_xor, FloatHistogramIterator, HistogramIterator, XorIterator};
use tidemark_storage::histogram::{FloatHistogram, HistogramValue, Span};
use tidemark_storage::{Db, Labels, SampleIterator};

/// One reader over a small fixed data set: floats (one series long enough
/// for several chunks and frames) and float histograms.
fn reader() -> &'static Reader {
    static READER: OnceLock<Reader> = OnceLock::new();
    READER.get_or_init(|| {
        let db = Db::builder_in_memory().maintenance_interval(None).open().expect("in-memory db");
        let mut app = db.appender();
        for (i, job) in ["api", "db", "web"].iter().enumerate() {
            let l = Labels::new([("__name__", "up"), ("job", job)]).expect("labels");
            for k in 0..(100 * (i as i64 + 1)) {
                app.append(&l, k * 15_000, (k % 7) as f64).expect("append");
            }
        }
        let h = Labels::new([("__name__", "lat"), ("job", "api")]).expect("labels");
        for k in 0..50i64 {
            let fh = FloatHistogram {
                count: 2.0 + k as f64,
                sum: k as f64,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![2.0 + k as f64],
                ..FloatHistogram::default()
            };
            app.append_histogram(&h, k * 15_000, HistogramValue::Float(fh)).expect("append");
        }
        app.commit().expect("commit");
        let opts = ReadOptions {
            sample_limit: 250,
            max_concurrent: 0,
            max_bytes_in_frame: 200,
            max_decompressed_bytes: 1 << 20,
            external_labels: vec![("cluster".into(), "eu".into())],
            ..ReadOptions::default()
        };
        Reader::new(Arc::new(db), opts)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else { return };
    let body = if mode & 1 == 0 { codec::compress(rest) } else { rest.to_vec() };
    let answer = reader().handle(&body);
    assert!(matches!(answer.status, 200 | 400 | 413), "unexpected status {}", answer.status);
    if answer.status != 200 {
        return;
    }
    let req = decompress(&body, 1 << 20)
        .ok()
        .and_then(|raw| ReadRequest::decode(raw.as_slice()).ok())
        .expect("a 200 answers a decodable request");
    match answer.body {
        ReadBody::Bytes(b) => {
            let raw = decompress(&b, usize::MAX).expect("snappy answer");
            let resp = ReadResponse::decode(raw.as_slice()).expect("ReadResponse");
            assert_eq!(resp.results.len(), req.queries.len());
        }
        ReadBody::Stream(frames) => {
            for f in *frames {
                let f = f.expect("an in-memory read does not fail");
                check_frame(&f, req.queries.len());
            }
        }
    }
});

fn check_frame(f: &[u8], queries: usize) {
    let (mut len, mut shift, mut i) = (0usize, 0, 0);
    while f[i] >= 0x80 {
        len |= usize::from(f[i] & 0x7f) << shift;
        shift += 7;
        i += 1;
    }
    len |= usize::from(f[i]) << shift;
    i += 1;
    assert_eq!(f.len(), i + 4 + len, "one frame per item");
    let msg = &f[i + 4..];
    assert_eq!(u32::from_be_bytes(f[i..i + 4].try_into().expect("4 bytes")), crc32c(msg));
    let resp = ChunkedReadResponse::decode(msg).expect("ChunkedReadResponse");
    assert!((resp.query_index as usize) < queries);
    for s in &resp.chunked_series {
        for c in &s.chunks {
            let n = match ChunkEncoding::try_from(c.r#type).expect("known encoding") {
                ChunkEncoding::Xor => {
                    let ours = prom_xor::from_prometheus(&c.data).expect("XOR chunk");
                    count(XorIterator::new(&ours[..]))
                }
                ChunkEncoding::Histogram => count(HistogramIterator::new(&c.data[..])),
                ChunkEncoding::FloatHistogram => count(FloatHistogramIterator::new(&c.data[..])),
                ChunkEncoding::Unknown => panic!("unknown encoding"),
            };
            assert!(n > 0, "no empty chunks");
        }
    }
}

fn count(mut it: impl SampleIterator) -> usize {
    let mut n = 0;
    while it.next() {
        n += 1;
    }
    assert!(it.err().is_none());
    n
}

/// CRC32-C, bit by bit (independent of the handler's table-driven one).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}
