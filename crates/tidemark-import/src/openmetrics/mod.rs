//! `tidemark import openmetrics FILE`: an OpenMetrics text file with
//! timestamps (the input of `promtool tsdb create-blocks-from openmetrics`)
//! written straight into blocks of a Tidemark data directory.
//!
//! How it works:
//! 1. The data directory is opened once to learn what it holds (and to
//!    refuse when a running Tidemark holds its lock), then its lock is
//!    taken for the rest of the import.
//! 2. One pass over the file ([`parser`]) validates every line, builds the
//!    series table and feeds `(series, t, v)` records to a sort-and-spill
//!    buffer ([`spill`]) bounded by [`ImportOptions::max_memory_bytes`].
//! 3. The sorted runs are merged and cut into windows of the block
//!    duration aligned to multiples of it from the epoch, as promtool cuts
//!    them; each window becomes one block spanning its samples' time range
//!    (`[first, last + 1)`), written into a staging directory
//!    `<data dir>/import-openmetrics.tmp/`. Only when every block is
//!    written are they renamed into the data directory, so a failed import
//!    leaves nothing behind (and a crashed one only the `.tmp` directory,
//!    which the next open deletes).
//! 4. With [`ImportOptions::verify`], the directory is reopened with
//!    [`tidemark_storage::Db`] and a second parse of the file (sorted the
//!    same bounded way, by series) is compared sample by sample with what
//!    the database answers.
//!
//! Memory: the sample buffers (the in-memory run and the read buffers of
//! the merge) plus the series table (an estimate of every distinct
//! series' labels) stay within `max_memory_bytes`; the block writer adds
//! its per-series index entries for the block being written. The
//! import fails with [`ImportError::MemoryTooSmall`] if the series table
//! alone leaves no room for a useful buffer (1024 samples).
//!
//! Refusals: lines Prometheus refuses (see [`parser`]); samples without a
//! timestamp (promtool: "expected timestamp for series … got none"); label
//! sets with a repeated name; two different values for one series and
//! timestamp (identical repeats are dropped and counted). Data at or after
//! the start of the data directory's head (its WAL) is refused, since
//! opening a directory drops head samples older than its newest block;
//! data below the retention floor is refused, since it would be deleted on
//! open. Blocks that would overlap existing blocks are refused: Tidemark
//! reads overlapping blocks (queries merge them, compaction merges them
//! vertically), but where two blocks hold different values at one
//! timestamp a query answers the older block's and compaction keeps the
//! newer one's, so an import never creates such an overlap.
//!
//! Metadata (`# TYPE`, `# HELP`, `# UNIT`) is validated but not imported:
//! Tidemark keeps metric metadata only in memory, as remote write reports
//! it; the summary counts the entries left out.
//!
//! ```
//! use tidemark_import::openmetrics::import_file;
//! use tidemark_import::summary::ImportOptions;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("in.om");
//! std::fs::write(&file, "# TYPE up gauge\nup{job=\"a\"} 1 1700000000\nup{job=\"a\"} 0 1700000015.5\n# EOF\n").unwrap();
//! let mut opts = ImportOptions::new(dir.path().join("data"));
//! opts.progress = false;
//! let summary = import_file(&file, &opts).unwrap();
//! assert_eq!((summary.series, summary.float_samples), (1, 2));
//! assert_eq!(summary.max_time_ms, 1_700_000_015_500);
//! assert!(summary.verified);
//! ```

pub mod parser;
pub mod spill;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use tidemark_storage::block::{write_block, BlockWriteOptions, CompactionMeta};
use tidemark_storage::{Db, Labels, Matcher, Sample};

use crate::progress::Progress;
use crate::summary::{ImportOptions, ImportSummary};
use parser::{Entry, ParseError, Parser, SampleLine};
use spill::{Merged, Rec, Sorter, RECORD_BYTES};

