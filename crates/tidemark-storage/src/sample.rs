//! Samples and the iterator interface every sample source implements.

use crate::histogram::{HistogramSample, HistogramValue};

/// Bit pattern of Prometheus' staleness marker: a NaN that means "this series
/// ended here". It must survive storage bit-exactly.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (compares bits, not values).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: a timestamp in milliseconds since the Unix epoch and a value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; every bit pattern (NaN payloads, ±Inf, -0.0) is preserved.
    pub v: f64,
}

impl Sample {
    /// A sample at `t` with value `v`.
    pub fn new(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }
}

impl PartialEq for Sample {
    /// Bit-exact equality: NaN equals NaN with the same payload, -0.0 != 0.0.
    fn eq(&self, other: &Sample) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

impl Eq for Sample {}

/// A cursor over samples in strictly increasing timestamp order.
///
/// Modelled on Prometheus' `chunkenc.Iterator`: `next` and `seek` move the
/// cursor and report whether it rests on a sample; `at` reads it. After either
/// returns `false`, check [`SampleIterator::err`] to tell the end of data
/// from corrupt data.
pub trait SampleIterator {
    /// Moves to the next sample. Returns `false` at the end or on error.
    fn next(&mut self) -> bool;

    /// Moves to the first sample with timestamp `>= t`. Never moves backwards:
    /// if the current sample already satisfies the bound it stays put.
    /// Returns `false` if there is no such sample (or on error).
    fn seek(&mut self, t: i64) -> bool {
        if self.started() && self.at().t >= t {
            return true;
        }
        while self.next() {
            if self.at().t >= t {
                return true;
            }
        }
        false
    }

    /// The sample under the cursor. Only meaningful after `next`/`seek`
    /// returned `true`.
    fn at(&self) -> Sample;

    /// Whether the cursor has been positioned on a sample at least once and
    /// is not exhausted.
    fn started(&self) -> bool;

    /// The error that stopped iteration, if any.
    fn err(&self) -> Option<&crate::Error> {
        None
    }

    /// A hint that the iterator is about to be read: starts loading, without
    /// waiting for it, the memory its first read reaches `hop` steps away
    /// from the iterator's own state (0: what the state points to; 1: what
    /// that points to). A reader going through many iterators hints each a
    /// few iterators ahead, the farther hop first, so that every step of
    /// the chain is in the cache when it is followed (each is a cache miss
    /// that depends on the one before). Reads only what the previous hop
    /// brought in; never changes what the iterator returns. Default: nothing.
    fn prefetch(&self, hop: u8) {
        let _ = hop;
    }

    /// Appends every float sample `next` would still return to `out`,
    /// leaving the iterator exhausted; check [`SampleIterator::err`]
    /// afterwards. Histogram samples are skipped: a float-only reader never
    /// sees them (read them with [`SampleIterator::drain_mixed_into`]).
    /// Readers that want a whole series override it with a tight loop per
    /// chunk: one call instead of a chain of calls per sample.
    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        while self.next() {
            if self.kind() == ValueKind::Float {
                out.push(self.at());
            }
        }
    }

    /// Appends a suffix of what [`SampleIterator::drain_into`] would append
    /// that holds at least its last sample (nothing if it would append
    /// nothing), leaving the iterator exhausted; check
    /// [`SampleIterator::err`] afterwards. For readers that want only the
    /// newest sample (an instant selector): a reader over several chunks can
    /// then decode the last one alone. Default: everything, as `drain_into`.
    ///
    /// ```
    /// use tidemark_storage::{Sample, SampleIterator, VecIterator};
    /// let mut it = VecIterator::new(vec![Sample::new(1, 1.0), Sample::new(2, 2.0)]);
    /// let mut out = Vec::new();
    /// it.drain_last_into(&mut out);
    /// assert_eq!(out.last(), Some(&Sample::new(2, 2.0)));
    /// ```
    fn drain_last_into(&mut self, out: &mut Vec<Sample>) {
        self.drain_into(out)
    }

