//! The database facade: open a data directory, append, query, and keep the
//! disk tidy (head persistence, compaction, retention) in the background.
//!
//! Layout of a data directory:
//!
//! ```text
//! <dir>/lock            exclusive lock held while open
//! <dir>/tidemark.json   format-affecting options (block range), fixed at creation
//! <dir>/wal/            write-ahead log segments and checkpoints (and
//!                       wal/holds/: readers' holds on segments)
//! <dir>/<block id>/     immutable blocks (meta.json, index, chunks/)
//! <dir>/quarantine/     damaged files moved aside: blocks that failed to
//!                       open or had damaged chunks cut out, WAL files
//! <dir>/deleted_before  the retention floor (floor.rs)
//! ```
//!
//! Every write goes through the file layer ([`crate::vfs`]). A failed
//! write never stops ingestion for good: see `docs/durability.md`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::block::chunks::MAX_CHUNK_FILE_SIZE;
use crate::block::{self, Block, BlockMeta, BlockWriteOptions, CompactionMeta};
use crate::chunkenc::{ChunkSeries, Encoding};
use crate::damage::{self, DamageLog, DamageReport, QuarantinedBlock};
use crate::head::{CommitLog, Head, HeadAppender, HeadChunks, HeadOptions};
use crate::histogram::HistogramValue;
use crate::querier::{Querier, SeriesSource};
use crate::retention::{self, BlockInfo};
use crate::vfs::{self, FileSystem, SharedFs};
use crate::wal::{checkpoint_bound, Encoded, Record, SyncPolicy, Wal, WalHold, WalHolds, WalOptions, WalTicket};
use crate::{compact, floor, AppendError, Error, Labels, Matcher, NameValidation};

mod scrub;
mod segment_times;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// See [`Options::pressure_lag_ms`]: one minute covers the usual scrape
/// intervals and remote-write delays.
const PRESSURE_LAG_MS: i64 = 60_000;
/// Room left on the file system that size retention does not plan to use
/// (other writers, file system overhead).
const FREE_SPACE_MARGIN: u64 = 1 << 20;
/// Upper bound of WAL bytes per appended sample used to admit a batch
/// (varint deltas and an 8-byte value, plus room for a series record).
const WAL_BYTES_PER_SAMPLE_BOUND: u64 = 32;
/// How often commits re-measure the directory under a size limit.
const MEASURE_EVERY: Duration = Duration::from_millis(250);

/// Options of a database. Every field documents its default and unit.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time span of the head's chunks and of the smallest blocks, in ms.
    /// Default: 2 hours. Recorded in the data directory at creation; a
    /// different value at a later open is ignored with a warning.
    pub block_range: i64,
    /// Largest block compaction produces, in ms. Default: 10% of
    /// `retention_time` (at least `block_range`, at most 31 days), or 31 days
    /// without time retention.
    pub max_block_range: Option<i64>,
    /// Delete blocks whose samples are all older than this, measured back
    /// from the newest sample. Default: 15 days. `None` keeps data forever.
    pub retention_time: Option<Duration>,
    /// Keep everything in the data directory (blocks, WAL, checkpoints,
    /// quarantine, temporary files of a block or checkpoint being written)
    /// under this many bytes — or under what the file system has room for,
    /// if that is less. See `docs/retention.md`. Default: none.
    pub retention_size: Option<u64>,
    /// Accept samples up to this far behind the newest sample even when they
    /// are older than their series' last sample. Default: 0 (disabled).
    pub out_of_order_window: Duration,
    /// When committed samples are fsynced. Default: every commit.
    pub wal_sync: SyncPolicy,
    /// WAL segment size in bytes. Default: 128 MiB.
    pub wal_segment_size: u64,
    /// Zeros the WAL keeps written ahead of its data
    /// ([`crate::wal::WalOptions::zero_ahead`]): commits then overwrite
    /// instead of growing the file, and their fsync writes no metadata. 0:
    /// every commit grows the file. With a size limit
    /// ([`Options::retention_size`]) at most 1/64 of it. Default: 4 MiB.
    pub wal_zero_ahead: u64,
    /// Samples per head chunk before a new one is cut. Default: 120.
    pub samples_per_chunk: usize,
    /// How block chunks are encoded. Default: [`Encoding::Sealed`].
    pub block_encoding: Encoding,
    /// Which label and metric names are accepted. Default: UTF-8 (Prometheus 3.x).
    pub name_validation: NameValidation,
    /// How often the background thread persists the head, compacts and
    /// applies retention. Default: 30 s. `None` disables the thread: call
    /// [`Db::maintain`] yourself.
    pub maintenance_interval: Option<Duration>,
    /// Most bytes of WAL segments kept for [`Db::hold_wal`] readers beyond
    /// what the database itself needs; older unread segments are deleted
    /// anyway (the reader sees a skip). Default: 1 GiB; under a size limit
    /// at most a sixteenth of the limit.
    pub wal_hold_max_bytes: u64,
    /// How often a background thread verifies every block (every chunk's
    /// CRC32-C and the index's checksums). The first scrub starts
    /// [`SCRUB_FIRST_DELAY`] after open (or after one interval, if that is
    /// shorter). Damaged chunks are logged at ERROR, counted, left out of
    /// queries and cut out of their block at the next maintenance.
    /// Default: 24 hours. `None` disables the thread ([`Db::scrub`] still
    /// works, and reads still verify every chunk they touch).
    pub scrub_interval: Option<Duration>,
    /// Most bytes per second a background scrub reads, so it does not
    /// compete with ingestion and queries. Default: 64 MiB/s. 0: unlimited.
    pub scrub_bytes_per_sec: u64,
    /// The file layer every write goes through. Default: the operating
    /// system's ([`vfs::OsFs`]); tests pass a [`vfs::FaultFs`].
    pub file_system: SharedFs,
    /// Most exemplars kept, in one ring shared by all series (Prometheus'
    /// `--storage.exemplars.exemplars-limit`). 0 disables exemplar storage.
    /// Memory: [`crate::exemplar::BYTES_PER_EXEMPLAR`] per exemplar plus its
    /// labels. Default: [`crate::exemplar::DEFAULT_MAX_EXEMPLARS`] (100 000).
    pub max_exemplars: usize,
}

/// Delay between open and the first background scrub (unless
/// [`Options::scrub_interval`] is shorter): 5 minutes.
pub const SCRUB_FIRST_DELAY: Duration = Duration::from_secs(300);

impl Default for Options {
    fn default() -> Options {
        Options {
            block_range: 2 * HOUR_MS,
            max_block_range: None,
            retention_time: Some(Duration::from_secs(15 * 24 * 3600)),
            retention_size: None,
            out_of_order_window: Duration::ZERO,
            wal_sync: SyncPolicy::EveryCommit,
            wal_segment_size: 128 << 20,
            wal_zero_ahead: crate::wal::DEFAULT_ZERO_AHEAD,
            samples_per_chunk: 120,
            block_encoding: Encoding::Sealed,
            name_validation: NameValidation::Utf8,
            maintenance_interval: Some(Duration::from_secs(30)),
            wal_hold_max_bytes: 1 << 30,
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
            scrub_bytes_per_sec: 64 << 20,
            file_system: vfs::os(),
            max_exemplars: crate::exemplar::DEFAULT_MAX_EXEMPLARS,
        }
    }
}

impl Options {
    fn retention_ms(&self) -> Option<i64> {
        self.retention_time.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn ooo_window_ms(&self) -> i64 {
        i64::try_from(self.out_of_order_window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Under size pressure the head is persisted up to this far behind its
    /// newest sample: later samples older than that are refused as too old.
    fn pressure_lag_ms(&self) -> i64 {
        self.ooo_window_ms().max(PRESSURE_LAG_MS)
    }

    fn effective_max_block_range(&self) -> i64 {
        let cap = 31 * DAY_MS;
        let m = match (self.max_block_range, self.retention_ms()) {
            (Some(m), _) => m,
            (None, Some(r)) => (r / 10).min(cap),
            (None, None) => cap,
        };
        m.max(self.block_range)
    }
}

/// Data directory format this code reads and writes (`docs/format/datadir.md`):
/// 4 since the WAL's exemplar record type 6 (3: histograms, 2: compressed
/// record types 3 and 4). A directory of a
/// higher version is refused at open ([`Error::UnsupportedFormat`]) before
/// anything in it is read, so records this code does not know are never
/// taken for damage; a lower one is raised to it before the WAL is written.
pub(crate) const FORMAT_VERSION: u32 = 4;

/// Format-affecting options, stored in `<dir>/tidemark.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFormat {
    format_version: u32,
    block_range_ms: i64,
}

/// Builds a [`Db`].
///
/// ```
/// use std::time::Duration;
/// use tidemark_storage::Db;
/// let dir = tempfile::tempdir().unwrap();
/// let db = Db::builder(dir.path())
///     .retention_time(Some(Duration::from_secs(7 * 24 * 3600)))
///     .retention_size(Some(10 << 30))
///     .open()
///     .unwrap();
/// db.close().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct DbBuilder {
    dir: Option<PathBuf>,
    opts: Options,
}

impl DbBuilder {
    /// Sets [`Options::max_exemplars`] (0 disables exemplar storage).
    pub fn max_exemplars(mut self, n: usize) -> Self {
        self.opts.max_exemplars = n;
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }
    /// See [`Options::block_range`].
    pub fn block_range(mut self, ms: i64) -> Self {
        self.opts.block_range = ms;
        self
    }
    /// See [`Options::max_block_range`].
    pub fn max_block_range(mut self, ms: Option<i64>) -> Self {
        self.opts.max_block_range = ms;
        self
    }
    /// See [`Options::retention_time`].
    pub fn retention_time(mut self, d: Option<Duration>) -> Self {
        self.opts.retention_time = d;
        self
    }
    /// See [`Options::retention_size`].
    pub fn retention_size(mut self, bytes: Option<u64>) -> Self {
        self.opts.retention_size = bytes;
        self
    }
    /// See [`Options::out_of_order_window`].
    pub fn out_of_order_window(mut self, d: Duration) -> Self {
        self.opts.out_of_order_window = d;
        self
    }
    /// See [`Options::wal_sync`].
    pub fn wal_sync(mut self, p: SyncPolicy) -> Self {
        self.opts.wal_sync = p;
        self
    }
    /// See [`Options::wal_segment_size`].
    pub fn wal_segment_size(mut self, bytes: u64) -> Self {
        self.opts.wal_segment_size = bytes;
        self
    }
    /// See [`Options::wal_zero_ahead`].
    pub fn wal_zero_ahead(mut self, bytes: u64) -> Self {
        self.opts.wal_zero_ahead = bytes;
        self
    }
    /// See [`Options::block_encoding`].
    pub fn block_encoding(mut self, e: Encoding) -> Self {
        self.opts.block_encoding = e;
        self
    }
    /// See [`Options::name_validation`].
    pub fn name_validation(mut self, v: NameValidation) -> Self {
        self.opts.name_validation = v;
        self
    }
    /// See [`Options::maintenance_interval`].
    pub fn maintenance_interval(mut self, d: Option<Duration>) -> Self {
        self.opts.maintenance_interval = d;
        self
    }

