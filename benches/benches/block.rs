//! Block throughput: writing a block and select-and-iterate over a mapped
//! block, in samples per second (compaction is in `compaction.rs`).
//!
//! The block holds 10k series × 2 h at a 15 s scrape interval (480 samples
//! per series, 4.8M samples), like one head cut of a mid-sized Prometheus.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::block::{write_block, Block, BlockWriteOptions, CompactionMeta};
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

/// Chunk groups (index version 4) against one record per chunk, on a
/// block that holds only a slice of each series (as when data crosses a
/// block boundary): 10k series × 32 samples (8 min) and × 480 (2 h).
/// Reading all series decompresses each group once (the per-thread group
/// cache); reading one series decompresses its whole group, which is what
/// `read_one_series` measures (64 series far apart, so every read misses
/// the cache).
fn groups(c: &mut Criterion) {
    for samples in [32usize, 480] {
        let data: Vec<_> = series(10_000, 0)
            .into_iter()
            .map(|(l, mut s)| {
                s.truncate(samples);
                (l, s)
            })
            .collect();
        let total: u64 = data.iter().map(|(_, s)| s.len() as u64).sum();
        let maxt = (samples as i64) * common::STEP;
        let mut g = c.benchmark_group(format!("block_groups_{samples}_samples"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        for group_chunks in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let o = BlockWriteOptions { group_chunks, ..BlockWriteOptions::default() };
            let meta = write_block(dir.path(), 0, maxt, CompactionMeta::level1(), data.iter().cloned(), &o).unwrap();
            let b = Block::open(&dir.path().join(&meta.ulid)).unwrap();
            eprintln!(
                "groups={group_chunks}, {samples} samples per series: {} bytes in all ({:.3} bytes/sample)",
                b.size_bytes(),
                b.size_bytes() as f64 / meta.stats.num_samples as f64
            );
            let name = if group_chunks { "grouped" } else { "one_record_per_chunk" };
            g.throughput(Throughput::Elements(total));
            g.bench_function(format!("{name}/select_iterate_all"), |bench| {
                let all = [Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
                bench.iter(|| iterate_all(&b, &all))
            });
            let picks: Vec<[Matcher; 1]> =
                (0..64).map(|k| [Matcher::equal("series", ((k * 157) % 10_000).to_string())]).collect();
            g.throughput(Throughput::Elements(picks.len() as u64));
            g.bench_function(format!("{name}/read_one_series_x64"), |bench| {
                bench.iter(|| picks.iter().map(|m| iterate_all(&b, m).0).sum::<usize>())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, select, groups);
criterion_main!(benches);