    /// Appends what [`SampleIterator::drain_into`] would append, for a
    /// reader that wants only the `extreme` value of the window
    /// `[mint, maxt]` (`max_over_time`/`min_over_time` after staleness
    /// markers are dropped): the samples of a chunk that lies wholly inside
    /// the window and whose store keeps its summary may be replaced by one
    /// sample, the chunk's `extreme` value at the chunk's last timestamp
    /// (none if every sample of the chunk is a staleness marker). Folding
    /// the result with [`Extreme::keep`](crate::chunkenc::Extreme::keep)
    /// gives the same value, bit for bit, as folding every sample. Returns
    /// the number of samples `drain_into` would have appended (what the
    /// reader counts as read). Default: `drain_into`.
    ///
    /// ```
    /// use tidemark_storage::chunkenc::Extreme;
    /// use tidemark_storage::{Sample, SampleIterator, VecIterator};
    /// let mut it = VecIterator::new(vec![Sample::new(1, 1.0), Sample::new(2, 2.0)]);
    /// let mut out = Vec::new();
    /// assert_eq!(it.drain_extreme_into(Extreme::Max, 0, 10, &mut out), 2);
    /// assert_eq!(out.len(), 2);
    /// ```
    fn drain_extreme_into(
        &mut self,
        extreme: crate::chunkenc::Extreme,
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) -> usize {
        let _ = (extreme, mint, maxt);
        let before = out.len();
        self.drain_into(out);
        out.len() - before
    }

    /// Whether this series may hold native-histogram samples. When `false`
    /// every sample is a float and readers may take their float-only paths
    /// ([`SampleIterator::drain_into`] and friends). When `true`, readers
    /// ask [`SampleIterator::kind`] per sample or use
    /// [`SampleIterator::drain_mixed_into`]. Default: `false`.
    fn has_histograms(&self) -> bool {
        false
    }

    /// What the sample under the cursor holds. For a histogram sample,
    /// [`SampleIterator::at`] gives its timestamp (its value is
    /// meaningless) and [`SampleIterator::at_histogram`] the histogram.
    /// Default: [`ValueKind::Float`].
    fn kind(&self) -> ValueKind {
        ValueKind::Float
    }

    /// The histogram sample under the cursor; `None` when it is a float.
    fn at_histogram(&self) -> Option<HistogramSample> {
        None
    }

    /// Appends every sample `next` would still return, floats to `floats`
    /// and histograms to `histograms` (each in time order), leaving the
    /// iterator exhausted. Default: per sample by [`SampleIterator::kind`],
    /// or [`SampleIterator::drain_into`] when the series has no histograms.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, HistogramSample, HistogramValue};
    /// use tidemark_storage::{MixedIterator, Sample, SampleIterator};
    /// let h = HistogramSample { t: 2, h: HistogramValue::Float(FloatHistogram::default()) };
    /// let mut it = MixedIterator::new(vec![Sample::new(1, 1.0)], vec![h.clone()]);
    /// let (mut floats, mut hists) = (Vec::new(), Vec::new());
    /// it.drain_mixed_into(&mut floats, &mut hists);
    /// assert_eq!((floats, hists), (vec![Sample::new(1, 1.0)], vec![h]));
    /// ```
    fn drain_mixed_into(&mut self, floats: &mut Vec<Sample>, histograms: &mut Vec<HistogramSample>) {
        if !self.has_histograms() {
            return self.drain_into(floats);
        }
        while self.next() {
            match self.at_histogram() {
                Some(h) => histograms.push(h),
                None => floats.push(self.at()),
            }
        }
    }
}

/// What one sample holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueKind {
    /// An `f64`.
    #[default]
    Float,
    /// A native histogram with integer counts.
    Histogram,
    /// A native histogram with float counts.
    FloatHistogram,
}

/// A [`SampleIterator`] over owned floats and histograms of one series, each
/// sorted by strictly increasing `t`, no timestamp in both.
#[derive(Debug, Clone, Default)]
pub struct MixedIterator {
    floats: Vec<Sample>,
    histograms: Vec<HistogramSample>,
    /// Next unread float and histogram.
    fi: usize,
    hi: usize,
    /// The sample under the cursor: `Some(true)` a histogram (at `hi - 1`),
    /// `Some(false)` a float (at `fi - 1`), `None` before the first or after
    /// the last.
    cur: Option<bool>,
}

impl MixedIterator {
    /// Iterates over both lists merged by time.
    pub fn new(floats: Vec<Sample>, histograms: Vec<HistogramSample>) -> MixedIterator {
        MixedIterator { floats, histograms, fi: 0, hi: 0, cur: None }
    }
}

