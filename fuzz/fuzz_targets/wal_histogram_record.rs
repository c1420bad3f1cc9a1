//! WAL histogram-sample records (type 5). The first byte picks the mode:
//!
//! * even: the rest is the payload of one type-5 body (the type byte is
//!   put in front), in a frame with a correct CRC32-C, so the histogram
//!   decoder (compressed or not) is reached: replay never panics, and
//!   whatever it decoded, logged again, replays identically;
//! * odd: the rest, read with `arbitrary`, is a list of histogram samples
//!   (integer and float counts, any schema, spans, buckets and custom
//!   bounds, any float bit pattern), logged in records of up to
//!   `rest[0] + 1` samples, then replayed: the round trip is bit-exact.
//!   Then the log is checkpointed, keeping series whose reference has a
//!   chosen parity and times from a chosen `mint`: replay gives exactly
//!   those samples, in order.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_fuzz::crc32c;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span};
use tidemark_storage::wal::{Record, RefHistogramSample, SyncPolicy, Wal, WalOptions};

/// Record type of histogram samples (`docs/format/wal.md`).
const TYPE_HISTOGRAMS: u8 = 5;

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

/// A float: small integers and decimals (stored as decimals), or any bits
/// (NaN payloads, the staleness marker, -0.0, infinities: stored raw).
fn float(u: &mut Unstructured<'_>) -> arbitrary::Result<f64> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => f64::from(i16::arbitrary(u)?),
        1 => f64::from(i32::arbitrary(u)?) / 1000.0,
        2 => f64::from_bits(0x7ff0_0000_0000_0002),
        _ => f64::from_bits(u64::arbitrary(u)?),
    })
}

fn floats(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<f64>> {
    let n = u.int_in_range(0usize..=16)?;
    (0..n).map(|_| float(u)).collect()
}

fn spans(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<Span>> {
    let n = u.int_in_range(0usize..=6)?;
    (0..n).map(|_| Ok(Span { offset: i32::arbitrary(u)?, length: u32::arbitrary(u)? })).collect()
}

fn histogram(u: &mut Unstructured<'_>) -> arbitrary::Result<HistogramValue> {
    let counter_reset_hint = CounterResetHint::from_code(u.int_in_range(0u8..=3)?).expect("0..=3 are hints");
    let schema = match u.int_in_range(0u8..=2)? {
        0 => u.int_in_range(-4i32..=8)?,
        1 => -53,
        _ => i32::arbitrary(u)?,
    };
    Ok(if bool::arbitrary(u)? {
        let n = u.int_in_range(0usize..=16)?;
        let positive_buckets = (0..n).map(|_| i64::arbitrary(u)).collect::<arbitrary::Result<_>>()?;
        let n = u.int_in_range(0usize..=16)?;
        let negative_buckets = (0..n).map(|_| i64::arbitrary(u)).collect::<arbitrary::Result<_>>()?;
        HistogramValue::Integer(Histogram {
            counter_reset_hint,
            schema,
            zero_threshold: float(u)?,
            zero_count: u64::arbitrary(u)?,
            count: u64::arbitrary(u)?,
            sum: float(u)?,
            positive_spans: spans(u)?,
            negative_spans: spans(u)?,
            positive_buckets,
            negative_buckets,
            custom_values: floats(u)?,
        })
    } else {
        HistogramValue::Float(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold: float(u)?,
            zero_count: float(u)?,
            count: float(u)?,
            sum: float(u)?,
            positive_spans: spans(u)?,
            negative_spans: spans(u)?,
            positive_buckets: floats(u)?,
            negative_buckets: floats(u)?,
            custom_values: floats(u)?,
        })
    })
}

fn samples(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<RefHistogramSample>> {
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < 200 {
        let series_ref = u64::from(u.int_in_range(0u8..=15)?);
        let t = i64::from(i16::arbitrary(u)?);
        out.push(RefHistogramSample { series_ref, t, h: histogram(u)? });
    }
    Ok(out)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    if mode & 1 == 0 {
        let mut body = vec![TYPE_HISTOGRAMS];
        body.extend_from_slice(rest);
        let len = (body.len() as u32).to_le_bytes();
        let mut checked = len.to_vec();
        checked.extend_from_slice(&body);
        let mut segment = b"TMWL\x01\x00\x00\x00".to_vec();
        segment.extend_from_slice(&len);
        segment.extend_from_slice(&crc32c(&checked).to_le_bytes());
        segment.extend_from_slice(&body);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("00000001"), &segment).expect("write segment");
        let got = replay(dir.path());
        if !got.is_empty() {
            round_trip(&got);
        }
        return;
    }
    let Some((&per, rest)) = rest.split_first() else { return };
    let Some((&filter, rest)) = rest.split_first() else { return };
    let mut u = Unstructured::new(rest);
    let Ok(list) = samples(&mut u) else { return };
    if list.is_empty() {
        return;
    }
    let records: Vec<Record> =
        list.chunks(usize::from(per % 64) + 1).map(|c| Record::HistogramSamples(c.to_vec())).collect();
    round_trip(&records);

    // Checkpoint everything logged: what survives is exactly the samples
    // of kept series at or after `mint`, in log order.
    let parity = u64::from(filter & 1);
    let mint = i64::from(i8::from_le_bytes([filter])) * 64;
    let keep = |r: u64| r % 2 == parity;
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), opts()).expect("open");
    wal.log(&records).expect("log");
    let upto = wal.cut_segment().expect("cut");
    wal.checkpoint(upto, keep, mint).expect("checkpoint");
    drop(wal);
    let got: Vec<RefHistogramSample> = replay(dir.path())
        .into_iter()
        .flat_map(|r| match r {
            Record::HistogramSamples(s) => s,
            other => panic!("only histogram samples were logged, got {other:?}"),
        })
        .collect();
    let want: Vec<RefHistogramSample> = list.into_iter().filter(|s| keep(s.series_ref) && s.t >= mint).collect();
    assert_eq!(got, want);
});
