//! Compaction throughput, in input samples per second: merging persisted
//! blocks into one, the way the database's planner does, for three shapes
//! of input.
//!
//! * `adjacent`: three consecutive 2 h blocks of the same 2k series (15 s
//!   scrape, 2.88 M samples) into one 6 h block, the planner's usual job.
//!   Samples of one series never interleave, so runs are concatenated.
//! * `overlapping`: two blocks over the same 2 h of the same 2k series, the
//!   second written later with samples between the first's (7.5 s later)
//!   and, on every 10th scrape, at the same timestamp (the later block
//!   wins), as after out-of-order ingestion or a backfill (1.92 M samples
//!   in). Every series takes the timestamp-merging path.
//! * `many_small_series`: three 2 h blocks of 20k short series each, 24
//!   samples per series per block (5 min scrape), half the series living
//!   through all three blocks and half replaced every block (pod churn):
//!   40k distinct series (10k + 3 × 10k), 1.44 M samples. The index and per-series overhead
//!   dominate instead of chunk data.
//!
//! ```text
//! cargo bench -p tidemark-bench --bench compaction -- --warm-up-time 1 --measurement-time 3
//! ```

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::block::{write_block, Block, CompactionMeta};
use tidemark_storage::chunkenc::Encoding;
use tidemark_storage::compact::compact;
use tidemark_storage::{Labels, Sample};

mod common;

use common::{opts, series, H2, STEP};

/// Writes `data` as a level-1 XOR block over `[mint, maxt)` in `dir`, as a
/// head cut does, and opens it.
fn block(dir: &Path, mint: i64, maxt: i64, data: Vec<(Labels, Vec<Sample>)>) -> Block {
    let m = write_block(dir, mint, maxt, CompactionMeta::level1(), data.into_iter(), &opts(Encoding::Xor))
        .expect("writing an input block");
    Block::open(&dir.join(&m.ulid)).expect("opening an input block")
}

fn samples_in(data: &[(Labels, Vec<Sample>)]) -> u64 {
    data.iter().map(|(_, s)| s.len() as u64).sum()
}

/// The second block of the `overlapping` case: the same series as
/// `series(n, 0)`, each sample moved 7.5 s later, except every 10th scrape,
/// which keeps the first block's timestamp with another value.
fn shifted(n: usize) -> Vec<(Labels, Vec<Sample>)> {
    series(n, 0)
        .into_iter()
        .map(|(l, s)| {
            let s = s
                .into_iter()
                .enumerate()
                .map(|(k, x)| if k % 10 == 0 { Sample::new(x.t, x.v + 1.0) } else { Sample::new(x.t + STEP / 2, x.v) })
                .collect();
            (l, s)
        })
        .collect()
}

/// Block `b` of the `many_small_series` case over `[b·2h, (b+1)·2h)`: 10k
/// series present in every block and 10k that exist only in this one.
fn churned(b: i64) -> Vec<(Labels, Vec<Sample>)> {
    const PER_KIND: usize = 10_000;
    const SMALL_STEP: i64 = 300_000;
    let mut out: Vec<(Labels, Vec<Sample>)> = (0..2 * PER_KIND)
        .map(|i| {
            let stable = i < PER_KIND;
            let pod = if stable { format!("pod-{i}") } else { format!("pod-{b}-{i}") };
            let l = Labels::new([
                ("__name__", "container_cpu_usage_seconds_total"),
                ("namespace", ["default", "kube-system", "monitoring", "shop"][i % 4]),
                ("pod", &pod),
                ("container", ["app", "sidecar"][i % 2]),
            ])
            .expect("valid labels");
            let samples = (0..H2 / SMALL_STEP)
                .map(|k| Sample::new(b * H2 + k * SMALL_STEP + (i as i64 % 1000), (b * 100 + k) as f64 * 0.25))
                .collect();
            (l, samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn compaction(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    // (name, input blocks, input samples, samples the output must hold)
    let mut cases: Vec<(&str, Vec<Block>, u64, u64)> = Vec::new();

    let mut total = 0;
    let adjacent = (0..3)
        .map(|i| {
            let d = series(2_000, i * H2);
            total += samples_in(&d);
            block(dir.path(), i * H2, (i + 1) * H2, d)
        })
        .collect();
    cases.push(("adjacent_3x2h_2k_series", adjacent, total, total));

    let (first, second) = (series(2_000, 0), shifted(2_000));
    let total = samples_in(&first) + samples_in(&second);
    // Written in this order, so the second block has the later ulid and
    // wins the shared timestamps.
    let overlapping = vec![block(dir.path(), 0, H2, first), block(dir.path(), 0, H2, second)];
    // Every 10th of 480 scrapes is a shared timestamp: 48 per series collapse.
    cases.push(("overlapping_2x2h_2k_series", overlapping, total, total - 2_000 * 48));

    let mut total = 0;
    let small = (0..3)
        .map(|b| {
            let d = churned(b);
            total += samples_in(&d);
            block(dir.path(), b * H2, (b + 1) * H2, d)
        })
        .collect();
    cases.push(("many_small_series_3x2h_40k_series", small, total, total));

    let mut g = c.benchmark_group("compact");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for (name, blocks, total, expected) in &cases {
        let refs: Vec<&Block> = blocks.iter().collect();
        let probe = tempfile::tempdir().expect("temporary directory");
        let out = compact(probe.path(), &refs, &opts(Encoding::Sealed)).expect("compacting");
        let inputs: Vec<String> = blocks.iter().map(|b| b.meta().stats.num_series.to_string()).collect();
        eprintln!(
            "{name}: {} input samples in series {} → {} series, {} samples, {} chunks",
            total,
            inputs.join(" + "),
            out.stats.num_series,
            out.stats.num_samples,
            out.stats.num_chunks
        );
        assert_eq!(out.stats.num_samples, *expected, "{name}: samples in the compacted block");
        let distinct = if name.starts_with("many_small") { 40_000 } else { 2_000 };
        assert_eq!(out.stats.num_series, distinct, "{name}: series in the compacted block");
        g.throughput(Throughput::Elements(*total));
        for encoding in [Encoding::Xor, Encoding::Sealed] {
            g.bench_function(format!("{name}_to_{encoding:?}"), |bench| {
                bench.iter_batched(
                    || tempfile::tempdir().expect("temporary directory"),
                    |out| {
                        compact(out.path(), &refs, &opts(encoding)).expect("compacting");
                        out
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, compaction);
criterion_main!(benches);
