//! Write-ahead log: every acknowledged append is logged here first, so the
//! in-memory head can be rebuilt after a crash.
//!
//! The log is a directory of numbered segment files of CRC32-C-checked
//! records (format: `docs/format/wal.md`). [`Wal::log`] appends records with
//! group commit: concurrent callers share one `write` and one `fsync`, as
//! decided by the [`SyncPolicy`]. After the head has been persisted to a
//! block, [`Wal::checkpoint`] condenses the old segments into a checkpoint
//! that keeps only live series and recent samples, and deletes them, so the
//! log does not grow without bound.
//!
//! Start-up: call [`Wal::open_and_replay`], which reads everything committed
//! (the newest checkpoint, then later segments), truncates a torn tail,
//! skips and repairs damage elsewhere ([`WalDamage`]: every intact record is
//! kept) and starts a new segment, in one pass. [`Wal::replay`] reads without
//! changing anything and [`Wal::open`] repairs without handing records out;
//! calling `replay` then `open` gives the same result in two passes.
//!
//! ```
//! use tidemark_storage::wal::{Record, RefSample, RefSeries, Wal, WalOptions};
//! use tidemark_storage::Labels;
//! let dir = tempfile::tempdir().unwrap();
//! let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
//! let labels = Labels::new([("__name__", "up")]).unwrap();
//! wal.log(&[
//!     Record::Series(vec![RefSeries { series_ref: 1, labels }]),
//!     Record::Samples(vec![RefSample { series_ref: 1, t: 1000, v: 1.0 }]),
//! ])
//! .unwrap();
//! wal.close().unwrap();
//!
//! let mut records = Vec::new();
//! let (_wal, stats) = Wal::open_and_replay(dir.path(), WalOptions::default(), |r| records.push(r)).unwrap();
//! assert_eq!(records.len(), 2);
//! assert_eq!(stats.samples, 1);
//! assert!(stats.stopped_at.is_none());
//! ```

mod histogram_record;
mod hold;
mod record;
mod recover;
mod segment;
mod tail;
#[cfg(test)]
mod tail_tests;
#[cfg(test)]
mod tests;

pub use self::hold::WalHold;
pub(crate) use self::hold::{checkpoint_bound, WalHolds};
pub use self::recover::{DamagedRegion, WalDamage};
pub use self::tail::{SkipReason, TailRead, WalPosition, WalSkip, WalTailer};
pub use crate::exemplar::RefExemplar;

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use self::record::encode_frame;
use self::segment::{
    checkpoint_path, create_segment, list_dir, scan_segment, segment_path, sync_dir, Listing, ScanEnd, SEGMENT_HEADER,
    TMP_SUFFIX,
};
use crate::vfs::{self, FileWriter, SharedFs, WritableFile};
use crate::{Error, Labels};

/// A write-ahead log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A record failed its checksum or framing.
    #[error("corrupt WAL record in segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// Segment number.
        segment: u64,
        /// Byte offset of the bad record in the segment.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A record in a checkpoint is damaged (returned by strict readers: the
    /// WAL tailer). Checkpoints are fsynced before they are renamed into
    /// place, so this is not a torn write. Replay and open skip such damage
    /// instead and report it in [`ReplayStats::damage`].
    #[error("corrupt WAL checkpoint {checkpoint}, segment {segment} at offset {offset}: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint's number (the last segment it covers).
        checkpoint: u64,
        /// Segment number inside the checkpoint directory.
        segment: u64,
        /// Byte offset of the bad record in that segment.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// One record encodes to more than the format's limit (1 GiB); split it.
    #[error("WAL record of {bytes} bytes exceeds the 1 GiB limit")]
    RecordTooLarge {
        /// The encoded size.
        bytes: u64,
    },
}

/// A new series and the reference later sample records use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSeries {
    /// The head's reference for the series.
    pub series_ref: u64,
    /// The series' labels.
    pub labels: Labels,
}

/// One sample of a series known by reference.
#[derive(Debug, Clone, Copy)]
pub struct RefSample {
    /// The series reference (from an earlier [`RefSeries`]).
    pub series_ref: u64,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The value, stored bit-exactly.
    pub v: f64,
}

impl PartialEq for RefSample {
    fn eq(&self, o: &RefSample) -> bool {
        self.series_ref == o.series_ref && self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}

/// One native histogram sample (integer or float counts, any schema) of a
/// series known by reference.
///
/// Equality is bit-exact: every float (sum, zero threshold, float counts,
/// custom bounds) is compared by its bit pattern, so a staleness marker
/// equals itself.
///
/// ```
/// use tidemark_storage::histogram::{Histogram, HistogramValue, Span};
/// use tidemark_storage::wal::{Record, RefHistogramSample, RefSeries, Wal, WalOptions};
/// use tidemark_storage::{stale_nan, Labels};
/// let dir = tempfile::tempdir().unwrap();
/// let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
/// let labels = Labels::new([("__name__", "rpc_seconds")]).unwrap();
/// let h = Histogram {
///     schema: 0,
///     count: 3,
///     sum: 3.5,
///     positive_spans: vec![Span { offset: 0, length: 2 }],
///     positive_buckets: vec![2, -1],
///     ..Histogram::default()
/// };
/// let stale = Histogram { sum: stale_nan(), ..Histogram::default() };
/// wal.log(&[
///     Record::Series(vec![RefSeries { series_ref: 1, labels }]),
///     Record::HistogramSamples(vec![
///         RefHistogramSample { series_ref: 1, t: 1000, h: HistogramValue::Integer(h) },
///         RefHistogramSample { series_ref: 1, t: 2000, h: HistogramValue::Integer(stale) },
///     ]),
/// ])
/// .unwrap();
/// wal.close().unwrap();
///
/// let mut records = Vec::new();
/// let stats = Wal::replay(dir.path(), |r| records.push(r)).unwrap();
/// assert_eq!(stats.samples, 2);
/// let Record::HistogramSamples(got) = &records[1] else { panic!() };
/// assert!(got[1].h.is_stale());
/// ```
#[derive(Debug, Clone)]
pub struct RefHistogramSample {
    /// The series reference (from an earlier [`RefSeries`]).
    pub series_ref: u64,
    /// Milliseconds since the epoch.
    pub t: i64,
    /// The histogram, stored bit-exactly (its kind, integer or float, too).
    pub h: crate::histogram::HistogramValue,
}

impl PartialEq for RefHistogramSample {
    fn eq(&self, o: &RefHistogramSample) -> bool {
        self.series_ref == o.series_ref && self.t == o.t && histogram_record::bits_eq(&self.h, &o.h)
    }
}

/// One logical WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Series created in a commit; always logged before samples that use them.
    Series(Vec<RefSeries>),
    /// Samples appended in a commit.
    Samples(Vec<RefSample>),
    /// Native histogram samples appended in a commit (integer and float
    /// ones may be mixed; format type 5).
    HistogramSamples(Vec<RefHistogramSample>),
    /// Exemplars appended in a commit (format type 6); logged after the
    /// series they belong to.
    Exemplars(Vec<RefExemplar>),
}

/// When the log is fsynced. Under every policy, [`Wal::log`] has handed the
/// bytes to the kernel before it returns, so acknowledged records survive the
/// process being killed; the policy decides what survives a power loss or an
/// OS crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `fdatasync` before every [`Wal::log`] returns (shared by concurrent
    /// callers): no acknowledged record is lost. The default.
    #[default]
    EveryCommit,
    /// A background thread fsyncs at this interval (must be non-zero): up to
    /// one interval of acknowledged records may be lost on power loss.
    /// Segments are fsynced when they are closed.
    Interval(Duration),
    /// Never fsync; the OS writes back when it likes. Fastest; records
    /// acknowledged in the last ~30 s (the kernel's writeback delay) may be
    /// lost on power loss.
    Never,
}

/// Default size at which a segment is closed and the next one started: 128 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;
/// Smallest accepted [`WalOptions::segment_size`], in bytes.
pub const MIN_SEGMENT_SIZE: u64 = 64;