    /// See [`Options::wal_hold_max_bytes`].
    pub fn wal_hold_max_bytes(mut self, bytes: u64) -> Self {
        self.opts.wal_hold_max_bytes = bytes;
        self
    }

    /// See [`Options::scrub_interval`].
    pub fn scrub_interval(mut self, d: Option<Duration>) -> Self {
        self.opts.scrub_interval = d;
        self
    }

    /// See [`Options::scrub_bytes_per_sec`].
    pub fn scrub_bytes_per_sec(mut self, bytes: u64) -> Self {
        self.opts.scrub_bytes_per_sec = bytes;
        self
    }

    /// See [`Options::file_system`].
    pub fn file_system(mut self, fs: SharedFs) -> Self {
        self.opts.file_system = fs;
        self
    }

    /// Opens (creating if needed) the database.
    pub fn open(self) -> Result<Db, Error> {
        Db::open_with(self.dir, self.opts)
    }
}

/// Counters and gauges for monitoring (the server's `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbStats {
    /// Series in the head.
    pub head_series: u64,
    /// Chunks in the head.
    pub head_chunks: u64,
    /// Samples appended since open (committed).
    pub samples_appended: u64,
    /// Out-of-order samples accepted since open.
    pub out_of_order_samples_appended: u64,
    /// Oldest timestamp in the head (`i64::MAX` when empty).
    pub head_min_time: i64,
    /// Newest timestamp in the head (`i64::MIN` when empty).
    pub head_max_time: i64,
    /// Bytes of WAL segments and checkpoints.
    pub wal_bytes: u64,
    /// [`Wal::uncompressed_bytes`]: what the WAL would take in uncompressed
    /// records, at least `wal_bytes`. Persisting the head and checkpointing
    /// write at most [`crate::retention::maintenance_reserve`] of it.
    pub wal_uncompressed_bytes: u64,
    /// Number of blocks.
    pub blocks: u64,
    /// Bytes of all blocks.
    pub block_bytes: u64,
    /// Blocks written from the head since open.
    pub head_persists: u64,
    /// Compactions run since open.
    pub compactions: u64,
    /// Blocks deleted by time retention since open.
    pub retention_time_deletions: u64,
    /// Blocks deleted by size retention since open.
    pub retention_size_deletions: u64,
    /// Blocks moved to `quarantine/`: blocks that failed to open or to
    /// scrub, and originals of blocks rewritten without damaged chunks.
    pub quarantined_blocks: u64,
    /// Damaged regions of the WAL (or its checkpoint) skipped at open or
    /// while checkpointing.
    pub wal_corruptions: u64,
    /// WAL records skipped because they were damaged (a lower bound).
    pub wal_records_skipped: u64,
    /// WAL samples lost to damage: in damaged records that still decoded,
    /// plus samples whose series record was lost.
    pub wal_samples_lost: u64,
    /// Distinct damaged chunks found by reads and scrubs.
    pub chunks_corrupt: u64,
    /// Completed scrubs of all blocks.
    pub scrubs: u64,
    /// Why commits fail right now (the WAL cannot be written, or the
    /// directory is at its size limit); `None` while writes are accepted.
    pub write_failure: Option<String>,
    /// Commits refused because the directory is at its size limit.
    pub commit_failures_storage_full: u64,
    /// Commits that failed because the disk is full (`ENOSPC`).
    pub commit_failures_no_space: u64,
    /// Commits that failed on another I/O error (EIO, failed fsync).
    pub commit_failures_io: u64,
    /// Maintenance steps (WAL repair, head persistence, compaction,
    /// retention, checkpoints) that failed; each is retried next round.
    pub maintenance_failures: u64,
    /// Bytes in the data directory at the last measurement (size limit set).
    pub disk_bytes: u64,
    /// The size the directory is kept under: `retention_size`, or less when
    /// the file system has less room; 0 without a size limit.
    pub disk_limit_bytes: u64,
    /// Samples older than this were deleted by retention and are refused
    /// (`i64::MIN`: nothing was deleted).
    pub retention_floor: i64,
}

#[derive(Default)]
struct Counters {
    head_persists: AtomicU64,
    compactions: AtomicU64,
    retention_time: AtomicU64,
    retention_size: AtomicU64,
    fail_storage_full: AtomicU64,
    fail_no_space: AtomicU64,
    fail_io: AtomicU64,
    maintenance_failures: AtomicU64,
}

/// The data directory's size at the last measurement, under a size limit.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// Every byte in the directory.
    total: u64,
    /// [`Wal::uncompressed_bytes`]: what maintenance's writes are bounded
    /// by (not the WAL's size on disk, which compression shrinks).
    wal: u64,
    /// [`Wal::bytes_written`] at the measurement: growth since is added.
    wal_written: u64,
    /// [`Wal::uncompressed_bytes_written`] at the measurement.
    wal_uncompressed_written: u64,
    /// The limit in force: `retention_size`, or less if the file system has
    /// less room.
    budget: u64,
    at: std::time::Instant,
}

impl Usage {
    /// Current estimate (bytes in the directory, WAL in uncompressed
    /// terms): the measurement plus what the WAL wrote since.
    fn now(&self, wal_written: u64, wal_uncompressed_written: u64) -> (u64, u64) {
        let grown = wal_written.saturating_sub(self.wal_written);
        let grown_uncompressed = wal_uncompressed_written.saturating_sub(self.wal_uncompressed_written);
        (self.total + grown, self.wal + grown_uncompressed)
    }
}

/// What the disk holds, for size retention.
struct Disk {
    dir: PathBuf,
    wal: Arc<Wal>,
    /// The locked `lock` file; dropped (unlocking) by `close`.
    lock: Mutex<Option<File>>,
    /// Readers' holds on WAL segments (`wal/holds/`).
    holds: WalHolds,
    /// A checkpoint cut short by a hold: (segment wanted, mint), retried by
    /// maintenance once the holder has moved on.
    deferred_checkpoint: Mutex<Option<(u64, i64)>>,
    /// Every write goes through it.
    fs: SharedFs,
    /// The retention floor (see `floor.rs`); `i64::MIN` when nothing was deleted.
    floor: AtomicI64,
    /// Last measurement, when a size limit is set.
    usage: Mutex<Option<Usage>>,
    /// How new each WAL segment's samples are: which segments a block
    /// covers entirely.
    segment_times: segment_times::SegmentTimes,
}

struct Inner {
    opts: Options,
    disk: Option<Disk>,
    head: Arc<Head>,
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes maintenance (persist, compact, retention, snapshot).
    maintenance: Mutex<()>,
    counters: Counters,
    closed: AtomicBool,
    /// Wakes the background thread early (size pressure, failed writes).
    wake: Mutex<Option<mpsc::Sender<Wake>>>,
    /// A wake is queued and not yet picked up: later ones are dropped.
    wake_pending: AtomicBool,
    /// Set while commits are refused with [`Error::StorageFull`] (the
    /// directory is at its size limit); cleared by the next accepted one.
    storage_full: AtomicBool,
    /// What damaged files cost (WAL damage, damaged chunks, quarantine).
    damage: Arc<DamageLog>,
    /// Stops the scrub thread.
    scrub_stop: Mutex<Option<mpsc::Sender<()>>>,
    /// Largest WAL estimate of one commit seen (size limit set): retention
    /// keeps room for a few of them so commits are not refused meanwhile.
    largest_batch: AtomicU64,
    /// The error of the last commit, if it failed on I/O and none succeeded
    /// since (the WAL may have rolled back and be writable, but the disk is
    /// still full): reported by [`Db::write_failure`].
    commit_failing: Mutex<Option<Error>>,
    /// `commit_failing.is_some()`, readable without the lock on the hot path.
    commit_failing_flag: AtomicBool,
    /// A commit is re-measuring the directory.
    measuring: AtomicBool,
    /// Bytes of the inputs of a compaction being written (its output's
    /// upper bound), 0 when none runs.
    compacting: AtomicU64,
}

/// Messages to the maintenance thread.
enum Wake {
    /// Run maintenance now.
    Now,
    /// Exit.
    Stop,
}

/// An embeddable time-series database.
///
/// ```
/// use tidemark_storage::{Db, Labels, Matcher};
/// let dir = tempfile::tempdir().unwrap();
/// let db = Db::open(dir.path()).unwrap();
/// let up = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
/// let mut app = db.appender();
/// let r = app.append(&up, 1_000, 1.0).unwrap();
/// app.append_ref(r, 2_000, 0.0).unwrap(); // hot path: cached reference
/// app.commit().unwrap();
///
/// let q = db.querier(0, 5_000);
/// let series = q.select(&[Matcher::equal("job", "api")]).unwrap();
/// assert_eq!(series[0].samples().unwrap().len(), 2);
/// db.close().unwrap();
/// ```
pub struct Db {
    inner: Arc<Inner>,
    background: Mutex<Option<JoinHandle<()>>>,
    scrubber: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.inner.disk.as_ref().map(|d| &d.dir)).finish_non_exhaustive()
    }
}

