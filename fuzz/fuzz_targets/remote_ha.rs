//! Arbitrary remote write bodies to a receiver with HA deduplication on:
//! the tracker reads the first series' labels of bodies the receiver has
//! not checked yet (1.0 labels still unsplit, 2.0 references unresolved),
//! so it must neither panic nor let a malformed body through. The first
//! byte picks 1.0 or 2.0 (bit 0) and how far the clock moves before the
//! request (bits 1–7, in seconds: across the 2 s failover timeout or not);
//! the rest is the uncompressed body.
//!
//! Checks: no panic; status 202, 204, 400 or 413; a 202 stores nothing
//! and counts the request's samples as dropped (`not_elected`), and only
//! a 202 does; the tracker never holds more clusters than its limit, and
//! every elected replica is a non-empty value.
#![no_main]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tidemark_remote::receive::{HaDropReason, HaOptions};
use tidemark_remote::{codec, MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::Db;

const V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const MAX_CLUSTERS: usize = 4;

/// One receiver for the whole run (see `remote_v1`); the clock moves on
/// from input to input.
fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let db = Db::builder_in_memory().maintenance_interval(None).open().expect("in-memory db");
        let ha = HaOptions { failover_timeout: Duration::from_secs(2), max_clusters: MAX_CLUSTERS, ..HaOptions::default() };
        let opts = ReceiverOptions { max_decompressed_bytes: 1 << 20, max_future: None, ha: Some(ha), ..ReceiverOptions::default() };
        Receiver::new(Arc::new(db), Arc::new(MetadataStore::new()), opts)
    })
}

static NOW: AtomicI64 = AtomicI64::new(1_700_000_000_000);

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else { return };
    let content_type = if mode & 1 == 0 { V1 } else { V2 };
    let now = NOW.fetch_add(i64::from(mode >> 1) * 1_000, Ordering::Relaxed);
    let receiver = receiver();
    let before = receiver.stats();
    let resp = receiver.handle_at(Some(content_type), Some("snappy"), &codec::compress(rest), now);
    assert!(matches!(resp.status, 202 | 204 | 400 | 413), "unexpected status {}: {}", resp.status, resp.body);
    let after = receiver.stats();
    let dropped = after.ha_dropped(HaDropReason::NotElected) - before.ha_dropped(HaDropReason::NotElected);
    if resp.status == 202 {
        assert_eq!(
            (after.samples_appended, after.histograms_appended),
            (before.samples_appended, before.histograms_appended),
            "a dropped request stored samples"
        );
    } else {
        assert_eq!(dropped, 0, "samples counted as dropped but answered {}", resp.status);
    }
    let elections = receiver.ha().expect("HA on").elections();
    assert!(elections.len() <= MAX_CLUSTERS);
    assert!(elections.iter().all(|e| !e.cluster.is_empty() && !e.replica.is_empty()));
});