/// Options for [`Wal::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes after which the writer starts a new segment (a single larger
    /// record still gets a segment of its own). Default 128 MiB
    /// ([`DEFAULT_SEGMENT_SIZE`]); at least [`MIN_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// When to fsync. Default [`SyncPolicy::EveryCommit`].
    pub sync: SyncPolicy,
    /// Bytes of zeros the writer keeps written ahead of the segment's data
    /// (at most up to `segment_size`), so that a commit overwrites blocks
    /// that already exist instead of growing the file, and its `fdatasync`
    /// writes only the data, not the inode and extent map too. The segment
    /// being written takes up to this much more room than its data; a
    /// segment is cut to its data when it is closed. 0: every write grows
    /// the file. Default [`DEFAULT_ZERO_AHEAD`].
    pub zero_ahead: u64,
}

/// Default [`WalOptions::zero_ahead`]: 4 MiB.
pub const DEFAULT_ZERO_AHEAD: u64 = 4 << 20;

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { segment_size: DEFAULT_SEGMENT_SIZE, sync: SyncPolicy::EveryCommit, zero_ahead: DEFAULT_ZERO_AHEAD }
    }
}

/// What [`Wal::replay`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// The checkpoint read first, if any (the last segment it covers).
    pub checkpoint: Option<u64>,
    /// Segments read after the checkpoint (including the one replay stopped in).
    pub segments: u64,
    /// Records handed to the callback (checkpoint and segments).
    pub records: u64,
    /// Series entries in those records.
    pub series: u64,
    /// Sample entries in those records (float and histogram samples).
    pub samples: u64,
    /// Exemplar entries in those records.
    pub exemplars: u64,
    /// Bytes of good data read from segments after the checkpoint.
    pub bytes: u64,
    /// Where and why replay stopped before the end of the log: a torn tail
    /// after a crash, or corruption. `None` when everything was read.
    /// Always a [`WalError::Corrupt`]. Only the newest segment's end is
    /// reported here; damage anywhere else is in [`ReplayStats::damage`].
    pub stopped_at: Option<WalError>,
    /// Damage in the middle of the log or in the checkpoint, which replay
    /// skipped while reading every later record. `None` for a clean log.
    pub damage: Option<WalDamage>,
}

/// What [`Wal::checkpoint`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The last segment the new checkpoint covers.
    pub upto: u64,
    /// Series entries kept.
    pub series_kept: u64,
    /// Series entries dropped because `keep_series` returned false.
    pub series_dropped: u64,
    /// Sample entries kept (float and histogram samples).
    pub samples_kept: u64,
    /// Sample entries dropped (series not kept, or older than `mint`;
    /// float and histogram samples).
    pub samples_dropped: u64,
    /// Segment files deleted.
    pub segments_removed: u64,
    /// [`Wal::size_bytes`] before and after.
    pub size_before: u64,
    /// [`Wal::size_bytes`] after the old files were deleted.
    pub size_after: u64,
    /// What the new checkpoint's records would take as uncompressed
    /// format-1 frames (see [`Wal::uncompressed_bytes`]).
    pub uncompressed_bytes: u64,
    /// Damage found in the files being condensed (a segment or the previous
    /// checkpoint rotted after it was written). The damaged records are
    /// skipped, the damaged files are copied to the quarantine directory
    /// (see [`Wal::open_and_replay_with_quarantine`]) and the checkpoint
    /// holds everything intact, so the damage is gone from the live log.
    pub damage: Option<WalDamage>,
}

/// The write-ahead log. `Send + Sync`: share it by reference or `Arc`.
pub struct Wal {
    inner: Arc<Inner>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    dir: PathBuf,
    /// Where damaged files are copied.
    quarantine: PathBuf,
    /// Every write, fsync, create, rename and delete goes through it.
    fs: SharedFs,
    segment_size: u64,
    sync: SyncPolicy,
    /// [`WalOptions::zero_ahead`].
    zero_ahead: u64,
    /// Group-commit queue. Lock order: never acquire `commit` while holding `io`.
    commit: Mutex<CommitState>,
    /// Where callers wait for a batch, by the parity of its round
    /// ([`CommitState::round`]): those whose records the batch being
    /// written carries wait on its round's condvar, those queued behind it
    /// on the other. When a batch ends (or fails), every caller it carried
    /// is woken, and exactly one caller queued behind it, to lead the next
    /// batch at once; the others sleep on until that batch ends instead of
    /// waking only to wait again.
    committed: [Condvar; 2],
    /// The segment being written. Only a group-commit leader, `cut_segment`,
    /// the interval syncer and `close` touch it.
    io: Mutex<IoState>,
    /// Serialises checkpoints.
    checkpointing: Mutex<()>,
    /// Set to stop the interval syncer.
    stop: Mutex<bool>,
    stop_cv: Condvar,
    /// Bytes handed to segment files since open (including rolled-back ones).
    written: std::sync::atomic::AtomicU64,
    /// Zeros written ahead of the current segment's data
    /// ([`IoState::end`] - [`IoState::size`]), readable without the I/O lock.
    ahead: std::sync::atomic::AtomicU64,
    /// Why the log cannot be written right now (`None`: it can); a mirror
    /// of [`IoState::broken`] readable without waiting for an fsync.
    health: Mutex<Option<String>>,
    /// What the log's records would take as format-1 frames.
    uncompressed: Mutex<Uncompressed>,
    /// Format-1 bytes of the records written since open (including
    /// rolled-back ones): follows [`Wal::uncompressed_bytes`]' growth.
    uncompressed_written: std::sync::atomic::AtomicU64,
}

/// Bytes the log's records would take if every record were a frame of the
/// uncompressed format-1 types ([`record::v1_frame_len`]), by file: the
/// quantity behind [`Wal::uncompressed_bytes`]. Rolled-back batches stay
/// counted until their segment is checkpointed: over-counting only makes
/// the bound looser. At open it is recomputed from the records replayed,
/// which gives the same sum (less any rolled-back batches).
#[derive(Debug, Default)]
struct Uncompressed {
    /// Of the checkpoint and of the segments found at open (`<= base_upto`).
    base: u64,
    base_upto: u64,
    /// Of each segment written since open (a batch that spans a segment cut
    /// counts in its last segment, which is checkpointed after the others).
    segs: std::collections::BTreeMap<u64, u64>,
}

impl Uncompressed {
    fn total(&self) -> u64 {
        self.segs.values().fold(self.base, |a, &b| a.saturating_add(b))
    }

    /// Checkpoint `upto` (of `ckpt` format-1 bytes) replaced the older
    /// checkpoint and every segment `<= upto`.
    fn checkpointed(&mut self, upto: u64, ckpt: u64) {
        if self.base_upto > upto {
            // Segments found at open outlive it: keep counting all of them.
            self.base = self.base.saturating_add(ckpt);
        } else {
            self.base = ckpt;
            self.base_upto = upto;
        }
        self.segs.retain(|&s, _| s > upto);
    }
}

struct CommitState {
    /// Frames queued for the next batch, and where each one ends in `buf`.
    buf: Vec<u8>,
    frame_ends: Vec<usize>,
    /// Sequence number of the last queued `log` call.
    next_seq: u64,
    /// Every `log` call with a sequence number up to this one is written.
    done_seq: u64,
    /// Format-1 bytes of the queued records ([`Uncompressed`]).
    uncompressed: u64,
    /// A caller is writing a batch right now.
    leader: bool,
    /// Batches started so far (written or failed); the one being written,
    /// if `leader`, is round `round`.
    round: u64,
    /// While `leader`: the last sequence number the batch being written
    /// carries.
    writing_upto: u64,
    /// Times a caller woke up in [`Inner::drive`], and callers asleep
    /// there now (the tests check that callers queued behind a batch are
    /// not woken by it, but one).
    #[cfg(test)]
    wakeups: u64,
    #[cfg(test)]
    asleep: u64,
    /// A call queued for the next batch needs it fsynced (not only
    /// [`Wal::log_relaxed`] calls).
    want_sync: bool,
    /// Batches written so far (each is one write, and one fsync under
    /// `EveryCommit`); fewer than `log` calls when commits were grouped.
    batches: u64,
    /// Batches that failed and callers of them that have not yet picked up
    /// their error.
    failures: Vec<FailedBatch>,
    closed: bool,
}