/// The head's commit log: the WAL, bound once it has been replayed and opened.
struct LateWal(OnceLock<Arc<Wal>>);

impl CommitLog for LateWal {
    fn log(&self, records: &[Record]) -> Result<(), Error> {
        match self.0.get() {
            Some(wal) => wal.log(records),
            None => Err(Error::InvalidArgument("commit before the WAL was opened".into())),
        }
    }

    fn log_relaxed(&self, records: &[Record]) -> Result<(), Error> {
        match self.0.get() {
            Some(wal) => wal.log_relaxed(records),
            None => Err(Error::InvalidArgument("commit before the WAL was opened".into())),
        }
    }

    fn submit(&self, records: &[Record], durable: bool) -> Result<Option<WalTicket>, Error> {
        match self.0.get() {
            Some(wal) => wal.enqueue(Encoded::new(records)?, durable),
            None => Err(Error::InvalidArgument("commit before the WAL was opened".into())),
        }
    }

    fn encode(&self, records: &[Record]) -> Option<Result<Encoded, Error>> {
        // Encoding needs no WAL state: only a bound WAL takes it back.
        self.0.get().map(|_| Encoded::new(records))
    }

    fn submit_encoded(&self, first: &[Record], then: Encoded, durable: bool) -> Result<Option<WalTicket>, Error> {
        match self.0.get() {
            Some(wal) => {
                let mut encoded = Encoded::new(first)?;
                encoded.append(then);
                wal.enqueue(encoded, durable)
            }
            None => Err(Error::InvalidArgument("commit before the WAL was opened".into())),
        }
    }

    fn wait(&self, ticket: WalTicket) -> Result<(), Error> {
        match self.0.get() {
            Some(wal) => wal.wait(ticket),
            // Unreachable: tickets come from the bound WAL.
            None => Err(Error::InvalidArgument("commit before the WAL was opened".into())),
        }
    }
}

impl Db {
    /// A builder for a database in `dir`.
    pub fn builder(dir: impl Into<PathBuf>) -> DbBuilder {
        DbBuilder { dir: Some(dir.into()), opts: Options::default() }
    }

    /// A builder for an in-memory database: no files, no WAL, no blocks;
    /// everything lives in the head and time retention trims it.
    pub fn builder_in_memory() -> DbBuilder {
        DbBuilder { dir: None, opts: Options::default() }
    }

