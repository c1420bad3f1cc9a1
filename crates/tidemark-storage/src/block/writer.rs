//! Writing a block: chunk files, index and meta into `<ulid>.tmp`, then an
//! atomic rename.
//!
//! Durability argument: every file is fsynced, then the `.tmp` directory,
//! then it is renamed to `<ulid>` and the parent directory is fsynced. A
//! crash before the rename leaves only a `.tmp` directory (never opened,
//! removed at startup by [`crate::compact::remove_tmp_dirs`]); after the
//! rename every file the block needs is durable. `meta.json` is written last,
//! so even a directory renamed by hand mid-way has no meta and fails to open.
//!
//! Sealed chunks whose timestamp column repeats across series are written
//! without it and the column is stored once in the index (see
//! `ColumnTable` below and `docs/format/index.md` for when a column is
//! worth storing).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::Path;

use super::chunks::{ChunkWriter, MAX_CHUNK_FILE_SIZE};
use super::group;
use super::index::{write_index, ChunkMeta};
use super::meta::{new_block_id, BlockMeta, BlockStats, CompactionMeta, META_FILENAME, META_VERSION};
use super::{BlockError, CHUNKS_DIRNAME, INDEX_FILENAME, TMP_SUFFIX};
use crate::chunkenc::{sealed, sealed_histogram, xor, Encoding, XorAppender};
use crate::error::Error;
use crate::histogram::{HistogramSample, HistogramValue};
use crate::vfs::{self, SharedFs};
use crate::{Labels, Sample};

/// One series to write into a block: its labels, its float samples and its
/// native-histogram samples, each sorted by strictly increasing time, no
/// timestamp in both.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series' labels.
    pub labels: Labels,
    /// Float samples.
    pub floats: Vec<Sample>,
    /// Histogram samples.
    pub histograms: Vec<HistogramSample>,
}

impl SeriesData {
    /// A series of floats only.
    pub fn floats(labels: Labels, floats: Vec<Sample>) -> SeriesData {
        SeriesData { labels, floats, histograms: Vec::new() }
    }
}

/// How a block's chunks are encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockWriteOptions {
    /// Chunk encoding. Default: [`Encoding::Sealed`] (dense, not appendable).
    pub encoding: Encoding,
    /// Most samples per chunk. Default: 16384 (about one chunk per series in
    /// a 2 h block at any scrape interval ≥ 0.5 s). For [`Encoding::Xor`]
    /// use 120 ([`BlockWriteOptions::xor`]); values above 65535 are capped
    /// for XOR, whose sample count is 16 bits. Must be at least 1.
    pub max_samples_per_chunk: usize,
    /// Store a timestamp column repeated by several sealed chunks once, in
    /// the index, and write those chunks without their own (see
    /// `docs/format/index.md`). Default: `true`. Ignored for XOR chunks.
    pub shared_timestamps: bool,
    /// Store small sealed chunks of neighbouring series together, up to 15
    /// in one record compressed as one zstd frame (see
    /// [`crate::block::group`]), so that their fixed costs are paid once
    /// per group. Default: `true`. Ignored for XOR chunks.
    pub group_chunks: bool,
}

impl Default for BlockWriteOptions {
    fn default() -> Self {
        BlockWriteOptions {
            encoding: Encoding::Sealed,
            max_samples_per_chunk: 16384,
            shared_timestamps: true,
            group_chunks: true,
        }
    }
}

impl BlockWriteOptions {
    /// Gorilla XOR chunks of at most 120 samples, as Prometheus writes them.
    pub fn xor() -> BlockWriteOptions {
        BlockWriteOptions {
            encoding: Encoding::Xor,
            max_samples_per_chunk: 120,
            shared_timestamps: false,
            group_chunks: false,
        }
    }

    fn chunk_limit(&self) -> Result<usize, Error> {
        if self.max_samples_per_chunk == 0 {
            return Err(Error::InvalidArgument("max_samples_per_chunk must be at least 1".into()));
        }
        Ok(match self.encoding {
            Encoding::Xor => self.max_samples_per_chunk.min(xor::MAX_SAMPLES),
            Encoding::Sealed => self.max_samples_per_chunk,
            Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
                return Err(Error::InvalidArgument("float samples cannot be written in a histogram encoding".into()));
            }
        })
    }
}

