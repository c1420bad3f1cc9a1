//! The head chunk file: closed in-order head chunks, written once to
//! append-only segment files under `<dir>/chunks_head/` and read back
//! through read-only memory maps, so the page cache (reclaimable, and
//! untouched pages not resident at all) holds them instead of the heap.
//! Format: `docs/format/head_chunks.md`.
//!
//! The head closes XOR chunks; each is stored re-encoded with the sealed
//! codec (`chunkenc::sealed`, zstd level [`ZSTD_LEVEL`], without a Huffman
//! stage) when that is smaller (it nearly always is: ~1.8 instead of ~3.1
//! bytes per sample at 15 s scrapes), and read back in whichever encoding
//! its record names. While a sealer runs (`head/sealer.rs`, started by the
//! database after the WAL replay) the re-encoding is off the append path:
//! `HeadChunks::write_closed` copies the XOR bytes into a RAM **staging
//! area** (segments of `STAGE_SEGMENT_SIZE` with indexes from
//! `STAGE_BASE` up, never on disk) and queues the chunk; the sealer
//! writes the sealed record to the main segments and moves the series'
//! reference to it. With the queue full, or no sealer, the chunk is
//! re-encoded inline. While the WAL is replayed at open
//! ([`HeadChunks::set_reencode`] off) closed chunks are stored as XOR in the
//! main segments (with their summary, which needs only a decode), so a
//! restart costs little more CPU than before the re-encoding existed. A
//! series keeps a packed [`ChunkRef`] (segment, offset) per closed chunk plus
//! its time range. The file is derived data, rebuilt from the WAL at
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
//! - A staging segment holds only records whose job is queued or being
//!   sealed (`live` counts them); it is freed when the last is released
//!   and chunks are no longer staged into it, or by truncation like any
//!   segment. Staged records carry no summary (readers decode instead).
//! - A series holding a staged reference reads it under its shard lock and
//!   gets a heap copy; the sealer swaps the reference under the same lock
//!   before releasing the record, so a released record is unreachable.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use std::cell::RefCell;

use parking_lot::Mutex;

use crate::chunkenc::{sealed, ChunkBytes, ChunkSummary, Encoding, XorIterator};
use crate::sample::Sample;
use crate::varint::{get_uvarint, put_uvarint, put_varint, unzigzag};
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
/// First segment index of the staging area: main segments count up from 0
/// and never reach it (2^31 segments would be 256 TiB at the default size).
const STAGE_BASE: u32 = 1 << 31;
/// Size of a staging segment (RAM only): small, so one is freed soon after
/// the sealer has moved its records out.
const STAGE_SEGMENT_SIZE: usize = 1 << 20;
/// Chunks at most in the sealer's queue (~0.4 KiB of staged XOR bytes each
/// at 15 s scrapes: ~13 MiB at most). A chunk closed while it is full is
/// re-encoded inline, as without a sealer.
pub(crate) const SEAL_QUEUE_CAP: usize = 32_768;
/// Queued chunks that wake a sleeping sealer.
const WAKE_AT: usize = 256;
/// Longest a sleeping sealer waits before it looks at the queue anyway.
const SEALER_NAP: std::time::Duration = std::time::Duration::from_millis(20);

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

/// A closed chunk staged as XOR, waiting for the sealer: the series, the
/// chunk's time range and its staged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Staged {
    pub(crate) series_ref: u64,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    pub(crate) at: ChunkRef,
}

/// The sealer's bounded queue of staged chunks. Producers reserve a place
/// first ([`SealQueue::reserve`]), so the queue never holds more than
/// [`SEAL_QUEUE_CAP`] chunks plus one per applying thread.
#[derive(Debug)]
pub(crate) struct SealQueue {
    jobs: Mutex<QueueState>,
    ready: parking_lot::Condvar,
    /// Chunks reserved or queued and not yet taken by the sealer.
    len: AtomicUsize,
    cap: AtomicUsize,
    /// Set when the queue is closed, read by the sealer between jobs.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct QueueState {
    jobs: std::collections::VecDeque<Staged>,
    /// Whether the sealer sleeps waiting for jobs (only then is it woken).
    waiting: bool,
    closed: bool,
}