/// The `log` calls with sequence numbers `from..=to` were written in one
/// batch that failed: none of them is acknowledged.
struct FailedBatch {
    from: u64,
    to: u64,
    /// Callers that still have to collect the error.
    left: u64,
    err: Error,
}

/// Records encoded as log frames, ready for [`Wal::enqueue`]. Encoding
/// (and compressing) needs no lock: do it before taking any.
#[derive(Debug, Default)]
pub struct Encoded {
    frames: Vec<u8>,
    /// Where each record's frame ends in `frames`.
    ends: Vec<usize>,
    /// Format-1 bytes of the records ([`Uncompressed`]).
    uncompressed: u64,
}

impl Encoded {
    /// Encodes `records` in order. Errors: a record too large for one frame.
    pub fn new(records: &[Record]) -> Result<Encoded, Error> {
        let mut e = Encoded { frames: Vec::new(), ends: Vec::with_capacity(records.len()), uncompressed: 0 };
        for r in records {
            e.push(r)?;
        }
        Ok(e)
    }

    /// Appends one more record's frame.
    pub fn push(&mut self, record: &Record) -> Result<(), Error> {
        encode_frame(record, &mut self.frames).map_err(|n| WalError::RecordTooLarge { bytes: n as u64 })?;
        self.ends.push(self.frames.len());
        self.uncompressed += record::v1_frame_len(record);
        Ok(())
    }

    /// Appends `other`'s records after these (as if they had been pushed
    /// here, in order).
    ///
    /// ```
    /// use tidemark_storage::wal::{Encoded, Record, RefSample, RefSeries, Wal, WalOptions};
    /// use tidemark_storage::Labels;
    /// let dir = tempfile::tempdir().unwrap();
    /// let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    /// let series = Record::Series(vec![RefSeries { series_ref: 1, labels: Labels::new([("__name__", "up")]).unwrap() }]);
    /// let samples = Record::Samples(vec![RefSample { series_ref: 1, t: 1000, v: 1.0 }]);
    /// let mut first = Encoded::new(&[series.clone()]).unwrap();
    /// first.append(Encoded::new(&[samples.clone()]).unwrap());
    /// let ticket = wal.enqueue(first, true).unwrap().unwrap();
    /// wal.wait(ticket).unwrap();
    /// wal.close().unwrap();
    /// let mut records = Vec::new();
    /// Wal::replay(dir.path(), |r| records.push(r)).unwrap();
    /// assert_eq!(records, vec![series, samples]);
    /// ```
    pub fn append(&mut self, other: Encoded) {
        if self.ends.is_empty() {
            *self = other;
            return;
        }
        let base = self.frames.len();
        self.frames.extend_from_slice(&other.frames);
        self.ends.extend(other.ends.iter().map(|e| base + e));
        self.uncompressed += other.uncompressed;
    }

    /// Whether no record is encoded.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A queued [`Wal::enqueue`] call, to [`Wal::wait`] on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "queued records are written only when some caller waits"]
pub struct WalTicket(u64);

#[cfg(test)]
impl WalTicket {
    /// A ticket numbered `seq`, for test logs.
    pub(crate) fn for_tests(seq: u64) -> WalTicket {
        WalTicket(seq)
    }

    /// The number of a ticket made by [`WalTicket::for_tests`].
    pub(crate) fn for_tests_seq(self) -> u64 {
        self.0
    }
}

impl CommitState {
    fn check_writable(&self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The outcome of the `log` call `seq`, once its batch is done.
    fn outcome(&mut self, seq: u64) -> Result<(), Error> {
        let Some(i) = self.failures.iter().position(|f| f.from <= seq && seq <= f.to) else { return Ok(()) };
        let f = &mut self.failures[i];
        f.left -= 1;
        let err = f.err.clone();
        if f.left == 0 {
            self.failures.remove(i);
        }
        Err(err)
    }
}

/// The log cannot be appended to until [`Inner::repair_locked`] succeeds.
///
/// Invariant: everything acknowledged lies before the truncation points, so
/// a crash in this state loses nothing acknowledged (open cuts a torn tail).
struct Broken {
    /// Segments to cut back to a length: rolls a failed batch out of the log.
    truncate: Vec<(u64, u64)>,
    /// Continue in a new segment instead of the current one. Needed after a
    /// failed fsync (the kernel may have dropped dirty pages, so the file is
    /// not trusted) or EIO; not after ENOSPC, whose partial write the
    /// truncation removes completely.
    fresh_segment: bool,
    /// The failure, for logs and health reporting.
    reason: String,
}

struct IoState {
    file: Arc<dyn WritableFile>,
    /// Number of the segment being written.
    seg: u64,
    /// Its length in bytes: where the next frame is written.
    size: u64,
    /// The file's length: `size` plus the zeros written ahead of it (see
    /// [`Inner::write_locked`]).
    end: u64,
    /// Where the data write in progress (or the last one) ends: after a
    /// failure, frames before it may have landed.
    attempted: u64,
    /// Oldest segment on disk.
    first: u64,
    /// Written since the last fsync.
    dirty: bool,
    /// Set after a failed write or fsync; cleared by a successful repair.
    broken: Option<Broken>,
}

const HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;

/// Source of the zero fill.
static ZEROS: [u8; 256 << 10] = [0; 256 << 10];

impl Wal {
    /// Opens (creating) the WAL in `dir`. Truncates a torn tail of the
    /// newest segment at the last good record (with a `tracing::warn!`),
    /// repairs damage anywhere else without losing intact records (see
    /// [`Wal::open_and_replay_with_quarantine`]), deletes an unfinished
    /// checkpoint and leftovers of an interrupted one, then starts writing a
    /// NEW segment.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, Error> {
        Wal::open_and_replay(dir, opts, |_| {}).map(|(wal, _)| wal)
    }

    /// [`Wal::replay`] and [`Wal::open`] in one pass over the files: calls `f`
    /// for every committed record, then repairs and opens for writing.
    ///
    /// Damaged files (see [`WalDamage`]) are copied to `<dir>/damaged/`;
    /// use [`Wal::open_and_replay_with_quarantine`] to choose the place.
    pub fn open_and_replay(dir: &Path, opts: WalOptions, f: impl FnMut(Record)) -> Result<(Wal, ReplayStats), Error> {
        Wal::open_and_replay_with_quarantine(dir, opts, &dir.join("damaged"), f)
    }

    /// [`Wal::open_and_replay`], copying damaged files into a new
    /// `wal-<unix ms>` directory under `quarantine`. Damage in the middle of
    /// the log or in the checkpoint never stops the open: every intact
    /// record is replayed, the loss is reported in [`ReplayStats::damage`]
    /// (and logged at ERROR), and the log is rewritten as a fresh
    /// checkpoint of exactly what was replayed, so the next open is clean.
    pub fn open_and_replay_with_quarantine(
        dir: &Path,
        opts: WalOptions,
        quarantine: &Path,
        f: impl FnMut(Record),
    ) -> Result<(Wal, ReplayStats), Error> {
        Wal::open_and_replay_on(vfs::os(), dir, opts, quarantine, f)
    }

