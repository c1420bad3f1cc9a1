//! The in-memory head: the active series, their recent samples in Gorilla
//! chunks, and an inverted label index.
//!
//! # Structure
//! - Series live in `stripes` sharded by `ref % stripes`; each shard is a
//!   `parking_lot::Mutex` over a dense array of `Box<MemSeries>` indexed
//!   by `ref / stripes` (see `slots.rs`), each shard on its own cache
//!   line. A second set of shards maps the stable hash of a label set to
//!   its ref (collisions are kept in a side map), so lookups by labels
//!   never take a global lock.
//! - The inverted index (`name → value → sorted refs`) sits behind one
//!   `RwLock`; it is written only when series are created or removed.
//! - Lock order: hash shard → series shard; the index lock is never held
//!   while taking a shard lock. `truncate_lock` (read by commits and
//!   replay, written by [`Head::truncate`]) makes truncation atomic with
//!   respect to applying samples. With a commit log, `commit_lock`
//!   orders commits into the log and `apply_turns` keeps each series'
//!   samples applied in that order (commits to disjoint series apply
//!   concurrently, in any order); the wait for the log's write and fsync
//!   holds neither, so concurrent commits share one (group commit).
//!
//! # Appending
//! [`HeadAppender`] buffers samples, checking each one against the series'
//! committed data and the samples buffered before it in the same batch
//! (Prometheus' `appendable`). [`HeadAppender::commit`] logs new series and
//! the samples, then applies them. Applying re-checks each sample against
//! the series only (never against the head's time bounds, except the
//! minimum valid time raised by truncation), so replaying the log in order
//! rebuilds exactly the same state; samples that lost a race with another
//! appender's commit are dropped and counted in [`CommitStats`], as
//! Prometheus does. Uncommitted samples are never visible to readers.
//!
//! A series cannot be garbage-collected while it is held: each buffered,
//! not yet applied sample holds it, and so does the appender that created
//! it until that appender commits or rolls back. Series records reach the
//! log lazily: the first commit that uses a series not yet logged (whoever
//! created it) logs it before its samples.
//!
//! Series are created (and indexed) at the first append, as in Prometheus.
//! A series created by an appender that rolls back is removed again if it
//! holds no samples and no other appender is using it; otherwise it stays
//! and, if it never receives samples, [`Head::truncate`] collects it.
//!
//! # Out-of-order samples
//! With `ooo_window > 0`, a sample older than its series' newest sample but
//! no older than `max_time - ooo_window` is kept in the series'
//! out-of-order buffer (sorted, up to 32 samples) and then compressed into
//! out-of-order chunks. Reads return those as extra chunks that may overlap
//! the in-order ones. Deviation from Prometheus: a sample newer than its
//! series' newest sample always goes to the in-order chunk, even when it is
//! older than `max_time - chunk_range/2` (Prometheus would route it to the
//! out-of-order chunk); this keeps the in-order/out-of-order split a pure
//! function of the series' data, which replay relies on.

mod appender;
pub mod chunk_file;
pub(crate) mod histograms;
mod index;
mod key_map;
mod open_copies;
mod sealer;
mod series;
mod slots;
mod symbols;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::block::writer::SeriesData;
use crate::chunkenc::ChunkSeries;
use crate::matcher::Matcher;
use crate::postings::{postings_for_matchers, PostingsIndex};
use crate::sample::Sample;
use crate::Labels;

pub use appender::{CommitStats, HeadAppender, PackedHandle, SeriesHandle};
use chunk_file::MappedRecords;
pub use chunk_file::{HeadChunkError, HeadChunks};
pub use symbols::LabelsView;

use index::{FxHashMap, MemIndex};
use key_map::KeyMap;
use open_copies::OpenCopies;
use series::{Applied, CutParams, MemSeries};
use slots::SeriesSlots;
use symbols::SymbolTable;

/// Milliseconds in two hours: Prometheus' default block range.
pub const DEFAULT_CHUNK_RANGE: i64 = 2 * 60 * 60 * 1000;

/// Options of a [`Head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadOptions {
    /// The block range in milliseconds: chunks never cross a multiple of it
    /// (aligned to 0), and without an out-of-order window samples older
    /// than `max_time - chunk_range / 2` are rejected. Default: 2 h.
    pub chunk_range: i64,
    /// Target samples per chunk. Default: 120 (clamped to 4..=32767).
    pub samples_per_chunk: usize,
    /// Out-of-order window in milliseconds; 0 disables out-of-order
    /// ingestion (Prometheus' `out_of_order_time_window`). Default: 0.
    pub ooo_window: i64,
    /// Number of lock shards for series (rounded up to a power of two).
    /// Default: 16384.
    pub stripes: usize,
    /// Whether each series cuts its chunks on its own grid, shifted by a
    /// fraction of a chunk derived from its ref, instead of all series
    /// cutting at the same instants (Prometheus' rule). With aligned cuts
    /// every open chunk is full at the same moment, and the head's peak
    /// memory holds a full chunk per series; staggered, the open chunks
    /// average half a chunk at any time. Costs about one more (shorter)
    /// chunk per series per block range. Default: true.
    pub stagger_chunk_cuts: bool,
}

impl Default for HeadOptions {
    fn default() -> HeadOptions {
        HeadOptions {
            chunk_range: DEFAULT_CHUNK_RANGE,
            samples_per_chunk: 120,
            ooo_window: 0,
            stripes: 16384,
            stagger_chunk_cuts: true,
        }
    }
}

/// Where committed batches go before they are applied (the database plugs
/// its write-ahead log in here).
pub trait CommitLog: Send + Sync {
    /// Durably records `records` (a `Series` record for new series, then a
    /// `Samples` record). An error aborts the commit: nothing is applied.
    fn log(&self, records: &[crate::wal::Record]) -> Result<(), crate::Error>;

    /// Records `records` for data that can be recomputed (rule results): as
    /// [`CommitLog::log`], but the write need not be fsynced before it
    /// returns. Default: [`CommitLog::log`].
    fn log_relaxed(&self, records: &[crate::wal::Record]) -> Result<(), crate::Error> {
        self.log(records)
    }

    /// The first half of a commit's logging, called under the head's
    /// commit lock (so log order is the order commits are applied in):
    /// queues `records` ([`CommitLog::log`] when `durable`, else
    /// [`CommitLog::log_relaxed`]) and returns a ticket that
    /// [`CommitLog::wait`] turns into the outcome, outside that lock. A log
    /// with group commit (the WAL) returns at once, so concurrent commits
    /// share one write and fsync. Default: logs synchronously here and
    /// returns no ticket.
    fn submit(
        &self,
        records: &[crate::wal::Record],
        durable: bool,
    ) -> Result<Option<crate::wal::WalTicket>, crate::Error> {
        if durable {
            self.log(records)?;
        } else {
            self.log_relaxed(records)?;
        }
        Ok(None)
    }

    /// Encodes `records` for [`CommitLog::submit_encoded`]. A commit calls
    /// it for its `Samples` record before taking the commit lock, so the
    /// encoding (the costly part of logging) of concurrent commits overlaps
    /// instead of queueing behind that lock. `None` (the default): this log
    /// takes only records ([`CommitLog::submit`]).
    fn encode(&self, records: &[crate::wal::Record]) -> Option<Result<crate::wal::Encoded, crate::Error>> {
        let _ = records;
        None
    }

    /// [`CommitLog::submit`] of `first` (encoded here, under the commit
    /// lock) followed by `then` (from this log's [`CommitLog::encode`]).
    /// Default: refused, as a log without `encode` never gets here.
    fn submit_encoded(
        &self,
        first: &[crate::wal::Record],
        then: crate::wal::Encoded,
        durable: bool,
    ) -> Result<Option<crate::wal::WalTicket>, crate::Error> {
        let _ = (first, then, durable);
        Err(crate::Error::InvalidArgument("this commit log takes records, not encoded frames".into()))
    }