/// Name of the staging directory inside the data directory.
pub const STAGING_DIR: &str = "import-openmetrics.tmp";
const HOUR_MS: i64 = 3_600_000;
/// Smallest sample buffer the import runs with, in samples.
const MIN_BUFFER_RECORDS: u64 = 1024;
/// Estimated fixed cost of one series in the series table, beyond its bytes.
const SERIES_OVERHEAD_BYTES: u64 = 160;
/// Mismatches described in a verification error.
const MAX_EXAMPLES: usize = 10;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Reading the input or writing the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The input is not valid OpenMetrics text.
    #[error("{path}: {source}")]
    Parse {
        /// The input file.
        path: PathBuf,
        /// Line and reason.
        source: ParseError,
    },
    /// A sample line had no timestamp.
    #[error("{path}: line {line}: expected timestamp for series {series}, got none")]
    MissingTimestamp {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The series as written.
        series: String,
    },
    /// A sample line's labels are not a valid label set (a repeated name).
    #[error("{path}: line {line}: invalid labels: {reason}")]
    InvalidLabels {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// One series has two different values at one timestamp.
    #[error("duplicate sample for timestamp {t} with different values in series {series}")]
    DuplicateSample {
        /// The series.
        series: String,
        /// The timestamp (ms).
        t: i64,
    },
    /// A running Tidemark holds the data directory's lock.
    #[error("data directory {0} is in use (its lock is held by a running Tidemark): stop it before importing")]
    Locked(PathBuf),
    /// The data would overlap what the data directory already holds.
    #[error(transparent)]
    Conflict(#[from] crate::target::Conflict),
    /// The memory bound cannot hold the series table and a minimal buffer.
    #[error("--max-memory {limit} bytes is too small: the series table alone needs about {needed} bytes")]
    MemoryTooSmall {
        /// The bound.
        limit: u64,
        /// What the series table and a minimal buffer need.
        needed: u64,
    },
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] tidemark_storage::Error),
    /// Imported samples did not read back.
    #[error("verification failed: {mismatches} of {checked} samples did not read back; first: {}", examples.join("; "))]
    VerificationFailed {
        /// Samples compared.
        checked: u64,
        /// Samples missing or different.
        mismatches: u64,
        /// Up to 10 descriptions.
        examples: Vec<String>,
    },
}

/// Figures of an import beyond its summary: how the memory bound was used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Sorted runs spilled to disk while reading.
    pub runs_spilled: usize,
    /// Largest number of bytes the in-memory sample buffer held.
    pub peak_buffer_bytes: u64,
    /// The series table's estimated size at the end.
    pub series_table_bytes: u64,
    /// Read buffers of the merge, in total.
    pub merge_read_bytes: u64,
    /// Bytes of input read (per pass).
    pub input_bytes: u64,
    /// Most memory the bound covers in use at once: series table plus
    /// sample buffer while reading, plus the merge's read buffers while
    /// writing. Never above [`ImportOptions::max_memory_bytes`].
    pub peak_bytes: u64,
}

/// `promtool`'s choice of block duration: 2 h, or for a longer request the
/// largest of 2 h·3^k (k ≤ 9) not above it. Milliseconds in and out.
pub fn compatible_block_duration(requested_ms: i64) -> i64 {
    let base = 2 * HOUR_MS;
    if requested_ms <= base {
        return base;
    }
    let mut d = base;
    for _ in 0..9 {
        if d * 3 > requested_ms {
            break;
        }
        d *= 3;
    }
    d
}

/// Imports `path` into `opts.data_dir`; see the module documentation.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<ImportSummary, ImportError> {
    import_file_with_stats(path, opts).map(|(s, _)| s)
}

