//! Closed head chunks as the head chunk file stores them (sealed at zstd
//! level `chunk_file::ZSTD_LEVEL`, -1 since round 7, when smaller than the
//! XOR chunk; level 1, rounds 5 and 6, alongside for comparison), on
//! 120-sample chunks of the production shape's synthetic fleet (the first
//! 1,000 series: node_exporter counters and gauges, service histograms):
//!
//! - `write/*`: what closing a chunk costs: XOR encode (the head does it
//!   anyway), and the re-encode the chunk file adds (XOR decode + sealed);
//! - `read/*`: what a query pays per chunk read back: XOR vs sealed, as a
//!   whole decode, through the chunk iterator queries use, and for the last
//!   20 samples only (a `[5m]` window at the end of the data);
//! - `scan`: reading a whole segment file record by record.
//!
//! Throughput is in samples.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidemark_bench::compare::load::{Load, SyntheticOptions};
use tidemark_storage::chunkenc::{sealed, Chunk, ChunkSummary, Encoding, Extreme, XorAppender, XorIterator};
use tidemark_storage::head::chunk_file::{scan_segment, ZSTD_LEVEL};
use tidemark_storage::head::{Head, HeadChunks, HeadOptions};
use tidemark_storage::{Labels, Sample};

const SERIES: usize = 1_000;

fn chunks() -> Vec<Vec<Sample>> {
    let load = Load::synthetic(SyntheticOptions {
        series: SERIES,
        targets: Some(6),
        samples_per_series: 240,
        end_ms: 1_780_000_000_000,
        seed: 42,
    });
    let mut per: Vec<Vec<Sample>> = vec![Vec::new(); SERIES];
    load.for_each_sample(|s, t, v| per[s].push(Sample::new(t, v)));
    per.iter().flat_map(|s| s.chunks(120).map(<[Sample]>::to_vec)).collect()
}

fn xor(samples: &[Sample]) -> Vec<u8> {
    let mut a = XorAppender::new();
    for s in samples {
        a.append(s.t, s.v);
    }
    a.into_bytes()
}

