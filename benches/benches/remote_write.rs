//! Remote write ingestion: a realistic request (500 node_exporter-like
//! series × 10 samples, snappy-compressed protobuf) through
//! `Receiver::handle` into an in-memory database, for 1.0 and 2.0, in
//! samples per second; plus decoding alone, to show where the time goes.
//!
//! Every iteration sends the next 10 samples of every series (a fresh body
//! is built outside the measurement), so each sample is really appended,
//! never rejected as a duplicate.
//!
//! `per_sample_*`: the shape Prometheus' queue manager sends and the
//! comparison tool replays, one `TimeSeries` per sample (labels repeated)
//! and 2,000 samples per request, cycling over 100k series so that series
//! lookups miss the CPU caches as they do at production scale. Before it
//! runs, the bench prints heap allocations per sample of that path
//! (counted by this binary's allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tidemark_remote::codec::{encode_v1, encode_v2, SymbolTable};
use tidemark_remote::proto::{v1, MetricType, Sample};
use tidemark_remote::receive::{decompress, Batch, Protocol};
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::Db;

/// Counts heap allocations (reallocations included), for the
/// allocations-per-sample figure.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counter has no effect on the returned memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SERIES: usize = 500;
const SAMPLES: usize = 10;
const STEP_MS: i64 = 15_000;
const START: i64 = 1_700_000_000_000;

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`).
/// The benchmark machine is shared, so the `*_cpu` variants report time on
/// CPU instead of wall time: a fairer single-core figure (with an
/// in-memory database all the work happens on the calling thread).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// Label pairs of series `i`, sorted by name, as node_exporter exposes them.
fn labels(i: usize) -> Vec<(String, String)> {
    const METRICS: [&str; 5] = [
        "node_cpu_seconds_total",
        "node_network_receive_bytes_total",
        "node_filesystem_avail_bytes",
        "node_disk_io_time_seconds_total",
        "node_memory_MemAvailable_bytes",
    ];
    let mut l = vec![
        ("__name__".to_string(), METRICS[i % METRICS.len()].to_string()),
        ("cpu".to_string(), (i / 5 % 16).to_string()),
        ("instance".to_string(), format!("10.0.{}.{}:9100", i / 80, i % 80)),
        ("job".to_string(), "node".to_string()),
        ("mode".to_string(), ["idle", "user", "system", "iowait", "irq"][i / 3 % 5].to_string()),
    ];
    l.sort();
    l
}

/// 10 samples per series starting at `t0`, counter-like values.
fn samples(i: usize, t0: i64) -> Vec<Sample> {
    (0..SAMPLES)
        .map(|k| {
            let t = t0 + k as i64 * STEP_MS;
            Sample { timestamp: t, value: ((t - START) / 1000) as f64 * (1.0 + i as f64 / 100.0) }
        })
        .collect()
}

fn body_v1(all: &[Vec<(String, String)>], t0: i64) -> Vec<u8> {
    let timeseries = all
        .iter()
        .enumerate()
        .map(|(i, l)| v1::TimeSeries {
            labels: l.iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
            samples: samples(i, t0),
            ..Default::default()
        })
        .collect();
    encode_v1(&v1::WriteRequest { timeseries, metadata: vec![] })
}

fn body_v2(all: &[Vec<(String, String)>], t0: i64) -> Vec<u8> {
    let mut st = SymbolTable::new();
    let series = all
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut s = st.series(l, samples(i, t0));
            s.metadata = Some(st.metadata(MetricType::Counter, "A node_exporter metric.", ""));
            s
        })
        .collect();
    encode_v2(&st.into_request(series))
}

fn receiver() -> Receiver {
    receiver_with(ReceiverOptions::default().series_cache_entries)
}

fn receiver_with(series_cache_entries: usize) -> Receiver {
    let db = Db::builder_in_memory().maintenance_interval(None).open().expect("in-memory db");
    // The synthetic clock runs ahead of the real one.
    let opts = ReceiverOptions { max_future: None, series_cache_entries, ..ReceiverOptions::default() };
    Receiver::new(Arc::new(db), Arc::new(MetadataStore::new()), opts)
}

fn remote_write(c: &mut Criterion) {
    let all: Vec<_> = (0..SERIES).map(labels).collect();
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements((SERIES * SAMPLES) as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));

    type Encode = fn(&[Vec<(String, String)>], i64) -> Vec<u8>;
    let versions: [(&str, Protocol, Encode); 2] = [("v1", Protocol::V1, body_v1), ("v2", Protocol::V2, body_v2)];
    for (name, protocol, encode) in versions {
        let sample_body = encode(&all, START);
        println!("{name}: {} series x {SAMPLES} samples = {} bytes compressed", SERIES, sample_body.len());

        let r = receiver();
        let mut t0 = START;
        g.bench_function(format!("{name}_handle_500x10"), |b| {
            b.iter_batched(
                || {
                    t0 += SAMPLES as i64 * STEP_MS;
                    encode(&all, t0)
                },
                |body| {
                    let resp = r.handle(Some(protocol.content_type()), Some("snappy"), &body);
                    assert_eq!(resp.status, 204, "{}", resp.body);
                },
                BatchSize::SmallInput,
            )
        });
        if thread_cpu().is_some() {
            g.bench_function(format!("{name}_handle_500x10_cpu"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        t0 += SAMPLES as i64 * STEP_MS;
                        let body = encode(&all, t0);
                        let start = thread_cpu().unwrap_or_default();
                        let resp = r.handle(Some(protocol.content_type()), Some("snappy"), &body);
                        spent += thread_cpu().unwrap_or_default().saturating_sub(start);
                        assert_eq!(resp.status, 204, "{}", resp.body);
                    }
                    spent
                })
            });
        }
        let s = r.stats();
        assert_eq!(s.samples_rejected, [0; tidemark_remote::RejectReason::COUNT]);

        g.bench_function(format!("{name}_decode_only_500x10"), |b| {
            b.iter(|| {
                let raw = decompress(&sample_body, 128 << 20).expect("snappy");
                Batch::decode(protocol, &raw).expect("protobuf").len()
            })
        });
        // What the receiver does: 1.0 labels sent together stay bytes
        // until a cache miss needs them split.
        g.bench_function(format!("{name}_decode_lazy_only_500x10"), |b| {
            b.iter(|| {
                let raw = decompress(&sample_body, 128 << 20).expect("snappy");
                Batch::decode_lazy(protocol, &raw).expect("protobuf").len()
            })
        });
    }
    g.finish();
}

/// Series cycled through by the per-sample shape.
const PER_SAMPLE_SERIES: usize = 100_000;
/// Samples (= `TimeSeries`) per request of the per-sample shape.
const PER_REQUEST: usize = 2000;

/// Labels of series `i` of the per-sample shape: six pairs, as a service's
/// `http_requests_total` carries them.
fn service_labels(i: usize) -> Vec<(String, String)> {
    let mut l = vec![
        (
            "__name__".to_string(),
            ["http_requests_total", "process_cpu_seconds_total", "go_goroutines"][i % 3].to_string(),
        ),
        ("instance".to_string(), format!("app-{}.prod.internal:8080", i / 60)),
        ("job".to_string(), ["api", "checkout", "search", "auth", "billing"][i / 60 % 5].to_string()),
        ("method".to_string(), ["GET", "POST"][i / 3 % 2].to_string()),
        ("route".to_string(), format!("/api/v1/resource{}", i / 6 % 10)),
        ("status".to_string(), ["200", "404", "500"][i / 120 % 3].to_string()),
    ];
    l.sort();
    l
}

/// Request `n` of the per-sample shape: the next 2,000 series in turn, each
/// with one sample; a pass over all series advances time by one step.
fn per_sample_body(all: &[Vec<(String, String)>], n: usize) -> Vec<u8> {
    let timeseries = (0..PER_REQUEST)
        .map(|k| {
            let g = n * PER_REQUEST + k;
            let (i, round) = (g % all.len(), (g / all.len()) as i64);
            let t = START + round * STEP_MS;
            v1::TimeSeries {
                labels: all[i].iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
                samples: vec![Sample { timestamp: t, value: (round * (i as i64 % 7)) as f64 }],
                ..Default::default()
            }
        })
        .collect();
    encode_v1(&v1::WriteRequest { timeseries, metadata: vec![] })
}

fn remote_write_per_sample(c: &mut Criterion) {
    let all: Vec<_> = (0..PER_SAMPLE_SERIES).map(service_labels).collect();
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements(PER_REQUEST as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    // The receiver as configured by default, and without its map from label
    // pairs to refs (every series validated, built and looked up by labels).
    for (suffix, entries) in [("", ReceiverOptions::default().series_cache_entries), ("_no_series_map", 0)] {
        let r = receiver_with(entries);
        let send = |body: &[u8]| {
            let resp = r.handle(Some(Protocol::V1.content_type()), Some("snappy"), body);
            assert_eq!(resp.status, 204, "{}", resp.body);
        };
        // Every series created (first pass), then allocations of a second pass.
        let per_pass = PER_SAMPLE_SERIES / PER_REQUEST;
        let mut n = 0;
        while n < per_pass {
            send(&per_sample_body(&all, n));
            n += 1;
        }
        let bodies: Vec<Vec<u8>> = (n..n + per_pass).map(|k| per_sample_body(&all, k)).collect();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for b in &bodies {
            send(b);
        }
        let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
        n += per_pass;
        println!(
            "per_sample{suffix}: {PER_SAMPLE_SERIES} series, {PER_REQUEST} samples per request: {:.3} heap allocations per sample (known series)",
            allocs as f64 / (per_pass * PER_REQUEST) as f64
        );
        g.bench_function(format!("v1_per_sample_100k_series_2000{suffix}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    per_sample_body(&all, n)
                },
                |body| send(&body),
                BatchSize::SmallInput,
            )
        });
        if thread_cpu().is_some() {
            g.bench_function(format!("v1_per_sample_100k_series_2000{suffix}_cpu"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        n += 1;
                        let body = per_sample_body(&all, n);
                        let start = thread_cpu().unwrap_or_default();
                        send(&body);
                        spent += thread_cpu().unwrap_or_default().saturating_sub(start);
                    }
                    spent
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, remote_write, remote_write_per_sample);
criterion_main!(benches);
