//! Where the engine reads series from: the [`SeriesSource`] trait, its
//! implementation for [`tidemark_storage::Db`], and [`MemStorage`] for tests.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use tidemark_storage::histogram::{FloatHistogram, HistogramSample, HistogramValue};
use tidemark_storage::{Db, Labels, Matcher, MixedIterator, Sample, SampleIterator, VecIterator, WindowFn};

/// A series returned by [`SeriesSource::select`]: its labels and an iterator
/// over its samples in the selected time range.
pub struct SelectedSeries {
    /// The series' labels, including `__name__`.
    pub labels: Labels,
    /// The samples in `[mint, maxt]`, oldest first.
    pub samples: Box<dyn SampleIterator + Send>,
}

impl std::fmt::Debug for SelectedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedSeries").field("labels", &self.labels).finish_non_exhaustive()
    }
}

/// What [`SeriesSource::select_windows`] gives: one point per series for
/// which the function gave one, and what was read.
#[derive(Debug, Default)]
pub struct WindowSelection {
    /// The series' labels (including `__name__`) and the function's point,
    /// sorted by labels.
    pub points: Vec<(Labels, Sample)>,
    /// Samples read, over every selected series (with a point or not).
    pub samples_read: usize,
    /// Data in the range that could not be read (see
    /// [`SeriesSource::select_with_warnings`]).
    pub warnings: Vec<String>,
}

/// Anything the engine can read series from.
pub trait SeriesSource: Send + Sync {
    /// The series matching every matcher that have samples in `[mint, maxt]`
    /// (milliseconds, both inclusive). Order does not matter.
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String>;

    /// [`SeriesSource::select`], plus warnings about data in the range that
    /// could not be read and is missing from the series (damaged storage).
    /// The engine adds them to the query's warnings. Default: no warnings.
    fn select_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        self.select(mint, maxt, matchers).map(|s| (s, Vec::new()))
    }

    /// [`SeriesSource::select_with_warnings`] for a reader to whom the
    /// order of the series is unobservable (it only counts them): a source
    /// may then skip sorting them. Default: `select_with_warnings`.
    fn select_unordered_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        self.select_with_warnings(mint, maxt, matchers)
    }

    /// [`SeriesSource::select_unordered_with_warnings`] for a reader that
    /// uses neither the order nor the labels of the series (it only counts
    /// those with a point at each step): a source may then hand some or all
    /// of them out with empty labels. Default:
    /// `select_unordered_with_warnings`.
    fn select_unlabelled_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        self.select_unordered_with_warnings(mint, maxt, matchers)
    }

    /// `f` applied to each series matching every matcher over its samples
    /// in `[mint, maxt]` (exactly those [`SeriesSource::select`] would
    /// give, oldest first, staleness markers included), read where they are
    /// stored: for a function of one window per series (an instant range
    /// function), which then needs no series handed out. `f` may run on
    /// several threads; it is called once per series with samples in the
    /// range. `None` when the source has no such path for this range (the
    /// default): the caller then selects the series.
    fn select_windows(
        &self,
        _mint: i64,
        _maxt: i64,
        _matchers: &[Matcher],
        _f: &WindowFn<'_>,
    ) -> Option<Result<WindowSelection, String>> {
        None
    }
}

/// How [`db_select`] asks the querier.
#[derive(Clone, Copy)]
enum Wanted {
    /// Sorted by labels.
    Sorted,
    /// Any order.
    Unordered,
    /// Any order, labels optional.
    Unlabelled,
}

impl SeriesSource for Db {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        self.select_with_warnings(mint, maxt, matchers).map(|(s, _)| s)
    }

    fn select_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        db_select(self, mint, maxt, matchers, Wanted::Sorted)
    }

    fn select_unordered_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        // The head hands its series out in ref order when nothing else in
        // the range has any: no sort into label order.
        db_select(self, mint, maxt, matchers, Wanted::Unordered)
    }

    fn select_unlabelled_with_warnings(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
        // The head skips building each series' label set when nothing
        // else in the range has series.
        db_select(self, mint, maxt, matchers, Wanted::Unlabelled)
    }

    fn select_windows(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        f: &WindowFn<'_>,
    ) -> Option<Result<WindowSelection, String>> {
        // Only the head has this path: with blocks in the range the
        // querier says `None` and the engine selects the series.
        let q = self.querier(mint, maxt);
        let r = q.select_windows(matchers, f)?;
        Some(r.map_err(|e| e.to_string()).map(|(points, samples_read)| WindowSelection {
            points,
            samples_read,
            warnings: q.warnings(),
        }))
    }
}

