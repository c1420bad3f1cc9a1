//! Finding and cutting out damaged chunks of a block.
//!
//! Every chunk carries a CRC32-C that is checked whenever a query reads it
//! ([`Block::select_readable`]); a scrub ([`Block::verify`]) checks every
//! chunk of the block and the index's checksums, rate-limited by the
//! caller. A damaged chunk is recorded in the block and left out of reads;
//! [`Block::rewrite_without_damaged`] then writes a replacement block with
//! everything else, so only the damaged chunks are lost and the original
//! can be moved aside for inspection. Damage to the index cannot be cut
//! out (it maps every series to its chunks): [`Block::verify`] returns it
//! as an error and the whole block is quarantined.
//!
//! A chunk file that is cut short damages every chunk past the cut; the
//! ones before it are fine. A scrub compares each chunk file's length on
//! disk with its mapped length before touching it, so it never reads a page
//! past the new end of a file truncated while mapped (which would fault).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::chunks::{chunk_file_name, ChunkFiles, MAX_CHUNK_FILE_SIZE};
use super::index::{ChunkMeta, IndexReader};
use super::meta::{BlockMeta, CompactionMeta};
use super::writer::SeriesData;
use super::writer::{write_block_with, BlockWriteOptions};
use super::{Block, BlockError, CHUNKS_DIRNAME, INDEX_FILENAME};
use crate::{Error, Labels, Sample};

/// A chunk of a block that failed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDamage {
    /// The block's id.
    pub block: String,
    /// The chunk file, relative to the block (`chunks/000001`).
    pub file: String,
    /// Byte offset of the chunk in that file.
    pub offset: u64,
    /// The chunk reference (`file << 32 | offset`, plus a group member's
    /// slot in bits 60–63).
    pub chunk_ref: u64,
    /// The series the chunk belongs to, in PromQL notation.
    pub series: String,
    /// Timestamp of the chunk's first sample (from the index).
    pub mint: i64,
    /// Timestamp of the chunk's last sample (from the index).
    pub maxt: i64,
    /// What was wrong.
    pub reason: String,
}

impl ChunkDamage {
    pub(super) fn new(block: &str, labels: &Labels, meta: &ChunkMeta, reason: String) -> ChunkDamage {
        let record = super::group::record_of(meta.chunk_ref);
        let file_no = (record >> 32) as u32;
        ChunkDamage {
            block: block.to_string(),
            file: format!("{CHUNKS_DIRNAME}/{}", chunk_file_name(file_no)),
            offset: record & 0xffff_ffff,
            chunk_ref: meta.chunk_ref,
            series: labels.to_string(),
            mint: meta.mint,
            maxt: meta.maxt,
            reason,
        }
    }
}

impl Block {
    /// Scrubs the block: re-reads the index file from disk and checks its
    /// checksums and tables, then checks every chunk's bounds and CRC32-C.
    /// `pace(bytes)` is called after each chunk (and after the index) with
    /// the bytes just checked, so the caller can rate-limit. Damaged chunks
    /// are recorded (see [`Block::damaged_chunks`]) and every damaged chunk
    /// of the block is returned. A damaged index is an error
    /// ([`BlockError::Corrupt`]); I/O errors too.
    pub fn verify(&self, pace: &mut dyn FnMut(u64)) -> Result<Vec<ChunkDamage>, Error> {
        let corrupt = |reason: String| Error::from(BlockError::Corrupt { block: self.name.clone(), reason });
        let index_path = self.dir.join(INDEX_FILENAME);
        let mut bytes = Vec::new();
        File::open(&index_path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io(&index_path, e))?;
        let on_disk = IndexReader::open(bytes.as_slice()).map_err(|e| corrupt(format!("index: {e}")))?;
        super::index::exercise(&on_disk).map_err(|e| corrupt(format!("index: {e}")))?;
        if on_disk.num_series() != self.index.num_series() {
            return Err(corrupt("index changed on disk since the block was opened".into()));
        }
        pace(bytes.len() as u64);
        drop(bytes);

        let lens = disk_lengths(&self.dir.join(CHUNKS_DIRNAME), &self.chunks)?;
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in 0..self.index.num_series() {
            let labels = cursor.series(id, &mut metas).map_err(|e| corrupt(format!("index: {e}")))?;
            for m in &metas {
                let record = super::group::record_of(m.chunk_ref);
                let file_no = (record >> 32) as u32;
                let offset = record & 0xffff_ffff;
                let (disk, mapped) = lens.get((file_no as usize).wrapping_sub(1)).copied().unwrap_or((0, 0));
                if disk < mapped && offset + 16 > disk {
                    // Never touch mapped pages past the file's new end.
                    self.note_damage(&labels, m, format!("chunk file cut to {disk} bytes"));
                    continue;
                }
                match self.readable_chunk(&labels, m) {
                    Ok(c) => pace(c.bytes.as_ref().len() as u64),
                    Err(_) => pace(16),
                }
            }
        }
        Ok(self.damaged_chunks())
    }