impl Default for SealQueue {
    fn default() -> SealQueue {
        SealQueue {
            jobs: Mutex::new(QueueState::default()),
            ready: parking_lot::Condvar::new(),
            len: AtomicUsize::new(0),
            cap: AtomicUsize::new(SEAL_QUEUE_CAP),
            closed: AtomicBool::new(false),
        }
    }
}

impl SealQueue {
    /// Takes a place in the queue if there is one.
    fn reserve(&self) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        let mut n = self.len.load(Ordering::Relaxed);
        loop {
            if n >= cap {
                return false;
            }
            match self.len.compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
    }

    /// Queues a job whose place was reserved.
    fn push(&self, job: Staged) {
        let mut q = self.jobs.lock();
        q.jobs.push_back(job);
        // Woken for a whole batch only: a wake-up per chunk (a futex call
        // and a context switch each) cost as much as the work moved off
        // the append path. A sleeping sealer also looks every
        // `SEALER_NAP` on its own, so a trickle of chunks is sealed soon.
        if q.waiting && q.jobs.len() >= WAKE_AT {
            q.waiting = false;
            self.ready.notify_one();
        }
    }

    /// Waits for jobs and moves up to `max` of them into `out` (oldest
    /// first); false once the queue is closed.
    pub(crate) fn next_batch(&self, out: &mut Vec<Staged>, max: usize) -> bool {
        let mut q = self.jobs.lock();
        loop {
            if q.closed {
                return false;
            }
            if !q.jobs.is_empty() {
                let n = q.jobs.len().min(max);
                out.extend(q.jobs.drain(..n));
                self.len.fetch_sub(n, Ordering::Relaxed);
                return true;
            }
            q.waiting = true;
            self.ready.wait_for(&mut q, SEALER_NAP);
            q.waiting = false;
        }
    }

    /// Whether the queue was closed (the sealer should stop).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        let mut q = self.jobs.lock();
        q.closed = true;
        self.closed.store(true, Ordering::Release);
        self.len.fetch_sub(q.jobs.len(), Ordering::Relaxed);
        q.jobs.clear();
        self.ready.notify_all();
    }

    fn reopen(&self) {
        self.jobs.lock().closed = false;
        self.closed.store(false, Ordering::Release);
    }

    /// Sets the queue's capacity (tests: a full queue without filling one).
    #[cfg(test)]
    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }
}

/// A store's sealer: its queue, whether a thread serves it, the thread.
#[derive(Debug, Default)]
struct SealState {
    queue: Arc<SealQueue>,
    running: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Chunks sealed by the sealer.
    sealed: AtomicU64,
    /// Chunks re-encoded inline because the queue was full.
    inline: AtomicU64,
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
    /// Staging segments only: records written and not yet released by the
    /// sealer (see [`HeadChunks::release_staged`]).
    live: u32,
}

impl Segment {
    fn empty() -> Segment {
        Segment {
            file: None,
            path: None,
            map: None,
            mapped: 0,
            written: 0,
            pending: Vec::new(),
            max_t: i64::MIN,
            live: 0,
        }
    }

    fn len(&self) -> usize {
        self.written + self.pending.len()
    }

    /// Appends one record (its header, data and CRC) to the pending bytes;
    /// returns its offset in the segment.
    fn append(&mut self, header: &[u8], data: &[u8], maxt: i64) -> usize {
        let offset = self.len();
        let start = self.pending.len();
        self.pending.extend_from_slice(header);
        self.pending.extend_from_slice(data);
        let crc = crc32c::crc32c(&self.pending[start..]);
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.max_t = self.max_t.max(maxt);
        offset
    }
}

/// The data bytes of the staged record of `job` (a staging segment lives
/// in RAM: its bytes are all pending), checked like any read.
fn staged_data<'a>(st: &'a State, job: &Staged) -> Result<&'a [u8], HeadChunkError> {
    let r = job.at;
    let (segment, offset) = (r.segment(), r.offset());
    let oob = || HeadChunkError::OutOfBounds { segment, offset };
    let seg = st.segments.get(&segment).ok_or(HeadChunkError::MissingSegment { segment })?;
    let p = (offset as usize).checked_sub(seg.written).filter(|&p| p >= SEGMENT_HEADER_LEN).ok_or_else(oob)?;
    let h = parse_header(&seg.pending, p).ok_or_else(oob)?;
    let len = h.record_len().ok_or_else(oob)?;
    let rec = seg.pending.get(p..p + len).ok_or_else(oob)?;
    let (_, start, n, _) = check_parsed(r, rec, &h, Some(job.series_ref), job.mint, job.maxt, VERSION)?;
    Ok(&rec[start..start + n])
}

