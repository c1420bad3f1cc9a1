//! Candidate encodings of WAL sample records, measured on the records the
//! remote-write receiver commits for the synthetic fleet (one record per
//! 2,000-sample request, 4 senders sharding by target, references handed out
//! in first-seen order as the head does). Prints bytes per sample, encode and
//! decode throughput per candidate, and the size of the series records.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin wal_records -- [series] [samples_per_series]
//! ```
//!
//! With `db` first, it instead appends the same load through a `Db` with
//! default options (fsync per commit, one commit per request) into a temp
//! directory, and reports append CPU, the live data directory's size, and
//! the time and CPU of reopening it (WAL replay):
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin wal_records -- db [series] [samples_per_series]
//! ```
//!
//! The candidates here are prototypes written for the measurement; the one
//! chosen lives in `crates/tidemark-storage/src/wal/record.rs` (`v2`) and is
//! measured here too through the public WAL (`wal-v2 (shipped)`).

use std::collections::HashMap;
use std::time::Instant;

use tidemark_bench::compare::load::{Load, SyntheticOptions};
use tidemark_storage::wal::{Record, RefSample, RefSeries, SyncPolicy, Wal, WalOptions};
use tidemark_storage::Labels;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn get_uvarint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut s = 0;
    loop {
        let x = b[*pos];
        *pos += 1;
        v |= u64::from(x & 0x7f) << s;
        if x < 0x80 {
            return v;
        }
        s += 7;
    }
}

