//! The import itself: Prometheus blocks and WAL into Tidemark blocks.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use tidemark_storage::block::meta::CompactionMeta;
use tidemark_storage::block::{write_block_series, BlockWriteOptions, SeriesData};
use tidemark_storage::histogram::HistogramSample;
use tidemark_storage::{Labels, NameValidation, Sample};

use super::chunks::{decode_chunk, ChunkFiles, ChunkSamples};
use super::index::{IndexReader, IndexSeries};
use super::meta::{parse_meta, PromBlockMeta};
use super::tombstones::Tombstones;
use super::wal::{decode_record, segments_to_read, Record, RecordReader};
use crate::target::{take_lock, LockError, Target};

use super::{verify, ImportOptions, ImportSummary, PrometheusImportError as E};

/// Reasons for leaving data out, counted.
#[derive(Debug, Default)]
pub(crate) struct Skips(BTreeMap<String, u64>);

impl Skips {
    pub(crate) fn add(&mut self, why: &str, n: u64) {
        if n > 0 {
            *self.0.entry(why.to_string()).or_default() += n;
        }
    }
}

/// A Prometheus block directory and its meta.
#[derive(Debug, Clone)]
pub(crate) struct PromBlock {
    pub(crate) dir: PathBuf,
    pub(crate) meta: PromBlockMeta,
}

