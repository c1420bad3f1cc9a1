//! Decoding arbitrary bytes as an XOR chunk must never panic, and any
//! sequence of samples must round-trip bit-exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_storage::chunkenc::{XorAppender, XorIterator};
use tidemark_storage::{collect_samples, Sample};

fuzz_target!(|input: (Vec<u8>, Vec<(i64, u64)>)| {
    let (bytes, samples) = input;
    let _ = collect_samples(&mut XorIterator::new(&bytes[..]));

    let samples: Vec<Sample> = samples.iter().take(1000).map(|&(t, v)| Sample::new(t, f64::from_bits(v))).collect();
    let mut a = XorAppender::new();
    for s in &samples {
        a.append(s.t, s.v);
    }
    let got = collect_samples(&mut XorIterator::new(a.bytes())).expect("own encoding decodes");
    assert_eq!(got, samples);
});
