use proptest::prelude::*;

use super::*;
use crate::sample::STALE_NAN_BITS;

fn roundtrip(samples: &[Sample]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(samples, &mut bytes);
    let mut got = Vec::new();
    decode(&bytes, &mut got).expect("own encoding decodes");
    assert_eq!(got.len(), samples.len());
    for (g, s) in got.iter().zip(samples) {
        assert_eq!(g.t, s.t);
        assert_eq!(g.v.to_bits(), s.v.to_bits(), "value bits differ at t={}", s.t);
    }
    bytes
}

fn series(start: i64, step: i64, values: impl IntoIterator<Item = f64>) -> Vec<Sample> {
    values.into_iter().enumerate().map(|(i, v)| Sample::new(start + i as i64 * step, v)).collect()
}

/// Rewrites the trailing CRC so that hand-made corruption reaches the
/// structural checks behind it.
fn reseal(bytes: &mut Vec<u8>) {
    let len = bytes.len() - CRC_LEN;
    bytes.truncate(len);
    let crc = crc32c::crc32c(bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
}

/// Encodes in format version 1 (with its own CRC), which decoders keep
/// reading.
fn encode_v1(samples: &[Sample], zstd_level: i32, out: &mut Vec<u8>) {
    encode_version(samples, &EncodeOptions { zstd_level, shared_timestamps: None }, VERSION_1, out);
}

const T0: i64 = 1_795_257_283_731;

#[test]
fn empty_chunk_round_trips() {
    let bytes = roundtrip(&[]);
    assert_eq!(bytes.len(), 1 + 1, "version and count");
    assert_eq!(inspect(&bytes).unwrap().samples, 0);
}

#[test]
fn single_sample_round_trips() {
    roundtrip(&[Sample::new(T0, 42.5)]);
    roundtrip(&[Sample::new(i64::MIN, f64::from_bits(STALE_NAN_BITS))]);
}

#[test]
fn special_values_round_trip_bit_exactly() {
    let specials = [
        f64::from_bits(STALE_NAN_BITS),
        f64::NAN,
        f64::from_bits(0xfff8_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
    ];
    roundtrip(&series(T0, 5000, specials));
}

#[test]
fn two_decimal_counter_uses_decimal_scheme_and_is_dense() {
    let mut v = 12_345.67f64;
    let samples = series(
        T0,
        5000,
        (0..1440).map(|i| {
            v = ((v * 100.0).round() + ((i * 37) % 11) as f64) / 100.0;
            v
        }),
    );
    let bytes = roundtrip(&samples);
    let info = inspect(&bytes).unwrap();
    assert_eq!(info.decimals, Some(2));
    assert_eq!(info.exceptions, 0);
    assert!(matches!(info.scheme, Some(ValueScheme::DecimalDelta | ValueScheme::DecimalDeltaOfDelta)));
    assert!(bytes.len() < 1440, "{} bytes for 1440 samples", bytes.len());
}

#[test]
fn integer_gauge_uses_zero_decimals() {
    let samples = series(T0, 15_000, (0..500).map(|i| (1_000_000_000 + (i * 4096) % 77_777) as f64));
    let bytes = roundtrip(&samples);
    assert_eq!(inspect(&bytes).unwrap().decimals, Some(0));
}

#[test]
fn constant_series_on_a_regular_grid_compresses_to_a_few_bytes() {
    let samples = series(T0, 5000, std::iter::repeat_n(0.000037116, 1440));
    let bytes = roundtrip(&samples);
    assert!(bytes.len() < 64, "{} bytes", bytes.len());
}

#[test]
fn trailing_stale_marker_is_an_exception_not_a_fallback() {
    let mut samples = series(T0, 5000, (0..200).map(|i| i as f64 * 0.5));
    samples.push(Sample::new(T0 + 200 * 5000, f64::from_bits(STALE_NAN_BITS)));
    let bytes = roundtrip(&samples);
    let info = inspect(&bytes).unwrap();
    assert_eq!(info.exceptions, 1);
    assert_eq!(info.decimals, Some(1));
}

#[test]
fn negative_zero_inside_a_decimal_series_is_kept() {
    let vals = (0..100).map(|i| if i == 50 { -0.0 } else { i as f64 * 0.25 });
    let bytes = roundtrip(&series(T0, 1000, vals));
    assert_eq!(inspect(&bytes).unwrap().exceptions, 1);
}

#[test]
fn full_precision_floats_fall_back_to_xor() {
    let mut x = 0.123_456_789_012_345_67f64;
    let samples = series(
        T0,
        5000,
        (0..300).map(|_| {
            x = (x * 3.987_654_321).fract() + 1e-3 * x.sqrt();
            x
        }),
    );
    let bytes = roundtrip(&samples);
    assert_eq!(inspect(&bytes).unwrap().scheme, Some(ValueScheme::Xor));
}

#[test]
fn extreme_timestamps_round_trip() {
    roundtrip(&[Sample::new(i64::MIN, 1.0), Sample::new(-1, 2.0), Sample::new(i64::MAX, 3.0)]);
    roundtrip(&[Sample::new(i64::MIN, 1.0), Sample::new(i64::MAX, 3.0)]);
    roundtrip(&[Sample::new(i64::MAX - 2, 1.0), Sample::new(i64::MAX - 1, 3.0), Sample::new(i64::MAX, 3.0)]);
}

#[test]
fn uncompressed_chunks_decode_too() {
    let samples = series(T0, 5000, (0..300).map(|i| (i % 7) as f64));
    let mut bytes = Vec::new();
    encode_with_level(&samples, 0, &mut bytes);
    assert!(!inspect(&bytes).unwrap().zstd);
    let mut got = Vec::new();
    decode(&bytes, &mut got).unwrap();
    assert_eq!(got, samples);
}

#[test]
fn decode_appends_and_leaves_output_untouched_on_error() {
    let samples = series(T0, 5000, (0..50).map(|i| i as f64));
    let mut bytes = Vec::new();
    encode_v1(&samples, DEFAULT_ZSTD_LEVEL, &mut bytes);
    let mut out = vec![Sample::new(1, 1.0)];
    decode(&bytes, &mut out).unwrap();
    assert_eq!(out.len(), 51);
    assert_eq!(out[0], Sample::new(1, 1.0));
    assert_eq!(&out[1..], &samples[..]);

    let mut out = vec![Sample::new(1, 1.0)];
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(decode(&bytes, &mut out).is_err());
    assert_eq!(out, vec![Sample::new(1, 1.0)]);
}

/// Version 1 chunks carry their own CRC, which catches any flipped bit.
/// (Version 2 chunks rely on their container's CRC; see
/// `version_2_damage_never_panics`.)
#[test]
fn every_single_bit_flip_of_a_version_1_chunk_is_detected() {
    let samples = series(T0, 5000, (0..64).map(|i| i as f64 * 1.5));
    let mut bytes = Vec::new();
    encode_v1(&samples, DEFAULT_ZSTD_LEVEL, &mut bytes);
    for bit in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(decode(&b, &mut Vec::new()).is_err(), "flip of bit {bit} went unnoticed");
    }
}

#[test]
fn unknown_version_and_flags_are_rejected() {
    let mut bytes = Vec::new();
    encode_v1(&series(T0, 1, [1.0, 2.0]), 0, &mut bytes);
    let mut b = bytes.clone();
    b[0] = 4;
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("unknown sealed chunk version")));
    for flags in [0b100_0000u8, 0b1000_0000] {
        let mut b = bytes.clone();
        b[2] = flags;
        reseal(&mut b);
        assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("unknown sealed chunk flags")));
    }
}