fn head_chunk_file(c: &mut Criterion) {
    let chunks = chunks();
    let n: usize = chunks.iter().map(Vec::len).sum();
    let xors: Vec<Vec<u8>> = chunks.iter().map(|c| xor(c)).collect();
    let sealed_at = |level: i32| -> Vec<Vec<u8>> {
        chunks
            .iter()
            .map(|c| {
                let mut out = Vec::new();
                sealed::encode_with_level(c, level, &mut out);
                out
            })
            .collect()
    };
    // What the file stores, and level 1 (rounds 5 and 6) for comparison.
    let sealeds = sealed_at(ZSTD_LEVEL);
    let sealeds_l1 = sealed_at(1);
    let mut g = c.benchmark_group("head_chunk_file");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("write/xor_encode", |b| b.iter(|| chunks.iter().map(|c| xor(c).len()).sum::<usize>()));
    for (name, level) in [("write/reencode_sealed", ZSTD_LEVEL), ("write/reencode_sealed_level1", 1)] {
        g.bench_function(name, |b| {
            let (mut dec, mut out) = (Vec::with_capacity(256), Vec::new());
            b.iter(|| {
                let mut bytes = 0;
                for x in &xors {
                    dec.clear();
                    out.clear();
                    XorIterator::new(&x[..]).decode_into(&mut dec).expect("decodes");
                    sealed::encode_with_level(&dec, level, &mut out);
                    bytes += out.len();
                }
                bytes
            })
        });
    }
    for (name, encoding, all) in [
        ("xor", Encoding::Xor, &xors),
        ("sealed", Encoding::Sealed, &sealeds),
        ("sealed_level1", Encoding::Sealed, &sealeds_l1),
    ] {
        let as_chunks: Vec<Chunk> = all
            .iter()
            .zip(&chunks)
            .map(|(b, c)| Chunk {
                mint: c[0].t,
                maxt: c[c.len() - 1].t,
                encoding,
                bytes: b.clone().into(),
                timestamps: None,
                summary: None,
            })
            .collect();
        g.bench_function(format!("read/{name}_decode_into"), |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let mut k = 0;
                for c in &as_chunks {
                    out.clear();
                    c.decode_into(&mut out).expect("decodes");
                    k += out.len();
                }
                k
            })
        });
        // A `[5m]` window at the end of the data: the last 20 samples of
        // the chunk before the open one (the whole chunk is decoded for them).
        g.bench_function(format!("read/{name}_tail_20"), |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let mut k = 0;
                for c in &as_chunks {
                    out.clear();
                    c.iter().drain_range(c.maxt - 19 * 15_000, c.maxt, &mut out);
                    k += out.len();
                }
                k
            })
        });
        g.bench_function(format!("read/{name}_iter_drain"), |b| {
            let mut out = Vec::with_capacity(256);
            b.iter(|| {
                let mut k = 0;
                for c in &as_chunks {
                    out.clear();
                    c.iter().drain_range(c.mint, c.maxt, &mut out);
                    k += out.len();
                }
                k
            })
        });
    }
    // `max_over_time` over a window that covers whole closed chunks: decode
    // each chunk and fold its values, or take the summary its record keeps
    // (what a reader of the head chunk file does since format version 3).
    let summaries: Vec<ChunkSummary> = chunks.iter().filter_map(|c| ChunkSummary::of(c)).collect();
    let sealed_chunks: Vec<Chunk> = sealeds
        .iter()
        .zip(&chunks)
        .map(|(b, c)| Chunk {
            mint: c[0].t,
            maxt: c[c.len() - 1].t,
            encoding: Encoding::Sealed,
            bytes: b.clone().into(),
            timestamps: None,
            summary: None,
        })
        .collect();
    g.bench_function("read/sealed_max_decoded", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            let mut best = f64::NAN;
            for c in &sealed_chunks {
                out.clear();
                c.decode_into(&mut out).expect("decodes");
                for s in &out {
                    if Extreme::Max.keep(s.v, best) {
                        best = s.v;
                    }
                }
            }
            best
        })
    });
    g.bench_function("read/sealed_max_summary", |b| {
        b.iter(|| {
            let mut best = f64::NAN;
            for v in summaries.iter().filter_map(|s| s.extreme(Extreme::Max)) {
                if Extreme::Max.keep(v, best) {
                    best = v;
                }
            }
            best
        })
    });
    // A real segment: the chunks written through a head into a chunk file.
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        HeadChunks::open(tidemark_storage::vfs::os(), &dir.path().join("chunks_head"), 128 << 20).expect("chunk store");
    let head = Head::with_chunks(HeadOptions::default(), None, store);
    let mut app = head.appender();
    for (i, c) in chunks.iter().enumerate() {
        let labels = Labels::new([("__name__", "x".to_string()), ("i", i.to_string())]).expect("labels");
        let r = app.append(&labels, c[0].t, c[0].v).expect("append");
        for s in &c[1..] {
            app.append_ref(r, s.t, s.v).expect("append");
        }
        // A sample far ahead closes the chunk.
        app.append_ref(r, c[0].t + 3 * 3_600_000, 0.0).expect("append");
    }
    app.commit().expect("commit");
    drop(head); // flushes nothing: read what reached the file
    let seg = std::fs::read_dir(dir.path().join("chunks_head"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| std::fs::read(e.ok()?.path()).ok())
        .unwrap_or_default();
    if let Ok(scan) = scan_segment(&seg) {
        let k = scan.records.len();
        g.throughput(Throughput::Bytes(seg.len() as u64));
        g.bench_function(format!("scan_segment_{k}_records"), |b| b.iter(|| scan_segment(&seg).map(|s| s.valid_len)));
    }
    g.finish();
}

criterion_group!(benches, head_chunk_file);
criterion_main!(benches);
