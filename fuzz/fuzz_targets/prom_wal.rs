//! Arbitrary bytes as a Prometheus WAL: even first byte, the rest as a
//! segment file (pages, fragments, CRCs, snappy/zstd) whose records are
//! decoded; odd, the rest as one record body given straight to the record
//! decoder (series, samples, tombstones, histogram records), bypassing the
//! CRC. Errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_import::prometheus::wal::{decode_record, RecordReader};

fuzz_target!(|input: &[u8]| {
    let Some((&flag, rest)) = input.split_first() else { return };
    if flag & 1 == 0 {
        let mut r = RecordReader::new();
        let _ = r.read_segment(rest, |rec| decode_record(rec).map(|_| ()));
    } else {
        let _ = decode_record(rest);
    }
});