#[test]
fn huge_declared_counts_and_lengths_are_rejected_before_allocating() {
    // Count above the cap.
    let mut b = vec![VERSION_1];
    put_uvarint(&mut b, MAX_SAMPLES as u64 + 1);
    b.push(0);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert!(decode(&b, &mut Vec::new()).is_err());

    // Count within the cap but far larger than the data.
    let mut b = vec![VERSION_1];
    put_uvarint(&mut b, MAX_SAMPLES as u64);
    b.extend_from_slice(&[SCHEME_XOR, 0, 0, 0, 0]);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk count exceeds its data")));

    // A declared uncompressed length a tiny zstd frame cannot produce.
    let mut b = vec![VERSION_1];
    put_uvarint(&mut b, 1 << 20);
    b.push(FLAG_ZSTD);
    put_uvarint(&mut b, 1 << 24);
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk declares an impossible length")));

    // A declared uncompressed length beyond what `n` samples can need.
    let mut b = vec![VERSION_1, 2, FLAG_ZSTD];
    put_uvarint(&mut b, 1 << 40);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk declares an impossible length")));
}

#[test]
fn zstd_frame_larger_than_declared_is_rejected() {
    // 1000 samples' worth of columns compressed, but a smaller length declared.
    let samples = series(T0, 5000, (0..1000).map(|i| i as f64));
    let mut body = Vec::new();
    put_timestamps(&mut body, &samples);
    let scheme = put_values(&mut body, &samples, false);
    let frame = compress(&body, 3).unwrap();
    let mut b = vec![VERSION_1];
    put_uvarint(&mut b, 1000);
    b.push(scheme | FLAG_ZSTD);
    put_uvarint(&mut b, body.len() as u64 - 1);
    b.extend_from_slice(&frame);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk zstd data invalid")));
}

#[test]
fn non_increasing_timestamps_are_rejected() {
    // Columns for t = 10, 10: first timestamp 10, delta 0.
    let mut b = vec![VERSION_1, 2, SCHEME_DECIMAL_DELTA];
    put_ivarint(&mut b, 10);
    put_ivarint(&mut b, 0);
    b.extend_from_slice(&[0, 0, 0, 0]); // k=0, no exceptions, m=0, delta 0
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk timestamps not increasing")));
}

