//! Whole-database bytes per sample on the real capture: every sample goes
//! through a [`Db`] (WAL, head, block writer, compaction) and the block
//! directories are measured, then every series is read back through a
//! querier and compared bit for bit with the capture.
//!
//! ```text
//! cargo run --release -p tidemark-bench --bin capture_blocks
//! ```
//!
//! For comparison, the compacted blocks are then rewritten once more
//! without shared timestamp columns and measured.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tidemark_bench::capture::{default_capture_path, load_capture};
use tidemark_storage::block::{Block, BlockWriteOptions, CHUNKS_DIRNAME, INDEX_FILENAME, META_FILENAME};
use tidemark_storage::compact::compact;
use tidemark_storage::{Db, Labels, MatchOp, Matcher, Sample, SampleIterator};

/// Samples per appender commit.
const BATCH: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `--data-dir DIR` keeps the database in DIR (reopened and verified if it
    // already holds one); otherwise a temporary directory is used.
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data-dir" => keep = Some(args.next().ok_or("--data-dir needs a directory")?.into()),
            other => return Err(format!("unknown argument {other} (usage: capture_blocks [--data-dir DIR])").into()),
        }
    }
    let path = default_capture_path();
    let t = Instant::now();
    let series = load_capture(&path)?;
    let total: usize = series.iter().map(|s| s.1.len()).sum();
    println!("capture: {} ({} series, {} samples, loaded in {:.1?})", path.display(), series.len(), total, t.elapsed());

    // Global timestamp order: (t, series, sample index), ties by series.
    let mut order: Vec<(i64, u32, u32)> = Vec::with_capacity(total);
    for (si, (_, samples)) in series.iter().enumerate() {
        for (i, s) in samples.iter().enumerate() {
            order.push((s.t, si as u32, i as u32));
        }
    }
    order.sort_unstable();

    let dir = match keep {
        Some(p) => TempDir::kept(p)?,
        None => TempDir::new()?,
    };
    let existing = std::fs::read_dir(dir.path())?.next().is_some();
    let db = Db::builder(dir.path()).maintenance_interval(None).open()?;
    if existing {
        println!("{} already holds a database: verifying it against the capture", dir.path().display());
    } else {
        ingest(&db, dir.path(), &series, &order, total)?;
    }
    verify(&db, dir.path(), &series, total)
}

fn ingest(
    db: &Db,
    dir: &Path,
    series: &[(Labels, Vec<Sample>)],
    order: &[(i64, u32, u32)],
    total: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut refs: Vec<Option<u64>> = vec![None; series.len()];
    let mut app = db.appender();
    for (n, &(_, si, i)) in order.iter().enumerate() {
        let (labels, samples) = &series[si as usize];
        let s = samples[i as usize];
        match refs[si as usize] {
            Some(r) => app.append_ref(r, s.t, s.v)?,
            None => refs[si as usize] = Some(app.append(labels, s.t, s.v)?),
        }
        if (n + 1) % BATCH == 0 {
            app.commit()?;
            app = db.appender();
        }
    }
    app.commit()?;
    let append_time = t.elapsed();
    println!(
        "appended {} samples in {:.1?} ({:.2} M samples/s)",
        total,
        append_time,
        total as f64 / append_time.as_secs_f64() / 1e6
    );
    let wal = dir_size(&dir.join("wal"));
    println!("WAL before flush: {wal} bytes ({:.3} B/sample)", wal as f64 / total as f64);

    let t = Instant::now();
    let written = db.flush_head()?;
    println!("flush_head: {written} blocks in {:.1?}", t.elapsed());
    report(db, dir, total, "after flush")?;
    let t = Instant::now();
    let compactions = db.compact()?;
    println!("compact: {compactions} compactions in {:.1?}", t.elapsed());
    report(db, dir, total, "after compaction")?;
    Ok(())
}