    /// [`Wal::open_and_replay_with_quarantine`] with every write going
    /// through `fs` (a [`vfs::FaultFs`] in tests).
    pub fn open_and_replay_on(
        fs: SharedFs,
        dir: &Path,
        opts: WalOptions,
        quarantine: &Path,
        mut f: impl FnMut(Record),
    ) -> Result<(Wal, ReplayStats), Error> {
        if opts.segment_size < MIN_SEGMENT_SIZE {
            return Err(Error::InvalidArgument(format!(
                "WAL segment_size {} is below the minimum {MIN_SEGMENT_SIZE}",
                opts.segment_size
            )));
        }
        if opts.sync == SyncPolicy::Interval(Duration::ZERO) {
            return Err(Error::InvalidArgument("WAL sync interval must be non-zero".into()));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut v1_at_open = 0u64;
        let mut out = replay_dir(dir, &mut |rec| {
            v1_at_open = v1_at_open.saturating_add(record::v1_frame_len(&rec));
            f(rec)
        })?;
        let mut listing = out.listing;
        let mut changed = false;
        for tmp in &listing.tmp_dirs {
            tracing::warn!(path = %tmp.display(), "removing unfinished WAL checkpoint");
            fs::remove_dir_all(tmp).map_err(|e| Error::io(tmp, e))?;
            changed = true;
        }
        let mut ckpt = out.stats.checkpoint;
        if let Some(damage) = &mut out.stats.damage {
            match recover::rewrite(&fs, dir, quarantine, &listing, opts.segment_size, damage) {
                Ok(upto) => {
                    tracing::error!(
                        dir = %dir.display(),
                        regions = damage.regions.len(),
                        records_skipped = damage.records_skipped,
                        samples_lost = damage.samples_lost,
                        orphan_samples = damage.orphan_samples,
                        orphan_series_refs = damage.orphan_series_refs,
                        lost_time_range = ?damage.lost_time_range,
                        quarantined_to = ?damage.quarantined_to,
                        recovery_checkpoint = upto,
                        "WAL damaged: skipped the damaged records, kept every intact one and rewrote the log as a checkpoint"
                    );
                    listing.checkpoints.push(upto);
                    ckpt = Some(upto);
                }
                Err(e) => {
                    // Fail safe: start with what was replayed. The damaged
                    // files stay where they are; the next open (or
                    // checkpoint) skips the same damage again.
                    tracing::error!(
                        dir = %dir.display(),
                        error = %e,
                        regions = damage.regions.len(),
                        records_skipped = damage.records_skipped,
                        samples_lost = damage.total_samples_lost(),
                        "WAL damaged and the repair failed: starting with every intact record, the damaged files are left in place"
                    );
                    if let Some(stop) = &out.stats.stopped_at {
                        repair(dir, stop, &mut listing)?;
                    }
                }
            }
        } else if let Some(stop) = &out.stats.stopped_at {
            repair(dir, stop, &mut listing)?;
        }
        if let Some(c) = ckpt {
            // Leftovers of a checkpoint whose cleanup was interrupted.
            for &s in listing.segments.iter().filter(|&&s| s <= c) {
                remove_file(&segment_path(dir, s))?;
                changed = true;
            }
            listing.segments.retain(|&s| s > c);
            for &old in listing.checkpoints.iter().filter(|&&o| o < c) {
                let p = checkpoint_path(dir, old);
                fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                changed = true;
            }
        }
        if changed {
            sync_dir(&*fs, dir)?;
        }
        // Everything replayed is in the checkpoint and segments below `next`.
        let next = listing.segments.last().copied().max(ckpt).map_or(1, |n| n + 1);
        let first = listing.segments.first().copied().unwrap_or(next);
        let (file, seg, size, broken) = match create_segment(&*fs, dir, next, opts.sync != SyncPolicy::Never) {
            Ok(f) => (Arc::<dyn WritableFile>::from(f), next, HEADER_LEN, None),
            // A full disk must not keep the database from opening (and
            // serving queries); the new segment is created by the first
            // write that finds room, as after any failed write. Until then
            // the handle of the last segment stands in, never written to.
            Err(Error::Io { source, .. })
                if vfs::is_no_space(&source) && listing.segments.last() == Some(&(next - 1)) =>
            {
                let last = next - 1;
                let path = segment_path(dir, last);
                let f = fs.open_write(&path).map_err(|e| Error::io(&path, e))?;
                let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
                tracing::error!(dir = %dir.display(), error = %source, "no space for a new WAL segment: writes fail until there is");
                let reason = format!("no space for a new WAL segment: {source}");
                (Arc::from(f), last, len, Some(Broken { truncate: Vec::new(), fresh_segment: true, reason }))
            }
            Err(e) => return Err(e),
        };
        let health = broken.as_ref().map(|b: &Broken| b.reason.clone());
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            quarantine: quarantine.to_path_buf(),
            fs,
            segment_size: opts.segment_size,
            sync: opts.sync,
            zero_ahead: opts.zero_ahead,
            commit: Mutex::new(CommitState {
                buf: Vec::new(),
                frame_ends: Vec::new(),
                next_seq: 0,
                done_seq: 0,
                uncompressed: 0,
                leader: false,
                round: 0,
                writing_upto: 0,
                #[cfg(test)]
                wakeups: 0,
                #[cfg(test)]
                asleep: 0,
                want_sync: false,
                batches: 0,
                failures: Vec::new(),
                closed: false,
            }),
            committed: [Condvar::new(), Condvar::new()],
            io: Mutex::new(IoState { file, seg, size, end: size, attempted: size, first, dirty: false, broken }),
            checkpointing: Mutex::new(()),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            written: std::sync::atomic::AtomicU64::new(0),
            ahead: std::sync::atomic::AtomicU64::new(0),
            health: Mutex::new(health),
            uncompressed: Mutex::new(Uncompressed { base: v1_at_open, base_upto: next - 1, segs: Default::default() }),
            uncompressed_written: std::sync::atomic::AtomicU64::new(0),
        });
        let syncer = match opts.sync {
            SyncPolicy::Interval(every) => {
                let inner = Arc::clone(&inner);
                let handle = std::thread::Builder::new()
                    .name("tidemark-wal-sync".into())
                    .spawn(move || inner.run_syncer(every))
                    .map_err(|e| Error::io(dir, e))?;
                Some(handle)
            }
            _ => None,
        };
        Ok((Wal { inner, syncer: Mutex::new(syncer) }, out.stats))
    }

    /// Reads everything committed: the newest complete checkpoint first (if
    /// any), then every later segment in order, calling `f` per record.
    /// Changes nothing on disk. A torn record at the end of the newest
    /// segment ends the read there ([`ReplayStats::stopped_at`], logged with
    /// `tracing::warn!`; [`Wal::open`] later truncates there). Damage
    /// anywhere else (a bad frame followed by more data, a bad frame in an
    /// older segment, a missing segment, a damaged checkpoint) is skipped and
    /// reported in [`ReplayStats::damage`] (each region logged at ERROR);
    /// every later record is still read. A missing directory replays as
    /// empty. Errors: I/O failures only.
    pub fn replay(dir: &Path, mut f: impl FnMut(Record)) -> Result<ReplayStats, Error> {
        replay_dir(dir, &mut f).map(|o| o.stats)
    }

    /// Logs records, in order, durably as the [`SyncPolicy`] says, and returns
    /// once they are written. Thread-safe; concurrent callers are batched
    /// into one write and one fsync (group commit), and each call's records
    /// stay contiguous and in order. Series records must come before the
    /// sample records that use them (callers pass them in that order).
    ///
    /// A failed write or fsync fails every call of its batch (nothing of it
    /// is acknowledged) and rolls the batch out of the log: the segment is
    /// truncated back to where the batch started. After a failed fsync (or
    /// EIO) writing continues in a new segment, since the kernel may have
    /// dropped the old one's dirty pages; after ENOSPC in the same one. When
    /// the roll-back itself fails (the disk is still full, the device still
    /// failing), the next call retries it first and fails with its error
    /// until it succeeds: the log heals by itself once the cause is gone.
    /// After [`Wal::close`]: [`Error::Closed`].
    pub fn log(&self, records: &[Record]) -> Result<(), Error> {
        self.log_with(records, true)
    }

    /// [`Wal::log`] without its fsync under [`SyncPolicy::EveryCommit`]: the
    /// records are written (so they survive the process being killed: they
    /// are in the page cache) and the next fsync (of a durable `log`, a
    /// segment cut, or close) makes them durable too. For data that can be
    /// recomputed, such as rule results, whose loss in a power failure costs
    /// one evaluation, not an acknowledged sample. Shares batches with
    /// concurrent durable calls (the batch is fsynced if any call needs it).
    pub fn log_relaxed(&self, records: &[Record]) -> Result<(), Error> {
        self.log_with(records, false)
    }

