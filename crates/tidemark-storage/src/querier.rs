//! Reading: one consistent view over the head and every block that overlaps
//! a time range.
//!
//! Each source (the head, each block) answers `select` with series sorted by
//! labels. The querier merges those lists by labels, so a series that lives
//! in several blocks and in the head comes out once, with all its chunks.
//! Its [`SeriesIterator`] walks the chunks in time order, clipped to the
//! query range; where chunks overlap (out-of-order data, or blocks that
//! overlap before vertical compaction) it merges them and keeps one sample
//! per timestamp.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::chunkenc::{Chunk, ChunkBytes, ChunkIterator, ChunkSeries, DrainEnd, Encoding, Extreme, XorIterator};
use crate::histogram::HistogramSample;
use crate::prefetch::prefetch;
use crate::sample::{MixedIterator, Sample, SampleIterator, ValueKind, VecIterator};
use crate::{Error, Labels, Matcher};

/// A function of one series' samples in a range (oldest first, staleness
/// markers included) giving at most one point: what
/// [`Querier::select_windows`] applies to each series in place.
pub type WindowFn<'a> = dyn Fn(&[Sample]) -> Option<Sample> + Sync + 'a;

/// What [`Querier::select_windows`] gives: each series for which the
/// function gave a point, with that point, sorted by labels.
pub type WindowPoints = Vec<(Labels, Sample)>;

/// Something that holds series: the head or a block.
pub(crate) trait SeriesSource: Send + Sync {
    /// Series matching `matchers` with chunks overlapping `[mint, maxt]`,
    /// sorted by labels. Data left out because it is damaged is described
    /// in `warnings` (one line per problem) instead of failing the call.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<ChunkSeries>, Error>;
    /// [`SeriesSource::select`] in whatever order is cheapest, and whether
    /// that order is label order. Default: `select`, sorted.
    fn select_unordered(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<ChunkSeries>, bool), Error> {
        Ok((self.select(matchers, mint, maxt, warnings)?, true))
    }
    /// [`SeriesSource::select_unordered`] with the labels left empty, for
    /// a reader that only counts series; `None` when the source has no
    /// cheaper way than `select_unordered` (the default).
    fn select_unlabelled(
        &self,
        _matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
        _warnings: &mut Vec<String>,
    ) -> Result<Option<Vec<ChunkSeries>>, Error> {
        Ok(None)
    }
    /// `f` applied to each selected series' samples in `[mint, maxt]`,
    /// read in place (see [`Querier::select_windows`]); `None` when the
    /// source has no such path (the default).
    fn select_windows(
        &self,
        _matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
        _f: &WindowFn<'_>,
        _warnings: &mut Vec<String>,
    ) -> Option<(WindowPoints, usize)> {
        None
    }
    /// Sorted label names of the series matching `matchers`.
    fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, Error>;
    /// Sorted values of `name` over the series matching `matchers`.
    fn label_values(&self, name: &str, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>, Error>;
}

/// A read view over `[mint, maxt]` (both inclusive, milliseconds).
///
/// A querier pins the blocks that existed when it was created, so retention
/// or compaction running meanwhile does not change (or break) its answers.
///
/// ```
/// use tidemark_storage::{Db, Labels, Matcher};
/// let db = Db::in_memory().unwrap();
/// let mut app = db.appender();
/// app.append(&Labels::new([("__name__", "up"), ("job", "api")]).unwrap(), 1_000, 1.0).unwrap();
/// app.commit().unwrap();
/// let q = db.querier(0, 10_000);
/// let series = q.select(&[Matcher::equal("__name__", "up")]).unwrap();
/// assert_eq!(series.len(), 1);
/// assert_eq!(series[0].samples().unwrap()[0].v, 1.0);
/// ```
pub struct Querier {
    sources: Vec<Arc<dyn SeriesSource>>,
    mint: i64,
    maxt: i64,
    /// Damaged data left out of answers, one line per problem, de-duplicated.
    warnings: Mutex<Vec<String>>,
}

impl Querier {
    pub(crate) fn new(sources: Vec<Arc<dyn SeriesSource>>, mint: i64, maxt: i64) -> Querier {
        Querier { sources, mint, maxt, warnings: Mutex::new(Vec::new()) }
    }

    pub(crate) fn add_warning(&self, w: String) {
        let mut ws = self.warnings.lock();
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    fn add_warnings(&self, warnings: Vec<String>) {
        for w in warnings {
            self.add_warning(w);
        }
    }

    /// The merged selection as the querier's series: those with chunks in
    /// the range, bounded by it.
    fn bounded_series(&self, merged: Vec<ChunkSeries>) -> Vec<Series> {
        merged
            .into_iter()
            .filter(|cs| !cs.chunks.is_empty())
            .map(|cs| Series { labels: cs.labels, chunks: cs.chunks, mint: self.mint, maxt: self.maxt })
            .collect()
    }

    /// Warnings about data in the range that could not be read (damaged
    /// chunks skipped, quarantined blocks) and is missing from the answers
    /// so far; empty when everything was readable.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    /// Start of the queried range (inclusive).
    pub fn mint(&self) -> i64 {
        self.mint
    }

    /// End of the queried range (inclusive).
    pub fn maxt(&self) -> i64 {
        self.maxt
    }

    /// The series matching all `matchers` (at least one should select
    /// something specific, as in Prometheus), sorted by labels.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, Error> {
        if self.mint > self.maxt {
            return Ok(Vec::new());
        }
        let mut lists = Vec::with_capacity(self.sources.len());
        let mut warnings = Vec::new();
        for s in &self.sources {
            let l = s.select(matchers, self.mint, self.maxt, &mut warnings)?;
            if !l.is_empty() {
                lists.push(l);
            }
        }
        self.add_warnings(warnings);
        let merged = merge_by_labels(lists);
        Ok(self.bounded_series(merged))
    }

    /// [`Querier::select`] for a reader to whom the order of the series is
    /// unobservable (one that only counts them, say): the same series with
    /// the same chunks, in an unspecified order. When only one source (the
    /// head, usually) has series in the range, they come in its cheapest
    /// order and the sort into label order is skipped; when several do,
    /// they are sorted and merged as by `select`, so that a series held by
    /// several sources still comes out once.
    ///
    /// ```
    /// use tidemark_storage::{Db, Labels, Matcher};
    /// let db = Db::in_memory().unwrap();
    /// let mut app = db.appender();
    /// for job in ["b", "a"] {
    ///     app.append(&Labels::new([("__name__", "up"), ("job", job)]).unwrap(), 1_000, 1.0).unwrap();
    /// }
    /// app.commit().unwrap();
    /// let q = db.querier(0, 10_000);
    /// let mut jobs: Vec<String> = q
    ///     .select_unordered(&[Matcher::equal("__name__", "up")])
    ///     .unwrap()
    ///     .iter()
    ///     .map(|s| s.labels().get("job").unwrap().to_string())
    ///     .collect();
    /// jobs.sort();
    /// assert_eq!(jobs, ["a", "b"]);
    /// ```
    pub fn select_unordered(&self, matchers: &[Matcher]) -> Result<Vec<Series>, Error> {
        if self.mint > self.maxt {
            return Ok(Vec::new());
        }
        let mut lists = Vec::with_capacity(self.sources.len());
        let mut warnings = Vec::new();
        for s in &self.sources {
            let (l, sorted) = s.select_unordered(matchers, self.mint, self.maxt, &mut warnings)?;
            if !l.is_empty() {
                lists.push((l, sorted));
            }
        }
        self.add_warnings(warnings);
        let merged = if lists.len() == 1 {
            lists.pop().map(|(l, _)| l).unwrap_or_default()
        } else {
            let sorted = lists
                .into_iter()
                .map(|(mut l, sorted)| {
                    if !sorted {
                        crate::label_sort::sort_by_labels(&mut l, |cs| &cs.labels);
                    }
                    l
                })
                .collect();
            merge_by_labels(sorted)
        };
        Ok(self.bounded_series(merged))
    }

