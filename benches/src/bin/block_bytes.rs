//! Where the bytes of a block go, on the comparison tool's synthetic fleet:
//! the fleet is generated in-process, written as one block or as two blocks
//! split at a 2 h boundary, and the bytes are broken down by file (index,
//! chunks) and, per metric name, by column (timestamps, values).
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin block_bytes -- --series 100000 --samples 264
//! cargo run --release -p tidemark-bench --bin block_bytes -- --series 100000 --samples 264 --split 0.5
//! ```
//!
//! `--targets N` gives the fleet the comparison's production shape (`N`
//! targets, busier services; `--series 368695 --targets 2000` is the
//! `production` preset). `--split F` puts a block boundary after the fraction `F` of the rounds,
//! as when the data crosses a 2 h boundary of the block range; repeat it for three or more blocks.

use std::collections::BTreeMap;
use std::path::Path;

use tidemark_bench::compare::load::{Load, SyntheticOptions};
use tidemark_storage::block::{write_block, BlockWriteOptions, CompactionMeta};
use tidemark_storage::chunkenc::sealed;
use tidemark_storage::{Labels, Sample};

struct Args {
    series: usize,
    samples: usize,
    split: Vec<f64>,
    families: bool,
    dict: bool,
    targets: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { series: 100_000, samples: 264, split: Vec::new(), families: true, dict: false, targets: None };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--series" => a.series = val()?.parse().map_err(|e| format!("--series: {e}"))?,
            "--samples" => a.samples = val()?.parse().map_err(|e| format!("--samples: {e}"))?,
            "--split" => a.split.push(val()?.parse().map_err(|e| format!("--split: {e}"))?),
            "--no-families" => a.families = false,
            "--dict" => a.dict = true,
            "--targets" => a.targets = Some(val()?.parse().map_err(|e| format!("--targets: {e}"))?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn dir_bytes(dir: &Path) -> (u64, u64, u64) {
    // (index, chunks, other)
    let (mut index, mut chunks, mut other) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let md = e.metadata().expect("metadata");
            if md.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "index") {
                index += md.len();
            } else if p.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "chunks") {
                chunks += md.len();
            } else {
                other += md.len();
            }
        }
    }
    (index, chunks, other)
}

/// Prints the byte size of each section of a block index, from its table
/// of contents (the last 124 bytes: six entries of offset u64, length u64,
/// crc u32, then the TOC's crc).
fn index_sections(path: &Path, samples: u64) {
    let bytes = std::fs::read(path).expect("read index");
    let names = ["symbols", "series", "label names", "postings table", "postings", "timestamps"];
    let toc = &bytes[bytes.len() - 124..];
    let mut parts = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let e = &toc[k * 20..k * 20 + 20];
        let len = u64::from_le_bytes(e[8..16].try_into().expect("8 bytes"));
        parts.push(format!("{name} {len} ({:.3})", len as f64 / samples as f64));
    }
    println!("  index sections, bytes (B/sample): {}", parts.join(", "));
}