fn verify(
    db: &Db,
    dir: &Path,
    series: &[(Labels, Vec<Sample>)],
    total: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // Read everything back and compare bit for bit.
    let want: HashMap<&Labels, &Vec<Sample>> = series.iter().map(|(l, s)| (l, s)).collect();
    let mint = series.iter().filter_map(|s| s.1.first()).map(|s| s.t).min().unwrap_or(0);
    let maxt = series.iter().filter_map(|s| s.1.last()).map(|s| s.t).max().unwrap_or(0);
    let all = [Matcher::new(MatchOp::Regex, "__name__", ".+")?];
    let t = Instant::now();
    let q = db.querier(mint, maxt);
    let got = q.select(&all)?;
    let mut scanned = 0usize;
    let mut checksum = 0u64;
    for s in &got {
        let mut it = s.iter();
        while it.next() {
            let x = it.at();
            checksum = checksum.wrapping_add(x.v.to_bits() ^ x.t as u64);
            scanned += 1;
        }
        if let Some(e) = it.err() {
            return Err(format!("series {}: {e}", s.labels()).into());
        }
    }
    let scan = t.elapsed();
    println!(
        "full scan: {} series, {scanned} samples in {:.1?} ({:.1} M samples/s, checksum {checksum:#x})",
        got.len(),
        scan,
        scanned as f64 / scan.as_secs_f64() / 1e6
    );
    let mut checked = 0usize;
    for s in &got {
        let expect = want.get(s.labels()).ok_or_else(|| format!("unexpected series {}", s.labels()))?;
        let samples = s.samples()?;
        let same = samples.len() == expect.len()
            && samples.iter().zip(expect.iter()).all(|(a, b)| a.t == b.t && a.v.to_bits() == b.v.to_bits());
        if !same {
            return Err(format!("series {} differs from the capture", s.labels()).into());
        }
        checked += samples.len();
    }
    let nonempty = series.iter().filter(|s| !s.1.is_empty()).count();
    if got.len() != nonempty || checked != total {
        return Err(format!("read back {} series / {checked} samples, want {nonempty} / {total}", got.len()).into());
    }
    println!("verified: {} series, {checked} samples bit-exact", got.len());

    // The same blocks rewritten without shared timestamp columns.
    let other = TempDir::new()?;
    let (mut bytes, mut cols) = (0u64, 0u64);
    for m in db.blocks() {
        let b = Block::open(&dir.join(&m.ulid))?;
        cols += u64::from(b.num_timestamp_columns());
        let opts = BlockWriteOptions { shared_timestamps: false, ..BlockWriteOptions::default() };
        let out = compact(other.path(), &[&b], &opts)?;
        bytes +=
            Block::open(&other.path().join(&out.ulid))?.size_bytes() - dir_size_meta(&other.path().join(&out.ulid));
    }
    let with: u64 = db.blocks().iter().map(|m| dir_size(&dir.join(&m.ulid)) - dir_size_meta(&dir.join(&m.ulid))).sum();
    println!(
        "chunks+index with shared columns ({cols} columns): {with} bytes = {:.3} B/sample; without: {bytes} bytes = {:.3} B/sample",
        with as f64 / total as f64,
        bytes as f64 / total as f64
    );

    // The planner leaves two 2 h blocks alone (it merges three into 6 h);
    // merging them into one block by hand shows the cost of one index.
    let blocks: Vec<Block> = db.blocks().iter().map(|m| Block::open(&dir.join(&m.ulid))).collect::<Result<_, _>>()?;
    let refs: Vec<&Block> = blocks.iter().collect();
    let merged_dir = TempDir::new()?;
    let t = Instant::now();
    let m = compact(merged_dir.path(), &refs, &BlockWriteOptions::default())?;
    let took = t.elapsed();
    let merged = Block::open(&merged_dir.path().join(&m.ulid))?;
    let mut back = 0usize;
    for s in merged.all_series()? {
        let s = s?;
        let expect = want.get(&s.labels).ok_or("unexpected series in merged block")?;
        let mut out = Vec::new();
        for c in &s.chunks {
            c.decode_into(&mut out)?;
        }
        if out.len() != expect.len()
            || out.iter().zip(expect.iter()).any(|(a, b)| a.t != b.t || a.v.to_bits() != b.v.to_bits())
        {
            return Err(format!("merged block: series {} differs from the capture", s.labels).into());
        }
        back += out.len();
    }
    if back != total {
        return Err(format!("merged block holds {back} samples, want {total}").into());
    }
    println!(
        "all blocks compacted into one (by hand, {took:.1?}): {} bytes = {:.3} B/sample, {} shared columns, verified bit-exact",
        merged.size_bytes(),
        merged.size_bytes() as f64 / total as f64,
        merged.num_timestamp_columns()
    );
    let mdir = merged_dir.path().join(&m.ulid);
    report_block(&mdir, total)?;
    db.close()?;
    Ok(())
}