    /// [`Querier::select_unordered`] for a reader that only counts the
    /// selected series (or their points): the same series with the same
    /// chunks, in an unspecified order, where a series may come with empty
    /// labels. When only one source has series in the range (the head,
    /// usually) and it can, it skips building each series' label set;
    /// when several do, the series are merged by labels as by
    /// `select_unordered` (so a series held by several sources still comes
    /// out once) and keep them.
    ///
    /// ```
    /// use tidemark_storage::{Db, Labels, Matcher};
    /// let db = Db::in_memory().unwrap();
    /// let mut app = db.appender();
    /// for job in ["b", "a"] {
    ///     app.append(&Labels::new([("__name__", "up"), ("job", job)]).unwrap(), 1_000, 1.0).unwrap();
    /// }
    /// app.commit().unwrap();
    /// let q = db.querier(0, 10_000);
    /// let series = q.select_unlabelled(&[Matcher::equal("__name__", "up")]).unwrap();
    /// assert_eq!(series.len(), 2);
    /// assert!(series.iter().all(|s| s.samples().unwrap().len() == 1));
    /// ```
    pub fn select_unlabelled(&self, matchers: &[Matcher]) -> Result<Vec<Series>, Error> {
        if self.mint > self.maxt {
            return Ok(Vec::new());
        }
        // Which sources have series in the range, each as cheaply as it
        // can; an unlabelled list is only usable if it is the only one.
        let mut lists: Vec<(usize, Vec<ChunkSeries>, bool)> = Vec::with_capacity(self.sources.len());
        let mut warnings = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            let (l, labelled) = match s.select_unlabelled(matchers, self.mint, self.maxt, &mut warnings)? {
                Some(l) => (l, false),
                None => (s.select(matchers, self.mint, self.maxt, &mut warnings)?, true),
            };
            if !l.is_empty() {
                lists.push((i, l, labelled));
            }
        }
        let merged = if lists.len() <= 1 {
            self.add_warnings(warnings);
            lists.pop().map(|(_, l, _)| l).unwrap_or_default()
        } else {
            // Several sources: series are matched up by labels, so a list
            // left unlabelled is read again, with them and sorted (its
            // warnings were already taken from the first read).
            let mut sorted = Vec::with_capacity(lists.len());
            for (i, l, labelled) in lists {
                if labelled {
                    sorted.push(l);
                    continue;
                }
                drop(l);
                let mut again = Vec::new();
                let l = self.sources[i].select(matchers, self.mint, self.maxt, &mut again)?;
                sorted.push(l);
            }
            self.add_warnings(warnings);
            merge_by_labels(sorted)
        };
        Ok(self.bounded_series(merged))
    }

    /// `f` applied to the samples in the range of each series matching
    /// all `matchers`, read where they are stored instead of handed out as
    /// chunks: the series for which it gives a point, sorted by labels, and
    /// the number of samples read (those of every series, with or without
    /// a point). `f` sees exactly the samples [`Querier::select`]'s series
    /// would yield, in the same order; it is called from the select's
    /// threads, once per series with samples in the range. `None` when
    /// the range is not held by the head alone (blocks overlap it): then
    /// use [`Querier::select`].
    ///
    /// ```
    /// use tidemark_storage::{Db, Labels, Matcher, Sample};
    /// let db = Db::in_memory().unwrap();
    /// let mut app = db.appender();
    /// let up = Labels::new([("__name__", "up")]).unwrap();
    /// for t in [1_000, 2_000, 3_000] {
    ///     app.append(&up, t, t as f64).unwrap();
    /// }
    /// app.commit().unwrap();
    /// let q = db.querier(1_500, 10_000);
    /// let last = |s: &[Sample]| s.last().copied();
    /// let (points, read) = q.select_windows(&[Matcher::equal("__name__", "up")], &last).unwrap().unwrap();
    /// assert_eq!(read, 2);
    /// assert_eq!(points, vec![(up, Sample { t: 3_000, v: 3_000.0 })]);
    /// ```
    pub fn select_windows(
        &self,
        matchers: &[Matcher],
        f: &WindowFn<'_>,
    ) -> Option<Result<(WindowPoints, usize), Error>> {
        if self.mint > self.maxt {
            return Some(Ok((Vec::new(), 0)));
        }
        let [source] = &self.sources[..] else { return None };
        let mut warnings = Vec::new();
        let out = source.select_windows(matchers, self.mint, self.maxt, f, &mut warnings)?;
        self.add_warnings(warnings);
        Some(Ok(out))
    }

    /// Sorted, unique label names of the series matching `matchers` (all series if empty).
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        let mut lists = Vec::new();
        for s in &self.sources {
            lists.push(s.label_names(matchers, self.mint, self.maxt)?);
        }
        Ok(merge_strings(lists))
    }

    /// Sorted, unique values of label `name` over the series matching `matchers`.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, Error> {
        let mut lists = Vec::new();
        for s in &self.sources {
            lists.push(s.label_values(name, matchers, self.mint, self.maxt)?);
        }
        Ok(merge_strings(lists))
    }
}