    /// The second half: returns once the records of `ticket` are logged as
    /// their [`CommitLog::submit`] asked, or with the error that lost them
    /// (then nothing of them counts as logged). Default: `Ok` (a log
    /// without [`CommitLog::submit`] of its own never hands out tickets).
    fn wait(&self, ticket: crate::wal::WalTicket) -> Result<(), crate::Error> {
        let _ = ticket;
        Ok(())
    }
}

/// Cardinality of the head's index, as Prometheus' `/api/v1/status/tsdb`
/// reports it. Each list holds at most the requested number of entries,
/// largest count first (equal counts by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cardinality {
    /// Series in the head.
    pub num_series: u64,
    /// Distinct `name=value` pairs in the index.
    pub num_label_pairs: u64,
    /// Oldest timestamp in the head (`i64::MAX` when empty).
    pub min_time: i64,
    /// Newest timestamp in the head (`i64::MIN` when empty).
    pub max_time: i64,
    /// Series per metric name.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Distinct values per label name.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Bytes of the distinct values of each label name (each value counted
    /// once, however many series carry it; Prometheus 2.x's measure).
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// Series per `name=value` pair.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Counters and sizes of a [`Head`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    /// Series held.
    pub num_series: u64,
    /// Chunks held (closed, open and out-of-order).
    pub num_chunks: u64,
    /// Samples stored since creation (commits and replay).
    pub samples_appended: u64,
    /// Of those, samples stored as out-of-order.
    pub out_of_order_samples_appended: u64,
    /// Samples rejected as out of order.
    pub rejected_out_of_order: u64,
    /// Samples rejected as too old (out of bounds).
    pub rejected_too_old: u64,
    /// Samples rejected for a different value at an existing timestamp.
    pub rejected_duplicate: u64,
    /// Replayed samples whose series reference was unknown.
    pub replay_unknown_refs: u64,
    /// Oldest sample timestamp (`i64::MAX` when empty).
    pub min_time: i64,
    /// Newest sample timestamp (`i64::MIN` when empty).
    pub max_time: i64,
    /// Approximate heap bytes held by series, chunks, maps and the index.
    pub memory_bytes: u64,
    /// Bytes of closed in-order chunks in the head chunk files (page cache,
    /// not heap).
    pub chunk_file_bytes: u64,
    /// Closed head chunks that failed to read back (checksum, bounds).
    pub damaged_chunk_reads: u64,
}

/// Where the head's heap bytes go (approximate, from capacities): what
/// [`Head::memory_breakdown`] reports, for measuring bytes per series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeadMemory {
    /// Series held.
    pub series: u64,
    /// Series' label sets as symbol ids (the strings are in
    /// [`HeadMemory::symbol_table`]).
    pub labels: u64,
    /// The `MemSeries` structs (boxed, one allocation each).
    pub series_structs: u64,
    /// The head's symbol table (each distinct label name and value once).
    pub symbol_table: u64,
    /// Distinct label names and values in the symbol table.
    pub symbols: u64,
    /// The ref → series maps (entries, control bytes, spare slots).
    pub series_maps: u64,
    /// The label-hash → ref maps.
    pub hash_maps: u64,
    /// The inverted index (names, values, postings lists).
    pub index: u64,
    /// Lists of closed in-order chunk references (capacity).
    pub closed_chunk_refs: u64,
    /// Closed in-order chunk bytes held in RAM by the chunk store (all of
    /// them without a directory; only its write buffer with one).
    pub closed_chunk_bytes_in_ram: u64,
    /// Closed in-order chunk bytes in head chunk files (page cache).
    pub closed_chunk_bytes_on_disk: u64,
    /// Open chunks' encoded bytes.
    pub open_chunk_bytes: u64,
    /// Open chunks' spare buffer capacity.
    pub open_chunk_spare: u64,
    /// Out-of-order chunks and buffers.
    pub out_of_order: u64,
}

/// A shard of series, keyed by ref.
type SeriesShard = SeriesSlots;

/// Refs between two stages of the select loop's prefetching (see
/// `Head::prefetch_ahead`): a stage's loads have this many series' work
/// to arrive in. 4 is the distance measured against the build without
/// prefetching (`benches/results/perf-query7-2026-12-06g.md`); 8 measured
/// within noise of 4.
const SELECT_PREFETCH_STRIDE: usize = 4;

/// Refs the select loop reads under one hold of the symbol table's read
/// lock (see `Head::select_refs`).
const SELECT_SYMBOLS_RUN: usize = 256;

/// How much of a series' open chunk the select loop prefetches ahead of
/// copying it (a full chunk of 120 samples is a few hundred bytes).
const OPEN_CHUNK_PREFETCH_BYTES: usize = 512;

/// A lock shard on its own cache line: the lock word and the map header
/// are fetched together, and neighbouring shards never share a line.
#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A shard of the label-hash map: label hash → candidate refs.
///
/// The shard is picked by the hash's low bits, so the map is keyed by its
/// high 32 bits (the key) and holds 32-bit refs: 8 bytes per entry instead
/// of 16. Callers compare the labels of every candidate, so two label sets
/// whose hashes share a key only cost a second candidate: the first ref of
/// a key is in `primary`, any other (and any ref past `u32::MAX`) in
/// `collisions`. `primary` is a sorted array while the shard is small (see
/// `key_map.rs`): ~8.5 bytes per series instead of a hash table's 9–19.
#[derive(Default)]
struct HashShard {
    primary: KeyMap,
    collisions: FxHashMap<u32, Vec<u64>>,
}

impl HashShard {
    /// The map key of label hash `h`.
    #[inline]
    fn key(h: u64) -> u32 {
        (h >> 32) as u32
    }

    /// The refs whose label hash may be `h`, to be checked by labels.
    fn candidates(&self, h: u64) -> impl Iterator<Item = u64> + '_ {
        let k = HashShard::key(h);
        let first = self.primary.get(k).map(u64::from);
        let rest = if self.collisions.is_empty() { None } else { self.collisions.get(&k) };
        first.into_iter().chain(rest.into_iter().flatten().copied())
    }

    fn insert(&mut self, h: u64, r: u64) {
        let k = HashShard::key(h);
        let stored = u32::try_from(r).is_ok_and(|narrow| self.primary.insert_new(k, narrow));
        if !stored {
            self.collisions.entry(k).or_default().push(r);
        }
    }

    fn remove(&mut self, h: u64, r: u64) {
        let k = HashShard::key(h);
        if self.primary.get(k).is_some_and(|p| u64::from(p) == r) {
            self.primary.remove(k);
            let Some(v) = self.collisions.get_mut(&k) else { return };
            // Keep the first ref of the key in `primary` when it fits.
            if let Some(i) = v.iter().position(|&x| u32::try_from(x).is_ok()) {
                let next = v.swap_remove(i);
                self.primary.insert_new(k, next as u32);
            }
            if v.is_empty() {
                self.collisions.remove(&k);
            }
        } else if let Some(v) = self.collisions.get_mut(&k) {
            v.retain(|&x| x != r);
            if v.is_empty() {
                self.collisions.remove(&k);
            }
        }
    }

    /// Heap bytes: the primary map, the collision table's buckets (an entry
    /// and a control byte each; hashbrown keeps at least an eighth of its
    /// buckets free) and the collision lists.
    fn heap_bytes(&self) -> usize {
        fn buckets(capacity: usize) -> usize {
            if capacity == 0 {
                0
            } else {
                (capacity * 8 / 7).next_power_of_two()
            }
        }
        let lists: usize = self.collisions.values().map(|v| v.capacity() * 8).sum();
        self.primary.heap_bytes() + buckets(self.collisions.capacity()) * 33 + lists
    }
}

