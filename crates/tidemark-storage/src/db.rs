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
//! ```

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::block::{self, Block, BlockMeta, BlockWriteOptions, CompactionMeta};
use crate::chunkenc::{ChunkSeries, Encoding};
use crate::damage::{self, DamageLog, DamageReport, QuarantinedBlock};
use crate::head::{CommitLog, Head, HeadAppender, HeadOptions};
use crate::querier::{Querier, SeriesSource};
use crate::retention::{self, BlockInfo};
use crate::wal::{checkpoint_bound, Record, SyncPolicy, Wal, WalHold, WalHolds, WalOptions};
use crate::{compact, AppendError, Error, Labels, Matcher, NameValidation};

mod scrub;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

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
    /// Keep everything on disk (blocks, WAL, checkpoints, leftovers) under
    /// this many bytes by deleting the oldest blocks. Default: none.
    pub retention_size: Option<u64>,
    /// Accept samples up to this far behind the newest sample even when they
    /// are older than their series' last sample. Default: 0 (disabled).
    pub out_of_order_window: Duration,
    /// When committed samples are fsynced. Default: every commit.
    pub wal_sync: SyncPolicy,
    /// WAL segment size in bytes. Default: 128 MiB.
    pub wal_segment_size: u64,
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
    /// anyway (the reader sees a skip). Default: 1 GiB.
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
            samples_per_chunk: 120,
            block_encoding: Encoding::Sealed,
            name_validation: NameValidation::Utf8,
            maintenance_interval: Some(Duration::from_secs(30)),
            wal_hold_max_bytes: 1 << 30,
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
            scrub_bytes_per_sec: 64 << 20,
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
}