/// [`import_file`], also returning how the memory bound was used.
pub fn import_file_with_stats(path: &Path, opts: &ImportOptions) -> Result<(ImportSummary, ImportStats), ImportError> {
    let dir = &opts.data_dir;
    let target = crate::target::Target::inspect(dir).map_err(|e| match e {
        tidemark_storage::Error::Locked(p) => ImportError::Locked(p),
        e => ImportError::Storage(e),
    })?;
    let _lock = crate::target::take_lock(dir).map_err(|e| match e {
        crate::target::LockError::Locked(p) => ImportError::Locked(p),
        crate::target::LockError::Io { path, source } => ImportError::Io { path, source },
    })?;
    let staging = dir.join(STAGING_DIR);
    remove_dir_if_exists(&staging)?;
    mkdir(&staging)?;
    let result = write_staged(path, opts, &staging, |_, _, windows| {
        for (wmin, wmax) in windows.values() {
            target.check(*wmin, *wmax)?;
        }
        Ok(())
    });
    let (mut summary, stats) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // Every block is complete: move them in, then drop the staging area.
    for ulid in &summary.blocks_written {
        let from = staging.join(ulid);
        let to = dir.join(ulid);
        std::fs::rename(&from, &to).map_err(|source| ImportError::Io { path: to.clone(), source })?;
    }
    sync_dir(dir)?;
    remove_dir_if_exists(&staging)?;
    drop(_lock);
    if opts.verify && summary.float_samples > 0 {
        verify(path, opts, &summary)?;
        summary.verified = true;
    }
    Ok((summary, stats))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io { path: path.to_path_buf(), source }
}

fn mkdir(p: &Path) -> Result<(), ImportError> {
    std::fs::create_dir_all(p).map_err(io_err(p))
}

fn remove_dir_if_exists(p: &Path) -> Result<(), ImportError> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p)(e)),
    }
}

fn sync_dir(p: &Path) -> Result<(), ImportError> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io_err(p))
}

/// Opens the data directory without background work or retention.
fn open_db(dir: &Path) -> Result<Db, ImportError> {
    crate::target::open_quiet(dir).map_err(|e| match e {
        tidemark_storage::Error::Locked(p) => ImportError::Locked(p),
        e => ImportError::Storage(e),
    })
}

/// The series table: ids in order of first appearance.
#[derive(Default)]
struct SeriesTable {
    /// Series as written → id (a fast path before building labels).
    by_text: HashMap<Box<[u8]>, u32>,
    /// Canonical labels → id (two spellings of one series share an id).
    by_labels: HashMap<Labels, u32>,
    labels: Vec<Labels>,
    bytes: u64,
}

impl SeriesTable {
    fn resolve(&mut self, s: &SampleLine<'_>) -> Result<u32, String> {
        if let Some(&id) = self.by_text.get(s.series) {
            return Ok(id);
        }
        let pairs = std::iter::once(("__name__", std::borrow::Cow::Borrowed(s.name()))).chain(s.labels());
        let labels = Labels::new(pairs).map_err(|e| e.to_string())?;
        let label_bytes: u64 = labels.iter().map(|l| (l.name.len() + l.value.len()) as u64).sum();
        let id = match self.by_labels.get(&labels) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.labels.len()).map_err(|_| "more than 2^32 series".to_string())?;
                self.by_labels.insert(labels.clone(), id);
                self.labels.push(labels);
                self.bytes += 2 * label_bytes + SERIES_OVERHEAD_BYTES;
                id
            }
        };
        self.bytes += s.series.len() as u64 + 32;
        self.by_text.insert(s.series.into(), id);
        Ok(id)
    }

    /// Position of each series in label order.
    fn ranks(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.labels.len() as u32).collect();
        ids.sort_unstable_by(|&a, &b| self.labels[a as usize].cmp(&self.labels[b as usize]));
        let mut rank = vec![0u32; ids.len()];
        for (r, id) in ids.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }
}

/// What one pass over the file learned.
struct Scan {
    table: SeriesTable,
    sorter: Sorter,
    windows: BTreeMap<i64, (i64, i64)>,
    samples: u64,
    metadata: u64,
    exemplars: u64,
    bytes: u64,
    min_t: i64,
    max_t: i64,
    peak_bytes: u64,
}