    /// Opens `dir` with default options.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Db, Error> {
        Db::builder(dir).open()
    }

    /// An in-memory database with default options.
    pub fn in_memory() -> Result<Db, Error> {
        Db::builder_in_memory().open()
    }

    fn open_with(dir: Option<PathBuf>, mut opts: Options) -> Result<Db, Error> {
        if opts.block_range <= 0 || opts.samples_per_chunk == 0 {
            return Err(Error::InvalidArgument("block_range and samples_per_chunk must be positive".into()));
        }
        let started = std::time::Instant::now();
        let head_opts = |opts: &Options| HeadOptions {
            chunk_range: opts.block_range,
            samples_per_chunk: opts.samples_per_chunk,
            ooo_window: opts.ooo_window_ms(),
            ..HeadOptions::default()
        };
        let damage = Arc::new(DamageLog::default());
        let (disk, head, blocks) = match dir {
            None => {
                let head = Arc::new(Head::new(head_opts(&opts), None));
                head.exemplars().resize(opts.max_exemplars);
                Head::start_sealer(&head);
                (None, head, Vec::new())
            }
            Some(dir) => {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                let lock = lock_dir(&dir)?;
                load_stored_format(&dir, &mut opts)?;
                remove_tmp_dirs(&dir)?;
                let (mut blocks, quarantined) = open_blocks(&dir)?;
                for q in quarantined {
                    damage.quarantined(q);
                }
                let fs = opts.file_system.clone();
                let floor = load_floor(&*fs, &dir, &mut blocks)?;
                let wal_dir = dir.join("wal");
                let log = Arc::new(LateWal(OnceLock::new()));
                // Closed head chunks go to chunks_head/, emptied here and
                // rebuilt by the replay below (docs/format/head_chunks.md),
                // in segments as large as the WAL's.
                let chunk_segment = match opts.retention_size {
                    Some(limit) => retention::segment_size_for_limit(opts.wal_segment_size, limit),
                    None => opts.wal_segment_size,
                };
                let chunk_store = HeadChunks::open(
                    fs.clone(),
                    &dir.join(crate::head::chunk_file::DIR_NAME),
                    usize::try_from(chunk_segment).unwrap_or(usize::MAX),
                )?;
                let head =
                    Arc::new(Head::with_chunks(head_opts(&opts), Some(log.clone() as Arc<dyn CommitLog>), chunk_store));
                head.exemplars().resize(opts.max_exemplars);
                // Deleted data stays deleted: replay drops samples below the floor.
                if floor != i64::MIN {
                    head.set_min_valid_time(floor);
                }
                let segment_size = match opts.retention_size {
                    Some(limit) => retention::segment_size_for_limit(opts.wal_segment_size, limit),
                    None => opts.wal_segment_size,
                };
                // The zeros count against a size limit and maintenance cannot
                // free them: at most 1/64 of the limit.
                let zero_ahead = opts.retention_size.map_or(opts.wal_zero_ahead, |l| opts.wal_zero_ahead.min(l / 64));
                let wal_opts = WalOptions { segment_size, sync: opts.wal_sync, zero_ahead };
                // Damaged WAL files are copied to quarantine/, which size
                // retention counts and may purge.
                let quarantine = dir.join("quarantine");
                // Chunks closed during the replay stay XOR: re-encoding them
                // would cost ~40% more replay CPU (head/chunk_file.rs).
                head.chunk_store().set_reencode(false);
                let (wal, mut stats) =
                    Wal::open_and_replay_on(fs.clone(), &wal_dir, wal_opts, &quarantine, |rec| match rec {
                        Record::Series(s) => {
                            for rs in s {
                                head.replay_series(rs.series_ref, rs.labels);
                            }
                        }
                        Record::Samples(s) => head.replay_samples(&s),
                        Record::HistogramSamples(s) => head.replay_histograms(&s),
                        Record::Exemplars(e) => head.replay_exemplars(&e),
                    })?;
                head.chunk_store().set_reencode(true);
                // From now on closed chunks are re-encoded in the background
                // (head/sealer.rs).
                Head::start_sealer(&head);
                // Samples already persisted in blocks (a crash between writing a
                // block and checkpointing the WAL) must not come back to the head.
                if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
                    head.truncate(maxt);
                }
                let wal = Arc::new(wal);
                if log.0.set(wal.clone()).is_err() {
                    unreachable!("the commit log is bound once");
                }
                if let Some(d) = stats.damage.take() {
                    damage.wal(d);
                }
                tracing::info!(dir = %dir.display(), series = head.stats().num_series, blocks = blocks.len(), replay = ?stats, elapsed = ?started.elapsed(), "opened database");
                let holds = WalHolds::load(&wal_dir.join("holds"))?;
                let disk = Disk {
                    dir,
                    wal,
                    lock: Mutex::new(Some(lock)),
                    holds,
                    deferred_checkpoint: Mutex::new(None),
                    fs,
                    floor: AtomicI64::new(floor),
                    usage: Mutex::new(None),
                    segment_times: segment_times::SegmentTimes::default(),
                };
                (Some(disk), head, blocks)
            }
        };
        let inner = Arc::new(Inner {
            opts,
            disk,
            head,
            blocks: RwLock::new(blocks),
            maintenance: Mutex::new(()),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            wake: Mutex::new(None),
            wake_pending: AtomicBool::new(false),
            storage_full: AtomicBool::new(false),
            damage,
            scrub_stop: Mutex::new(None),
            largest_batch: AtomicU64::new(0),
            commit_failing: Mutex::new(None),
            commit_failing_flag: AtomicBool::new(false),
            measuring: AtomicBool::new(false),
            compacting: AtomicU64::new(0),
        });
        inner.measure();
        // Not fatal: on a full disk even the floor file may not be writable
        // yet; maintenance retries, and refusing to open would stop
        // ingestion for good.
        if let Err(e) = inner.apply_retention() {
            inner.counters.maintenance_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "retention at open failed; retried by maintenance");
        }
        inner.measure();
        let db = Db { inner, background: Mutex::new(None), scrubber: Mutex::new(None) };
        db.start_background();
        db.start_scrubber();
        Ok(db)
    }

    fn start_background(&self) {
        let Some(interval) = self.inner.opts.maintenance_interval else { return };
        let (tx, rx) = mpsc::channel::<Wake>();
        let inner = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("tidemark-maintenance".into())
            .spawn(move || loop {
                match rx.recv_timeout(interval) {
                    Ok(Wake::Now) | Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Errors are logged and counted step by step.
                        let _ = inner.maintain();
                    }
                    Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            })
            .expect("spawning the maintenance thread");
        *self.inner.wake.lock() = Some(tx);
        *self.background.lock() = Some(handle);
    }

    /// A batch of appends, applied atomically by [`Appender::commit`].
    pub fn appender(&self) -> Appender<'_> {
        Appender { head: self.inner.head.appender(), db: &self.inner }
    }

    /// A read view over `[mint, maxt]` (inclusive, ms).
    pub fn querier(&self, mint: i64, maxt: i64) -> Querier {
        let mut sources: Vec<Arc<dyn SeriesSource>> = Vec::new();
        for b in self.inner.blocks.read().iter() {
            let m = b.meta();
            if m.max_time > mint && m.min_time <= maxt {
                sources.push(Arc::new(BlockSource(b.clone(), self.inner.damage.clone())));
            }
        }
        sources.push(Arc::new(HeadSource(self.inner.head.clone())));
        let q = Querier::new(sources, mint, maxt);
        for qb in self.inner.damage.quarantined_overlapping(mint, maxt) {
            q.add_warning(format!(
                "damaged data skipped: block {} is quarantined ({}); its samples are missing from this range",
                qb.block, qb.reason
            ));
        }
        q
    }

    /// Runs one round of maintenance now: persists complete head ranges to
    /// blocks, compacts, and applies retention.
    pub fn maintain(&self) -> Result<(), Error> {
        self.inner.maintain()
    }

    /// Persists every head range that is complete (see [`Db::maintain`]).
    /// Returns the number of blocks written. Unlike maintenance, which
    /// deletes only the WAL segments a block covers entirely, an explicit
    /// call then checkpoints the whole WAL down to the head (rewriting the
    /// samples the head still holds into the checkpoint).
    pub fn persist_head(&self) -> Result<usize, Error> {
        let _g = self.inner.maintenance.lock();
        self.inner.persist_head_ranges(PersistMode::ReadyWholeWal)
    }

    /// Persists everything in the head, complete ranges or not, e.g. before
    /// a planned shutdown or to test block reads. Returns blocks written.
    pub fn flush_head(&self) -> Result<usize, Error> {
        let _g = self.inner.maintenance.lock();
        self.inner.persist_head(true)
    }

    /// Runs compaction until the planner finds nothing to do. Returns the
    /// number of compactions.
    pub fn compact(&self) -> Result<usize, Error> {
        let _g = self.inner.maintenance.lock();
        self.inner.compact_all()
    }

    /// Applies time and size retention now. Returns the blocks deleted.
    pub fn apply_retention(&self) -> Result<Vec<String>, Error> {
        let _g = self.inner.maintenance.lock();
        let deleted = self.inner.apply_retention()?;
        self.inner.measure();
        Ok(deleted)
    }

    /// Why commits fail right now, or `None` while writes are accepted:
    /// the WAL cannot be written (a failed write or fsync not yet repaired,
    /// e.g. the disk is still full), or the directory is at its size limit.
    /// What `/-/ready` reports.
    pub fn write_failure(&self) -> Option<String> {
        self.inner.write_failure()
    }

    /// Metadata of every block, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.inner.blocks.read().iter().map(|b| b.meta().clone()).collect()
    }

    /// Writes a consistent backup to `dir` (which must not exist or be
    /// empty): hard links of every block, plus the head's data written as
    /// new blocks unless `skip_head`. The result opens as a database.
    pub fn snapshot(&self, dir: &Path, skip_head: bool) -> Result<(), Error> {
        let _g = self.inner.maintenance.lock();
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for b in self.inner.blocks.read().iter() {
            let name = b.dir().file_name().ok_or_else(|| Error::InvalidArgument("block without a name".into()))?;
            link_tree(b.dir(), &dir.join(name))?;
        }
        if !skip_head {
            // One block for the whole head, as Prometheus' snapshot writes
            // it: cutting it at block-range boundaries would store every
            // series' index entry and chunk overhead once per piece.
            let head = &self.inner.head;
            let (hmin, hmax) = (head.min_time(), head.max_time());
            if hmin <= hmax {
                let end = hmax.saturating_add(1);
                let mut series = head.series_for_block(hmin, end).peekable();
                if series.peek().is_some() {
                    block::writer::write_block_with(
                        &vfs::os(),
                        dir,
                        hmin,
                        end,
                        level1(),
                        series,
                        &self.inner.write_options(),
                        MAX_CHUNK_FILE_SIZE,
                    )?;
                }
            }
        }
        sync_dir(dir)
    }

    /// The WAL directory, for readers such as
    /// [`WalTailer`](crate::wal::WalTailer); `None` in memory.
    pub fn wal_dir(&self) -> Option<PathBuf> {
        self.inner.disk.as_ref().map(|d| d.wal.dir().to_path_buf())
    }

    /// A named, persisted hold on WAL segments for a reader of the WAL (a
    /// forwarder): checkpoints keep the segments from
    /// [`WalHold::segment`] on, up to [`Options::wal_hold_max_bytes`].
    /// Returns the existing hold of that name, or a new one at the oldest
    /// segment. Names are 1 to 100 of `[A-Za-z0-9._-]`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = tidemark_storage::Db::open(dir.path()).unwrap();
    /// let hold = db.hold_wal("forwarder").unwrap();
    /// hold.advance(hold.segment() + 1).unwrap(); // read everything before
    /// assert!(db.release_wal_hold("forwarder").unwrap());
    /// ```
    pub fn hold_wal(&self, name: &str) -> Result<WalHold, Error> {
        let disk = self
            .inner
            .disk
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("an in-memory database has no WAL".into()))?;
        disk.holds.acquire(name, disk.wal.segment_range().0)
    }

    /// Removes the hold `name` (see [`Db::hold_wal`]); returns whether it
    /// existed. Segments it kept are deleted by the next checkpoint.
    pub fn release_wal_hold(&self, name: &str) -> Result<bool, Error> {
        match &self.inner.disk {
            Some(disk) => disk.holds.release(name),
            None => Ok(false),
        }
    }

    /// Measures the data directory now (hard-linked files counted once):
    /// `(bytes used, size limit in force)`, or `None` without a size limit
    /// or for an in-memory database. [`DbStats::disk_bytes`] is the last
    /// measurement, which may be a moment old.
    pub fn measure_disk(&self) -> Option<(u64, u64)> {
        self.inner.opts.retention_size?;
        self.inner.measure();
        let u = (*self.inner.disk.as_ref()?.usage.lock())?;
        Some((u.total, u.budget))
    }

    /// Current statistics.
    pub fn stats(&self) -> DbStats {
        let inner = &self.inner;
        let hs = inner.head.stats();
        let blocks = inner.blocks.read();
        let c = &inner.counters;
        let damage = inner.damage.snapshot();
        DbStats {
            head_series: hs.num_series,
            head_chunks: hs.num_chunks,
            samples_appended: hs.samples_appended,
            out_of_order_samples_appended: hs.out_of_order_samples_appended,
            head_min_time: inner.head.min_time(),
            head_max_time: inner.head.max_time(),
            wal_bytes: inner.disk.as_ref().map_or(0, |d| d.wal.size_bytes()),
            wal_uncompressed_bytes: inner.disk.as_ref().map_or(0, |d| d.wal.uncompressed_bytes()),
            blocks: blocks.len() as u64,
            block_bytes: blocks.iter().map(|b| b.size_bytes()).sum(),
            head_persists: c.head_persists.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            retention_time_deletions: c.retention_time.load(Ordering::Relaxed),
            retention_size_deletions: c.retention_size.load(Ordering::Relaxed),
            quarantined_blocks: damage.blocks_quarantined,
            wal_corruptions: damage.wal_corruptions,
            wal_records_skipped: damage.wal_records_skipped,
            wal_samples_lost: damage.wal_samples_lost,
            chunks_corrupt: damage.chunks_corrupt,
            scrubs: damage.scrubs,
            write_failure: inner.write_failure(),
            commit_failures_storage_full: c.fail_storage_full.load(Ordering::Relaxed),
            commit_failures_no_space: c.fail_no_space.load(Ordering::Relaxed),
            commit_failures_io: c.fail_io.load(Ordering::Relaxed),
            maintenance_failures: c.maintenance_failures.load(Ordering::Relaxed),
            disk_bytes: inner.disk.as_ref().and_then(|d| *d.usage.lock()).map_or(0, |u| u.total),
            disk_limit_bytes: inner.disk.as_ref().and_then(|d| *d.usage.lock()).map_or(0, |u| u.budget),
            retention_floor: inner.disk.as_ref().map_or(i64::MIN, |d| d.floor.load(Ordering::Acquire)),
        }
    }

    /// What damaged files have cost since open: WAL damage recovered from,
    /// damaged chunks, quarantined blocks, scrubs (what
    /// `/api/v1/status/tsdb` shows as `tidemarkDamage`).
    pub fn damage_report(&self) -> DamageReport {
        self.inner.damage.snapshot()
    }

    /// Stops background work, flushes and fsyncs the WAL, and releases the
    /// directory lock. Appends after `close` fail with [`Error::Closed`].
    pub fn close(&self) -> Result<(), Error> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(tx) = self.inner.wake.lock().take() {
            let _ = tx.send(Wake::Stop);
        }
        if let Some(handle) = self.background.lock().take() {
            let _ = handle.join();
        }
        self.stop_scrubber();
        self.inner.head.chunk_store().stop_sealer();
        let _g = self.inner.maintenance.lock();
        if let Some(d) = &self.inner.disk {
            d.wal.close()?;
            d.lock.lock().take();
        }
        Ok(())
    }

    /// Cardinality statistics of the head (what `/api/v1/status/tsdb`
    /// shows), each list limited to the `limit` largest entries.
    ///
    /// ```
    /// use tidemark_storage::{Db, Labels};
    /// let db = Db::in_memory().unwrap();
    /// let mut app = db.appender();
    /// for job in ["api", "db"] {
    ///     app.append(&Labels::new([("__name__", "up"), ("job", job)]).unwrap(), 1_000, 1.0).unwrap();
    /// }
    /// app.commit().unwrap();
    /// let c = db.head_cardinality(10);
    /// assert_eq!(c.num_series, 2);
    /// assert_eq!(c.series_count_by_metric_name, vec![("up".to_string(), 2)]);
    /// ```
    pub fn head_cardinality(&self, limit: usize) -> crate::head::Cardinality {
        self.inner.head.cardinality(limit)
    }

    /// The exemplars with `mint <= t <= maxt` of every series matching all
    /// matchers of at least one of `matcher_sets` (an empty list matches
    /// nothing), per series sorted by labels, each series' oldest first.
    /// Exemplars are kept apart from samples, in a bounded ring
    /// ([`Options::max_exemplars`]), and survive restarts through the WAL.
    ///
    /// ```
    /// use tidemark_storage::exemplar::Exemplar;
    /// use tidemark_storage::{Db, Labels, Matcher};
    ///
    /// let db = Db::in_memory().unwrap();
    /// let l = Labels::new([("__name__", "requests_total"), ("job", "api")]).unwrap();
    /// let mut app = db.appender();
    /// let r = app.append(&l, 1_000, 3.0).unwrap();
    /// let ex = Exemplar { labels: Labels::new([("trace_id", "abc123")]).unwrap(), value: 1.0, t: 990 };
    /// app.append_exemplar(r, ex.clone()).unwrap();
    /// app.commit().unwrap();
    ///
    /// let got = db.exemplars(&[vec![Matcher::equal("job", "api")]], 0, 2_000);
    /// assert_eq!(got.len(), 1);
    /// assert_eq!(got[0].series_labels, l);
    /// assert_eq!(got[0].exemplars, vec![ex]);
    /// ```
    pub fn exemplars(
        &self,
        matcher_sets: &[Vec<crate::Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Vec<crate::exemplar::SeriesExemplars> {
        self.inner.head.exemplars().select(mint, maxt, matcher_sets)
    }

    /// The exemplar store's counters and gauges.
    pub fn exemplar_stats(&self) -> crate::exemplar::ExemplarStats {
        self.inner.head.exemplars().stats()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the database on drop failed");
        }
    }
}

