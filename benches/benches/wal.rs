//! WAL throughput in samples per second: appending commits of 1000 samples
//! (without fsync, with an fsync per commit, and from four callers at once
//! sharing fsyncs by group commit), appending and reading back
//! remote-write-shaped commits (2,000 samples of 11 targets: the compressed
//! record types' encoder and decoder on realistic values), reading the log
//! back, and replaying a log of 100k series into a fresh head (what a
//! restart does).
//!
//! ```text
//! cargo bench -p tidemark-bench --bench wal -- --warm-up-time 1 --measurement-time 3
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::head::{Head, HeadOptions};
use tidemark_storage::wal::{Record, RefSample, RefSeries, SyncPolicy, Wal, WalOptions, DEFAULT_ZERO_AHEAD};
use tidemark_storage::Labels;

const SERIES: u64 = 1000;

/// One scrape: a sample for each of 1000 series at the same timestamp.
fn scrape(round: i64) -> Record {
    let t = 1_700_000_000_000 + round * 15_000;
    Record::Samples((0..SERIES).map(|r| RefSample { series_ref: r, t, v: (round as f64) * 1.5 + r as f64 }).collect())
}

fn series_record() -> Record {
    Record::Series(
        (0..SERIES)
            .map(|r| RefSeries {
                series_ref: r,
                labels: Labels::new([("__name__", "http_requests_total"), ("instance", &format!("host-{r}"))]).unwrap(),
            })
            .collect(),
    )
}

fn log_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_log");
    g.throughput(Throughput::Elements(SERIES));
    let batches: Vec<Record> = (0..64).map(scrape).collect();
    // `every_commit_1000_growing`: without zeros written ahead, each commit
    // grows the file and its fdatasync also writes the inode and extent map.
    for (name, sync, zero_ahead) in [
        ("never_1000", SyncPolicy::Never, DEFAULT_ZERO_AHEAD),
        ("every_commit_1000", SyncPolicy::EveryCommit, DEFAULT_ZERO_AHEAD),
        ("every_commit_1000_growing", SyncPolicy::EveryCommit, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions { sync, zero_ahead, ..WalOptions::default() }).unwrap();
        wal.log(&[series_record()]).unwrap();
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                wal.log(std::slice::from_ref(&batches[i % batches.len()])).unwrap();
                i += 1;
            })
        });
        // Keep the temp dir bounded between benchmarks.
        let upto = wal.cut_segment().unwrap();
        wal.checkpoint(upto, |_| true, i64::MAX).unwrap();
    }
    // Four callers committing at once, an fsync per commit shared by the
    // ones queued together (group commit, as concurrent remote-write
    // requests commit): the throughput counts every caller's samples.
    const CALLERS: u64 = 4;
    g.throughput(Throughput::Elements(SERIES * CALLERS));
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.log(&[series_record()]).unwrap();
    g.bench_function("every_commit_1000_4_callers", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for c in 0..CALLERS as usize {
                    let (wal, batches) = (&wal, &batches);
                    s.spawn(move || {
                        for i in 0..iters as usize {
                            wal.log(std::slice::from_ref(&batches[(i + c) % batches.len()])).unwrap();
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    let upto = wal.cut_segment().unwrap();
    wal.checkpoint(upto, |_| true, i64::MAX).unwrap();
    g.finish();

    let mut g = c.benchmark_group("wal_replay");
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() }).unwrap();
    wal.log(&[series_record()]).unwrap();
    wal.log(&batches).unwrap();
    wal.close().unwrap();
    g.throughput(Throughput::Elements(SERIES * batches.len() as u64));
    g.bench_function("replay_64k_samples", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut n = 0usize;
                Wal::replay(dir.path(), |r| {
                    if let Record::Samples(s) = r {
                        n += s.len()
                    }
                })
                .unwrap();
                n
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Series in the many-series replay: a mid-sized Prometheus' head.
const MANY: u64 = 100_000;
/// Scrapes logged per series in the many-series replay.
const SCRAPES: i64 = 10;

/// Labels of series `r` of the many-series log, node_exporter-like.
fn many_labels(r: u64) -> Labels {
    Labels::new([
        ("__name__", format!("node_metric_{}", r % 200)),
        ("instance", format!("10.1.{}.{}:9100", r / 256 % 256, r % 256)),
        ("job", "node".to_string()),
        ("cpu", (r / 200 % 8).to_string()),
    ])
    .expect("valid labels")
}

/// Replays a log of 100k series and 10 scrapes of each (1M samples, 20
/// records of 10k series or samples, as commits of a 10k-series scrape
/// write them) into a fresh head: decoding, creating series with their
/// index entries, and appending samples. The throughput is samples; the
/// series records are part of the work measured.
fn replay_many_series(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() }).unwrap();
    let chunk = 10_000;
    for first in (0..MANY).step_by(chunk) {
        let refs = first..(first + chunk as u64).min(MANY);
        wal.log(&[Record::Series(refs.map(|r| RefSeries { series_ref: r, labels: many_labels(r) }).collect())])
            .unwrap();
    }
    for k in 0..SCRAPES {
        let t = 1_700_000_000_000 + k * 15_000;
        for first in (0..MANY).step_by(chunk) {
            let refs = first..(first + chunk as u64).min(MANY);
            let samples = refs.map(|r| RefSample { series_ref: r, t, v: (k as u64 * 7 + r) as f64 }).collect();
            wal.log(&[Record::Samples(samples)]).unwrap();
        }
    }
    let bytes = wal.size_bytes();
    wal.close().unwrap();
    eprintln!("many-series WAL: {MANY} series, {} samples, {bytes} bytes", MANY * SCRAPES as u64);

    let replay = || {
        let head = Head::new(HeadOptions::default(), None);
        Wal::replay(dir.path(), |r| match r {
            Record::Series(s) => s.into_iter().for_each(|s| head.replay_series(s.series_ref, s.labels)),
            Record::Samples(s) => head.replay_samples(&s),
            // This benchmark logs no histogram samples or exemplars.
            Record::HistogramSamples(_) | Record::Exemplars(_) => {}
        })
        .unwrap();
        head
    };
    let stats = replay().stats();
    assert_eq!(stats.num_series, MANY);
    assert_eq!(stats.replay_unknown_refs, 0);

    let mut g = c.benchmark_group("wal_replay");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(MANY * SCRAPES as u64));
    // The head is returned as the batch output, so dropping 100k series
    // happens outside the measurement.
    g.bench_function("replay_into_head_100k_series_1M_samples", |b| {
        b.iter_batched(|| (), |()| replay(), BatchSize::PerIteration)
    });
    g.finish();
}

/// One remote-write request as the receiver commits it: 2,000 samples of
/// 11 targets (consecutive references, one timestamp per target), values
/// as a service exposes them: integer counters, two-decimal counters,
/// page-sized gauges and one in ten with full float precision.
fn remote_write_record(round: i64) -> Record {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ round as u64;
    Record::Samples(
        (0..2000u64)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let target = i / 184;
                let t = 1_700_000_000_000 + round * 15_000 + target as i64 * 730;
                let v = match i % 10 {
                    0..=3 => (round as u64 * 40 + i * 1000 + x % 40) as f64,
                    4..=6 => ((round as u64 * 700 + i * 100_000 + x % 700) as f64) / 100.0,
                    7 | 8 => ((x % 1_000_000) * 4096) as f64,
                    _ => f64::from_bits(0x3fe0_0000_0000_0000 | (x & 0x000f_ffff_ffff_ffff)),
                };
                RefSample { series_ref: 1 + (round as u64 % 4) * 2000 + i, t, v }
            })
            .collect(),
    )
}

