//! Writing a block: chunk files, index and meta into `<ulid>.tmp`, then an
//! atomic rename.
//!
//! Durability argument: every file is fsynced, then the `.tmp` directory,
//! then it is renamed to `<ulid>` and the parent directory is fsynced. A
//! crash before the rename leaves only a `.tmp` directory (never opened,
//! removed at startup by [`crate::compact::remove_tmp_dirs`]); after the
//! rename every file the block needs is durable. `meta.json` is written last,
//! so even a directory renamed by hand mid-way has no meta and fails to open.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::chunks::{ChunkWriter, MAX_CHUNK_FILE_SIZE};
use super::index::{write_index, ChunkMeta};
use super::meta::{new_block_id, BlockMeta, BlockStats, CompactionMeta, META_FILENAME, META_VERSION};
use super::{BlockError, CHUNKS_DIRNAME, INDEX_FILENAME, TMP_SUFFIX};
use crate::chunkenc::{sealed, xor, Encoding, XorAppender};
use crate::error::Error;
use crate::{Labels, Sample};

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
}

impl Default for BlockWriteOptions {
    fn default() -> Self {
        BlockWriteOptions { encoding: Encoding::Sealed, max_samples_per_chunk: 16384 }
    }
}

impl BlockWriteOptions {
    /// Gorilla XOR chunks of at most 120 samples, as Prometheus writes them.
    pub fn xor() -> BlockWriteOptions {
        BlockWriteOptions { encoding: Encoding::Xor, max_samples_per_chunk: 120 }
    }

    fn chunk_limit(&self) -> Result<usize, Error> {
        if self.max_samples_per_chunk == 0 {
            return Err(Error::InvalidArgument("max_samples_per_chunk must be at least 1".into()));
        }
        Ok(match self.encoding {
            Encoding::Xor => self.max_samples_per_chunk.min(xor::MAX_SAMPLES),
            Encoding::Sealed => self.max_samples_per_chunk,
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
    write_block_with(parent_dir, mint, maxt, compaction, series.map(Ok), opts, MAX_CHUNK_FILE_SIZE)
}

/// [`write_block`] over a fallible series source and with a configurable
/// chunk file size (tests use small files to exercise splitting).
pub(crate) fn write_block_with(
    parent_dir: &Path,
    mint: i64,
    maxt: i64,
    mut compaction: CompactionMeta,
    series: impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>>,
    opts: &BlockWriteOptions,
    max_chunk_file_size: u64,
) -> Result<BlockMeta, Error> {
    if mint >= maxt {
        return Err(BlockError::InvalidRange { mint, maxt }.into());
    }
    let limit = opts.chunk_limit()?;
    let ulid = new_block_id();
    let tmp = parent_dir.join(format!("{ulid}{TMP_SUFFIX}"));
    let res = write_into(&tmp, mint, maxt, limit, opts.encoding, series, max_chunk_file_size);
    let stats = match res {
        Ok(stats) => stats,
        Err(e) => {
            // Best effort: the .tmp directory is garbage either way and is
            // also removed at the next startup.
            let _ = std::fs::remove_dir_all(&tmp);
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
        write_file_synced(&tmp.join(META_FILENAME), &meta.to_json())?;
        sync_dir(&tmp)?;
        let dst = parent_dir.join(&ulid);
        std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        sync_dir(parent_dir)
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(meta)
}

fn write_into(
    dir: &Path,
    mint: i64,
    maxt: i64,
    limit: usize,
    encoding: Encoding,
    series: impl Iterator<Item = Result<(Labels, Vec<Sample>), Error>>,
    max_chunk_file_size: u64,
) -> Result<BlockStats, Error> {
    std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let chunks_dir = dir.join(CHUNKS_DIRNAME);
    let mut cw = ChunkWriter::new(&chunks_dir, max_chunk_file_size)?;
    let mut stats = BlockStats::default();
    let mut entries: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    let mut buf = Vec::new();
    for item in series {
        let (labels, samples) = item?;
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
        if samples.is_empty() {
            continue;
        }
        let mut metas = Vec::with_capacity(samples.len().div_ceil(limit));
        for part in samples.chunks(limit) {
            buf.clear();
            match encoding {
                Encoding::Xor => {
                    let mut a = XorAppender::new();
                    for s in part {
                        a.append(s.t, s.v);
                    }
                    buf.extend_from_slice(a.bytes());
                }
                Encoding::Sealed => sealed::encode(part, &mut buf),
            }
            let chunk_ref = cw.write(encoding, &buf)?;
            metas.push(ChunkMeta { mint: part[0].t, maxt: part[part.len() - 1].t, chunk_ref });
        }
        stats.num_samples += samples.len() as u64;
        stats.num_series += 1;
        stats.num_chunks += metas.len() as u64;
        entries.push((labels, metas));
    }
    cw.finish()?;
    sync_dir(&chunks_dir)?;
    let index = write_index(&entries).map_err(BlockError::Limit)?;
    write_file_synced(&dir.join(INDEX_FILENAME), &index)?;
    Ok(stats)
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory so the entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))
}