#[test]
fn exception_index_out_of_range_is_rejected() {
    let mut b = vec![VERSION_1, 1, SCHEME_DECIMAL_DELTA, 0];
    b.extend_from_slice(&[0, 1, 1]); // k=0, one exception at index 1 (n = 1)
    b.extend_from_slice(&[0; 8]);
    b.push(0);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk exception index out of range")));
}

#[test]
fn decimal_exponent_out_of_range_is_rejected() {
    let mut b = vec![VERSION_1, 1, SCHEME_DECIMAL_DELTA, 0, 23, 0, 0];
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("sealed chunk decimal exponent out of range")));
}

#[test]
fn varint_helpers_agree() {
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
        let mut b = Vec::new();
        put_uvarint(&mut b, v);
        assert_eq!(b.len(), uvarint_len(v));
        assert_eq!(Reader::new(&b).uvarint(), Ok(v));
    }
    for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
        assert_eq!(unzigzag(zigzag(v)), v);
    }
    // An 11th continuation byte, or a 10th byte above 1, overflows.
    assert!(Reader::new(&[0xff; 11]).uvarint().is_err());
    let mut b = vec![0xff; 9];
    b.push(0x02);
    assert!(Reader::new(&b).uvarint().is_err());
}

// --- property tests ---------------------------------------------------------

fn any_bits() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        (1u64..0x000f_ffff_ffff_ffff).prop_map(f64::from_bits),
        (-1e300f64..1e300),
        (-1e-300f64..1e-300),
    ]
}

fn decimal_value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000_000i64..1_000_000_000, 0u32..6).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
        (0i64..1 << 53).prop_map(|m| m as f64),
    ]
}

/// Strictly increasing timestamps from `start` with arbitrary gaps, stopping
/// before overflow.
fn timestamps(start: i64, gaps: &[u64]) -> Vec<i64> {
    let mut out = vec![start];
    let mut t = start;
    for &g in gaps {
        match t.checked_add_unsigned(g.max(1)) {
            Some(next) => {
                out.push(next);
                t = next;
            }
            None => break,
        }
    }
    out
}

fn start_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MIN), Just(i64::MAX - 1000), any::<i64>(), Just(T0)]
}

fn gap_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(5000u64), 2 => 4990u64..5010, 1 => any::<u64>(), 1 => 1u64..3]
}

proptest! {
    // Each case runs the full encoder with zstd; keep the count modest.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bit_patterns_round_trip(
        start in start_strategy(),
        rows in proptest::collection::vec((gap_strategy(), any_bits()), 0..300),
    ) {
        let gaps: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let ts = timestamps(start, &gaps);
        let samples: Vec<Sample> = ts.iter().zip(rows.iter().map(|r| r.1)).map(|(&t, v)| Sample::new(t, v)).collect();
        roundtrip(&samples);
    }

    #[test]
    fn decimal_friendly_series_round_trip(
        start in start_strategy(),
        first in decimal_value_strategy(),
        steps in proptest::collection::vec((gap_strategy(), -500i64..500), 1..600),
        decimals in 0u32..4,
    ) {
        let gaps: Vec<u64> = steps.iter().map(|r| r.0).collect();
        let ts = timestamps(start, &gaps);
        let scale = 10f64.powi(decimals as i32);
        let mut m = (first * scale).round();
        let samples: Vec<Sample> = ts.iter().zip(steps.iter()).map(|(&t, &(_, d))| {
            m += d as f64;
            Sample::new(t, m / scale)
        }).collect();
        let bytes = roundtrip(&samples);
        let info = inspect(&bytes).unwrap();
        prop_assert!(info.scheme != Some(ValueScheme::Xor) || samples.len() < 32 || m.abs() > 1e15);
    }

    #[test]
    fn mixed_series_round_trip(
        rows in proptest::collection::vec((gap_strategy(), prop_oneof![3 => decimal_value_strategy(), 1 => any_bits()]), 1..400),
    ) {
        let gaps: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let ts = timestamps(T0, &gaps);
        let samples: Vec<Sample> = ts.iter().zip(rows.iter().map(|r| r.1)).map(|(&t, v)| Sample::new(t, v)).collect();
        roundtrip(&samples);
    }

    #[test]
    fn truncated_encodings_are_rejected(
        rows in proptest::collection::vec((gap_strategy(), prop_oneof![decimal_value_strategy(), any_bits()]), 1..200),
        cut in any::<prop::sample::Index>(),
    ) {
        let gaps: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let ts = timestamps(T0, &gaps);
        let samples: Vec<Sample> = ts.iter().zip(rows.iter().map(|r| r.1)).map(|(&t, v)| Sample::new(t, v)).collect();
        let mut bytes = Vec::new();
        encode(&samples, &mut bytes);
        let len = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..len], &mut Vec::new()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        if decode(&bytes, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
        let _ = inspect(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_crc_never_panic(
        n in 0u64..64,
        flags in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut b = vec![VERSION_1];
        put_uvarint(&mut b, n);
        b.push(flags & KNOWN_FLAGS);
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0; CRC_LEN]);
        reseal(&mut b);
        let _ = decode(&b, &mut Vec::new());
        let _ = inspect(&b);
    }
}