fn remote_write_records(c: &mut Criterion) {
    let batches: Vec<Record> = (0..64).map(remote_write_record).collect();
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() }).unwrap();
    let mut g = c.benchmark_group("wal_log");
    g.throughput(Throughput::Elements(2000));
    let mut i = 0;
    g.bench_function("never_remote_write_2000", |b| {
        b.iter(|| {
            wal.log(std::slice::from_ref(&batches[i % batches.len()])).unwrap();
            i += 1;
        })
    });
    g.finish();
    let upto = wal.cut_segment().unwrap();
    wal.checkpoint(upto, |_| true, i64::MAX).unwrap();
    let before = wal.size_bytes();
    wal.log(&batches).unwrap();
    let bytes = wal.size_bytes() - before;
    wal.close().unwrap();
    eprintln!("remote-write records: {:.3} WAL bytes/sample", bytes as f64 / (2000.0 * batches.len() as f64));

    let mut g = c.benchmark_group("wal_replay");
    g.throughput(Throughput::Elements(2000 * batches.len() as u64));
    g.bench_function("replay_remote_write_128k_samples", |b| {
        b.iter(|| {
            let mut n = 0usize;
            Wal::replay(dir.path(), |r| {
                if let Record::Samples(s) = r {
                    n += s.len()
                }
            })
            .unwrap();
            n
        })
    });
    g.finish();
}

criterion_group!(benches, log_throughput, remote_write_records, replay_many_series);
criterion_main!(benches);
