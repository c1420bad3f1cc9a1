//! Batched appends with commit/rollback.

use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::index::FxHashMap;
use super::series::MemSeries;
use super::{Head, LabelsView};
use crate::error::AppendError;
use crate::exemplar::{Exemplar, ExemplarError};
use crate::histogram::HistogramValue;
use crate::prefetch::prefetch;
use crate::wal::{Record, RefExemplar, RefHistogramSample, RefSample, RefSeries};
use crate::{Labels, NameValidation};

/// What a commit did. Samples that passed [`HeadAppender::append`] can
/// still be dropped when applied, if a concurrent commit to the same series
/// got there first (as in Prometheus); they are counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Samples stored (in-order and out-of-order).
    pub samples_applied: u64,
    /// Of those, samples stored as out-of-order.
    pub out_of_order_applied: u64,
    /// Samples dropped at apply time as out of order.
    pub rejected_out_of_order: u64,
    /// Samples dropped at apply time as older than the minimum valid time.
    pub rejected_too_old: u64,
    /// Samples dropped at apply time for a different value at an existing
    /// timestamp.
    pub rejected_duplicate: u64,
    /// Of `samples_applied`, native-histogram samples.
    pub histograms_applied: u64,
    /// Series this appender created.
    pub series_created: u64,
}

/// Appender buffers kept for reuse: at most this many sets...
const MAX_POOLED: usize = 16;
/// ...each holding at most this many samples' (and series') worth of
/// capacity: scrape-sized batches reuse buffers, a rare huge batch does not
/// pin its memory.
const MAX_POOLED_SAMPLES: usize = 1 << 16;

/// An appender's reusable buffers.
#[derive(Default)]
pub(super) struct Buffers {
    samples: Vec<RefSample>,
    series: Vec<SeriesPtr>,
    batch: FxHashMap<u64, Batch>,
}

/// Where a buffered sample's series lives, so that applying the sample
/// does not look the series up by ref again.
///
/// Valid while the sample is buffered: the series is boxed (its address
/// does not change when its shard's map grows), buffering raised its
/// `pending` count, and a series is only removed from its shard (under the
/// shard lock) when `pending` is 0, which apply or rollback bring about
/// only after the last use of the pointer. It is dereferenced only under
/// the series' shard lock, like every other access to the series.
#[derive(Clone, Copy)]
struct SeriesPtr(std::ptr::NonNull<MemSeries>);

// SAFETY: a `SeriesPtr` is only dereferenced under the shard lock that
// guards the series (see above), whichever thread holds it; `MemSeries`
// itself is `Send` (it lives in the head's `Mutex`ed shards).
unsafe impl Send for SeriesPtr {}
// SAFETY: as for `Send`: shared references to a `SeriesPtr` only copy it.
unsafe impl Sync for SeriesPtr {}

/// A direct handle to one series of one head, for
/// [`HeadAppender::append_handle`]: its ref, its address and the head's
/// removal epoch when the address was read. A caller that keeps its own
/// map to series (the remote-write receiver's cache) stores handles there,
/// so a hit reaches the series without searching the head's series map.
///
/// Invariant: while the head's removal epoch equals `epoch`, the series is
/// at `ptr`. Series are boxed (the address survives the shard map
/// growing) and leave their box only when removed; a removal first moves
/// the head's epoch to a value drawn from a process-wide counter, under
/// the series' shard lock. `append_handle` reads the epoch under the same
/// shard lock, so it either sees the move (and looks the series up by ref
/// instead) or the series is still there. Epochs are never handed out
/// twice in a process, so a handle from another head (or a dropped one)
/// never passes the check. The address is dereferenced only under the
/// series' shard lock, after that check.
///
/// ```
/// use tidemark_storage::head::{Head, HeadOptions};
/// use tidemark_storage::Labels;
///
/// let head = Head::new(HeadOptions::default(), None);
/// let up = Labels::new([("__name__", "up")]).unwrap();
/// let mut app = head.appender();
/// let r = app.append(&up, 1_000, 1.0).unwrap();
/// let mut h = app.handle(r).unwrap();
/// assert_eq!(h.series_ref(), r);
/// app.append_handle(&mut h, 2_000, 1.0).unwrap();
/// assert_eq!(app.len(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesHandle {
    series_ref: u64,
    ptr: std::ptr::NonNull<MemSeries>,
    epoch: u64,
}

// SAFETY: the address is only dereferenced by `append_handle`, under the
// series' shard lock and after the epoch check (see the type's invariant);
// otherwise a handle is plain data.
unsafe impl Send for SeriesHandle {}
// SAFETY: as for `Send`: shared references to a handle only copy it.
unsafe impl Sync for SeriesHandle {}

impl SeriesHandle {
    /// The series' ref (as [`HeadAppender::append`] returned it).
    pub fn series_ref(&self) -> u64 {
        self.series_ref
    }

    /// The handle in 16 bytes instead of 24, for maps that hold many
    /// (the remote-write receiver's cache): `None` if its ref needs more
    /// than [`PackedHandle::REF_BITS`] bits or its epoch more than the
    /// rest (2^40 series created, 2^24 removal epochs in one process; a
    /// caller then keeps no handle and looks the series up by labels).
    pub fn pack(&self) -> Option<PackedHandle> {
        let fits = self.series_ref >> PackedHandle::REF_BITS == 0 && self.epoch >> (64 - PackedHandle::REF_BITS) == 0;
        fits.then_some(PackedHandle {
            ptr: self.ptr,
            ref_epoch: self.series_ref | self.epoch << PackedHandle::REF_BITS,
        })
    }
}