// --- shared timestamp columns ---------------------------------------------

#[test]
fn shared_timestamps_omit_the_column_and_round_trip() {
    let samples = series(T0, 5000, (0..1440).map(|i| (i % 13) as f64 * 0.5));
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    let mut own = Vec::new();
    encode(&samples, &mut own);
    let mut shared = Vec::new();
    assert!(encode_with(&samples, &EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() }, &mut shared));
    assert!(shared.len() < own.len());
    assert!(inspect(&shared).unwrap().shared_timestamps);

    let mut got = Vec::new();
    decode_with(&shared, Some(&ts), &mut got).unwrap();
    assert_eq!(got, samples);

    // Without the column, or with one of the wrong length: a typed error.
    assert_eq!(
        decode(&shared, &mut Vec::new()),
        Err(ChunkError::Corrupt("sealed chunk needs a shared timestamp column"))
    );
    assert_eq!(
        decode_with(&shared, Some(&ts[1..]), &mut Vec::new()),
        Err(ChunkError::Corrupt("shared timestamp column has the wrong length"))
    );
}

#[test]
fn mismatching_shared_timestamps_are_not_used() {
    let samples = series(T0, 5000, (0..100).map(|i| i as f64));
    let mut ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    ts[50] += 1;
    let mut b = Vec::new();
    assert!(!encode_with(&samples, &EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() }, &mut b));
    let mut got = Vec::new();
    decode_with(&b, Some(&ts), &mut got).unwrap();
    assert_eq!(got, samples, "a chunk with its own column ignores the shared one");
}

#[test]
fn timestamp_columns_round_trip_and_are_tiny_for_regular_scrapes() {
    let ts: Vec<i64> = (0..1440).map(|i| T0 + i * 5000 + (i * 7 % 5)).collect();
    let mut b = Vec::new();
    encode_timestamps(&ts, &mut b);
    let mut got = vec![1];
    decode_timestamps(&b, &mut got).unwrap();
    assert_eq!(got[0], 1);
    assert_eq!(&got[1..], &ts[..]);
    assert!(b.len() < 600, "{} bytes", b.len());
}

#[test]
fn jittered_scrape_timestamps_use_the_grid_layout() {
    let samples: Vec<Sample> =
        (0..1440).map(|i| Sample::new(T0 + i * 5000 + [0, 3, 4, 0, 1][i as usize % 5], 1.0)).collect();
    let bytes = roundtrip(&samples);
    assert!(inspect(&bytes).unwrap().time_grid);
}

#[test]
fn noisy_gauge_stays_decimal() {
    // A duration gauge: random 6-digit mantissas at 9 decimals.
    let mut x = 12_345u64;
    let vals = (0..1000).map(|_| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((x >> 40) % 400_000 + 100_000) as f64 / 1e9
    });
    let bytes = roundtrip(&series(T0, 5000, vals));
    let info = inspect(&bytes).unwrap();
    assert_ne!(info.scheme, Some(ValueScheme::Xor));
    assert_eq!(info.decimals, Some(9));
}

#[test]
fn repetitive_gauge_mantissas_are_stored_raw() {
    // A gauge flipping between a few levels: raw mantissas repeat, deltas
    // do not.
    let vals = (0..1000).map(|i| [0.25, 0.5, 0.75][(i * 7 + i / 3) % 3]);
    let bytes = roundtrip(&series(T0, 5000, vals));
    assert_eq!(inspect(&bytes).unwrap().scheme, Some(ValueScheme::DecimalRaw));
}

#[test]
fn shared_and_grid_flags_together_are_rejected() {
    let mut b = vec![VERSION_1, 1, FLAG_TIME_SHARED | FLAG_TIME_GRID, 0, 0, 0];
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode_with(&b, Some(&[1]), &mut Vec::new()), Err(ChunkError::Corrupt("unknown sealed chunk flags")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shared_timestamp_chunks_round_trip(
        start in start_strategy(),
        rows in proptest::collection::vec((gap_strategy(), prop_oneof![3 => decimal_value_strategy(), 1 => any_bits()]), 1..300),
    ) {
        let gaps: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let mut ts = timestamps(start, &gaps);
        ts.truncate(rows.len());
        let samples: Vec<Sample> = ts.iter().zip(rows.iter().map(|r| r.1)).map(|(&t, v)| Sample::new(t, v)).collect();
        let mut col = Vec::new();
        encode_timestamps(&ts, &mut col);
        let mut ts2 = Vec::new();
        decode_timestamps(&col, &mut ts2).unwrap();
        prop_assert_eq!(&ts2, &ts);
        let mut b = Vec::new();
        let opts = EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() };
        prop_assert!(encode_with(&samples, &opts, &mut b));
        let mut got = Vec::new();
        decode_with(&b, Some(&ts2), &mut got).unwrap();
        prop_assert_eq!(got, samples);
    }
}

// --- ULP corrections ------------------------------------------------------

/// `v` moved by `ulps` units in the last place.
fn nudge(v: f64, ulps: i64) -> f64 {
    f64::from_bits(v.to_bits().wrapping_add(ulps as u64))
}

