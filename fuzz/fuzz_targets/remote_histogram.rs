//! Arbitrary bytes as native histogram messages, inside otherwise valid
//! remote write bodies (1.0 `TimeSeries.histograms`, 2.0 `histograms`), so
//! that every input reaches the receiver's histogram path: the wire
//! decoder's structure check, prost, `histogram::from_proto`, storage's
//! validation and append. The first byte picks the version; the rest is a
//! list of messages, each a length byte and (up to) that many bytes.
//!
//! Checks: no panic; the answer is 204 or 400; a body holding a message
//! prost refuses is refused whole (nothing stored); otherwise every
//! message is either stored or counted as rejected, and every histogram
//! the series holds afterwards is one of the messages as prost reads it
//! (every field but the counter-reset hint, which storage keeps per chunk,
//! empty buckets aside).
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tidemark_remote::histogram::{from_proto, to_proto};
use tidemark_remote::proto::Histogram;
use tidemark_remote::{codec, MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::histogram::{HistogramSample, HistogramValue};
use tidemark_storage::{Db, Matcher, SampleIterator};

const V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const NOW: i64 = 1_700_000_000_000;

fn receiver() -> &'static (Arc<Db>, Receiver) {
    static RECEIVER: OnceLock<(Arc<Db>, Receiver)> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let db = Arc::new(Db::builder_in_memory().maintenance_interval(None).open().expect("in-memory db"));
        let opts = ReceiverOptions { max_decompressed_bytes: 1 << 20, ..ReceiverOptions::default() };
        let r = Receiver::new(db.clone(), Arc::new(MetadataStore::new()), opts);
        (db, r)
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The request body: one series `{__name__=name}` holding `msgs`.
fn request(v2: bool, name: &str, msgs: &[&[u8]]) -> Vec<u8> {
    let mut ts = Vec::new();
    let mut out = Vec::new();
    if v2 {
        put_bytes(&mut ts, 1, &[1, 2]); // packed labels_refs
        for m in msgs {
            put_bytes(&mut ts, 3, m);
        }
        for s in ["", "__name__", name] {
            put_bytes(&mut out, 4, s.as_bytes());
        }
        put_bytes(&mut out, 5, &ts);
    } else {
        let mut label = Vec::new();
        put_bytes(&mut label, 1, b"__name__");
        put_bytes(&mut label, 2, name.as_bytes());
        put_bytes(&mut ts, 1, &label);
        for m in msgs {
            put_bytes(&mut ts, 4, m);
        }
        put_bytes(&mut out, 1, &ts);
    }
    out
}

/// A histogram as data: empty buckets dropped, hint cleared, sum by bits.
fn normal(s: &HistogramSample) -> Vec<u8> {
    let mut s = s.clone();
    match &mut s.h {
        HistogramValue::Integer(h) => drop(h.compact(0)),
        HistogramValue::Float(h) => drop(h.compact(0)),
    }
    let mut p = to_proto(&s);
    p.reset_hint = 0;
    let mut b = p.encode_to_vec();
    b.extend_from_slice(&p.sum.to_bits().to_le_bytes());
    b
}

fuzz_target!(|bytes: &[u8]| {
    static SERIES: AtomicU64 = AtomicU64::new(0);
    let Some((&mode, mut rest)) = bytes.split_first() else { return };
    let mut msgs: Vec<&[u8]> = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        msgs.push(&tail[..n]);
        rest = &tail[n..];
    }
    let v2 = mode & 1 == 1;
    // A new series per input: what it holds afterwards is this input's.
    let name = format!("fuzz_h{}", SERIES.fetch_add(1, Ordering::Relaxed));
    let body = codec::compress(&request(v2, &name, &msgs));
    let (db, receiver) = receiver();
    let before = receiver.stats();
    let resp = receiver.handle_at(Some(if v2 { V2 } else { V1 }), Some("snappy"), &body, NOW);
    assert!(matches!(resp.status, 204 | 400), "unexpected status {}: {}", resp.status, resp.body);
    let after = receiver.stats();
    let appended = after.histograms_appended - before.histograms_appended;
    let rejected: u64 = after.histograms_rejected.iter().sum::<u64>() - before.histograms_rejected.iter().sum::<u64>();

    let decoded: Option<Vec<Histogram>> = msgs.iter().map(|m| Histogram::decode(*m).ok()).collect();
    let Some(decoded) = decoded else {
        // prost refuses a message: so must the receiver, for the whole body.
        assert_eq!(resp.status, 400);
        assert!(resp.body.starts_with("cannot decode"), "{}", resp.body);
        assert_eq!((appended, rejected), (0, 0));
        return;
    };
    assert_eq!(appended + rejected, msgs.len() as u64, "every histogram stored or rejected: {}", resp.body);
    if v2 {
        assert_eq!(resp.header("X-Prometheus-Remote-Write-Histograms-Written"), Some(appended.to_string().as_str()));
    }
    let readable: Vec<Vec<u8>> = decoded.iter().filter_map(|p| from_proto(p).ok()).map(|s| normal(&s)).collect();
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let series = q.select(&[Matcher::equal("__name__", name.as_str())]).expect("select");
    let mut stored = Vec::new();
    for s in &series {
        let (mut floats, mut hists) = (Vec::new(), Vec::new());
        s.iter().drain_mixed_into(&mut floats, &mut hists);
        assert!(floats.is_empty());
        stored.extend(hists);
    }
    assert!(stored.len() as u64 <= appended, "{} stored, {appended} appended", stored.len());
    for h in &stored {
        // A staleness marker reads back as the marker alone (its kind and
        // other fields are not kept).
        let marker = h.h.is_stale()
            && decoded.iter().any(|p| p.sum.to_bits() == tidemark_storage::STALE_NAN_BITS && from_proto(p).is_ok());
        assert!(marker || readable.contains(&normal(h)), "stored {h:?} is none of the messages sent");
    }
});