/// Writes a complete block under `parent_dir/<ulid>`: writes into
/// `parent_dir/<ulid>.tmp`, fsyncs every file and the directory, then renames.
///
/// `series` must be sorted by labels (strictly: no label set twice), with
/// strictly increasing timestamps within `[mint, maxt)`; violations are a
/// [`BlockError`], not a panic, and leave no block behind. Series with no
/// samples are skipped. `compaction` gives level, sources and parents; an
/// empty `sources` list is replaced by the new block's own ulid (a level-1
/// block is its own source).
pub fn write_block(
    parent_dir: &Path,
    mint: i64,
    maxt: i64,
    compaction: CompactionMeta,
    series: impl Iterator<Item = (Labels, Vec<Sample>)>,
    opts: &BlockWriteOptions,
) -> Result<BlockMeta, Error> {
    let series = series.map(|(labels, floats)| Ok(SeriesData::floats(labels, floats)));
    write_block_with(&vfs::os(), parent_dir, mint, maxt, compaction, series, opts, MAX_CHUNK_FILE_SIZE)
}

/// [`write_block`] for series that may hold native histograms, from a
/// fallible source (read lazily: the writer pulls one series at a time, so
/// a caller that decodes series on demand holds one in memory). The first
/// error from `series` aborts the write and leaves no block behind.
pub fn write_block_series(
    parent_dir: &Path,
    mint: i64,
    maxt: i64,
    compaction: CompactionMeta,
    series: impl Iterator<Item = Result<SeriesData, Error>>,
    opts: &BlockWriteOptions,
) -> Result<BlockMeta, Error> {
    write_block_with(&vfs::os(), parent_dir, mint, maxt, compaction, series, opts, MAX_CHUNK_FILE_SIZE)
}

