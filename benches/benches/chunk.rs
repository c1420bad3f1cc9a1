//! Chunk codec throughput: XOR encode and decode, in samples per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_storage::chunkenc::{XorAppender, XorIterator};
use tidemark_storage::{Sample, SampleIterator};

fn scrape_like(n: usize) -> Vec<Sample> {
    // A counter scraped every 15 s with a little jitter, like real data.
    let mut v = 1000.0;
    (0..n)
        .map(|i| {
            let t = 1_700_000_000_000 + i as i64 * 15_000 + ((i * 7919) % 5) as i64;
            v += ((i * 31) % 17) as f64;
            Sample::new(t, v)
        })
        .collect()
}

fn xor(c: &mut Criterion) {
    let samples = scrape_like(120);
    let mut g = c.benchmark_group("xor");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("encode_120", |b| {
        b.iter(|| {
            let mut a = XorAppender::new();
            for s in &samples {
                a.append(s.t, s.v);
            }
            a.into_bytes()
        })
    });
    let mut a = XorAppender::new();
    for s in &samples {
        a.append(s.t, s.v);
    }
    let bytes = a.into_bytes();
    g.bench_function("decode_120", |b| {
        b.iter(|| {
            let mut it = XorIterator::new(&bytes[..]);
            let mut sum = 0.0;
            while it.next() {
                sum += it.at().v;
            }
            sum
        })
    });
    // What a `[5m]` window at the end of a full open chunk asks: the last 20
    // samples of 120, reached by decoding the chunk from its start.
    let from = samples[100].t;
    g.bench_function("drain_last_20_of_120", |b| {
        let mut out = Vec::with_capacity(120);
        b.iter(|| {
            out.clear();
            let mut it = XorIterator::new(&bytes[..]);
            it.drain_range(from, i64::MAX, &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, xor);
criterion_main!(benches);
