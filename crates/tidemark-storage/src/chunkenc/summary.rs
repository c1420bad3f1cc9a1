//! Chunk summaries: the largest and smallest value of a closed chunk, kept
//! beside its bytes (in the head chunk file's record header), so that a
//! `max_over_time`/`min_over_time` window that covers the whole chunk can
//! take its answer without decoding the chunk.
//!
//! The summary is exact, not an approximation: [`ChunkSummary::extreme`] is
//! the value the PromQL kernel would pick from the chunk's samples, bit for
//! bit, and picking from a sequence in which a whole chunk is replaced by
//! that one value gives the same answer as picking from every sample (see
//! [`Extreme::keep`]).

use crate::sample::{is_stale_nan, Sample};

/// Which extreme of a window a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extreme {
    /// The largest value (`max_over_time`).
    Max,
    /// The smallest value (`min_over_time`).
    Min,
}

impl Extreme {
    /// Whether `cur`, met after `best`, replaces it: PromQL's
    /// `max_over_time`/`min_over_time` rule. A strictly larger (smaller)
    /// value wins, the first of equal values stays, and a NaN is replaced by
    /// whatever follows it, so the answer is NaN only if every value is NaN.
    ///
    /// Folding a sequence with this rule gives the same value (and bits)
    /// whether a contiguous run of it is folded first and replaced by its
    /// result or not: if the value before the run is a number, the run can
    /// only replace it by its own first strictly larger (smaller) number,
    /// which is the run's result; if it is NaN, the run's result replaces it.
    #[inline]
    pub fn keep(self, cur: f64, best: f64) -> bool {
        match self {
            Extreme::Max => cur > best || best.is_nan(),
            Extreme::Min => cur < best || best.is_nan(),
        }
    }
}

/// What a reader may know about a closed chunk without decoding it.
/// Two summaries are equal when their counts and the bits of their values
/// are.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSummary {
    /// All samples of the chunk, staleness markers included.
    pub samples: u32,
    /// Samples that are not staleness markers.
    pub count: u32,
    /// The [`Extreme::Max`] fold of the samples that are not staleness
    /// markers (meaningless when `count` is 0).
    pub max: f64,
    /// The [`Extreme::Min`] fold of the same samples.
    pub min: f64,
}

impl PartialEq for ChunkSummary {
    fn eq(&self, other: &ChunkSummary) -> bool {
        self.samples == other.samples
            && self.count == other.count
            && self.max.to_bits() == other.max.to_bits()
            && self.min.to_bits() == other.min.to_bits()
    }
}

impl Eq for ChunkSummary {}

impl ChunkSummary {
    /// The summary of `samples` (in time order). `None` for more than
    /// `u32::MAX` samples, which no chunk holds.
    pub fn of(samples: &[Sample]) -> Option<ChunkSummary> {
        let total = u32::try_from(samples.len()).ok()?;
        let mut it = samples.iter().map(|s| s.v).filter(|&v| !is_stale_nan(v));
        let Some(first) = it.next() else {
            return Some(ChunkSummary { samples: total, count: 0, max: 0.0, min: 0.0 });
        };
        let (mut max, mut min, mut count) = (first, first, 1u32);
        for v in it {
            count += 1;
            if Extreme::Max.keep(v, max) {
                max = v;
            }
            if Extreme::Min.keep(v, min) {
                min = v;
            }
        }
        Some(ChunkSummary { samples: total, count, max, min })
    }

    /// The chunk's largest or smallest value that is not a staleness
    /// marker, or `None` if every sample is one (or there are none).
    #[inline]
    pub fn extreme(&self, e: Extreme) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match e {
            Extreme::Max => self.max,
            Extreme::Min => self.min,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::stale_nan;

    /// The kernel's own fold over the non-stale values.
    fn fold(vals: &[f64], e: Extreme) -> Option<f64> {
        let mut it = vals.iter().copied().filter(|&v| !is_stale_nan(v));
        let mut best = it.next()?;
        for v in it {
            if e.keep(v, best) {
                best = v;
            }
        }
        Some(best)
    }

    fn samples(vals: &[f64]) -> Vec<Sample> {
        vals.iter().enumerate().map(|(i, &v)| Sample::new(i as i64 * 15_000, v)).collect()
    }

    #[test]
    fn summary_is_the_fold_of_the_non_stale_values() {
        let nan2 = f64::from_bits(0x7ff8_0000_0000_0002);
        let cases: Vec<Vec<f64>> = vec![
            vec![],
            vec![stale_nan()],
            vec![stale_nan(), stale_nan()],
            vec![1.0],
            vec![f64::NAN, 3.0, 2.0],
            vec![3.0, f64::NAN, 2.0],
            vec![f64::NAN, nan2],
            vec![-0.0, 0.0, -0.0],
            vec![0.0, -0.0],
            vec![f64::NEG_INFINITY, stale_nan(), f64::INFINITY, 5.0],
            vec![stale_nan(), f64::NAN, stale_nan()],
        ];
        for vals in cases {
            let s = ChunkSummary::of(&samples(&vals)).unwrap();
            assert_eq!(s.samples as usize, vals.len());
            assert_eq!(s.count as usize, vals.iter().filter(|v| !is_stale_nan(**v)).count());
            for e in [Extreme::Max, Extreme::Min] {
                let want = fold(&vals, e).map(f64::to_bits);
                assert_eq!(s.extreme(e).map(f64::to_bits), want, "{vals:?} {e:?}");
            }
        }
    }

    /// Replacing any contiguous run by its summary's extreme leaves the
    /// fold unchanged, bits included: the property readers rely on.
    #[test]
    fn replacing_a_run_by_its_extreme_keeps_the_answer() {
        let pool = [
            1.0,
            2.0,
            -1.0,
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_0000_0003),
            stale_nan(),
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // Every sequence of length 4 over a few of the values, every run.
        let n = pool.len();
        let mut checked = 0;
        for code in 0..n.pow(4) {
            let vals: Vec<f64> = (0..4).map(|i| pool[(code / n.pow(i)) % n]).collect();
            for lo in 0..4 {
                for hi in lo + 1..=4 {
                    let s = ChunkSummary::of(&samples(&vals[lo..hi])).unwrap();
                    for e in [Extreme::Max, Extreme::Min] {
                        let mut replaced: Vec<f64> = vals[..lo].to_vec();
                        replaced.extend(s.extreme(e));
                        replaced.extend_from_slice(&vals[hi..]);
                        assert_eq!(
                            fold(&replaced, e).map(f64::to_bits),
                            fold(&vals, e).map(f64::to_bits),
                            "{vals:?} run {lo}..{hi} {e:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, n.pow(4) * 10 * 2);
    }
}
