//! Reading arbitrary bytes as a head chunk segment (`chunks_head/`,
//! `docs/format/head_chunks.md`, versions 2 and 3) must never panic, and every record it
//! returns must decode (or fail to decode) without panicking, whatever its
//! encoding. Even first byte: the rest is the segment body after a valid
//! header. Odd: the rest, read with `arbitrary`, is a list of records
//! (series ref, mint, span, encoding byte, data) assembled with correct
//! CRC32-Cs, so the scan gets past the checksum into the XOR and sealed
//! decoders; the scan must then return exactly those records up to the first
//! with an unknown encoding, and a cut anywhere must return a prefix of them.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_fuzz::crc32c;
use tidemark_storage::chunkenc::{Chunk, Encoding};
use tidemark_storage::head::chunk_file::scan_segment;

const HEADER: [u8; 8] = *b"TMHC\x02\0\0\0";

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn decode_all(bytes: &[u8]) -> usize {
    let Ok(scan) = scan_segment(bytes) else { return 0 };
    assert!(scan.valid_len <= bytes.len());
    assert_eq!(scan.stopped.is_none(), scan.valid_len == bytes.len());
    for r in &scan.records {
        let chunk = Chunk {
            mint: r.mint,
            maxt: r.maxt,
            encoding: r.encoding,
            bytes: r.data.to_vec().into(),
            timestamps: None,
            summary: r.summary,
        };
        let _ = chunk.decode_into(&mut Vec::new());
        let mut it = chunk.iter();
        let _ = it.drain_range(r.mint, r.maxt, &mut Vec::new());
    }
    scan.records.len()
}

fuzz_target!(|input: &[u8]| {
    let Some((&flag, rest)) = input.split_first() else { return };
    if flag % 2 == 0 {
        let mut seg = HEADER.to_vec();
        seg.extend_from_slice(rest);
        decode_all(&seg);
        // The same body as version 3 records (with a summary field).
        seg[4] = 3;
        decode_all(&seg);
        decode_all(rest);
        return;
    }
    let records = <Vec<(u64, i64, u64, u8, Vec<u8>)>>::arbitrary_take_rest(Unstructured::new(rest)).unwrap_or_default();
    let mut seg = HEADER.to_vec();
    let mut expect = 0;
    let mut known = true;
    for (series, mint, span, encoding, data) in records.iter().take(64) {
        let start = seg.len();
        put_uvarint(&mut seg, *series);
        put_uvarint(&mut seg, ((mint << 1) ^ (mint >> 63)) as u64);
        put_uvarint(&mut seg, *span);
        // Mostly the two real encodings, sometimes an unknown one.
        let e = match encoding % 5 {
            0..=1 => Encoding::Xor as u8,
            2..=3 => Encoding::Sealed as u8,
            _ => *encoding,
        };
        seg.push(e);
        put_uvarint(&mut seg, data.len() as u64);
        seg.extend_from_slice(data);
        let crc = crc32c(&seg[start..]);
        seg.extend_from_slice(&crc.to_le_bytes());
        known &= Encoding::try_from(e).is_ok();
        if known {
            expect += 1;
        }
    }
    let scan = scan_segment(&seg).expect("a valid header");
    assert_eq!(scan.records.len(), expect);
    for (r, (series, mint, span, _, data)) in scan.records.iter().zip(&records) {
        assert_eq!(
            (r.series_ref, r.mint, r.maxt, r.data),
            (*series, *mint, mint.wrapping_add(*span as i64), &data[..])
        );
    }
    decode_all(&seg);
    // A torn tail: a cut anywhere leaves a prefix of the records.
    let cut = HEADER.len() + seg.len() / 3;
    if cut <= seg.len() {
        let torn = scan_segment(&seg[..cut]).expect("a valid header");
        assert!(torn.records.len() <= scan.records.len());
        assert_eq!(torn.records[..], scan.records[..torn.records.len()]);
    }
});