fn window_of(t: i64, duration: i64) -> i64 {
    t.div_euclid(duration)
}

fn single_group(_: i64, _: i64) -> i64 {
    0
}

/// Reads the whole file once, sorting its samples into `sorter`.
fn scan(path: &Path, opts: &ImportOptions, sorter: Sorter, what: &str) -> Result<Scan, ImportError> {
    let file = File::open(path).map_err(io_err(path))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::bytes(opts.progress, what, total);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let duration = compatible_block_duration(i64::try_from(opts.block_duration.as_millis()).unwrap_or(i64::MAX));
    let mut sc = Scan {
        table: SeriesTable::default(),
        sorter,
        windows: BTreeMap::new(),
        samples: 0,
        metadata: 0,
        exemplars: 0,
        bytes: 0,
        min_t: i64::MAX,
        max_t: i64::MIN,
        peak_bytes: 0,
    };
    let mut parser = Parser::new();
    let mut line = Vec::with_capacity(4096);
    let parse_err = |source: ParseError| ImportError::Parse { path: path.to_path_buf(), source };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        sc.bytes += n as u64;
        if sc.bytes & 0xF_FFFF < n as u64 {
            progress.set(sc.bytes);
        }
        let entry = match parser.line(&line).map_err(parse_err)? {
            None => continue,
            Some(e) => e,
        };
        let s = match entry {
            Entry::Sample(s) => s,
            Entry::Help { .. } | Entry::Type { .. } | Entry::Unit { .. } => {
                sc.metadata += 1;
                continue;
            }
        };
        let line_no = parser.line_number();
        let Some(t) = s.timestamp_ms else {
            return Err(ImportError::MissingTimestamp {
                path: path.to_path_buf(),
                line: line_no,
                series: String::from_utf8_lossy(s.series).into_owned(),
            });
        };
        let before = sc.table.bytes;
        let id = sc.table.resolve(&s).map_err(|reason| ImportError::InvalidLabels {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        })?;
        if sc.table.bytes != before {
            let cap = buffer_capacity(opts.max_memory_bytes, sc.table.bytes)?;
            sc.sorter.set_capacity(cap);
        }
        sc.exemplars += u64::from(s.has_exemplar);
        sc.samples += 1;
        sc.min_t = sc.min_t.min(t);
        sc.max_t = sc.max_t.max(t);
        let w = sc.windows.entry(window_of(t, duration)).or_insert((t, t));
        w.0 = w.0.min(t);
        w.1 = w.1.max(t);
        sc.sorter
            .push(Rec { t, v: s.value.to_bits(), series: id }, &sc.table.labels)
            .map_err(io_err(&opts.data_dir.join(STAGING_DIR)))?;
        sc.peak_bytes = sc.peak_bytes.max(sc.table.bytes + sc.sorter.allocated() as u64 * RECORD_BYTES);
    }
    parser.finish().map_err(parse_err)?;
    progress.finish();
    Ok(sc)
}

/// Records the in-memory buffer may hold: 7/8 of what the series table
/// leaves (the rest is for the merge's read buffers).
fn buffer_capacity(max_memory: u64, table_bytes: u64) -> Result<usize, ImportError> {
    let needed = table_bytes + MIN_BUFFER_RECORDS * RECORD_BYTES * 8 / 7;
    if needed > max_memory {
        return Err(ImportError::MemoryTooSmall { limit: max_memory, needed });
    }
    let records = (max_memory - table_bytes) / 8 * 7 / RECORD_BYTES;
    Ok(usize::try_from(records).unwrap_or(usize::MAX))
}

/// The read budget of the merge: what the table and the in-memory run leave.
fn merge_budget(max_memory: u64, table_bytes: u64, buffered: u64) -> u64 {
    max_memory.saturating_sub(table_bytes).saturating_sub(buffered * RECORD_BYTES)
}