/// A [`SeriesHandle`] packed into 16 bytes ([`SeriesHandle::pack`]): the
/// address, and the ref and epoch sharing one word. Only a handle can be
/// packed and unpacking gives it back exactly, so the invariant of
/// [`SeriesHandle`] holds for the unpacked one.
///
/// ```
/// use tidemark_storage::head::{Head, HeadOptions};
/// use tidemark_storage::Labels;
///
/// let head = Head::new(HeadOptions::default(), None);
/// let mut app = head.appender();
/// let r = app.append(&Labels::new([("__name__", "up")]).unwrap(), 1_000, 1.0).unwrap();
/// let h = app.handle(r).unwrap();
/// assert_eq!(h.pack().unwrap().unpack(), h);
/// assert_eq!(std::mem::size_of::<Option<tidemark_storage::head::PackedHandle>>(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedHandle {
    ptr: std::ptr::NonNull<MemSeries>,
    /// `series_ref | epoch << REF_BITS`.
    ref_epoch: u64,
}

// SAFETY: plain data, as `SeriesHandle` (whose invariant it carries).
unsafe impl Send for PackedHandle {}
// SAFETY: as for `Send`.
unsafe impl Sync for PackedHandle {}

impl PackedHandle {
    /// Bits of the word that hold the ref; the epoch has the rest.
    pub const REF_BITS: u32 = 40;

    /// The handle that was packed.
    #[inline]
    pub fn unpack(self) -> SeriesHandle {
        SeriesHandle {
            series_ref: self.ref_epoch & ((1 << Self::REF_BITS) - 1),
            ptr: self.ptr,
            epoch: self.ref_epoch >> Self::REF_BITS,
        }
    }
}

/// How many samples ahead applying a batch prefetches their series: a
/// batch from remote write holds one sample of each of ~2,000 series, each
/// a cache miss in a large head.
const APPLY_PREFETCH_AHEAD: usize = 4;

/// Per-series state of one batch.
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// The newest in-order sample buffered for the series, if any.
    last: Option<(i64, u64)>,
    /// Samples buffered for the series (each holds `MemSeries::pending`).
    buffered: u32,
}

/// Where an accepted sample goes.
enum Kind {
    InOrder,
    OutOfOrder,
    /// Identical to a stored or buffered sample: accepted, nothing to do.
    Identical,
}

/// Buffers samples for a [`Head`] and applies them atomically with respect
/// to the commit log. Dropping an appender without committing rolls it
/// back.
pub struct HeadAppender<'a> {
    head: &'a Head,
    samples: Vec<RefSample>,
    /// The series of each of `samples`, at the same index.
    series: Vec<SeriesPtr>,
    batch: FxHashMap<u64, Batch>,
    /// Native-histogram samples buffered, in append order, and the series
    /// of each (as `samples` and `series`).
    histograms: Vec<RefHistogramSample>,
    histogram_series: Vec<SeriesPtr>,
    /// Per series, the newest in-order histogram timestamp buffered.
    histogram_last: FxHashMap<u64, i64>,
    /// Every (series, timestamp) with a buffered histogram: a float at one
    /// of them in the same batch is a duplicate.
    histogram_times: std::collections::HashSet<(u64, i64)>,
    created: Vec<u64>,
    /// Exemplars buffered, in append order, and each one's series labels.
    exemplars: Vec<RefExemplar>,
    exemplar_series: Vec<Labels>,
    /// Per series, the index in `exemplars` of its newest buffered one.
    exemplar_last: FxHashMap<u64, usize>,
    /// Series of the batch whose `Series` record was not yet logged when
    /// their first sample was buffered: the only ones commit must check.
    unlogged: Vec<u64>,
    done: bool,
}