    /// A cheap check that reads only the index and file sizes: whether some
    /// chunk reference points at or past the end of its chunk file (a file
    /// cut short). Run at open; a block that fails it is then
    /// [verified](Block::verify) to find exactly which chunks are lost.
    pub fn chunk_files_cut_short(&self) -> Result<bool, Error> {
        let mut max_off: Vec<u64> = vec![0; self.chunks.num_files() as usize];
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        for id in 0..self.index.num_series() {
            self.check_index(cursor.series(id, &mut metas))?;
            for m in &metas {
                let record = super::group::record_of(m.chunk_ref);
                let file = (record >> 32) as usize;
                match file.checked_sub(1).and_then(|i| max_off.get_mut(i)) {
                    Some(o) => *o = (*o).max(record & 0xffff_ffff),
                    None => return Ok(true),
                }
            }
        }
        let lens = disk_lengths(&self.dir.join(CHUNKS_DIRNAME), &self.chunks)?;
        // The last chunk needs at least a length byte, an encoding byte and
        // a 4-byte CRC after its offset.
        Ok(max_off.iter().zip(&lens).any(|(&off, &(disk, mapped))| off > 0 && off + 6 > disk.min(mapped)))
    }

    /// Writes a replacement of this block into `parent_dir` holding every
    /// chunk that is not known damaged (chunks that turn out undecodable
    /// are recorded as damaged and left out too). Same time range, level
    /// and sources; `parents` names this block, so if a crash leaves both
    /// directories the original is recognised as a leftover at open.
    /// Returns the new block's meta; this block is not touched.
    pub fn rewrite_without_damaged(&self, parent_dir: &Path, opts: &BlockWriteOptions) -> Result<BlockMeta, Error> {
        self.rewrite_without_damaged_on(&crate::vfs::os(), parent_dir, opts)
    }

    /// [`Block::rewrite_without_damaged`], writing through `fs`.
    pub(crate) fn rewrite_without_damaged_on(
        &self,
        fs: &crate::vfs::SharedFs,
        parent_dir: &Path,
        opts: &BlockWriteOptions,
    ) -> Result<BlockMeta, Error> {
        let m = self.meta();
        let compaction = CompactionMeta {
            level: m.compaction.level,
            sources: m.compaction.sources.clone(),
            parents: vec![m.ulid.clone()],
        };
        let mut metas = Vec::new();
        let mut cursor = self.index.cursor();
        let series = (0..self.index.num_series()).map(move |id| {
            let labels = self.check_index(cursor.series(id, &mut metas))?;
            let mut samples: Vec<Sample> = Vec::new();
            let mut histograms = Vec::new();
            let (mut buf, mut hbuf) = (Vec::new(), Vec::new());
            for c in &metas {
                let Ok(chunk) = self.readable_chunk(&labels, c) else { continue };
                buf.clear();
                hbuf.clear();
                match chunk.decode_mixed_into(&mut buf, &mut hbuf) {
                    Ok(()) => {
                        samples.extend_from_slice(&buf);
                        histograms.append(&mut hbuf);
                    }
                    Err(e) => {
                        self.note_damage(&labels, c, e.to_string());
                    }
                }
            }
            samples.sort_by_key(|s| s.t);
            samples.dedup_by_key(|s| s.t);
            histograms.sort_by_key(|h| h.t);
            histograms.dedup_by_key(|h| h.t);
            Ok(SeriesData { labels, floats: samples, histograms })
        });
        write_block_with(fs, parent_dir, m.min_time, m.max_time, compaction, series, opts, MAX_CHUNK_FILE_SIZE)
    }

    fn check_index<T>(&self, r: Result<T, String>) -> Result<T, Error> {
        r.map_err(|e| BlockError::Corrupt { block: self.name.clone(), reason: format!("index: {e}") }.into())
    }
}

/// (length on disk, mapped length) of each chunk file. A file that is gone
/// is an I/O error (the block was deleted under the scrub), not damage.
fn disk_lengths(dir: &Path, files: &ChunkFiles) -> Result<Vec<(u64, u64)>, Error> {
    (1..=files.num_files())
        .map(|n| {
            let mapped = files.mapped_len(n).unwrap_or(0);
            let path = dir.join(chunk_file_name(n));
            let disk = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            Ok((disk, mapped))
        })
        .collect()
}