/// Prints one block's chunk and index sizes.
fn report_block(bdir: &Path, total: usize) -> Result<(), Box<dyn std::error::Error>> {
    let chunks = dir_size(&bdir.join(CHUNKS_DIRNAME));
    let ix = std::fs::read(bdir.join(INDEX_FILENAME))?;
    println!(
        "  chunks {chunks} = {:.3} B/sample, index {} = {:.3} B/sample (sections {:?})",
        chunks as f64 / total as f64,
        ix.len(),
        ix.len() as f64 / total as f64,
        index_sections(&ix)
    );
    Ok(())
}

/// Prints block counts and sizes, split by file kind.
fn report(db: &Db, dir: &Path, total: usize, when: &str) -> Result<(), Box<dyn std::error::Error>> {
    let blocks = db.blocks();
    let (mut chunks, mut index, mut meta) = (0u64, 0u64, 0u64);
    let mut sections = [0u64; 6];
    for b in &blocks {
        let bdir = dir.join(&b.ulid);
        chunks += dir_size(&bdir.join(CHUNKS_DIRNAME));
        let ix = std::fs::read(bdir.join(INDEX_FILENAME))?;
        index += ix.len() as u64;
        for (sum, len) in sections.iter_mut().zip(index_sections(&ix)) {
            *sum += len;
        }
        meta += std::fs::metadata(bdir.join(META_FILENAME))?.len();
    }
    let all = chunks + index + meta;
    let per = |b: u64| b as f64 / total as f64;
    println!(
        "{when}: {} blocks, {all} bytes = {:.3} B/sample (chunks {chunks} = {:.3}, index {index} = {:.3}, meta {meta} = {:.4})",
        blocks.len(),
        per(all),
        per(chunks),
        per(index),
        per(meta)
    );
    let names = ["symbols", "series", "label names", "postings table", "postings", "shared timestamp columns"];
    let parts: Vec<String> = names.iter().zip(sections).map(|(n, b)| format!("{n} {b}")).collect();
    println!("  index sections (bytes): {}", parts.join(", "));
    let whole = dir_size(dir);
    println!("  whole data directory (blocks, WAL, everything): {whole} bytes = {:.3} B/sample", per(whole));
    Ok(())
}

/// Section lengths of a version 2 or 3 index, read from its table of
/// contents (`docs/format/index.md`); empty for other versions.
fn index_sections(ix: &[u8]) -> Vec<u64> {
    const TOC_LEN: usize = 6 * 20 + 4;
    if ix.len() < 8 + TOC_LEN || !(2..=3).contains(&ix[4]) {
        return Vec::new();
    }
    (0..6)
        .map(|i| {
            let at = ix.len() - TOC_LEN + i * 20 + 8;
            u64::from_le_bytes(ix[at..at + 8].try_into().expect("8 bytes"))
        })
        .collect()
}

/// Bytes of a block's `meta.json`.
fn dir_size_meta(block: &Path) -> u64 {
    std::fs::metadata(block.join(META_FILENAME)).map_or(0, |m| m.len())
}

/// Total bytes of the regular files under `dir` (0 if it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf, bool);

impl TempDir {
    /// A directory that is kept afterwards.
    fn kept(p: PathBuf) -> std::io::Result<TempDir> {
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p, true))
    }

    fn new() -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("tidemark-capture-blocks-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p, false))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