impl SampleIterator for MixedIterator {
    fn next(&mut self) -> bool {
        let f = self.floats.get(self.fi).map(|s| s.t);
        let h = self.histograms.get(self.hi).map(|s| s.t);
        self.cur = match (f, h) {
            (Some(ft), Some(ht)) if ht < ft => Some(true),
            (Some(_), _) => Some(false),
            (None, Some(_)) => Some(true),
            (None, None) => None,
        };
        match self.cur {
            Some(true) => self.hi += 1,
            Some(false) => self.fi += 1,
            None => {}
        }
        self.cur.is_some()
    }

    fn at(&self) -> Sample {
        match self.cur {
            Some(true) => Sample { t: self.histograms[self.hi - 1].t, v: f64::NAN },
            _ => self.floats[self.fi - 1],
        }
    }

    fn started(&self) -> bool {
        self.cur.is_some()
    }

    fn has_histograms(&self) -> bool {
        !self.histograms.is_empty()
    }

    fn kind(&self) -> ValueKind {
        match self.cur {
            Some(true) => match self.histograms[self.hi - 1].h {
                HistogramValue::Integer(_) => ValueKind::Histogram,
                HistogramValue::Float(_) => ValueKind::FloatHistogram,
            },
            _ => ValueKind::Float,
        }
    }

    fn at_histogram(&self) -> Option<HistogramSample> {
        (self.cur == Some(true)).then(|| self.histograms[self.hi - 1].clone())
    }
}

/// A [`SampleIterator`] over an owned, sorted vector of samples.
#[derive(Debug, Clone, Default)]
pub struct VecIterator {
    pub(crate) samples: Vec<Sample>,
    /// Index of the current sample + 1; 0 before the first `next`.
    pub(crate) pos: usize,
}

impl VecIterator {
    /// Iterates over `samples`, which must be sorted by strictly increasing `t`.
    pub fn new(samples: Vec<Sample>) -> VecIterator {
        VecIterator { samples, pos: 0 }
    }
}

impl SampleIterator for VecIterator {
    #[inline]
    fn next(&mut self) -> bool {
        if self.pos <= self.samples.len() {
            self.pos += 1;
        }
        self.pos <= self.samples.len()
    }

    fn seek(&mut self, t: i64) -> bool {
        let from = self.pos.saturating_sub(1);
        if from >= self.samples.len() {
            self.pos = self.samples.len() + 1;
            return false;
        }
        let idx = from + self.samples[from..].partition_point(|s| s.t < t);
        self.pos = idx + 1;
        self.pos <= self.samples.len()
    }

    #[inline]
    fn at(&self) -> Sample {
        self.samples[self.pos - 1]
    }

    fn started(&self) -> bool {
        self.pos > 0 && self.pos <= self.samples.len()
    }

    fn drain_into(&mut self, out: &mut Vec<Sample>) {
        if self.pos < self.samples.len() {
            out.extend_from_slice(&self.samples[self.pos..]);
        }
        self.pos = self.samples.len() + 1;
    }
}

/// Drains an iterator into a vector (useful in tests and for small reads).
pub fn collect_samples(it: &mut dyn SampleIterator) -> Result<Vec<Sample>, crate::Error> {
    let mut out = Vec::new();
    it.drain_into(&mut out);
    match it.err() {
        Some(e) => Err(e.clone()),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_a_distinct_nan() {
        assert!(stale_nan().is_nan());
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert_ne!(Sample::new(1, stale_nan()), Sample::new(1, f64::NAN));
        assert_eq!(Sample::new(1, f64::NAN), Sample::new(1, f64::NAN));
        assert_ne!(Sample::new(1, 0.0), Sample::new(1, -0.0));
    }

    #[test]
    fn vec_iterator_seeks_forward_only() {
        let mut it = VecIterator::new((0..10).map(|i| Sample::new(i * 10, i as f64)).collect());
        assert!(it.seek(25));
        assert_eq!(it.at().t, 30);
        assert!(it.seek(5));
        assert_eq!(it.at().t, 30, "seek never moves backwards");
        assert!(it.next());
        assert_eq!(it.at().t, 40);
        assert!(!it.seek(1000));
        assert!(!it.next());
    }
}
