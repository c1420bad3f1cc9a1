//! WAL record bodies. The first byte picks the mode:
//!
//! * even: the rest is one record body, put in a frame with a correct
//!   CRC32-C (so the decoders of every record type, compressed or not, are
//!   reached, which random frames almost never are): replay never panics,
//!   and whatever it decoded, logged again (in the current types) replays
//!   identically;
//! * odd: the rest is read as samples (24 bytes each: ref, time, value
//!   bits; any NaN payload), logged in records of up to `rest[0] + 1`
//!   samples, then replayed: the round trip is bit-exact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_fuzz::crc32c;
use tidemark_storage::wal::{Record, RefSample, SyncPolicy, Wal, WalOptions};

fn opts() -> WalOptions {
    WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() }
}

fn replay(dir: &std::path::Path) -> Vec<Record> {
    let mut got = Vec::new();
    Wal::replay(dir, |r| got.push(r)).expect("replay reads any bytes");
    got
}

fn round_trip(records: &[Record]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), opts()).expect("open");
    wal.log(records).expect("log");
    drop(wal);
    assert_eq!(replay(dir.path()), records);
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    if mode & 1 == 0 {
        if rest.is_empty() {
            return;
        }
        let len = (rest.len() as u32).to_le_bytes();
        let mut checked = len.to_vec();
        checked.extend_from_slice(rest);
        let mut segment = b"TMWL\x01\x00\x00\x00".to_vec();
        segment.extend_from_slice(&len);
        segment.extend_from_slice(&crc32c(&checked).to_le_bytes());
        segment.extend_from_slice(rest);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("00000001"), &segment).expect("write segment");
        let got = replay(dir.path());
        if !got.is_empty() {
            round_trip(&got);
        }
    } else {
        let Some((&per, rest)) = rest.split_first() else { return };
        let samples: Vec<RefSample> = rest
            .chunks_exact(24)
            .map(|c| {
                let word = |i: usize| u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                RefSample { series_ref: word(0), t: word(1) as i64, v: f64::from_bits(word(2)) }
            })
            .collect();
        let records: Vec<Record> = samples.chunks(usize::from(per) + 1).map(|c| Record::Samples(c.to_vec())).collect();
        if !records.is_empty() {
            round_trip(&records);
        }
    }
});
