//! The head chunk file: closed in-order head chunks, written once to
//! append-only segment files under `<dir>/chunks_head/` and read back
//! through read-only memory maps, so the page cache (reclaimable, and
//! untouched pages not resident at all) holds them instead of the heap.
//! Format: `docs/format/head_chunks.md`.
//!
//! The head closes XOR chunks; each is re-encoded with the sealed codec
//! (`chunkenc::sealed`, zstd level [`ZSTD_LEVEL`], without a Huffman
//! stage) before it is written, when that is smaller (it nearly always is:
//! ~1.8 instead of ~3.1 bytes per sample at 15 s scrapes), and read back in whichever encoding its record
//! names. While the WAL is replayed at open ([`HeadChunks::set_reencode`]
//! off) closed chunks are stored as XOR (with their summary, which needs
//! only a decode), so a restart costs little more CPU than before the
//! re-encoding existed; chunks closed after the replay are
//! re-encoded again. A series keeps a packed [`ChunkRef`] (segment, offset) per closed
//! chunk plus its time range. The file is derived data, rebuilt from the WAL at
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
//! - A record holds exactly the samples of the chunk handed to
//!   [`HeadChunks::write`] (the re-encoding is lossless, bit for bit), and it
//!   is built outside the store's lock: the lock covers only the copy into
//!   the segment.
//!
//! Every read checks the record's CRC32-C and that it belongs to the
//! expected series and time range, so damage while we run is reported as
//! a [`HeadChunkError`], never a panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use std::cell::RefCell;

use parking_lot::Mutex;

use crate::chunkenc::{sealed, ChunkBytes, ChunkSummary, Encoding, XorIterator};
use crate::sample::Sample;
use crate::varint::{put_uvarint, put_varint, unzigzag};
use crate::vfs::{SharedFs, WritableFile};

/// Name of the directory of head chunk segments inside the data directory.
pub const DIR_NAME: &str = "chunks_head";

/// Magic number at the start of every segment ("TMHC").
const MAGIC: [u8; 4] = *b"TMHC";
/// Format version of the segment files written: 3, varint record headers;
/// a record's payload is a chunk summary ([`ChunkSummary`]) followed by the
/// data, its length field counts both. Version 2 (no summary: the payload
/// is the data) is still read by [`scan_segment`];
/// version 1 had fixed 29-byte headers and XOR data only. The head itself
/// never reads old files: it deletes them at open and rebuilds the chunks
/// from the WAL.
const VERSION: u8 = 3;
/// The previous format version, without chunk summaries.
const VERSION_2: u8 = 2;
/// Segment header: magic, version, 3 reserved bytes.
const SEGMENT_HEADER_LEN: usize = 8;
/// Longest record header: series ref uvarint, mint varint, `maxt - mint`
/// uvarint (10 bytes each at most), encoding u8, payload length uvarint (5
/// bytes at most for a `u32`).
const MAX_RECORD_HEADER_LEN: usize = 10 + 10 + 10 + 1 + 5;
/// Longest summary field at the start of a payload: flag u8, sample and
/// non-stale counts (uvarints, 5 bytes at most each for a `u32`), largest
/// and smallest value (f64 each).
const MAX_SUMMARY_LEN: usize = 1 + 5 + 5 + 8 + 8;
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
/// zstd level of the sealed re-encoding: -1, a "fast" level that stores
/// literals raw (no Huffman stage). On the production shape it takes ~9%
/// more bytes than level 1 (1.84 instead of 1.69 per sample), and in return
/// writing a chunk spends ~60% fewer instructions in zstd and reading one
/// back builds no Huffman table: a query reading 3 samples of the chunk
/// before the open one decodes it ~3× faster
/// (`benches/results/perf-hchunk7-2026-12-06g.md`).
pub const ZSTD_LEVEL: i32 = -1;