impl std::fmt::Debug for HeadAppender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadAppender")
            .field("samples", &self.samples.len())
            .field("series", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl<'a> HeadAppender<'a> {
    pub(super) fn new(head: &'a Head) -> HeadAppender<'a> {
        let Buffers { samples, series, batch } = head.buffer_pool.lock().pop().unwrap_or_default();
        HeadAppender {
            head,
            samples,
            series,
            batch,
            histograms: Vec::new(),
            histogram_series: Vec::new(),
            histogram_last: FxHashMap::default(),
            histogram_times: std::collections::HashSet::new(),
            created: Vec::new(),
            exemplars: Vec::new(),
            exemplar_series: Vec::new(),
            exemplar_last: FxHashMap::default(),
            unlogged: Vec::new(),
            done: false,
        }
    }

    /// Returns (emptied) buffers to the head's pool so the next appender
    /// does not grow them again.
    fn recycle(&mut self, mut samples: Vec<RefSample>) {
        samples.clear();
        self.batch.clear();
        self.series.clear();
        let batch = std::mem::take(&mut self.batch);
        let series = std::mem::take(&mut self.series);
        let mut pool = self.head.buffer_pool.lock();
        if pool.len() < MAX_POOLED && samples.capacity() <= MAX_POOLED_SAMPLES && batch.capacity() <= MAX_POOLED_SAMPLES
        {
            pool.push(Buffers { samples, series, batch });
        }
    }

    /// Appends a sample to the series `labels`, creating the series if it
    /// is new, and returns the series' ref for [`HeadAppender::append_ref`].
    /// The labels must be non-empty and include `__name__`. A new series is
    /// created (and visible to lookups) even if the sample is rejected.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<u64, AppendError> {
        self.append_to(labels, |app, r, s| app.check_and_buffer(r, s, t, v))
    }

    /// Appends a native-histogram sample to the series `labels`, creating
    /// the series if it is new, and returns the series' ref (see
    /// [`HeadAppender::append`]). The histogram must be valid (spans
    /// consistent with buckets, counts non-negative, schema in range: see
    /// [`crate::histogram::Histogram::validate`]); a series may hold floats
    /// and histograms at different timestamps.
    ///
    /// ```
    /// use tidemark_storage::head::Head;
    /// use tidemark_storage::histogram::{Histogram, HistogramValue, Span};
    /// use tidemark_storage::Labels;
    ///
    /// let head = Head::new(Default::default(), None);
    /// let l = Labels::new([("__name__", "latency_seconds")]).unwrap();
    /// let h = Histogram {
    ///     count: 3,
    ///     sum: 1.5,
    ///     positive_spans: vec![Span { offset: 0, length: 1 }],
    ///     positive_buckets: vec![3],
    ///     ..Histogram::default()
    /// };
    /// let mut app = head.appender();
    /// app.append_histogram(&l, 1_000, HistogramValue::Integer(h)).unwrap();
    /// assert_eq!(app.commit().unwrap().histograms_applied, 1);
    /// ```
    pub fn append_histogram(&mut self, labels: &Labels, t: i64, h: HistogramValue) -> Result<u64, AppendError> {
        validate_histogram(&h)?;
        self.append_to(labels, |app, r, s| app.check_and_buffer_histogram(r, s, t, h))
    }

    /// Buffers an exemplar for the series `series_ref` (a ref from this or
    /// an earlier append), stored and logged with the batch at commit.
    /// Checked now as Prometheus checks it: a label set over
    /// [`crate::exemplar::MAX_LABEL_SET_RUNES`] characters and one not after
    /// the series' newest exemplar (stored, or buffered in this batch) are
    /// refused; a duplicate of the newest, or any exemplar while the store
    /// is disabled (limit 0), is accepted and ignored.
    ///
    /// ```
    /// use tidemark_storage::exemplar::{Exemplar, ExemplarError};
    /// use tidemark_storage::head::Head;
    /// use tidemark_storage::{Labels, Matcher};
    ///
    /// let head = Head::new(Default::default(), None);
    /// let l = Labels::new([("__name__", "requests_total")]).unwrap();
    /// let trace = Labels::new([("trace_id", "abc123")]).unwrap();
    /// let mut app = head.appender();
    /// let r = app.append(&l, 2_000, 7.0).unwrap();
    /// app.append_exemplar(r, Exemplar { labels: trace.clone(), value: 1.0, t: 2_000 }).unwrap();
    /// let late = app.append_exemplar(r, Exemplar { labels: trace, value: 1.0, t: 1_000 });
    /// assert!(matches!(late, Err(ExemplarError::OutOfOrder { .. })));
    /// app.commit().unwrap();
    /// let got = head.exemplars().select(0, 5_000, &[vec![Matcher::equal("__name__", "requests_total")]]);
    /// assert_eq!(got[0].exemplars.len(), 1);
    /// ```
    pub fn append_exemplar(&mut self, series_ref: u64, ex: Exemplar) -> Result<(), ExemplarError> {
        let head = self.head;
        if !head.exemplars.enabled() {
            return Ok(());
        }
        crate::exemplar::check_label_set_length(&ex.labels)?;
        let labels = {
            let shard = head.series_shard(series_ref).lock();
            let Some(s) = shard.get(&series_ref) else {
                return Err(ExemplarError::UnknownSeriesRef(series_ref));
            };
            if !s.logged {
                self.unlogged.push(series_ref);
            }
            head.labels_of(s)
        };
        // The newest exemplar of the series buffered in this batch, if
        // any, else the store's newest decides.
        if let Some(prev) = self.exemplar_last.get(&series_ref).map(|&i| &self.exemplars[i]) {
            if prev.t == ex.t && prev.v.to_bits() == ex.value.to_bits() && prev.labels == ex.labels {
                return Ok(());
            }
            if ex.t <= prev.t {
                return Err(ExemplarError::OutOfOrder { t: ex.t, newest: prev.t });
            }
        } else if head.exemplars.validate(&labels, &ex)? != crate::exemplar::Added::Stored {
            return Ok(());
        }
        self.exemplar_last.insert(series_ref, self.exemplars.len());
        self.exemplars.push(RefExemplar { series_ref, t: ex.t, v: ex.value, labels: ex.labels });
        self.exemplar_series.push(labels);
        Ok(())
    }

    /// [`HeadAppender::append_histogram`] to the series with ref `series_ref`.
    pub fn append_histogram_ref(&mut self, series_ref: u64, t: i64, h: HistogramValue) -> Result<(), AppendError> {
        validate_histogram(&h)?;
        let head = self.head;
        let mut shard = head.series_shard(series_ref).lock();
        let Some(s) = shard.get_mut(&series_ref) else {
            return Err(AppendError::UnknownSeriesRef(series_ref));
        };
        self.check_and_buffer_histogram(series_ref, s, t, h)
    }

    /// Finds or creates the series `labels` and hands it to `buffer` under
    /// its shard lock; returns its ref.
    fn append_to(
        &mut self,
        labels: &Labels,
        buffer: impl FnOnce(&mut Self, u64, &mut MemSeries) -> Result<(), AppendError>,
    ) -> Result<u64, AppendError> {
        labels.validate(NameValidation::Utf8)?;
        let head = self.head;
        let h = labels.stable_hash();
        let mut hs = head.hash_shard(h).lock();
        let mut found = None;
        for cand in hs.candidates(h) {
            let shard = head.series_shard(cand).lock();
            if shard.get(&cand).is_some_and(|s| s.labels.view(&head.symbols.read()) == labels) {
                found = Some((cand, shard));
                break;
            }
        }
        let (r, mut shard, created) = match found {
            Some((r, shard)) => (r, shard, false),
            None => {
                let r = head.next_ref.fetch_add(1, Ordering::AcqRel);
                let mut shard = head.series_shard(r).lock();
                shard.insert(r, Box::new(MemSeries::new(head.symbols.write().encode(labels))));
                hs.insert(h, r);
                (r, shard, true)
            }
        };
        let Some(s) = shard.get_mut(&r) else {
            // Unreachable: the series is present while we hold the hash
            // shard lock, which removal also takes.
            return Err(AppendError::UnknownSeriesRef(r));
        };
        if created {
            // The creator holds the series until commit or rollback.
            self.created.push(r);
            s.pending += 1;
        }
        let res = buffer(self, r, s);
        drop(shard);
        drop(hs);
        if created {
            head.index.write().add(r, labels);
        }
        res.map(|()| r)
    }

    /// Whether `series_ref` names a series the head holds whose labels
    /// satisfy `matches` (called under the series' shard lock, so it must
    /// not append). A caller that keeps its own map from how a sender
    /// spells a label set to refs checks an entry with it before
    /// [`HeadAppender::append_ref`], instead of building a [`Labels`] and
    /// looking it up: the check costs one shard lock and no allocation. The
    /// series can still go away before the append (head truncation), which
    /// `append_ref` then reports as [`AppendError::UnknownSeriesRef`].
    pub fn ref_matches(&self, series_ref: u64, matches: impl FnOnce(LabelsView<'_>) -> bool) -> bool {
        let head = self.head;
        head.series_shard(series_ref)
            .lock()
            .get(&series_ref)
            .is_some_and(|s| matches(s.labels.view(&head.symbols.read())))
    }

    /// [`HeadAppender::ref_matches`] and [`HeadAppender::append_ref`] under
    /// one shard lock and one map lookup: if `series_ref` names a series
    /// whose labels satisfy `matches`, buffers `(t, v)` for it and returns
    /// the append's result; otherwise returns `None` and appends nothing.
    /// This is the receiver's hot path for a series it has seen before:
    /// the check needs the series anyway, so the append reuses it.
    ///
    /// ```
    /// use tidemark_storage::head::{Head, HeadOptions};
    /// use tidemark_storage::Labels;
    ///
    /// let head = Head::new(HeadOptions::default(), None);
    /// let up = Labels::new([("__name__", "up")]).unwrap();
    /// let mut app = head.appender();
    /// let r = app.append(&up, 1_000, 1.0).unwrap();
    /// assert!(matches!(app.append_ref_if(r, |l| l == up, 2_000, 1.0), Some(Ok(()))));
    /// assert!(app.append_ref_if(r, |_| false, 3_000, 1.0).is_none());
    /// assert_eq!(app.len(), 2);
    /// ```
    #[inline]
    pub fn append_ref_if(
        &mut self,
        series_ref: u64,
        matches: impl FnOnce(LabelsView<'_>) -> bool,
        t: i64,
        v: f64,
    ) -> Option<Result<(), AppendError>> {
        let head = self.head;
        let mut shard = head.series_shard(series_ref).lock();
        let s = shard.get_mut(&series_ref)?;
        if !matches(s.labels.view(&head.symbols.read())) {
            return None;
        }
        Some(self.check_and_buffer(series_ref, s, t, v))
    }

    /// Appends a sample to the series with ref `series_ref` (from an earlier
    /// [`HeadAppender::append`]). This is the hot path: one shard lock, no
    /// allocation besides the batch buffers.
    #[inline]
    pub fn append_ref(&mut self, series_ref: u64, t: i64, v: f64) -> Result<(), AppendError> {
        let head = self.head;
        let mut shard = head.series_shard(series_ref).lock();
        let Some(s) = shard.get_mut(&series_ref) else {
            return Err(AppendError::UnknownSeriesRef(series_ref));
        };
        self.check_and_buffer(series_ref, s, t, v)
    }

    /// A handle to the series `series_ref` for
    /// [`HeadAppender::append_handle`], if the head holds it.
    pub fn handle(&self, series_ref: u64) -> Option<SeriesHandle> {
        let head = self.head;
        let mut shard = head.series_shard(series_ref).lock();
        let s = shard.get_mut(&series_ref)?;
        Some(SeriesHandle {
            series_ref,
            ptr: std::ptr::NonNull::from(&mut **s),
            epoch: head.epoch.load(Ordering::Relaxed),
        })
    }

    /// [`HeadAppender::append_ref`] through a handle: while no series of
    /// the head has been removed since the handle was made, the series is
    /// reached by its address instead of being searched for by ref. A
    /// stale handle falls back to the search and, if the series is still
    /// held, is refreshed in place (compare it before and after to know
    /// whether to store it again); `UnknownSeriesRef` if it is gone.
    #[inline]
    pub fn append_handle(&mut self, h: &mut SeriesHandle, t: i64, v: f64) -> Result<(), AppendError> {
        let head = self.head;
        let r = h.series_ref;
        let mut shard = head.series_shard(r).lock();
        // Under the shard lock: a removal of this series moved the epoch
        // before it freed the box, under this same lock (see the type).
        let epoch = head.epoch.load(Ordering::Relaxed);
        let s: &mut MemSeries = if epoch == h.epoch {
            // Checked in the unit tests (run optimised, without debug
            // assertions), which include concurrent truncation.
            #[cfg(test)]
            assert!(
                shard.get(&r).is_some_and(|b| std::ptr::eq(&**b, h.ptr.as_ptr())),
                "series {r} moved or went away under an unchanged epoch"
            );
            // SAFETY: the epoch is unchanged, so the series is still boxed
            // at this address (the handle's invariant), and we hold its
            // shard lock, so this is the only reference to it.
            unsafe { &mut *h.ptr.as_ptr() }
        } else {
            let Some(s) = shard.get_mut(&r) else {
                return Err(AppendError::UnknownSeriesRef(r));
            };
            h.ptr = std::ptr::NonNull::from(&mut **s);
            h.epoch = epoch;
            s
        };
        self.check_and_buffer(r, s, t, v)
    }

    /// Hints the CPU to start loading what [`HeadAppender::append_handle`]
    /// will touch for `h` (its shard lock and the series): calling it a few
    /// series ahead overlaps those cache misses. Never dereferences
    /// anything, so a stale handle is harmless here.
    #[inline]
    pub fn prefetch(&self, h: &SeriesHandle) {
        self.prefetch_series(h.series_ref, h.ptr.as_ptr());
    }

    /// Prefetches the shard lock of `r` and the first lines of the series
    /// at `series` (a hint: nothing is dereferenced).
    #[inline]
    fn prefetch_series(&self, r: u64, series: *mut MemSeries) {
        prefetch(self.head.series_shard(r) as *const Mutex<_>);
        let p = series.cast::<u8>().cast_const();
        // The series' hot fields (open chunk, last sample, pending) span
        // its first lines.
        for line in (0..std::mem::size_of::<MemSeries>().min(192)).step_by(64) {
            prefetch(p.wrapping_add(line));
        }
    }

    #[inline]
    fn check_and_buffer(&mut self, r: u64, s: &mut MemSeries, t: i64, v: f64) -> Result<(), AppendError> {
        use std::collections::hash_map::Entry;
        let head = self.head;
        // A histogram buffered at this timestamp keeps it (a timestamp holds
        // one sample; the first appended in a batch wins).
        if !self.histogram_times.is_empty() && self.histogram_times.contains(&(r, t)) {
            head.counters.rejected_duplicate.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::DuplicateTimestamp { t });
        }
        // One hash lookup per sample: the entry serves the check and the
        // bookkeeping.
        let res = match self.batch.entry(r) {
            Entry::Occupied(mut o) => check(head, s, o.get().last, t, v).map(|kind| {
                let b = o.get_mut();
                if !matches!(kind, Kind::Identical) {
                    b.buffered += 1;
                    s.pending += 1;
                }
                if matches!(kind, Kind::InOrder) {
                    b.last = Some((t, v.to_bits()));
                }
                kind
            }),
            Entry::Vacant(e) => check(head, s, None, t, v).map(|kind| {
                if !matches!(kind, Kind::Identical) {
                    if !s.logged {
                        self.unlogged.push(r);
                    }
                    s.pending += 1;
                    e.insert(Batch { last: matches!(kind, Kind::InOrder).then_some((t, v.to_bits())), buffered: 1 });
                }
                kind
            }),
        };
        match res {
            Ok(Kind::Identical) => Ok(()),
            Ok(_) => {
                self.samples.push(RefSample { series_ref: r, t, v });
                self.series.push(SeriesPtr(std::ptr::NonNull::from(s)));
                Ok(())
            }
            Err(e) => {
                let c = &head.counters;
                let ctr = match e {
                    AppendError::OutOfOrder { .. } => &c.rejected_out_of_order,
                    AppendError::DuplicateTimestamp { .. } => &c.rejected_duplicate,
                    _ => &c.rejected_too_old,
                };
                ctr.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn check_and_buffer_histogram(
        &mut self,
        r: u64,
        s: &mut MemSeries,
        t: i64,
        h: HistogramValue,
    ) -> Result<(), AppendError> {
        let head = self.head;
        let batch_last = self.histogram_last.get(&r).copied();
        // A float buffered at this timestamp keeps it (as in Prometheus,
        // where a batch's floats are committed before its histograms).
        let float_here = self.batch.get(&r).and_then(|b| b.last).is_some_and(|(lt, _)| lt == t);
        let checked = if float_here {
            Err(AppendError::DuplicateTimestamp { t })
        } else {
            check_histogram(head, s, batch_last, t, &h)
        };
        match checked {
            Ok(Kind::Identical) => Ok(()),
            Ok(kind) => {
                match self.batch.entry(r) {
                    std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().buffered += 1,
                    std::collections::hash_map::Entry::Vacant(e) => {
                        if !s.logged {
                            self.unlogged.push(r);
                        }
                        e.insert(Batch { last: None, buffered: 1 });
                    }
                }
                s.pending += 1;
                if matches!(kind, Kind::InOrder) {
                    self.histogram_last.insert(r, t);
                }
                self.histogram_times.insert((r, t));
                self.histograms.push(RefHistogramSample { series_ref: r, t, h });
                self.histogram_series.push(SeriesPtr(std::ptr::NonNull::from(s)));
                Ok(())
            }
            Err(e) => {
                let c = &head.counters;
                let ctr = match e {
                    AppendError::OutOfOrder { .. } => &c.rejected_out_of_order,
                    AppendError::DuplicateTimestamp { .. } => &c.rejected_duplicate,
                    _ => &c.rejected_too_old,
                };
                ctr.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Number of samples buffered (floats and histograms).
    pub fn len(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.histograms.is_empty()
    }

    /// Logs the `Series` records of series not logged yet (new ones) and
    /// then a `Samples` record through the head's [`super::CommitLog`], if
    /// any, then applies the samples. If logging fails nothing is applied,
    /// the batch is rolled back and the error is returned.
    pub fn commit(self) -> Result<CommitStats, crate::Error> {
        self.commit_with(true)
    }

    /// [`HeadAppender::commit`] whose log write need not be fsynced (see
    /// [`super::CommitLog::log_relaxed`]).
    pub fn commit_relaxed(self) -> Result<CommitStats, crate::Error> {
        self.commit_with(false)
    }

    fn commit_with(mut self, durable: bool) -> Result<CommitStats, crate::Error> {
        self.done = true;
        let head = self.head;
        let samples = std::mem::take(&mut self.samples);
        let histograms = std::mem::take(&mut self.histograms);
        let exemplars = std::mem::take(&mut self.exemplars);
        let Some(log) = head.log.clone() else {
            // Histograms first, as a replay of the log would apply them.
            let mut stats = CommitStats::default();
            self.apply_histograms(&histograms, &mut stats);
            self.apply_runs(&samples, None, &mut stats, |_, _, _, _| true);
            self.apply_exemplars(&exemplars);
            let stats = self.finish_apply(stats);
            self.recycle(samples);
            return Ok(stats);
        };
        // The samples' record is encoded before the commit lock is taken
        // when the log takes it encoded: concurrent commits then encode
        // (and compress) in parallel, and the lock is held only to pick
        // the series records and queue.
        let mut samples_record = (!samples.is_empty()).then_some(Record::Samples(samples));
        let encoded = match samples_record.as_ref().and_then(|r| log.encode(std::slice::from_ref(r))) {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => {
                self.release();
                return Err(e);
            }
            None => None,
        };
        // Under the commit lock: pick the series records to log, queue the
        // records and take the apply ticket, so log order = ticket order.
        let mut records = Vec::with_capacity(2);
        let mut logged = Vec::new();
        let (ticket, queued) = {
            let mut next_ticket = head.commit_lock.lock();
            // Series logged since their first sample was buffered (by
            // another commit) are skipped by the check below; series logged
            // before it were never listed. A series whose record another
            // commit has queued but not yet written is logged again (a
            // duplicate record replay skips): that commit's batch may fail
            // and be rolled out of the log while ours succeeds.
            let mut refs = std::mem::take(&mut self.unlogged);
            refs.sort_unstable();
            // A series with an exemplar may be listed twice.
            refs.dedup();
            let mut new_series = Vec::new();
            for r in refs {
                let shard = head.series_shard(r).lock();
                if let Some(s) = shard.get(&r).filter(|s| !s.logged) {
                    new_series.push(RefSeries { series_ref: r, labels: head.labels_of(s) });
                }
            }
            logged.extend(new_series.iter().map(|s| s.series_ref));
            if !new_series.is_empty() {
                records.push(Record::Series(new_series));
            }
            // Histograms after their series and before the floats: replay
            // applies them in this order, and so does the apply below.
            if !histograms.is_empty() {
                records.push(Record::HistogramSamples(histograms.clone()));
            }
            // Exemplars after their series; their place among the samples
            // does not matter (they go to their own store).
            if !exemplars.is_empty() {
                records.push(Record::Exemplars(exemplars.clone()));
            }
            let submitted = match encoded {
                // The series first: a sample's series is always logged before it.
                Some(e) => log.submit_encoded(&records, e, durable),
                None => {
                    if records.is_empty() && samples_record.is_none() {
                        drop(next_ticket);
                        return Ok(self.apply(&[]));
                    }
                    let n = records.len();
                    records.extend(samples_record.take());
                    let res = log.submit(&records, durable);
                    samples_record = if records.len() > n { records.pop() } else { None };
                    res
                }
            };
            match submitted {
                Ok(queued) => {
                    let ticket = *next_ticket;
                    *next_ticket += 1;
                    (ticket, queued)
                }
                Err(e) => {
                    drop(next_ticket);
                    self.release();
                    return Err(e);
                }
            }
        };
        // The write and fsync, shared with concurrent commits; no head lock
        // is held.
        let logged_ok = queued.map_or(Ok(()), |t| log.wait(t));
        // Completes the ticket however this ends (error, panic, or done).
        let turn = head.apply_turns.guard(ticket);
        if let Err(e) = logged_ok {
            drop(turn);
            self.release();
            return Err(e);
        }
        for r in logged {
            if let Some(s) = head.series_shard(r).lock().get_mut(&r) {
                s.logged = true;
            }
        }
        let samples = match samples_record {
            Some(Record::Samples(s)) => s,
            _ => Vec::new(),
        };
        let mut stats = CommitStats::default();
        // First the series no other appender touches: they need no turn
        // (see `ApplyTurns`). `pending` counts this batch's samples of the
        // series and, if this appender created it, its hold.
        self.created.sort_unstable();
        let created = std::mem::take(&mut self.created);
        let mut deferred = Vec::new();
        self.apply_runs(&samples, None, &mut stats, |s, r, start, len| {
            // A series in several runs of the batch never passes (its
            // `pending` counts them all): it waits, which is always safe.
            let own = len as u64 + u64::from(created.binary_search(&r).is_ok());
            let alone = u64::from(s.pending) == own;
            if !alone {
                deferred.push(start);
            }
            alone
        });
        self.created = created;
        if !deferred.is_empty() || !histograms.is_empty() || !exemplars.is_empty() {
            // The rest in log order: after every earlier commit. A series
            // with histograms in this batch is never alone (its `pending`
            // counts them), so its floats come after them, as in the log.
            // Exemplars too: the store keeps each series' in log order.
            turn.wait();
            self.apply_histograms(&histograms, &mut stats);
            self.apply_runs(&samples, Some(&deferred), &mut stats, |_, _, _, _| true);
            self.apply_exemplars(&exemplars);
        }
        drop(turn);
        let stats = self.finish_apply(stats);
        self.recycle(samples);
        Ok(stats)
    }

    /// Applies the buffered samples (`samples` is what was buffered, in
    /// order, so `self.series` holds their series) and releases this
    /// appender's holds.
    fn apply(&mut self, samples: &[RefSample]) -> CommitStats {
        let mut stats = CommitStats::default();
        self.apply_runs(samples, None, &mut stats, |_, _, _, _| true);
        self.finish_apply(stats)
    }

    /// Stores the buffered exemplars (`exemplars` is what was buffered, so
    /// `self.exemplar_series` holds their series' labels). One refused
    /// now (a concurrent commit stored a newer one first) is counted by
    /// the store and dropped, as replay would drop it.
    fn apply_exemplars(&mut self, exemplars: &[RefExemplar]) {
        let series = std::mem::take(&mut self.exemplar_series);
        self.exemplar_last.clear();
        for (e, labels) in exemplars.iter().zip(&series) {
            let ex = Exemplar { labels: e.labels.clone(), value: e.v, t: e.t };
            let _ = self.head.exemplars.add(labels, &ex);
        }
    }

    /// Applies the buffered histogram samples (`histograms` is what was
    /// buffered, so `self.histogram_series` holds their series), in order.
    fn apply_histograms(&self, histograms: &[RefHistogramSample], stats: &mut CommitStats) {
        if histograms.is_empty() {
            return;
        }
        assert_eq!(histograms.len(), self.histogram_series.len(), "a buffered histogram without its series");
        let head = self.head;
        head.saw_histograms();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let _t = head.truncate_lock.read();
        let min_valid = head.min_valid_time();
        let ooo = head.opts.ooo_window > 0;
        for (smp, p) in histograms.iter().zip(&self.histogram_series) {
            let r = smp.series_ref;
            let shard = head.series_shard(r).lock();
            // SAFETY: as in `apply_runs`: the series is present and at this
            // address while its sample is buffered, and we hold its shard
            // lock.
            let s = unsafe { &mut *p.0.as_ptr() };
            s.pending = s.pending.saturating_sub(1);
            if smp.t < min_valid {
                stats.rejected_too_old += 1;
            } else {
                let applied = s.apply_histogram(r, smp.t, &smp.h, ooo, &head.chunks);
                if stats.record(applied) {
                    stats.histograms_applied += 1;
                    lo = lo.min(smp.t);
                    hi = hi.max(smp.t);
                }
            }
            drop(shard);
        }
        head.extend_time_range(lo, hi);
    }

    /// Applies the runs of consecutive samples of one series (all of them,
    /// or those starting at `starts`) that `take` accepts, given under the
    /// series' lock the series, its ref, the run's start and length;
    /// counts into `stats`.
    fn apply_runs(
        &self,
        samples: &[RefSample],
        starts: Option<&[usize]>,
        stats: &mut CommitStats,
        mut take: impl FnMut(&MemSeries, u64, usize, usize) -> bool,
    ) {
        assert_eq!(samples.len(), self.series.len(), "a buffered sample without its series");
        let head = self.head;
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let _t = head.truncate_lock.read();
        let min_valid = head.min_valid_time();
        let ooo = head.opts.ooo_window > 0;
        let p = head.cut_params();
        let mut next_start = starts.map(|s| s.iter());
        let mut i = 0;
        loop {
            if let Some(it) = next_start.as_mut() {
                match it.next() {
                    Some(&start) => i = start,
                    None => break,
                }
            }
            if i >= samples.len() {
                break;
            }
            let r = samples[i].series_ref;
            // Overlap the cache misses of the series a few ahead (their
            // shard lock and hot lines), as appending does.
            if let (Some(ahead), Some(p)) =
                (samples.get(i + APPLY_PREFETCH_AHEAD), self.series.get(i + APPLY_PREFETCH_AHEAD))
            {
                self.prefetch_series(ahead.series_ref, p.0.as_ptr());
            }
            let mut j = i + 1;
            while j < samples.len() && samples[j].series_ref == r {
                j += 1;
            }
            // Consecutive samples of one series share one lock.
            let shard = head.series_shard(r).lock();
            // Checked in the unit tests (run optimised, without debug
            // assertions), which include concurrent truncation.
            #[cfg(test)]
            assert!(
                shard.get(&r).is_some_and(|b| std::ptr::eq(&**b, self.series[i].0.as_ptr())),
                "series {r} moved or went away while buffered"
            );
            // SAFETY: the series is present and at this address while
            // its samples are buffered (see `SeriesPtr`), and we hold
            // its shard lock, so this is the only reference to it.
            let s = unsafe { &mut *self.series[i].0.as_ptr() };
            if take(s, r, i, j - i) {
                for smp in &samples[i..j] {
                    s.pending = s.pending.saturating_sub(1);
                    if smp.t < min_valid {
                        stats.rejected_too_old += 1;
                    } else if stats.record(s.apply(r, smp.t, smp.v, ooo, p)) {
                        lo = lo.min(smp.t);
                        hi = hi.max(smp.t);
                    }
                }
            }
            drop(shard);
            i = j;
        }
        head.extend_time_range(lo, hi);
    }

    /// Counts the applied batch into the head and releases this appender's
    /// holds on the series it created.
    fn finish_apply(&mut self, mut stats: CommitStats) -> CommitStats {
        let head = self.head;
        stats.series_created = self.created.len() as u64;
        head.add_commit_stats(&stats);
        self.batch.clear();
        self.histogram_series.clear();
        self.histogram_last.clear();
        self.histogram_times.clear();
        for r in std::mem::take(&mut self.created) {
            if let Some(s) = head.series_shard(r).lock().get_mut(&r) {
                s.pending = s.pending.saturating_sub(1);
            }
        }
        stats
    }

    /// Discards the buffered samples. Series this appender created are
    /// removed again unless they hold samples or another appender uses them.
    pub fn rollback(mut self) {
        self.done = true;
        self.release();
    }

    fn release(&mut self) {
        let head = self.head;
        for (&r, b) in &self.batch {
            if let Some(s) = head.series_shard(r).lock().get_mut(&r) {
                s.pending = s.pending.saturating_sub(b.buffered);
            }
        }
        let samples = std::mem::take(&mut self.samples);
        self.recycle(samples);
        self.histograms.clear();
        self.histogram_series.clear();
        self.histogram_last.clear();
        self.histogram_times.clear();
        self.exemplars.clear();
        self.exemplar_series.clear();
        self.exemplar_last.clear();
        let mut candidates = Vec::new();
        for r in std::mem::take(&mut self.created) {
            let mut shard = head.series_shard(r).lock();
            if let Some(s) = shard.get_mut(&r) {
                s.pending = s.pending.saturating_sub(1);
                if s.pending == 0 && s.is_empty() {
                    candidates.push((r, head.labels_of(s).stable_hash()));
                }
            }
        }
        head.remove_if_empty(candidates);
    }
}

/// Prometheus' `appendable`: where sample `(t, v)` may go in series `s`,
/// given the newest in-order sample this batch buffered for it.
#[inline]
fn check(head: &Head, s: &MemSeries, batch_last: Option<(i64, u64)>, t: i64, v: f64) -> Result<Kind, AppendError> {
    let trunc = head.min_valid_time();
    if t < trunc {
        return Err(AppendError::TooOld { t, min_valid_t: trunc });
    }
    // A timestamp holds one sample: one with a histogram refuses a float.
    if s.hist().is_some_and(|h| h.has_at(t)) {
        return Err(AppendError::DuplicateTimestamp { t });
    }
    let head_max = head.max_time();
    let window = head.opts.ooo_window;
    // Keep appends out of the range a block may be cut from.
    let cw_end = if head_max == i64::MIN { i64::MIN } else { head_max.saturating_sub(head.opts.chunk_range / 2) };
    let min_valid = trunc.max(cw_end);
    let last = match (batch_last, s.last()) {
        (Some(b), Some(c)) => Some(if c.0 > b.0 { c } else { b }),
        (b, c) => b.or(c),
    };
    let vb = v.to_bits();
    let in_order = |last: Option<(i64, u64)>| -> Option<Result<Kind, AppendError>> {
        match last {
            None => Some(Ok(Kind::InOrder)),
            Some((lt, _)) if t > lt => Some(Ok(Kind::InOrder)),
            Some((lt, lv)) if t == lt => {
                Some(if lv == vb { Ok(Kind::Identical) } else { Err(AppendError::DuplicateTimestamp { t }) })
            }
            Some(_) => None,
        }
    };
    if t >= min_valid {
        if let Some(res) = in_order(last) {
            return res;
        }
    }
    if window > 0 {
        let ooo_min = head_max.saturating_sub(window);
        if t < ooo_min {
            return Err(AppendError::TooOld { t, min_valid_t: ooo_min });
        }
        if let Some(res) = in_order(last) {
            return res;
        }
        return match s.value_at(None, t, head.chunk_store()) {
            Some(bits) if bits == vb => Ok(Kind::Identical),
            Some(_) => Err(AppendError::DuplicateTimestamp { t }),
            None => Ok(Kind::OutOfOrder),
        };
    }
    if t < min_valid {
        return Err(AppendError::TooOld { t, min_valid_t: min_valid });
    }
    let last_t = last.map_or(i64::MIN, |l| l.0);
    Err(AppendError::OutOfOrder { t, last_t })
}

/// Refuses a histogram that is not valid (Prometheus' `Validate`).
fn validate_histogram(h: &HistogramValue) -> Result<(), AppendError> {
    let res = match h {
        HistogramValue::Integer(h) => h.validate(),
        HistogramValue::Float(h) => h.validate(),
    };
    res.map_err(|e| AppendError::InvalidHistogram(e.to_string()))
}

/// [`check`] for a histogram sample: where it may go in series `s`, given
/// the newest in-order histogram timestamp this batch buffered for it. A
/// timestamp that holds the other kind of sample is a duplicate.
fn check_histogram(
    head: &Head,
    s: &MemSeries,
    batch_last: Option<i64>,
    t: i64,
    h: &HistogramValue,
) -> Result<Kind, AppendError> {
    let trunc = head.min_valid_time();
    if t < trunc {
        return Err(AppendError::TooOld { t, min_valid_t: trunc });
    }
    if s.last().is_some_and(|(lt, _)| lt == t) {
        return Err(AppendError::DuplicateTimestamp { t });
    }
    let head_max = head.max_time();
    let window = head.opts.ooo_window;
    let cw_end = if head_max == i64::MIN { i64::MIN } else { head_max.saturating_sub(head.opts.chunk_range / 2) };
    let min_valid = trunc.max(cw_end);
    let stored = s.hist().and_then(|d| d.last());
    let last_t = match (batch_last, stored.map(|l| l.t)) {
        (Some(b), Some(c)) => Some(b.max(c)),
        (b, c) => b.or(c),
    };
    match last_t {
        None if t >= min_valid => return Ok(Kind::InOrder),
        Some(lt) if t > lt && t >= min_valid => return Ok(Kind::InOrder),
        Some(lt) if t == lt => {
            // Equal to the stored newest: nothing to do. Against a buffered
            // one, apply decides (identical or duplicate).
            return match stored {
                Some(l) if l.t == t && l.h.same_data(h) => Ok(Kind::Identical),
                Some(l) if l.t == t => Err(AppendError::DuplicateTimestamp { t }),
                _ => Ok(Kind::InOrder),
            };
        }
        _ => {}
    }
    if window > 0 {
        let ooo_min = head_max.saturating_sub(window);
        if t < ooo_min {
            return Err(AppendError::TooOld { t, min_valid_t: ooo_min });
        }
        return Ok(Kind::OutOfOrder);
    }
    if t < min_valid {
        return Err(AppendError::TooOld { t, min_valid_t: min_valid });
    }
    Err(AppendError::OutOfOrder { t, last_t: last_t.unwrap_or(i64::MIN) })
}

impl Drop for HeadAppender<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.release();
        }
    }
}

#[cfg(test)]
mod turn_tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::super::{ApplyTurns, TURN_SLOTS};

    /// More commits wait for their turn than there are condvars (tickets a
    /// multiple of `TURN_SLOTS` apart share one), started in reverse order:
    /// each still gets its turn, in ticket order, and none is left asleep.
    #[test]
    fn apply_turns_pass_in_ticket_order_with_slots_shared() {
        let turns = Arc::new(ApplyTurns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let n = 3 * TURN_SLOTS as u64 + 1;
        let (done, finished) = mpsc::channel();
        for ticket in (0..n).rev() {
            let (turns, order, done) = (Arc::clone(&turns), Arc::clone(&order), done.clone());
            std::thread::spawn(move || {
                let turn = turns.guard(ticket);
                turn.wait();
                order.lock().push(ticket);
                drop(turn);
                done.send(()).unwrap();
            });
        }
        for _ in 0..n {
            finished.recv_timeout(Duration::from_secs(10)).expect("a commit never got its turn");
        }
        assert_eq!(*order.lock(), (0..n).collect::<Vec<_>>());
        assert_eq!(turns.state.lock().next, n);
    }

    /// Tickets completed out of turn pass the turn on together once every
    /// ticket before them has completed.
    #[test]
    fn out_of_turn_completions_pass_the_turn_once_the_gap_closes() {
        let turns = Arc::new(ApplyTurns::default());
        turns.complete(2);
        turns.complete(1);
        assert_eq!(turns.state.lock().next, 0);
        let (done, finished) = mpsc::channel();
        let waiter = Arc::clone(&turns);
        std::thread::spawn(move || {
            waiter.wait_for(3);
            done.send(()).unwrap();
        });
        assert!(
            finished.recv_timeout(Duration::from_millis(50)).is_err(),
            "ticket 3 got its turn before ticket 0 completed"
        );
        turns.complete(0);
        finished.recv_timeout(Duration::from_secs(10)).expect("ticket 3 never got its turn");
        let st = turns.state.lock();
        assert_eq!((st.next, st.done_ahead.len()), (3, 0));
    }
}