/// Block directories of `src` (those with a `meta.json`; temporary
/// directories of a compaction or deletion under way are ignored), by time.
pub(crate) fn list_blocks(src: &Path) -> Result<Vec<PromBlock>, E> {
    let mut out = Vec::new();
    for e in fs::read_dir(src).map_err(|e| E::io(src, e))? {
        let e = e.map_err(|e| E::io(src, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp") || !e.file_type().map_err(|err| E::io(e.path(), err))?.is_dir() {
            continue;
        }
        let mp = e.path().join("meta.json");
        let b = match fs::read(&mp) {
            Ok(b) => b,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(E::io(mp, err)),
        };
        let meta = parse_meta(&b).map_err(|err| E::format(&mp, err))?;
        out.push(PromBlock { dir: e.path(), meta });
    }
    out.sort_by(|a, b| (a.meta.min_time, &a.meta.ulid).cmp(&(b.meta.min_time, &b.meta.ulid)));
    Ok(out)
}

/// An open Prometheus block: its index bytes, chunk files and tombstones.
pub(crate) struct OpenBlock {
    pub(crate) block: PromBlock,
    index_path: PathBuf,
    index: Vec<u8>,
    chunks: ChunkFiles,
    tombstones: Tombstones,
}

impl OpenBlock {
    pub(crate) fn open(block: &PromBlock) -> Result<OpenBlock, E> {
        let index_path = block.dir.join("index");
        let index = fs::read(&index_path).map_err(|e| E::io(&index_path, e))?;
        let chunks = ChunkFiles::open(&block.dir.join("chunks"))?;
        let tp = block.dir.join("tombstones");
        let tombstones = match fs::read(&tp) {
            Ok(b) => Tombstones::parse(&b).map_err(|e| E::format(&tp, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tombstones::default(),
            Err(e) => return Err(E::io(tp, e)),
        };
        Ok(OpenBlock { block: block.clone(), index_path, index, chunks, tombstones })
    }

    pub(crate) fn reader(&self) -> Result<IndexReader<'_>, E> {
        IndexReader::new(&self.index).map_err(|e| E::format(&self.index_path, e))
    }

    pub(crate) fn series_ids(&self, ix: &IndexReader<'_>) -> Result<Vec<u64>, E> {
        ix.series_ids().map_err(|e| E::format(&self.index_path, e))
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.index.len() as u64 + self.chunks.total_bytes()
    }

    /// Series `id` decoded, tombstones applied, inside the block's range;
    /// `None` when it is skipped (reason counted) or has no sample left.
    /// Also returns the bytes of chunk data read.
    pub(crate) fn read_series(
        &self,
        ix: &IndexReader<'_>,
        id: u64,
        skips: &mut Skips,
        buf: &mut Vec<u8>,
    ) -> Result<(Option<SeriesData>, u64), E> {
        let s: IndexSeries<'_> = ix.series(id).map_err(|e| E::format(&self.index_path, e))?;
        let mut read = 0u64;
        let Some(labels) = to_labels(&s.labels, skips) else { return Ok((None, 0)) };
        let mut floats = Vec::new();
        let mut hists = Vec::new();
        for c in &s.chunks {
            let enc = self.chunks.read(c.chunk_ref, buf)?;
            read += buf.len() as u64;
            match decode_chunk(enc, buf) {
                Ok(ChunkSamples::Floats(f)) => floats.extend(f),
                Ok(ChunkSamples::Histograms(h)) => hists.extend(h),
                Err(e) => return Err(E::format(self.block.dir.join("chunks"), e)),
            }
        }
        let (mint, maxt) = (self.block.meta.min_time, self.block.meta.max_time);
        let tomb = &self.tombstones;
        let keep = |t: i64| !tomb.is_deleted(s.id, t);
        let n = (floats.len(), hists.len());
        floats.retain(|x| keep(x.t));
        hists.retain(|x| keep(x.t));
        skips.add("samples deleted by tombstones", (n.0 - floats.len() + n.1 - hists.len()) as u64);
        let n = (floats.len(), hists.len());
        floats.retain(|x| mint <= x.t && x.t < maxt);
        hists.retain(|x| mint <= x.t && x.t < maxt);
        skips.add("samples outside their block's range", (n.0 - floats.len() + n.1 - hists.len()) as u64);
        Ok((finish_series(labels, floats, hists, skips), read))
    }
}

/// Labels from raw pairs; `None` (counted) when not UTF-8 or not valid for
/// Tidemark (which accepts UTF-8 names, as Prometheus 3.x does, but needs
/// a metric name).
pub(crate) fn to_labels(pairs: &[(&[u8], &[u8])], skips: &mut Skips) -> Option<Labels> {
    let mut strs = Vec::with_capacity(pairs.len());
    for (n, v) in pairs {
        match (std::str::from_utf8(n), std::str::from_utf8(v)) {
            (Ok(n), Ok(v)) => strs.push((n, v)),
            _ => {
                skips.add("series with labels that are not UTF-8", 1);
                return None;
            }
        }
    }
    match Labels::new(strs).and_then(|l| l.validate(NameValidation::Utf8).map(|()| l)) {
        Ok(l) => Some(l),
        Err(_) => {
            skips.add("series with invalid labels", 1);
            None
        }
    }
}

/// Sorts by time, keeps the first sample of a timestamp (as Prometheus'
/// head does; overlapping chunks of a block repeat samples), and drops a
/// histogram at a timestamp that has a float. `None` when nothing is left.
pub(crate) fn finish_series(
    labels: Labels,
    mut floats: Vec<Sample>,
    mut hists: Vec<HistogramSample>,
    skips: &mut Skips,
) -> Option<SeriesData> {
    floats.sort_by_key(|s| s.t);
    floats.dedup_by_key(|s| s.t);
    hists.sort_by_key(|s| s.t);
    hists.dedup_by_key(|s| s.t);
    if !floats.is_empty() && !hists.is_empty() {
        let n = hists.len();
        hists.retain(|h| floats.binary_search_by_key(&h.t, |s| s.t).is_err());
        skips.add("histogram samples at the timestamp of a float sample", (n - hists.len()) as u64);
    }
    if floats.is_empty() && hists.is_empty() {
        return None;
    }
    Some(SeriesData { labels, floats, histograms: hists })
}

struct Totals {
    series: std::collections::HashSet<Labels>,
    floats: u64,
    hists: u64,
    mint: i64,
    maxt: i64,
}

impl Totals {
    fn new() -> Totals {
        Totals { series: Default::default(), floats: 0, hists: 0, mint: i64::MAX, maxt: i64::MIN }
    }

    fn count(&mut self, s: &SeriesData) {
        if !self.series.contains(&s.labels) {
            self.series.insert(s.labels.clone());
        }
        self.floats += s.floats.len() as u64;
        self.hists += s.histograms.len() as u64;
        for t in [s.floats.first(), s.floats.last()].into_iter().flatten().map(|x| x.t) {
            self.mint = self.mint.min(t);
            self.maxt = self.maxt.max(t);
        }
        for t in [s.histograms.first(), s.histograms.last()].into_iter().flatten().map(|x| x.t) {
            self.mint = self.mint.min(t);
            self.maxt = self.maxt.max(t);
        }
    }
}

/// Writes one block from `series`, keeping the first source error; removes
/// the block again when no series had samples.
fn write_series(
    data_dir: &Path,
    target: &Target,
    mint: i64,
    maxt: i64,
    mut series: impl FnMut() -> Option<Result<SeriesData, E>>,
    totals: &mut Totals,
    written: &mut Vec<String>,
) -> Result<(), E> {
    // `maxt` is exclusive, as in block metas.
    target.check(mint, maxt.saturating_sub(1))?;
    let mut failure: Option<E> = None;
    let mut n = 0u64;
    let it = std::iter::from_fn(|| match series()? {
        Ok(s) => {
            totals.count(&s);
            n += 1;
            Some(Ok(s))
        }
        Err(e) => {
            failure = Some(e);
            Some(Err(tidemark_storage::Error::InvalidArgument("reading the Prometheus source failed".into())))
        }
    });
    let res = write_block_series(data_dir, mint, maxt, CompactionMeta::level1(), it, &BlockWriteOptions::default());
    if let Some(e) = failure {
        return Err(e);
    }
    let meta = res?;
    if n == 0 || meta.stats.num_series == 0 {
        let p = data_dir.join(&meta.ulid);
        fs::remove_dir_all(&p).map_err(|e| E::io(p, e))?;
    } else {
        written.push(meta.ulid);
    }
    Ok(())
}

/// Imports the Prometheus data directory `src` (its blocks, and its WAL
/// when `wal`) into `opts.data_dir`; see the [module](super) documentation.
pub fn import_dir(src: &Path, wal: bool, opts: &ImportOptions) -> Result<ImportSummary, E> {
    let blocks = list_blocks(src)?;
    let wal_dir = src.join("wal");
    let use_wal = wal && wal_dir.is_dir();
    if blocks.is_empty() && !use_wal {
        return Err(E::NotPrometheusDir(src.to_path_buf()));
    }
    let target = Target::inspect(&opts.data_dir).map_err(|e| match e {
        tidemark_storage::Error::Locked(p) => E::Locked(p),
        e => E::Storage(e),
    })?;
    let lock = take_lock(&opts.data_dir).map_err(|e| match e {
        LockError::Locked(p) => E::Locked(p),
        LockError::Io { path, source } => E::io(path, source),
    })?;
    let mut skips = Skips::default();
    let mut totals = Totals::new();
    let mut written = Vec::new();
    let mut imported = Vec::new();

    let mut wal_segments = Vec::new();
    if use_wal {
        wal_segments = segments_to_read(&wal_dir).map_err(|e| E::io(&wal_dir, e))?;
    }
    let mut total_bytes = 0u64;
    for b in &blocks {
        total_bytes += dir_size(&b.dir);
    }
    for s in &wal_segments {
        total_bytes += fs::metadata(s).map(|m| m.len()).unwrap_or(0);
    }
    let pb = crate::progress::Progress::bytes(opts.progress, "reading", total_bytes);

    for b in &blocks {
        if b.meta.deletable {
            skips.add("blocks marked deletable (replaced by a compacted block)", 1);
            continue;
        }
        pb.set_message(format!("block {}", b.meta.ulid));
        let ob = OpenBlock::open(b)?;
        let ix = ob.reader()?;
        let ids = ob.series_ids(&ix)?;
        let mut ids = ids.into_iter();
        let mut buf = Vec::new();
        let mut done = 0u64;
        let block_bytes = ob.bytes();
        let skips_ref = &mut skips;
        write_series(
            &opts.data_dir,
            &target,
            b.meta.min_time,
            b.meta.max_time,
            || loop {
                let id = ids.next()?;
                match ob.read_series(&ix, id, skips_ref, &mut buf) {
                    Ok((Some(s), n)) => {
                        done += n;
                        pb.inc(n);
                        return Some(Ok(s));
                    }
                    Ok((None, n)) => {
                        done += n;
                        pb.inc(n);
                    }
                    Err(e) => return Some(Err(e)),
                }
            },
            &mut totals,
            &mut written,
        )?;
        pb.inc(block_bytes.saturating_sub(done));
        imported.push(b.clone());
    }

    if use_wal {
        // Prometheus replays the WAL into a head that starts where the
        // newest block ends; older samples are already in blocks.
        let min_valid = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or(i64::MIN);
        pb.set_message("WAL");
        import_wal(&wal_segments, min_valid, opts, &target, &mut skips, &mut totals, &mut written, &pb)?;
        let wbl = src.join("wbl");
        if wbl.is_dir() {
            let n = fs::read_dir(&wbl).map(|d| d.count() as u64).unwrap_or(0);
            skips.add("out-of-order WAL (wbl/) segment files, not read", n);
        }
    } else if wal_dir.is_dir() {
        skips.add("WAL not read (pass --wal to import the head's data)", 1);
    }
    pb.finish();
    drop(lock);

    let mut summary = ImportSummary {
        series: totals.series.len() as u64,
        float_samples: totals.floats,
        histogram_samples: totals.hists,
        min_time_ms: if totals.series.is_empty() { 0 } else { totals.mint },
        max_time_ms: if totals.series.is_empty() { 0 } else { totals.maxt },
        blocks_written: written,
        skipped: skips.0.into_iter().collect(),
        verified: false,
    };
    if opts.verify {
        let wal_min_valid = blocks.iter().map(|b| b.meta.max_time).max().unwrap_or(i64::MIN);
        let segs = if use_wal { Some((wal_segments.as_slice(), wal_min_valid)) } else { None };
        verify::verify(&opts.data_dir, &imported, segs, opts.max_memory_bytes.max(1), &summary)?;
        summary.verified = true;
    }
    Ok(summary)
}

fn dir_size(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => n += dir_size(&e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

/// What a WAL replay holds: series labels by reference and their samples.
#[derive(Default)]
pub(crate) struct WalData {
    pub(crate) labels: HashMap<u64, Labels>,
    /// References whose series record had labels we cannot import.
    pub(crate) invalid: std::collections::HashSet<u64>,
    pub(crate) floats: HashMap<u64, Vec<Sample>>,
    pub(crate) hists: HashMap<u64, Vec<HistogramSample>>,
    /// Every tombstone of the whole WAL (read before the samples, so that a
    /// deletion logged after samples already written out still applies).
    pub(crate) tombstones: Tombstones,
    pub(crate) bytes: u64,
}

/// Reads the records of `segments` in order. A failure to read the last
/// segment's framing (a record torn by a crash) ends the replay there and
/// is counted, as Prometheus' repair truncates it; anything else is an error.
fn for_each_record(
    segments: &[PathBuf],
    skips: &mut Skips,
    mut progress: impl FnMut(u64),
    mut f: impl FnMut(&[u8], &mut Skips) -> Result<(), super::FormatError>,
) -> Result<(), E> {
    let mut rr = RecordReader::new();
    for (i, seg) in segments.iter().enumerate() {
        let bytes = fs::read(seg).map_err(|e| E::io(seg, e))?;
        let mut record_failed = false;
        let res = rr.read_segment(&bytes, |rec| f(rec, skips).inspect_err(|_| record_failed = true));
        match res {
            Ok(()) => {}
            Err(_) if i + 1 == segments.len() && !record_failed => {
                skips.add("torn records at the end of the WAL", 1);
            }
            Err(e) => return Err(E::format(seg, e)),
        }
        progress(bytes.len() as u64);
    }
    if rr.in_record() {
        skips.add("torn records at the end of the WAL", 1);
    }
    Ok(())
}

/// Rough bytes a histogram sample takes in memory.
fn histogram_bytes(h: &tidemark_storage::histogram::HistogramValue) -> u64 {
    use tidemark_storage::histogram::HistogramValue as H;
    let (spans, buckets) = match h {
        H::Integer(h) => {
            (h.positive_spans.len() + h.negative_spans.len(), h.positive_buckets.len() + h.negative_buckets.len())
        }
        H::Float(h) => {
            (h.positive_spans.len() + h.negative_spans.len(), h.positive_buckets.len() + h.negative_buckets.len())
        }
    };
    200 + 8 * (spans + buckets) as u64
}

/// Replays WAL segments, calling `flush` whenever the samples held reach
/// `max_bytes` (and once at the end).
pub(crate) fn replay_wal(
    segments: &[PathBuf],
    min_valid: i64,
    max_bytes: u64,
    skips: &mut Skips,
    mut progress: impl FnMut(u64),
    mut flush: impl FnMut(&mut WalData, &mut Skips) -> Result<(), E>,
) -> Result<(), E> {
    let mut data = WalData::default();
    // First pass: tombstones only.
    let mut quiet = Skips::default();
    for_each_record(
        segments,
        &mut quiet,
        |_| {},
        |rec, _| {
            if rec.first() == Some(&super::wal::record_type::TOMBSTONES) {
                if let Record::Tombstones(ts) = decode_record(rec)? {
                    for (r, a, b) in ts {
                        data.tombstones.add(r, a, b);
                    }
                }
            }
            Ok(())
        },
    )?;
    let mut pending_flush: Option<E> = None;
    for_each_record(segments, skips, &mut progress, |rec, skips| {
        match decode_record(rec)? {
            Record::Series(ss) => {
                for (r, ls) in ss {
                    let pairs: Vec<(&[u8], &[u8])> = ls.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
                    match to_labels(&pairs, skips) {
                        Some(l) => {
                            data.labels.insert(r, l);
                        }
                        None => {
                            data.invalid.insert(r);
                        }
                    }
                }
            }
            Record::Samples(ss) => {
                for (r, t, v) in ss {
                    if t < min_valid {
                        skips.add("WAL samples already in a block", 1);
                        continue;
                    }
                    data.floats.entry(r).or_default().push(Sample::new(t, v));
                    data.bytes += 16;
                }
            }
            Record::Histograms(hs) => {
                for (r, t, h) in hs {
                    if t < min_valid {
                        skips.add("WAL samples already in a block", 1);
                        continue;
                    }
                    data.bytes += histogram_bytes(&h);
                    data.hists.entry(r).or_default().push(HistogramSample { t, h });
                }
            }
            Record::Tombstones(_) => {}
            Record::Skipped(ty) => {
                let why = match ty {
                    4 => "WAL exemplar records",
                    5 => "WAL memory-map marker records",
                    6 => "WAL metadata records",
                    11..=13 => "WAL records with start timestamps (Prometheus 3.x v2 records)",
                    _ => "WAL records of unknown type",
                };
                skips.add(why, 1);
            }
        }
        if data.bytes >= max_bytes && pending_flush.is_none() {
            if let Err(e) = flush(&mut data, skips) {
                pending_flush = Some(e);
                return Err(super::FormatError::invalid("writing blocks failed"));
            }
        }
        Ok(())
    })
    .map_err(|e| pending_flush.take().unwrap_or(e))?;
    flush(&mut data, skips)
}

/// The series of a WAL replay, sorted by labels, tombstones applied; the
/// samples are taken out of `data`.
pub(crate) fn wal_series(data: &mut WalData, skips: &mut Skips) -> Vec<SeriesData> {
    let mut refs: Vec<u64> = data.floats.keys().chain(data.hists.keys()).copied().collect();
    refs.sort_unstable();
    refs.dedup();
    let mut by_labels: BTreeMap<Labels, (Vec<Sample>, Vec<HistogramSample>)> = BTreeMap::new();
    for r in refs {
        let mut f = data.floats.remove(&r).unwrap_or_default();
        let mut h = data.hists.remove(&r).unwrap_or_default();
        let Some(l) = data.labels.get(&r) else {
            let why = if data.invalid.contains(&r) {
                "WAL samples of series with invalid labels"
            } else {
                "WAL samples of series without a series record"
            };
            skips.add(why, (f.len() + h.len()) as u64);
            continue;
        };
        let n = f.len() + h.len();
        f.retain(|s| !data.tombstones.is_deleted(r, s.t));
        h.retain(|s| !data.tombstones.is_deleted(r, s.t));
        skips.add("samples deleted by tombstones", (n - f.len() - h.len()) as u64);
        // Two references with one label set (a series re-created after
        // head garbage collection) are one series.
        let e = by_labels.entry(l.clone()).or_default();
        e.0.extend(f);
        e.1.extend(h);
    }
    data.bytes = 0;
    by_labels.into_iter().filter_map(|(l, (f, h))| finish_series(l, f, h, skips)).collect()
}

#[allow(clippy::too_many_arguments)]
fn import_wal(
    segments: &[PathBuf],
    min_valid: i64,
    opts: &ImportOptions,
    target: &Target,
    skips: &mut Skips,
    totals: &mut Totals,
    written: &mut Vec<String>,
    pb: &crate::progress::Progress,
) -> Result<(), E> {
    let span = i64::try_from(opts.block_duration.as_millis()).unwrap_or(i64::MAX).max(1);
    replay_wal(
        segments,
        min_valid,
        opts.max_memory_bytes.max(1),
        skips,
        |n| pb.inc(n),
        |data, skips| {
            let series = wal_series(data, skips);
            // Blocks aligned to multiples of `span`, as Prometheus cuts them.
            let mut windows: Vec<i64> = Vec::new();
            for s in &series {
                for t in s.floats.iter().map(|x| x.t).chain(s.histograms.iter().map(|x| x.t)) {
                    windows.push(t.div_euclid(span));
                }
            }
            windows.sort_unstable();
            windows.dedup();
            for w in windows {
                let (mint, maxt) = (w.saturating_mul(span), w.saturating_mul(span).saturating_add(span));
                let mut it = series.iter();
                write_series(
                    &opts.data_dir,
                    target,
                    mint,
                    maxt,
                    || loop {
                        let s = it.next()?;
                        let floats: Vec<Sample> =
                            s.floats.iter().filter(|x| mint <= x.t && x.t < maxt).copied().collect();
                        let histograms: Vec<HistogramSample> =
                            s.histograms.iter().filter(|x| mint <= x.t && x.t < maxt).cloned().collect();
                        if !floats.is_empty() || !histograms.is_empty() {
                            return Some(Ok(SeriesData { labels: s.labels.clone(), floats, histograms }));
                        }
                    },
                    totals,
                    written,
                )?;
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tidemark_storage::{Db, Matcher};

    /// A data directory written by Prometheus 2.42 (kept as it was written):
    /// `promtool tsdb create-blocks-from openmetrics ../tiny.om` (3 series,
    /// 40 samples each, 15 s apart from 1796600000 s), then a Prometheus run
    /// scraping a node_exporter (`--collector.disable-defaults
    /// --collector.loadavg --web.disable-exporter-metrics`) every second, with
    /// `fx_temp_celsius{room="a"}` deleted over [+150 s, +300 s] (11 samples,
    /// a block tombstone) and `node_load1` over two seconds of the head (a WAL
    /// tombstone record, 2 samples).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/prometheus/testdata/prom-2.42")
    }

    fn opts(dir: &Path, verify: bool) -> ImportOptions {
        ImportOptions {
            data_dir: dir.to_path_buf(),
            block_duration: Duration::from_secs(7200),
            max_memory_bytes: 1 << 30,
            progress: false,
            verify,
        }
    }

    fn skipped(s: &ImportSummary, why: &str) -> u64 {
        s.skipped.iter().find(|x| x.0 == why).map_or(0, |x| x.1)
    }

    #[test]
    fn a_real_block_imports_with_its_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let s = import_dir(&fixture(), false, &opts(dir.path(), true)).unwrap();
        assert!(s.verified);
        assert_eq!((s.series, s.float_samples, s.histogram_samples), (3, 120 - 11, 0));
        assert_eq!((s.min_time_ms, s.max_time_ms), (1_796_600_000_000, 1_796_600_585_250));
        assert_eq!(skipped(&s, "samples deleted by tombstones"), 11);
        assert_eq!(skipped(&s, "WAL not read (pass --wal to import the head's data)"), 1);
        assert_eq!(s.blocks_written.len(), 1);
        let db = Db::builder(dir.path()).retention_time(None).maintenance_interval(None).open().unwrap();
        let q = db.querier(i64::MIN, i64::MAX);
        let a = q.select(&[Matcher::equal("room", "a")]).unwrap();
        let got = a[0].samples().unwrap();
        assert_eq!(got.len(), 40 - 11);
        // Deleted: [+150 s, +300 s], both ends included.
        assert!(got.iter().all(|x| x.t < 1_796_600_150_000 || x.t > 1_796_600_300_000));
        assert_eq!(got[0].v, 20.0);
        let total = q.select(&[Matcher::equal("__name__", "fx_requests_total")]).unwrap();
        let t = total[0].samples().unwrap();
        assert_eq!((t.len(), t[39].t, t[39].v), (40, 1_796_600_585_250, 39.0 * 39.0 * 3.0));
    }

    #[test]
    fn the_wal_replays_as_prometheus_replays_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = import_dir(&fixture(), true, &opts(dir.path(), true)).unwrap();
        assert!(s.verified);
        // 3 backfilled series, and per scrape of the node_exporter: 3 load
        // averages, 5 more of the exporter (build info, collector duration
        // and success, two handler error counters) and 5 scrape series (up,
        // scrape_duration_seconds, …).
        assert_eq!(s.series, 3 + 13);
        assert_eq!(skipped(&s, "samples deleted by tombstones"), 11 + 2);
        let db = Db::builder(dir.path()).retention_time(None).maintenance_interval(None).open().unwrap();
        let q = db.querier(i64::MIN, i64::MAX);
        let load1 = q.select(&[Matcher::equal("__name__", "node_load1")]).unwrap()[0].samples().unwrap();
        let up = q.select(&[Matcher::equal("__name__", "up")]).unwrap()[0].samples().unwrap();
        assert_eq!(load1.len() + 2, up.len(), "node_load1 lost two seconds to the tombstone");
        assert!(up.iter().all(|x| x.v == 1.0));
        assert_eq!(s.float_samples, 120 - 11 + 13 * up.len() as u64 - 2);
    }

    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let err = import_dir(&fixture(), false, &opts(dir.path(), false)).unwrap_err();
        assert!(matches!(err, E::Locked(_)), "{err}");
        db.close().unwrap();
        drop(db);
        import_dir(&fixture(), false, &opts(dir.path(), false)).unwrap();
    }

    #[test]
    fn deletable_blocks_are_skipped_and_an_empty_dir_is_not_prometheus() {
        let src = tempfile::tempdir().unwrap();
        let b = fixture().join("01M98MP02K0NQ0C47GVT901V3H");
        let dst = src.path().join("01M98MP02K0NQ0C47GVT901V3H");
        fs::create_dir_all(dst.join("chunks")).unwrap();
        for f in ["index", "tombstones", "chunks/000001"] {
            fs::copy(b.join(f), dst.join(f)).unwrap();
        }
        let meta = fs::read_to_string(b.join("meta.json")).unwrap();
        let meta = meta.replace("\"level\": 1,", "\"level\": 1, \"deletable\": true,");
        fs::write(dst.join("meta.json"), meta).unwrap();
        let out = tempfile::tempdir().unwrap();
        let s = import_dir(src.path(), false, &opts(out.path(), false)).unwrap();
        assert_eq!(s.series, 0);
        assert!(s.blocks_written.is_empty());
        assert_eq!(skipped(&s, "blocks marked deletable (replaced by a compacted block)"), 1);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(import_dir(empty.path(), true, &opts(out.path(), false)), Err(E::NotPrometheusDir(_))));
    }

    #[test]
    fn importing_over_existing_blocks_is_refused() {
        let out = tempfile::tempdir().unwrap();
        let first = import_dir(&fixture(), false, &opts(out.path(), false)).unwrap();
        assert!(!first.blocks_written.is_empty());
        let again = import_dir(&fixture(), false, &opts(out.path(), false)).unwrap_err();
        assert!(
            matches!(&again, E::Conflict(crate::target::Conflict::OverlapsBlock { block, .. }) if first.blocks_written.contains(block)),
            "{again}"
        );
        // Nothing more was written.
        let blocks =
            fs::read_dir(out.path()).unwrap().flatten().filter(|e| e.path().join("meta.json").exists()).count();
        assert_eq!(blocks, first.blocks_written.len());
    }

    #[test]
    fn a_corrupt_chunk_is_an_error_naming_the_file() {
        let src = tempfile::tempdir().unwrap();
        let b = fixture().join("01M98MP02K0NQ0C47GVT901V3H");
        let dst = src.path().join("01M98MP02K0NQ0C47GVT901V3H");
        fs::create_dir_all(dst.join("chunks")).unwrap();
        for f in ["index", "meta.json", "chunks/000001"] {
            fs::copy(b.join(f), dst.join(f)).unwrap();
        }
        let mut c = fs::read(dst.join("chunks/000001")).unwrap();
        c[20] ^= 0x40;
        fs::write(dst.join("chunks/000001"), c).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = import_dir(src.path(), false, &opts(out.path(), false)).unwrap_err();
        assert!(err.to_string().contains("000001") && err.to_string().contains("checksum"), "{err}");
        // Nothing half-written is left behind: no block, only what an
        // empty data directory holds.
        let blocks: Vec<_> =
            fs::read_dir(out.path()).unwrap().flatten().filter(|e| e.path().join("meta.json").exists()).collect();
        assert!(blocks.is_empty(), "{blocks:?}");
        assert!(out.path().join("lock").exists());
    }

    #[test]
    fn a_small_memory_bound_splits_the_wal_into_more_blocks_with_the_same_data() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let big = import_dir(&fixture(), true, &opts(a.path(), true)).unwrap();
        let small =
            import_dir(&fixture(), true, &ImportOptions { max_memory_bytes: 1, ..opts(b.path(), true) }).unwrap();
        assert_eq!((big.series, big.float_samples), (small.series, small.float_samples));
        assert!(small.blocks_written.len() > big.blocks_written.len());
        // The WAL's tombstone record comes after the samples it deletes,
        // which a 1-byte bound has already written out: it still applies.
        assert_eq!(skipped(&small, "samples deleted by tombstones"), 11 + 2);
    }
}
