//! WAL append throughput: samples per second for commits of 1000 samples,
//! without fsync and with an fsync per commit.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_storage::wal::{Record, RefSample, RefSeries, SyncPolicy, Wal, WalOptions};
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
    for (name, sync) in [("never_1000", SyncPolicy::Never), ("every_commit_1000", SyncPolicy::EveryCommit)] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), WalOptions { sync, ..WalOptions::default() }).unwrap();
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

criterion_group!(benches, log_throughput);
criterion_main!(benches);