#[derive(Default)]
struct Counters {
    head_persists: AtomicU64,
    compactions: AtomicU64,
    retention_time: AtomicU64,
    retention_size: AtomicU64,
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
    /// Wakes the background thread early (size pressure).
    wake: Mutex<Option<mpsc::Sender<Wake>>>,
    /// Set when the disk holds more than `retention_size` and retention
    /// could not bring it under: commits fail with [`Error::StorageFull`].
    storage_full: AtomicBool,
    /// Last time (ms since open) a commit looked at the disk usage.
    last_size_check: AtomicU64,
    opened_at: std::time::Instant,
    /// What damaged files cost (WAL damage, damaged chunks, quarantine).
    damage: Arc<DamageLog>,
    /// Stops the scrub thread.
    scrub_stop: Mutex<Option<mpsc::Sender<()>>>,
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
            None => (None, Arc::new(Head::new(head_opts(&opts), None)), Vec::new()),
            Some(dir) => {
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                let lock = lock_dir(&dir)?;
                load_stored_format(&dir, &mut opts)?;
                remove_tmp_dirs(&dir)?;
                let (blocks, quarantined) = open_blocks(&dir)?;
                for q in quarantined {
                    damage.quarantined(q);
                }
                let wal_dir = dir.join("wal");
                let log = Arc::new(LateWal(OnceLock::new()));
                let head = Arc::new(Head::new(head_opts(&opts), Some(log.clone() as Arc<dyn CommitLog>)));
                let wal_opts = WalOptions { segment_size: opts.wal_segment_size, sync: opts.wal_sync };
                // Damaged WAL files are copied to quarantine/, which size
                // retention counts and may purge.
                let quarantine = dir.join("quarantine");
                let (wal, mut stats) =
                    Wal::open_and_replay_with_quarantine(&wal_dir, wal_opts, &quarantine, |rec| match rec {
                        Record::Series(s) => {
                            for rs in s {
                                head.replay_series(rs.series_ref, rs.labels);
                            }
                        }
                        Record::Samples(s) => head.replay_samples(&s),
                    })?;
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
                let disk =
                    Disk { dir, wal, lock: Mutex::new(Some(lock)), holds, deferred_checkpoint: Mutex::new(None) };
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
            storage_full: AtomicBool::new(false),
            last_size_check: AtomicU64::new(0),
            opened_at: started,
            damage,
            scrub_stop: Mutex::new(None),
        });
        inner.apply_retention()?;
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
                        if let Err(e) = inner.maintain() {
                            tracing::error!(error = %e, "background maintenance failed");
                        }
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
    /// Returns the number of blocks written.
    pub fn persist_head(&self) -> Result<usize, Error> {
        let _g = self.inner.maintenance.lock();
        self.inner.persist_head(false)
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
        self.inner.update_storage_full();
        Ok(deleted)
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
            let head = &self.inner.head;
            let (hmin, hmax) = (head.min_time(), head.max_time());
            if hmin <= hmax {
                let range = self.inner.opts.block_range;
                let mut start = align_down(hmin, range);
                while start <= hmax {
                    let end = start.saturating_add(range);
                    let series = head.samples_for_block(start, end);
                    if !series.is_empty() {
                        block::write_block(dir, start, end, level1(), series.into_iter(), &self.inner.write_options())?;
                    }
                    start = end;
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
    /// Ranges the newest sample has passed (under size pressure).
    Complete,
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

    fn maintain(&self) -> Result<(), Error> {
        let _g = self.maintenance.lock();
        // Retention first: never spend disk and CPU compacting blocks that
        // are about to be deleted.
        self.apply_retention()?;
        if let Some(disk) = &self.disk {
            let deferred = disk.deferred_checkpoint.lock().take();
            if let Some((wanted, mint)) = deferred {
                self.checkpoint_wal(disk, wanted, mint)?;
            }
            self.persist_head(false)?;
            self.repair_damaged_blocks()?;
            if self.over_size_limit() {
                // The WAL counts against the limit too: cut every complete
                // range out of the head now so the WAL can be checkpointed.
                self.persist_head_ranges(PersistMode::Complete)?;
            }
            self.compact_all()?;
            self.apply_retention()?;
        }
        self.update_storage_full();
        Ok(())
    }

    fn disk_usage(&self) -> DiskUsage {
        let Some(disk) = &self.disk else { return DiskUsage::default() };
        DiskUsage {
            blocks: self.blocks.read().iter().map(|b| b.size_bytes()).sum(),
            wal: disk.wal.size_bytes(),
            quarantine: dir_size(&disk.dir.join("quarantine")),
        }
    }

    fn over_size_limit(&self) -> bool {
        self.opts.retention_size.is_some_and(|limit| self.disk_usage().total() > limit)
    }

    /// Refuses writes while over the size limit with nothing left to delete.
    fn update_storage_full(&self) {
        let full = self.over_size_limit() && self.blocks.read().is_empty();
        if full != self.storage_full.swap(full, Ordering::Relaxed) {
            if full {
                tracing::error!(usage = ?self.disk_usage(), limit = ?self.opts.retention_size, "over the size limit with no block left to delete: refusing writes");
            } else {
                tracing::info!("back under the size limit: accepting writes");
            }
        }
    }

    /// After a commit: at most once a second, compare disk usage with the
    /// size limit and wake maintenance early instead of waiting for its tick.
    fn check_size_pressure(&self) {
        if self.opts.retention_size.is_none() {
            return;
        }
        let now = self.opened_at.elapsed().as_millis() as u64;
        let last = self.last_size_check.load(Ordering::Relaxed);
        if now < last + 1000
            || self.last_size_check.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        if self.over_size_limit() {
            if let Some(tx) = self.wake.lock().as_ref() {
                let _ = tx.send(Wake::Now);
            }
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
            let end = start.saturating_add(range);
            let ready = hmax >= end.saturating_add(range / 2) && hmax.saturating_sub(self.opts.ooo_window_ms()) >= end;
            let go = match mode {
                PersistMode::Ready => ready,
                PersistMode::Complete => hmax >= end,
                PersistMode::All => true,
            };
            if !go {
                break;
            }
            // From here on no sample below `end` can be applied, so nothing
            // slips in between copying the range and truncating it. (Unless
            // forced, `ready` already implies it: in-order appends must be
            // within half a range of the newest sample, out-of-order ones
            // within the window.)
            self.head.set_min_valid_time(end);
            let series = self.head.samples_for_block(start, end);
            if !series.is_empty() {
                let meta =
                    block::write_block(&disk.dir, start, end, level1(), series.into_iter(), &self.write_options())?;
                let b = Block::open(&disk.dir.join(&meta.ulid))?;
                let mut blocks = self.blocks.write();
                blocks.push(Arc::new(b));
                blocks.sort_by_key(|b| (b.meta().min_time, b.meta().ulid.clone()));
                written += 1;
                self.counters.head_persists.fetch_add(1, Ordering::Relaxed);
            }
            self.head.truncate(end);
            let closed = disk.wal.cut_segment()?;
            self.checkpoint_wal(disk, closed, end)?;
        }
        Ok(written)
    }

    /// Checkpoints the WAL up to segment `wanted`, or less far when readers
    /// hold segments ([`Db::hold_wal`]); what is held back is retried by
    /// the next maintenance.
    fn checkpoint_wal(&self, disk: &Disk, wanted: u64, mint: i64) -> Result<(), Error> {
        let first = disk.wal.segment_range().0;
        let max = self.opts.wal_hold_max_bytes;
        let upto = checkpoint_bound(wanted, first, disk.holds.min(), max, |s| disk.wal.segment_bytes(s));
        if let Some(upto) = upto {
            let head = self.head.clone();
            let stats = disk.wal.checkpoint(upto, move |r| head.is_live(r), mint)?;
            if let Some(d) = stats.damage {
                self.damage.wal(d);
            }
        }
        let deferred = (upto < Some(wanted)).then_some((wanted, mint));
        *disk.deferred_checkpoint.lock() = deferred;
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
            let refs: Vec<&Block> = inputs.iter().map(|b| b.as_ref()).collect();
            let meta = match compact::compact(&disk.dir, &refs, &self.write_options()) {
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
                delete_dir(b.dir())?;
            }
            n += 1;
            self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Applies retention; returns the ids of deleted blocks.
    fn apply_retention(&self) -> Result<Vec<String>, Error> {
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
            Some(r) => retention::beyond_time(&infos, newest, r),
            None => Vec::new(),
        };
        let by_time = doomed.len();
        if let Some(limit) = self.opts.retention_size {
            let remaining: Vec<BlockInfo> = infos.iter().filter(|b| !doomed.contains(&b.id)).cloned().collect();
            let remaining_bytes: u64 = remaining.iter().map(|b| b.size_bytes).sum();
            // Quarantined blocks count against the limit and, being
            // unreadable, are the first to go when it is exceeded.
            let quarantine = disk.dir.join("quarantine");
            if disk.wal.size_bytes() + remaining_bytes + dir_size(&quarantine) > limit {
                purge_quarantine(&quarantine)?;
            }
            let other = disk.wal.size_bytes() + dir_size(&quarantine);
            doomed.extend(retention::beyond_size(&remaining, other, limit));
        }
        if doomed.is_empty() {
            return Ok(doomed);
        }
        let victims: Vec<Arc<Block>> = {
            let mut blocks = self.blocks.write();
            let v = blocks.iter().filter(|b| doomed.contains(&b.meta().ulid)).cloned().collect();
            blocks.retain(|b| !doomed.contains(&b.meta().ulid));
            v
        };
        for b in &victims {
            delete_dir(b.dir())?;
        }
        self.counters.retention_time.fetch_add(by_time as u64, Ordering::Relaxed);
        self.counters.retention_size.fetch_add((doomed.len() - by_time) as u64, Ordering::Relaxed);
        tracing::info!(blocks = ?doomed, "retention deleted blocks");
        Ok(doomed)
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

    /// Logs the batch to the WAL and makes it visible to queries. When this
    /// returns `Ok`, the samples survive a crash (per the fsync policy).
    ///
    /// Fails with [`Error::StorageFull`] (retryable) while the data
    /// directory is over `retention_size` and retention cannot bring it
    /// under the limit, rather than filling the disk.
    pub fn commit(self) -> Result<(), Error> {
        let db = self.db;
        if db.closed.load(Ordering::SeqCst) {
            self.head.rollback();
            return Err(Error::Closed);
        }
        if db.storage_full.load(Ordering::Relaxed) {
            self.head.rollback();
            let (used, limit) = (db.disk_usage().total(), db.opts.retention_size.unwrap_or(0));
            return Err(Error::StorageFull { used, limit });
        }
        self.head.commit()?;
        db.check_size_pressure();
        Ok(())
    }

    /// Discards the batch.
    pub fn rollback(self) {
        self.head.rollback();
    }
}

/// Bytes on disk, by kind.
#[derive(Debug, Clone, Copy, Default)]
struct DiskUsage {
    blocks: u64,
    wal: u64,
    quarantine: u64,
}

impl DiskUsage {
    fn total(&self) -> u64 {
        self.blocks + self.wal + self.quarantine
    }
}

struct HeadSource(Arc<Head>);

impl SeriesSource for HeadSource {
    fn select(&self, ms: &[Matcher], mint: i64, maxt: i64, _: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
        Ok(self.0.select(ms, mint, maxt))
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
            if stored.block_range_ms != opts.block_range {
                tracing::warn!(
                    stored = stored.block_range_ms,
                    requested = opts.block_range,
                    "block range is fixed when a data directory is created; using the stored value"
                );
                opts.block_range = stored.block_range_ms;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let stored = StoredFormat { format_version: 1, block_range_ms: opts.block_range };
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

/// Deletes every quarantined block (size pressure).
fn purge_quarantine(quarantine: &Path) -> Result<(), Error> {
    let Ok(rd) = fs::read_dir(quarantine) else { return Ok(()) };
    for e in rd.filter_map(|e| e.ok()) {
        tracing::warn!(block = %e.path().display(), "size retention deletes a quarantined block");
        let path = e.path();
        let r = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        r.map_err(|err| Error::io(&path, err))?;
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(path) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
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