/// Which head ranges to write to blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PersistMode {
    /// Ranges no accepted sample can reach any more (the normal case).
    Ready,
    /// As `Ready`, then the whole WAL is checkpointed down to the head
    /// (an explicit [`Db::persist_head`]).
    ReadyWholeWal,
    /// Ranges the newest sample has passed (under size pressure).
    Complete,
    /// Under size pressure with the WAL over its budget: everything up to
    /// [`Options::pressure_lag_ms`] behind the newest sample, complete range
    /// or not, so the WAL can be checkpointed down.
    Pressure,
    /// Everything, including the range still being written.
    All,
}

fn level1() -> CompactionMeta {
    CompactionMeta::level1()
}

fn align_down(t: i64, range: i64) -> i64 {
    t - t.rem_euclid(range)
}

impl Inner {
    fn write_options(&self) -> BlockWriteOptions {
        BlockWriteOptions { encoding: self.opts.block_encoding, ..BlockWriteOptions::default() }
    }

    /// One round of maintenance. Every step runs even if an earlier one
    /// failed (each failure is logged and counted, and retried next round);
    /// returns the first error.
    fn maintain(&self) -> Result<(), Error> {
        let _g = self.maintenance.lock();
        self.wake_pending.store(false, Ordering::Release);
        let mut first: Option<Error> = None;
        let mut note = |what: &str, r: Result<(), Error>| {
            if let Err(e) = r {
                self.counters.maintenance_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(step = what, error = %e, "maintenance step failed; retried next round");
                first.get_or_insert(e);
            }
        };
        if let Some(disk) = &self.disk {
            // Writes resume by themselves once the cause of a failed write
            // is gone, even if no commit comes to retry it.
            let repaired = disk.wal.try_repair();
            if repaired.is_ok() {
                self.probe_commit_failure(disk);
            }
            note("repair WAL", repaired);
        }
        self.measure();
        // Retention first: never spend disk and CPU compacting blocks that
        // are about to be deleted.
        note("retention", self.apply_retention().map(drop));
        if let Some(disk) = &self.disk {
            self.observe_segment_times(disk);
            let deferred = disk.deferred_checkpoint.lock().take();
            if let Some((wanted, mint)) = deferred {
                note("deferred checkpoint", self.checkpoint_wal(disk, wanted, mint));
            }
            note("persist head", self.persist_head(false).map(drop));
            note("repair damaged blocks", self.repair_damaged_blocks());
            self.measure();
            if self.wal_over_budget() {
                // The WAL counts against the limit too: cut the head out to
                // blocks (complete ranges, then up to shortly before the
                // newest sample) so the WAL can be checkpointed.
                note("persist head (size pressure)", self.persist_head_ranges(PersistMode::Complete).map(drop));
                self.measure();
                if self.wal_over_budget() {
                    note("persist head (size pressure)", self.persist_head_ranges(PersistMode::Pressure).map(drop));
                }
            }
            note("compaction", self.compact_all().map(drop));
            self.measure();
            note("retention", self.apply_retention().map(drop));
        }
        self.measure();
        first.map_or(Ok(()), Err)
    }

    /// Re-measures the directory (size limit set only) and updates the
    /// admission state.
    fn measure(&self) {
        let Some(disk) = &self.disk else { return };
        let Some(limit) = self.opts.retention_size else { return };
        let wal_written = disk.wal.bytes_written();
        let wal_uncompressed_written = disk.wal.uncompressed_bytes_written();
        let total = dir_size(&disk.dir);
        let wal = disk.wal.uncompressed_bytes();
        let budget = match disk.fs.available_space(&disk.dir) {
            Ok(avail) => limit.min(total.saturating_add(avail.saturating_sub(FREE_SPACE_MARGIN))),
            Err(_) => limit,
        };
        *disk.usage.lock() =
            Some(Usage { total, wal, wal_written, wal_uncompressed_written, budget, at: std::time::Instant::now() });
    }

    /// (estimated bytes in the directory, the WAL's
    /// [`Wal::uncompressed_bytes`], budget), under a size limit;
    /// re-measured when the last measurement is stale.
    fn usage_now(&self) -> Option<(u64, u64, u64)> {
        let disk = self.disk.as_ref()?;
        self.opts.retention_size?;
        let stale = disk.usage.lock().is_none_or(|u| u.at.elapsed() >= MEASURE_EVERY);
        // One commit re-measures; concurrent ones use the last measurement
        // plus the WAL's growth rather than all walking the directory.
        if stale && !self.measuring.swap(true, Ordering::AcqRel) {
            self.measure();
            self.measuring.store(false, Ordering::Release);
        }
        let u = (*disk.usage.lock())?;
        let (total, wal) = u.now(disk.wal.bytes_written(), disk.wal.uncompressed_bytes_written());
        Some((total, wal, u.budget))
    }

    fn wal_over_budget(&self) -> bool {
        self.usage_now().is_some_and(|(total, wal, budget)| {
            wal > retention::wal_budget(budget)
                || total.saturating_add(retention::maintenance_reserve(wal)) > self.size_target(budget)
        })
    }

    /// What maintenance brings the directory (plus its reserve) down to:
    /// the budget less room for a few commits of the largest size seen
    /// (each costs its WAL bytes and their reserve), at least 10%.
    fn size_target(&self, budget: u64) -> u64 {
        let batch = self.largest_batch.load(Ordering::Relaxed);
        budget.saturating_sub((budget / 10).max(batch.saturating_mul(8)))
    }