#[derive(Default)]
struct Counters {
    samples_appended: AtomicU64,
    ooo_appended: AtomicU64,
    rejected_out_of_order: AtomicU64,
    rejected_too_old: AtomicU64,
    rejected_duplicate: AtomicU64,
    replay_unknown_refs: AtomicU64,
}

/// The in-memory head of the database. `Send + Sync`: appenders on many
/// threads and readers may use it concurrently.
///
/// ```
/// use tidemark_storage::head::{Head, HeadOptions};
/// use tidemark_storage::{Labels, Matcher};
/// let head = Head::new(HeadOptions::default(), None);
/// let mut app = head.appender();
/// let up = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
/// let r = app.append(&up, 1000, 1.0).unwrap();
/// app.append_ref(r, 2000, 1.0).unwrap();
/// app.commit().unwrap();
/// let series = head.select(&[Matcher::equal("job", "api")], 0, 5000);
/// assert_eq!(series.len(), 1);
/// assert_eq!(head.max_time(), 2000);
/// ```
pub struct Head {
    opts: HeadOptions,
    mask: u64,
    log: Option<Arc<dyn CommitLog>>,
    series: Box<[Padded<Mutex<SeriesShard>>]>,
    hashes: Box<[Padded<Mutex<HashShard>>]>,
    index: RwLock<MemIndex>,
    /// Label names and values of the series (see `symbols.rs`). Always
    /// the last lock taken: never held while waiting for another.
    symbols: RwLock<SymbolTable>,
    next_ref: AtomicU64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    /// Whether any series ever held a native histogram (until restart, or
    /// replay of one): the in-place window reads are floats-only.
    has_histograms: std::sync::atomic::AtomicBool,
    /// No sample older than this is accepted (raised by truncation).
    min_valid_time: AtomicI64,
    truncate_lock: RwLock<()>,
    /// The removal epoch (see [`SeriesHandle`]): a value drawn from the
    /// process-wide [`next_epoch`] when the head is made and again before
    /// each series is removed (under its shard lock). While it is
    /// unchanged, no series of this head has been removed since it was
    /// read, so every series address read with it is still live.
    epoch: AtomicU64,
    /// Held while a commit picks the series records it logs and queues its
    /// records; holds the next apply ticket (see [`ApplyTurns`]).
    commit_lock: Mutex<u64>,
    /// Commits apply in the order they were queued in the log.
    apply_turns: ApplyTurns,
    /// Replayed series refs that duplicate another ref's labels → that ref.
    replay_aliases: Mutex<HashMap<u64, u64>>,
    counters: Counters,
    /// Buffers of finished appenders, reused by new ones.
    buffer_pool: Mutex<Vec<appender::Buffers>>,
    /// Where closed in-order chunks go (files, or RAM without a directory).
    chunks: HeadChunks,
    /// The exemplars of the head's series (`exemplar/`).
    exemplars: crate::exemplar::ExemplarStorage,
}

/// A removal epoch never handed out before in this process: the epochs of
/// different heads never meet, so a [`SeriesHandle`] made by one head never
/// passes the epoch check of another.
fn next_epoch() -> u64 {
    static EPOCHS: AtomicU64 = AtomicU64::new(1);
    EPOCHS.fetch_add(1, Ordering::Relaxed)
}

/// Orders the apply step of logged commits where their order matters.
///
/// A commit takes a ticket (in log order, under the commit lock) and waits
/// for its records to be logged without any head lock. Replay applies the
/// log in order, and applying re-checks each sample against what its
/// series holds, so two commits to one series must apply in log order or
/// the head could keep different samples than replay would. Commits to
/// different series need no order at all.
///
/// Invariant kept by the appender: a commit applies a series' samples
/// without waiting only when no other appender has samples of that series
/// buffered or a hold on it (`MemSeries::pending` counts only its own),
/// which rules out every earlier commit touching the series (each buffered
/// before it took its ticket). The other series wait for the commit's turn:
/// every earlier ticket completed. A commit completes when it is done
/// applying (or failed), in any order; the turn passes to ticket `t` once
/// all tickets before `t` have completed.
#[derive(Default)]
struct ApplyTurns {
    state: Mutex<TurnState>,
    /// Ticket `t` waits on `turned[t % TURN_SLOTS]`, so passing the turn
    /// wakes the commit whose turn it now is (and any waiting a multiple of
    /// [`TURN_SLOTS`] tickets later), not every waiting commit.
    turned: [Condvar; TURN_SLOTS],
}

#[derive(Default)]
struct TurnState {
    /// The oldest ticket not completed: it is this ticket's turn.
    next: u64,
    /// Tickets after `next` that completed out of turn (few: at most the
    /// commits in flight).
    done_ahead: Vec<u64>,
}

/// Condvars of [`ApplyTurns`]: more than the commits that usually wait
/// for their turn at once (those of one group-commit batch).
const TURN_SLOTS: usize = 8;

impl ApplyTurns {
    /// The completion guard of `ticket`: completes it when dropped (also
    /// on a failed commit, or a panic).
    fn guard(&self, ticket: u64) -> Turn<'_> {
        Turn { turns: self, ticket }
    }

    /// Waits until every ticket before `ticket` has completed.
    fn wait_for(&self, ticket: u64) {
        let mut st = self.state.lock();
        while st.next != ticket {
            self.turned[(ticket % TURN_SLOTS as u64) as usize].wait(&mut st);
        }
    }

    /// Marks `ticket` completed; if it was the oldest, the turn passes to
    /// the next ticket not yet completed.
    fn complete(&self, ticket: u64) {
        let mut st = self.state.lock();
        if st.next != ticket {
            debug_assert!(ticket > st.next && !st.done_ahead.contains(&ticket), "ticket {ticket} completed twice");
            st.done_ahead.push(ticket);
            return;
        }
        st.next += 1;
        while let Some(i) = st.done_ahead.iter().position(|&t| t == st.next) {
            st.done_ahead.swap_remove(i);
            st.next += 1;
        }
        self.turned[(st.next % TURN_SLOTS as u64) as usize].notify_all();
    }
}

/// One commit's ticket, completed when dropped.
struct Turn<'a> {
    turns: &'a ApplyTurns,
    ticket: u64,
}