fn write_staged(
    path: &Path,
    opts: &ImportOptions,
    staging: &Path,
    check: impl FnOnce(i64, i64, &BTreeMap<i64, (i64, i64)>) -> Result<(), ImportError>,
) -> Result<(ImportSummary, ImportStats), ImportError> {
    let duration = compatible_block_duration(i64::try_from(opts.block_duration.as_millis()).unwrap_or(i64::MAX));
    let cap = buffer_capacity(opts.max_memory_bytes, 0)?;
    let sorter = Sorter::new(cap, &staging.join("runs"), window_of, duration);
    let sc = scan(path, opts, sorter, "reading")?;
    let mut summary = ImportSummary::default();
    summary.skip("metadata entries (# TYPE/# HELP/# UNIT): Tidemark keeps metadata in memory only", sc.metadata);
    summary.skip("exemplars (not stored by block imports)", sc.exemplars);
    let mut stats = ImportStats {
        runs_spilled: sc.sorter.runs(),
        peak_buffer_bytes: sc.sorter.peak_records as u64 * RECORD_BYTES,
        series_table_bytes: sc.table.bytes,
        merge_read_bytes: 0,
        input_bytes: sc.bytes,
        peak_bytes: sc.peak_bytes,
    };
    if sc.samples == 0 {
        return Ok((summary, stats));
    }
    check(sc.min_t, sc.max_t, &sc.windows)?;
    let rank = sc.table.ranks();
    let buffered = sc.sorter.allocated() as u64;
    let budget = merge_budget(opts.max_memory_bytes, sc.table.bytes, buffered);
    let runs = sc.sorter.runs() as u64;
    let mut merged = sc.sorter.finish(&rank, budget).map_err(io_err(staging))?;
    stats.merge_read_bytes = merged.read_buffer_bytes() as u64;
    stats.peak_bytes = stats.peak_bytes.max(sc.table.bytes + buffered * RECORD_BYTES + stats.merge_read_bytes);
    let progress = Progress::items(opts.progress, "writing", sc.windows.len() as u64);
    let mut pending = merged.next_rec().map_err(io_err(staging))?;
    let mut duplicates = 0u64;
    let mut written = 0u64;
    for (&w, &(wmin, wmax)) in &sc.windows {
        let mut err: Option<ImportError> = None;
        let mut feed = WindowFeed {
            merged: &mut merged,
            pending: &mut pending,
            window: w,
            labels: &sc.table.labels,
            err: &mut err,
            duplicates: &mut duplicates,
            samples: &mut written,
        };
        let meta =
            write_block(staging, wmin, wmax + 1, CompactionMeta::level1(), &mut feed, &BlockWriteOptions::default())?;
        if let Some(e) = err {
            return Err(e);
        }
        summary.blocks_written.push(meta.ulid);
        progress.inc(1);
    }
    progress.finish();
    drop(merged);
    let _ = std::fs::remove_dir_all(staging.join("runs"));
    let _ = runs;
    summary.skip("duplicate samples (same series, timestamp and value)", duplicates);
    summary.series = sc.table.labels.len() as u64;
    summary.float_samples = written;
    summary.min_time_ms = sc.min_t;
    summary.max_time_ms = sc.max_t;
    Ok((summary, stats))
}

/// Feeds one window's series to the block writer, from the merged stream.
struct WindowFeed<'a> {
    merged: &'a mut Merged,
    pending: &'a mut Option<(i64, Rec)>,
    window: i64,
    labels: &'a [Labels],
    err: &'a mut Option<ImportError>,
    duplicates: &'a mut u64,
    samples: &'a mut u64,
}

impl WindowFeed<'_> {
    fn advance(&mut self) -> bool {
        match self.merged.next_rec() {
            Ok(r) => {
                *self.pending = r;
                true
            }
            Err(source) => {
                *self.err = Some(ImportError::Io { path: PathBuf::from(STAGING_DIR), source });
                *self.pending = None;
                false
            }
        }
    }
}