/// [`write_block`] through the file layer `fs`, over a fallible series
/// source and with a configurable chunk file size (tests use small files to
/// exercise splitting).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_block_with(
    fs: &SharedFs,
    parent_dir: &Path,
    mint: i64,
    maxt: i64,
    mut compaction: CompactionMeta,
    series: impl Iterator<Item = Result<SeriesData, Error>>,
    opts: &BlockWriteOptions,
    max_chunk_file_size: u64,
) -> Result<BlockMeta, Error> {
    if mint >= maxt {
        return Err(BlockError::InvalidRange { mint, maxt }.into());
    }
    let limit = opts.chunk_limit()?;
    let ulid = new_block_id();
    let tmp = parent_dir.join(format!("{ulid}{TMP_SUFFIX}"));
    let res = write_into(fs, &tmp, mint, maxt, limit, opts, series, max_chunk_file_size);
    let stats = match res {
        Ok(stats) => stats,
        Err(e) => {
            // Best effort: the .tmp directory is garbage either way and is
            // also removed at the next startup.
            let _ = fs.remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if compaction.sources.is_empty() {
        compaction.sources.push(ulid.clone());
    }
    compaction.sources.sort();
    compaction.sources.dedup();
    compaction.parents.sort();
    let meta =
        BlockMeta { ulid: ulid.clone(), min_time: mint, max_time: maxt, stats, compaction, version: META_VERSION };
    let finish = || -> Result<(), Error> {
        write_file_synced(&**fs, &tmp.join(META_FILENAME), &meta.to_json())?;
        fs.sync_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let dst = parent_dir.join(&ulid);
        fs.rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        fs.sync_dir(parent_dir).map_err(|e| Error::io(parent_dir, e))
    };
    if let Err(e) = finish() {
        let _ = fs.remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(meta)
}

#[allow(clippy::too_many_arguments)]
fn write_into(
    fs: &SharedFs,
    dir: &Path,
    mint: i64,
    maxt: i64,
    limit: usize,
    opts: &BlockWriteOptions,
    series: impl Iterator<Item = Result<SeriesData, Error>>,
    max_chunk_file_size: u64,
) -> Result<BlockStats, Error> {
    fs.create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let chunks_dir = dir.join(CHUNKS_DIRNAME);
    let cw = ChunkWriter::new(fs.clone(), &chunks_dir, max_chunk_file_size)?;
    let mut out = SealedOut::new(cw, opts.group_chunks);
    let mut stats = BlockStats::default();
    let mut entries: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    let mut cols = ColumnTable::new(MAX_HELD_SAMPLES, MAX_REMEMBERED_TIMESTAMPS);
    let share = opts.shared_timestamps && opts.encoding == Encoding::Sealed;
    for item in series {
        let SeriesData { labels, floats: samples, histograms } = item?;
        if labels.is_empty() {
            return Err(BlockError::EmptyLabels.into());
        }
        if let Some((prev, _)) = entries.last() {
            if *prev >= labels {
                return Err(BlockError::SeriesOutOfOrder { prev: prev.to_string(), next: labels.to_string() }.into());
            }
        }
        let mut prev_t: Option<i64> = None;
        for s in &samples {
            if s.t < mint || s.t >= maxt {
                return Err(BlockError::SampleOutOfRange { series: labels.to_string(), t: s.t, mint, maxt }.into());
            }
            if let Some(p) = prev_t.filter(|&p| p >= s.t) {
                return Err(BlockError::SampleOutOfOrder { series: labels.to_string(), t: s.t, prev_t: p }.into());
            }
            prev_t = Some(s.t);
        }
        let mut prev_t: Option<i64> = None;
        for s in &histograms {
            if s.t < mint || s.t >= maxt {
                return Err(BlockError::SampleOutOfRange { series: labels.to_string(), t: s.t, mint, maxt }.into());
            }
            if let Some(p) = prev_t.filter(|&p| p >= s.t) {
                return Err(BlockError::SampleOutOfOrder { series: labels.to_string(), t: s.t, prev_t: p }.into());
            }
            prev_t = Some(s.t);
        }
        if samples.is_empty() && histograms.is_empty() {
            continue;
        }
        let si = entries.len();
        entries.push((labels, Vec::with_capacity(samples.len().div_ceil(limit))));
        // Chunks of a series never overlap (the index stores each one's
        // start after the previous one's end): where floats and histograms
        // alternate, each run of one kind gets its own chunks.
        let mut float_from = 0;
        let mut hist_from = 0;
        while float_from < samples.len() || hist_from < histograms.len() {
            let next_hist = histograms.get(hist_from).map_or(i64::MAX, |h| h.t);
            let float_to = float_from + samples[float_from..].partition_point(|s| s.t < next_hist);
            if float_to > float_from {
                write_float_run(
                    &samples[float_from..float_to],
                    si,
                    limit,
                    opts,
                    share,
                    &mut cols,
                    &mut out,
                    &mut entries,
                )?;
                float_from = float_to;
                continue;
            }
            let next_float = samples.get(float_from).map_or(i64::MAX, |s| s.t);
            let hist_to = hist_from + histograms[hist_from..].partition_point(|h| h.t < next_float);
            let run = &histograms[hist_from..hist_to];
            if opts.encoding == Encoding::Sealed {
                write_sealed_histogram_run(run, limit.min(HISTOGRAM_CHUNK_SAMPLES), &mut out, &mut entries[si].1)?;
            } else {
                write_prometheus_histogram_run(run, &mut out, &mut entries[si].1)?;
            }
            hist_from = hist_to;
        }
        stats.num_samples += (samples.len() + histograms.len()) as u64;
        stats.num_series += 1;
        stats.num_chunks += entries[si].1.len() as u64;
    }
    let columns = cols.finish(&mut out, &mut entries)?;
    out.finish(&mut entries)?;
    fs.sync_dir(&chunks_dir).map_err(|e| Error::io(&chunks_dir, e))?;
    let index = write_index(&entries, &columns).map_err(BlockError::Limit)?;
    write_file_synced(&**fs, &dir.join(INDEX_FILENAME), &index)?;
    Ok(stats)
}

/// Writes one run of a series' float samples (series `si` of `entries`)
/// as chunks of at most `limit` samples in the block's float encoding.
#[allow(clippy::too_many_arguments)]
fn write_float_run(
    samples: &[Sample],
    si: usize,
    limit: usize,
    opts: &BlockWriteOptions,
    share: bool,
    cols: &mut ColumnTable,
    out: &mut SealedOut,
    entries: &mut [(Labels, Vec<ChunkMeta>)],
) -> Result<(), Error> {
    {
        for part in samples.chunks(limit) {
            let ci = entries[si].1.len();
            entries[si].1.push(ChunkMeta {
                mint: part[0].t,
                maxt: part[part.len() - 1].t,
                chunk_ref: 0,
                shared_ts: None,
            });
            match opts.encoding {
                Encoding::Xor => {
                    let mut a = XorAppender::new();
                    for s in part {
                        a.append(s.t, s.v);
                    }
                    entries[si].1[ci].chunk_ref = out.cw.write(Encoding::Xor, a.bytes())?;
                }
                Encoding::Sealed if share => cols.add((si, ci), part, out, entries)?,
                Encoding::Sealed => {
                    out.put((si, ci), part, None, entries)?;
                }
                Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
                    // Refused by `chunk_limit` before anything is written.
                    return Err(Error::InvalidArgument(
                        "float samples cannot be written in a histogram encoding".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Most samples of a [`Encoding::SealedHistogram`] chunk, as many as a
/// Prometheus histogram chunk holds at most. A sealed chunk is decoded
/// whole, so an instant query reads at most this many histograms per
/// series: with one chunk per 2 h series (480 samples at 15 s) an instant
/// `histogram_quantile` over 200 series took 2.3× Prometheus 2.42's time,
/// with 120 it takes 0.59×, for 11% more bytes on the latency shape (still
/// 0.84× Prometheus'; benches/README.md "Native histograms").
pub const HISTOGRAM_CHUNK_SAMPLES: usize = 120;

/// Writes histogram samples in the Prometheus encodings (cut where the
/// appenders cut).
fn write_prometheus_histogram_run(
    run: &[HistogramSample],
    out: &mut SealedOut,
    metas: &mut Vec<ChunkMeta>,
) -> Result<(), Error> {
    for c in crate::head::histograms::encode_chunks(run) {
        let chunk_ref = out.cw.write(c.encoding, &c.bytes)?;
        metas.push(ChunkMeta { mint: c.mint, maxt: c.maxt, chunk_ref, shared_ts: None });
    }
    Ok(())
}

/// Writes histogram samples as [`Encoding::SealedHistogram`] chunks of up
/// to `limit` samples, one kind (integer or float counts) per chunk. A part
/// the sealed encoding refuses (only invalid histograms, whose spans and
/// buckets disagree, or pathological repetition) goes in the Prometheus
/// encodings instead.
fn write_sealed_histogram_run(
    run: &[HistogramSample],
    limit: usize,
    out: &mut SealedOut,
    metas: &mut Vec<ChunkMeta>,
) -> Result<(), Error> {
    let mut buf = Vec::new();
    let mut from = 0;
    while from < run.len() {
        let float = matches!(run[from].h, HistogramValue::Float(_));
        let same = run[from..].iter().take(limit).take_while(|s| matches!(s.h, HistogramValue::Float(_)) == float);
        let to = from + same.count();
        let part = &run[from..to];
        buf.clear();
        match sealed_histogram::encode(part, &mut buf) {
            Ok(()) => {
                let chunk_ref = out.cw.write(Encoding::SealedHistogram, &buf)?;
                metas.push(ChunkMeta { mint: part[0].t, maxt: part[part.len() - 1].t, chunk_ref, shared_ts: None });
            }
            Err(e) => {
                tracing::warn!(error = %e, "histogram run written in the Prometheus encodings");
                write_prometheus_histogram_run(part, out, metas)?;
            }
        }
        from = to;
    }
    Ok(())
}

/// Shortest timestamp column the writer shares: below this, the column's
/// own overhead (offset, header, checksum, the chunk meta's reference)
/// outweighs what leaving it out of two chunks saves.
pub const MIN_SHARED_LEN: usize = 16;
/// Most samples of chunks held back waiting for a second chunk with the
/// same timestamps (about 64 MiB); beyond it the oldest held chunk is
/// written with its own timestamps.
const MAX_HELD_SAMPLES: usize = 1 << 22;
/// Most timestamps of distinct columns remembered for deduplication (about
/// 128 MiB); beyond it new columns are no longer considered for sharing.
const MAX_REMEMBERED_TIMESTAMPS: usize = 1 << 24;

/// Bytes of `v` as a uvarint.
fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Where a chunk's meta lives in the writer's entries: (series, chunk).
type MetaAt = (usize, usize);

/// What the writer knows about one distinct timestamp column.
enum ColumnState {
    /// Seen once; the chunk that has it is held back, unwritten, in case a
    /// second chunk shares it.
    Held { at: MetaAt, samples: Vec<Sample> },
    /// Seen once, and that chunk was written with its own timestamps (the
    /// hold bound was hit); the next sighting stores the column.
    Seen,
    /// Seen `seen` times, but storing the column did not pay for two chunks:
    /// leaving the column out saves `saving` bytes per chunk, storing it
    /// costs `cost`. Chunks are written with their own timestamps until
    /// the column has shown up often enough (`seen · saving > cost`) to be
    /// worth storing for the chunks still to come.
    Declined { seen: usize, saving: usize, cost: usize },
    /// Stored as shared column `id`.
    Shared(u32),
}

/// Deduplicates the timestamp columns of sealed chunks while a block is
/// written and decides which are stored once and shared: a column is
/// shared from its second sighting on, and the first chunk that had it is
/// held back until then so that it can share it too. Chunks are therefore
/// not written in series order, which nothing depends on: the index holds
/// every chunk's reference.
struct ColumnTable {
    by_hash: HashMap<u64, Vec<usize>>,
    columns: Vec<(Box<[i64]>, ColumnState)>,
    held: VecDeque<usize>,
    held_samples: usize,
    max_held: usize,
    remembered: usize,
    max_remembered: usize,
    encoded: Vec<Vec<u8>>,
    buf: Vec<u8>,
}

impl ColumnTable {
    fn new(max_held: usize, max_remembered: usize) -> ColumnTable {
        ColumnTable {
            by_hash: HashMap::new(),
            columns: Vec::new(),
            held: VecDeque::new(),
            held_samples: 0,
            max_held,
            remembered: 0,
            max_remembered,
            encoded: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Writes (now or later) the sealed chunk of `part`, whose meta is at
    /// `at` in `entries`, and fills in its reference and column.
    fn add(
        &mut self,
        at: MetaAt,
        part: &[Sample],
        out: &mut SealedOut,
        entries: &mut [(Labels, Vec<ChunkMeta>)],
    ) -> Result<(), Error> {
        if part.len() < MIN_SHARED_LEN {
            return self.write_own(at, part, out, entries);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for s in part {
            s.t.hash(&mut h);
        }
        let hash = h.finish();
        let found = self.by_hash.get(&hash).and_then(|ids| {
            ids.iter().copied().find(|&i| {
                let ts = &self.columns[i].0;
                ts.len() == part.len() && ts.iter().zip(part).all(|(&t, s)| t == s.t)
            })
        });
        let Some(i) = found else {
            if self.remembered + part.len() > self.max_remembered {
                return self.write_own(at, part, out, entries);
            }
            self.remembered += part.len();
            let ts: Box<[i64]> = part.iter().map(|s| s.t).collect();
            self.columns.push((ts, ColumnState::Held { at, samples: part.to_vec() }));
            let i = self.columns.len() - 1;
            self.by_hash.entry(hash).or_default().push(i);
            self.held.push_back(i);
            self.held_samples += part.len();
            while self.held_samples > self.max_held {
                let Some(oldest) = self.held.pop_front() else { break };
                self.release(oldest, out, entries)?;
            }
            return Ok(());
        };
        let id = match std::mem::replace(&mut self.columns[i].1, ColumnState::Seen) {
            ColumnState::Shared(id) => id,
            ColumnState::Seen => self.store(i)?,
            ColumnState::Declined { seen, saving, cost } => {
                if (seen + 1) * saving <= cost {
                    self.columns[i].1 = ColumnState::Declined { seen: seen + 1, saving, cost };
                    return self.write_own(at, part, out, entries);
                }
                self.store(i)?
            }
            ColumnState::Held { at: first, samples } => {
                self.held_samples -= samples.len();
                // Measure on the held chunk what leaving its timestamps out
                // saves, against what storing the column costs (its bytes,
                // its offset, and a longer reference in each chunk meta).
                self.buf.clear();
                sealed::encode(&samples, &mut self.buf);
                let own = self.buf.len();
                self.buf.clear();
                let opts = sealed::EncodeOptions { shared_timestamps: Some(&self.columns[i].0), ..Default::default() };
                let left_out = sealed::encode_with(&samples, &opts, &mut self.buf);
                debug_assert!(left_out, "the column is the held chunk's own timestamps");
                let reference = uvarint_len(self.encoded.len() as u64 + 1);
                let saving = own.saturating_sub(self.buf.len() + reference);
                let mut col = Vec::new();
                sealed::encode_timestamps(&self.columns[i].0, &mut col);
                let cost = col.len() + 8;
                if 2 * saving <= cost {
                    self.columns[i].1 = ColumnState::Declined { seen: 2, saving, cost };
                    self.write_own(first, &samples, out, entries)?;
                    return self.write_own(at, part, out, entries);
                }
                let id = self.store_encoded(col)?;
                let left_out = out.put(first, &samples, Some(&self.columns[i].0), entries)?;
                debug_assert!(left_out);
                entries[first.0].1[first.1].shared_ts = Some(id);
                id
            }
        };
        self.columns[i].1 = ColumnState::Shared(id);
        self.write_shared(at, part, i, id, out, entries)
    }

    /// Stores column `i` as the next shared column and returns its id.
    fn store(&mut self, i: usize) -> Result<u32, Error> {
        let mut col = Vec::new();
        sealed::encode_timestamps(&self.columns[i].0, &mut col);
        self.store_encoded(col)
    }

    fn store_encoded(&mut self, col: Vec<u8>) -> Result<u32, Error> {
        let id = u32::try_from(self.encoded.len())
            .map_err(|_| BlockError::Limit("more than 2^32 shared timestamp columns".into()))?;
        self.encoded.push(col);
        Ok(id)
    }

    fn write_shared(
        &mut self,
        at: MetaAt,
        part: &[Sample],
        i: usize,
        id: u32,
        out: &mut SealedOut,
        entries: &mut [(Labels, Vec<ChunkMeta>)],
    ) -> Result<(), Error> {
        let left_out = out.put(at, part, Some(&self.columns[i].0), entries)?;
        debug_assert!(left_out, "a chunk is only shared against its own timestamps");
        entries[at.0].1[at.1].shared_ts = left_out.then_some(id);
        Ok(())
    }

    fn write_own(
        &mut self,
        at: MetaAt,
        part: &[Sample],
        out: &mut SealedOut,
        entries: &mut [(Labels, Vec<ChunkMeta>)],
    ) -> Result<(), Error> {
        out.put(at, part, None, entries)?;
        entries[at.0].1[at.1].shared_ts = None;
        Ok(())
    }

    /// Writes the chunk held for column `i`, if it still is, with its own
    /// timestamps.
    fn release(
        &mut self,
        i: usize,
        out: &mut SealedOut,
        entries: &mut [(Labels, Vec<ChunkMeta>)],
    ) -> Result<(), Error> {
        match std::mem::replace(&mut self.columns[i].1, ColumnState::Seen) {
            ColumnState::Held { at, samples } => {
                self.held_samples -= samples.len();
                self.write_own(at, &samples, out, entries)
            }
            other => {
                self.columns[i].1 = other;
                Ok(())
            }
        }
    }

    /// Writes every chunk still held (their columns turned out to be used
    /// once) and returns the encoded shared columns.
    fn finish(mut self, out: &mut SealedOut, entries: &mut [(Labels, Vec<ChunkMeta>)]) -> Result<Vec<Vec<u8>>, Error> {
        while let Some(i) = self.held.pop_front() {
            self.release(i, out, entries)?;
        }
        Ok(self.encoded)
    }
}

/// Where the writer's sealed chunks go: a small chunk joins the current
/// chunk group (written as one record once it is full, see
/// [`crate::block::group`]), a larger one gets a record of its own. A
/// group member's reference is known only when its group is written, so
/// until then its meta's `chunk_ref` is 0; [`SealedOut::finish`] writes the
/// last group before the index is built.
pub(crate) struct SealedOut {
    pub(crate) cw: ChunkWriter,
    group: bool,
    /// Members of the open group: where their metas are, their bytes.
    pending: Vec<(MetaAt, Vec<u8>)>,
    pending_raw: usize,
    buf: Vec<u8>,
}

impl SealedOut {
    pub(crate) fn new(cw: ChunkWriter, group: bool) -> SealedOut {
        SealedOut { cw, group, pending: Vec::new(), pending_raw: 0, buf: Vec::new() }
    }

    /// Writes (now or with its group) the sealed chunk of `part`, whose
    /// meta is at `at`, without its timestamps if they equal `shared`;
    /// returns whether they were left out. Sets the meta's reference, not
    /// its `shared_ts`.
    pub(crate) fn put(
        &mut self,
        at: MetaAt,
        part: &[Sample],
        shared: Option<&[i64]>,
        entries: &mut [(Labels, Vec<ChunkMeta>)],
    ) -> Result<bool, Error> {
        if self.group {
            // Members are stored without zstd: the group compresses them
            // together.
            let mut raw = Vec::new();
            let opts = sealed::EncodeOptions { zstd_level: 0, shared_timestamps: shared };
            let left_out = sealed::encode_with(part, &opts, &mut raw);
            if raw.len() <= group::MAX_MEMBER_RAW {
                self.pending_raw += raw.len();
                self.pending.push((at, raw));
                if self.pending.len() == group::MAX_MEMBERS || self.pending_raw >= group::GROUP_TARGET_RAW {
                    self.flush(entries)?;
                }
                return Ok(left_out);
            }
        }
        self.buf.clear();
        let opts = sealed::EncodeOptions { shared_timestamps: shared, ..Default::default() };
        let left_out = sealed::encode_with(part, &opts, &mut self.buf);
        entries[at.0].1[at.1].chunk_ref = self.cw.write(Encoding::Sealed, &self.buf)?;
        Ok(left_out)
    }

    /// Writes the open group, if any, and fills in its members' references.
    fn flush(&mut self, entries: &mut [(Labels, Vec<ChunkMeta>)]) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let members: Vec<&[u8]> = self.pending.iter().map(|(_, b)| b.as_slice()).collect();
        group::encode_group(&members, sealed::DEFAULT_ZSTD_LEVEL, &mut self.buf);
        let record = self.cw.write_record(group::GROUP_ENCODING, &self.buf)?;
        for (k, (at, _)) in self.pending.iter().enumerate() {
            entries[at.0].1[at.1].chunk_ref = group::member_ref(record, k);
        }
        self.pending.clear();
        self.pending_raw = 0;
        Ok(())
    }

    /// Writes the last group, then flushes and fsyncs the chunk files.
    pub(crate) fn finish(mut self, entries: &mut [(Labels, Vec<ChunkMeta>)]) -> Result<u32, Error> {
        self.flush(entries)?;
        self.cw.finish()
    }
}

fn write_file_synced(fs: &dyn vfs::FileSystem, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let f = fs.create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory so the entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::chunks::ChunkFiles;
    use crate::chunkenc::Chunk;

    /// Jittered timestamps (pattern `seed`), `n` of them.
    fn column(seed: u64, n: usize) -> Vec<i64> {
        let mut x = seed;
        (0..n as i64)
            .map(|k| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                k * 15_000 + ((x >> 33) % 250) as i64
            })
            .collect()
    }

    fn samples(ts: &[i64], v: f64) -> Vec<Sample> {
        ts.iter().enumerate().map(|(i, &t)| Sample::new(t, v + i as f64)).collect()
    }

    /// Feeds chunks (one per series) through a table with the given bounds
    /// and returns the metas, after checking every chunk decodes back.
    fn run(max_held: usize, max_remembered: usize, parts: &[Vec<Sample>]) -> (Vec<ChunkMeta>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let cw = ChunkWriter::new(vfs::os(), dir.path(), MAX_CHUNK_FILE_SIZE).unwrap();
        let mut out = SealedOut::new(cw, true);
        let mut table = ColumnTable::new(max_held, max_remembered);
        let mut entries: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
        for (si, p) in parts.iter().enumerate() {
            let l = Labels::new([("i", si.to_string())]).unwrap();
            entries.push((l, vec![ChunkMeta { mint: p[0].t, maxt: p[p.len() - 1].t, chunk_ref: 0, shared_ts: None }]));
            table.add((si, 0), p, &mut out, &mut entries).unwrap();
        }
        let cols = table.finish(&mut out, &mut entries).unwrap();
        out.finish(&mut entries).unwrap();
        let files = ChunkFiles::open(dir.path(), &|r| Error::InvalidArgument(r)).unwrap();
        let metas: Vec<ChunkMeta> = entries.iter().map(|e| e.1[0]).collect();
        for (m, p) in metas.iter().zip(parts) {
            let mut c: Chunk = files.chunk(m.chunk_ref, m.mint, m.maxt).unwrap();
            if let Some(k) = m.shared_ts {
                let mut ts = Vec::new();
                sealed::decode_timestamps(&cols[k as usize], &mut ts).unwrap();
                c.timestamps = Some(ts.into());
            }
            let mut out = Vec::new();
            c.decode_into(&mut out).unwrap();
            assert_eq!(&out, p);
        }
        (metas, cols.len())
    }

    #[test]
    fn a_column_is_shared_from_its_second_sighting_including_the_held_first_chunk() {
        let (a, b) = (column(1, 100), column(2, 100));
        let parts = [samples(&a, 0.0), samples(&b, 1.0), samples(&a, 2.0), samples(&a, 3.0)];
        let (metas, ncols) = run(usize::MAX, usize::MAX, &parts);
        assert_eq!(ncols, 1, "column b is used once and not stored");
        let shared: Vec<Option<u32>> = metas.iter().map(|m| m.shared_ts).collect();
        assert_eq!(shared, vec![Some(0), None, Some(0), Some(0)]);
    }

    #[test]
    fn hitting_the_hold_bound_writes_the_oldest_held_chunk_with_its_own_timestamps() {
        let (a, b) = (column(1, 100), column(2, 100));
        // Holding b pushes the held samples past 150: a's chunk is written
        // on its own; a's next sighting still stores the column.
        let parts = [samples(&a, 0.0), samples(&b, 1.0), samples(&a, 2.0), samples(&b, 3.0)];
        let (metas, ncols) = run(150, usize::MAX, &parts);
        assert_eq!(ncols, 2);
        let shared: Vec<Option<u32>> = metas.iter().map(|m| m.shared_ts).collect();
        assert_eq!(shared, vec![None, Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn columns_beyond_the_memory_bound_are_not_considered_for_sharing() {
        let (a, b) = (column(1, 100), column(2, 100));
        let parts = [samples(&a, 0.0), samples(&b, 1.0), samples(&b, 2.0), samples(&a, 3.0)];
        let (metas, ncols) = run(usize::MAX, 150, &parts);
        assert_eq!(ncols, 1);
        let shared: Vec<Option<u32>> = metas.iter().map(|m| m.shared_ts).collect();
        assert_eq!(shared, vec![Some(0), None, None, Some(0)]);
    }

    #[test]
    fn cheap_columns_are_declined_until_they_repeat_often_enough() {
        // Perfectly regular timestamps cost a few bytes in a chunk: two
        // chunks do not pay for a stored column, many do.
        let regular: Vec<i64> = (0..100).map(|k| k * 15_000).collect();
        let parts: Vec<Vec<Sample>> = (0..40).map(|i| samples(&regular, f64::from(i))).collect();
        let (metas, ncols) = run(usize::MAX, usize::MAX, &parts);
        assert!(metas[0].shared_ts.is_none() && metas[1].shared_ts.is_none());
        assert!(ncols <= 1);
        if ncols == 1 {
            let first = metas.iter().position(|m| m.shared_ts.is_some()).unwrap();
            assert!(metas[first..].iter().all(|m| m.shared_ts == Some(0)), "once stored, always used");
        }
        // Short chunks never share.
        let short = column(3, MIN_SHARED_LEN - 1);
        let (metas, ncols) = run(usize::MAX, usize::MAX, &[samples(&short, 0.0), samples(&short, 1.0)]);
        assert_eq!(ncols, 0);
        assert!(metas.iter().all(|m| m.shared_ts.is_none()));
    }

    #[test]
    fn histogram_runs_are_sealed_one_kind_per_chunk_within_the_limit() {
        use crate::histogram::{Histogram, Span};
        let h = |n: u64| Histogram {
            count: n,
            sum: n as f64 * 0.25,
            positive_spans: vec![Span { offset: 1, length: 1 }],
            positive_buckets: vec![n as i64],
            ..Histogram::default()
        };
        let mut run: Vec<HistogramSample> =
            (0..10).map(|i| HistogramSample { t: i * 10, h: HistogramValue::Integer(h(i as u64)) }).collect();
        run.extend((10..13).map(|i| HistogramSample { t: i * 10, h: HistogramValue::Float(h(i as u64).to_float()) }));
        let dir = tempfile::tempdir().unwrap();
        let cw = ChunkWriter::new(vfs::os(), dir.path(), MAX_CHUNK_FILE_SIZE).unwrap();
        let mut out = SealedOut::new(cw, true);
        let mut metas = Vec::new();
        write_sealed_histogram_run(&run, 4, &mut out, &mut metas).unwrap();
        out.finish(&mut Vec::new()).unwrap();
        let files = ChunkFiles::open(dir.path(), &|r| Error::InvalidArgument(r)).unwrap();
        let spans: Vec<(i64, i64)> = metas.iter().map(|m| (m.mint, m.maxt)).collect();
        assert_eq!(spans, vec![(0, 30), (40, 70), (80, 90), (100, 120)]);
        let mut got = Vec::new();
        for m in &metas {
            let c: Chunk = files.chunk(m.chunk_ref, m.mint, m.maxt).unwrap();
            assert_eq!(c.encoding, Encoding::SealedHistogram);
            c.decode_mixed_into(&mut Vec::new(), &mut got).unwrap();
        }
        assert_eq!(format!("{got:?}"), format!("{run:?}"));
    }
}