thread_local! {
    /// Scratch of [`HeadChunks::write`]: decoded samples, the sealed bytes.
    static SCRATCH: RefCell<(Vec<Sample>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Where a closed chunk's record is: segment index in the high 32 bits,
/// byte offset of the record in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef(u64);

impl ChunkRef {
    /// The reference to `offset` in `segment`.
    pub(crate) fn new(segment: u32, offset: u32) -> ChunkRef {
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
    /// The record is intact but names an encoding this version does not know.
    #[error("head chunk at segment {segment} offset {offset} has unknown encoding {encoding}")]
    UnknownEncoding {
        /// Segment index.
        segment: u32,
        /// Record offset.
        offset: u32,
        /// The encoding byte.
        encoding: u8,
    },
    /// The bytes do not start with a segment header of a version this build
    /// reads (2 or 3).
    #[error("not a head chunk segment of version {VERSION_2} or {VERSION}")]
    NotASegment,
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

/// The maps of a store's segments at one moment, kept alive while held:
/// lets a reader start loading the records it will read a few series ahead
/// (the first bytes of a record, its header, were a cache miss per closed
/// chunk a select read) without taking the store's lock for each.
pub(crate) struct MappedRecords {
    /// (segment index, its map), sorted by index.
    maps: Vec<(u32, Arc<memmap2::Mmap>)>,
}

impl MappedRecords {
    /// Bytes of a record [`MappedRecords::prefetch`] loads: its header and
    /// summary, and the start of its data.
    const PREFETCH_BYTES: usize = 128;

    /// Starts loading the first bytes of the record at `r` if they are in
    /// the mapped part of its segment; anything else (a record still in
    /// RAM, beyond the map, in a segment gone since) is left alone. Only a
    /// hint: nothing is read.
    #[inline]
    pub(crate) fn prefetch(&self, r: ChunkRef) {
        if let Some(p) = self.record_start(r) {
            crate::prefetch::prefetch(p.as_ptr());
            crate::prefetch::prefetch(p.as_ptr().wrapping_add(64));
        }
    }

    /// The mapped bytes from the record at `r` on, if at least
    /// [`MappedRecords::PREFETCH_BYTES`] of them are mapped.
    #[inline]
    fn record_start(&self, r: ChunkRef) -> Option<&[u8]> {
        let i = self.maps.binary_search_by_key(&r.segment(), |(s, _)| *s).ok()?;
        let rest = self.maps[i].1.get(r.offset() as usize..)?;
        (rest.len() >= Self::PREFETCH_BYTES).then_some(rest)
    }
}

/// The store of closed head chunks. `Send + Sync`.
pub struct HeadChunks {
    dir: Option<PathBuf>,
    fs: Option<SharedFs>,
    segment_size: usize,
    state: Mutex<State>,
    write_failures: AtomicU64,
    damaged: AtomicU64,
    /// Whether [`HeadChunks::write`] re-encodes chunks with the sealed codec.
    reencode: AtomicBool,
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
            reencode: AtomicBool::new(true),
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
        let min = SEGMENT_HEADER_LEN + MAX_RECORD_HEADER_LEN + CRC_LEN + 64;
        Ok(HeadChunks {
            dir: Some(dir.to_path_buf()),
            fs: Some(fs),
            segment_size: segment_size.clamp(min, u32::MAX as usize),
            state: Mutex::new(State { segments: BTreeMap::new(), current: 0, on_disk: true }),
            write_failures: AtomicU64::new(0),
            reencode: AtomicBool::new(true),
            damaged: AtomicU64::new(0),
        })
    }

    /// The directory of segment files, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Writes one closed XOR chunk of `series_ref` and returns where it is.
    /// The chunk is stored re-encoded with the sealed codec when that is
    /// smaller (see the module docs), else as it is. Never fails: if the
    /// file cannot be written, the chunk (and every later one) stays in RAM,
    /// and the failure is logged and counted.
    pub(crate) fn write(&self, series_ref: u64, mint: i64, maxt: i64, xor: &[u8]) -> ChunkRef {
        let reencode_on = self.reencode.load(Ordering::Relaxed);
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let (samples, out) = &mut *scratch;
                if !reencode_on {
                    // Kept as XOR (WAL replay), but with its summary: a
                    // decode costs far less than the re-encoding, and a
                    // restarted server's `max_over_time` needs it as much
                    // as one that never stopped.
                    let summary = summarize(xor, samples);
                    return self.write_record(series_ref, mint, maxt, Encoding::Xor, xor, summary);
                }
                let (encoding, data, summary) = reencode(xor, samples, out);
                self.write_record(series_ref, mint, maxt, encoding, data, summary)
            }
            // Not reachable (nothing here re-enters); XOR is always right.
            Err(_) => self.write_record(series_ref, mint, maxt, Encoding::Xor, xor, None),
        })
    }

    /// Turns the sealed re-encoding of [`HeadChunks::write`] on (the
    /// default) or off. The database turns it off while it replays the WAL
    /// at open: the re-encoding costs ~40% more replay CPU, and the chunks
    /// rebuilt then are stored as XOR, which every reader reads as well.
    ///
    /// ```
    /// use tidemark_storage::head::HeadChunks;
    /// let store = HeadChunks::in_memory();
    /// store.set_reencode(false);
    /// assert!(!store.reencodes());
    /// ```
    pub fn set_reencode(&self, on: bool) {
        self.reencode.store(on, Ordering::Relaxed);
    }

    /// Whether closed chunks are re-encoded with the sealed codec.
    pub fn reencodes(&self) -> bool {
        self.reencode.load(Ordering::Relaxed)
    }

    /// Appends one record to the current segment (starting a new one when
    /// it would not fit).
    fn write_record(
        &self,
        series_ref: u64,
        mint: i64,
        maxt: i64,
        encoding: Encoding,
        data: &[u8],
        summary: Option<ChunkSummary>,
    ) -> ChunkRef {
        let mut header = Vec::with_capacity(MAX_RECORD_HEADER_LEN);
        put_uvarint(&mut header, series_ref);
        put_varint(&mut header, mint);
        put_uvarint(&mut header, maxt.wrapping_sub(mint) as u64);
        header.push(encoding as u8);
        let mut sum = Vec::with_capacity(MAX_SUMMARY_LEN);
        let sum_len = put_summary(&mut sum, summary);
        put_uvarint(&mut header, (sum_len + data.len()) as u64);
        header.extend_from_slice(&sum);
        let rec_len = header.len() + data.len() + CRC_LEN;
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
        seg.pending.extend_from_slice(&header);
        seg.pending.extend_from_slice(data);
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

    /// The segments' current maps, for [`MappedRecords::prefetch`]: taken
    /// once by a select (one hold of the store's lock) rather than per
    /// record.
    pub(crate) fn mapped_records(&self) -> MappedRecords {
        let st = self.state.lock();
        let maps = st.segments.iter().filter_map(|(&i, seg)| seg.map.as_ref().map(|m| (i, Arc::clone(m)))).collect();
        MappedRecords { maps }
    }

    /// The encoding and bytes of the chunk at `r`, checked against its CRC,
    /// time range and (if given) `series_ref`. Bytes on disk are shared
    /// through the map; bytes still in RAM are copied.
    pub(crate) fn read(
        &self,
        r: ChunkRef,
        series_ref: Option<u64>,
        mint: i64,
        maxt: i64,
    ) -> Result<(Encoding, ChunkBytes), HeadChunkError> {
        self.read_summarized(r, series_ref, mint, maxt).map(|(e, b, _)| (e, b))
    }

    /// [`HeadChunks::read`], with the chunk's summary if its record has one
    /// (every chunk that decoded when it was written does).
    pub(crate) fn read_summarized(
        &self,
        r: ChunkRef,
        series_ref: Option<u64>,
        mint: i64,
        maxt: i64,
    ) -> Result<(Encoding, ChunkBytes, Option<ChunkSummary>), HeadChunkError> {
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
    ) -> Result<(Encoding, ChunkBytes, Option<ChunkSummary>), HeadChunkError> {
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
            let h = parse_header(&seg.pending, p).ok_or_else(oob)?;
            let len = h.record_len().ok_or_else(oob)?;
            let rec = seg.pending.get(p..p + len).ok_or_else(oob)?;
            let (encoding, start, n, summary) = check_parsed(r, rec, &h, series_ref, mint, maxt, VERSION)?;
            return Ok((encoding, ChunkBytes::Heap(rec[start..start + n].into()), summary));
        }
        // On disk: map far enough for the header, then for the record.
        if off + MAX_RECORD_HEADER_LEN > seg.mapped {
            Self::remap(seg);
        }
        let h = seg.map.as_ref().and_then(|m| parse_header(&m[..seg.mapped], off)).ok_or_else(oob)?;
        let len = h.record_len().ok_or_else(oob)?;
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
        let (encoding, start, n, summary) = check_parsed(r, &map[off..off + len], &h, series_ref, mint, maxt, VERSION)?;
        Ok((encoding, ChunkBytes::Mapped { map, start: off + start, len: n }, summary))
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

/// The summary of a closed XOR chunk, decoded into `samples` (scratch);
/// `None` for bytes that do not decode or are out of order, which
/// [`reencode`] would also leave without one.
fn summarize(xor: &[u8], samples: &mut Vec<Sample>) -> Option<ChunkSummary> {
    if !decode_in_order(xor, samples) {
        return None;
    }
    ChunkSummary::of(samples)
}

/// Decodes a closed XOR chunk into `samples` (cleared first); false if the
/// bytes do not decode or the timestamps are not strictly increasing (the
/// sealed codec needs them so; in-order head chunks always have them,
/// checked anyway as this must never lose data).
fn decode_in_order(xor: &[u8], samples: &mut Vec<Sample>) -> bool {
    samples.clear();
    let decoded = XorIterator::new(xor).decode_into(samples);
    decoded.is_ok() && samples.windows(2).all(|w| w[0].t < w[1].t)
}

/// Re-encodes a closed XOR chunk with the sealed codec into `out` and
/// returns the encoding to store, its bytes and the chunk's summary: the
/// sealed bytes when they are smaller, else `xor` itself (tiny chunks; or
/// bytes that do not decode, which the head never produces, stored as they
/// are rather than lost, and without a summary).
fn reencode<'a>(
    xor: &'a [u8],
    samples: &mut Vec<Sample>,
    out: &'a mut Vec<u8>,
) -> (Encoding, &'a [u8], Option<ChunkSummary>) {
    out.clear();
    if !decode_in_order(xor, samples) {
        return (Encoding::Xor, xor, None);
    }
    let summary = ChunkSummary::of(samples);
    sealed::encode_with_level(samples, ZSTD_LEVEL, out);
    if out.len() < xor.len() {
        (Encoding::Sealed, &out[..], summary)
    } else {
        (Encoding::Xor, xor, summary)
    }
}

/// Appends a record's summary field to `out` and returns its length: a
/// flag byte (0 none, 1 present), then the sample count, the non-stale count
/// and, if that is not 0, the largest and smallest value as little-endian
/// f64 bits.
fn put_summary(out: &mut Vec<u8>, summary: Option<ChunkSummary>) -> usize {
    let start = out.len();
    let Some(s) = summary else {
        out.push(0);
        return 1;
    };
    out.push(1);
    put_uvarint(out, u64::from(s.samples));
    put_uvarint(out, u64::from(s.count));
    if s.count > 0 {
        out.extend_from_slice(&s.max.to_bits().to_le_bytes());
        out.extend_from_slice(&s.min.to_bits().to_le_bytes());
    }
    out.len() - start
}

/// Reads the summary field [`put_summary`] writes at the start of `b`;
/// returns it (`None`: the record has none) and the field's length, or
/// `None` if the field is cut short or malformed.
#[inline]
fn get_summary(b: &[u8]) -> Option<(Option<ChunkSummary>, usize)> {
    match *b.first()? {
        0 => Some((None, 1)),
        1 => {
            let mut pos = 1;
            let samples = u32::try_from(get_uvarint(b, &mut pos)?).ok()?;
            let count = u32::try_from(get_uvarint(b, &mut pos)?).ok()?;
            if count > samples {
                return None;
            }
            let (mut max, mut min) = (0.0, 0.0);
            if count > 0 {
                let v = b.get(pos..pos + 16)?;
                max = f64::from_bits(u64::from_le_bytes(v[..8].try_into().ok()?));
                min = f64::from_bits(u64::from_le_bytes(v[8..].try_into().ok()?));
                pos += 16;
            }
            Some((Some(ChunkSummary { samples, count, max, min }), pos))
        }
        _ => None,
    }
}

/// A record's header fields, as parsed by [`parse_header`].
#[derive(Debug, Clone, Copy)]
struct Header {
    series_ref: u64,
    mint: i64,
    maxt: i64,
    encoding: u8,
    /// Length of the header (where the data starts in the record).
    len: usize,
    /// Length of the payload: the summary (from version 3 on) and the data.
    data_len: usize,
}

impl Header {
    /// Length of the whole record: header, data, CRC.
    fn record_len(&self) -> Option<usize> {
        self.len.checked_add(self.data_len)?.checked_add(CRC_LEN)
    }
}

/// Reads an unsigned varint of at most 10 bytes at `*pos` of `b`.
fn get_uvarint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let x = *b.get(*pos)?;
        *pos += 1;
        if i == 9 && x > 1 {
            return None; // overflows 64 bits
        }
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Parses the header of the record starting at `off` in `buf`, if all of it
/// is there and well-formed (the rest of the record, the summary included,
/// is checked by the caller). The header is the same in versions 2 and 3.
fn parse_header(buf: &[u8], off: usize) -> Option<Header> {
    let mut pos = off;
    let series_ref = get_uvarint(buf, &mut pos)?;
    let mint = unzigzag(get_uvarint(buf, &mut pos)?);
    let maxt = mint.wrapping_add(get_uvarint(buf, &mut pos)? as i64);
    let encoding = *buf.get(pos)?;
    pos += 1;
    let data_len = u32::try_from(get_uvarint(buf, &mut pos)?).ok()? as usize;
    Some(Header { series_ref, mint, maxt, encoding, len: pos - off, data_len })
}

/// Length of the record starting at `off` in `buf` (header, data, CRC), if
/// its header is there (the rest is checked by the caller).
fn record_len(buf: &[u8], off: usize) -> Option<usize> {
    parse_header(buf, off)?.record_len()
}

/// Checks a whole record (of segment format `version`) for its CRC and
/// identity; returns its encoding, where its data bytes are within it
/// (start, length) and its summary.
fn check(
    r: ChunkRef,
    b: &[u8],
    series_ref: Option<u64>,
    mint: i64,
    maxt: i64,
    version: u8,
) -> Result<(Encoding, usize, usize, Option<ChunkSummary>), HeadChunkError> {
    let h = parse_header(b, 0).ok_or(HeadChunkError::OutOfBounds { segment: r.segment(), offset: r.offset() })?;
    check_parsed(r, b, &h, series_ref, mint, maxt, version)
}

/// [`check`], given the header already parsed from the start of `b`.
fn check_parsed(
    r: ChunkRef,
    b: &[u8],
    h: &Header,
    series_ref: Option<u64>,
    mint: i64,
    maxt: i64,
    version: u8,
) -> Result<(Encoding, usize, usize, Option<ChunkSummary>), HeadChunkError> {
    let (segment, offset) = (r.segment(), r.offset());
    let oob = HeadChunkError::OutOfBounds { segment, offset };
    let n = b.len();
    if h.record_len() != Some(n) {
        return Err(oob);
    }
    let want = u32::from_le_bytes(b[n - CRC_LEN..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[..n - CRC_LEN]) != want {
        return Err(HeadChunkError::Checksum { segment, offset });
    }
    if series_ref.is_some_and(|r| h.series_ref != r) || h.mint != mint || h.maxt != maxt {
        return Err(HeadChunkError::Mismatch { segment, offset });
    }
    let encoding = Encoding::try_from(h.encoding).map_err(|_| HeadChunkError::UnknownEncoding {
        segment,
        offset,
        encoding: h.encoding,
    })?;
    let payload = &b[h.len..h.len + h.data_len];
    let (summary, sum_len) = if version == VERSION_2 { (None, 0) } else { get_summary(payload).ok_or(oob)? };
    Ok((encoding, h.len + sum_len, h.data_len - sum_len, summary))
}

/// One intact record of a segment, as [`scan_segment`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord<'a> {
    /// Byte offset of the record in the segment.
    pub offset: usize,
    /// The series' reference.
    pub series_ref: u64,
    /// Timestamp of the chunk's first sample.
    pub mint: i64,
    /// Timestamp of the chunk's last sample.
    pub maxt: i64,
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The chunk's bytes.
    pub data: &'a [u8],
    /// The chunk's summary, if the record has one (format version 3 on).
    pub summary: Option<ChunkSummary>,
}

/// What [`scan_segment`] found in a segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan<'a> {
    /// The intact records, in order, up to the first that is not.
    pub records: Vec<SegmentRecord<'a>>,
    /// Length of the intact prefix: header and records.
    pub valid_len: usize,
    /// Why the scan stopped before the end, if it did: a torn record (a
    /// crash mid-write: `OutOfBounds`), a failed checksum, or an unknown
    /// encoding.
    pub stopped: Option<HeadChunkError>,
}

