//! Head append throughput, in samples per second on one thread: by cached
//! series refs (the hot path) and by series handles (the receiver's), by
//! label sets (hash lookup per sample), and
//! out of order within the out-of-order window; the same hot path with
//! closed chunks going to a head chunk file; and reading 10k series' closed
//! chunks back (`head_read`: from the file's map versus RAM); creating
//! series (`head_create`: maps and inverted index); durable commits of
//! four threads at once through a database's WAL (`head_commit_wal`: the
//! fsync each commit waits for is shared by the commits queued with it).
//!
//! ```text
//! cargo bench -p tidemark-bench --bench head -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tidemark_storage::head::{Head, HeadChunks, HeadOptions};
use tidemark_storage::Labels;

const SERIES: usize = 10_000;

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`).
/// The benchmark machine is shared, so the `*_cpu` variants report time on
/// CPU instead of wall time: a fairer single-core figure.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// Appends one sample to each series of `refs` per iteration (one commit
/// each, 15 s apart from `*t` on) and returns the thread CPU time spent.
fn append_rounds_cpu(head: &Head, refs: &[u64], t: &mut i64, iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        *t += 15_000;
        let start = thread_cpu().unwrap_or_default();
        let mut app = head.appender();
        for (i, &r) in refs.iter().enumerate() {
            app.append_ref(r, *t, (*t / 1000 + i as i64) as f64).expect("append_ref");
        }
        app.commit().expect("commit");
        spent += thread_cpu().unwrap_or_default().saturating_sub(start);
    }
    spent
}

fn labels(i: usize) -> Labels {
    Labels::new([
        ("__name__", format!("metric_{}", i % 100)),
        ("instance", format!("10.0.{}.{}:9100", i / 256 % 256, i % 256)),
        ("job", format!("job-{}", i % 10)),
        ("mode", ["idle", "user", "system", "iowait"][i % 4].to_string()),
        ("series", i.to_string()),
    ])
    .expect("valid labels")
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

    let head = Head::new(HeadOptions::default(), None);
    let all: Vec<Labels> = (0..SERIES).map(labels).collect();
    let mut app = head.appender();
    let refs: Vec<u64> = all.iter().map(|l| app.append(l, 0, 0.0).expect("append")).collect();
    app.commit().expect("commit");

    // One scrape of 10k series per iteration: one appender, one commit.
    let mut t = 0i64;
    g.bench_function("refs_10k_series", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                app.append_ref(r, t, (t / 1000 + i as i64) as f64).expect("append_ref");
            }
            app.commit().expect("commit")
        })
    });

    if thread_cpu().is_some() {
        g.bench_function("refs_10k_series_cpu", |b| {
            b.iter_custom(|iters| append_rounds_cpu(&head, &refs, &mut t, iters))
        });
    }

    // The receiver's hot path since round 5: handles (ref + address,
    // checked against the head's removal epoch) instead of the search by
    // ref, with and without prefetching a few series ahead.
    let mut handles: Vec<_> = {
        let app = head.appender();
        refs.iter().map(|&r| app.handle(r).expect("handle")).collect()
    };
    for ahead in [0usize, 4] {
        g.bench_function(format!("handles_10k_series_prefetch_{ahead}"), |b| {
            b.iter(|| {
                t += 15_000;
                let mut app = head.appender();
                for i in 0..handles.len() {
                    if ahead > 0 {
                        if let Some(h) = handles.get(i + ahead) {
                            app.prefetch(h);
                        }
                    }
                    app.append_handle(&mut handles[i], t, (t / 1000 + i as i64) as f64).expect("append_handle");
                }
                app.commit().expect("commit")
            })
        });
    }

    // The receiver's shape for a series it has seen: check the stored
    // labels, then append. Fused (one lookup) and in two steps (two).
    g.bench_function("checked_refs_10k_series_fused", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                let res = app.append_ref_if(r, |l| l.len() == 5, t, (t / 1000 + i as i64) as f64);
                assert!(matches!(res, Some(Ok(()))));
            }
            app.commit().expect("commit")
        })
    });
    g.bench_function("checked_refs_10k_series_two_steps", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                assert!(app.ref_matches(r, |l| l.len() == 5));
                app.append_ref(r, t, (t / 1000 + i as i64) as f64).expect("append_ref");
            }
            app.commit().expect("commit")
        })
    });

    // Remote-write / backfill shape: 10 consecutive samples per series in
    // one batch, so each series' state is touched while it is hot.
    let mut t = 1_000_000_000i64;
    g.throughput(Throughput::Elements(SERIES as u64 * 10));
    g.bench_function("refs_10k_series_x10_consecutive", |b| {
        b.iter(|| {
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                for k in 0..10 {
                    app.append_ref(r, t + k * 15_000, (t / 1000 + k + i as i64) as f64).expect("append_ref");
                }
            }
            t += 150_000;
            app.commit().expect("commit")
        })
    });
    g.throughput(Throughput::Elements(SERIES as u64));

    let head = Head::new(HeadOptions::default(), None);
    let mut t = 0i64;
    g.bench_function("labels_10k_series", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = head.appender();
            for (i, l) in all.iter().enumerate() {
                app.append(l, t, (t / 1000 + i as i64) as f64).expect("append");
            }
            app.commit().expect("commit")
        })
    });

    // Out of order: every series is 1 h ahead, and each scrape appends one
    // sample per series older than its newest, inside a 2 h window (each
    // iteration 10 ms further back, so timestamps never repeat). These
    // samples go to the series' out-of-order chunks.
    let hour = 3_600_000;
    let head = Head::new(HeadOptions { ooo_window: 2 * hour, ..HeadOptions::default() }, None);
    let mut app = head.appender();
    let refs: Vec<u64> = all.iter().map(|l| app.append(l, hour, 0.0).expect("append")).collect();
    app.commit().expect("commit");
    let mut t = hour;
    g.bench_function("refs_10k_series_out_of_order", |b| {
        b.iter(|| {
            t -= 10;
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                app.append_ref(r, t, (t / 1000 + i as i64) as f64).expect("append_ref");
            }
            app.commit().expect("commit")
        })
    });
    let stats = head.stats();
    // Criterion ran at least one iteration; all of it must have taken the
    // out-of-order path, not been rejected.
    assert_eq!(stats.rejected_out_of_order, 0);
    assert_eq!(stats.out_of_order_samples_appended, (hour - t) as u64 / 10 * SERIES as u64);
    g.finish();
}

/// A head whose closed chunks go to a head chunk file in `dir`.
fn file_head(dir: &std::path::Path) -> Head {
    file_head_with(dir, HeadOptions::default())
}

fn file_head_with(dir: &std::path::Path, opts: HeadOptions) -> Head {
    let store = HeadChunks::open(tidemark_storage::vfs::os(), &dir.join("chunks_head"), 128 << 20).expect("store");
    Head::with_chunks(opts, None, store)
}

/// One scrape of 10k series per iteration, by refs, CPU time, with closed
/// chunks written to a head chunk file (compare `refs_10k_series_cpu`):
/// chunk cuts staggered per series (the default) and aligned (every series
/// cuts at the same instants; `_aligned`), which costs about one chunk cut
/// per series per block range less.
fn append_chunk_file(c: &mut Criterion) {
    let Some(_) = thread_cpu() else { return };
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (name, stagger) in [("refs_10k_series_chunk_file_cpu", true), ("refs_10k_series_chunk_file_aligned_cpu", false)]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let head = file_head_with(dir.path(), HeadOptions { stagger_chunk_cuts: stagger, ..HeadOptions::default() });
        let all: Vec<Labels> = (0..SERIES).map(labels).collect();
        let mut app = head.appender();
        let refs: Vec<u64> = all.iter().map(|l| app.append(l, 0, 0.0).expect("append")).collect();
        app.commit().expect("commit");
        let mut t = 0i64;
        g.bench_function(name, |b| b.iter_custom(|iters| append_rounds_cpu(&head, &refs, &mut t, iters)));
    }
    g.finish();
}

/// Selecting every series of a head with 480 samples per series (3 closed
/// chunks and an open one each) and decoding all samples: closed chunks
/// read from the head chunk file (CRC-checked, through the map) versus from
/// RAM segments (copied).
fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("head_read");
    g.throughput(Throughput::Elements(SERIES as u64 * 480));
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let all: Vec<Labels> = (0..SERIES).map(labels).collect();
    for (name, head) in [
        ("select_decode_480_chunk_file", file_head(dir.path())),
        ("select_decode_480_ram", Head::new(HeadOptions::default(), None)),
    ] {
        let mut app = head.appender();
        let refs: Vec<u64> = all.iter().map(|l| app.append(l, 0, 0.0).expect("append")).collect();
        app.commit().expect("commit");
        for k in 1..480i64 {
            let mut app = head.appender();
            for (i, &r) in refs.iter().enumerate() {
                app.append_ref(r, k * 15_000, (k * 7 + i as i64 % 13) as f64).expect("append_ref");
            }
            app.commit().expect("commit");
        }
        let mut buf = Vec::new();
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0;
                for s in head.select(&[], i64::MIN, i64::MAX) {
                    for c in &s.chunks {
                        buf.clear();
                        c.decode_into(&mut buf).expect("decode");
                        n += buf.len();
                    }
                }
                assert_eq!(n, SERIES * 480);
                n
            })
        });
    }
    g.finish();
}

/// Creating 10k series in a fresh head (one sample each, one commit):
/// the series structs, label-hash and ref maps and the inverted index's
/// postings lists (4-byte ids, grown by an eighth) are all built here.
fn create(c: &mut Criterion) {
    let mut g = c.benchmark_group("head_create");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let all: Vec<Labels> = (0..SERIES).map(labels).collect();
    g.bench_function("series_10k", |b| {
        b.iter_batched(
            || Head::new(HeadOptions { stripes: 1024, ..HeadOptions::default() }, None),
            |head| {
                let mut app = head.appender();
                for l in &all {
                    app.append(l, 0, 1.0).expect("append");
                }
                app.commit().expect("commit");
                head
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Four threads commit at once, each 500 samples of its own series, to a
/// database with a WAL fsynced before every commit returns: the time of one
/// round (four durable commits). Commits that wait for the fsync together
/// share it.
fn commit_wal(c: &mut Criterion) {
    const THREADS: usize = 4;
    const PER_COMMIT: usize = 500;
    let mut g = c.benchmark_group("head_commit_wal");
    g.throughput(Throughput::Elements((THREADS * PER_COMMIT) as u64));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = tidemark_storage::Db::builder(dir.path()).maintenance_interval(None).open().expect("open db");
    let refs: Vec<Vec<u64>> = (0..THREADS)
        .map(|th| {
            let mut app = db.appender();
            let refs =
                (0..PER_COMMIT).map(|i| app.append(&labels(th * PER_COMMIT + i), 0, 0.0).expect("append")).collect();
            app.commit().expect("commit");
            refs
        })
        .collect();
    let t = std::sync::atomic::AtomicI64::new(0);
    g.bench_function("4_threads_x_500_samples_every_commit", |b| {
        b.iter(|| {
            let t = t.fetch_add(15_000, std::sync::atomic::Ordering::Relaxed) + 15_000;
            std::thread::scope(|sc| {
                for refs in &refs {
                    let db = &db;
                    sc.spawn(move || {
                        let mut app = db.appender();
                        for &r in refs {
                            app.append_ref(r, t, 1.0).expect("append_ref");
                        }
                        app.commit().expect("commit");
                    });
                }
            });
        });
    });
    g.finish();
    db.close().expect("close");
}

criterion_group!(benches, append, append_chunk_file, read, create, commit_wal);
criterion_main!(benches);