fn db_select(
    db: &Db,
    mint: i64,
    maxt: i64,
    matchers: &[Matcher],
    wanted: Wanted,
) -> Result<(Vec<SelectedSeries>, Vec<String>), String> {
    let q = db.querier(mint, maxt);
    let series = match wanted {
        Wanted::Sorted => q.select(matchers),
        Wanted::Unordered => q.select_unordered(matchers),
        Wanted::Unlabelled => q.select_unlabelled(matchers),
    };
    let series = series
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| {
            let (labels, samples) = s.into_parts();
            SelectedSeries { labels, samples: Box::new(samples) }
        })
        .collect();
    Ok((series, q.warnings()))
}

/// A small in-memory series store, for tests and examples.
///
/// A series holds float samples and native-histogram samples, at most one
/// sample per timestamp: adding a sample of either kind at a timestamp
/// that already has one replaces it (whatever its kind). Series without
/// histograms are read through the float-only iterator
/// ([`VecIterator`]); series with histograms in the selected range through
/// a [`MixedIterator`] (so [`SampleIterator::has_histograms`] is `true`).
/// Histograms are returned exactly as added, counter-reset hint included.
///
/// ```
/// use tidemark_promql::{Engine, MemStorage, Value};
/// use tidemark_storage::Labels;
///
/// let storage = MemStorage::new();
/// let labels = Labels::new([("__name__", "up"), ("job", "api")]).unwrap();
/// storage.add(&labels, 0, 1.0);
/// let result = Engine::default().instant_query(&storage, "up", 10_000).unwrap();
/// assert!(matches!(result.value, Value::Vector(ref v) if v.len() == 1));
/// ```
///
/// Histograms:
///
/// ```
/// use tidemark_promql::{MemStorage, SeriesSource};
/// use tidemark_storage::histogram::{FloatHistogram, HistogramValue};
/// use tidemark_storage::{Labels, Matcher, SampleIterator, ValueKind};
///
/// let storage = MemStorage::new();
/// let labels = Labels::new([("__name__", "h")]).unwrap();
/// storage.add(&labels, 0, 1.0);
/// storage.add_float_histogram(&labels, 1_000, FloatHistogram { count: 2.0, sum: 3.0, ..Default::default() });
/// let mut series = storage.select(0, 10_000, &[Matcher::equal("__name__", "h")]).unwrap();
/// let it = &mut series[0].samples;
/// assert!(it.has_histograms());
/// assert!(it.next() && it.kind() == ValueKind::Float);
/// assert!(it.next() && it.kind() == ValueKind::FloatHistogram);
/// assert!(matches!(it.at_histogram().unwrap().h, HistogramValue::Float(ref h) if h.count == 2.0));
/// ```
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, MemSeries>>,
}

/// One series of a [`MemStorage`]: floats and histograms, each sorted by
/// time, no timestamp in both.
#[derive(Debug, Default)]
struct MemSeries {
    floats: Vec<Sample>,
    histograms: Vec<HistogramSample>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Adds one float sample. A sample (float or histogram) at an existing
    /// timestamp is replaced; samples may arrive in any order.
    pub fn add(&self, labels: &Labels, t: i64, v: f64) {
        let mut map = self.series.write();
        let series = map.entry(labels.clone()).or_default();
        if !series.histograms.is_empty() {
            if let Ok(i) = series.histograms.binary_search_by_key(&t, |s| s.t) {
                series.histograms.remove(i);
            }
        }
        let samples = &mut series.floats;
        match samples.binary_search_by_key(&t, |s| s.t) {
            Ok(i) => samples[i].v = v,
            Err(i) => samples.insert(i, Sample { t, v }),
        }
    }

    /// Adds one native-histogram sample, integer or float, stored and
    /// returned as given. A sample (float or histogram) at an existing
    /// timestamp is replaced; samples may arrive in any order. A staleness
    /// marker of a histogram series is a histogram whose sum is the
    /// staleness NaN ([`HistogramValue::is_stale`]).
    pub fn add_histogram(&self, labels: &Labels, t: i64, h: HistogramValue) {
        let mut map = self.series.write();
        let series = map.entry(labels.clone()).or_default();
        if let Ok(i) = series.floats.binary_search_by_key(&t, |s| s.t) {
            series.floats.remove(i);
        }
        let hs = &mut series.histograms;
        match hs.binary_search_by_key(&t, |s| s.t) {
            Ok(i) => hs[i].h = h,
            Err(i) => hs.insert(i, HistogramSample { t, h }),
        }
    }

    /// [`MemStorage::add_histogram`] for a histogram with float counts.
    pub fn add_float_histogram(&self, labels: &Labels, t: i64, h: FloatHistogram) {
        self.add_histogram(labels, t, HistogramValue::Float(h));
    }

    /// Removes every series.
    pub fn clear(&self) {
        self.series.write().clear();
    }

    /// Number of series stored.
    pub fn series_count(&self) -> usize {
        self.series.read().len()
    }
}

