//! WAL exemplar records (type 6). The first byte picks the mode:
//!
//! * even: the rest is the payload of one type-6 body (the type byte is
//!   put in front), in a frame with a correct CRC32-C, so the exemplar
//!   decoder (compressed or not) is reached: replay never panics, and
//!   whatever it decoded, logged again, replays identically;
//! * odd: the rest, read with `arbitrary`, is a list of exemplars (refs,
//!   times, any value bits, label sets with multi-byte and empty values),
//!   logged in records of up to `rest[0] + 1` exemplars, then replayed: the
//!   round trip is bit-exact. Then the log is checkpointed, keeping series
//!   whose reference has a chosen parity and times from a chosen `mint`:
//!   replay gives exactly those exemplars, in order.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_fuzz::crc32c;
use tidemark_storage::wal::{Record, RefExemplar, SyncPolicy, Wal, WalOptions};
use tidemark_storage::Labels;

/// Record type of exemplars (`docs/format/wal.md`).
const TYPE_EXEMPLARS: u8 = 6;

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

/// An exemplar label set: none, a trace id, or names and values from a
/// small alphabet with multi-byte characters (invalid sets are skipped).
fn labels(u: &mut Unstructured<'_>) -> arbitrary::Result<Labels> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => Labels::empty(),
        1 => Labels::new([("trace_id", format!("{:032x}", u128::arbitrary(u)?))]).unwrap_or_default(),
        _ => {
            let n = u.int_in_range(1usize..=4)?;
            let mut pairs = Vec::new();
            for _ in 0..n {
                let name: String = (0..u.int_in_range(1usize..=4)?)
                    .map(|_| Ok(*u.choose(&['a', 'b', '_', 'é'])?))
                    .collect::<arbitrary::Result<_>>()?;
                let value: String = (0..u.int_in_range(0usize..=6)?)
                    .map(|_| Ok(*u.choose(&['x', '0', ' ', '"', '🙂'])?))
                    .collect::<arbitrary::Result<_>>()?;
                pairs.push((name, value));
            }
            Labels::new(pairs).unwrap_or_default()
        }
    })
}

fn exemplars(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<RefExemplar>> {
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < 200 {
        let series_ref = u64::from(u.int_in_range(0u8..=15)?);
        let t = i64::from(i16::arbitrary(u)?);
        let v = match u.int_in_range(0u8..=1)? {
            0 => f64::from(i32::arbitrary(u)?) / 1000.0,
            _ => f64::from_bits(u64::arbitrary(u)?),
        };
        out.push(RefExemplar { series_ref, t, v, labels: labels(u)? });
    }
    Ok(out)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    if mode & 1 == 0 {
        let mut body = vec![TYPE_EXEMPLARS];
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
    let Ok(list) = exemplars(&mut u) else { return };
    if list.is_empty() {
        return;
    }
    let records: Vec<Record> = list.chunks(usize::from(per % 64) + 1).map(|c| Record::Exemplars(c.to_vec())).collect();
    round_trip(&records);

    // Checkpoint everything logged: what survives is exactly the exemplars
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
    let got: Vec<RefExemplar> = replay(dir.path())
        .into_iter()
        .flat_map(|r| match r {
            Record::Exemplars(e) => e,
            other => panic!("only exemplars were logged, got {other:?}"),
        })
        .collect();
    let want: Vec<RefExemplar> = list.into_iter().filter(|e| keep(e.series_ref) && e.t >= mint).collect();
    assert_eq!(got, want);
});