impl Iterator for WindowFeed<'_> {
    type Item = (Labels, Vec<Sample>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.err.is_some() {
            return None;
        }
        let (g, first) = (*self.pending)?;
        if g != self.window {
            return None;
        }
        let series = first.series;
        let mut samples = vec![Sample::new(first.t, f64::from_bits(first.v))];
        let mut last_bits = first.v;
        if !self.advance() {
            return None;
        }
        while let Some((g, r)) = *self.pending {
            if g != self.window || r.series != series {
                break;
            }
            let last_t = samples.last().map_or(i64::MIN, |s| s.t);
            if r.t == last_t {
                if r.v != last_bits {
                    *self.err =
                        Some(ImportError::DuplicateSample { series: self.labels[series as usize].to_string(), t: r.t });
                    return None;
                }
                *self.duplicates += 1;
            } else {
                samples.push(Sample::new(r.t, f64::from_bits(r.v)));
                last_bits = r.v;
            }
            if !self.advance() {
                return None;
            }
        }
        *self.samples += samples.len() as u64;
        Some((self.labels[series as usize].clone(), samples))
    }
}

/// Reopens the data directory and compares every sample of a second parse
/// of the file with what the database answers.
fn verify(path: &Path, opts: &ImportOptions, summary: &ImportSummary) -> Result<(), ImportError> {
    let dir = &opts.data_dir;
    let scratch = dir.join(STAGING_DIR);
    let cap = buffer_capacity(opts.max_memory_bytes, 0)?;
    let sorter = Sorter::new(cap, &scratch.join("verify"), single_group, 0);
    let result = (|| {
        // Opened first: opening deletes `.tmp` directories, the scratch one too.
        let db = open_db(dir)?;
        let sc = scan(path, opts, sorter, "verifying")?;
        let rank = sc.table.ranks();
        let budget = merge_budget(opts.max_memory_bytes, sc.table.bytes, sc.sorter.allocated() as u64);
        let mut merged = sc.sorter.finish(&rank, budget).map_err(io_err(&scratch))?;
        let q = db.querier(summary.min_time_ms, summary.max_time_ms);
        let progress = Progress::items(opts.progress, "checking", sc.table.labels.len() as u64);
        let (mut checked, mut mismatches, mut examples) = (0u64, 0u64, Vec::new());
        let mut pending = merged.next_rec().map_err(io_err(&scratch))?;
        let mut want: Vec<(i64, u64)> = Vec::new();
        while let Some((_, first)) = pending {
            let series = first.series;
            want.clear();
            while let Some((_, r)) = pending {
                if r.series != series {
                    break;
                }
                if want.last().map(|w| w.0) != Some(r.t) {
                    want.push((r.t, r.v));
                }
                pending = merged.next_rec().map_err(io_err(&scratch))?;
            }
            let labels = &sc.table.labels[series as usize];
            let matchers: Vec<Matcher> = labels.iter().map(|l| Matcher::equal(l.name, l.value)).collect();
            let got = match q.select(&matchers)?.into_iter().find(|s| s.labels() == labels) {
                Some(s) => s.samples()?,
                None => Vec::new(),
            };
            let mut j = 0;
            for &(t, v) in &want {
                checked += 1;
                while j < got.len() && got[j].t < t {
                    j += 1;
                }
                let ok = got.get(j).is_some_and(|s| s.t == t && s.v.to_bits() == v);
                if !ok {
                    mismatches += 1;
                    if examples.len() < MAX_EXAMPLES {
                        let found = got.get(j).filter(|s| s.t == t).map(|s| s.v.to_string());
                        examples.push(format!(
                            "{labels} @ {t}: want {}, got {}",
                            f64::from_bits(v),
                            found.unwrap_or_else(|| "nothing".into())
                        ));
                    }
                }
            }
            progress.inc(1);
        }
        progress.finish();
        db.close()?;
        if mismatches > 0 {
            return Err(ImportError::VerificationFailed { checked, mismatches, examples });
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests;
