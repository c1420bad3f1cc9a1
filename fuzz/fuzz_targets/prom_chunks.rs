//! Arbitrary bytes as the small files of a Prometheus block, by the first
//! byte: 0 a chunk record (length, encoding, data, CRC) then its samples;
//! 1 a chunk's data with the encoding in the next byte, bypassing the CRC
//! (XOR, integer and float histogram decoders); 2 a `tombstones` file, its
//! CRC repaired; 3 a chunk segment header; 4 a `meta.json`. Errors, never
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_import::prometheus::{chunks, meta, tombstones};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else { return };
    match mode % 5 {
        0 => {
            if let Ok((enc, data)) = chunks::parse_chunk_record(rest) {
                let _ = chunks::decode_chunk(enc, data);
            }
        }
        1 => {
            if let Some((&enc, data)) = rest.split_first() {
                let _ = chunks::decode_chunk(enc % 4, data);
            }
        }
        2 => {
            let mut b = rest.to_vec();
            if b.len() >= 9 {
                let n = b.len();
                let crc = crc32c::crc32c(&b[5..n - 4]);
                b[n - 4..].copy_from_slice(&crc.to_be_bytes());
            }
            if let Ok(t) = tombstones::Tombstones::parse(&b) {
                let _ = t.is_deleted(1, 0);
            }
        }
        3 => {
            let _ = chunks::check_segment_header(rest);
        }
        _ => {
            let _ = meta::parse_meta(rest);
        }
    }
});