#[test]
fn float_artefacts_of_short_decimals_use_ulp_corrections() {
    // A counter in microsecond precision where a quarter of the values are
    // one ULP off the short decimal (like 11.515870999999999).
    let vals = (0..1000).map(|i| {
        let v = (9_983_188 + i * 351_234) as f64 / 1e6;
        if i % 4 == 1 {
            nudge(v, -1)
        } else {
            v
        }
    });
    let bytes = roundtrip(&series(T0, 5000, vals));
    let info = inspect(&bytes).unwrap();
    assert!(info.ulp_corrections);
    assert_eq!(info.decimals, Some(6));
    assert_ne!(info.scheme, Some(ValueScheme::Xor));
}

#[test]
fn ulp_flag_on_xor_chunks_is_rejected() {
    let mut b = vec![VERSION_1, 1, SCHEME_XOR | FLAG_ULP, 0];
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0; CRC_LEN]);
    reseal(&mut b);
    assert_eq!(decode(&b, &mut Vec::new()), Err(ChunkError::Corrupt("unknown sealed chunk flags")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn nearly_decimal_series_round_trip(
        rows in proptest::collection::vec((-1_000_000_000i64..1_000_000_000, -80i64..80, 0u8..4), 1..400),
        k in 0i32..9,
    ) {
        let scale = 10f64.powi(k);
        let samples: Vec<Sample> = rows
            .iter()
            .enumerate()
            .map(|(i, &(m, ulps, kind))| {
                let v = m as f64 / scale;
                // Mostly exact, some nudged (within and beyond the correction
                // range), a few specials.
                let v = match kind {
                    0 | 1 => v,
                    2 => nudge(v, ulps),
                    _ => [f64::from_bits(STALE_NAN_BITS), -0.0, f64::INFINITY, nudge(v, 1 << 40)][i % 4],
                };
                Sample::new(T0 + i as i64 * 5000, v)
            })
            .collect();
        roundtrip(&samples);
    }
}

// --- format fixtures ----------------------------------------------------------

fn fixture_samples() -> Vec<Sample> {
    vec![
        Sample::new(1_000, 1.5),
        Sample::new(6_002, 2.25),
        Sample::new(11_000, 3.0),
        Sample::new(16_001, f64::from_bits(STALE_NAN_BITS)),
    ]
}

/// Format version 1 bytes of `fixture_samples()` without zstd. Decoders must
/// keep reading these bytes whatever the encoder does in future.
const FIXTURE_V1: &str = "010400d00f944e0706020103020000000000f07fac029601960100b5f93147";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn version_1_fixture_still_decodes_and_encodes_identically() {
    let mut b = Vec::new();
    encode_v1(&fixture_samples(), 0, &mut b);
    assert_eq!(hex(&b), FIXTURE_V1);
    let bytes: Vec<u8> =
        (0..FIXTURE_V1.len()).step_by(2).map(|i| u8::from_str_radix(&FIXTURE_V1[i..i + 2], 16).unwrap()).collect();
    let mut got = Vec::new();
    decode(&bytes, &mut got).unwrap();
    assert_eq!(got, fixture_samples());
}

/// Format version 2 bytes of `fixture_samples()` without zstd: version 1's
/// bytes with the version byte changed and no CRC.
const FIXTURE_V2: &str = "020400d00f944e0706020103020000000000f07fac029601960100";

#[test]
fn version_2_fixture_still_decodes_and_encodes_identically() {
    let mut b = Vec::new();
    encode_version(&fixture_samples(), &EncodeOptions { zstd_level: 0, shared_timestamps: None }, VERSION_2, &mut b);
    assert_eq!(hex(&b), FIXTURE_V2);
    let mut got = Vec::new();
    decode(&b, &mut got).unwrap();
    assert_eq!(got, fixture_samples());
}

#[test]
fn version_2_stores_zstd_frames_without_their_magic_number() {
    let samples = series(T0, 5000, (0..500).map(|i| (i as f64 * 0.37).sin()));
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    encode_v1(&samples, DEFAULT_ZSTD_LEVEL, &mut v1);
    encode(&samples, &mut v2);
    assert!(inspect(&v2).unwrap().zstd);
    assert_eq!(v2.len() + ZSTD_MAGIC.len() + CRC_LEN, v1.len());
    assert!(!v2.windows(4).any(|w| w == ZSTD_MAGIC));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    decode(&v1, &mut a).unwrap();
    decode(&v2, &mut b).unwrap();
    assert_eq!(a, samples);
    assert_eq!(b, samples);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Without a CRC of its own, a damaged version 2 chunk may decode to
    /// other samples (its container's CRC catches that), but never panics
    /// and never yields a partial result.
    #[test]
    fn version_2_damage_never_panics(
        values in proptest::collection::vec(prop_oneof![decimal_value_strategy(), any_bits()], 1..200),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        level in prop_oneof![Just(0), Just(DEFAULT_ZSTD_LEVEL)],
    ) {
        let samples = series(T0, 15_000, values);
        let mut b = Vec::new();
        encode_with_level(&samples, level, &mut b);
        for (at, bit) in flips {
            let i = at.index(b.len());
            b[i] ^= 1 << bit;
        }
        let mut out = Vec::new();
        match decode(&b, &mut out) {
            Ok(()) => prop_assert!(out.windows(2).all(|w| w[0].t < w[1].t)),
            Err(_) => prop_assert!(out.is_empty()),
        }
        let _ = inspect(&b);
    }
}

// --- byte planes (version 3) --------------------------------------------------

/// Format version 3 bytes of a counter whose mantissa column is stored as
/// byte planes: version 3, `n = 5`, flags `0x41` (planes, decimal
/// delta-of-delta), timestamps `0, +15000, 0, 0, 0`; then `k = 1`, no
/// exceptions, `x_0 = 1000` (`d00f`), base `-2` (`03`), width 1 and the
/// plane `1b 05 00 03`: `x_1..x_4 = 25, 3, -2, 1` (deltas 25, 28, 26, 27).
/// Decoders must keep reading these bytes.
const FIXTURE_V3: &str = "03054100b0ea010000000100d00f03011b050003";

fn planes_fixture_samples() -> Vec<Sample> {
    let mut m = 1000i64;
    let mut out = vec![Sample::new(0, m as f64 / 10.0)];
    for (i, d) in [25, 28, 26, 27].into_iter().enumerate() {
        m += d;
        out.push(Sample::new(15_000 * (i as i64 + 1), m as f64 / 10.0));
    }
    out
}

#[test]
fn version_3_fixture_decodes_and_encodes_identically() {
    let samples = planes_fixture_samples();
    let mut b = Vec::new();
    encode_with_level(&samples, 0, &mut b);
    let info = inspect(&b).unwrap();
    assert_eq!(info.samples, 5);
    assert_eq!(hex(&b), FIXTURE_V3);
    let mut got = Vec::new();
    decode(&b, &mut got).unwrap();
    assert_eq!(got, samples);
}

fn flags_of(chunk: &[u8]) -> u8 {
    parse_header(chunk).unwrap().flags.unwrap()
}

/// Mantissa deltas of a busy counter (about 10,000 ± 170 per scrape): the
/// encoder stores them as byte planes, and they take fewer bytes after zstd
/// than the version 2 ivarints. It starts near 2^52 so that a reset to 0
/// makes the planes 7 bytes wide.
fn busy_counter(n: usize, reset_at: Option<usize>) -> Vec<Sample> {
    let mut x = 7u64;
    let mut m = 4_000_000_000_000_000i64;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            m += 9_830 + ((x >> 33) % 340) as i64;
            if Some(i) == reset_at {
                m = 17;
            }
            Sample::new(T0 + i as i64 * 15_000, m as f64 / 100.0)
        })
        .collect()
}

