//! Bytes and CPU of closed head chunks in the head chunk file
//! (`chunks_head/`), on the production shape (issue 13's synthetic fleet:
//! 368,695 series, 2,000 targets, 264 samples per series at 15 s).
//!
//! Cuts every series into chunks of 120 samples (what the head closes at
//! 15 s: a 2 h range spread over 4 chunks; the last, open chunk is left out
//! as the head keeps it in RAM), then measures, interleaved chunk by chunk in
//! this process: the XOR bytes (the chunk file's data before round 5), and
//! the same samples re-encoded with the sealed codec at several zstd levels;
//! for each, bytes per sample and CPU-ns per sample to encode and to decode.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin head_chunk_bytes -- [series=368695] [samples_per_series=264]
//! ```
//!
//! With `head` first it instead appends the load through a [`Head`] whose
//! closed chunks go to a head chunk file in a temporary directory, and
//! prints the file's bytes per closed-chunk sample and the append CPU.

use std::time::Instant;

use tidemark_bench::compare::load::{Load, SyntheticOptions};
use tidemark_storage::chunkenc::{sealed, XorAppender, XorIterator};
use tidemark_storage::head::{Head, HeadChunks, HeadOptions};
use tidemark_storage::Sample;

/// CPU time of this process (user + sys), seconds, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0;
    let get = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is 0, utime 11, stime 12.
    (get(11) + get(12)) / tick
}

fn load(series: usize, samples_per_series: usize) -> Load {
    // The production preset's target rule: 2,000 targets at 368,695 series.
    let t = (series as f64 * 2000.0 / 368_695.0 / 2.0).round() as usize;
    Load::synthetic(SyntheticOptions {
        series,
        targets: Some((2 * t).max(2)),
        samples_per_series,
        // The first scrape round on a 2 h boundary, as the production
        // preset places it (`--block-cut none`): chunks are cut by count.
        end_ms: 1_779_998_400_000 + (samples_per_series as i64 - 1) * 15_000,
        seed: 42,
    })
}

struct Candidate {
    name: String,
    level: Option<i32>,
    bytes: u64,
    enc_ns: u128,
    dec_ns: u128,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let head_mode = args.first().is_some_and(|a| a == "head");
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let series = nums.first().copied().unwrap_or(368_695);
    let per = nums.get(1).copied().unwrap_or(264);
    let load = load(series, per);
    eprintln!("{}", load.description);
    if head_mode {
        run_head(&load, series);
        return;
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(per); series];
    load.for_each_sample(|s, t, v| samples[s].push(Sample::new(t, v)));

