//! The head chunk file: closed in-order head chunks, written once to
//! append-only segment files under `<dir>/chunks_head/` and read back
//! through read-only memory maps, so the page cache (reclaimable, and
//! untouched pages not resident at all) holds them instead of the heap.
//! Format: `docs/format/head_chunks.md`.
//!
//! A series keeps a packed [`ChunkRef`] (segment, offset) per closed chunk
//! plus its time range. The file is derived data, rebuilt from the WAL at
//! every open (the directory is emptied first), so writing it needs no
//! fsync and a crash can only leave a file that is thrown away.
//!
//! # Invariants
//! - A segment's records are never rewritten; a segment is deleted only
//!   when every chunk in it ends before the head's minimum time, by which
//!   point every series has dropped its references to them.
//! - Bytes `[0, written)` of a segment are on disk; bytes after `written`
//!   are in `pending` (RAM). A record never straddles the two.
//! - Without a directory, or after a write failed, segments live in RAM
//!   only (`written == 0` for new segments): same records, same refs.
//!
//! Every read checks the record's CRC32-C and that it belongs to the
//! expected series and time range, so damage while we run is reported as
//! a [`HeadChunkError`], never a panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::chunkenc::{ChunkBytes, Encoding};
use crate::vfs::{SharedFs, WritableFile};

/// Name of the directory of head chunk segments inside the data directory.
pub const DIR_NAME: &str = "chunks_head";

/// Magic number at the start of every segment ("TMHC").
const MAGIC: [u8; 4] = *b"TMHC";
/// Format version of the segment files.
const VERSION: u8 = 1;
/// Segment header: magic, version, 3 reserved bytes.
const SEGMENT_HEADER_LEN: usize = 8;
/// Record header: series ref u64, mint i64, maxt i64, encoding u8, len u32.
const RECORD_HEADER_LEN: usize = 8 + 8 + 8 + 1 + 4;
/// Trailing CRC32-C of a record.
const CRC_LEN: usize = 4;

/// Default segment size on disk: 128 MiB (as Prometheus'
/// `MaxHeadChunkFileSize`). Offsets are `u32`, so at most 4 GiB.
pub const DEFAULT_SEGMENT_SIZE: usize = 128 << 20;
/// Segment size when segments live in RAM: small, so truncation frees
/// memory at a fine grain and a segment's spare capacity stays small.
const MEM_SEGMENT_SIZE: usize = 1 << 20;
/// Bytes buffered before they are written to the current segment file.
const WRITE_BUFFER: usize = 256 << 10;

/// Where a closed chunk's record is: segment index in the high 32 bits,
/// byte offset of the record in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef(u64);

impl ChunkRef {
    fn new(segment: u32, offset: u32) -> ChunkRef {
        ChunkRef((u64::from(segment) << 32) | u64::from(offset))
    }
    /// Segment index.
    pub(crate) fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// Byte offset of the record in its segment.
    pub(crate) fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// A head chunk could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadChunkError {
    /// The segment was deleted or never existed.
    #[error("head chunk segment {segment} does not exist")]
    MissingSegment {
        /// Segment index.
        segment: u32,
    },
    /// The record runs past the end of its segment.
    #[error("head chunk at segment {segment} offset {offset} runs past the segment's end")]
    OutOfBounds {
        /// Segment index.
        segment: u32,
        /// Record offset.
        offset: u32,
    },
    /// The record's checksum does not match its bytes.
    #[error("head chunk at segment {segment} offset {offset} fails its checksum")]
    Checksum {
        /// Segment index.
        segment: u32,
        /// Record offset.
        offset: u32,
    },
    /// The record is intact but belongs to another series or time range.
    #[error("head chunk at segment {segment} offset {offset} is not the chunk the series refers to")]
    Mismatch {
        /// Segment index.
        segment: u32,
        /// Record offset.
        offset: u32,
    },
}