#[test]
fn byte_planes_are_used_for_noisy_decimal_columns_and_are_smaller() {
    let samples = busy_counter(2000, None);
    let v3 = roundtrip(&samples);
    let mut v3_raw = Vec::new();
    encode_with_level(&samples, 0, &mut v3_raw);
    assert_eq!(flags_of(&v3_raw) & FLAG_PLANES, FLAG_PLANES);
    let mut v2 = Vec::new();
    encode_version(&samples, &EncodeOptions::default(), VERSION_2, &mut v2);
    assert!(v3.len() < v2.len(), "planes {} bytes, ivarints {}", v3.len(), v2.len());
}

#[test]
fn a_counter_reset_keeps_ivarints_and_a_constant_column_has_no_planes() {
    let mut b = Vec::new();
    encode_with_level(&busy_counter(2000, Some(1000)), 0, &mut b);
    assert_eq!(flags_of(&b) & FLAG_PLANES, 0, "one outlier would widen every entry");
    roundtrip(&busy_counter(2000, Some(1000)));
    let mut b = Vec::new();
    let constant = series(T0, 15_000, std::iter::repeat_n(3.5, 500));
    encode_with_level(&constant, 0, &mut b);
    assert_eq!(flags_of(&b) & FLAG_PLANES, 0);
    roundtrip(&constant);
}