    let mut cands = vec![Candidate { name: "xor".into(), level: None, bytes: 0, enc_ns: 0, dec_ns: 0 }];
    for l in [0, -5, -1, 1, 3] {
        cands.push(Candidate { name: format!("sealed zstd {l}"), level: Some(l), bytes: 0, enc_ns: 0, dec_ns: 0 });
    }
    // XOR chunks first, as the head closes them.
    let (mut chunks, mut n) = (0u64, 0u64);
    let mut xors: Vec<Vec<u8>> = Vec::new();
    let t0 = Instant::now();
    for s in &samples {
        for c in s.chunks(120).filter(|c| c.len() == 120) {
            chunks += 1;
            n += c.len() as u64;
            let mut a = XorAppender::new();
            for x in c {
                a.append(x.t, x.v);
            }
            let xor = a.into_bytes();
            cands[0].bytes += xor.len() as u64;
            xors.push(xor);
        }
    }
    cands[0].enc_ns = t0.elapsed().as_nanos();
    drop(samples);
    let mut out = Vec::new();
    let mut dec = Vec::with_capacity(256);
    let t0 = Instant::now();
    for x in &xors {
        dec.clear();
        XorIterator::new(&x[..]).decode_into(&mut dec).expect("xor decodes");
    }
    cands[0].dec_ns = t0.elapsed().as_nanos();
    // One pass per candidate (the codec keeps one zstd context per thread
    // and level: alternating levels chunk by chunk would rebuild it).
    for cand in cands.iter_mut().skip(1) {
        let level = cand.level.unwrap_or(0);
        let mut sealed_chunks = Vec::with_capacity(xors.len());
        let t0 = Instant::now();
        for x in &xors {
            dec.clear();
            XorIterator::new(&x[..]).decode_into(&mut dec).expect("xor decodes");
            out.clear();
            sealed::encode_with_level(&dec, level, &mut out);
            cand.bytes += out.len() as u64;
            sealed_chunks.push(out.clone());
        }
        cand.enc_ns = t0.elapsed().as_nanos();
        let t0 = Instant::now();
        for s in &sealed_chunks {
            dec.clear();
            sealed::decode(s, &mut dec).expect("sealed decodes");
        }
        cand.dec_ns = t0.elapsed().as_nanos();
        // Lossless: every chunk decodes to the XOR chunk's samples.
        let mut want = Vec::new();
        for (x, s) in xors.iter().zip(&sealed_chunks) {
            want.clear();
            dec.clear();
            XorIterator::new(&x[..]).decode_into(&mut want).expect("xor decodes");
            sealed::decode(s, &mut dec).expect("sealed decodes");
            assert!(
                dec.len() == want.len()
                    && dec.iter().zip(&want).all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits())
            );
        }
    }
    println!("{chunks} closed chunks of 120 samples, {n} samples (wall ns, one pass per encoding; the sealed encode includes decoding the XOR chunk)");
    println!("| encoding | data B/sample | data MiB | encode ns/sample | decode ns/sample |");
    println!("|---|---:|---:|---:|---:|");
    for c in &cands {
        println!(
            "| {} | {:.3} | {:.1} | {:.1} | {:.1} |",
            c.name,
            c.bytes as f64 / n as f64,
            c.bytes as f64 / 1048576.0,
            c.enc_ns as f64 / n as f64,
            c.dec_ns as f64 / n as f64
        );
    }
}

/// Appends the load through a head with a head chunk file; prints the
/// file's size per sample in closed chunks and the append CPU.
fn run_head(load: &Load, series: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        HeadChunks::open(tidemark_storage::vfs::os(), &dir.path().join("chunks_head"), 128 << 20).expect("chunk store");
    let head = Head::with_chunks(HeadOptions::default(), None, store);
    let labels: Vec<tidemark_storage::Labels> = load
        .series
        .iter()
        .map(|l| tidemark_storage::Labels::new(l.iter().map(|(k, v)| (k.as_str(), v.clone()))).expect("labels"))
        .collect();
    let mut refs: Vec<Option<u64>> = vec![None; series];
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut app = head.appender();
    let mut pending = 0usize;
    load.for_each_sample(|s, t, v| {
        match refs[s] {
            Some(r) => app.append_ref(r, t, v).expect("append_ref"),
            None => refs[s] = Some(app.append(&labels[s], t, v).expect("append")),
        }
        pending += 1;
        if pending >= 2000 {
            std::mem::replace(&mut app, head.appender()).commit().expect("commit");
            pending = 0;
        }
    });
    app.commit().expect("commit");
    let cpu = cpu_seconds() - c0;
    let wall = t0.elapsed().as_secs_f64();
    let (segments, disk, ram) = head.chunk_store().sizes();
    let files: u64 = std::fs::read_dir(dir.path().join("chunks_head"))
        .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let samples = load.samples;
    let stats = head.stats();
    println!(
        "head: {samples} samples appended in {wall:.1} s wall, {cpu:.2} CPU-s ({:.3} CPU-s per 1 M samples)",
        cpu / samples as f64 * 1e6
    );
    println!(
        "chunks_head: {segments} segments, {:.1} MiB in files ({disk} B written, {ram} B pending in RAM), {:.3} B per appended sample; {stats:?}",
        files as f64 / 1048576.0,
        files as f64 / samples as f64,
    );
}
