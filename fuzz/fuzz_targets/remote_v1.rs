//! Arbitrary bytes as a remote write 1.0 body must never panic the
//! receiver, and every answer must be a 2xx or 4xx (an in-memory store has
//! no retryable failure). The first byte picks whether the rest is sent
//! as is (exercising snappy) or snappy-compressed first (exercising the
//! protobuf decoding, validation and ingestion behind it).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
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
    let receiver = receiver();
    let before = receiver.stats();
    let resp = receiver.handle_at(Some(CONTENT_TYPE), Some("snappy"), &body, NOW);
    assert!(matches!(resp.status, 204 | 400 | 413), "unexpected status {}: {}", resp.status, resp.body);
    assert_eq!(resp.status == 204, resp.body.is_empty());
    let after = receiver.stats();
    assert_eq!(after.requests_v1 + after.requests_v2, before.requests_v1 + before.requests_v2 + 1);
});
