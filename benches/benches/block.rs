//! Block throughput: writing a block, select-and-iterate over a mapped block,
//! and compaction, in samples per second.
//!
//! The block holds 10k series × 2 h at a 15 s scrape interval (480 samples
//! per series, 4.8M samples), like one head cut of a mid-sized Prometheus.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::block::{write_block, Block, BlockWriteOptions, CompactionMeta};
use tidemark_storage::chunkenc::Encoding;
use tidemark_storage::compact::compact;
use tidemark_storage::{Labels, MatchOp, Matcher, Sample, SampleIterator};

const H2: i64 = 2 * 3_600_000;
const STEP: i64 = 15_000;

/// `n` series of counters and gauges over `[t0, t0 + 2h)`, sorted by labels.
fn series(n: usize, t0: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..n)
        .map(|i| {
            let l = Labels::new([
                ("__name__", if i % 2 == 0 { "http_requests_total" } else { "process_resident_memory_bytes" }),
                ("instance", &format!("host-{:04}:9100", i / 10)),
                ("job", ["api", "web", "db", "cache", "queue"][i % 5]),
                ("code", ["200", "500"][(i / 2) % 2]),
                ("series", &i.to_string()),
            ])
            .unwrap();
            let mut v = (i * 1000) as f64;
            let samples = (0..H2 / STEP)
                .map(|k| {
                    // Scrape jitter of a few ms, counters that grow, gauges that wander.
                    let t = t0 + k * STEP + (k * 7 + i as i64) % 4;
                    v = if i % 2 == 0 {
                        v + ((k * 31 + i as i64) % 17) as f64
                    } else {
                        5e8 + ((k * i as i64) % 4096) as f64
                    };
                    Sample::new(t, v)
                })
                .collect();
            (l, samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn opts(encoding: Encoding) -> BlockWriteOptions {
    match encoding {
        Encoding::Xor => BlockWriteOptions::xor(),
        Encoding::Sealed => BlockWriteOptions::default(),
    }
}

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

fn compaction(c: &mut Criterion) {
    // Three adjacent 2 h blocks of 2k series each → one 6 h block.
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = Vec::new();
    let mut total = 0u64;
    for i in 0..3 {
        let data = series(2_000, i * H2);
        total += data.iter().map(|(_, s)| s.len() as u64).sum::<u64>();
        let m = write_block(
            dir.path(),
            i * H2,
            (i + 1) * H2,
            CompactionMeta::level1(),
            data.into_iter(),
            &opts(Encoding::Xor),
        )
        .unwrap();
        blocks.push(Block::open(&dir.path().join(&m.ulid)).unwrap());
    }
    let refs: Vec<&Block> = blocks.iter().collect();
    let mut g = c.benchmark_group("compact");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(total));
    for encoding in [Encoding::Xor, Encoding::Sealed] {
        g.bench_function(format!("3x2h_2k_series_to_{encoding:?}"), |bench| {
            bench.iter_batched(
                || tempfile::tempdir().unwrap(),
                |out| {
                    compact(out.path(), &refs, &opts(encoding)).unwrap();
                    out
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, select, compaction);
criterion_main!(benches);
