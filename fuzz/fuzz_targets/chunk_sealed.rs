//! Decoding arbitrary bytes as a sealed chunk must never panic (with or
//! without a shared timestamp column), and any strictly increasing sequence
//! of samples must round-trip bit-exactly, with its own timestamps and with
//! a shared column. The input is both: the whole of it is decoded as a
//! chunk (so real chunks make good seeds), and the same bytes, read with
//! `arbitrary`, give the samples and zstd level to encode. The bytes are
//! also decoded as a block's chunk group (every member as a sealed chunk),
//! and the encoded chunks must come back out of a group of them. The rows
//! are encoded once more as two-decimal values (decimal schemes, byte planes).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_storage::block::group;
use tidemark_storage::chunkenc::sealed::{self, EncodeOptions};
use tidemark_storage::Sample;

fuzz_target!(|bytes: &[u8]| {
    let (level, rows) = <(u8, Vec<(i64, u64)>)>::arbitrary_take_rest(Unstructured::new(bytes)).unwrap_or_default();
    let mut out = Vec::new();
    let _ = sealed::decode(bytes, &mut out);
    let shared: Vec<i64> = (0..64).map(|i| i * 5000).collect();
    let _ = sealed::decode_with(bytes, Some(&shared), &mut Vec::new());
    let _ = sealed::inspect(bytes);
    if let Ok(g) = group::decode_group(bytes) {
        assert!(!g.is_empty() && g.len() <= group::MAX_MEMBERS);
        for k in 0..g.len() {
            let _ = sealed::decode(g.member(k).expect("member in range"), &mut Vec::new());
        }
    }

    // Sort and dedup timestamps: the encoder requires strictly increasing t.
    let mut rows: Vec<(i64, u64)> = rows.into_iter().take(2000).collect();
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    let samples: Vec<Sample> = rows.iter().map(|&(t, v)| Sample::new(t, f64::from_bits(v))).collect();
    let level = (level % 8) as i32; // keep fuzzing fast; 0 = no zstd

    let mut enc = Vec::new();
    sealed::encode_with(&samples, &EncodeOptions { zstd_level: level, shared_timestamps: None }, &mut enc);
    let mut got = Vec::new();
    sealed::decode(&enc, &mut got).expect("own encoding decodes");
    assert_eq!(got, samples);

    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    let mut enc = Vec::new();
    sealed::encode_with(&samples, &EncodeOptions { zstd_level: level, shared_timestamps: Some(&ts) }, &mut enc);
    let mut got = Vec::new();
    sealed::decode_with(&enc, Some(&ts), &mut got).expect("own encoding decodes");
    assert_eq!(got, samples);

    // Both encodings of the samples as members of one group, without zstd
    // (as the block writer stores members) and with.
    let mut raw = Vec::new();
    sealed::encode_with(&samples, &EncodeOptions { zstd_level: 0, shared_timestamps: Some(&ts) }, &mut raw);
    let mut grp = Vec::new();
    group::encode_group(&[&raw, &enc], level, &mut grp);
    let g = group::decode_group(&grp).expect("own group decodes");
    assert_eq!(g.member(0), Some(&raw[..]));
    assert_eq!(g.member(1), Some(&enc[..]));
    let mut got = Vec::new();
    sealed::decode_with(g.member(0).unwrap(), Some(&ts), &mut got).expect("member decodes");
    assert_eq!(got, samples);

    // The same rows as short decimals (a counter or gauge with two
    // decimals), which take the decimal schemes and their byte-plane
    // layout rather than xor.
    let decimal: Vec<Sample> =
        rows.iter().map(|&(t, v)| Sample::new(t, ((v >> 24) as i64 - (1 << 39)) as f64 / 100.0)).collect();
    let mut enc = Vec::new();
    sealed::encode_with(&decimal, &EncodeOptions { zstd_level: level, shared_timestamps: Some(&ts) }, &mut enc);
    let mut got = Vec::new();
    sealed::decode_with(&enc, Some(&ts), &mut got).expect("own encoding decodes");
    assert_eq!(got.len(), decimal.len());
    assert!(got.iter().zip(&decimal).all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits()));
});