    fn log_with(&self, records: &[Record], durable: bool) -> Result<(), Error> {
        let encoded = Encoded::new(records)?;
        match self.enqueue(encoded, durable)? {
            Some(ticket) => self.wait(ticket),
            None => Ok(()),
        }
    }

    /// The first half of [`Wal::log`]: queues already encoded records for
    /// the next group-commit batch and returns at once, with the ticket to
    /// [`Wal::wait`] on (`None` when there was nothing to queue). Records
    /// reach the log in the order of `enqueue` calls, so a caller that
    /// needs its log order to match some other order (the head applies
    /// commits in log order) enqueues under its own lock and waits outside
    /// it: concurrent commits then share one write and one fsync instead
    /// of queueing behind each other's. The records are not written until
    /// some caller waits: every ticket must be waited on (or the log
    /// closed, which writes what is queued).
    ///
    /// ```
    /// use tidemark_storage::wal::{Encoded, Record, RefSample, Wal, WalOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    /// let rec = [Record::Samples(vec![RefSample { series_ref: 1, t: 1000, v: 1.0 }])];
    /// let ticket = wal.enqueue(Encoded::new(&rec).unwrap(), true).unwrap().unwrap();
    /// wal.wait(ticket).unwrap(); // written and fsynced
    /// ```
    pub fn enqueue(&self, encoded: Encoded, durable: bool) -> Result<Option<WalTicket>, Error> {
        let inner = &*self.inner;
        let mut st = inner.commit.lock();
        st.check_writable()?;
        if encoded.ends.is_empty() {
            return Ok(None);
        }
        let base = st.buf.len();
        st.want_sync |= durable;
        st.uncompressed += encoded.uncompressed;
        st.buf.extend_from_slice(&encoded.frames);
        st.frame_ends.extend(encoded.ends.iter().map(|e| base + e));
        st.next_seq += 1;
        Ok(Some(WalTicket(st.next_seq)))
    }

    /// The second half of [`Wal::log`]: returns once the records of
    /// `ticket` are written (and fsynced as the policy and the `durable`
    /// flag of their [`Wal::enqueue`] say), or with the error of the batch
    /// that carried them (then none of them is acknowledged, see
    /// [`Wal::log`]). The first waiter whose records are not yet written
    /// writes every queued record in one batch (group commit).
    pub fn wait(&self, ticket: WalTicket) -> Result<(), Error> {
        let mut st = self.inner.commit.lock();
        self.inner.drive(&mut st, ticket.0);
        st.outcome(ticket.0)
    }

    /// Closes the current segment (fsynced unless the policy is
    /// [`SyncPolicy::Never`]) and starts a new one; returns the number of the
    /// segment just closed. Every record acknowledged before this call is in
    /// a segment `<=` that number. Repairs the log first if an earlier
    /// failure left it unwritable; a failed fsync of the closed segment
    /// leaves it to be repaired by the next call.
    pub fn cut_segment(&self) -> Result<u64, Error> {
        self.inner.commit.lock().check_writable()?;
        let mut io = self.inner.io.lock();
        if io.broken.is_some() {
            self.inner.repair_locked(&mut io)?;
        }
        let closed = io.seg;
        match self.inner.cut_locked(&mut io) {
            Ok(()) => Ok(closed),
            Err((e, fresh_segment)) => {
                if fresh_segment {
                    let b = Broken { truncate: Vec::new(), fresh_segment, reason: e.to_string() };
                    self.inner.set_broken(&mut io, b);
                }
                Err(e)
            }
        }
    }