impl SeriesSource for MemStorage {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        let map = self.series.read();
        let mut out = Vec::new();
        for (labels, series) in map.iter() {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let floats = &series.floats;
            let lo = floats.partition_point(|s| s.t < mint);
            let hi = floats.partition_point(|s| s.t <= maxt);
            let hs = &series.histograms;
            let (hlo, hhi) = if hs.is_empty() {
                (0, 0)
            } else {
                (hs.partition_point(|s| s.t < mint), hs.partition_point(|s| s.t <= maxt))
            };
            if lo >= hi && hlo >= hhi {
                continue;
            }
            let samples: Box<dyn SampleIterator + Send> = if hlo >= hhi {
                // The float-only path: what readers take when no
                // histogram is in range.
                Box::new(VecIterator::new(floats[lo..hi].to_vec()))
            } else {
                Box::new(MixedIterator::new(floats[lo..hi].to_vec(), hs[hlo..hhi].to_vec()))
            };
            out.push(SelectedSeries { labels: labels.clone(), samples });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tidemark_storage::histogram::Histogram;
    use tidemark_storage::{stale_nan, ValueKind};

    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::new([("__name__", name)]).unwrap()
    }

    fn fh(count: f64) -> FloatHistogram {
        FloatHistogram { count, sum: count * 2.0, ..FloatHistogram::default() }
    }

    fn read(s: &MemStorage, mint: i64, maxt: i64) -> Vec<(Labels, bool, Vec<Sample>, Vec<HistogramSample>)> {
        let mut out: Vec<_> = s
            .select(mint, maxt, &[])
            .unwrap()
            .into_iter()
            .map(|mut sel| {
                let has = sel.samples.has_histograms();
                let (mut f, mut h) = (Vec::new(), Vec::new());
                sel.samples.drain_mixed_into(&mut f, &mut h);
                (sel.labels, has, f, h)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn float_only_series_take_the_float_path() {
        let s = MemStorage::new();
        s.add(&labels("a"), 20, 2.0);
        s.add(&labels("a"), 10, 1.0);
        s.add(&labels("a"), 20, 3.0);
        let got = read(&s, 0, 100);
        assert_eq!(got.len(), 1);
        assert!(!got[0].1, "no histograms: float-only iterator");
        assert_eq!(got[0].2, vec![Sample::new(10, 1.0), Sample::new(20, 3.0)]);
    }

    #[test]
    fn histograms_and_floats_interleave_and_replace_each_other() {
        let s = MemStorage::new();
        let l = labels("h");
        s.add(&l, 0, 1.0);
        s.add_float_histogram(&l, 10, fh(1.0));
        s.add(&l, 20, 2.0);
        s.add_histogram(&l, 30, HistogramValue::Integer(Histogram { count: 3, ..Histogram::default() }));
        // A float where a histogram was, and a histogram where a float was.
        s.add(&l, 10, 5.0);
        s.add_float_histogram(&l, 20, fh(4.0));
        let got = read(&s, 0, 100);
        assert!(got[0].1);
        assert_eq!(got[0].2, vec![Sample::new(0, 1.0), Sample::new(10, 5.0)]);
        let ts: Vec<i64> = got[0].3.iter().map(|h| h.t).collect();
        assert_eq!(ts, vec![20, 30]);
        assert_eq!(got[0].3[0].h, HistogramValue::Float(fh(4.0)));
        assert!(matches!(got[0].3[1].h, HistogramValue::Integer(ref h) if h.count == 3));

        // Cursor order and kinds.
        let mut sel = s.select(0, 100, &[]).unwrap();
        let it = &mut sel[0].samples;
        let mut kinds = Vec::new();
        while it.next() {
            kinds.push((it.at().t, it.kind()));
        }
        assert_eq!(
            kinds,
            vec![
                (0, ValueKind::Float),
                (10, ValueKind::Float),
                (20, ValueKind::FloatHistogram),
                (30, ValueKind::Histogram)
            ]
        );
    }

    #[test]
    fn the_range_decides_the_iterator() {
        let s = MemStorage::new();
        let l = labels("h");
        s.add(&l, 0, 1.0);
        s.add_float_histogram(&l, 100, fh(1.0));
        let got = read(&s, 0, 50);
        assert!(!got[0].1, "the histogram is out of range");
        let got = read(&s, 60, 200);
        assert!(got[0].1 && got[0].2.is_empty() && got[0].3.len() == 1);
        assert!(read(&s, 200, 300).is_empty(), "nothing in range: no series");
    }

    #[test]
    fn histogram_staleness_markers_keep_their_bits() {
        let s = MemStorage::new();
        let l = labels("h");
        s.add_float_histogram(&l, 0, FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() });
        let got = read(&s, 0, 0);
        assert!(got[0].3[0].h.is_stale());
        s.clear();
        assert_eq!(s.series_count(), 0);
    }
}
