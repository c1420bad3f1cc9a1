//! Opening a block: mapped index and chunk files, validated at open, queried
//! zero-copy.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use std::collections::BTreeMap;

use memmap2::Mmap;
use parking_lot::Mutex;

use super::chunks::ChunkFiles;
use super::enc::DecResult;
use super::index::{ChunkMeta, IndexReader};
use super::meta::{dir_name, BlockMeta, META_FILENAME};
use super::scrub::ChunkDamage;
use super::{BlockError, CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::chunkenc::{sealed, Chunk, ChunkSeries, Encoding};
use crate::error::Error;
use crate::matcher::Matcher;
use crate::postings::postings_for_matchers;

/// An open, immutable block. `Send + Sync`: readers share it freely.
pub struct Block {
    pub(super) dir: PathBuf,
    pub(super) name: String,
    meta: BlockMeta,
    pub(super) index: IndexReader<Mmap>,
    pub(super) chunks: ChunkFiles,
    /// Shared timestamp columns, decoded on first use and kept for the
    /// block's lifetime (one slot per column of the index).
    columns: Box<[OnceLock<Arc<[i64]>>]>,
    size_bytes: u64,
    /// Chunks found damaged (by a read or a scrub), by chunk reference:
    /// reads skip them, and the database rewrites the block without them.
    pub(super) damaged: Mutex<BTreeMap<u64, ChunkDamage>>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("dir", &self.dir).field("meta", &self.meta).finish()
    }
}

impl Block {
    /// Opens the block in `dir`: reads and checks `meta.json`, maps and
    /// validates the index (magic, version, table of contents, every
    /// section's CRC, symbol and postings tables) and the chunk files'
    /// headers. Chunk CRCs are verified when chunks are read. A directory
    /// without `meta.json` (a half-written block) fails to open.
    pub fn open(dir: &Path) -> Result<Block, Error> {
        let name = dir_name(dir);
        let corrupt = |reason: String| Error::from(BlockError::Corrupt { block: name.clone(), reason });
        let meta = BlockMeta::read(dir)?;
        let meta_len = std::fs::metadata(dir.join(META_FILENAME)).map_err(|e| Error::io(dir, e))?.len();

        let index_path = dir.join(INDEX_FILENAME);
        let f = File::open(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let index_len = f.metadata().map_err(|e| Error::io(&index_path, e))?.len();
        if index_len == 0 {
            return Err(corrupt("index file is empty".into()));
        }
        // SAFETY: see `ChunkFiles::open`: block files never change once the
        // block is in place, and every access is bounds-checked.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(&index_path, e))?;
        let index = IndexReader::open(map).map_err(|e| corrupt(format!("index: {e}")))?;

        let chunks = ChunkFiles::open(&dir.join(CHUNKS_DIRNAME), &corrupt)?;
        if u64::from(index.num_series()) != meta.stats.num_series {
            return Err(corrupt(format!(
                "index holds {} series but meta.json says {}",
                index.num_series(),
                meta.stats.num_series
            )));
        }
        let size_bytes = meta_len + index_len + chunks.size_bytes();
        let columns = (0..index.num_timestamp_columns()).map(|_| OnceLock::new()).collect();
        Ok(Block {
            dir: dir.to_path_buf(),
            name,
            meta,
            index,
            chunks,
            columns,
            size_bytes,
            damaged: Mutex::new(BTreeMap::new()),
        })
    }

    /// The block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of all the block's files.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn corrupt(&self, reason: String) -> Error {
        BlockError::Corrupt { block: self.name.clone(), reason }.into()
    }

    fn check<T>(&self, r: DecResult<T>) -> Result<T, Error> {
        r.map_err(|e| self.corrupt(e))
    }

    /// Number of shared timestamp columns in the block's index.
    pub fn num_timestamp_columns(&self) -> u32 {
        self.index.num_timestamp_columns()
    }

    /// Shared timestamp column `i`, decoded once and then cached.
    fn column(&self, i: u32) -> Result<Arc<[i64]>, Error> {
        let slot = self.columns.get(i as usize).ok_or_else(|| self.corrupt(format!("no timestamp column {i}")))?;
        if let Some(c) = slot.get() {
            return Ok(Arc::clone(c));
        }
        let bytes = self.check(self.index.timestamp_column(i))?;
        let mut ts = Vec::new();
        sealed::decode_timestamps(bytes, &mut ts).map_err(|e| self.corrupt(format!("timestamp column {i}: {e}")))?;
        // Two threads may decode the same column at once; either result is
        // the same, and the first one stored is kept.
        let _ = slot.set(ts.into());
        Ok(Arc::clone(slot.get().expect("slot was just set")))
    }

    /// The chunk of `meta`, with its shared timestamp column attached.
    pub(super) fn chunk(&self, meta: &ChunkMeta) -> Result<Chunk, Error> {
        let mut c = self.check(self.chunks.chunk(meta.chunk_ref, meta.mint, meta.maxt))?;
        if let Some(i) = meta.shared_ts {
            if c.encoding != Encoding::Sealed {
                return Err(
                    self.corrupt(format!("chunk {:#x} names a timestamp column but is not sealed", meta.chunk_ref))
                );
            }
            let ts = self.column(i)?;
            if ts.first() != Some(&meta.mint) || ts.last() != Some(&meta.maxt) {
                return Err(self.corrupt(format!(
                    "timestamp column {i} does not span the chunk's [{}, {}]",
                    meta.mint, meta.maxt
                )));
            }
            c.timestamps = Some(ts);
        }
        Ok(c)
    }