    /// Bytes written to segments since open: a cheap way to follow the
    /// log's growth between [`Wal::size_bytes`] calls.
    pub fn bytes_written(&self) -> u64 {
        self.inner.written.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the log cannot be written right now, or `None` when it can
    /// (the next [`Wal::log`] would try to write). Cheap: never waits for
    /// a write or fsync in progress.
    pub fn failure(&self) -> Option<String> {
        self.inner.health.lock().clone()
    }

    /// Retries the repair of a log an earlier failure left unwritable (see
    /// [`Wal::log`]); `Ok` when the log is writable afterwards. Maintenance
    /// calls this so writes resume even before the next commit.
    pub fn try_repair(&self) -> Result<(), Error> {
        let mut io = self.inner.io.lock();
        if io.broken.is_some() {
            self.inner.repair_locked(&mut io)?;
        }
        Ok(())
    }

    /// (first, last) segment numbers currently on disk; `last` is the one
    /// being written.
    pub fn segment_range(&self) -> (u64, u64) {
        let io = self.inner.io.lock();
        (io.first, io.seg)
    }

    /// Writes `checkpoint.<upto>` from the previous checkpoint and segments
    /// `<= upto`, keeping series records for which `keep_series(ref)` and
    /// samples with `t >= mint` of kept series; atomically (tmp dir, fsync,
    /// rename), then deletes segments `<= upto` and older checkpoints.
    ///
    /// `upto` must be below the segment being written (use the number
    /// [`Wal::cut_segment`] returned) and above the previous checkpoint.
    /// Writers are not blocked while the checkpoint is built. On error the
    /// temporary directory is removed and the log is unchanged.
    pub fn checkpoint(
        &self,
        upto: u64,
        keep_series: impl Fn(u64) -> bool,
        mint: i64,
    ) -> Result<CheckpointStats, Error> {
        let inner = &*self.inner;
        let _serial = inner.checkpointing.lock();
        let (first, current) = {
            let io = inner.io.lock();
            (io.first, io.seg)
        };
        if upto >= current {
            return Err(Error::InvalidArgument(format!(
                "cannot checkpoint up to segment {upto}: segment {current} is being written"
            )));
        }
        let listing = list_dir(&inner.dir)?;
        let prev = listing.checkpoints.last().copied();
        if prev.is_some_and(|p| upto <= p) || (prev.is_none() && upto < first) {
            return Err(Error::InvalidArgument(format!("WAL segments up to {upto} are already checkpointed")));
        }
        let mut stats = CheckpointStats { upto, size_before: self.size_bytes(), ..CheckpointStats::default() };
        let final_path = checkpoint_path(&inner.dir, upto);
        let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", final_path.display()));
        let res = inner.write_checkpoint(&tmp, prev, first, upto, &keep_series, mint, &mut stats);
        if let Err(e) = res {
            let _ = inner.fs.remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = inner.fs.rename(&tmp, &final_path) {
            let _ = inner.fs.remove_dir_all(&tmp);
            return Err(Error::io(&tmp, e));
        }
        sync_dir(&*inner.fs, &inner.dir)?;

        // The checkpoint is durable; what it replaces can go. A crash from
        // here on leaves leftovers that replay ignores and open deletes.
        inner.io.lock().first = upto + 1;
        inner.uncompressed.lock().checkpointed(upto, stats.uncompressed_bytes);
        for s in listing.segments.iter().filter(|&&s| s <= upto) {
            remove_file_on(&*inner.fs, &segment_path(&inner.dir, *s))?;
            stats.segments_removed += 1;
        }
        for &old in listing.checkpoints.iter().filter(|&&c| c < upto) {
            let p = checkpoint_path(&inner.dir, old);
            inner.fs.remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        sync_dir(&*inner.fs, &inner.dir)?;
        stats.size_after = self.size_bytes();
        Ok(stats)
    }

    /// Bytes of the log on disk: segments and checkpoints (including an
    /// unfinished one), not counting the zeros written ahead of the current
    /// segment's data ([`WalOptions::zero_ahead`]; the directory's files
    /// take up to that much more).
    pub fn size_bytes(&self) -> u64 {
        let ahead = self.inner.ahead.load(std::sync::atomic::Ordering::Relaxed);
        dir_size(&self.inner.dir).saturating_sub(ahead)
    }

    /// What the log's records would take as frames of the uncompressed
    /// format-1 types, or [`Wal::size_bytes`] if that is more: the quantity
    /// size retention bounds maintenance's writes by (`docs/retention.md`).
    /// Compression does not shrink it: it counts per series its reference
    /// and labels in full, per sample its deltas and an 8-byte value, per
    /// histogram sample its type-5 columns uncompressed (histograms have no
    /// format-1 type). Recomputed from the records at open.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.size_bytes().max(self.inner.uncompressed.lock().total())
    }

    /// [`Wal::bytes_written`] in the terms of [`Wal::uncompressed_bytes`]:
    /// follows that quantity's growth between calls.
    pub fn uncompressed_bytes_written(&self) -> u64 {
        self.inner.uncompressed_written.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for in-flight writes, stops the interval syncer and fsyncs the
    /// current segment (unless the policy is [`SyncPolicy::Never`]). Later
    /// [`Wal::log`] calls return [`Error::Closed`]. Idempotent.
    ///
    /// A log left unwritable by an earlier failure is repaired if possible;
    /// if not, that is logged but not an error: what remains to repair is
    /// the unacknowledged tail of a failed batch, which the next open cuts
    /// away. Errors: the final fsync of acknowledged records failed.
    pub fn close(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        {
            let mut st = inner.commit.lock();
            st.closed = true;
            // Writes what is queued even if no caller waits for it.
            let upto = st.next_seq;
            inner.drive(&mut st, upto);
        }
        if let Err(e) = self.try_repair() {
            tracing::warn!(error = %e, "closing the WAL with an unrepaired failed write; the next open cuts its tail");
            self.stop_syncer();
            return Ok(());
        }
        self.stop_syncer();
        if inner.sync != SyncPolicy::Never {
            inner.sync_if_dirty()?;
        }
        let mut io = inner.io.lock();
        inner.trim_locked(&mut io);
        Ok(())
    }

    fn stop_syncer(&self) {
        *self.inner.stop.lock() = true;
        self.inner.stop_cv.notify_all();
        if let Some(h) = self.syncer.lock().take() {
            // The syncer never panics; a join error would only repeat a panic.
            let _ = h.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: errors have nowhere to go; close() reports them.
        let _ = self.close();
        self.stop_syncer();
    }
}

/// Whether a failure must move writing to a fresh segment: after any fsync
/// failure and after write errors other than "no space" (see [`Broken`]).
fn needs_fresh_segment(e: &io::Error, during_sync: bool) -> bool {
    during_sync || !vfs::is_no_space(e)
}

impl Inner {
    /// Returns once every `enqueue` call up to sequence number `upto` is
    /// written (successfully or not): waits while another caller leads a
    /// batch, else leads one itself, writing everything queued so far.
    fn drive(&self, st: &mut parking_lot::MutexGuard<'_, CommitState>, upto: u64) {
        while st.done_seq < upto {
            if st.leader {
                // Carried by the batch being written: wait for it to end.
                // Queued behind it: wait on the next round's condvar, where
                // one caller is woken to lead when this batch ends.
                let round = if upto <= st.writing_upto { st.round } else { st.round + 1 };
                #[cfg(test)]
                {
                    st.asleep += 1;
                }
                self.committed[(round % 2) as usize].wait(st);
                #[cfg(test)]
                {
                    st.asleep -= 1;
                    st.wakeups += 1;
                }
                continue;
            }
            // Become the leader: write everything queued so far, ours included.
            st.leader = true;
            st.round += 1;
            let round = st.round;
            let first_seq = st.done_seq + 1;
            let batch_seq = st.next_seq;
            st.writing_upto = batch_seq;
            let buf = mem::take(&mut st.buf);
            let ends = mem::take(&mut st.frame_ends);
            let sync = mem::take(&mut st.want_sync);
            let uncompressed = mem::take(&mut st.uncompressed);
            let res = parking_lot::MutexGuard::unlocked(st, || self.write_batch(&buf, &ends, sync, uncompressed));
            st.leader = false;
            st.done_seq = batch_seq;
            match res {
                Ok(()) => st.batches += 1,
                Err(err) => {
                    tracing::error!(error = %err, "WAL write failed; the commits of this batch are not acknowledged");
                    let left = batch_seq - first_seq + 1;
                    st.failures.push(FailedBatch { from: first_seq, to: batch_seq, left, err });
                }
            }
            if st.buf.is_empty() && st.buf.capacity() < buf.capacity() {
                // Keep the larger buffer for the next batch.
                let mut buf = buf;
                buf.clear();
                st.buf = buf;
            }
            // One caller queued behind this batch (if any waits already),
            // to lead the next batch: woken first, so that it queues for the
            // lock ahead of the callers this batch carried, all woken next.
            // A caller that queues later and finds no leader leads by itself.
            if st.next_seq > st.done_seq {
                self.committed[((round + 1) % 2) as usize].notify_one();
            }
            self.committed[(round % 2) as usize].notify_all();
        }
    }

    /// Writes a batch of frames (cutting segments as they fill) and fsyncs
    /// per policy. Called by the group-commit leader only. On failure the
    /// batch is rolled out of the log (see [`Wal::log`]).
    fn write_batch(&self, buf: &[u8], ends: &[usize], sync: bool, uncompressed: u64) -> Result<(), Error> {
        let mut io = self.io.lock();
        if io.broken.is_some() {
            self.repair_locked(&mut io)?;
        }
        let (start_seg, start_size) = (io.seg, io.size);
        io.attempted = io.size;
        let res = self.write_frames(&mut io, buf, ends, sync);
        // Counted whether or not the write succeeded: a failed batch is
        // rolled back, but over-counting it is safe (see `Uncompressed`). A
        // batch that ended in a later segment counts there.
        *self.uncompressed.lock().segs.entry(io.seg).or_default() += uncompressed;
        self.uncompressed_written.fetch_add(uncompressed, std::sync::atomic::Ordering::Relaxed);
        let Err((err, mut fresh_segment)) = res else { return Ok(()) };
        // A reader tailing the log may already have consumed a complete
        // frame of the failed batch; writing different frames at the same
        // offset would then corrupt its position. Reuse the segment only if
        // no complete frame landed (the usual ENOSPC: the first frame torn).
        if !fresh_segment {
            // What may have landed: at most what a data write was attempted
            // for (a failed zero fill lands nothing; zeros written ahead
            // make the file's length say nothing), and at most what the
            // file holds (a write that grew the file and was cut short).
            let len = fs::metadata(segment_path(&self.dir, io.seg)).map_or(u64::MAX, |m| m.len());
            let landed = io.attempted.min(len).saturating_sub(start_size);
            let first_frame = ends.first().copied().unwrap_or(0) as u64;
            fresh_segment = io.seg != start_seg || landed >= first_frame;
        }
        let truncate =
            (start_seg..=io.seg).map(|s| (s, if s == start_seg { start_size } else { HEADER_LEN })).collect();
        self.set_broken(&mut io, Broken { truncate, fresh_segment, reason: err.to_string() });
        // Roll back at once: after ENOSPC the truncation frees the space, so
        // this usually succeeds and the next commit finds a healthy log.
        if let Err(e) = self.repair_locked(&mut io) {
            tracing::warn!(error = %e, "rolling back a failed WAL write failed; retried by the next write");
        }
        Err(err)
    }

    /// The failure's error, and whether it requires a fresh segment.
    fn write_frames(&self, io: &mut IoState, buf: &[u8], ends: &[usize], sync: bool) -> Result<(), (Error, bool)> {
        let (mut start, mut prev) = (0usize, 0usize);
        for &end in ends {
            let queued = (prev - start) as u64;
            let len = (end - prev) as u64;
            // Never split a record; start a new segment if this one has data
            // and the record would overflow it.
            if io.size + queued > HEADER_LEN && io.size + queued + len > self.segment_size {
                self.write_locked(io, &buf[start..prev])?;
                self.cut_locked(io)?;
                start = prev;
            }
            prev = end;
        }
        self.write_locked(io, &buf[start..prev])?;
        if self.sync == SyncPolicy::EveryCommit && sync {
            io.file.sync_data().map_err(|e| (self.seg_err(io.seg, e), true))?;
            io.dirty = false;
        }
        Ok(())
    }

    /// Writes `bytes` at the end of the segment's data. The file is kept
    /// ahead of the data with written zeros ([`WalOptions::zero_ahead`]), so
    /// most writes overwrite blocks that exist and are initialised and
    /// leave the file's length alone: their `fdatasync` then writes only
    /// the data, not the inode and the extent map as an append would
    /// (readers already take a zero tail as the end of the data).
    fn write_locked(&self, io: &mut IoState, bytes: &[u8]) -> Result<(), (Error, bool)> {
        if bytes.is_empty() {
            return Ok(());
        }
        let fail = |io: &IoState, e: io::Error| {
            let fresh = needs_fresh_segment(&e, false);
            (self.seg_err(io.seg, e), fresh)
        };
        io.dirty = true;
        let end = io.size + bytes.len() as u64;
        if end > io.end && self.zero_ahead > 0 {
            // Up to `zero_ahead` past this write, and not past the segment
            // size unless this write itself is.
            let target = (end + self.zero_ahead).min(self.segment_size.max(end));
            while io.end < target {
                let n = (target - io.end).min(ZEROS.len() as u64) as usize;
                match io.file.write_at(&ZEROS[..n], io.end) {
                    Ok(()) => io.end += n as u64,
                    // A nearly full disk has no room for the zeros ahead,
                    // which this write does not need: it grows the file as
                    // an append would (bytes of a partial zero write past
                    // `end` only lengthen the zero tail).
                    Err(e) if vfs::is_no_space(&e) => break,
                    Err(e) => return Err(fail(io, e)),
                }
            }
        }
        io.attempted = end;
        io.file.write_at(bytes, io.size).map_err(|e| fail(io, e))?;
        io.size = end;
        io.end = io.end.max(end);
        self.ahead.store(io.end - io.size, std::sync::atomic::Ordering::Relaxed);
        self.written.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Cuts the zeros written ahead of the current segment's data (a closed
    /// segment then has its exact length). Best effort: a zero tail that
    /// stays, or comes back after a crash, reads as the end of the data.
    fn trim_locked(&self, io: &mut IoState) {
        if io.end > io.size && io.broken.is_none() {
            match io.file.set_len(io.size) {
                Ok(()) => {
                    io.end = io.size;
                    self.ahead.store(0, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(segment = io.seg, error = %e, "could not cut a WAL segment's zero tail"),
            }
        }
    }

    /// Closes the current segment and starts the next. If creating the next
    /// one fails, writing simply continues in the current one (nothing is
    /// lost, `Ok` is not returned); a failed fsync of the current one needs a
    /// fresh segment (the `bool`).
    fn cut_locked(&self, io: &mut IoState) -> Result<(), (Error, bool)> {
        let sync = self.sync != SyncPolicy::Never;
        if sync {
            io.file.sync_data().map_err(|e| (self.seg_err(io.seg, e), true))?;
        }
        let next = io.seg + 1;
        let file = create_segment(&*self.fs, &self.dir, next, sync).map_err(|e| (e, false))?;
        self.trim_locked(io);
        io.file = Arc::from(file);
        io.seg = next;
        io.size = HEADER_LEN;
        io.end = HEADER_LEN;
        io.attempted = HEADER_LEN;
        io.dirty = false;
        self.ahead.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn set_broken(&self, io: &mut IoState, b: Broken) {
        *self.health.lock() = Some(b.reason.clone());
        match &mut io.broken {
            // A second failure before the first was repaired: keep the
            // earliest truncation point of each segment.
            Some(old) => {
                for (seg, len) in b.truncate {
                    match old.truncate.iter_mut().find(|(s, _)| *s == seg) {
                        Some(t) => t.1 = t.1.min(len),
                        None => old.truncate.push((seg, len)),
                    }
                }
                old.fresh_segment |= b.fresh_segment;
                old.reason = b.reason;
            }
            None => io.broken = Some(b),
        }
    }

    /// Rolls failed writes out of the log and, if needed, moves writing to a
    /// new segment; clears [`IoState::broken`] on success. Idempotent: on
    /// failure everything stays recorded for the next attempt.
    fn repair_locked(&self, io: &mut IoState) -> Result<(), Error> {
        let Some(b) = &io.broken else { return Ok(()) };
        let sync = self.sync != SyncPolicy::Never;
        let res = (|| {
            for &(seg, len) in &b.truncate {
                let path = segment_path(&self.dir, seg);
                let cut = |f: &dyn WritableFile| f.set_len(len).and_then(|()| if sync { f.sync_all() } else { Ok(()) });
                let r = if seg == io.seg { cut(&*io.file) } else { self.fs.open_write(&path).and_then(|f| cut(&*f)) };
                r.map_err(|e| Error::io(&path, e))?;
            }
            if b.fresh_segment {
                let next = io.seg + 1;
                // A leftover of an earlier attempt never held acknowledged data.
                remove_file_on(&*self.fs, &segment_path(&self.dir, next))?;
                let file = create_segment(&*self.fs, &self.dir, next, sync)?;
                Ok(Some((Arc::<dyn WritableFile>::from(file), next)))
            } else {
                Ok(None)
            }
        })();
        match res {
            Ok(fresh) => {
                let current_len = b.truncate.iter().find(|(s, _)| *s == io.seg).map(|&(_, l)| l);
                if let Some((file, next)) = fresh {
                    io.file = file;
                    io.seg = next;
                    io.size = HEADER_LEN;
                    io.end = HEADER_LEN;
                } else if let Some(len) = current_len {
                    io.size = len;
                    io.end = len;
                }
                io.attempted = io.size;
                self.ahead.store(0, std::sync::atomic::Ordering::Relaxed);
                io.dirty = false;
                tracing::info!(reason = %b.reason, segment = io.seg, "WAL repaired after a failed write; writes resume");
                io.broken = None;
                *self.health.lock() = None;
                Ok(())
            }
            Err(e) => {
                *self.health.lock() = Some(format!("{} (repair failed: {e})", b.reason));
                Err(e)
            }
        }
    }

    /// fsyncs the current segment if it was written since the last fsync.
    /// A failure leaves the log to be continued in a fresh segment.
    fn sync_if_dirty(&self) -> Result<(), Error> {
        let (file, seg) = {
            let mut io = self.io.lock();
            if !io.dirty {
                return Ok(());
            }
            io.dirty = false;
            (Arc::clone(&io.file), io.seg)
        };
        // Outside the lock so writers are not blocked by the fsync.
        match file.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = self.seg_err(seg, e);
                let mut io = self.io.lock();
                if io.seg == seg {
                    let b = Broken { truncate: Vec::new(), fresh_segment: true, reason: err.to_string() };
                    self.set_broken(&mut io, b);
                }
                Err(err)
            }
        }
    }

    fn run_syncer(&self, every: Duration) {
        let mut stop = self.stop.lock();
        while !*stop {
            self.stop_cv.wait_for(&mut stop, every);
            if *stop {
                break;
            }
            let res = parking_lot::MutexGuard::unlocked(&mut stop, || self.sync_if_dirty());
            if let Err(e) = res {
                tracing::error!(error = %e, "WAL background fsync failed: records acknowledged since the last fsync may be lost on power failure; continuing in a new segment");
            }
        }
    }

    fn seg_err(&self, seg: u64, e: io::Error) -> Error {
        Error::io(segment_path(&self.dir, seg), e)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_checkpoint(
        &self,
        tmp: &Path,
        prev: Option<u64>,
        first: u64,
        upto: u64,
        keep_series: &dyn Fn(u64) -> bool,
        mint: i64,
        stats: &mut CheckpointStats,
    ) -> Result<(), Error> {
        if tmp.exists() {
            self.fs.remove_dir_all(tmp).map_err(|e| Error::io(tmp, e))?;
        }
        self.fs.create_dir(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut w = CheckpointWriter::new(self.fs.clone(), tmp, self.segment_size)?;
        let mut failed: Option<Error> = None;
        let mut on_record = |rec: Record| {
            if failed.is_some() {
                return;
            }
            let kept = match rec {
                Record::Series(mut s) => {
                    let n = s.len() as u64;
                    s.retain(|s| keep_series(s.series_ref));
                    stats.series_kept += s.len() as u64;
                    stats.series_dropped += n - s.len() as u64;
                    Record::Series(s)
                }
                Record::Samples(mut s) => {
                    let n = s.len() as u64;
                    s.retain(|s| s.t >= mint && keep_series(s.series_ref));
                    stats.samples_kept += s.len() as u64;
                    stats.samples_dropped += n - s.len() as u64;
                    Record::Samples(s)
                }
                Record::HistogramSamples(mut s) => {
                    let n = s.len() as u64;
                    s.retain(|s| s.t >= mint && keep_series(s.series_ref));
                    stats.samples_kept += s.len() as u64;
                    stats.samples_dropped += n - s.len() as u64;
                    Record::HistogramSamples(s)
                }
                // Kept as Prometheus keeps them (`wlog/checkpoint.go`): the
                // ones not older than `mint`, here also only of kept series.
                Record::Exemplars(mut e) => {
                    e.retain(|e| e.t >= mint && keep_series(e.series_ref));
                    Record::Exemplars(e)
                }
            };
            if let Err(e) = w.write(&kept) {
                failed = Some(e);
            }
        };
        let from = prev.map_or(first, |c| c + 1);
        let damage = recover::read_for_checkpoint(&self.dir, prev, from, upto, &mut on_record)?;
        if let Some(mut d) = damage {
            recover::copy_damaged(&self.dir, &self.quarantine, &mut d)?;
            tracing::error!(
                dir = %self.dir.display(),
                regions = d.regions.len(),
                records_skipped = d.records_skipped,
                samples_lost = d.total_samples_lost(),
                quarantined_to = ?d.quarantined_to,
                "damaged WAL records skipped while checkpointing; the checkpoint keeps every intact record"
            );
            stats.damage = Some(d);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        stats.uncompressed_bytes = w.uncompressed;
        w.finish()?;
        sync_dir(&*self.fs, tmp)
    }
}

/// Writes checkpoint segments (numbered from 0) into a directory.
struct CheckpointWriter {
    fs: SharedFs,
    dir: PathBuf,
    segment_size: u64,
    seg: u64,
    out: BufWriter<FileWriter>,
    size: u64,
    frame: Vec<u8>,
    /// Format-1 bytes ([`Uncompressed`]) of the records written.
    uncompressed: u64,
    /// Write empty records too (a recovery checkpoint reproduces a replay
    /// exactly); a regular checkpoint leaves them out.
    keep_empty: bool,
}

impl CheckpointWriter {
    fn new(fs: SharedFs, dir: &Path, segment_size: u64) -> Result<CheckpointWriter, Error> {
        let file = create_segment(&*fs, dir, 0, false)?;
        Ok(CheckpointWriter {
            fs,
            dir: dir.to_path_buf(),
            segment_size,
            seg: 0,
            out: BufWriter::with_capacity(1 << 20, FileWriter(file)),
            size: HEADER_LEN,
            frame: Vec::new(),
            uncompressed: 0,
            keep_empty: false,
        })
    }

    fn write(&mut self, rec: &Record) -> Result<(), Error> {
        let empty = match rec {
            Record::Series(s) => s.is_empty(),
            Record::Samples(s) => s.is_empty(),
            Record::HistogramSamples(s) => s.is_empty(),
            Record::Exemplars(e) => e.is_empty(),
        };
        if empty && !self.keep_empty {
            return Ok(());
        }
        self.frame.clear();
        encode_frame(rec, &mut self.frame).map_err(|n| WalError::RecordTooLarge { bytes: n as u64 })?;
        let len = self.frame.len() as u64;
        self.uncompressed += record::v1_frame_len(rec);
        if self.size > HEADER_LEN && self.size + len > self.segment_size {
            self.sync_current()?;
            self.seg += 1;
            let file = create_segment(&*self.fs, &self.dir, self.seg, false)?;
            self.out = BufWriter::with_capacity(1 << 20, FileWriter(file));
            self.size = HEADER_LEN;
        }
        self.out.write_all(&self.frame).map_err(|e| Error::io(segment_path(&self.dir, self.seg), e))?;
        self.size += len;
        Ok(())
    }

    fn sync_current(&mut self) -> Result<(), Error> {
        let path = segment_path(&self.dir, self.seg);
        self.out.flush().map_err(|e| Error::io(&path, e))?;
        self.out.get_ref().0.sync_all().map_err(|e| Error::io(&path, e))
    }

    fn finish(mut self) -> Result<(), Error> {
        self.sync_current()
    }
}

struct ReplayOutcome {
    stats: ReplayStats,
    listing: Listing,
}

fn count(stats: &mut ReplayStats, rec: &Record) {
    stats.records += 1;
    match rec {
        Record::Series(s) => stats.series += s.len() as u64,
        Record::Samples(s) => stats.samples += s.len() as u64,
        Record::HistogramSamples(s) => stats.samples += s.len() as u64,
        Record::Exemplars(e) => stats.exemplars += e.len() as u64,
    }
}

fn replay_dir(dir: &Path, f: &mut dyn FnMut(Record)) -> Result<ReplayOutcome, Error> {
    let out = recover::read_all(dir, f)?;
    if let Some(e) = &out.stats.stopped_at {
        tracing::warn!(dir = %dir.display(), error = %e, "WAL replay stopped at a torn record at the end of the log");
    }
    if let Some(d) = &out.stats.damage {
        for r in &d.regions {
            tracing::error!(file = %r.file.display(), offset = r.offset, bytes = r.len, reason = %r.reason, "damaged WAL records skipped");
        }
    }
    Ok(ReplayOutcome { stats: out.stats, listing: out.listing })
}

/// Reads every record of checkpoint `c`; any damage is an error.
fn read_checkpoint(dir: &Path, c: u64, f: &mut dyn FnMut(Record), stats: &mut ReplayStats) -> Result<(), Error> {
    let cdir = checkpoint_path(dir, c);
    let inner = list_dir(&cdir)?;
    for (i, &s) in inner.segments.iter().enumerate() {
        if s != i as u64 {
            return Err(WalError::CorruptCheckpoint {
                checkpoint: c,
                segment: i as u64,
                offset: 0,
                reason: "checkpoint segment missing".into(),
            }
            .into());
        }
        let mut counted = |rec: Record| {
            count(stats, &rec);
            f(rec)
        };
        let scan = scan_segment(&segment_path(&cdir, s), &mut counted)?;
        if let ScanEnd::Stopped(reason) = scan.end {
            return Err(
                WalError::CorruptCheckpoint { checkpoint: c, segment: s, offset: scan.valid_len, reason }.into()
            );
        }
    }
    Ok(())
}

/// Truncates a torn tail: the newest segment is cut back to its last good
/// record. (Replay only reports a stop there; later segments cannot exist,
/// and are deleted if they somehow do.)
fn repair(dir: &Path, stop: &WalError, listing: &mut Listing) -> Result<(), Error> {
    let WalError::Corrupt { segment, offset, .. } = *stop else { return Ok(()) };
    tracing::warn!(dir = %dir.display(), error = %stop, "repairing WAL: truncating at the last good record and deleting later segments");
    for &s in listing.segments.iter().filter(|&&s| s > segment) {
        remove_file(&segment_path(dir, s))?;
    }
    listing.segments.retain(|&s| s <= segment);
    if listing.segments.last() == Some(&segment) {
        let path = segment_path(dir, segment);
        let io_err = |e| Error::io(&path, e);
        let mut f = OpenOptions::new().write(true).open(&path).map_err(io_err)?;
        if offset < HEADER_LEN {
            // Not even the header survived: make it a valid empty segment.
            f.set_len(0).map_err(io_err)?;
            f.write_all(&SEGMENT_HEADER).map_err(io_err)?;
        } else {
            f.set_len(offset).map_err(io_err)?;
        }
        f.sync_all().map_err(io_err)?;
    }
    sync_dir(&vfs::OsFs, dir)
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn remove_file_on(fs: &dyn vfs::FileSystem, path: &Path) -> Result<(), Error> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