/// A record's header and summary field (everything before its data).
fn record_header(
    series_ref: u64,
    mint: i64,
    maxt: i64,
    encoding: Encoding,
    data_len: usize,
    summary: Option<ChunkSummary>,
) -> Vec<u8> {
    let mut header = Vec::with_capacity(MAX_RECORD_HEADER_LEN + MAX_SUMMARY_LEN);
    put_uvarint(&mut header, series_ref);
    put_varint(&mut header, mint);
    put_uvarint(&mut header, maxt.wrapping_sub(mint) as u64);
    header.push(encoding as u8);
    let mut sum = Vec::with_capacity(MAX_SUMMARY_LEN);
    let sum_len = put_summary(&mut sum, summary);
    put_uvarint(&mut header, (sum_len + data_len) as u64);
    header.extend_from_slice(&sum);
    header
}

struct State {
    segments: BTreeMap<u32, Segment>,
    /// Index of the segment new chunks go to.
    current: u32,
    /// Whether new segments get files (false without a directory or
    /// after a write failed).
    on_disk: bool,
    /// Index of the staging segment new XOR chunks go to, if any.
    stage_current: Option<u32>,
    /// Index the next staging segment gets.
    next_stage: u32,
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
    /// The queue of staged chunks and the sealer thread working on it.
    seal: SealState,
}

impl State {
    fn new(on_disk: bool) -> State {
        State { segments: BTreeMap::new(), current: 0, on_disk, stage_current: None, next_stage: STAGE_BASE }
    }
}