#[test]
fn byte_plane_flag_is_rejected_before_version_3_and_bad_widths_are_corrupt() {
    let samples = busy_counter(50, None);
    let mut b = Vec::new();
    encode_with_level(&samples, 0, &mut b);
    assert_eq!(flags_of(&b) & FLAG_PLANES, FLAG_PLANES);
    let mut v2 = b.clone();
    v2[0] = VERSION_2;
    assert_eq!(decode(&v2, &mut Vec::new()), Err(ChunkError::Corrupt("unknown sealed chunk flags")));
    // The width byte follows k, the exception count, x_0 and the base;
    // shared timestamps keep the timestamps out of the way.
    let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
    let mut b = Vec::new();
    encode_with(&samples, &EncodeOptions { zstd_level: 0, shared_timestamps: Some(&ts) }, &mut b);
    let mut r = Reader::new(&b[3..]);
    r.byte().unwrap();
    r.uvarint().unwrap();
    r.ivarint().unwrap();
    r.ivarint().unwrap();
    let width_at = 3 + r.pos;
    for bad in [0u8, 9, 200] {
        let mut c = b.clone();
        c[width_at] = bad;
        assert!(decode_with(&c, Some(&ts), &mut Vec::new()).is_err());
    }
    // A width that claims more bytes than there are.
    let mut c = b.clone();
    c[width_at] = 8;
    assert!(decode_with(&c, Some(&ts), &mut Vec::new()).is_err());
    let mut got = Vec::new();
    decode_with(&b, Some(&ts), &mut got).unwrap();
    assert_eq!(got, samples);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Columns that choose byte planes (noisy deltas of any magnitude, now
    /// and then an outlier) round-trip bit for bit, own or shared
    /// timestamps.
    #[test]
    fn byte_plane_columns_round_trip(
        base in -1_000_000_000_000i64..1_000_000_000_000,
        step in 0i64..1_000_000,
        noise in 1u64..100_000,
        seed in any::<u64>(),
        outlier in proptest::option::of((0usize..300, any::<i32>())),
        n in 2usize..300,
        k in 0i32..6,
    ) {
        let scale = 10f64.powi(k);
        let mut x = seed;
        let mut m = base;
        let samples: Vec<Sample> = (0..n)
            .map(|i| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                m += step + ((x >> 20) % noise) as i64;
                if outlier.is_some_and(|(at, _)| at == i) {
                    m += outlier.map_or(0, |(_, d)| d as i64);
                }
                Sample::new(T0 + i as i64 * 15_000, m as f64 / scale)
            })
            .collect();
        roundtrip(&samples);
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        let mut b = Vec::new();
        encode_with(&samples, &EncodeOptions { zstd_level: 0, shared_timestamps: Some(&ts) }, &mut b);
        let mut got = Vec::new();
        decode_with(&b, Some(&ts), &mut got).unwrap();
        prop_assert_eq!(got.len(), samples.len());
        for (g, s) in got.iter().zip(&samples) {
            prop_assert_eq!(g.v.to_bits(), s.v.to_bits());
        }
    }
}

/// The size estimate as first written (a fresh vector, one `log2` per
/// distinct value): the encoder's choices must not depend on the faster
/// form.
fn estimate_bits_plain(values: &[i64]) -> f64 {
    let mut z: Vec<u64> = values.iter().map(|&v| zigzag(v)).collect();
    z.sort_unstable();
    let total = z.len() as f64;
    let mut bits = 0f64;
    for run in z.chunk_by(|a, b| a == b) {
        let c = run.len() as f64;
        bits += c * (total / c).log2() + (65 - run[0].leading_zeros()) as f64;
    }
    bits
}

#[test]
fn round_small_is_f64_round_below_2_pow_53() {
    let edges = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        0.49999999999999994,
        -0.49999999999999994,
        4_503_599_627_370_495.5,
        -4_503_599_627_370_495.5,
        9_007_199_254_740_991.0,
        -9_007_199_254_740_991.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::from_bits(1),
        1e-300,
        123_456.789,
    ];
    for &x in &edges {
        assert_eq!(round_small(x), Some(x.round() as i64), "{x:e}");
    }
    for x in [MAX_MANTISSA, -MAX_MANTISSA, 1e300, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        assert_eq!(round_small(x), None, "{x:e}");
    }
}

proptest! {
    #[test]
    fn round_small_matches_f64_round(bits in any::<u64>(), scale in 0usize..=MAX_DECIMALS) {
        // Values of every magnitude, and values scaled as `decimal_fit` scales them.
        for x in [f64::from_bits(bits), f64::from_bits(bits >> 12) * POW10[scale], (bits >> 11) as f64 / 7.0] {
            let want = (x.abs() < MAX_MANTISSA).then(|| x.round() as i64);
            prop_assert_eq!(round_small(x), want, "{:e}", x);
        }
    }

    #[test]
    fn estimate_bits_is_the_plain_formula_bit_for_bit(
        values in proptest::collection::vec(prop_oneof![any::<i64>(), -3i64..3], 0..300),
    ) {
        let got = estimate_bits(values.iter().copied());
        prop_assert_eq!(got.to_bits(), estimate_bits_plain(&values).to_bits());
        // Again, through the buffer the first call left behind.
        prop_assert_eq!(estimate_bits(values.iter().copied()).to_bits(), got.to_bits());
    }

    #[test]
    fn estimate_bits_is_the_plain_formula_around_the_table_limit(
        // Around `TABLE_DISTINCT` distinct values (counted in the table or
        // sorted), with strided and huge ones that share hash slots.
        values in proptest::collection::vec(
            prop_oneof![-20i64..20, (0i64..40).prop_map(|v| v << 40), (0i64..40).prop_map(|v| i64::MIN + v)],
            0..300,
        ),
    ) {
        let got = estimate_bits(values.iter().copied());
        prop_assert_eq!(got.to_bits(), estimate_bits_plain(&values).to_bits());
        // Again, through the buffer the first call left behind.
        prop_assert_eq!(estimate_bits(values.iter().copied()).to_bits(), got.to_bits());
    }
}

