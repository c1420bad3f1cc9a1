//! Bytes per sample of the sealed block encoding on the real capture,
//! compared with 120-sample Gorilla XOR chunks, plus decode throughput.
//!
//! Every series is cut into 2h-aligned windows (block boundaries at
//! multiples of 7,200,000 ms), each window is encoded as one sealed chunk,
//! and every chunk is decoded and compared bit for bit with its input.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin bytes_per_sample [-- --levels 0,3,19 --top 15]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tidemark_bench::capture::{default_capture_path, load_capture};
use tidemark_storage::chunkenc::sealed::{self, EncodeOptions, ValueScheme};
use tidemark_storage::chunkenc::{XorAppender, XorIterator};
use tidemark_storage::{Labels, Sample};

const BLOCK_MS: i64 = 7_200_000;
const XOR_CHUNK: usize = 120;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut levels = vec![sealed::DEFAULT_ZSTD_LEVEL];
    let mut top = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--levels" => {
                levels =
                    args.next().ok_or("--levels needs a list")?.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--top" => top = args.next().ok_or("--top needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let path = default_capture_path();
    let t = Instant::now();
    let series = load_capture(&path)?;
    let total: usize = series.iter().map(|s| s.1.len()).sum();
    println!("capture: {} ({} series, {} samples, loaded in {:.1?})", path.display(), series.len(), total, t.elapsed());

    let windows = split_windows(&series);
    println!("windows: {} (2h-aligned)", windows.len());

    // XOR chunks of 120 samples, for comparison.
    let mut xor_chunks = Vec::new();
    for (_, w) in &windows {
        for c in w.chunks(XOR_CHUNK) {
            let mut a = XorAppender::new();
            for s in c {
                a.append(s.t, s.v);
            }
            xor_chunks.push(a.into_bytes());
        }
    }
    let xor_bytes: usize = xor_chunks.iter().map(Vec::len).sum();
    let mut buf = Vec::new();
    for (chunk, expect) in xor_chunks.iter().zip(windows.iter().flat_map(|w| w.1.chunks(XOR_CHUNK))) {
        buf.clear();
        XorIterator::new(&chunk[..]).decode_into(&mut buf)?;
        assert_eq!(&buf[..], expect, "XOR round trip");
    }
    let xor_rate = throughput(total, || {
        for chunk in &xor_chunks {
            buf.clear();
            XorIterator::new(&chunk[..]).decode_into(&mut buf).expect("decodes");
        }
    });
    println!(
        "xor/{XOR_CHUNK}:    {:>9} bytes  {:.3} B/sample  decode {:.0} M samples/s",
        xor_bytes,
        xor_bytes as f64 / total as f64,
        xor_rate / 1e6
    );

    for &level in &levels {
        let t = Instant::now();
        let mut chunks = Vec::with_capacity(windows.len());
        for (_, w) in &windows {
            let mut b = Vec::new();
            sealed::encode_with_level(w, level, &mut b);
            chunks.push(b);
        }
        let encode_time = t.elapsed();
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        for (chunk, (labels, expect)) in chunks.iter().zip(&windows) {
            buf.clear();
            sealed::decode(chunk, &mut buf)?;
            if buf != *expect {
                return Err(format!("sealed round trip differs for {labels}").into());
            }
        }
        let rate = throughput(total, || {
            for chunk in &chunks {
                buf.clear();
                sealed::decode(chunk, &mut buf).expect("decodes");
            }
        });
        println!(
            "sealed/zstd{level:<3} {:>9} bytes  {:.3} B/sample  decode {:.0} M samples/s  encode {:.1} M samples/s",
            bytes,
            bytes as f64 / total as f64,
            rate / 1e6,
            total as f64 / encode_time.as_secs_f64() / 1e6
        );
        let mut by_scheme: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        let mut by_name: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (chunk, (labels, w)) in chunks.iter().zip(&windows) {
            let info = sealed::inspect(chunk)?;
            let key = match info.scheme {
                Some(ValueScheme::Xor) => "xor".to_string(),
                Some(s) => format!("{s:?}"),
                None => "empty".to_string(),
            };
            let e = by_scheme.entry(key).or_default();
            e.0 += 1;
            e.1 += w.len();
            e.2 += chunk.len();
            let e = by_name.entry(labels.metric_name().unwrap_or("").to_string()).or_default();
            e.0 += w.len();
            e.1 += chunk.len();
        }
        for (k, (chunks, samples, bytes)) in by_scheme {
            println!(
                "    {k:<20} {chunks:>5} chunks {samples:>8} samples {bytes:>8} bytes  {:.3} B/sample",
                bytes as f64 / samples as f64
            );
        }
        if top > 0 {
            let mut names: Vec<_> = by_name.into_iter().collect();
            names.sort_by_key(|e| std::cmp::Reverse(e.1 .1));
            for (name, (samples, bytes)) in names.into_iter().take(top) {
                println!(
                    "    {name:<60} {samples:>8} samples {bytes:>8} bytes  {:.3} B/sample",
                    bytes as f64 / samples as f64
                );
            }
        }
    }
    // Series scraped together share their timestamps: store each distinct
    // timestamp column of a block once and let chunks refer to it.
    for &level in &levels {
        let mut columns: HashMap<(i64, Vec<i64>), usize> = HashMap::new();
        let mut column_bytes = Vec::new();
        let mut chunks = Vec::with_capacity(windows.len());
        let mut refs = Vec::with_capacity(windows.len());
        for (_, w) in &windows {
            let ts: Vec<i64> = w.iter().map(|s| s.t).collect();
            let key = (ts[0].div_euclid(BLOCK_MS), ts);
            let next = column_bytes.len();
            let id = *columns.entry(key.clone()).or_insert_with(|| {
                let mut b = Vec::new();
                sealed::encode_timestamps(&key.1, &mut b);
                column_bytes.push((key.1.clone(), b));
                next
            });
            let mut b = Vec::new();
            let opts = EncodeOptions { zstd_level: level, shared_timestamps: Some(&column_bytes[id].0) };
            assert!(sealed::encode_with(w, &opts, &mut b));
            chunks.push(b);
            refs.push(id);
        }
        let col_total: usize = column_bytes.iter().map(|c| c.1.len()).sum();
        let chunk_total: usize = chunks.iter().map(Vec::len).sum();
        // Decode the shared columns from their bytes, then every chunk.
        let mut decoded_cols = Vec::new();
        for (ts, b) in &column_bytes {
            let mut got = Vec::new();
            sealed::decode_timestamps(b, &mut got)?;
            assert_eq!(&got, ts, "timestamp column round trip");
            decoded_cols.push(got);
        }
        for ((chunk, &id), (labels, expect)) in chunks.iter().zip(&refs).zip(&windows) {
            buf.clear();
            sealed::decode_with(chunk, Some(&decoded_cols[id]), &mut buf)?;
            if buf != *expect {
                return Err(format!("shared-timestamp round trip differs for {labels}").into());
            }
        }
        let rate = throughput(total, || {
            for (chunk, &id) in chunks.iter().zip(&refs) {
                buf.clear();
                sealed::decode_with(chunk, Some(&decoded_cols[id]), &mut buf).expect("decodes");
            }
        });
        let bytes = col_total + chunk_total;
        println!(
            "sealed/zstd{level:<3} + shared timestamps: {} columns {} bytes + chunks {} bytes = {} bytes  {:.3} B/sample  decode {:.0} M samples/s",
            column_bytes.len(),
            col_total,
            chunk_total,
            bytes,
            bytes as f64 / total as f64,
            rate / 1e6
        );
    }
    println!(
        "note: a block's index adds roughly 50-100 KB for 941 series (about 0.04-0.08 B/sample here); \
         figures above are chunk bytes only (with shared timestamps, plus a column reference per chunk)"
    );
    Ok(())
}

/// Cuts every series at multiples of [`BLOCK_MS`].
fn split_windows(series: &[(Labels, Vec<Sample>)]) -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for (labels, samples) in series {
        let mut rest = &samples[..];
        while let Some(first) = rest.first() {
            let block = first.t.div_euclid(BLOCK_MS);
            let len = rest.partition_point(|s| s.t.div_euclid(BLOCK_MS) == block);
            out.push((labels.clone(), rest[..len].to_vec()));
            rest = &rest[len..];
        }
    }
    out
}

/// Best-of-25 samples per second of `f`, which decodes `samples` samples
/// (the minimum filters out time slices lost to other processes).
fn throughput(samples: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..25 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    samples as f64 / best.as_secs_f64()
}
