//! Arbitrary bytes as a WAL segment: replay and open must never panic, open
//! must repair the log so that a new record replays right after whatever
//! replay returned before. The first byte's low bit says whether a segment
//! header is prepended to the rest (real segments, the seeds, carry their
//! own).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_storage::wal::{Record, RefSeries, SyncPolicy, Wal, WalOptions};
use tidemark_storage::Labels;

fuzz_target!(|input: &[u8]| {
    let Some((&flags, bytes)) = input.split_first() else { return };
    let with_header = flags & 1 == 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = if with_header { b"TMWL\x01\x00\x00\x00".to_vec() } else { Vec::new() };
    content.extend_from_slice(bytes);
    std::fs::write(dir.path().join("00000001"), &content).expect("write segment");

    let mut before = Vec::new();
    let Ok(_) = Wal::replay(dir.path(), |r| before.push(r)) else { return };
    let opts = WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() };
    let wal = Wal::open(dir.path(), opts).expect("open repairs any segment bytes");
    let marker = Record::Series(vec![RefSeries {
        series_ref: 1,
        labels: Labels::new([("__name__", "fuzz")]).expect("valid labels"),
    }]);
    wal.log(std::slice::from_ref(&marker)).expect("log after repair");
    drop(wal);

    let mut after = Vec::new();
    let stats = Wal::replay(dir.path(), |r| after.push(r)).expect("replay after repair");
    assert!(stats.stopped_at.is_none(), "repaired log is clean: {stats:?}");
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after[before.len()], marker);
});