    /// Admission of a commit under a size limit: refused (retryably) while
    /// the directory plus the room maintenance needs is at the limit, so
    /// the limit holds by construction; maintenance is woken early, before
    /// that point, to make room.
    fn admit(&self, samples: usize) -> Result<(), Error> {
        let Some((total, wal, budget)) = self.usage_now() else { return Ok(()) };
        // The batch's own WAL bytes, generously: a sample record entry is
        // at most ~28 bytes, plus a share of a series record.
        let batch = (samples as u64).saturating_mul(WAL_BYTES_PER_SAMPLE_BOUND);
        self.largest_batch.fetch_max(batch, Ordering::Relaxed);
        let wal = wal.saturating_add(batch);
        let total = total.saturating_add(batch);
        let needed = total
            .saturating_add(retention::maintenance_reserve(wal))
            .saturating_add(self.compacting.load(Ordering::Acquire));
        if needed > budget {
            self.wake_maintenance();
            if !self.storage_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    used = total,
                    reserved = needed - total,
                    limit = budget,
                    "at the size limit: refusing writes until maintenance makes room"
                );
            }
            return Err(Error::StorageFull { used: needed, limit: budget });
        }
        if self.storage_full.swap(false, Ordering::Relaxed) {
            tracing::info!("room made under the size limit: accepting writes");
        }
        if needed > self.size_target(budget) || wal > retention::wal_budget(budget) {
            self.wake_maintenance();
        }
        Ok(())
    }

    fn wake_maintenance(&self) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tx) = self.wake.lock().as_ref() {
            let _ = tx.send(Wake::Now);
        }
    }

    /// Clears the last commit's failure when its cause looks gone without
    /// waiting for a commit to prove it: the WAL is writable and, after
    /// ENOSPC, the file system has room again.
    fn probe_commit_failure(&self, disk: &Disk) {
        if !self.commit_failing_flag.load(Ordering::Acquire) {
            return;
        }
        let mut failing = self.commit_failing.lock();
        let space_back = match &*failing {
            Some(Error::Io { source, .. }) if vfs::is_no_space(source) => {
                disk.fs.available_space(&disk.dir).is_ok_and(|a| a >= FREE_SPACE_MARGIN)
            }
            _ => true,
        };
        if space_back {
            *failing = None;
            self.commit_failing_flag.store(false, Ordering::Release);
        }
    }

    fn write_failure(&self) -> Option<String> {
        if let Some(f) = self.disk.as_ref().and_then(|d| d.wal.failure()) {
            return Some(format!("the WAL cannot be written: {f}"));
        }
        if let Some(e) = &*self.commit_failing.lock() {
            return Some(format!("the last WAL write failed: {e}"));
        }
        if self.storage_full.load(Ordering::Relaxed) {
            return Some("the data directory is at its size limit; maintenance is making room".into());
        }
        None
    }

    /// Counts a failed commit by cause; a failed WAL write also wakes
    /// maintenance (which retries the repair).
    fn count_commit_failure(&self, e: &Error) {
        let c = &self.counters;
        match e {
            Error::StorageFull { .. } => c.fail_storage_full.fetch_add(1, Ordering::Relaxed),
            Error::Io { source, .. } if vfs::is_no_space(source) => c.fail_no_space.fetch_add(1, Ordering::Relaxed),
            Error::Io { .. } | Error::Poisoned(_) => c.fail_io.fetch_add(1, Ordering::Relaxed),
            _ => return,
        };
        if !matches!(e, Error::StorageFull { .. }) {
            *self.commit_failing.lock() = Some(e.clone());
            self.commit_failing_flag.store(true, Ordering::Release);
            self.wake_maintenance();
        }
    }

    /// Writes head ranges to blocks. A range `[start, start + block_range)`
    /// is written once the head reaches half a range past its end (so late
    /// in-order samples can still arrive, as in Prometheus) and the
    /// out-of-order window has moved past it (so no accepted sample can land
    /// in it afterwards). `force` writes everything.
    fn persist_head(&self, force: bool) -> Result<usize, Error> {
        self.persist_head_ranges(if force { PersistMode::All } else { PersistMode::Ready })
    }

    fn persist_head_ranges(&self, mode: PersistMode) -> Result<usize, Error> {
        let Some(disk) = &self.disk else { return Ok(0) };
        let range = self.opts.block_range;
        let mut written = 0;
        loop {
            let (hmin, hmax) = (self.head.min_time(), self.head.max_time());
            if hmin > hmax {
                break;
            }
            let start = align_down(hmin, range);
            let mut end = start.saturating_add(range);
            let ready = hmax >= end.saturating_add(range / 2) && hmax.saturating_sub(self.opts.ooo_window_ms()) >= end;
            let go = match mode {
                PersistMode::Ready | PersistMode::ReadyWholeWal => ready,
                PersistMode::Complete => hmax >= end,
                PersistMode::Pressure => {
                    end = end.min(hmax.saturating_sub(self.opts.pressure_lag_ms()));
                    end > hmin
                }
                PersistMode::All => true,
            };
            if !go {
                break;
            }
            // A range the head was already cut into under size pressure
            // starts where the earlier block ended: blocks never overlap.
            let mint = start.max(self.head.min_valid_time()).min(hmin);
            // From here on no sample below `end` can be applied, so nothing
            // slips in between copying the range and truncating it. (Unless
            // forced, `ready` already implies it: in-order appends must be
            // within half a range of the newest sample, out-of-order ones
            // within the window.)
            // The block and then the checkpoint must fit whatever commits
            // did since retention last ran.
            if let Some((_, wal, _)) = self.usage_now() {
                self.make_room(retention::maintenance_reserve(wal))?;
            }
            self.head.set_min_valid_time(end);
            let mut series = self.head.series_for_block(mint, end).peekable();
            if series.peek().is_some() {
                let meta = block::writer::write_block_with(
                    &disk.fs,
                    &disk.dir,
                    mint,
                    end,
                    level1(),
                    series,
                    &self.write_options(),
                    MAX_CHUNK_FILE_SIZE,
                )?;
                let b = Block::open(&disk.dir.join(&meta.ulid))?;
                let mut blocks = self.blocks.write();
                blocks.push(Arc::new(b));
                blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid.clone()));
                written += 1;
                self.counters.head_persists.fetch_add(1, Ordering::Relaxed);
            }
            self.head.truncate(end);
            let closed = disk.wal.cut_segment()?;
            // Segments the block covers entirely go (their series records
            // into the checkpoint); the others stay as they are, rather than
            // having every sample they share with the head rewritten into a
            // checkpoint that would be as large as they are (and, while
            // written, double the WAL's bytes). Under size pressure or
            // forced, the WAL is cut down as far as the head was.
            let wanted = match mode {
                PersistMode::Ready => disk.segment_times.all_older_than(end).map(|s| s.min(closed)),
                PersistMode::ReadyWholeWal | PersistMode::Complete | PersistMode::Pressure | PersistMode::All => {
                    Some(closed)
                }
            };
            // The next cut knows these segments hold nothing newer than now.
            self.observe_segment_times(disk);
            match wanted {
                Some(w) if w >= disk.wal.segment_range().0 => self.checkpoint_wal(disk, w, end)?,
                _ => {}
            }
        }
        Ok(written)
    }

    /// Notes the segment being written and then the head's newest sample:
    /// the segments below it hold nothing newer (see `segment_times`).
    fn observe_segment_times(&self, disk: &Disk) {
        let open = disk.wal.segment_range().1;
        disk.segment_times.observe(open, self.head.max_time());
    }

    /// Checkpoints the WAL up to segment `wanted`, or less far when readers
    /// hold segments ([`Db::hold_wal`]); what is held back is retried by
    /// the next maintenance.
    fn checkpoint_wal(&self, disk: &Disk, wanted: u64, mint: i64) -> Result<(), Error> {
        let mint = mint.max(disk.floor.load(Ordering::Acquire));
        let first = disk.wal.segment_range().0;
        // Under a size limit, segments kept for readers count against it:
        // never let a stalled reader hold more than half the WAL budget.
        let max = match self.usage_now() {
            Some((_, _, budget)) => self.opts.wal_hold_max_bytes.min(retention::wal_budget(budget) / 2),
            None => self.opts.wal_hold_max_bytes,
        };
        let upto = checkpoint_bound(wanted, first, disk.holds.min(), max, |s| disk.wal.segment_bytes(s));
        let deferred = (upto < Some(wanted)).then_some((wanted, mint));
        if let Some(upto) = upto {
            let head = self.head.clone();
            match disk.wal.checkpoint(upto, move |r| head.is_live(r), mint) {
                Ok(stats) => {
                    if let Some(d) = stats.damage {
                        self.damage.wal(d);
                    }
                }
                Err(e) => {
                    // Retried by the next maintenance round.
                    *disk.deferred_checkpoint.lock() = Some((wanted, mint));
                    return Err(e);
                }
            }
        }
        *disk.deferred_checkpoint.lock() = deferred;
        if let Some(upto) = upto {
            disk.segment_times.forget_upto(upto);
        }
        Ok(())
    }

    fn compact_all(&self) -> Result<usize, Error> {
        let Some(disk) = &self.disk else { return Ok(0) };
        let ranges = compact::exponential_ranges(self.opts.block_range, self.opts.effective_max_block_range());
        let mut n = 0;
        loop {
            let metas: Vec<BlockMeta> = self.blocks.read().iter().map(|b| b.meta().clone()).collect();
            let Some(ids) = compact::plan(&metas, &ranges) else { break };
            let inputs: Vec<Arc<Block>> =
                self.blocks.read().iter().filter(|b| ids.contains(&b.meta().ulid)).cloned().collect();
            if inputs.len() != ids.len() {
                return Err(Error::InvalidArgument("compaction planner returned unknown blocks".into()));
            }
            // The output is written before the inputs are deleted: under a
            // size limit, compact only when that transient copy fits.
            let input_bytes: u64 = inputs.iter().map(|b| b.size_bytes()).sum();
            if let Some((total, wal, budget)) = self.usage_now() {
                let peak = total.saturating_add(retention::maintenance_reserve(wal)).saturating_add(input_bytes);
                if peak > budget {
                    tracing::debug!(peak, budget, "compaction postponed: no room for its output under the size limit");
                    break;
                }
            }
            let refs: Vec<&Block> = inputs.iter().map(|b| b.as_ref()).collect();
            // Admission keeps room for the output while it is written (it
            // only sees it at the next measurement otherwise).
            self.compacting.store(input_bytes, Ordering::Release);
            let res = compact::compact_with(&disk.fs, &disk.dir, &refs, &self.write_options(), MAX_CHUNK_FILE_SIZE);
            self.compacting.store(0, Ordering::Release);
            let meta = match res {
                Ok(m) => m,
                Err(e @ Error::Block(_)) => {
                    // Unknown damage in an input: find it, cut it out, plan again.
                    let mut damaged = false;
                    for b in &inputs {
                        match b.verify(&mut |_| {}) {
                            Ok(d) => damaged |= !d.is_empty(),
                            Err(ie @ Error::Block(_)) => {
                                self.quarantine_block(b, &ie.to_string(), None)?;
                                damaged = true;
                            }
                            Err(ie) => return Err(ie),
                        }
                    }
                    if !damaged {
                        return Err(e);
                    }
                    self.repair_damaged_blocks()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let out = Arc::new(Block::open(&disk.dir.join(&meta.ulid))?);
            {
                let mut blocks = self.blocks.write();
                blocks.retain(|b| !ids.contains(&b.meta().ulid));
                blocks.push(out);
                blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid.clone()));
            }
            for b in &inputs {
                delete_dir_on(&*disk.fs, b.dir())?;
            }
            n += 1;
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
            self.measure();
        }
        Ok(n)
    }

    /// Applies retention; returns the ids of deleted blocks.
    fn apply_retention(&self) -> Result<Vec<String>, Error> {
        self.apply_retention_for(None)
    }

    /// Deletes the oldest blocks (if needed) so that `needed` more bytes fit
    /// under the size limit right now: called before maintenance writes a
    /// block or a checkpoint, whatever commits did since the last round.
    fn make_room(&self, needed: u64) -> Result<(), Error> {
        if self.opts.retention_size.is_some() {
            self.apply_retention_for(Some(needed))?;
        }
        Ok(())
    }

    /// Retention; with `room`, size retention keeps that many bytes free
    /// below the budget itself instead of the maintenance reserve below the
    /// target.
    fn apply_retention_for(&self, room: Option<u64>) -> Result<Vec<String>, Error> {
        let Some(disk) = &self.disk else {
            // In memory: only time retention, applied to the head.
            if let Some(r) = self.opts.retention_ms() {
                let newest = self.head.max_time();
                if newest != i64::MIN {
                    self.head.truncate(newest.saturating_sub(r));
                }
            }
            return Ok(Vec::new());
        };
        let infos: Vec<BlockInfo> = self
            .blocks
            .read()
            .iter()
            .map(|b| BlockInfo {
                id: b.meta().ulid.clone(),
                min_time: b.meta().min_time,
                max_time: b.meta().max_time,
                size_bytes: b.size_bytes(),
            })
            .collect();
        let newest =
            infos.iter().map(|b| b.max_time - 1).chain(std::iter::once(self.head.max_time())).max().unwrap_or(i64::MIN);
        let mut doomed = match self.opts.retention_ms() {
            Some(r) if room.is_none() => retention::beyond_time(&infos, newest, r),
            _ => Vec::new(),
        };
        let by_time = doomed.len();
        if self.opts.retention_size.is_some() {
            self.measure();
            if let Some((total, wal, budget)) = self.usage_now() {
                let remaining: Vec<BlockInfo> = infos.iter().filter(|b| !doomed.contains(&b.id)).cloned().collect();
                let all_blocks: u64 = infos.iter().map(|b| b.size_bytes).sum();
                // Everything that is not a block (WAL, quarantine, leftovers),
                // plus the room maintenance needs, must fit with the blocks
                // kept, below the budget so commits are not refused meanwhile.
                let (reserve, target) = match room {
                    Some(n) => (n, budget),
                    None => (retention::maintenance_reserve(wal), self.size_target(budget)),
                };
                let quarantine = disk.dir.join("quarantine");
                if total.saturating_add(reserve) > target && dir_size(&quarantine) > 0 {
                    // Quarantined blocks cannot be read anyway: they go first.
                    purge_quarantine(&*disk.fs, &quarantine)?;
                    self.measure();
                }
                let (total, _, _) = self.usage_now().unwrap_or((total, wal, budget));
                let other = total.saturating_sub(all_blocks).saturating_add(reserve);
                doomed.extend(retention::beyond_size(&remaining, other, target));
            }
        }
        if doomed.is_empty() {
            return Ok(doomed);
        }
        // Deleted data must stay deleted: persist the floor before deleting,
        // so a crash in between cannot bring the WAL's copy back.
        let new_floor = infos.iter().filter(|b| doomed.contains(&b.id)).map(|b| b.max_time).max().unwrap_or(i64::MIN);
        self.raise_floor(disk, new_floor)?;
        let victims: Vec<Arc<Block>> = {
            let mut blocks = self.blocks.write();
            let v = blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)).cloned().collect();
            blocks.retain(|b| !doomed.contains(&b.meta().ulid));
            v
        };
        for b in &victims {
            delete_dir_on(&*disk.fs, b.dir())?;
        }
        self.counters.retention_time.fetch_add(by_time as u64, Ordering::Relaxed);
        self.counters.retention_size.fetch_add((doomed.len() - by_time) as u64, Ordering::Relaxed);
        tracing::info!(blocks = ?doomed, floor = new_floor, "retention deleted blocks");
        self.measure();
        Ok(doomed)
    }

    /// Raises the retention floor to `t` (persisted first), and drops
    /// anything below it from the head.
    fn raise_floor(&self, disk: &Disk, t: i64) -> Result<(), Error> {
        if t <= disk.floor.load(Ordering::Acquire) {
            return Ok(());
        }
        floor::write(&*disk.fs, &disk.dir, t)?;
        disk.floor.store(t, Ordering::Release);
        if self.head.min_time() < t {
            self.head.truncate(t);
        } else {
            self.head.set_min_valid_time(t);
        }
        Ok(())
    }
}

