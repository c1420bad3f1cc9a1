//! Decoding arbitrary bytes as an XOR chunk must never panic, and any
//! sequence of samples must round-trip bit-exactly. The input is both: the
//! whole of it is decoded as a chunk (so real chunks make good seeds), and
//! the same bytes, read with `arbitrary`, give the samples to encode.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tidemark_storage::chunkenc::{XorAppender, XorIterator};
use tidemark_storage::{collect_samples, Sample};

fuzz_target!(|bytes: &[u8]| {
    let _ = collect_samples(&mut XorIterator::new(bytes));

    let rows = Vec::<(i64, u64)>::arbitrary_take_rest(Unstructured::new(bytes)).unwrap_or_default();
    let samples: Vec<Sample> = rows.iter().take(1000).map(|&(t, v)| Sample::new(t, f64::from_bits(v))).collect();
    let mut a = XorAppender::new();
    for s in &samples {
        a.append(s.t, s.v);
    }
    let got = collect_samples(&mut XorIterator::new(a.bytes())).expect("own encoding decodes");
    assert_eq!(got, samples);
});