/// One segment: a file (while writes succeed) and/or bytes in RAM.
struct Segment {
    /// Open while this is the segment being written to disk.
    file: Option<Box<dyn WritableFile>>,
    /// The segment's path, if it has a file.
    path: Option<PathBuf>,
    /// A read-only map of `[0, mapped)`.
    map: Option<Arc<memmap2::Mmap>>,
    mapped: usize,
    /// Bytes on disk.
    written: usize,
    /// Bytes after `written`, not (yet) on disk.
    pending: Vec<u8>,
    /// Newest `maxt` of the segment's chunks.
    max_t: i64,
}

impl Segment {
    fn len(&self) -> usize {
        self.written + self.pending.len()
    }
}

struct State {
    segments: BTreeMap<u32, Segment>,
    /// Index of the segment new chunks go to.
    current: u32,
    /// Whether new segments get files (false without a directory or
    /// after a write failed).
    on_disk: bool,
}

/// The store of closed head chunks. `Send + Sync`.
pub struct HeadChunks {
    dir: Option<PathBuf>,
    fs: Option<SharedFs>,
    segment_size: usize,
    state: Mutex<State>,
    write_failures: AtomicU64,
    damaged: AtomicU64,
}

impl std::fmt::Debug for HeadChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadChunks").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl HeadChunks {
    /// A store that keeps every chunk in RAM (no data directory).
    pub fn in_memory() -> HeadChunks {
        HeadChunks {
            dir: None,
            fs: None,
            segment_size: MEM_SEGMENT_SIZE,
            state: Mutex::new(State { segments: BTreeMap::new(), current: 0, on_disk: false }),
            write_failures: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
        }
    }

    /// A store writing segments of at most `segment_size` bytes to `dir`
    /// (created if missing). Whatever `dir` held is deleted first: the head
    /// is rebuilt from the WAL, which writes its chunks anew.
    pub fn open(fs: SharedFs, dir: &Path, segment_size: usize) -> Result<HeadChunks, crate::Error> {
        if dir.exists() {
            fs.remove_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        fs.create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        let min = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + CRC_LEN + 64;
        Ok(HeadChunks {
            dir: Some(dir.to_path_buf()),
            fs: Some(fs),
            segment_size: segment_size.clamp(min, u32::MAX as usize),
            state: Mutex::new(State { segments: BTreeMap::new(), current: 0, on_disk: true }),
            write_failures: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
        })
    }

    /// The directory of segment files, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Writes one closed XOR chunk of `series_ref` and returns where it is.
    /// Never fails: if the file cannot be written, the chunk (and every
    /// later one) stays in RAM, and the failure is logged and counted.
    pub(crate) fn write(&self, series_ref: u64, mint: i64, maxt: i64, bytes: &[u8]) -> ChunkRef {
        let rec_len = RECORD_HEADER_LEN + bytes.len() + CRC_LEN;
        let mut st = self.state.lock();
        let need_new = match st.segments.get(&st.current) {
            None => true,
            Some(s) => s.len() + rec_len > self.segment_size_now(st.on_disk) && s.len() > SEGMENT_HEADER_LEN,
        };
        if need_new {
            self.rotate(&mut st);
        }
        let cur = st.current;
        let seg = st.segments.get_mut(&cur).expect("rotate creates the current segment");
        let offset = seg.len();
        let start = seg.pending.len();
        seg.pending.extend_from_slice(&series_ref.to_le_bytes());
        seg.pending.extend_from_slice(&mint.to_le_bytes());
        seg.pending.extend_from_slice(&maxt.to_le_bytes());
        seg.pending.push(Encoding::Xor as u8);
        seg.pending.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        seg.pending.extend_from_slice(bytes);
        let crc = crc32c::crc32c(&seg.pending[start..]);
        seg.pending.extend_from_slice(&crc.to_le_bytes());
        seg.max_t = seg.max_t.max(maxt);
        if seg.file.is_some() && seg.pending.len() >= WRITE_BUFFER && !self.flush(seg) {
            st.on_disk = false;
        }
        ChunkRef::new(cur, offset as u32)
    }

    fn segment_size_now(&self, on_disk: bool) -> usize {
        if on_disk {
            self.segment_size
        } else {
            self.segment_size.min(MEM_SEGMENT_SIZE)
        }
    }

    /// Writes the current segment's pending bytes to its file. On failure
    /// the bytes stay pending (in RAM) for good and the file is closed.
    fn flush(&self, seg: &mut Segment) -> bool {
        let Some(f) = &seg.file else { return true };
        if seg.pending.is_empty() {
            return true;
        }
        match f.write_all(&seg.pending) {
            Ok(()) => {
                seg.written += seg.pending.len();
                seg.pending.clear();
                true
            }
            Err(e) => {
                // What reached the file is unknown past `written`; the
                // record bytes after it are served from RAM from now on.
                self.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = ?seg.path, error = %e, "head chunk file write failed; closed head chunks stay in memory");
                seg.file = None;
                seg.pending.shrink_to_fit();
                false
            }
        }
    }

    /// Finishes the current segment (flushed and mapped whole) and starts
    /// the next one.
    fn rotate(&self, st: &mut State) {
        let next = if st.segments.is_empty() { st.current } else { st.current + 1 };
        if let Some(seg) = st.segments.get_mut(&st.current) {
            if !self.flush(seg) {
                st.on_disk = false;
            }
            seg.file = None;
            Self::remap(seg);
            // Pending bytes are final now: give back spare capacity.
            seg.pending.shrink_to_fit();
        }
        let mut seg =
            Segment { file: None, path: None, map: None, mapped: 0, written: 0, pending: Vec::new(), max_t: i64::MIN };
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        if let (true, Some(dir), Some(fs)) = (st.on_disk, &self.dir, &self.fs) {
            let path = dir.join(format!("{next:08}"));
            match fs.create(&path) {
                Ok(f) => {
                    seg.file = Some(f);
                    seg.path = Some(path);
                }
                Err(e) => {
                    self.write_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(path = %path.display(), error = %e, "head chunk file cannot be created; closed head chunks stay in memory");
                    st.on_disk = false;
                }
            }
        }
        if seg.file.is_none() {
            seg.pending.reserve_exact(64 << 10);
        }
        seg.pending.extend_from_slice(&header);
        st.segments.insert(next, seg);
        st.current = next;
    }

    /// Maps `[0, written)` of a segment file (a no-op when already mapped
    /// that far). A failure leaves the old map: reads past it then fail
    /// with an error instead of returning wrong bytes.
    fn remap(seg: &mut Segment) {
        if seg.written <= seg.mapped {
            return;
        }
        let Some(path) = &seg.path else { return };
        let mapped = File::open(path).and_then(|f| {
            // SAFETY: the file is append-only while we run and is only
            // deleted (never truncated) by us; a map stays valid after the
            // file is unlinked. Reads check a CRC, so bytes changed by
            // someone else are reported as damage.
            unsafe { memmap2::MmapOptions::new().len(seg.written).map(&f) }
        });
        match mapped {
            Ok(m) => {
                seg.map = Some(Arc::new(m));
                seg.mapped = seg.written;
            }
            Err(e) => tracing::error!(path = %path.display(), error = %e, "head chunk file cannot be mapped"),
        }
    }

    /// The bytes of the chunk at `r`, checked against its CRC, time range
    /// and (if given) `series_ref`. Bytes on disk are shared through the
    /// map; bytes still in RAM are copied.
    pub(crate) fn read(
        &self,
        r: ChunkRef,
        series_ref: Option<u64>,
        mint: i64,
        maxt: i64,
    ) -> Result<ChunkBytes, HeadChunkError> {
        let res = self.read_inner(r, series_ref, mint, maxt);
        if res.is_err() {
            self.damaged.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn read_inner(
        &self,
        r: ChunkRef,
        series_ref: Option<u64>,
        mint: i64,
        maxt: i64,
    ) -> Result<ChunkBytes, HeadChunkError> {
        let (segment, offset) = (r.segment(), r.offset());
        let oob = || HeadChunkError::OutOfBounds { segment, offset };
        let mut st = self.state.lock();
        let seg = st.segments.get_mut(&segment).ok_or(HeadChunkError::MissingSegment { segment })?;
        let off = offset as usize;
        if off < SEGMENT_HEADER_LEN {
            return Err(oob());
        }
        if off >= seg.written {
            let p = off - seg.written;
            let len = record_len(&seg.pending, p).ok_or_else(oob)?;
            let rec = seg.pending.get(p..p + len).ok_or_else(oob)?;
            let (start, n) = check(r, rec, series_ref, mint, maxt)?;
            return Ok(ChunkBytes::Heap(rec[start..start + n].into()));
        }
        // On disk: map far enough for the header, then for the record.
        if off + RECORD_HEADER_LEN > seg.mapped {
            Self::remap(seg);
        }
        let len = seg.map.as_ref().and_then(|m| record_len(&m[..seg.mapped], off)).ok_or_else(oob)?;
        if off + len > seg.written {
            return Err(oob());
        }
        if off + len > seg.mapped {
            Self::remap(seg);
        }
        let map = seg.map.clone().ok_or_else(oob)?;
        if off + len > seg.mapped {
            return Err(oob());
        }
        drop(st);
        let (start, n) = check(r, &map[off..off + len], series_ref, mint, maxt)?;
        Ok(ChunkBytes::Mapped { map, start: off + start, len: n })
    }

    /// Deletes every segment whose chunks all end before `mint` (the
    /// current one too, after starting a new one). Series must have dropped
    /// their references to such chunks first. Returns the segments deleted.
    pub(crate) fn truncate(&self, mint: i64) -> usize {
        let mut st = self.state.lock();
        let cur = st.current;
        if st.segments.get(&cur).is_some_and(|s| s.max_t < mint && s.len() > SEGMENT_HEADER_LEN) {
            self.rotate(&mut st);
        }
        let cur = st.current;
        let doomed: Vec<u32> =
            st.segments.iter().filter(|(&i, s)| i != cur && s.max_t < mint).map(|(&i, _)| i).collect();
        for i in &doomed {
            if let Some(seg) = st.segments.remove(i) {
                if let (Some(path), Some(fs)) = (&seg.path, &self.fs) {
                    if let Err(e) = fs.remove_file(path) {
                        // Derived data: the directory is emptied at the next open.
                        tracing::warn!(path = %path.display(), error = %e, "cannot delete head chunk segment");
                    }
                }
            }
        }
        doomed.len()
    }

    /// Sizes of the store: (segments, bytes on disk, bytes held in RAM).
    pub fn sizes(&self) -> (usize, u64, u64) {
        let st = self.state.lock();
        let disk = st.segments.values().map(|s| s.written as u64).sum();
        let ram = st.segments.values().map(|s| s.pending.capacity() as u64).sum();
        (st.segments.len(), disk, ram)
    }

    /// Times a file write failed (chunks then stay in RAM).
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Chunks that failed to read back (checksum, bounds, mismatch).
    pub fn damaged_reads(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }
}

/// Length of the record starting at `off` in `buf` (header, data, CRC), if
/// its header is there (the rest is checked by the caller).
fn record_len(buf: &[u8], off: usize) -> Option<usize> {
    let h = buf.get(off..off.checked_add(RECORD_HEADER_LEN)?)?;
    let data_len = u32::from_le_bytes(h[25..29].try_into().ok()?) as usize;
    RECORD_HEADER_LEN.checked_add(data_len)?.checked_add(CRC_LEN)
}

/// Checks a whole record's CRC and identity; returns where its data bytes
/// are within it (start, length).
fn check(
    r: ChunkRef,
    b: &[u8],
    series_ref: Option<u64>,
    mint: i64,
    maxt: i64,
) -> Result<(usize, usize), HeadChunkError> {
    let (segment, offset) = (r.segment(), r.offset());
    let n = b.len();
    if n < RECORD_HEADER_LEN + CRC_LEN {
        return Err(HeadChunkError::OutOfBounds { segment, offset });
    }
    let want = u32::from_le_bytes(b[n - CRC_LEN..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[..n - CRC_LEN]) != want {
        return Err(HeadChunkError::Checksum { segment, offset });
    }
    let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    if series_ref.is_some_and(|r| u(0) != r)
        || u(8) as i64 != mint
        || u(16) as i64 != maxt
        || b[24] != Encoding::Xor as u8
    {
        return Err(HeadChunkError::Mismatch { segment, offset });
    }
    Ok((RECORD_HEADER_LEN, n - RECORD_HEADER_LEN - CRC_LEN))
}

#[cfg(test)]
mod tests;