impl Drop for HeadChunks {
    fn drop(&mut self) {
        // The sealer holds only a weak reference to the head: closing the
        // queue ends it (it is not joined here: this may be its own thread,
        // when it held the head's last strong reference).
        self.seal.running.store(false, Ordering::Release);
        self.seal.queue.close();
    }
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
            state: Mutex::new(State::new(false)),
            write_failures: AtomicU64::new(0),
            reencode: AtomicBool::new(true),
            damaged: AtomicU64::new(0),
            seal: SealState::default(),
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
            state: Mutex::new(State::new(true)),
            write_failures: AtomicU64::new(0),
            reencode: AtomicBool::new(true),
            damaged: AtomicU64::new(0),
            seal: SealState::default(),
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
        let header = record_header(series_ref, mint, maxt, encoding, data.len(), summary);
        let mut st = self.state.lock();
        self.append_record(&mut st, &header, data, maxt)
    }

    /// Appends one record (its header, its data; the CRC is added) to the
    /// current main segment, starting a new one when it would not fit, and
    /// flushes the segment's buffer when it is full. The caller holds the
    /// store's lock.
    fn append_record(&self, st: &mut State, header: &[u8], data: &[u8], maxt: i64) -> ChunkRef {
        let rec_len = header.len() + data.len() + CRC_LEN;
        let need_new = match st.segments.get(&st.current) {
            None => true,
            Some(s) => s.len() + rec_len > self.segment_size_now(st.on_disk) && s.len() > SEGMENT_HEADER_LEN,
        };
        if need_new {
            self.rotate(st);
        }
        let cur = st.current;
        let seg = st.segments.get_mut(&cur).expect("rotate creates the current segment");
        let offset = seg.append(header, data, maxt);
        if seg.file.is_some() && seg.pending.len() >= WRITE_BUFFER && !self.flush(seg) {
            st.on_disk = false;
        }
        ChunkRef::new(cur, offset as u32)
    }

    /// Stores one closed XOR chunk of `series_ref`, as
    /// [`HeadChunks::write`] does, except that while a sealer runs (and
    /// the re-encoding is on) the chunk is only copied as it is into the
    /// RAM staging area and queued: the sealer re-encodes it and moves the
    /// series' reference to the sealed record later
    /// ([`HeadChunks::seal_staged`]). With the queue full, or no sealer, the
    /// chunk is re-encoded here.
    pub(crate) fn write_closed(&self, series_ref: u64, mint: i64, maxt: i64, xor: &[u8]) -> ChunkRef {
        if self.seal.running.load(Ordering::Relaxed) && self.reencode.load(Ordering::Relaxed) {
            if self.seal.queue.reserve() {
                let at = self.stage(series_ref, mint, maxt, xor);
                self.seal.queue.push(Staged { series_ref, mint, maxt, at });
                return at;
            }
            self.seal.inline.fetch_add(1, Ordering::Relaxed);
        }
        self.write(series_ref, mint, maxt, xor)
    }

    /// Appends an XOR record without a summary to the current staging
    /// segment (starting a new one when it would not fit).
    fn stage(&self, series_ref: u64, mint: i64, maxt: i64, xor: &[u8]) -> ChunkRef {
        let header = record_header(series_ref, mint, maxt, Encoding::Xor, xor.len(), None);
        let rec_len = header.len() + xor.len() + CRC_LEN;
        let mut st = self.state.lock();
        let cur = match st.stage_current {
            Some(i) if st.segments.get(&i).is_some_and(|s| s.len() + rec_len <= STAGE_SEGMENT_SIZE) => i,
            old => {
                // The previous one is freed as soon as its last record is
                // released (at once if that already happened).
                if let Some(o) = old {
                    if st.segments.get(&o).is_some_and(|s| s.live == 0) {
                        st.segments.remove(&o);
                    }
                }
                let i = st.next_stage;
                st.next_stage = st.next_stage.checked_add(1).unwrap_or(STAGE_BASE);
                let mut seg = Segment::empty();
                seg.pending = Vec::with_capacity(STAGE_SEGMENT_SIZE.max(SEGMENT_HEADER_LEN + rec_len));
                seg.pending.extend_from_slice(&MAGIC);
                seg.pending.extend_from_slice(&[VERSION, 0, 0, 0]);
                st.segments.insert(i, seg);
                st.stage_current = Some(i);
                i
            }
        };
        let seg = st.segments.get_mut(&cur).expect("the staging segment was just found or made");
        let offset = seg.append(&header, xor, maxt);
        seg.live += 1;
        ChunkRef::new(cur, offset as u32)
    }

    /// The sealer's step for one staged chunk: [`HeadChunks::seal_batch`]
    /// of one job.
    #[cfg(test)]
    pub(crate) fn seal_staged(&self, job: &Staged) -> Option<ChunkRef> {
        let mut out = Vec::with_capacity(1);
        self.seal_batch(std::slice::from_ref(job), &mut out);
        out[0]
    }

    /// The sealer's step for a batch of staged chunks: copies their XOR
    /// bytes out of the staging area (one hold of the store's lock),
    /// re-encodes each without the lock, and appends the sealed records
    /// (with their summaries) to the main segments (one more hold). Pushes
    /// to `out`, per job, the new record's reference, or `None` if the
    /// staged record is gone (its segment was truncated away) or cannot be
    /// read; the caller then leaves that series alone.
    pub(crate) fn seal_batch(&self, jobs: &[Staged], out: &mut Vec<Option<ChunkRef>>) {
        // The staged bytes, one after the other, and each job's span.
        let mut raw: Vec<u8> = Vec::new();
        let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(jobs.len());
        {
            let st = self.state.lock();
            for job in jobs {
                match staged_data(&st, job) {
                    Ok(data) => {
                        spans.push(Some((raw.len(), data.len())));
                        raw.extend_from_slice(data);
                    }
                    // A record gone with its segment is no damage.
                    Err(HeadChunkError::MissingSegment { .. }) => spans.push(None),
                    Err(e) => {
                        tracing::error!(series_ref = job.series_ref, error = %e, "staged head chunk unreadable; left unsealed");
                        spans.push(None);
                    }
                }
            }
        }
        // Each record's header and data, one after the other: (job, header
        // start, data start, end).
        let mut enc: Vec<u8> = Vec::with_capacity(raw.len());
        let mut recs: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(jobs.len());
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (samples, sealed) = &mut *scratch;
            for (i, (job, span)) in jobs.iter().zip(&spans).enumerate() {
                let Some((at, len)) = *span else { continue };
                let (encoding, data, summary) = reencode(&raw[at..at + len], samples, sealed);
                let h = enc.len();
                enc.extend_from_slice(&record_header(
                    job.series_ref,
                    job.mint,
                    job.maxt,
                    encoding,
                    data.len(),
                    summary,
                ));
                let d = enc.len();
                enc.extend_from_slice(data);
                recs.push((i, h, d, enc.len()));
            }
        });
        let first = out.len();
        out.resize(first + jobs.len(), None);
        let mut st = self.state.lock();
        for &(i, h, d, e) in &recs {
            out[first + i] = Some(self.append_record(&mut st, &enc[h..d], &enc[d..e], jobs[i].maxt));
        }
        drop(st);
        self.seal.sealed.fetch_add(recs.len() as u64, Ordering::Relaxed);
    }

    /// Marks the staged record at `r` as no longer needed (the series now
    /// refers to its sealed copy, or no longer to either); a staging
    /// segment whose every record is released is freed, unless chunks are
    /// still being staged into it.
    #[cfg(test)]
    pub(crate) fn release_staged(&self, r: ChunkRef) {
        self.release_staged_all(std::iter::once(r));
    }

    /// [`HeadChunks::release_staged`] of several records, in one hold of
    /// the store's lock.
    pub(crate) fn release_staged_all(&self, refs: impl IntoIterator<Item = ChunkRef>) {
        let mut st = self.state.lock();
        for r in refs {
            let current = st.stage_current == Some(r.segment());
            let Some(seg) = st.segments.get_mut(&r.segment()) else { continue };
            seg.live = seg.live.saturating_sub(1);
            if seg.live == 0 && !current {
                st.segments.remove(&r.segment());
            }
        }
    }

    /// The queue of staged chunks, for the sealer thread.
    pub(crate) fn seal_queue(&self) -> Arc<SealQueue> {
        Arc::clone(&self.seal.queue)
    }

    /// Records the sealer thread started on this store's queue: from now on
    /// [`HeadChunks::write_closed`] stages chunks.
    pub(crate) fn attach_sealer(&self, handle: Option<std::thread::JoinHandle<()>>) {
        *self.seal.thread.lock() = handle;
        self.seal.queue.reopen();
        self.seal.running.store(true, Ordering::Release);
    }

    /// Stops the sealer: closed chunks are re-encoded inline again, the
    /// thread is told to stop and joined (unless this is the sealer
    /// thread itself). Chunks still queued stay staged as XOR, which every
    /// reader reads as well. Returns quickly: the thread finishes at most
    /// the chunk it is on.
    pub fn stop_sealer(&self) {
        self.seal.running.store(false, Ordering::Release);
        self.seal.queue.close();
        let handle = self.seal.thread.lock().take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }

    /// Counts of the sealer: (chunks sealed in the background, chunks
    /// re-encoded inline because its queue was full, chunks queued now).
    pub fn sealer_counts(&self) -> (u64, u64, usize) {
        (
            self.seal.sealed.load(Ordering::Relaxed),
            self.seal.inline.load(Ordering::Relaxed),
            self.seal.queue.len.load(Ordering::Relaxed),
        )
    }

    /// Staged records not yet released by the sealer.
    #[cfg(test)]
    pub(crate) fn staged_records(&self) -> u64 {
        self.state.lock().segments.range(STAGE_BASE..).map(|(_, s)| u64::from(s.live)).sum()
    }

    /// Whether `r` is a record of the staging area.
    #[cfg(test)]
    pub(crate) fn is_staged(r: ChunkRef) -> bool {
        r.segment() >= STAGE_BASE
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
        let mut seg = Segment::empty();
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
        let stage = st.stage_current;
        // Staging segments go by the same rule (a chunk the sealer has not
        // reached yet is dropped with its series' reference); their queued
        // jobs then find the record gone and do nothing.
        let doomed: Vec<u32> = st
            .segments
            .iter()
            .filter(|(&i, s)| i != cur && Some(i) != stage && s.max_t < mint)
            .map(|(&i, _)| i)
            .collect();
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