/// Reads a segment file's bytes record by record, stopping at the first
/// record that is torn or damaged: everything before it is intact. Fails
/// only if the bytes do not start with a segment header of this version.
/// Never panics, whatever the bytes.
///
/// The head does not read its segments back at open (it rebuilds them from
/// the WAL); this is the reader for tools, tests and the fuzzer, and for a
/// replay of the files later.
///
/// ```
/// use tidemark_storage::head::chunk_file::{scan_segment, HeadChunkError};
/// assert_eq!(scan_segment(b"TMHC\x02\0\0\0").unwrap().records.len(), 0);
/// assert_eq!(scan_segment(b"nope").unwrap_err(), HeadChunkError::NotASegment);
/// ```
pub fn scan_segment(bytes: &[u8]) -> Result<SegmentScan<'_>, HeadChunkError> {
    if bytes.len() < SEGMENT_HEADER_LEN || bytes[..4] != MAGIC || !matches!(bytes[4], VERSION | VERSION_2) {
        return Err(HeadChunkError::NotASegment);
    }
    let version = bytes[4];
    let mut scan = SegmentScan { records: Vec::new(), valid_len: SEGMENT_HEADER_LEN, stopped: None };
    let mut off = SEGMENT_HEADER_LEN;
    while off < bytes.len() {
        let r = ChunkRef::new(0, u32::try_from(off).unwrap_or(u32::MAX));
        let rec = record_len(bytes, off)
            .and_then(|len| bytes.get(off..off.checked_add(len)?))
            .ok_or(HeadChunkError::OutOfBounds { segment: 0, offset: r.offset() });
        let checked = rec.and_then(|rec| {
            let h = parse_header(rec, 0).ok_or(HeadChunkError::OutOfBounds { segment: 0, offset: r.offset() })?;
            let (encoding, start, n, summary) = check(r, rec, None, h.mint, h.maxt, version)?;
            Ok((rec.len(), h, encoding, &rec[start..start + n], summary))
        });
        match checked {
            Ok((len, h, encoding, data, summary)) => {
                scan.records.push(SegmentRecord {
                    offset: off,
                    series_ref: h.series_ref,
                    mint: h.mint,
                    maxt: h.maxt,
                    encoding,
                    data,
                    summary,
                });
                off += len;
                scan.valid_len = off;
            }
            Err(e) => {
                scan.stopped = Some(e);
                break;
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests;
