//! Where the engine reads series from: the [`SeriesSource`] trait, its
//! implementation for [`tidemark_storage::Db`], and [`MemStorage`] for tests.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use tidemark_storage::{Db, Labels, Matcher, Sample, SampleIterator, VecIterator, WindowFn};

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
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Adds one sample. A sample at an existing timestamp replaces it;
    /// samples may arrive in any order.
    pub fn add(&self, labels: &Labels, t: i64, v: f64) {
        let mut map = self.series.write();
        let samples = map.entry(labels.clone()).or_default();
        match samples.binary_search_by_key(&t, |s| s.t) {
            Ok(i) => samples[i].v = v,
            Err(i) => samples.insert(i, Sample { t, v }),
        }
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
        for (labels, samples) in map.iter() {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let lo = samples.partition_point(|s| s.t < mint);
            let hi = samples.partition_point(|s| s.t <= maxt);
            if lo >= hi {
                continue;
            }
            out.push(SelectedSeries {
                labels: labels.clone(),
                samples: Box::new(VecIterator::new(samples[lo..hi].to_vec())),
            });
        }
        Ok(out)
    }
}