/// One batch of appends to a [`Db`].
pub struct Appender<'a> {
    head: HeadAppender<'a>,
    db: &'a Inner,
}

impl Appender<'_> {
    /// Appends a sample to the series `labels` (created if new) and returns
    /// its reference for [`Appender::append_ref`].
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<u64, AppendError> {
        labels.validate(self.db.opts.name_validation)?;
        self.head.append(labels, t, v)
    }

    /// Appends a sample to a series by the reference an earlier `append`
    /// returned: the hot path, with no label lookup.
    pub fn append_ref(&mut self, series_ref: u64, t: i64, v: f64) -> Result<(), AppendError> {
        self.head.append_ref(series_ref, t, v)
    }

    /// Appends a native-histogram sample to the series `labels` (created if
    /// new) and returns its reference. The histogram is validated first
    /// ([`AppendError::InvalidHistogram`]); it is stored as given, integer
    /// or float counts.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, HistogramValue, Span};
    /// use tidemark_storage::{Db, Labels, MatchOp, Matcher, SampleIterator};
    ///
    /// let db = Db::in_memory().unwrap();
    /// let l = Labels::new([("__name__", "request_seconds")]).unwrap();
    /// let h = FloatHistogram {
    ///     count: 2.0,
    ///     sum: 0.7,
    ///     positive_spans: vec![Span { offset: -1, length: 1 }],
    ///     positive_buckets: vec![2.0],
    ///     ..FloatHistogram::default()
    /// };
    /// let mut app = db.appender();
    /// app.append_histogram(&l, 1_000, HistogramValue::Float(h.clone())).unwrap();
    /// app.commit().unwrap();
    ///
    /// let q = db.querier(0, 2_000);
    /// let s = q.select(&[Matcher::new(MatchOp::Equal, "__name__", "request_seconds").unwrap()]).unwrap();
    /// let mut it = s[0].iter();
    /// assert!(it.has_histograms() && it.next());
    /// assert_eq!(it.at_histogram().unwrap().h.to_float().count, 2.0);
    /// ```
    pub fn append_histogram(&mut self, labels: &Labels, t: i64, h: HistogramValue) -> Result<u64, AppendError> {
        labels.validate(self.db.opts.name_validation)?;
        self.head.append_histogram(labels, t, h)
    }

    /// Adds an exemplar to the series `series_ref` (a reference an append
    /// returned), stored and logged with the batch at commit. Refused:
    /// labels over [`crate::exemplar::MAX_LABEL_SET_RUNES`] characters, a
    /// timestamp not after the series' newest exemplar, an unknown
    /// reference. Duplicates of the newest, and every exemplar while the
    /// store is disabled, are accepted and ignored. See [`Db::exemplars`].
    pub fn append_exemplar(
        &mut self,
        series_ref: u64,
        ex: crate::exemplar::Exemplar,
    ) -> Result<(), crate::exemplar::ExemplarError> {
        self.head.append_exemplar(series_ref, ex)
    }

    /// The reference of the series `labels` if it exists (nothing is
    /// created): for [`Appender::append_exemplar`] when the series' samples
    /// came in another batch.
    pub fn series_ref(&self, labels: &Labels) -> Option<u64> {
        self.db.head.ref_of(labels)
    }

    /// [`Appender::append_histogram`] by series reference.
    pub fn append_histogram_ref(&mut self, series_ref: u64, t: i64, h: HistogramValue) -> Result<(), AppendError> {
        self.head.append_histogram_ref(series_ref, t, h)
    }

    /// A handle to the series `series_ref` for [`Appender::append_handle`],
    /// if the head holds it (see [`crate::head::SeriesHandle`]).
    pub fn handle(&self, series_ref: u64) -> Option<crate::head::SeriesHandle> {
        self.head.handle(series_ref)
    }

    /// [`Appender::append_ref`] through a handle, reaching the series by
    /// its address while that is known to be valid; a stale handle is
    /// refreshed in place (see [`HeadAppender::append_handle`]).
    #[inline]
    pub fn append_handle(&mut self, h: &mut crate::head::SeriesHandle, t: i64, v: f64) -> Result<(), AppendError> {
        self.head.append_handle(h, t, v)
    }

    /// Starts loading what [`Appender::append_handle`] will touch for `h`
    /// (a hint; see [`HeadAppender::prefetch`]).
    #[inline]
    pub fn prefetch(&self, h: &crate::head::SeriesHandle) {
        self.head.prefetch(h)
    }

    /// Whether `series_ref` is a series held in the head whose labels
    /// satisfy `matches`: lets a caller that caches refs by its own key
    /// check an entry without building [`Labels`] (see
    /// [`HeadAppender::ref_matches`]).
    pub fn ref_matches(&self, series_ref: u64, matches: impl FnOnce(crate::head::LabelsView<'_>) -> bool) -> bool {
        self.head.ref_matches(series_ref, matches)
    }

    /// [`Appender::ref_matches`] and [`Appender::append_ref`] in one step
    /// (one lookup of the series): appends `(t, v)` if `series_ref` is held
    /// and its labels satisfy `matches`, returning the append's result;
    /// `None` (nothing appended) otherwise. See
    /// [`HeadAppender::append_ref_if`].
    pub fn append_ref_if(
        &mut self,
        series_ref: u64,
        matches: impl FnOnce(crate::head::LabelsView<'_>) -> bool,
        t: i64,
        v: f64,
    ) -> Option<Result<(), AppendError>> {
        self.head.append_ref_if(series_ref, matches, t, v)
    }

    /// Logs the batch to the WAL and makes it visible to queries. When this
    /// returns `Ok`, the samples survive a crash (per the fsync policy);
    /// when it returns an error, nothing of the batch was applied and the
    /// caller may retry it.
    ///
    /// Fails with [`Error::StorageFull`] (retryable) while the data
    /// directory is at `retention_size` and maintenance has not yet made
    /// room, and with [`Error::Io`] when the WAL write or fsync failed (e.g.
    /// `ENOSPC`); both clear by themselves once room is back.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_with(true)
    }

    /// [`Appender::commit`] for data that can be recomputed, such as rule
    /// results: the batch is written to the WAL and visible to queries when
    /// this returns, but under `SyncPolicy::EveryCommit` it is not fsynced
    /// on its own; the next durable commit, segment cut or close makes it
    /// durable. A killed process loses nothing of it (the bytes are in the
    /// page cache); a power failure may lose the last such batches, as with
    /// Prometheus, which never fsyncs rule results.
    pub fn commit_relaxed(self) -> Result<(), Error> {
        self.commit_with(false)
    }

    fn commit_with(self, durable: bool) -> Result<(), Error> {
        let db = self.db;
        if db.closed.load(Ordering::SeqCst) {
            self.head.rollback();
            return Err(Error::Closed);
        }
        if let Err(e) = db.admit(self.head.len()) {
            self.head.rollback();
            db.count_commit_failure(&e);
            return Err(e);
        }
        let committed = if durable { self.head.commit() } else { self.head.commit_relaxed() };
        if let Err(e) = committed {
            db.count_commit_failure(&e);
            return Err(e);
        }
        if db.commit_failing_flag.load(Ordering::Acquire) {
            *db.commit_failing.lock() = None;
            db.commit_failing_flag.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Discards the batch.
    pub fn rollback(self) {
        self.head.rollback();
    }
}

struct HeadSource(Arc<Head>);

impl SeriesSource for HeadSource {
    fn select(&self, ms: &[Matcher], mint: i64, maxt: i64, warn: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
        Ok(self.0.select_reporting(ms, mint, maxt, warn))
    }
    fn select_unordered(
        &self,
        ms: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &mut Vec<String>,
    ) -> Result<(Vec<ChunkSeries>, bool), Error> {
        Ok((self.0.select_in_ref_order(ms, mint, maxt, warn), false))
    }
    fn select_unlabelled(
        &self,
        ms: &[Matcher],
        mint: i64,
        maxt: i64,
        warn: &mut Vec<String>,
    ) -> Result<Option<Vec<ChunkSeries>>, Error> {
        Ok(Some(self.0.select_unlabelled(ms, mint, maxt, warn)))
    }
    fn select_windows(
        &self,
        ms: &[Matcher],
        mint: i64,
        maxt: i64,
        f: &crate::querier::WindowFn<'_>,
        warn: &mut Vec<String>,
    ) -> Option<(crate::querier::WindowPoints, usize)> {
        // Window functions read floats in place; a head that holds native
        // histograms answers through the general path, which reads both.
        if self.0.has_histograms() {
            return None;
        }
        Some(self.0.select_windows(ms, mint, maxt, f, warn))
    }
    fn label_names(&self, ms: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, Error> {
        Ok(self.0.label_names(ms, mint, maxt))
    }
    fn label_values(&self, name: &str, ms: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, Error> {
        Ok(self.0.label_values(name, ms, mint, maxt))
    }
}

struct BlockSource(Arc<Block>, Arc<DamageLog>);

impl SeriesSource for BlockSource {
    fn select(&self, ms: &[Matcher], mint: i64, maxt: i64, warn: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
        // A damaged chunk costs only its own samples: it is left out, logged
        // and counted once, and the query is told.
        let mut skipped = Vec::new();
        let out = match self.0.select_readable(ms, mint, maxt, &mut skipped) {
            Ok(out) => out,
            // The index was verified at open, so this is damage since then:
            // answer from the other sources; the next scrub quarantines it.
            Err(e @ Error::Block(_)) => {
                tracing::error!(block = %self.0.meta().ulid, error = %e, "block index unreadable; its data is left out of queries");
                warn.push(format!("damaged data skipped: block {} could not be read ({e})", self.0.meta().ulid));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        self.1.chunks(&skipped);
        warn.extend(damage::chunk_warnings(&skipped));
        Ok(out)
    }
    fn label_names(&self, ms: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
        self.0.label_names(ms)
    }
    fn label_values(&self, name: &str, ms: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
        self.0.label_values(name, ms)
    }
}

fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join("lock");
    let f =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

fn load_stored_format(dir: &Path, opts: &mut Options) -> Result<(), Error> {
    let path = dir.join("tidemark.json");
    match fs::read(&path) {
        Ok(bytes) => {
            let stored: StoredFormat = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt { path: path.clone(), reason: e.to_string() })?;
            if stored.block_range_ms <= 0 {
                return Err(Error::Corrupt { path, reason: "block_range_ms must be positive".into() });
            }
            if stored.format_version == 0 {
                return Err(Error::Corrupt { path, reason: "format_version must be positive".into() });
            }
            if stored.format_version > FORMAT_VERSION {
                return Err(Error::UnsupportedFormat { path, found: stored.format_version, supported: FORMAT_VERSION });
            }
            if stored.block_range_ms != opts.block_range {
                tracing::warn!(
                    stored = stored.block_range_ms,
                    requested = opts.block_range,
                    "block range is fixed when a data directory is created; using the stored value"
                );
                opts.block_range = stored.block_range_ms;
            }
            if stored.format_version < FORMAT_VERSION {
                // The WAL is about to receive records of the new types:
                // from here on older code must refuse the directory.
                tracing::info!(
                    from = stored.format_version,
                    to = FORMAT_VERSION,
                    "raising the data directory's format version"
                );
                let stored = StoredFormat { format_version: FORMAT_VERSION, block_range_ms: stored.block_range_ms };
                let bytes = serde_json::to_vec_pretty(&stored).expect("serializing a plain struct");
                write_file_atomically(&path, &bytes)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let stored = StoredFormat { format_version: FORMAT_VERSION, block_range_ms: opts.block_range };
            let bytes = serde_json::to_vec_pretty(&stored).expect("serializing a plain struct");
            write_file_atomically(&path, &bytes)
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Leftovers of interrupted block writes or deletions.
fn remove_tmp_dirs(dir: &Path) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && (name.ends_with(".tmp") || name.ends_with(".deleted")) {
            tracing::warn!(dir = %entry.path().display(), "removing leftover of an interrupted write");
            fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

fn is_block_dir_name(name: &str) -> bool {
    name.len() == 26 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Opens every block; moves the ones that fail aside into `quarantine/`.
fn open_blocks(dir: &Path) -> Result<(Vec<Arc<Block>>, Vec<QuarantinedBlock>), Error> {
    let mut blocks = Vec::new();
    let mut quarantined = Vec::new();
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_block_dir_name(n))
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                let q = dir.join("quarantine");
                fs::create_dir_all(&q).map_err(|e| Error::io(&q, e))?;
                tracing::error!(block = %name, error = %e, "block failed to open; moved to quarantine/");
                let time_range = BlockMeta::read(&path).ok().map(|m| (m.min_time, m.max_time));
                fs::rename(&path, q.join(&name)).map_err(|e| Error::io(&path, e))?;
                quarantined.push(QuarantinedBlock {
                    block: name.clone(),
                    reason: e.to_string(),
                    moved_to: q.join(&name),
                    time_range,
                    replaced_by: None,
                    at_ms: damage::now_ms(),
                });
            }
        }
    }
    let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
    let leftovers = compact::leftover_blocks(&metas);
    if !leftovers.is_empty() {
        tracing::warn!(blocks = ?leftovers, "deleting blocks already merged into a compacted block");
        for b in blocks.iter().filter(|b| leftovers.contains(&b.meta().ulid)) {
            delete_dir(b.dir())?;
        }
        blocks.retain(|b| !leftovers.contains(&b.meta().ulid));
    }
    blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid.clone()));
    Ok((blocks, quarantined))
}

/// Deletes a directory crash-safely: renamed first so a half-deleted block
/// is never loaded (the `.deleted` suffix is cleaned up at open).
fn delete_dir(path: &Path) -> Result<(), Error> {
    let mut doomed = path.as_os_str().to_owned();
    doomed.push(".deleted");
    let doomed = PathBuf::from(doomed);
    fs::rename(path, &doomed).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    fs::remove_dir_all(&doomed).map_err(|e| Error::io(&doomed, e))
}

/// [`delete_dir`] through the file layer.
fn delete_dir_on(fs: &dyn FileSystem, path: &Path) -> Result<(), Error> {
    let mut doomed = path.as_os_str().to_owned();
    doomed.push(".deleted");
    let doomed = PathBuf::from(doomed);
    fs.rename(path, &doomed).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        fs.sync_dir(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs.remove_dir_all(&doomed).map_err(|e| Error::io(&doomed, e))
}

/// The retention floor at open (`i64::MIN` if nothing was ever deleted).
/// Blocks wholly below it are deleted (a crash after the floor was raised
/// and before its blocks were gone). A damaged floor file does not stop the
/// database: the oldest block's start is a safe floor (retention never
/// leaves holes, so everything older was deleted), and it is rewritten.
fn load_floor(fs: &dyn FileSystem, dir: &Path, blocks: &mut Vec<Arc<Block>>) -> Result<i64, Error> {
    let floor = match floor::read(dir) {
        Ok(f) => f.unwrap_or(i64::MIN),
        Err(e) => {
            let f = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(i64::MIN);
            tracing::error!(error = %e, floor = f, "retention floor unreadable; using the oldest block's start");
            floor::write(fs, dir, f)?;
            f
        }
    };
    let below: Vec<Arc<Block>> = blocks.iter().filter(|b| b.meta().max_time <= floor).cloned().collect();
    for b in &below {
        tracing::warn!(block = %b.meta().ulid, floor, "deleting a block retention had already given up");
        delete_dir_on(fs, b.dir())?;
    }
    blocks.retain(|b| b.meta().max_time > floor);
    Ok(floor)
}

/// Deletes every quarantined block (size pressure).
fn purge_quarantine(fs: &dyn FileSystem, quarantine: &Path) -> Result<(), Error> {
    let Ok(rd) = std::fs::read_dir(quarantine) else { return Ok(()) };
    for e in rd.filter_map(|e| e.ok()) {
        tracing::warn!(block = %e.path().display(), "size retention deletes a quarantined block");
        let path = e.path();
        let r = if path.is_dir() { fs.remove_dir_all(&path) } else { fs.remove_file(&path) };
        r.map_err(|err| Error::io(&path, err))?;
    }
    Ok(())
}

/// Bytes in the directory tree `path`, hard-linked files counted once.
fn dir_size(path: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    dir_size_once(path, &mut seen)
}

/// Bytes of the files under `path`, each file counted once however many
/// hard links it has: a snapshot hard-links every block, and counting the
/// links again would make size retention delete real blocks to pay for
/// bytes that take no extra room.
fn dir_size_once(path: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = fs::read_dir(path) else { return 0 };
    let mut total = 0;
    for e in rd.filter_map(|e| e.ok()) {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_size_once(&e.path(), seen),
            Ok(m) if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) => {}
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

/// Recreates the tree `from` under `to` with hard links (copies when the
/// destination is on another file system).
fn link_tree(from: &Path, to: &Path) -> Result<(), Error> {
    fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if src.is_dir() {
            link_tree(&src, &dst)?;
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    sync_dir(to)
}