fn merge_strings(lists: Vec<Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// K-way merge of label-sorted lists; equal label sets are combined and
/// their chunks sorted by `mint`.
fn merge_by_labels(mut lists: Vec<Vec<ChunkSeries>>) -> Vec<ChunkSeries> {
    match lists.len() {
        0 => return Vec::new(),
        1 => return lists.pop().unwrap_or_default(),
        _ => {}
    }
    let total: usize = lists.iter().map(Vec::len).sum();
    let mut iters: Vec<std::iter::Peekable<std::vec::IntoIter<ChunkSeries>>> =
        lists.into_iter().map(|l| l.into_iter().peekable()).collect();
    let mut out: Vec<ChunkSeries> = Vec::with_capacity(total);
    loop {
        // Few sources (the head and a handful of blocks): a linear scan for
        // the smallest labels beats a heap.
        let mut best: Option<(usize, &Labels)> = None;
        for (i, it) in iters.iter_mut().enumerate() {
            let Some(cs) = it.peek() else { continue };
            if best.is_none_or(|(_, l)| cs.labels < *l) {
                best = Some((i, &cs.labels));
            }
        }
        let best = best.map(|(i, _)| i);
        let Some(b) = best else { break };
        let Some(mut first) = iters[b].next() else { break };
        for (i, it) in iters.iter_mut().enumerate() {
            if i != b && it.peek().is_some_and(|cs| cs.labels == first.labels) {
                if let Some(cs) = it.next() {
                    first.chunks.extend(cs.chunks);
                }
            }
        }
        first.chunks.sort_by_key(|c| (c.mint, c.maxt));
        out.push(first);
    }
    out
}

/// One series in a query result: its labels and its chunks in the range.
#[derive(Debug, Clone)]
pub struct Series {
    labels: Labels,
    chunks: Vec<Chunk>,
    mint: i64,
    maxt: i64,
}

impl Series {
    /// The series' labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The raw chunks (sorted by `mint`, possibly overlapping, possibly
    /// reaching outside the query range).
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// An iterator over the series' samples within the query range.
    pub fn iter(&self) -> SeriesIterator {
        SeriesIterator::new(self.chunks.clone(), self.mint, self.maxt)
    }

    /// The labels and an iterator over the samples in the query range, taking
    /// the series apart instead of copying its labels and chunk list (a
    /// query that selects every series would otherwise copy both once more).
    pub fn into_parts(mut self) -> (Labels, SeriesIterator) {
        // The list was grown by pushes; held for the whole query, its spare
        // capacity would add a fifth to the heap of a query over every series.
        self.chunks.shrink_to_fit();
        (self.labels, SeriesIterator::new(self.chunks, self.mint, self.maxt))
    }

    /// Every sample in the query range (convenient for small reads and tests).
    pub fn samples(&self) -> Result<Vec<Sample>, Error> {
        crate::sample::collect_samples(&mut self.iter())
    }
}

/// Iterates over a series' samples in `[mint, maxt]`, across chunks.
///
/// Nothing is decoded, and the decoding state (a few hundred bytes) is not
/// even allocated, until the series is first read: a query holds one
/// iterator per selected series at once (every series, for
/// `count({__name__=~".+"})`) but reads them one after another, so only
/// the chunk list is held per series until its turn.
#[derive(Debug)]
pub struct SeriesIterator {
    /// The float chunks, until the series is first read.
    pending: Vec<Chunk>,
    mint: i64,
    maxt: i64,
    /// The decoding state, from the first read on (from the start for a
    /// series with histogram chunks, whose state holds them).
    cursor: Option<Box<Cursor>>,
}

/// The histogram side of a [`SeriesIterator`].
#[derive(Debug)]
struct HistPart {
    /// The histogram chunks, until first read.
    chunks: Vec<Chunk>,
    /// Both kinds merged by time, once read sample by sample.
    mixed: Option<MixedIterator>,
    /// A histogram chunk that failed to decode.
    err: Option<Error>,
}

impl HistPart {
    /// Every histogram in `[mint, maxt]`, sorted, one per timestamp (the
    /// first chunk's in source order, as for floats).
    fn decode(&mut self, mint: i64, maxt: i64) -> Vec<HistogramSample> {
        let mut all = Vec::new();
        let mut floats = Vec::new();
        for c in std::mem::take(&mut self.chunks) {
            if c.maxt < mint || c.mint > maxt {
                continue;
            }
            let mut it = c.iter();
            it.drain_mixed_into(&mut floats, &mut all);
            if let Some(e) = it.err() {
                self.err.get_or_insert_with(|| e.clone());
            }
        }
        all.retain(|h| mint <= h.t && h.t <= maxt);
        all.sort_by_key(|h| h.t);
        all.dedup_by_key(|h| h.t);
        all
    }
}

impl SeriesIterator {
    pub(crate) fn new(mut chunks: Vec<Chunk>, mint: i64, maxt: i64) -> SeriesIterator {
        // The histogram chunks (a separate stream whose chunks may overlap
        // the float ones in time) go apart, into the cursor made now.
        let is_hist = |c: &Chunk| c.encoding.is_histogram();
        let cursor = chunks.iter().any(is_hist).then(|| {
            let (h, f): (Vec<Chunk>, Vec<Chunk>) = chunks.drain(..).partition(is_hist);
            let mut c = Cursor::new(f, mint, maxt);
            c.hist = Some(Box::new(HistPart { chunks: h, mixed: None, err: None }));
            Box::new(c)
        });
        SeriesIterator { pending: chunks, mint, maxt, cursor }
    }

    /// The histogram side, for a series with histogram chunks.
    fn hist(&self) -> Option<&HistPart> {
        self.cursor.as_ref()?.hist.as_deref()
    }

    /// The merged reader of a series with histograms, built on first use
    /// (the float part drained through the cursor).
    fn mixed(&mut self) -> Option<&mut MixedIterator> {
        let (mint, maxt) = (self.mint, self.maxt);
        let c = self.cursor.as_mut()?;
        let part = c.hist.as_mut()?;
        if part.mixed.is_none() {
            let hists = part.decode(mint, maxt);
            let mut floats = Vec::new();
            // The cursor's float part, without its histogram side.
            let mut hist = c.hist.take();
            c.drain_into(&mut floats);
            if let Some(h) = hist.as_mut() {
                h.mixed = Some(MixedIterator::new(floats, hists));
            }
            c.hist = hist;
        }
        c.hist.as_mut()?.mixed.as_mut()
    }

    /// The decoding state, created on first use.
    fn cursor(&mut self) -> &mut Cursor {
        let (pending, mint, maxt) = (&mut self.pending, self.mint, self.maxt);
        self.cursor.get_or_insert_with(|| Box::new(Cursor::new(std::mem::take(pending), mint, maxt)))
    }

    /// Drains a series never read before over chunks that do not overlap
    /// (nearly every series a query reads: one read of the whole range)
    /// without a [`Cursor`]: each chunk's bytes are decoded where they are
    /// (no iterator state allocated, no reference count taken on the
    /// bytes), with exactly the samples, stand-ins and error that
    /// [`Cursor::drain_reduced`] gives. Leaves the iterator exhausted.
    /// `None` when the fast path does not apply (already read, or
    /// overlapping chunks).
    fn drain_fresh(&mut self, out: &mut Vec<Sample>, reduce: Option<(Extreme, i64, i64)>) -> Option<usize> {
        if self.cursor.is_some() || self.pending.windows(2).any(|w| w[1].mint <= w[0].maxt) {
            return None;
        }
        let chunks = std::mem::take(&mut self.pending);
        let (stood_in, err) = drain_chunks(&chunks, self.mint, self.maxt, out, reduce);
        if let Some(err) = err {
            // The error is kept for `err`, as a drained cursor keeps it.
            self.cursor = Some(Box::new(Cursor::failed(err, self.mint, self.maxt)));
        }
        Some(stood_in)
    }
}

impl SampleIterator for SeriesIterator {
    fn next(&mut self) -> bool {
        if let Some(m) = self.mixed() {
            return m.next();
        }
        self.cursor().next()
    }

    fn seek(&mut self, t: i64) -> bool {
        if let Some(m) = self.mixed() {
            return m.seek(t);
        }
        self.cursor().seek(t)
    }

    fn at(&self) -> Sample {
        if let Some(m) = self.hist().and_then(|h| h.mixed.as_ref()) {
            return m.at();
        }
        self.cursor.as_ref().map(|c| c.at()).unwrap_or_default()
    }

    fn started(&self) -> bool {
        if let Some(h) = self.hist() {
            return h.mixed.as_ref().is_some_and(|m| m.started());
        }
        self.cursor.as_ref().is_some_and(|c| c.started())
    }

    fn err(&self) -> Option<&Error> {
        self.cursor.as_ref().and_then(|c| c.err()).or_else(|| self.hist().and_then(|h| h.err.as_ref()))
    }

    fn has_histograms(&self) -> bool {
        self.hist().is_some()
    }

    fn kind(&self) -> ValueKind {
        self.hist().and_then(|h| h.mixed.as_ref()).map_or(ValueKind::Float, |m| m.kind())
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        self.hist()?.mixed.as_ref()?.at_histogram()
    }

    fn drain_mixed_into(&mut self, floats: &mut Vec<Sample>, histograms: &mut Vec<HistogramSample>) {
        let (mint, maxt) = (self.mint, self.maxt);
        let Some(c) = self.cursor.as_mut().filter(|c| c.hist.is_some()) else {
            return self.drain_into(floats);
        };
        let mut hist = c.hist.take();
        if let Some(part) = hist.as_mut() {
            match part.mixed.as_mut() {
                // Already read sample by sample: the rest from the merge.
                Some(m) => {
                    while m.next() {
                        match m.at_histogram() {
                            Some(h) => histograms.push(h),
                            None => floats.push(m.at()),
                        }
                    }
                }
                None => {
                    histograms.extend(part.decode(mint, maxt));
                    c.drain_into(floats);
                }
            }
        }
        c.hist = hist;
    }

    /// Hop 0: the chunk list; hop 1: the first lines of each chunk's bytes
    /// (a query window at the end of a series reads one or two chunks).
    fn prefetch(&self, hop: u8) {
        if self.cursor.is_some() {
            return;
        }
        match hop {
            0 => {
                let p = self.pending.as_ptr().cast::<u8>();
                let size = std::mem::size_of_val(self.pending.as_slice());
                for off in (0..size.min(PREFETCH_LIST_BYTES)).step_by(64) {
                    prefetch(p.wrapping_add(off));
                }
            }
            1 => {
                for c in self.pending.iter().take(PREFETCH_CHUNKS) {
                    // Heap bytes only: reaching a mapped chunk's bytes would
                    // read its map first.
                    if !matches!(c.bytes, ChunkBytes::Mapped { .. }) {
                        let b = c.bytes.as_ref();
                        for off in (0..b.len().min(PREFETCH_CHUNK_BYTES)).step_by(64) {
                            prefetch(b.as_ptr().wrapping_add(off));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        if let Some(m) = self.cursor.as_mut().and_then(|c| c.hist.as_mut()).and_then(|h| h.mixed.as_mut()) {
            // Read sample by sample before: the floats left in the merge.
            return m.drain_into(out);
        }
        if self.drain_fresh(out, None).is_none() {
            self.cursor().drain_into(out)
        }
    }

    /// Closed head chunks wholly inside `[mint, maxt]` are not decoded:
    /// their summary stands in for them (see the trait method).
    fn drain_extreme_into(&mut self, extreme: Extreme, mint: i64, maxt: i64, out: &mut Vec<Sample>) -> usize {
        let before = out.len();
        let reduce = Some((extreme, mint, maxt));
        let stood_in = match self.drain_fresh(out, reduce) {
            Some(n) => n,
            None => self.cursor().drain_reduced(out, reduce),
        };
        out.len() - before + stood_in
    }

    /// Before the first read, over chunks that do not overlap, decodes only
    /// the last chunk that starts at or before the range's end: chunks after
    /// it hold nothing in range, and every sample of the chunks before it is
    /// older than its first, so its samples in range are a suffix of the
    /// series' (empty only if the series has none in range). An instant
    /// selector at the end of a chunk would otherwise decode the previous
    /// chunk from its start for the minutes of lookback it reaches into.
    /// Damage in a skipped chunk is not seen, as it would not be by a
    /// reader that stopped before it.
    fn drain_last_into(&mut self, out: &mut Vec<Sample>) {
        if self.cursor.is_none() && !self.pending.windows(2).any(|w| w[1].mint <= w[0].maxt) {
            let last = self.pending.partition_point(|c| c.mint <= self.maxt);
            if last > 1 {
                self.pending.truncate(last);
                self.pending.drain(..last - 1);
            }
        }
        self.drain_into(out)
    }
}

/// How much of a series' chunk list [`SeriesIterator::prefetch`] loads.
const PREFETCH_LIST_BYTES: usize = 256;

/// How many of a series' chunks [`SeriesIterator::prefetch`] loads bytes of.
const PREFETCH_CHUNKS: usize = 3;

/// How much of each chunk [`SeriesIterator::prefetch`] loads: a head chunk
/// of 120 samples is a few hundred bytes, read from its start.
const PREFETCH_CHUNK_BYTES: usize = 256;

/// [`Cursor::drain_reduced`] over `chunks` (sorted, not overlapping) for a
/// series not read before, decoding each chunk in place: the samples in
/// `[mint, maxt]` are appended to `out`. Returns the samples the stand-ins
/// held beyond the ones appended for them, and the error that stopped the
/// drain, if any.
fn drain_chunks(
    chunks: &[Chunk],
    mint: i64,
    maxt: i64,
    out: &mut Vec<Sample>,
    reduce: Option<(Extreme, i64, i64)>,
) -> (usize, Option<Error>) {
    let mut stood_in = 0usize;
    // The first timestamp still wanted: after the last sample appended.
    let mut next_from = mint;
    for next in chunks {
        // Chunks that end before the next sample wanted are not decoded.
        if next.maxt < next_from {
            continue;
        }
        if let (Some((extreme, lo, hi)), Some(summary)) = (reduce, next.summary) {
            if next.mint >= next_from && next.mint >= lo && next.maxt <= hi.min(maxt) {
                // Wholly inside the window: its extreme stands in for it.
                let mut held = summary.samples as usize;
                if let Some(v) = summary.extreme(extreme) {
                    out.push(Sample::new(next.maxt, v));
                    held = held.saturating_sub(1);
                }
                stood_in += held;
                next_from = next.maxt.saturating_add(1).max(mint);
                continue;
            }
        }
        let before = out.len();
        let (end, err) = match next.encoding {
            Encoding::Xor => {
                let mut it = XorIterator::new(next.bytes.as_ref());
                let end = it.drain_range(next_from, maxt, out);
                (end, it.err().cloned())
            }
            Encoding::Sealed | Encoding::Histogram | Encoding::FloatHistogram | Encoding::SealedHistogram => {
                let mut it = next.iter();
                let end = it.drain_range(next_from, maxt, out);
                (end, it.err().cloned())
            }
        };
        if out.len() > before {
            next_from = out[out.len() - 1].t.saturating_add(1).max(mint);
        }
        match end {
            DrainEnd::Exhausted => {}
            DrainEnd::PastEnd => break,
            DrainEnd::Failed => return (stood_in, err),
        }
    }
    (stood_in, None)
}

/// The decoding state of a [`SeriesIterator`] being read.
#[derive(Debug)]
struct Cursor {
    inner: Inner,
    /// The series' histogram chunks, when it has any (see
    /// [`SeriesIterator::new`]); the cursor itself reads the float chunks.
    hist: Option<Box<HistPart>>,
    mint: i64,
    maxt: i64,
    done: bool,
    err: Option<Error>,
    /// Timestamp of the sample last returned.
    last_t: i64,
}

#[derive(Debug)]
enum Inner {
    /// Non-overlapping chunks: decode one after another.
    Sequential { chunks: std::vec::IntoIter<Chunk>, cur: Option<ChunkIterator>, cur_maxt: i64 },
    /// Overlapping chunks: merged and deduplicated up front.
    Merged(VecIterator),
}

impl Cursor {
    fn new(chunks: Vec<Chunk>, mint: i64, maxt: i64) -> Cursor {
        let overlapping = chunks.windows(2).any(|w| w[1].mint <= w[0].maxt);
        let mut err = None;
        let inner = if overlapping {
            Inner::Merged(VecIterator::new(merge_overlapping(&chunks, mint, maxt).unwrap_or_else(|e| {
                err = Some(e);
                Vec::new()
            })))
        } else {
            Inner::Sequential { chunks: chunks.into_iter(), cur: None, cur_maxt: i64::MIN }
        };
        Cursor { inner, hist: None, mint, maxt, done: err.is_some(), err, last_t: i64::MIN }
    }

    /// A cursor already drained that stopped on `err`.
    fn failed(err: Error, mint: i64, maxt: i64) -> Cursor {
        let inner = Inner::Sequential { chunks: Vec::new().into_iter(), cur: None, cur_maxt: i64::MIN };
        Cursor { inner, hist: None, mint, maxt, done: true, err: Some(err), last_t: i64::MIN }
    }

    /// Moves to the first sample at or after `t` regardless of the range start.
    fn advance_to(&mut self, t: i64) -> bool {
        let t = t.max(self.mint);
        let ok = match &mut self.inner {
            Inner::Merged(it) => it.seek(t),
            Inner::Sequential { chunks, cur, cur_maxt } => loop {
                if let Some(c) = cur {
                    if *cur_maxt >= t && c.seek(t) {
                        break true;
                    }
                    if let Some(e) = c.err() {
                        self.err = Some(e.clone());
                        break false;
                    }
                }
                // Skip chunks that end before `t` without decoding them.
                match chunks.by_ref().find(|c| c.maxt >= t) {
                    Some(next) => {
                        *cur_maxt = next.maxt;
                        *cur = Some(next.iter());
                    }
                    None => {
                        *cur = None;
                        break false;
                    }
                }
            },
        };
        self.finish(ok)
    }

    fn finish(&mut self, ok: bool) -> bool {
        if ok && self.at().t <= self.maxt {
            self.last_t = self.at().t;
            return true;
        }
        self.done = true;
        false
    }
}

/// Decodes overlapping chunks, keeps samples in `[mint, maxt]`, sorts them
/// and keeps the first sample at each timestamp (chunks come in source
/// order: older blocks first, the head last, so a later source cannot
/// silently replace an earlier one).
fn merge_overlapping(chunks: &[Chunk], mint: i64, maxt: i64) -> Result<Vec<Sample>, Error> {
    let mut all = Vec::new();
    let mut buf = Vec::new();
    for c in chunks {
        if c.maxt < mint || c.mint > maxt {
            continue;
        }
        buf.clear();
        c.decode_into(&mut buf)?;
        all.extend(buf.iter().copied().filter(|s| s.t >= mint && s.t <= maxt));
    }
    all.sort_by_key(|s| s.t);
    all.dedup_by_key(|s| s.t);
    Ok(all)
}

impl SampleIterator for Cursor {
    fn next(&mut self) -> bool {
        if self.done {
            return false;
        }
        if !self.started() {
            return self.advance_to(self.mint);
        }
        let ok = match &mut self.inner {
            Inner::Merged(it) => it.next(),
            Inner::Sequential { cur, .. } => {
                let c = cur.as_mut().expect("started implies a current chunk");
                if c.next() {
                    true
                } else if let Some(e) = c.err() {
                    self.err = Some(e.clone());
                    false
                } else {
                    return self.advance_to(self.last_t.saturating_add(1));
                }
            }
        };
        self.finish(ok)
    }

    fn seek(&mut self, t: i64) -> bool {
        if self.done {
            return false;
        }
        if self.started() && self.at().t >= t {
            return true;
        }
        self.advance_to(t)
    }

    fn at(&self) -> Sample {
        match &self.inner {
            Inner::Merged(it) => it.at(),
            Inner::Sequential { cur, .. } => cur.as_ref().map(|c| c.at()).unwrap_or_default(),
        }
    }

    fn started(&self) -> bool {
        !self.done
            && match &self.inner {
                Inner::Merged(it) => it.started(),
                Inner::Sequential { cur, .. } => cur.as_ref().is_some_and(|c| c.started()),
            }
    }

    fn err(&self) -> Option<&Error> {
        self.err.as_ref()
    }

    /// The rest of the series in one loop per chunk, with exactly the
    /// samples (and the error) that `next` would give: each chunk is entered
    /// as `advance_to` enters it (the first sample after the last one handed
    /// out), and the first sample past `maxt` ends the series.
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        self.drain_reduced(out, None);
    }
}

impl Cursor {
    /// [`SampleIterator::drain_into`]; with `reduce = (extreme, lo, hi)`,
    /// a chunk not yet entered that lies wholly inside `[lo, hi]` and the
    /// cursor's range and carries a summary is replaced by one sample (its
    /// extreme at its `maxt`; none if all its samples are staleness
    /// markers). Returns how many samples such chunks held beyond the ones
    /// appended for them, so that `out`'s growth plus it is what
    /// `drain_into` would have appended.
    fn drain_reduced(&mut self, out: &mut Vec<Sample>, reduce: Option<(Extreme, i64, i64)>) -> usize {
        if self.done {
            return 0;
        }
        let mut stood_in = 0usize;
        let started = self.started();
        let maxt = self.maxt;
        let end = match &mut self.inner {
            Inner::Merged(it) => {
                while it.next() {
                    let s = it.at();
                    if s.t > maxt {
                        break;
                    }
                    out.push(s);
                }
                DrainEnd::Exhausted
            }
            Inner::Sequential { chunks, cur, cur_maxt } => {
                // The current chunk continues after the sample it rests on;
                // a chunk entered fresh starts at the first sample at or
                // after `from`.
                let mut from = if started { i64::MIN } else { self.mint };
                let mut next_from = if started { self.last_t.saturating_add(1).max(self.mint) } else { self.mint };
                loop {
                    if let Some(c) = cur.as_mut() {
                        let before = out.len();
                        let end = c.drain_range(from, maxt, out);
                        if out.len() > before {
                            self.last_t = out[out.len() - 1].t;
                            next_from = self.last_t.saturating_add(1).max(self.mint);
                        }
                        match end {
                            DrainEnd::Exhausted => {}
                            DrainEnd::PastEnd => break DrainEnd::PastEnd,
                            DrainEnd::Failed => {
                                self.err = c.err().cloned();
                                break DrainEnd::Failed;
                            }
                        }
                    }
                    // Skip chunks that end before the next sample wanted
                    // without decoding them.
                    match chunks.by_ref().find(|c| c.maxt >= next_from) {
                        Some(next) => {
                            // A chunk wholly inside the window, whose
                            // summary the store kept, is not decoded: its
                            // extreme stands in for its samples.
                            let stand_in = match (reduce, next.summary) {
                                (Some((extreme, lo, hi)), Some(summary))
                                    if next.mint >= next_from && next.mint >= lo && next.maxt <= hi.min(maxt) =>
                                {
                                    Some((extreme, summary))
                                }
                                _ => None,
                            };
                            *cur_maxt = next.maxt;
                            if let Some((extreme, summary)) = stand_in {
                                let mut held = summary.samples as usize;
                                if let Some(v) = summary.extreme(extreme) {
                                    out.push(Sample::new(next.maxt, v));
                                    held = held.saturating_sub(1);
                                }
                                stood_in += held;
                                self.last_t = next.maxt;
                                next_from = self.last_t.saturating_add(1).max(self.mint);
                                *cur = None;
                            } else {
                                *cur = Some(next.iter());
                                from = next_from;
                            }
                        }
                        None => {
                            *cur = None;
                            break DrainEnd::Exhausted;
                        }
                    }
                }
            }
        };
        debug_assert!(end != DrainEnd::Failed || self.err.is_some());
        self.done = true;
        stood_in
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunkenc::{ChunkBytes, Encoding, XorAppender};

    fn chunk(samples: &[(i64, f64)]) -> Chunk {
        let mut a = XorAppender::new();
        for &(t, v) in samples {
            a.append(t, v);
        }
        Chunk {
            mint: samples[0].0,
            maxt: samples[samples.len() - 1].0,
            encoding: Encoding::Xor,
            bytes: ChunkBytes::from(a.into_bytes()),
            timestamps: None,
            summary: None,
        }
    }

    struct Fixed(Vec<ChunkSeries>);

    impl SeriesSource for Fixed {
        fn select(&self, ms: &[Matcher], _: i64, _: i64, _: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
            Ok(self
                .0
                .iter()
                .filter(|cs| ms.iter().all(|m| m.matches(cs.labels.get(&m.name).unwrap_or(""))))
                .cloned()
                .collect())
        }
        fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
            Ok(vec!["__name__".into()])
        }
        fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
            Ok(self.0.iter().map(|cs| cs.labels.metric_name().unwrap_or("").to_string()).collect())
        }
    }

    fn series(name: &str, chunks: Vec<Chunk>) -> ChunkSeries {
        ChunkSeries { labels: Labels::new([("__name__", name)]).unwrap(), chunks }
    }

    #[test]
    fn merges_sources_by_labels_and_clips_to_range() {
        let block = Fixed(vec![
            series("a", vec![chunk(&[(0, 0.0), (10, 1.0)]), chunk(&[(20, 2.0), (30, 3.0)])]),
            series("c", vec![chunk(&[(0, 9.0)])]),
        ]);
        let head =
            Fixed(vec![series("a", vec![chunk(&[(40, 4.0), (50, 5.0)])]), series("b", vec![chunk(&[(45, 7.0)])])]);
        let q = Querier::new(vec![Arc::new(block), Arc::new(head)], 10, 40);
        let out = q.select(&[Matcher::new(crate::MatchOp::Regex, "__name__", ".+").unwrap()]).unwrap();
        let names: Vec<_> = out.iter().map(|s| s.labels().metric_name().unwrap().to_string()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let ts: Vec<i64> = out[0].samples().unwrap().iter().map(|s| s.t).collect();
        assert_eq!(ts, [10, 20, 30, 40]);
        assert!(out[1].samples().unwrap().is_empty());
        assert!(out[2].samples().unwrap().is_empty());
        assert_eq!(q.label_values("__name__", &[]).unwrap(), ["a", "b", "c"]);
    }

    /// A source whose cheap order is the reverse of label order.
    struct Reversed(Vec<ChunkSeries>);

    impl SeriesSource for Reversed {
        fn select(&self, ms: &[Matcher], a: i64, b: i64, w: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
            Fixed(self.0.clone()).select(ms, a, b, w)
        }
        fn select_unordered(
            &self,
            ms: &[Matcher],
            a: i64,
            b: i64,
            w: &mut Vec<String>,
        ) -> Result<(Vec<ChunkSeries>, bool), Error> {
            let mut l = self.select(ms, a, b, w)?;
            l.reverse();
            Ok((l, false))
        }
        fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
            Ok(vec!["__name__".into()])
        }
        fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, Error> {
            Ok(Vec::new())
        }
    }

    /// A head-like source that can hand its series out without labels.
    struct Unlabelled(Reversed);

    impl SeriesSource for Unlabelled {
        fn select(&self, ms: &[Matcher], a: i64, b: i64, w: &mut Vec<String>) -> Result<Vec<ChunkSeries>, Error> {
            self.0.select(ms, a, b, w)
        }
        fn select_unordered(
            &self,
            ms: &[Matcher],
            a: i64,
            b: i64,
            w: &mut Vec<String>,
        ) -> Result<(Vec<ChunkSeries>, bool), Error> {
            self.0.select_unordered(ms, a, b, w)
        }
        fn select_unlabelled(
            &self,
            ms: &[Matcher],
            a: i64,
            b: i64,
            w: &mut Vec<String>,
        ) -> Result<Option<Vec<ChunkSeries>>, Error> {
            w.push("unlabelled read".into());
            let (mut l, _) = self.select_unordered(ms, a, b, w)?;
            for cs in &mut l {
                cs.labels = Labels::empty();
            }
            Ok(Some(l))
        }
        fn label_names(&self, ms: &[Matcher], a: i64, b: i64) -> Result<Vec<String>, Error> {
            self.0.label_names(ms, a, b)
        }
        fn label_values(&self, n: &str, ms: &[Matcher], a: i64, b: i64) -> Result<Vec<String>, Error> {
            self.0.label_values(n, ms, a, b)
        }
    }

    #[test]
    fn select_unlabelled_keeps_the_series_and_labels_them_only_to_merge() {
        let all = [Matcher::new(crate::MatchOp::Regex, "__name__", ".+").unwrap()];
        let head = || {
            Unlabelled(Reversed(vec![
                series("a", vec![chunk(&[(40, 4.0), (50, 5.0)])]),
                series("b", vec![chunk(&[(45, 7.0)])]),
                series("d", vec![chunk(&[(12, 1.5)])]),
            ]))
        };
        let samples = |out: &[Series]| -> Vec<Vec<(i64, f64)>> {
            out.iter().map(|s| s.samples().unwrap().iter().map(|p| (p.t, p.v)).collect()).collect()
        };
        // The head alone: its own order, no labels, the same samples.
        let q = Querier::new(vec![Arc::new(head())], 10, 60);
        let got = q.select_unlabelled(&all).unwrap();
        assert!(got.iter().all(|s| s.labels().is_empty()));
        assert_eq!(samples(&got), [vec![(12, 1.5)], vec![(45, 7.0)], vec![(40, 4.0), (50, 5.0)]]);
        assert_eq!(q.warnings(), ["unlabelled read"]);
        // With a block holding data too: merged by labels as by `select`
        // ("a" in both sources comes out once, with every chunk), the
        // first read's warning reported once.
        let block = Fixed(vec![
            series("a", vec![chunk(&[(0, 0.0), (10, 1.0)]), chunk(&[(20, 2.0), (30, 3.0)])]),
            series("c", vec![chunk(&[(15, 9.0)])]),
        ]);
        let q = Querier::new(vec![Arc::new(block), Arc::new(head())], 10, 60);
        let got = q.select_unlabelled(&all).unwrap();
        assert_eq!(names_and_samples(&got), names_and_samples(&q.select(&all).unwrap()));
        assert_eq!(q.warnings(), ["unlabelled read"]);
        // A source without a cheaper way is read with its labels; an empty
        // range gives nothing.
        let q = Querier::new(vec![Arc::new(Fixed(vec![series("a", vec![chunk(&[(40, 4.0)])])]))], 10, 60);
        assert_eq!(names_and_samples(&q.select_unlabelled(&all).unwrap()), [("a".to_string(), vec![(40, 4.0)])]);
        assert!(Querier::new(vec![Arc::new(head())], 60, 10).select_unlabelled(&all).unwrap().is_empty());
    }

    #[test]
    fn head_select_unlabelled_holds_what_select_holds() {
        let db = db_of_up_series(&["z", "m", "a"]);
        let q = db.querier(0, 10_000);
        for ms in [
            vec![Matcher::equal("__name__", "up")],
            vec![Matcher::equal("job", "m")],
            vec![Matcher::equal("job", "none")],
        ] {
            let mut want: Vec<Vec<Sample>> = q.select(&ms).unwrap().iter().map(|s| s.samples().unwrap()).collect();
            let got = q.select_unlabelled(&ms).unwrap();
            assert!(got.iter().all(|s| s.labels().is_empty()));
            let mut got: Vec<Vec<Sample>> = got.iter().map(|s| s.samples().unwrap()).collect();
            let key = |v: &Vec<Sample>| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want);
        }
        // Outside the head's data: nothing.
        assert!(db.querier(20_000, 30_000).select_unlabelled(&[Matcher::equal("__name__", "up")]).unwrap().is_empty());
    }

    /// A database holding 30 `up` series per job, created job by job in
    /// the order given (one sample each, at 1,000 + the job's position).
    fn db_of_up_series(jobs: &[&str]) -> crate::Db {
        let db = crate::Db::in_memory().unwrap();
        let mut app = db.appender();
        for (i, job) in jobs.iter().enumerate() {
            for inst in 0..30 {
                let l = Labels::new([("__name__", "up"), ("job", job), ("i", &format!("{inst:02}"))]).unwrap();
                app.append(&l, 1_000 + i as i64, inst as f64).unwrap();
            }
        }
        app.commit().unwrap();
        db
    }

    fn names_and_samples(out: &[Series]) -> Vec<(String, Vec<(i64, f64)>)> {
        out.iter()
            .map(|s| {
                let samples = s.samples().unwrap().iter().map(|p| (p.t, p.v)).collect();
                (s.labels().metric_name().unwrap().to_string(), samples)
            })
            .collect()
    }

    #[test]
    fn select_unordered_is_select_in_another_order() {
        let all = [Matcher::new(crate::MatchOp::Regex, "__name__", ".+").unwrap()];
        let head = || {
            Reversed(vec![
                series("a", vec![chunk(&[(40, 4.0), (50, 5.0)])]),
                series("b", vec![chunk(&[(45, 7.0)])]),
                series("d", vec![chunk(&[(12, 1.5)])]),
            ])
        };
        // The head alone: its own order, nothing merged.
        let q = Querier::new(vec![Arc::new(head())], 10, 60);
        let names: Vec<_> = names_and_samples(&q.select_unordered(&all).unwrap()).into_iter().map(|x| x.0).collect();
        assert_eq!(names, ["d", "b", "a"]);
        // With a block holding data too: sorted and merged as by `select`
        // ("a" in both sources comes out once, with every chunk).
        let block = Fixed(vec![
            series("a", vec![chunk(&[(0, 0.0), (10, 1.0)]), chunk(&[(20, 2.0), (30, 3.0)])]),
            series("c", vec![chunk(&[(15, 9.0)])]),
        ]);
        let q = Querier::new(vec![Arc::new(block), Arc::new(head())], 10, 60);
        let unordered = names_and_samples(&q.select_unordered(&all).unwrap());
        assert_eq!(unordered, names_and_samples(&q.select(&all).unwrap()));
        assert_eq!(unordered[0], ("a".to_string(), vec![(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0), (50, 5.0)]));
        // An empty range, as `select`.
        assert!(Querier::new(vec![Arc::new(head())], 60, 10).select_unordered(&all).unwrap().is_empty());
    }

    #[test]
    fn head_select_unordered_holds_what_select_holds() {
        // Created out of label order, so ref order differs from it.
        let db = db_of_up_series(&["z", "m", "a", "q", "b"]);
        let q = db.querier(0, 10_000);
        for ms in [
            vec![Matcher::equal("__name__", "up")],
            vec![Matcher::new(crate::MatchOp::NotEqual, "job", "m").unwrap()],
            vec![Matcher::equal("job", "none")],
        ] {
            let sorted = q.select(&ms).unwrap();
            let mut unordered = q.select_unordered(&ms).unwrap();
            assert_eq!(unordered.len(), sorted.len());
            unordered.sort_by(|a, b| a.labels().cmp(b.labels()));
            for (u, s) in unordered.iter().zip(&sorted) {
                assert_eq!(u.labels(), s.labels());
                assert_eq!(u.samples().unwrap(), s.samples().unwrap());
            }
        }
    }

    #[test]
    fn overlapping_chunks_are_merged_and_deduplicated() {
        let s = series("a", vec![chunk(&[(0, 0.0), (20, 2.0), (40, 4.0)]), chunk(&[(10, 1.0), (20, 2.0), (30, 3.0)])]);
        let q = Querier::new(vec![Arc::new(Fixed(vec![s]))], i64::MIN, i64::MAX);
        let out = q.select(&[Matcher::equal("__name__", "a")]).unwrap();
        let got: Vec<(i64, f64)> = out[0].samples().unwrap().iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(got, [(0, 0.0), (10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]);
    }

    #[test]
    fn seek_skips_chunks_and_never_moves_back() {
        let s = series("a", (0..10).map(|i| chunk(&[(i * 100, i as f64), (i * 100 + 50, i as f64)])).collect());
        let q = Querier::new(vec![Arc::new(Fixed(vec![s]))], 0, 10_000);
        let out = q.select(&[Matcher::equal("__name__", "a")]).unwrap();
        let mut it = out[0].iter();
        let (labels, mut parts) = out[0].clone().into_parts();
        assert_eq!(&labels, out[0].labels());
        assert!(parts.seek(420) && parts.at().t == 450);
        assert!(it.seek(420));
        assert_eq!(it.at().t, 450);
        assert!(it.seek(100));
        assert_eq!(it.at().t, 450);
        assert!(it.next());
        assert_eq!(it.at().t, 500);
        assert!(!it.seek(2000));
        assert!(!it.next());
    }

    /// Chunks of a random series: `(kind, start, deltas)` where kind 0 is
    /// XOR, 1 sealed (strictly increasing timestamps), 2 a truncated XOR.
    fn random_chunk(kind: u8, start: i64, deltas: &[i64]) -> Chunk {
        let mut t = start;
        let mut samples = Vec::new();
        for (i, d) in deltas.iter().enumerate() {
            t += if kind == 1 { d.abs() + 1 } else { *d };
            samples.push((t, i as f64 * 0.5 - 3.0));
        }
        let mut c = chunk(&samples);
        match kind {
            1 => {
                let s: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, v)).collect();
                let mut bytes = Vec::new();
                crate::chunkenc::sealed::encode_with_level(&s, 0, &mut bytes);
                c.encoding = crate::chunkenc::Encoding::Sealed;
                c.bytes = ChunkBytes::from(bytes);
            }
            2 => c.bytes = ChunkBytes::from(c.bytes.as_ref()[..c.bytes.as_ref().len() / 2].to_vec()),
            _ => {}
        }
        c
    }

    proptest::proptest! {
        #[test]
        fn drain_gives_what_next_gives(
            chunks in proptest::collection::vec(
                (proptest::prop_oneof![8 => proptest::strategy::Just(0u8), 3 => proptest::strategy::Just(1u8), 1 => proptest::strategy::Just(2u8)],
                 -50i64..400,
                 proptest::collection::vec(-3i64..25, 1..40)),
                0..6),
            mint in -100i64..500,
            len in 0i64..600,
            first_nexts in 0usize..5,
        ) {
            let mut cs: Vec<Chunk> = chunks.iter().map(|(k, s, d)| random_chunk(*k, *s, d)).collect();
            cs.sort_by_key(|c| (c.mint, c.maxt));
            let maxt = mint + len;
            let mut a = SeriesIterator::new(cs.clone(), mint, maxt);
            let mut b = SeriesIterator::new(cs, mint, maxt);
            let mut head = Vec::new();
            for _ in 0..first_nexts {
                let (x, y) = (a.next(), b.next());
                proptest::prop_assert_eq!(x, y);
                if x {
                    proptest::prop_assert_eq!(a.at(), b.at());
                    head.push(a.at());
                }
            }
            let mut by_next = head.clone();
            while a.next() {
                by_next.push(a.at());
            }
            let mut drained = head;
            b.drain_into(&mut drained);
            proptest::prop_assert_eq!(&drained, &by_next);
            proptest::prop_assert_eq!(a.err().map(|e| e.to_string()), b.err().map(|e| e.to_string()));
            proptest::prop_assert!(!b.next() && !b.started());
        }
    }

    proptest::proptest! {
        /// A series never read before is drained without a cursor; that
        /// gives exactly what draining through a cursor gives: the samples,
        /// the stand-ins of an extreme-only read, the count and the error.
        #[test]
        fn a_fresh_drain_is_the_cursor_drain(
            chunks in proptest::collection::vec(
                (proptest::prop_oneof![8 => proptest::strategy::Just(0u8), 3 => proptest::strategy::Just(1u8), 1 => proptest::strategy::Just(2u8)],
                 -50i64..400,
                 proptest::collection::vec(-3i64..25, 1..40),
                 proptest::bool::ANY),
                0..6),
            mint in -100i64..500,
            len in 0i64..600,
            extreme in proptest::option::of((proptest::bool::ANY, -60i64..500, 0i64..700)),
        ) {
            let mut cs: Vec<Chunk> = chunks
                .iter()
                .map(|(k, s, d, summarized)| {
                    let mut c = random_chunk(*k, *s, d);
                    if *summarized && *k != 2 {
                        let mut samples = Vec::new();
                        c.decode_into(&mut samples).unwrap();
                        c.summary = crate::chunkenc::ChunkSummary::of(&samples);
                    }
                    c
                })
                .collect();
            cs.sort_by_key(|c| (c.mint, c.maxt));
            let maxt = mint + len;
            let mut fresh = SeriesIterator::new(cs.clone(), mint, maxt);
            let mut cursor = SeriesIterator::new(cs, mint, maxt);
            cursor.cursor();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (read_a, read_b) = match extreme {
                None => {
                    fresh.drain_into(&mut a);
                    cursor.drain_into(&mut b);
                    (a.len(), b.len())
                }
                Some((max, lo, span)) => {
                    let e = if max { Extreme::Max } else { Extreme::Min };
                    (fresh.drain_extreme_into(e, lo, lo + span, &mut a), cursor.drain_extreme_into(e, lo, lo + span, &mut b))
                }
            };
            let bits = |v: &[Sample]| v.iter().map(|s| (s.t, s.v.to_bits())).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&a), bits(&b));
            proptest::prop_assert_eq!(read_a, read_b);
            proptest::prop_assert_eq!(fresh.err().map(|e| e.to_string()), cursor.err().map(|e| e.to_string()));
            proptest::prop_assert!(!fresh.next() && !fresh.started());
        }
    }

    /// A chunk of `values` (indices into a pool of awkward values) at
    /// `start`, `start + step`, …, with its summary if `summarized`.
    fn valued_chunk(start: i64, step: i64, values: &[u8], summarized: bool) -> Chunk {
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            3.5,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_0000_0001),
            f64::INFINITY,
            crate::stale_nan(),
        ];
        let samples: Vec<(i64, f64)> =
            values.iter().enumerate().map(|(i, &k)| (start + i as i64 * step, pool[k as usize % pool.len()])).collect();
        let mut c = chunk(&samples);
        if summarized {
            let s: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, v)).collect();
            c.summary = crate::chunkenc::ChunkSummary::of(&s);
        }
        c
    }

    /// The `extreme` fold of the non-stale values, as bits.
    fn fold(samples: &[Sample], extreme: Extreme) -> Option<u64> {
        let mut it = samples.iter().map(|s| s.v).filter(|v| !crate::is_stale_nan(*v));
        let mut best = it.next()?;
        for v in it {
            if extreme.keep(v, best) {
                best = v;
            }
        }
        Some(best.to_bits())
    }

    proptest::proptest! {
        /// `drain_extreme_into` gives the same extreme (bits included) and
        /// the same count of samples read as `drain_into`, and leaves out the
        /// samples of summarized chunks wholly inside the window.
        #[test]
        fn drain_extreme_folds_like_drain(
            chunks in proptest::collection::vec(
                (proptest::collection::vec(0u8..9, 1..30), proptest::bool::ANY, 1i64..20),
                0..6),
            mint in -50i64..400,
            len in 0i64..700,
            win in (-60i64..500, 0i64..700),
            max in proptest::bool::ANY,
        ) {
            let mut cs = Vec::new();
            let mut t = 0i64;
            for (values, summarized, gap) in &chunks {
                cs.push(valued_chunk(t + gap, 7, values, *summarized));
                t = cs[cs.len() - 1].maxt;
            }
            let extreme = if max { Extreme::Max } else { Extreme::Min };
            let (lo, hi) = (win.0, win.0 + win.1);
            let maxt = mint + len;
            // The window is a sub-range of the selection, as for an
            // evaluator's step.
            let (lo, hi) = (lo.max(mint), hi.min(maxt));
            let mut full = Vec::new();
            SeriesIterator::new(cs.clone(), mint, maxt).drain_into(&mut full);
            let mut it = SeriesIterator::new(cs.clone(), mint, maxt);
            let mut reduced = Vec::new();
            let read = it.drain_extreme_into(extreme, lo, hi, &mut reduced);
            proptest::prop_assert!(it.err().is_none());
            proptest::prop_assert_eq!(read, full.len());
            // Outside the window the samples are the same.
            let outside = |v: &[Sample]| v.iter().filter(|s| s.t < lo || s.t > hi).copied().collect::<Vec<_>>();
            proptest::prop_assert_eq!(outside(&reduced), outside(&full));
            let inside = |v: &[Sample]| v.iter().filter(|s| s.t >= lo && s.t <= hi).copied().collect::<Vec<_>>();
            proptest::prop_assert_eq!(fold(&inside(&reduced), extreme), fold(&inside(&full), extreme));
            proptest::prop_assert!(reduced.windows(2).all(|w| w[0].t < w[1].t));
            // Every summarized chunk wholly inside the window and the
            // selection was stood in for by at most one sample.
            let skipped: usize = cs
                .iter()
                .filter(|c| c.summary.is_some() && c.mint >= lo.max(mint) && c.maxt <= hi)
                .map(|c| c.summary.map_or(0, |s| s.samples as usize - usize::from(s.count > 0)))
                .sum();
            proptest::prop_assert_eq!(reduced.len() + skipped, full.len());
        }
    }

    proptest::proptest! {
        /// `drain_last_into` gives a suffix of what `drain_into` gives that
        /// holds its last sample, over chunks that do or do not overlap;
        /// on undamaged chunks it never fails where `drain_into` does not.
        #[test]
        fn drain_last_is_a_suffix_with_the_newest_sample(
            chunks in proptest::collection::vec(
                (proptest::prop_oneof![4 => proptest::strategy::Just(0u8), 1 => proptest::strategy::Just(1u8)],
                 -50i64..400,
                 proptest::collection::vec(0i64..25, 1..40)),
                0..6),
            disjoint in proptest::bool::ANY,
            mint in -100i64..500,
            len in 0i64..600,
        ) {
            let mut cs: Vec<Chunk> = chunks.iter().map(|(k, s, d)| random_chunk(*k, *s, d)).collect();
            if disjoint {
                // Shift each chunk past the previous one's end.
                let mut end = i64::MIN;
                for (c, (k, s, d)) in cs.iter_mut().zip(&chunks) {
                    let shift = if c.mint <= end { end - c.mint + 1 + s.rem_euclid(7) } else { 0 };
                    *c = random_chunk(*k, s + shift, d);
                    end = c.maxt;
                }
            }
            cs.sort_by_key(|c| (c.mint, c.maxt));
            let maxt = mint + len;
            let mut all = Vec::new();
            let mut a = SeriesIterator::new(cs.clone(), mint, maxt);
            a.drain_into(&mut all);
            let mut last = Vec::new();
            let mut b = SeriesIterator::new(cs, mint, maxt);
            b.drain_last_into(&mut last);
            proptest::prop_assert!(a.err().is_none() && b.err().is_none());
            proptest::prop_assert!(last.len() <= all.len());
            proptest::prop_assert_eq!(&all[all.len() - last.len()..], &last[..]);
            proptest::prop_assert_eq!(all.last(), last.last());
            proptest::prop_assert!(!b.next() && !b.started());
        }
    }

    #[test]
    fn drain_last_decodes_only_the_last_chunk_in_range() {
        // The first chunk is damaged: a reader of the newest sample never
        // decodes it, a reader of the whole range fails on it.
        let mut bad = chunk(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        bad.bytes = ChunkBytes::from(bad.bytes.as_ref()[..4].to_vec());
        let cs = vec![bad, chunk(&[(30, 4.0), (40, 5.0)]), chunk(&[(200, 6.0)])];
        let mut it = SeriesIterator::new(cs.clone(), 0, 100);
        let mut out = Vec::new();
        it.drain_last_into(&mut out);
        assert!(it.err().is_none());
        assert_eq!(out, [Sample::new(30, 4.0), Sample::new(40, 5.0)]);
        let mut whole = SeriesIterator::new(cs, 0, 100);
        whole.drain_into(&mut Vec::new());
        assert!(whole.err().is_some());
    }

    #[test]
    fn series_iterator_is_small_until_read() {
        // A query holds one per selected series before reading any.
        assert!(std::mem::size_of::<SeriesIterator>() <= 48, "{}", std::mem::size_of::<SeriesIterator>());
        let q = Querier::new(vec![Arc::new(Fixed(vec![series("a", vec![chunk(&[(0, 1.0), (10, 2.0)])])]))], 0, 100);
        let (_, mut it) = q.select(&[Matcher::equal("__name__", "a")]).unwrap().remove(0).into_parts();
        assert!(!it.started() && it.err().is_none() && it.cursor.is_none());
        assert!(it.seek(5) && it.at() == Sample { t: 10, v: 2.0 } && it.started());
        assert!(!it.next() && !it.started());
    }

    #[test]
    fn corrupt_chunk_surfaces_as_error() {
        let mut c = chunk(&[(0, 1.0), (10, 2.0), (20, 3.0)]);
        c.bytes = ChunkBytes::from(c.bytes.as_ref()[..4].to_vec());
        let q = Querier::new(vec![Arc::new(Fixed(vec![series("a", vec![c])]))], 0, 100);
        let out = q.select(&[Matcher::equal("__name__", "a")]).unwrap();
        assert!(out[0].samples().is_err());
    }
}
