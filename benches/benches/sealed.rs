//! Sealed block codec throughput: encode and decode, in samples per second,
//! on real series from the capture (when present) and on synthetic data.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tidemark_bench::capture::{default_capture_path, load_capture};
use tidemark_storage::chunkenc::sealed::{self, EncodeOptions};
use tidemark_storage::chunkenc::{Chunk, Encoding};
use tidemark_storage::Sample;

/// One 2h block's worth at a 5 s scrape.
const N: usize = 1440;

fn synthetic() -> Vec<(String, Vec<Sample>)> {
    let t = |i: usize| 1_795_257_283_731 + i as i64 * 5000 + ((i * 7919) % 5) as i64;
    let mut c = 0.0f64;
    let counter: Vec<Sample> = (0..N)
        .map(|i| {
            c = ((c * 100.0).round() + ((i * 31) % 17) as f64) / 100.0;
            Sample::new(t(i), c)
        })
        .collect();
    let mut x = 0.1234567f64;
    let floats: Vec<Sample> = (0..N)
        .map(|i| {
            x = (x * 3.9876).fract() + 1e-3;
            Sample::new(t(i), x)
        })
        .collect();
    // A busy counter like the comparison fleet's (`node_cpu_seconds_total`:
    // two decimals, increments of a few thousand hundredths ± noise), whose
    // mantissa deltas version 3 stores as byte planes.
    let mut m = 4_000_000i64;
    let mut r = 7u64;
    let busy: Vec<Sample> = (0..N)
        .map(|i| {
            r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            m += 3_000 + ((r >> 33) % 400) as i64;
            Sample::new(t(i), m as f64 / 100.0)
        })
        .collect();
    vec![
        ("synthetic_counter_2dp".into(), counter),
        ("synthetic_busy_counter_2dp".into(), busy),
        ("synthetic_full_precision".into(), floats),
    ]
}

/// The first block window of a few typical series of the capture.
fn real() -> Vec<(String, Vec<Sample>)> {
    let path = default_capture_path();
    let Ok(series) = load_capture(&path) else {
        eprintln!("capture not found at {}; real-data benches skipped", path.display());
        return Vec::new();
    };
    let wanted = [
        "node_cpu_seconds_total",
        "node_scrape_collector_duration_seconds",
        "go_memstats_alloc_bytes",
        "prometheus_http_request_duration_seconds_bucket",
        "node_pressure_cpu_waiting_seconds_total",
    ];
    wanted
        .iter()
        .filter_map(|name| {
            let (_, samples) = series.iter().find(|(l, _)| l.metric_name() == Some(name))?;
            let end = samples.partition_point(|s| s.t.div_euclid(7_200_000) == samples[0].t.div_euclid(7_200_000));
            Some((name.to_string(), samples[..end].to_vec()))
        })
        .collect()
}

fn sealed_codec(c: &mut Criterion) {
    let inputs: Vec<_> = synthetic().into_iter().chain(real()).collect();
    let mut g = c.benchmark_group("sealed");
    for (name, samples) in &inputs {
        g.throughput(Throughput::Elements(samples.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), samples, |b, s| {
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                sealed::encode(s, &mut out);
                out.len()
            })
        });
        let mut bytes = Vec::new();
        sealed::encode(samples, &mut bytes);
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            let mut out = Vec::with_capacity(N);
            b.iter(|| {
                out.clear();
                sealed::decode(bytes, &mut out).expect("decodes");
                out.len()
            })
        });
        // As a query reads a sealed chunk: through `Chunk::iter`, keeping
        // the samples of the last 5 minutes (a `[5m]` window reaching into
        // the chunk before the head's open one).
        let chunk = Chunk {
            mint: samples[0].t,
            maxt: samples[samples.len() - 1].t,
            encoding: Encoding::Sealed,
            bytes: bytes.clone().into(),
            timestamps: None,
            summary: None,
        };
        g.bench_with_input(BenchmarkId::new("iter_drain_last_5m", name), &chunk, |b, chunk| {
            let mut out = Vec::with_capacity(N);
            b.iter(|| {
                out.clear();
                chunk.iter().drain_range(chunk.maxt - 300_000, i64::MAX, &mut out);
                out.len()
            })
        });
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        let mut shared = Vec::new();
        sealed::encode_with(
            samples,
            &EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() },
            &mut shared,
        );
        // Decoding a chunk whose timestamps are the shared column `ts`.
        let mut decode_shared = |id: &str, chunk: &Vec<u8>| {
            g.bench_with_input(BenchmarkId::new(id, name), chunk, |b, bytes| {
                let mut out = Vec::with_capacity(N);
                b.iter(|| {
                    out.clear();
                    sealed::decode_with(bytes, Some(&ts), &mut out).expect("decodes");
                    out.len()
                })
            });
        };
        decode_shared("decode_shared_ts", &shared);
        // The same in format version 2 (ivarint columns, no byte planes),
        // for an A/B of the version 3 layout in one process.
        let mut v2 = Vec::new();
        sealed::encode_version_2(
            samples,
            &EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() },
            &mut v2,
        );
        eprintln!("{name}: shared-ts chunk {} B (v3), {} B (v2)", shared.len(), v2.len());
        decode_shared("decode_shared_ts_v2", &v2);
    }
    g.finish();
}

criterion_group!(benches, sealed_codec);
criterion_main!(benches);