/// Experiment: the chunks' raw columns (sealed, zstd off) compressed one by
/// one at level 9, without and with a dictionary trained on the block's own
/// chunks (zstd dictionaries carry entropy tables, which small inputs cannot
/// afford to carry themselves).
fn dict_experiment(data: &[Vec<Sample>], ranges: &[(i64, i64)]) {
    for &(lo, hi) in ranges {
        let mut raws: Vec<Vec<u8>> = Vec::new();
        for s in data {
            let part: Vec<Sample> = s.iter().filter(|s| s.t >= lo && s.t < hi).copied().collect();
            let ts: Vec<i64> = part.iter().map(|s| s.t).collect();
            let mut buf = Vec::new();
            sealed::encode_with(
                &part,
                &sealed::EncodeOptions { zstd_level: 0, shared_timestamps: Some(&ts) },
                &mut buf,
            );
            raws.push(buf);
        }
        let n: usize = data.iter().map(|s| s.iter().filter(|s| s.t >= lo && s.t < hi).count()).sum();
        let raw_total: usize = raws.iter().map(Vec::len).sum();
        let plain: usize = raws.iter().map(|r| zstd::bulk::compress(r, 9).expect("zstd").len().min(r.len())).sum();
        println!(
            "dict experiment [{lo}, {hi}): raw {:.3} B/sample, zstd 9 per chunk {:.3}",
            raw_total as f64 / n as f64,
            plain as f64 / n as f64
        );
        for &dict_size in &[16 << 10, 64 << 10, 256 << 10] {
            let t = std::time::Instant::now();
            // Train on every 8th chunk (training is superlinear in input).
            let sample: Vec<&[u8]> = raws.iter().step_by(8).map(Vec::as_slice).collect();
            let dict = match zstd::dict::from_samples(&sample, dict_size) {
                Ok(d) => d,
                Err(e) => {
                    println!("  dict {dict_size}: training failed: {e}");
                    continue;
                }
            };
            let trained = t.elapsed();
            let mut c = zstd::bulk::Compressor::with_dictionary(9, &dict).expect("compressor");
            let t = std::time::Instant::now();
            let with: usize = raws.iter().map(|r| c.compress(r).expect("zstd").len().min(r.len())).sum();
            println!(
                "  dict {} KiB (trained in {trained:.1?}): {:.3} B/sample incl. dict ({:.3} without), compressed in {:.1?}",
                dict_size >> 10,
                (with + dict.len()) as f64 / n as f64,
                with as f64 / n as f64,
                t.elapsed()
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let end_ms = 1_700_000_000_000 / 7_200_000 * 7_200_000 + 3_600_000;
    let load = Load::synthetic(SyntheticOptions {
        series: args.series,
        targets: args.targets,
        samples_per_series: args.samples,
        end_ms,
        seed: 42,
    });
    let mut data: Vec<Vec<Sample>> = vec![Vec::with_capacity(args.samples); load.series.len()];
    load.for_each_sample(|i, t, v| data[i].push(Sample { t, v }));
    let total: usize = data.iter().map(Vec::len).sum();
    let labels: Vec<Labels> = load
        .series
        .iter()
        .map(|l| Labels::new(l.iter().map(|(n, v)| (n.as_str(), v.as_str()))).expect("valid labels"))
        .collect();
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| labels[a].cmp(&labels[b]));
    let mint = data.iter().filter_map(|s| s.first()).map(|s| s.t).min().unwrap_or(0);
    let maxt = data.iter().filter_map(|s| s.last()).map(|s| s.t).max().unwrap_or(0) + 1;
    // Each `--split F` adds a block boundary after the fraction F of the
    // time range (several give three or more blocks).
    let mut cuts: Vec<i64> = args.split.iter().map(|f| mint + ((maxt - mint) as f64 * f) as i64).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let bounds: Vec<i64> = std::iter::once(mint).chain(cuts).chain(std::iter::once(maxt)).collect();
    let ranges: Vec<(i64, i64)> = bounds.windows(2).map(|w| (w[0], w[1])).filter(|r| r.0 < r.1).collect();
    println!("{}: {} samples", load.description, total);
    let tmp = std::env::temp_dir().join(format!("block_bytes-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let opts = BlockWriteOptions::default();
    let (mut ti, mut tc, mut to) = (0, 0, 0);
    for &(lo, hi) in &ranges {
        let t = std::time::Instant::now();
        let series = order.iter().map(|&i| {
            let s: Vec<Sample> = data[i].iter().filter(|s| s.t >= lo && s.t < hi).copied().collect();
            (labels[i].clone(), s)
        });
        let meta =
            write_block(&tmp, lo, hi, CompactionMeta { level: 1, sources: vec![], parents: vec![] }, series, &opts)?;
        let (i, c, o) = dir_bytes(&tmp.join(&meta.ulid));
        let n = meta.stats.num_samples;
        println!(
            "block [{lo}, {hi}): {n} samples, index {i} B ({:.3} B/sample), chunks {c} B ({:.3}), other {o} B, written in {:.1?}",
            i as f64 / n as f64,
            c as f64 / n as f64,
            t.elapsed()
        );
        (ti, tc, to) = (ti + i, tc + c, to + o);
        index_sections(&tmp.join(&meta.ulid).join("index"), n);
    }
    let all = ti + tc + to;
    println!(
        "total: {all} B = {:.3} B/sample (index {:.3}, chunks {:.3}, other {:.4})",
        all as f64 / total as f64,
        ti as f64 / total as f64,
        tc as f64 / total as f64,
        to as f64 / total as f64
    );
    std::fs::remove_dir_all(&tmp)?;

    if args.dict {
        dict_experiment(&data, &ranges);
    }
    if args.families {
        // Per metric name: chunk bytes with own timestamps, values only
        // (timestamps left out), per sample.
        let mut fam: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
        let mut buf = Vec::new();
        for (i, s) in data.iter().enumerate() {
            let name = labels[i].get("__name__").unwrap_or("").to_string();
            buf.clear();
            sealed::encode(s, &mut buf);
            let own = buf.len() as u64;
            buf.clear();
            let ts: Vec<i64> = s.iter().map(|s| s.t).collect();
            sealed::encode_with(
                s,
                &sealed::EncodeOptions { shared_timestamps: Some(&ts), ..Default::default() },
                &mut buf,
            );
            let vals = buf.len() as u64;
            let e = fam.entry(name).or_default();
            e.0 += 1;
            e.1 += s.len() as u64;
            e.2 += own;
            e.3 += vals;
        }
        let mut rows: Vec<_> = fam.into_iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1 .3));
        let (sum_own, sum_vals): (u64, u64) = rows.iter().fold((0, 0), |a, r| (a.0 + r.1 .2, a.1 + r.1 .3));
        println!(
            "\nper series chunks: own timestamps {:.3} B/sample, values only {:.3} B/sample",
            sum_own as f64 / total as f64,
            sum_vals as f64 / total as f64
        );
        println!("{:<48} {:>8} {:>10} {:>8} {:>8} {:>6}", "metric", "series", "samples", "own B/s", "val B/s", "share");
        for (name, (n, s, own, vals)) in rows.iter().take(40) {
            println!(
                "{:<48} {:>8} {:>10} {:>8.3} {:>8.3} {:>5.1}%",
                name,
                n,
                s,
                *own as f64 / *s as f64,
                *vals as f64 / *s as f64,
                100.0 * *vals as f64 / sum_vals as f64
            );
        }
    }
    Ok(())
}