#[test]
fn negative_zstd_levels_round_trip_bit_exactly() {
    // A noisy gauge: with zstd at a negative level the literals are stored
    // raw; the chunk must still decode bit for bit.
    let mut x = 7u64;
    let samples: Vec<Sample> = (0..120)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            Sample::new(T0 + i * 15_000 + (x >> 60) as i64, ((x >> 20) % 1_000_000) as f64 / 100.0)
        })
        .collect();
    for level in [-5, -1, 1] {
        let mut b = Vec::new();
        encode_with_level(&samples, level, &mut b);
        let mut got = Vec::new();
        decode(&b, &mut got).unwrap();
        assert_eq!(got.len(), samples.len());
        for (g, s) in got.iter().zip(&samples) {
            assert_eq!((g.t, g.v.to_bits()), (s.t, s.v.to_bits()), "level {level}");
        }
    }
}

#[test]
fn estimate_bits_counts_up_to_the_table_limit_and_sorts_beyond() {
    for distinct in [1, 2, TABLE_DISTINCT - 1, TABLE_DISTINCT, TABLE_DISTINCT + 1, 2 * TABLE_DISTINCT, 120] {
        // Each distinct value repeated a different number of times, in an
        // order that is not sorted.
        let values: Vec<i64> = (0..240).map(|i| ((i * 7) % distinct) as i64 * 1_000 - 30_000).collect();
        let mut table = DistinctTable::default();
        let z: Vec<u64> = values.iter().map(|&v| zigzag(v)).collect();
        assert_eq!(table.count(&z), distinct <= TABLE_DISTINCT, "{distinct} distinct");
        if distinct <= TABLE_DISTINCT {
            let got = table.distinct_sorted();
            assert_eq!(got.len(), distinct);
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(got.iter().map(|&(_, c)| c as usize).sum::<usize>(), values.len());
        }
        assert_eq!(estimate_bits(values.iter().copied()).to_bits(), estimate_bits_plain(&values).to_bits());
    }
}

/// A corpus of chunks of every shape the encoder chooses between: integer
/// and decimal counters (with resets and staleness markers), noisy gauges,
/// float artefacts needing ULP corrections, full-precision floats, regular
/// and jittered timestamps, lengths from 1 to 240.
fn encoder_corpus() -> Vec<Vec<Sample>> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut corpus = Vec::new();
    for c in 0..600u64 {
        let n = [1usize, 2, 3, 7, 31, 120, 120, 120, 240][(c % 9) as usize];
        let shape = (c / 9) % 8;
        let jitter = c % 3;
        let mut t = T0 + (next() % 15_000) as i64;
        let mut v = (next() % 1_000) as f64;
        let mut m = (next() % 100_000) as i64;
        let samples: Vec<Sample> = (0..n)
            .map(|i| {
                t += 15_000
                    + match jitter {
                        0 => 0,
                        1 if next() % 10 == 0 => 2 * (1 + (next() % 12) as i64),
                        1 => 0,
                        _ => (next() % 41) as i64 - 20,
                    };
                let value = match shape {
                    0 => {
                        m += (next() % 50) as i64;
                        m as f64
                    }
                    1 => {
                        m += (next() % 5_000) as i64;
                        m as f64 / 100.0
                    }
                    2 => {
                        if next() % 60 == 0 {
                            m = 0;
                        }
                        m += (next() % 7) as i64;
                        m as f64
                    }
                    3 => (next() % 1_000_000) as f64 / 1_000.0,
                    4 => {
                        v += 0.1;
                        v
                    }
                    5 => f64::from_bits(next() >> 2),
                    6 if i + 1 == n => f64::from_bits(STALE_NAN_BITS),
                    6 => (m + (i as i64 % 3)) as f64,
                    _ => 42.0,
                };
                Sample::new(t, value)
            })
            .collect();
        corpus.push(samples);
    }
    corpus
}

#[test]
fn encoder_bytes_are_pinned() {
    // A checksum of every chunk of the corpus as written at several zstd
    // levels and in versions 2 and 3. The encoder's speed-ups must not
    // change a single byte: the value below is what the encoder wrote
    // before them (main 67aecb7).
    let mut all = Vec::new();
    for samples in encoder_corpus() {
        for level in [0, -1, 1] {
            encode_with_level(&samples, level, &mut all);
        }
        encode_version_2(&samples, &EncodeOptions::default(), &mut all);
    }
    println!("encoder corpus: {} bytes, crc32c {:#010x}", all.len(), crc32c::crc32c(&all));
    assert_eq!((all.len(), crc32c::crc32c(&all)), ENCODER_CORPUS_DIGEST);
}

/// What `encoder_bytes_are_pinned` found with the encoder of main 67aecb7:
/// total bytes and their CRC32-C.
const ENCODER_CORPUS_DIGEST: (usize, u32) = (522_367, 0xc538_d175);