fn get_varint(b: &[u8], pos: &mut usize) -> i64 {
    let u = get_uvarint(b, pos);
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

fn decimal(bits: u64, hint: usize) -> Option<(usize, i64)> {
    let v = f64::from_bits(bits);
    let fit = |k: usize| {
        let m = (v * POW10[k]).round();
        if m.is_nan() || m.abs() >= 9_007_199_254_740_992.0 {
            return None;
        }
        let m = m as i64;
        ((m as f64 / POW10[k]).to_bits() == bits).then_some((k, m))
    };
    fit(hint).or_else(|| (0..POW10.len()).find_map(fit))
}

#[derive(Clone, Copy, Debug)]
enum Values {
    /// 8 bytes little-endian per value.
    Raw,
    /// Bytes transposed: all first bytes, then all second bytes, ...
    Planes,
    /// XOR with the previous value of the record, then planes.
    XorPlanes,
    /// Per value a kind byte (decimals 0..=9, or 255: raw bits), zig-zag
    /// varint mantissas, raw exceptions.
    Decimal,
    /// Decimal with each mantissa as a delta to the previous one of the record.
    DecimalDelta,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    name: &'static str,
    values: Values,
    zstd: Option<i32>,
}

/// Columnar body: refs (first, then deltas), timestamps (first, then
/// deltas), values per `c.values`, optionally zstd-compressed as a whole.
fn encode(c: Candidate, s: &[RefSample], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    scratch.clear();
    put_uvarint(scratch, s.len() as u64);
    let (mut pr, mut pt) = (0u64, 0i64);
    for x in s {
        put_varint(scratch, x.series_ref.wrapping_sub(pr) as i64);
        pr = x.series_ref;
    }
    for x in s {
        put_varint(scratch, x.t.wrapping_sub(pt));
        pt = x.t;
    }
    match c.values {
        Values::Raw => s.iter().for_each(|x| scratch.extend_from_slice(&x.v.to_bits().to_le_bytes())),
        Values::Planes | Values::XorPlanes => {
            let base = scratch.len();
            scratch.resize(base + 8 * s.len(), 0);
            let mut prev = 0u64;
            for (i, x) in s.iter().enumerate() {
                let mut b = x.v.to_bits();
                if matches!(c.values, Values::XorPlanes) {
                    (b, prev) = (b ^ prev, b);
                }
                for p in 0..8 {
                    scratch[base + p * s.len() + i] = (b >> (56 - 8 * p)) as u8;
                }
            }
        }
        Values::Decimal | Values::DecimalDelta => {
            let mut kinds = Vec::with_capacity(s.len());
            let mut mant = Vec::new();
            let mut raw = Vec::new();
            let (mut hint, mut prev) = (0usize, 0i64);
            for x in s {
                match decimal(x.v.to_bits(), hint) {
                    Some((k, m)) => {
                        kinds.push(k as u8);
                        hint = k;
                        if matches!(c.values, Values::DecimalDelta) {
                            put_varint(&mut mant, m.wrapping_sub(prev));
                            prev = m;
                        } else {
                            put_varint(&mut mant, m);
                        }
                    }
                    None => {
                        kinds.push(255);
                        raw.extend_from_slice(&x.v.to_bits().to_le_bytes());
                    }
                }
            }
            scratch.extend_from_slice(&kinds);
            scratch.extend_from_slice(&mant);
            scratch.extend_from_slice(&raw);
        }
    }
    out.clear();
    match c.zstd {
        Some(level) => {
            put_uvarint(out, scratch.len() as u64);
            out.extend_from_slice(&zstd::bulk::compress(scratch, level).unwrap());
        }
        None => out.extend_from_slice(scratch),
    }
}

fn decode(c: Candidate, body: &[u8], out: &mut Vec<RefSample>, scratch: &mut Vec<u8>) {
    let b: &[u8] = match c.zstd {
        Some(_) => {
            let mut pos = 0;
            let n = get_uvarint(body, &mut pos) as usize;
            *scratch = zstd::bulk::decompress(&body[pos..], n).unwrap();
            scratch
        }
        None => body,
    };
    let mut pos = 0;
    let n = get_uvarint(b, &mut pos) as usize;
    out.clear();
    let (mut r, mut t) = (0u64, 0i64);
    for _ in 0..n {
        r = r.wrapping_add(get_varint(b, &mut pos) as u64);
        out.push(RefSample { series_ref: r, t: 0, v: 0.0 });
    }
    for x in out.iter_mut() {
        t = t.wrapping_add(get_varint(b, &mut pos));
        x.t = t;
    }
    match c.values {
        Values::Raw => {
            for x in out.iter_mut() {
                x.v = f64::from_bits(u64::from_le_bytes(b[pos..pos + 8].try_into().unwrap()));
                pos += 8;
            }
        }
        Values::Planes | Values::XorPlanes => {
            let mut prev = 0u64;
            for (i, x) in out.iter_mut().enumerate() {
                let mut v = 0u64;
                for p in 0..8 {
                    v |= u64::from(b[pos + p * n + i]) << (56 - 8 * p);
                }
                if matches!(c.values, Values::XorPlanes) {
                    v ^= prev;
                    prev = v;
                }
                x.v = f64::from_bits(v);
            }
        }
        Values::Decimal | Values::DecimalDelta => {
            let kinds = &b[pos..pos + n];
            pos += n;
            let raw_count = kinds.iter().filter(|&&k| k == 255).count();
            let mut raw_pos = b.len() - 8 * raw_count;
            let mut prev = 0i64;
            for (x, &k) in out.iter_mut().zip(kinds) {
                if k == 255 {
                    x.v = f64::from_bits(u64::from_le_bytes(b[raw_pos..raw_pos + 8].try_into().unwrap()));
                    raw_pos += 8;
                } else {
                    let mut m = get_varint(b, &mut pos);
                    if matches!(c.values, Values::DecimalDelta) {
                        m = m.wrapping_add(prev);
                        prev = m;
                    }
                    x.v = m as f64 / POW10[k as usize];
                }
            }
        }
    }
}

fn v1_len(s: &[RefSample]) -> usize {
    let mut out = Vec::new();
    put_uvarint(&mut out, s.len() as u64);
    put_uvarint(&mut out, s[0].series_ref);
    put_varint(&mut out, s[0].t);
    for x in s {
        put_varint(&mut out, x.series_ref.wrapping_sub(s[0].series_ref) as i64);
        put_varint(&mut out, x.t.wrapping_sub(s[0].t));
        out.extend_from_slice(&x.v.to_bits().to_le_bytes());
    }
    out.len() + 1 + 8
}

/// CPU seconds (user + system) of the whole process, from `/proc/self/stat`.
fn process_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which ends with ')'.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// The `db` mode: the load through a `Db` with default options.
fn through_db(load: &Load, requests: &[Vec<(usize, i64, f64)>]) {
    use tidemark_storage::Db;
    let labels: Vec<Labels> =
        load.series.iter().map(|l| Labels::new(l.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap()).collect();
    let samples: usize = requests.iter().map(Vec::len).sum();
    let dir = tempfile::tempdir_in(std::env::var("WAL_RECORDS_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let db = Db::builder(dir.path()).maintenance_interval(None).open().unwrap();
    let (cpu0, t0) = (process_cpu(), Instant::now());
    for req in requests {
        let mut app = db.appender();
        for &(s, t, v) in req {
            app.append(&labels[s], t, v).unwrap();
        }
        app.commit().unwrap();
    }
    let (cpu, wall) = (process_cpu() - cpu0, t0.elapsed());
    let wal_bytes = dir_size(&dir.path().join("wal"));
    let total = dir_size(dir.path());
    db.close().unwrap();
    drop(db);
    println!(
        "append: {samples} samples in {} commits, {:.2} s wall, {:.2} CPU-s ({:.3} CPU-s per 1M samples)",
        requests.len(),
        wall.as_secs_f64(),
        cpu,
        cpu / samples as f64 * 1e6
    );
    println!(
        "live data dir: {total} bytes ({:.1} MiB), WAL {wal_bytes} bytes, {:.3} WAL bytes/sample",
        total as f64 / (1 << 20) as f64,
        wal_bytes as f64 / samples as f64
    );
    let (cpu0, t0) = (process_cpu(), Instant::now());
    let db = Db::builder(dir.path()).maintenance_interval(None).open().unwrap();
    let (cpu, wall) = (process_cpu() - cpu0, t0.elapsed());
    println!(
        "reopen (WAL replay): {:.2} s wall, {:.2} CPU-s, {:.2} M samples/s of CPU",
        wall.as_secs_f64(),
        cpu,
        samples as f64 / cpu / 1e6
    );
    db.close().unwrap();
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let db_mode = args.get(1).is_some_and(|a| a == "db");
    if db_mode {
        args.remove(1);
    }
    let series: usize = args.get(1).map_or(100_000, |a| a.parse().unwrap());
    let per_series: usize = args.get(2).map_or(20, |a| a.parse().unwrap());
    let load = Load::synthetic(SyntheticOptions {
        series,
        targets: None,
        samples_per_series: per_series,
        end_ms: 1_764_000_000_000,
        seed: 42,
    });

    // Cut the load into requests as `build_requests` does (4 senders, 2,000
    // samples each), in the order the senders would interleave.
    let senders = 4;
    let mut shard_of = vec![0usize; load.series.len()];
    for (i, target) in load.targets.iter().enumerate() {
        for s in target.clone() {
            shard_of[s] = i % senders;
        }
    }
    let mut pending: Vec<Vec<(usize, i64, f64)>> = vec![Vec::new(); senders];
    let mut requests: Vec<Vec<(usize, i64, f64)>> = Vec::new();
    load.for_each_sample(|s, t, v| {
        let p = &mut pending[shard_of[s]];
        p.push((s, t, v));
        if p.len() == 2000 {
            requests.push(std::mem::take(p));
        }
    });
    requests.extend(pending.into_iter().filter(|p| !p.is_empty()));
    if db_mode {
        println!("{}; {} requests", load.description, requests.len());
        through_db(&load, &requests);
        return;
    }

    let mut refs: HashMap<usize, u64> = HashMap::new();
    let mut series_records: Vec<Record> = Vec::new();
    let mut sample_records: Vec<Vec<RefSample>> = Vec::new();
    for req in &requests {
        let mut new = Vec::new();
        let rec: Vec<RefSample> = req
            .iter()
            .map(|&(s, t, v)| {
                let next = refs.len() as u64 + 1;
                let r = *refs.entry(s).or_insert_with(|| {
                    let l = &load.series[s];
                    new.push(RefSeries {
                        series_ref: next,
                        labels: Labels::new(l.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap(),
                    });
                    next
                });
                RefSample { series_ref: r, t, v }
            })
            .collect();
        if !new.is_empty() {
            series_records.push(Record::Series(new));
        }
        sample_records.push(rec);
    }
    let samples: usize = sample_records.iter().map(Vec::len).sum();
    println!("{}; {} sample records, {} samples", load.description, sample_records.len(), samples);

    let v1: usize = sample_records.iter().map(|s| v1_len(s)).sum();
    println!("{:<28} {:>8.3} bytes/sample", "v1 (today, with frame)", v1 as f64 / samples as f64);

    let candidates = [
        Candidate { name: "columns, raw", values: Values::Raw, zstd: None },
        Candidate { name: "columns, raw, zstd1", values: Values::Raw, zstd: Some(1) },
        Candidate { name: "columns, planes, zstd1", values: Values::Planes, zstd: Some(1) },
        Candidate { name: "columns, xor-planes, zstd1", values: Values::XorPlanes, zstd: Some(1) },
        Candidate { name: "columns, decimal", values: Values::Decimal, zstd: None },
        Candidate { name: "columns, decimal, zstd1", values: Values::Decimal, zstd: Some(1) },
        Candidate { name: "columns, decimal, zstd3", values: Values::Decimal, zstd: Some(3) },
        Candidate { name: "columns, dec-delta, zstd1", values: Values::DecimalDelta, zstd: Some(1) },
    ];
    println!("{:<28} {:>12} {:>14} {:>14}", "candidate", "bytes/sample", "encode Ms/s", "decode Ms/s");
    for c in candidates {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let mut bodies = Vec::with_capacity(sample_records.len());
        let start = Instant::now();
        for s in &sample_records {
            encode(c, s, &mut out, &mut scratch);
            bodies.push(out.clone());
        }
        let enc = start.elapsed();
        let bytes: usize = bodies.iter().map(|b| b.len() + 9).sum();
        let mut dec_out = Vec::new();
        let start = Instant::now();
        for (b, s) in bodies.iter().zip(&sample_records) {
            decode(c, b, &mut dec_out, &mut scratch);
            assert!(dec_out == *s, "{} does not round-trip", c.name);
        }
        let dec = start.elapsed();
        println!(
            "{:<28} {:>12.3} {:>14.1} {:>14.1}",
            c.name,
            bytes as f64 / samples as f64,
            samples as f64 / enc.as_secs_f64() / 1e6,
            samples as f64 / dec.as_secs_f64() / 1e6
        );
    }

    // Series records: label bytes as logged today vs zstd over the record.
    let (mut raw, mut z1) = (0usize, 0usize);
    for r in &series_records {
        let Record::Series(s) = r else { continue };
        let mut b = Vec::new();
        for x in s {
            put_uvarint(&mut b, x.series_ref);
            put_uvarint(&mut b, x.labels.encoded().len() as u64);
            b.extend_from_slice(x.labels.encoded());
        }
        raw += b.len() + 9;
        z1 += zstd::bulk::compress(&b, 1).unwrap().len() + 12;
    }
    println!(
        "series records: {} series, v1 {raw} bytes ({:.1}/series, {:.3}/sample), zstd1 {z1} bytes ({:.1}/series, {:.3}/sample)",
        refs.len(),
        raw as f64 / refs.len() as f64,
        raw as f64 / samples as f64,
        z1 as f64 / refs.len() as f64,
        z1 as f64 / samples as f64
    );

    // The shipped encoding, through the public WAL: bytes on disk and replay.
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() }).unwrap();
    let start = Instant::now();
    let mut si = series_records.iter();
    for s in &sample_records {
        // Series records precede the samples that use them; logging them all
        // up front keeps that true.
        for r in si.by_ref() {
            wal.log(std::slice::from_ref(r)).unwrap();
        }
        wal.log(&[Record::Samples(s.clone())]).unwrap();
    }
    let log_time = start.elapsed();
    wal.close().unwrap();
    let size = wal.size_bytes();
    drop(wal);
    let start = Instant::now();
    let mut n = 0usize;
    Wal::replay(dir.path(), |r| {
        if let Record::Samples(s) = r {
            n += s.len()
        }
    })
    .unwrap();
    let replay = start.elapsed();
    assert_eq!(n, samples);
    println!(
        "wal (shipped): {size} bytes on disk, {:.3} bytes/sample incl. series; log {:.1} M samples/s (incl. clone), replay {:.1} M samples/s",
        size as f64 / samples as f64,
        samples as f64 / log_time.as_secs_f64() / 1e6,
        samples as f64 / replay.as_secs_f64() / 1e6
    );
}
