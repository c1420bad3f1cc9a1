//! Block throughput: writing a block and select-and-iterate over a mapped
//! block, in samples per second (compaction is in `compaction.rs`).
//!
//! The block holds 10k series × 2 h at a 15 s scrape interval (480 samples
//! per series, 4.8M samples), like one head cut of a mid-sized Prometheus.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::block::{write_block, Block, CompactionMeta};
use tidemark_storage::chunkenc::Encoding;
use tidemark_storage::{MatchOp, Matcher, SampleIterator};

mod common;

use common::{opts, series, H2};

fn iterate_all(b: &Block, ms: &[Matcher]) -> (usize, f64) {
    let mut n = 0;
    let mut sum = 0.0;
    for s in b.select(ms, i64::MIN, i64::MAX).unwrap() {
        for c in &s.chunks {
            let mut it = c.iter();
            while it.next() {
                sum += it.at().v;
                n += 1;
            }
            assert!(it.err().is_none());
        }
    }
    (n, sum)
}

fn select(c: &mut Criterion) {
    let data = series(10_000, 0);
    let total: u64 = data.iter().map(|(_, s)| s.len() as u64).sum();
    for encoding in [Encoding::Xor, Encoding::Sealed] {
        let dir = tempfile::tempdir().unwrap();
        let meta =
            write_block(dir.path(), 0, H2, CompactionMeta::level1(), data.iter().cloned(), &opts(encoding)).unwrap();
        let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
        let index_bytes = std::fs::metadata(b.dir().join("index")).unwrap().len();
        eprintln!(
            "{encoding:?} block: {} series, {} samples, {} chunks, index {index_bytes} bytes, {} bytes in all ({:.2} bytes/sample)",
            meta.stats.num_series,
            meta.stats.num_samples,
            meta.stats.num_chunks,
            b.size_bytes(),
            b.size_bytes() as f64 / meta.stats.num_samples as f64
        );
        let mut g = c.benchmark_group(format!("block_{encoding:?}"));
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(total));
        g.bench_function("select_iterate_all_10k_series", |bench| {
            let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
            bench.iter(|| iterate_all(&b, &all))
        });
        g.throughput(Throughput::Elements(total / 5));
        g.bench_function("select_iterate_job_eq_one_fifth", |bench| {
            let one = [Matcher::equal("job", "web")];
            bench.iter(|| iterate_all(&b, &one))
        });
        g.throughput(Throughput::Elements(total));
        g.bench_function("write_block_10k_series", |bench| {
            bench.iter_batched(
                || tempfile::tempdir().unwrap(),
                |d| {
                    write_block(d.path(), 0, H2, CompactionMeta::level1(), data.iter().cloned(), &opts(encoding))
                        .unwrap();
                    d
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, select);
criterion_main!(benches);
