//! Arbitrary bytes as a remote write 1.0 body must never panic the
//! receiver, and every answer must be a 2xx or 4xx (an in-memory store has
//! no retryable failure). The first byte picks whether the rest is sent
//! as is (exercising snappy) or snappy-compressed first (exercising the
//! protobuf decoding, validation and ingestion behind it). Whatever the
//! receiver's zero-copy 1.0 decoder accepts, prost must accept too and
//! read the same way.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tidemark_remote::proto::v1;
use tidemark_remote::receive::wire::{decode_histogram, decode_v1, decode_v1_exemplar};
use tidemark_remote::{codec, MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::Db;

const CONTENT_TYPE: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
const NOW: i64 = 1_700_000_000_000;

/// One receiver for the whole run: opening a database per input would
/// dominate the time. Earlier inputs only change which samples count as
/// duplicates or out of order, never whether the receiver may panic.
fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let db = Db::builder_in_memory().maintenance_interval(None).open().expect("in-memory db");
        let opts = ReceiverOptions { max_decompressed_bytes: 1 << 20, ..ReceiverOptions::default() };
        Receiver::new(Arc::new(db), Arc::new(MetadataStore::new()), opts)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else { return };
    let body = if mode & 1 == 0 { codec::compress(rest) } else { rest.to_vec() };
    if mode & 1 == 0 {
        check_against_prost(rest);
    }
    let receiver = receiver();
    let before = receiver.stats();
    let resp = receiver.handle_at(Some(CONTENT_TYPE), Some("snappy"), &body, NOW);
    assert!(matches!(resp.status, 204 | 400 | 413), "unexpected status {}: {}", resp.status, resp.body);
    assert_eq!(resp.status == 204, resp.body.is_empty());
    let after = receiver.stats();
    assert_eq!(after.requests_v1 + after.requests_v2, before.requests_v1 + before.requests_v2 + 1);
});

fn check_against_prost(raw: &[u8]) {
    let Ok(ours) = decode_v1(raw) else { return };
    let theirs = v1::WriteRequest::decode(raw).expect("prost accepts what the zero-copy decoder accepts");
    assert_eq!(ours.series.len(), theirs.timeseries.len());
    for (s, t) in ours.series.iter().zip(&theirs.timeseries) {
        let labels = &ours.labels[s.labels.0 as usize..s.labels.1 as usize];
        assert!(labels.iter().map(|&(n, v)| (n, v)).eq(t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))));
        let samples = &ours.samples[s.samples.0 as usize..s.samples.1 as usize];
        assert!(samples
            .iter()
            .map(|x| (x.timestamp, x.value.to_bits()))
            .eq(t.samples.iter().map(|x| (x.timestamp, x.value.to_bits()))));
        // Exemplar messages are kept as bytes: each decodes as prost read it
        // (or is refused alone, counted, when malformed).
        let exemplars = &ours.exemplars[s.exemplars.0 as usize..s.exemplars.1 as usize];
        assert_eq!(exemplars.len(), t.exemplars.len());
        for (b, e) in exemplars.iter().zip(&t.exemplars) {
            if let Ok(mine) = decode_v1_exemplar(b) {
                assert!(mine.labels.iter().map(|&(n, v)| (n, v)).eq(e.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))));
                assert_eq!((mine.value.to_bits(), mine.timestamp), (e.value.to_bits(), e.timestamp));
            }
        }
        // Histogram messages are kept as bytes: each reads as prost read it.
        let hists = &ours.histograms[s.histograms.0 as usize..s.histograms.1 as usize];
        assert_eq!(hists.len(), t.histograms.len());
        for (b, h) in hists.iter().zip(&t.histograms) {
            let mine = decode_histogram(b).expect("prost reads what the decoder kept");
            assert_eq!(mine.encode_to_vec(), h.encode_to_vec());
        }
    }
    assert_eq!(ours.metadata.len(), theirs.metadata.len());
    for (m, t) in ours.metadata.iter().zip(&theirs.metadata) {
        assert_eq!(
            (m.kind, m.family, m.help, m.unit),
            (t.r#type, t.metric_family_name.as_str(), t.help.as_str(), t.unit.as_str())
        );
    }
}