impl Turn<'_> {
    /// Waits for this ticket's turn (see [`ApplyTurns::wait_for`]).
    fn wait(&self) {
        self.turns.wait_for(self.ticket);
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.turns.complete(self.ticket);
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head").field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl Head {
    /// An empty head. `log`, if given, receives every commit before it is
    /// applied. Closed chunks stay in RAM ([`HeadChunks::in_memory`]).
    pub fn new(opts: HeadOptions, log: Option<Arc<dyn CommitLog>>) -> Head {
        Head::with_chunks(opts, log, HeadChunks::in_memory())
    }

    /// An empty head whose closed in-order chunks go to `chunks` (e.g. a
    /// [`HeadChunks::open`] directory, so they leave the heap).
    ///
    /// ```
    /// use tidemark_storage::head::{Head, HeadChunks, HeadOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = HeadChunks::open(tidemark_storage::vfs::os(), &dir.path().join("chunks_head"), 1 << 20).unwrap();
    /// let head = Head::with_chunks(HeadOptions::default(), None, store);
    /// assert_eq!(head.stats().chunk_file_bytes, 0);
    /// ```
    pub fn with_chunks(opts: HeadOptions, log: Option<Arc<dyn CommitLog>>, chunks: HeadChunks) -> Head {
        let mut opts = opts;
        opts.samples_per_chunk = opts.samples_per_chunk.clamp(4, crate::chunkenc::xor::MAX_SAMPLES / 2);
        opts.chunk_range = opts.chunk_range.max(1);
        opts.ooo_window = opts.ooo_window.max(0);
        let n = opts.stripes.clamp(1, 1 << 20).next_power_of_two();
        opts.stripes = n;
        Head {
            opts,
            mask: n as u64 - 1,
            log,
            series: (0..n).map(|low| Padded(Mutex::new(SeriesSlots::new(low as u32, n.trailing_zeros())))).collect(),
            hashes: (0..n).map(|_| Padded::default()).collect(),
            index: RwLock::new(MemIndex::default()),
            symbols: RwLock::new(SymbolTable::default()),
            next_ref: AtomicU64::new(1),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            has_histograms: std::sync::atomic::AtomicBool::new(false),
            min_valid_time: AtomicI64::new(i64::MIN),
            truncate_lock: RwLock::new(()),
            epoch: AtomicU64::new(next_epoch()),
            commit_lock: Mutex::new(0),
            apply_turns: ApplyTurns::default(),
            replay_aliases: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            buffer_pool: Mutex::new(Vec::new()),
            chunks,
            exemplars: crate::exemplar::ExemplarStorage::default(),
        }
    }

    /// The store of closed in-order chunks.
    pub fn chunk_store(&self) -> &HeadChunks {
        &self.chunks
    }

    /// The exemplar store (limit [`crate::exemplar::DEFAULT_MAX_EXEMPLARS`]
    /// unless resized), filled by [`HeadAppender::append_exemplar`] and
    /// [`Head::replay_exemplars`].
    pub fn exemplars(&self) -> &crate::exemplar::ExemplarStorage {
        &self.exemplars
    }

    /// Stores logged exemplars again, in order, without logging them.
    /// Exemplars of refs the head does not hold are skipped; refused ones
    /// (out of order) are counted by the store.
    pub fn replay_exemplars(&self, exemplars: &[crate::wal::RefExemplar]) {
        if !self.exemplars.enabled() {
            return;
        }
        let aliases = self.replay_aliases.lock().clone();
        for e in exemplars {
            let r = aliases.get(&e.series_ref).copied().unwrap_or(e.series_ref);
            let Some(labels) = self.series_shard(r).lock().get(&r).map(|s| self.labels_of(s)) else { continue };
            let ex = crate::exemplar::Exemplar { labels: e.labels.clone(), value: e.v, t: e.t };
            let _ = self.exemplars.add(&labels, &ex);
        }
    }

    /// The ref of the series `labels`, if the head holds it (a lookup
    /// only: nothing is created). An exemplar sent apart from its series'
    /// samples (Prometheus' remote write does so) finds its series with it.
    pub fn ref_of(&self, labels: &Labels) -> Option<u64> {
        let h = labels.stable_hash();
        let hs = self.hash_shard(h).lock();
        for cand in hs.candidates(h) {
            let shard = self.series_shard(cand).lock();
            if shard.get(&cand).is_some_and(|s| s.labels.view(&self.symbols.read()) == labels) {
                return Some(cand);
            }
        }
        None
    }

    /// The options in effect (after clamping).
    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    /// A new appender. Appenders are cheap; use one per batch.
    pub fn appender(&self) -> HeadAppender<'_> {
        HeadAppender::new(self)
    }

    #[inline]
    fn series_shard(&self, r: u64) -> &Mutex<SeriesShard> {
        &self.series[(r & self.mask) as usize]
    }

    #[inline]
    fn hash_shard(&self, h: u64) -> &Mutex<HashShard> {
        &self.hashes[(h & self.mask) as usize]
    }

    fn cut_params(&self) -> CutParams<'_> {
        CutParams {
            chunk_range: self.opts.chunk_range,
            samples_per_chunk: self.opts.samples_per_chunk,
            stagger: self.opts.stagger_chunk_cuts,
            store: &self.chunks,
        }
    }

    /// The labels of `s`, materialised (one allocation). Takes the symbol
    /// table's read lock briefly: callers hold `s`'s shard lock, which
    /// comes before it in the lock order.
    #[inline]
    fn labels_of(&self, s: &MemSeries) -> Labels {
        s.labels.view(&self.symbols.read()).to_labels()
    }

    /// Widens the head's time range to include `[lo, hi]`.
    fn extend_time_range(&self, lo: i64, hi: i64) {
        if lo <= hi {
            self.min_time.fetch_min(lo, Ordering::AcqRel);
            self.max_time.fetch_max(hi, Ordering::AcqRel);
        }
    }

    /// Oldest sample timestamp in the head (`i64::MAX` when empty).
    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Acquire)
    }

    /// Newest sample timestamp in the head (`i64::MIN` when empty).
    pub fn max_time(&self) -> i64 {
        self.max_time.load(Ordering::Acquire)
    }

    /// The oldest timestamp the head accepts (raised by [`Head::truncate`]).
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Acquire)
    }

    /// Raises the oldest timestamp the head accepts to `t` without dropping
    /// anything. Commits apply under the truncation lock, so once this
    /// returns no sample below `t` can be applied: the database calls it
    /// before copying a range out to a block, so nothing lands in the range
    /// between the copy and the truncation.
    pub fn set_min_valid_time(&self, t: i64) {
        let _t = self.truncate_lock.write();
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    /// Re-creates a series from the log with its original ref. Refs created
    /// later are greater than every replayed ref. A second ref for labels
    /// that already exist becomes an alias of the first.
    pub fn replay_series(&self, series_ref: u64, labels: Labels) {
        self.next_ref.fetch_max(series_ref.saturating_add(1), Ordering::AcqRel);
        let h = labels.stable_hash();
        let mut hs = self.hash_shard(h).lock();
        for cand in hs.candidates(h).collect::<Vec<_>>() {
            let shard = self.series_shard(cand).lock();
            if shard.get(&cand).is_some_and(|s| s.labels.view(&self.symbols.read()) == labels) {
                if cand != series_ref {
                    self.replay_aliases.lock().insert(series_ref, cand);
                }
                return;
            }
        }
        {
            let mut shard = self.series_shard(series_ref).lock();
            if shard.contains_key(&series_ref) {
                // The ref is taken by other labels: the log is inconsistent.
                tracing::warn!(series_ref, "replayed series ref already in use; record skipped");
                return;
            }
            let mut s = MemSeries::new(self.symbols.write().encode(&labels));
            s.logged = true;
            shard.insert(series_ref, Box::new(s));
        }
        hs.insert(h, series_ref);
        drop(hs);
        self.index.write().add(series_ref, &labels);
    }

    /// Re-applies logged samples, in order, without logging them. Samples of
    /// unknown refs are counted ([`HeadStats::replay_unknown_refs`]) and
    /// skipped; samples older than the minimum valid time are skipped.
    pub fn replay_samples(&self, samples: &[crate::wal::RefSample]) {
        self.replay_each(samples, |s| (s.series_ref, s.t), |series, r, s, ooo, p| series.apply(r, s.t, s.v, ooo, p));
    }

    /// Whether any series ever held a native histogram (since open).
    pub fn has_histograms(&self) -> bool {
        self.has_histograms.load(Ordering::Relaxed)
    }

    /// Notes that a histogram was stored.
    pub(crate) fn saw_histograms(&self) {
        if !self.has_histograms() {
            self.has_histograms.store(true, Ordering::Relaxed);
        }
    }

    /// [`Head::replay_samples`] for native-histogram samples.
    pub fn replay_histograms(&self, samples: &[crate::wal::RefHistogramSample]) {
        if !samples.is_empty() {
            self.saw_histograms();
        }
        self.replay_each(
            samples,
            |s| (s.series_ref, s.t),
            |series, r, s, ooo, p| series.apply_histogram(r, s.t, &s.h, ooo, p.store),
        );
    }

    /// Applies replayed samples of one kind: `key` gives a sample's series
    /// ref (as logged) and time, `apply` stores it in its series.
    fn replay_each<S>(
        &self,
        samples: &[S],
        key: impl Fn(&S) -> (u64, i64),
        apply: impl Fn(&mut MemSeries, u64, &S, bool, CutParams<'_>) -> Applied,
    ) {
        let _t = self.truncate_lock.read();
        let aliases = self.replay_aliases.lock().clone();
        let min_valid = self.min_valid_time();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut stats = CommitStats::default();
        for s in samples {
            let (logged_ref, t) = key(s);
            let r = aliases.get(&logged_ref).copied().unwrap_or(logged_ref);
            let mut shard = self.series_shard(r).lock();
            let Some(series) = shard.get_mut(&r) else {
                self.counters.replay_unknown_refs.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if t < min_valid {
                stats.rejected_too_old += 1;
                continue;
            }
            let applied = apply(series, r, s, self.opts.ooo_window > 0, self.cut_params());
            if stats.record(applied) {
                lo = lo.min(t);
                hi = hi.max(t);
            }
        }
        self.extend_time_range(lo, hi);
        self.add_commit_stats(&stats);
    }

    fn add_commit_stats(&self, s: &CommitStats) {
        let c = &self.counters;
        c.samples_appended.fetch_add(s.samples_applied, Ordering::Relaxed);
        c.ooo_appended.fetch_add(s.out_of_order_applied, Ordering::Relaxed);
        for (n, ctr) in [
            (s.rejected_out_of_order, &c.rejected_out_of_order),
            (s.rejected_too_old, &c.rejected_too_old),
            (s.rejected_duplicate, &c.rejected_duplicate),
        ] {
            if n > 0 {
                ctr.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Refs of the series selected by `matchers` (Prometheus semantics,
    /// see [`postings_for_matchers`]), sorted by ref, whatever their
    /// samples. Refs are not in label order.
    pub fn series_refs(&self, matchers: &[Matcher]) -> Vec<u64> {
        self.refs_for(matchers)
    }

    /// Refs selected by `matchers`, in ref order.
    fn refs_for(&self, matchers: &[Matcher]) -> Vec<u64> {
        let ix = self.index.read();
        postings_for_matchers(&*ix, matchers)
    }

    /// The series selected by `matchers` with chunks overlapping
    /// `[mint, maxt]`, sorted by labels. Closed chunks are shared, the open
    /// chunk is copied; out-of-order data comes as extra chunks that may
    /// overlap the others. Series without such chunks are left out.
    /// Closed chunks that cannot be read back from the head chunk file are
    /// left out and logged (see [`Head::select_reporting`]).
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<ChunkSeries> {
        self.select_reporting(matchers, mint, maxt, &mut Vec::new())
    }

    /// [`Head::select`], pushing one warning per series with chunks that
    /// could not be read back (damaged head chunk file) to `warnings`.
    pub fn select_reporting(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warnings: &mut Vec<String>,
    ) -> Vec<ChunkSeries> {
        let out = self.select_in_ref_order(matchers, mint, maxt, warnings);
        // Refs come in ref order; label order takes a string sort (see
        // `label_sort`), a third of an all-series selection's CPU as a
        // comparison sort; a large one is split over several threads.
        crate::label_sort::sort_by_labels_parallel(out, |cs| &cs.labels)
    }

    /// [`Head::select_reporting`] without the sort into label order: the
    /// series come in ref order (the order they were created in). For
    /// readers to whom the order is unobservable (a count of the selected
    /// series): the sort is most of such a selection's cost when it holds
    /// every series, cache misses on each label set's bytes.
    pub(crate) fn select_in_ref_order(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warnings: &mut Vec<String>,
    ) -> Vec<ChunkSeries> {
        self.select_ref_order(matchers, mint, maxt, true, warnings)
    }

    /// [`Head::select_in_ref_order`] with every series' labels left empty:
    /// for readers that only count the selected series that have points
    /// (`count` or `group` into one group). Building each series' `Labels`
    /// (a symbol table lookup and an allocation per series) is most of
    /// such a selection's cost besides the cache misses.
    pub(crate) fn select_unlabelled(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warnings: &mut Vec<String>,
    ) -> Vec<ChunkSeries> {
        self.select_ref_order(matchers, mint, maxt, false, warnings)
    }

    /// The selection in ref order, with labels when `labelled`.
    fn select_ref_order(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        labelled: bool,
        warnings: &mut Vec<String>,
    ) -> Vec<ChunkSeries> {
        if mint > maxt {
            return Vec::new();
        }
        let refs = self.refs_for(matchers);
        let threads = crate::label_sort::threads_for(refs.len());
        if threads <= 1 {
            return self.select_refs(&refs, mint, maxt, labelled, warnings);
        }
        // A large selection is read by several threads, each a contiguous
        // run of the refs, and the runs are put back in order: the same
        // series and warnings in the same order as one thread would give.
        // Its time is cache misses (series, chunk list, label strings), so
        // a second core takes half the wall time off.
        let per = refs.len().div_ceil(threads);
        let parts: Vec<(Vec<ChunkSeries>, Vec<String>)> = std::thread::scope(|scope| {
            let rest: Vec<_> = refs[per..]
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        let mut w = Vec::new();
                        let out = self.select_refs(part, mint, maxt, labelled, &mut w);
                        (out, w)
                    })
                })
                .collect();
            let mut w = Vec::new();
            let first = self.select_refs(&refs[..per], mint, maxt, labelled, &mut w);
            let mut parts = vec![(first, w)];
            for h in rest {
                parts.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            parts
        });
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
        for (o, w) in parts {
            out.extend(o);
            warnings.extend(w);
        }
        out
    }

    /// The series of `refs` (in that order) with chunks in `[mint, maxt]`,
    /// with their labels when `labelled` (else empty ones).
    fn select_refs(
        &self,
        refs: &[u64],
        mint: i64,
        maxt: i64,
        labelled: bool,
        warnings: &mut Vec<String>,
    ) -> Vec<ChunkSeries> {
        let mut damaged = Vec::new();
        // At most one entry per ref: reserved once rather than grown by
        // doubling (copies, and a peak of 1.5–2× the list).
        let mut out = Vec::with_capacity(refs.len());
        // The symbol table's read lock is held over a run of refs instead
        // of taken per series: its lock word is shared by every thread
        // that reads labels, and two select threads taking it for every
        // series kept moving its cache line between their cores. Holding
        // it while taking a shard lock reverses the lock order (an
        // appender holds its shard while it waits to add symbols), so a
        // shard is only tried then; a busy one is waited for with the
        // table's lock let go. The run is short, so a writer waiting for
        // the table is held up for a few hundred series at most.
        let mut syms: Option<RwLockReadGuard<'_, SymbolTable>> = None;
        // The open chunks' copies of a run of series share one buffer (see
        // `open_copies`), frozen at the end of each run.
        let mut copies = OpenCopies::default();
        // Where the head chunk file's records are, for the prefetching.
        let records = self.chunks.mapped_records();
        for (i, &r) in refs.iter().enumerate() {
            if i % SELECT_SYMBOLS_RUN == 0 {
                syms = None;
                copies.freeze_into(&mut out);
            } else if copies.full() {
                copies.freeze_into(&mut out);
            }
            self.prefetch_ahead(refs, i, (mint, maxt), &records);
            let shard = self.lock_shard_in_select(r, &mut syms);
            let Some(s) = shard.get(&r) else { continue };
            let (chunks, open) = s.chunks_in(r, mint, maxt, &self.chunks, &mut damaged, copies.bytes_mut());
            let any = !chunks.is_empty() || open.is_some();
            if damaged.is_empty() && (!any || !labelled) {
                if any {
                    out.push(ChunkSeries { labels: Labels::empty(), chunks });
                    if let Some(c) = open {
                        copies.wait(out.len() - 1, c);
                    }
                }
                continue;
            }
            // Taken under the shard lock: the lock order.
            let table = syms.get_or_insert_with(|| self.symbols.read());
            if !damaged.is_empty() {
                report_damaged(&s.labels.view(table).to_labels(), &mut damaged, warnings);
            }
            if any {
                let labels = if labelled { s.labels.view(table).to_labels() } else { Labels::empty() };
                out.push(ChunkSeries { labels, chunks });
                if let Some(c) = open {
                    copies.wait(out.len() - 1, c);
                }
            }
        }
        copies.freeze_into(&mut out);
        out
    }

    /// Locks the shard of series `r` for a select loop. The symbol table's
    /// read lock is taken under a shard lock (the lock order), so when the
    /// shard is busy the table's guard is dropped before waiting for it.
    #[inline]
    fn lock_shard_in_select<'a>(
        &'a self,
        r: u64,
        syms: &mut Option<RwLockReadGuard<'a, SymbolTable>>,
    ) -> MutexGuard<'a, SeriesShard> {
        let lock = self.series_shard(r);
        match lock.try_lock() {
            Some(g) => g,
            None => {
                *syms = None;
                lock.lock()
            }
        }
    }

    /// Applies `f` to each series selected by `matchers` over its samples
    /// in `[mint, maxt]` (oldest first, staleness markers included) and
    /// returns the series for which it gave a value, sorted by labels, with
    /// the number of samples read. The samples are read in place under the
    /// series' shard lock (see [`MemSeries::samples_between`]): no copy of
    /// the open chunk, no chunk list, no iterator per series; the lock is
    /// held for one series at a time, as by [`Head::select`]. Series with
    /// no sample in the range are skipped (`f` is not called on them).
    /// Closed chunks that cannot be read back are left out and reported in
    /// `warnings`, as by [`Head::select_reporting`].
    pub fn select_windows(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        f: &crate::querier::WindowFn<'_>,
        warnings: &mut Vec<String>,
    ) -> (crate::querier::WindowPoints, usize) {
        if mint > maxt {
            return (Vec::new(), 0);
        }
        let refs = self.refs_for(matchers);
        let threads = crate::label_sort::threads_for(refs.len());
        let (out, read) = if threads <= 1 {
            self.select_windows_refs(&refs, mint, maxt, f, warnings)
        } else {
            // Contiguous runs of the refs on several threads, put back in
            // order (as `select_ref_order` does).
            let per = refs.len().div_ceil(threads);
            let parts: Vec<(crate::querier::WindowPoints, usize, Vec<String>)> = std::thread::scope(|scope| {
                let rest: Vec<_> = refs[per..]
                    .chunks(per)
                    .map(|part| {
                        scope.spawn(move || {
                            let mut w = Vec::new();
                            let (out, read) = self.select_windows_refs(part, mint, maxt, f, &mut w);
                            (out, read, w)
                        })
                    })
                    .collect();
                let mut w = Vec::new();
                let (first, read) = self.select_windows_refs(&refs[..per], mint, maxt, f, &mut w);
                let mut parts = vec![(first, read, w)];
                for h in rest {
                    parts.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                parts
            });
            let mut out = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
            let mut read = 0;
            for (o, r, w) in parts {
                out.extend(o);
                read += r;
                warnings.extend(w);
            }
            (out, read)
        };
        (crate::label_sort::sort_by_labels_parallel(out, |x| &x.0), read)
    }

    /// [`Head::select_windows`] over `refs`, in their order.
    fn select_windows_refs(
        &self,
        refs: &[u64],
        mint: i64,
        maxt: i64,
        f: &crate::querier::WindowFn<'_>,
        warnings: &mut Vec<String>,
    ) -> (crate::querier::WindowPoints, usize) {
        let mut damaged = Vec::new();
        let mut out = Vec::new();
        let mut read = 0usize;
        // One sample buffer (and one for closed chunks) for the whole run.
        let mut samples = Vec::new();
        let mut scratch = Vec::new();
        // The symbol table's lock over a run of refs, as in `select_refs`.
        let mut syms: Option<RwLockReadGuard<'_, SymbolTable>> = None;
        let records = self.chunks.mapped_records();
        for (i, &r) in refs.iter().enumerate() {
            if i % SELECT_SYMBOLS_RUN == 0 {
                syms = None;
            }
            self.prefetch_ahead(refs, i, (mint, maxt), &records);
            let shard = self.lock_shard_in_select(r, &mut syms);
            let Some(s) = shard.get(&r) else { continue };
            samples.clear();
            s.samples_between(r, (mint, maxt), &self.chunks, &mut damaged, &mut samples, &mut scratch);
            read += samples.len();
            let value = if samples.is_empty() { None } else { f(&samples) };
            if damaged.is_empty() && value.is_none() {
                continue;
            }
            // Taken under the shard lock: the lock order.
            let table = syms.get_or_insert_with(|| self.symbols.read());
            if !damaged.is_empty() {
                report_damaged(&s.labels.view(table).to_labels(), &mut damaged, warnings);
            }
            if let Some(v) = value {
                out.push((s.labels.view(table).to_labels(), v));
            }
        }
        (out, read)
    }

    /// Starts loading what the select loop will read for the refs a few
    /// places after `refs[i]`, one link of the chain per stage: the shard's
    /// lock, then its slot, then the series, then what the series points to
    /// (its closed-chunk list, the open chunk's bytes, its label ids). Each
    /// link is a cache miss in a large head and depends on the previous
    /// one, so read in turn they cost one memory latency after the other
    /// per series (the select loop's time at 100k+ series); staged over
    /// several refs they overlap. A stage that must read a pointer takes
    /// the shard's lock for that moment (uncontended, and its line is
    /// already loaded by then); nothing is read without it, and a prefetch
    /// of a stale address is harmless. The last stage, a ref ahead, starts
    /// loading the head chunk file record of the series' newest closed
    /// chunk if it overlaps `range` (its header is parsed and checked
    /// first thing when the chunk is read): the series' closed-chunk list
    /// was loaded by the stage before.
    #[inline]
    fn prefetch_ahead(&self, refs: &[u64], i: usize, range: (i64, i64), records: &MappedRecords) {
        use crate::prefetch::prefetch;
        if let Some(&r) = refs.get(i + 3 * SELECT_PREFETCH_STRIDE) {
            prefetch(self.series_shard(r) as *const Mutex<SeriesShard>);
        }
        // Shards are only tried (see `select_refs`: the caller may hold the
        // symbol table's lock); a busy one is simply not prefetched.
        if let Some(&r) = refs.get(i + 2 * SELECT_PREFETCH_STRIDE) {
            if let Some(p) = self.series_shard(r).try_lock().and_then(|g| g.slot_addr(r)) {
                prefetch(p);
            }
        }
        if let Some(&r) = refs.get(i + SELECT_PREFETCH_STRIDE) {
            if let Some(s) = self.series_shard(r).try_lock().as_ref().and_then(|g| g.get(&r)) {
                // Every line the series spans (it need not start on one).
                let p = (&**s as *const MemSeries).cast::<u8>();
                let size = std::mem::size_of::<MemSeries>();
                for off in (0..size).step_by(64).chain([size - 1]) {
                    prefetch(p.wrapping_add(off));
                }
            }
        }
        if let Some(&r) = refs.get(i + SELECT_PREFETCH_STRIDE / 2) {
            if let Some(s) = self.series_shard(r).try_lock().as_ref().and_then(|g| g.get(&r)) {
                // The label ids, the newest closed chunk's record (a query's
                // range is usually at the end; the records ride behind the
                // ids in the same buffer), the open chunk's first bytes (its
                // start time is decoded from them and the chunk is copied).
                prefetch(s.labels.addr());
                if let Some(p) = s.chunks().newest_record_end() {
                    prefetch(p);
                }
                if let Some(c) = &s.open {
                    // Every line of the open chunk (the select copies it
                    // whole), up to a few: the copy waited on each line
                    // after the first in turn.
                    let bytes = c.app.bytes();
                    let end = bytes.len().min(OPEN_CHUNK_PREFETCH_BYTES);
                    for off in (0..end).step_by(64) {
                        prefetch(bytes[off..].as_ptr());
                    }
                }
            }
        }
        if let Some(&r) = refs.get(i + 1) {
            if let Some(s) = self.series_shard(r).try_lock().as_ref().and_then(|g| g.get(&r)) {
                let (mint, maxt) = range;
                if let Some(c) = s.chunks().last().filter(|c| c.mint <= maxt && c.maxt >= mint) {
                    records.prefetch(c.at);
                }
            }
        }
    }

    /// Labels of the series selected by `matchers` that have data in
    /// `[mint, maxt]`.
    fn labels_with_data(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        let mut out = Vec::new();
        for r in self.refs_for(matchers) {
            let shard = self.series_shard(r).lock();
            if let Some(s) = shard.get(&r) {
                if s.overlaps(mint, maxt) {
                    out.push(self.labels_of(s));
                }
            }
        }
        out
    }

    /// Whether `[mint, maxt]` covers everything in the head, so the index
    /// alone can answer label queries without matchers.
    fn covers_head(&self, mint: i64, maxt: i64) -> bool {
        mint <= self.min_time() && maxt >= self.max_time()
    }

    /// Sorted label names of the series selected by `matchers` with samples
    /// in `[mint, maxt]` (chunk granularity). Without matchers and over the
    /// whole head range the index answers directly (it may then include a
    /// series created by an appender that has not committed yet).
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        if matchers.is_empty() && self.covers_head(mint, maxt) && self.min_time() <= self.max_time() {
            return self.index.read().label_names();
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in self.labels_with_data(matchers, mint, maxt) {
            for p in &l {
                if !seen.contains(p.name) {
                    seen.insert(p.name.to_string());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Sorted values of label `name` among the series selected by
    /// `matchers` with samples in `[mint, maxt]` (chunk granularity).
    pub fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        if matchers.is_empty() && self.covers_head(mint, maxt) && self.min_time() <= self.max_time() {
            return self.index.read().label_values(name);
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in self.labels_with_data(matchers, mint, maxt) {
            if let Some(v) = l.get(name) {
                if !seen.contains(v) {
                    seen.insert(v.to_string());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Every series with samples in `[mint, maxt)`, sorted by labels, with
    /// its samples in that range sorted and one per timestamp (in-order and
    /// out-of-order data merged). A series whose chunks cannot be read back
    /// is left out and logged; [`Head::try_samples_for_block`] fails instead.
    pub fn samples_for_block(&self, mint: i64, maxt: i64) -> Vec<(Labels, Vec<Sample>)> {
        self.series_for_block(mint, maxt)
            .filter_map(Result::ok)
            .filter(|s| !s.floats.is_empty())
            .map(|s| (s.labels, s.floats))
            .collect()
    }

    /// [`Head::samples_for_block`], failing if any closed chunk in the range
    /// cannot be read back from the head chunk file: what goes to a block
    /// must be complete (the WAL still holds the samples).
    pub fn try_samples_for_block(&self, mint: i64, maxt: i64) -> Result<Vec<(Labels, Vec<Sample>)>, crate::Error> {
        let all: Vec<SeriesData> = self.series_for_block(mint, maxt).collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|s| !s.floats.is_empty()).map(|s| (s.labels, s.floats)).collect())
    }

    /// Every series with samples in `[mint, maxt)` as a block gets it, its
    /// floats and its native histograms, without holding every sample at
    /// once: the series overlapping `[mint, maxt)` are listed and sorted by
    /// labels first, then each one's samples are read when the iterator
    /// reaches it. Memory is one series' samples plus the label list, where
    /// the whole range of every series would be gigabytes at a million
    /// series. A series is read at the moment the iterator reaches it (as
    /// every series was read at a different moment before): callers that
    /// need a stable range raise the minimum valid time first, as
    /// persistence does. A closed chunk that cannot be read back from the
    /// head chunk file yields an `Err` item: what goes to a block must be
    /// complete.
    pub fn series_for_block(
        &self,
        mint: i64,
        maxt: i64,
    ) -> impl Iterator<Item = Result<SeriesData, crate::Error>> + '_ {
        let refs = self.index.read().all_postings();
        let mut list: Vec<(Labels, u64)> = Vec::with_capacity(refs.len());
        for r in refs {
            let shard = self.series_shard(r).lock();
            let Some(s) = shard.get(&r) else { continue };
            if mint < maxt && s.overlaps(mint, maxt - 1) {
                list.push((self.labels_of(s), r));
            }
        }
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        list.into_iter().filter_map(move |(labels, r)| {
            let shard = self.series_shard(r).lock();
            let s = shard.get(&r)?;
            let samples = s.samples_in(r, mint, maxt, &self.chunks);
            let histograms = s.histograms_in(mint, maxt);
            drop(shard);
            match samples {
                Ok(floats) => (!floats.is_empty() || !histograms.is_empty()).then_some(Ok(SeriesData {
                    labels,
                    floats,
                    histograms,
                })),
                Err(e) => {
                    tracing::error!(series = %labels, error = %e, "head chunk unreadable");
                    let path = self.chunks.dir().map(std::path::Path::to_path_buf).unwrap_or_default();
                    Some(Err(crate::Error::Corrupt { path, reason: format!("series {labels}: {e}") }))
                }
            }
        })
    }

    /// Drops every sample with `t < mint` and every series left without
    /// samples that no open appender is using; raises the minimum valid
    /// time to `mint`. Returns the dropped refs, sorted.
    pub fn truncate(&self, mint: i64) -> Vec<u64> {
        let _t = self.truncate_lock.write();
        self.min_valid_time.fetch_max(mint, Ordering::AcqRel);
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut candidates: Vec<(u64, u64)> = Vec::new();
        for shard in self.series.iter() {
            let mut shard = shard.lock();
            for (r, s) in shard.iter_mut() {
                s.truncate(r, mint, &self.chunks);
                match s.time_range() {
                    Some((a, b)) => {
                        lo = lo.min(a);
                        hi = hi.max(b);
                    }
                    None if s.pending == 0 => candidates.push((r, self.labels_of(s).stable_hash())),
                    None => {}
                }
            }
        }
        // Appends cannot add samples while we hold the truncate lock, but
        // appenders may have started using a candidate: re-check under the
        // hash shard lock, which serialises with lookups by labels.
        let mut refs = self.remove_if_empty(candidates);
        // No series refers to a chunk ending before `mint` any more.
        self.chunks.truncate(mint);
        self.min_time.store(lo, Ordering::Release);
        self.max_time.store(hi, Ordering::Release);
        refs.sort_unstable();
        refs
    }

    /// Removes the candidate series `(ref, label hash)` that are still empty
    /// and unused once re-checked under the hash shard lock (which
    /// serialises with lookups by labels), from the maps, the index and the
    /// replay aliases. Returns the refs removed.
    pub(super) fn remove_if_empty(&self, candidates: Vec<(u64, u64)>) -> Vec<u64> {
        let mut removed: Vec<(u64, Labels)> = Vec::new();
        for (r, h) in candidates {
            let mut hs = self.hash_shard(h).lock();
            let mut shard = self.series_shard(r).lock();
            if shard.get(&r).is_some_and(|s| s.pending == 0 && s.is_empty()) {
                // Before the series goes (and under its shard lock): a
                // handle read before this can no longer match the epoch.
                self.epoch.store(next_epoch(), Ordering::Relaxed);
                if let Some(s) = shard.remove(&r) {
                    hs.remove(h, r);
                    // The series is unreachable now: its symbols go (the
                    // index still needs the strings, so they are copied).
                    let mut syms = self.symbols.write();
                    removed.push((r, s.labels.view(&syms).to_labels()));
                    syms.release_labels(&s.labels);
                }
            }
        }
        if removed.is_empty() {
            return Vec::new();
        }
        self.index.write().remove(&removed);
        let gone: std::collections::HashSet<u64> = removed.iter().map(|(r, _)| *r).collect();
        self.replay_aliases.lock().retain(|_, to| !gone.contains(to));
        removed.into_iter().map(|(r, _)| r).collect()
    }

    /// Whether `series_ref` (or the ref it is an alias of) is still held.
    pub fn is_live(&self, series_ref: u64) -> bool {
        let r = self.replay_aliases.lock().get(&series_ref).copied().unwrap_or(series_ref);
        self.series_shard(r).lock().contains_key(&r)
    }

    /// Cardinality statistics of the index, each list limited to the
    /// `limit` largest entries. Walks the whole index under its read lock:
    /// O(label pairs · log limit).
    pub fn cardinality(&self, limit: usize) -> Cardinality {
        let (c, num_series) = {
            let ix = self.index.read();
            (ix.cardinality(crate::METRIC_NAME, limit), ix.all_postings_len())
        };
        Cardinality {
            num_series: num_series as u64,
            num_label_pairs: c.num_label_pairs,
            min_time: self.min_time(),
            max_time: self.max_time(),
            series_count_by_metric_name: c.series_count_by_metric_name,
            label_value_count_by_label_name: c.label_value_count_by_label_name,
            memory_in_bytes_by_label_name: c.memory_in_bytes_by_label_name,
            series_count_by_label_value_pair: c.series_count_by_label_value_pair,
        }
    }

    /// Where the heap bytes go. Walks every series, so it costs O(series).
    pub fn memory_breakdown(&self) -> HeadMemory {
        let mut m = HeadMemory::default();
        for shard in self.series.iter() {
            let shard = shard.lock();
            m.series_maps += shard.heap_bytes() as u64;
            for (_, s) in shard.iter() {
                m.series += 1;
                m.labels += s.labels.heap_bytes() as u64;
                m.series_structs += std::mem::size_of::<MemSeries>() as u64;
                m.closed_chunk_refs += s.chunks().byte_len() as u64;
                if let Some(c) = &s.open {
                    let used = c.app.bytes().len() as u64;
                    m.open_chunk_bytes += used;
                    m.open_chunk_spare += (c.app.heap_bytes() as u64).saturating_sub(used);
                }
                let total = s.heap_bytes() as u64;
                let known = std::mem::size_of::<MemSeries>()
                    + s.labels.heap_bytes()
                    + s.chunks().byte_len()
                    + s.open.as_ref().map_or(0, |c| c.app.heap_bytes());
                m.out_of_order += total.saturating_sub(known as u64);
            }
        }
        for shard in self.hashes.iter() {
            let shard = shard.lock();
            m.hash_maps += shard.heap_bytes() as u64;
        }
        m.index = self.index.read().heap_bytes() as u64;
        let syms = self.symbols.read();
        m.symbol_table = syms.heap_bytes() as u64;
        m.symbols = syms.len() as u64;
        drop(syms);
        let (_, disk, ram) = self.chunks.sizes();
        m.closed_chunk_bytes_in_ram = ram;
        m.closed_chunk_bytes_on_disk = disk;
        m
    }

    /// Counters and sizes. Walks every series, so it costs O(series).
    pub fn stats(&self) -> HeadStats {
        let mut num_series = 0u64;
        let mut num_chunks = 0u64;
        let mut mem = std::mem::size_of::<Head>()
            + self.series.len() * std::mem::size_of::<Padded<Mutex<SeriesShard>>>()
            + self.hashes.len() * std::mem::size_of::<Padded<Mutex<HashShard>>>();
        for shard in self.series.iter() {
            let shard = shard.lock();
            mem += shard.heap_bytes();
            for (_, s) in shard.iter() {
                num_series += 1;
                num_chunks += s.num_chunks() as u64;
                mem += s.heap_bytes();
            }
        }
        for shard in self.hashes.iter() {
            let shard = shard.lock();
            mem += shard.heap_bytes();
        }
        mem += self.index.read().heap_bytes();
        mem += self.symbols.read().heap_bytes();
        let (_, chunk_file_bytes, chunk_ram) = self.chunks.sizes();
        mem += chunk_ram as usize;
        let c = &self.counters;
        HeadStats {
            num_series,
            num_chunks,
            samples_appended: c.samples_appended.load(Ordering::Relaxed),
            out_of_order_samples_appended: c.ooo_appended.load(Ordering::Relaxed),
            rejected_out_of_order: c.rejected_out_of_order.load(Ordering::Relaxed),
            rejected_too_old: c.rejected_too_old.load(Ordering::Relaxed),
            rejected_duplicate: c.rejected_duplicate.load(Ordering::Relaxed),
            replay_unknown_refs: c.replay_unknown_refs.load(Ordering::Relaxed),
            min_time: self.min_time(),
            max_time: self.max_time(),
            memory_bytes: mem as u64,
            chunk_file_bytes,
            damaged_chunk_reads: self.chunks.damaged_reads(),
        }
    }
}

impl CommitStats {
    /// Counts one apply outcome; returns whether a sample was stored.
    fn record(&mut self, a: Applied) -> bool {
        match a {
            Applied::InOrder => {
                self.samples_applied += 1;
                true
            }
            Applied::OutOfOrder => {
                self.samples_applied += 1;
                self.out_of_order_applied += 1;
                true
            }
            Applied::Identical => false,
            Applied::RejectedOutOfOrder => {
                self.rejected_out_of_order += 1;
                false
            }
            Applied::RejectedDuplicate => {
                self.rejected_duplicate += 1;
                false
            }
        }
    }
}

/// Logs each of a selected series' unreadable head chunks and adds a
/// query warning for it; `damaged` is left empty.
fn report_damaged(labels: &Labels, damaged: &mut Vec<chunk_file::HeadChunkError>, warnings: &mut Vec<String>) {
    for e in damaged.drain(..) {
        tracing::error!(series = %labels, error = %e, "head chunk unreadable; its samples are left out");
        warnings.push(format!("damaged data skipped: series {labels} in the head: {e}"));
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hash_shard_tests {
    use super::HashShard;

    fn candidates(s: &HashShard, h: u64) -> Vec<u64> {
        let mut v: Vec<u64> = s.candidates(h).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn hashes_sharing_a_key_and_wide_refs_are_all_candidates() {
        let mut s = HashShard::default();
        // Same high 32 bits (the key), different low bits.
        let (a, b, c) = (0xdead_beef_0000_0001u64, 0xdead_beef_0000_0002u64, 0x1234_5678_0000_0001u64);
        let wide = u64::from(u32::MAX) + 7;
        s.insert(a, 1);
        s.insert(b, 2);
        s.insert(a, wide);
        s.insert(c, 3);
        assert_eq!(candidates(&s, a), vec![1, 2, wide]);
        assert_eq!(candidates(&s, b), vec![1, 2, wide]);
        assert_eq!(candidates(&s, c), vec![3]);
        assert!(candidates(&s, 0x0000_0001_0000_0001).is_empty());
        // Removing the primary ref keeps the others, a narrow one promoted.
        s.remove(a, 1);
        assert_eq!(candidates(&s, a), vec![2, wide]);
        assert_eq!(s.primary.get(0xdead_beef), Some(2));
        s.remove(b, 2);
        assert_eq!(candidates(&s, a), vec![wide]);
        assert_eq!(s.primary.get(0xdead_beef), None);
        // A new narrow ref takes the free primary slot; the wide one stays.
        s.insert(b, 9);
        assert_eq!(candidates(&s, b), vec![9, wide]);
        s.remove(a, wide);
        s.remove(b, 9);
        assert!(candidates(&s, a).is_empty());
        assert!(s.collisions.is_empty());
        assert_eq!(candidates(&s, c), vec![3]);
        // Removing a ref that is not there changes nothing.
        s.remove(c, 4);
        assert_eq!(candidates(&s, c), vec![3]);
    }
}