    /// Sorted ids of the series selected by `matchers`.
    fn select_ids(&self, matchers: &[Matcher]) -> Result<Vec<u32>, Error> {
        let lookup = self.index.lookup();
        let ids = postings_for_matchers(&lookup, matchers);
        self.check(lookup.finish())?;
        Ok(ids)
    }

    /// Series matching all `matchers` (Prometheus semantics) with their
    /// chunks overlapping `[mint, maxt]` (inclusive), sorted by labels.
    /// Series without such chunks are left out. Chunks are zero-copy views
    /// of the mapped files, checksum-verified.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<ChunkSeries>, Error> {
        let mut out = Vec::new();
        if mint > maxt || !self.meta.overlaps_closed(mint, maxt) {
            return Ok(out);
        }
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in self.select_ids(matchers)? {
            let labels = self.check(cursor.series(id, &mut metas))?;
            let chunks = metas
                .iter()
                .filter(|c| c.maxt >= mint && c.mint <= maxt)
                .map(|c| self.chunk(c))
                .collect::<Result<Vec<_>, Error>>()?;
            if !chunks.is_empty() {
                out.push(ChunkSeries { labels, chunks });
            }
        }
        Ok(out)
    }

    /// Like [`Block::select`], but a chunk that fails its checks (checksum,
    /// bounds, encoding) does not fail the call: it is recorded as damaged
    /// (see [`Block::damaged_chunks`]), left out, and reported in `skipped`
    /// together with already known damaged chunks that overlap the range.
    /// Damage to the index itself is still an error.
    pub fn select_readable(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skipped: &mut Vec<ChunkDamage>,
    ) -> Result<Vec<ChunkSeries>, Error> {
        let mut out = Vec::new();
        if mint > maxt || !self.meta.overlaps_closed(mint, maxt) {
            return Ok(out);
        }
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in self.select_ids(matchers)? {
            let labels = self.check(cursor.series(id, &mut metas))?;
            let mut chunks = Vec::new();
            for c in metas.iter().filter(|c| c.maxt >= mint && c.mint <= maxt) {
                match self.readable_chunk(&labels, c) {
                    Ok(chunk) => chunks.push(chunk),
                    Err(d) => skipped.push(*d),
                }
            }
            if !chunks.is_empty() {
                out.push(ChunkSeries { labels, chunks });
            }
        }
        Ok(out)
    }

    /// The chunk of `meta`, or the damage that makes it unreadable (recorded
    /// in the block's damaged set the first time).
    pub(super) fn readable_chunk(&self, labels: &crate::Labels, meta: &ChunkMeta) -> Result<Chunk, Box<ChunkDamage>> {
        if let Some(d) = self.damaged.lock().get(&meta.chunk_ref) {
            return Err(Box::new(d.clone()));
        }
        self.chunk(meta).map_err(|e| Box::new(self.note_damage(labels, meta, e.to_string())))
    }

    /// Records `meta`'s chunk as damaged; returns the record.
    pub(super) fn note_damage(&self, labels: &crate::Labels, meta: &ChunkMeta, reason: String) -> ChunkDamage {
        let d = ChunkDamage::new(&self.name, labels, meta, reason);
        self.damaged.lock().entry(meta.chunk_ref).or_insert(d).clone()
    }

    /// Every chunk found damaged so far (by reads and scrubs), by reference.
    pub fn damaged_chunks(&self) -> Vec<ChunkDamage> {
        self.damaged.lock().values().cloned().collect()
    }

    /// Label names of the series selected by `matchers`, sorted; every
    /// label name in the block if `matchers` is empty.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if matchers.is_empty() {
            return self.check(self.index.label_names());
        }
        let mut names = std::collections::BTreeSet::new();
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in self.select_ids(matchers)? {
            let labels = self.check(cursor.series(id, &mut metas))?;
            for l in &labels {
                if !names.contains(l.name) {
                    names.insert(l.name.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` among the series selected by `matchers`,
    /// sorted; every value of `name` in the block if `matchers` is empty.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        if matchers.is_empty() {
            return self.check(self.index.label_values(name));
        }
        let mut values = std::collections::BTreeSet::new();
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in self.select_ids(matchers)? {
            let labels = self.check(cursor.series(id, &mut metas))?;
            if let Some(v) = labels.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }

    /// Every series with all its chunks, in label order (for compaction).
    /// Items are decoded lazily; a damaged series yields an `Err` item.
    pub fn all_series(&self) -> Result<impl Iterator<Item = Result<ChunkSeries, Error>> + '_, Error> {
        let mut metas: Vec<ChunkMeta> = Vec::new();
        let mut cursor = self.index.cursor();
        Ok((0..self.index.num_series()).map(move |id| {
            let labels = self.check(cursor.series(id, &mut metas))?;
            let chunks = metas.iter().map(|c| self.chunk(c)).collect::<Result<Vec<_>, Error>>()?;
            Ok(ChunkSeries { labels, chunks })
        }))
    }

    /// Number of series in the block.
    pub fn num_series(&self) -> u32 {
        self.index.num_series()
    }
}
