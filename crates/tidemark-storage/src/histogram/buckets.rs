//! Buckets with their bounds, and the iterators over a histogram's buckets
//! (Prometheus' `Bucket` and `BucketIterator`s).

use super::schema::{exponential_bound, get_bound, is_exponential_schema, target_idx};
use super::{is_custom_buckets, FloatHistogram, Histogram, Span};

/// One bucket: its bounds, whether each bound is inclusive, its count and
/// its index within its schema.
///
/// For cumulative buckets ([`Histogram::cumulative_buckets`]) `lower` is
/// −Inf and `count` includes all smaller buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket<C = f64> {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Whether `lower` belongs to the bucket.
    pub lower_inclusive: bool,
    /// Whether `upper` belongs to the bucket.
    pub upper_inclusive: bool,
    /// Observations in the bucket.
    pub count: C,
    /// Index within the schema (meaningless for the zero bucket, which has
    /// index 0).
    pub index: i32,
}

impl<C> Bucket<C> {
    /// The fraction (0…1) of this bucket's width at or below `v`, for `v`
    /// strictly inside finite bounds. `linear` interpolates linearly (custom
    /// buckets and the zero bucket); otherwise on a logarithmic scale
    /// (exponential buckets, mirrored for negative ones). Other inputs give
    /// meaningless results, as in Prometheus' `FractionBelow`.
    ///
    /// ```
    /// use tidemark_storage::histogram::Bucket;
    /// let b = Bucket { lower: 1.0, upper: 4.0, lower_inclusive: false, upper_inclusive: true, count: 1.0, index: 1 };
    /// assert_eq!(b.fraction_below(2.0, false), 0.5);
    /// assert_eq!(b.fraction_below(2.5, true), 0.5);
    /// ```
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            (log_v - log_lower) / (log_upper - log_lower)
        } else {
            1.0 - ((log_v - log_upper) / (log_lower - log_upper))
        }
    }
}

/// Builds the bucket with index `idx` on the given side of `schema`.
pub(crate) fn bucket_at<C>(idx: i32, count: C, schema: i32, positive: bool, custom_values: &[f64]) -> Bucket<C> {
    let (lower, upper) = if positive {
        (get_bound(idx.wrapping_sub(1), schema, custom_values), get_bound(idx, schema, custom_values))
    } else {
        (-get_bound(idx, schema, custom_values), -get_bound(idx.wrapping_sub(1), schema, custom_values))
    };
    let (lower_inclusive, upper_inclusive) =
        if is_custom_buckets(schema) { (idx == 0, true) } else { (lower < 0.0, upper > 0.0) };
    Bucket { lower, upper, lower_inclusive, upper_inclusive, count, index: idx }
}

/// Iterates over one side of a [`FloatHistogram`] from the zero bucket
/// outwards (positive buckets ascending, negative buckets descending by
/// value), optionally merging buckets into a lower `target_schema` and
/// skipping buckets whose absolute upper bound is at most
/// `absolute_start_value` (exponential schemas only).
#[derive(Debug, Clone)]
pub struct FloatBucketIter<'a> {
    schema: i32,
    target_schema: i32,
    spans: &'a [Span],
    buckets: &'a [f64],
    positive: bool,
    custom_values: &'a [f64],
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    curr_count: f64,
    curr_idx: i32,
    orig_idx: i32,
    absolute_start_value: f64,
    bound_reached_start_value: bool,
}

impl<'a> FloatBucketIter<'a> {
    /// An iterator over the positive (`positive`) or negative buckets of `h`,
    /// merged into `target_schema`, which must be `h.schema` or (for an
    /// exponential schema) a lower exponential schema; any other target
    /// yields no buckets (where Prometheus panics).
    pub fn new(h: &'a FloatHistogram, positive: bool, absolute_start_value: f64, target_schema: i32) -> Self {
        let valid_target = if is_custom_buckets(h.schema) {
            target_schema == h.schema
        } else {
            !is_custom_buckets(target_schema) && target_schema <= h.schema
        };
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if !valid_target {
            (&[], &[], &[])
        } else if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        FloatBucketIter {
            schema: h.schema,
            target_schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_count: 0.0,
            curr_idx: 0,
            orig_idx: 0,
            absolute_start_value,
            bound_reached_start_value: absolute_start_value == 0.0,
        }
    }

    /// Advances to the next bucket without computing its bounds; returns its
    /// count and index.
    pub(crate) fn next_stripped(&mut self) -> Option<(f64, i32)> {
        loop {
            if !self.advance() {
                return None;
            }
            if !self.bound_reached_start_value
                && is_exponential_schema(self.target_schema)
                && exponential_bound(self.curr_idx, self.target_schema) <= self.absolute_start_value
            {
                continue;
            }
            self.bound_reached_start_value = true;
            return Some((self.curr_count, self.curr_idx));
        }
    }

    fn advance(&mut self) -> bool {
        let Some(mut span) = self.spans.get(self.spans_idx).copied() else { return false };
        if self.schema == self.target_schema {
            if self.buckets_idx == 0 {
                self.curr_idx = span.offset;
            } else {
                self.curr_idx = self.curr_idx.wrapping_add(1);
            }
            if self.buckets_idx >= self.buckets.len() {
                return false;
            }
            while self.idx_in_span >= span.length {
                self.idx_in_span = 0;
                self.spans_idx += 1;
                let Some(s) = self.spans.get(self.spans_idx).copied() else { return false };
                span = s;
                self.curr_idx = self.curr_idx.wrapping_add(span.offset);
            }
            self.curr_count = self.buckets[self.buckets_idx];
            self.idx_in_span += 1;
            self.buckets_idx += 1;
            return true;
        }
        let (mut orig_idx, mut spans_idx, mut idx_in_span) = (self.orig_idx, self.spans_idx, self.idx_in_span);
        let mut first_pass = true;
        self.curr_count = 0.0;
        loop {
            if self.buckets_idx == 0 {
                orig_idx = span.offset;
            } else {
                orig_idx = orig_idx.wrapping_add(1);
            }
            if self.buckets_idx >= self.buckets.len() {
                if first_pass {
                    return false;
                }
                break;
            }
            let mut exhausted = false;
            while idx_in_span >= span.length {
                idx_in_span = 0;
                spans_idx += 1;
                match self.spans.get(spans_idx) {
                    Some(s) => {
                        span = *s;
                        orig_idx = orig_idx.wrapping_add(span.offset);
                    }
                    None => {
                        exhausted = true;
                        break;
                    }
                }
            }
            if exhausted {
                if first_pass {
                    return false;
                }
                break;
            }
            let curr = target_idx(orig_idx, self.schema, self.target_schema);
            if first_pass {
                self.curr_idx = curr;
                first_pass = false;
            } else if curr != self.curr_idx {
                break;
            }
            self.curr_count += self.buckets[self.buckets_idx];
            idx_in_span += 1;
            self.buckets_idx += 1;
            self.orig_idx = orig_idx;
            self.spans_idx = spans_idx;
            self.idx_in_span = idx_in_span;
        }
        true
    }
}

impl Iterator for FloatBucketIter<'_> {
    type Item = Bucket<f64>;

    fn next(&mut self) -> Option<Bucket<f64>> {
        let (count, idx) = self.next_stripped()?;
        Some(bucket_at(idx, count, self.target_schema, self.positive, self.custom_values))
    }
}

/// Iterates over one side of a [`FloatHistogram`] from the outermost
/// bucket towards the zero bucket (positive buckets descending, negative
/// buckets ascending by value).
#[derive(Debug, Clone)]
pub struct ReverseFloatBucketIter<'a> {
    schema: i32,
    spans: &'a [Span],
    buckets: &'a [f64],
    positive: bool,
    custom_values: &'a [f64],
    spans_idx: isize,
    idx_in_span: i64,
    buckets_idx: isize,
    curr_idx: i32,
}

impl<'a> ReverseFloatBucketIter<'a> {
    /// An iterator over the positive (`positive`) or negative buckets of `h`.
    pub fn new(h: &'a FloatHistogram, positive: bool) -> Self {
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        let spans_idx = spans.len() as isize - 1;
        let idx_in_span = spans.last().map_or(0, |s| i64::from(s.length) - 1);
        let curr_idx = spans.iter().fold(0i32, |acc, s| acc.wrapping_add(s.offset).wrapping_add(s.length as i32));
        ReverseFloatBucketIter {
            schema: h.schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx,
            idx_in_span,
            buckets_idx: buckets.len() as isize - 1,
            curr_idx,
        }
    }
}

impl Iterator for ReverseFloatBucketIter<'_> {
    type Item = Bucket<f64>;

    fn next(&mut self) -> Option<Bucket<f64>> {
        self.curr_idx = self.curr_idx.wrapping_sub(1);
        if self.buckets_idx < 0 {
            return None;
        }
        while self.idx_in_span < 0 {
            self.spans_idx -= 1;
            if self.spans_idx < 0 {
                return None;
            }
            let i = self.spans_idx as usize;
            self.idx_in_span = i64::from(self.spans[i].length) - 1;
            self.curr_idx = self.curr_idx.wrapping_sub(self.spans[i + 1].offset);
        }
        let count = *self.buckets.get(self.buckets_idx as usize)?;
        self.buckets_idx -= 1;
        self.idx_in_span -= 1;
        Some(bucket_at(self.curr_idx, count, self.schema, self.positive, self.custom_values))
    }
}

/// Iterates over all buckets of a [`FloatHistogram`] — negative, zero (if
/// populated) and positive — in ascending order ([`FloatHistogram::all_buckets`])
/// or descending order ([`FloatHistogram::all_buckets_reverse`]). A bucket
/// overlapping the zero bucket has its bound clamped to the zero threshold.
#[derive(Debug, Clone)]
pub struct AllFloatBucketIter<'a> {
    h: &'a FloatHistogram,
    left: ReverseFloatBucketIter<'a>,
    right: FloatBucketIter<'a>,
    state: i8,
}

impl<'a> AllFloatBucketIter<'a> {
    pub(crate) fn new(h: &'a FloatHistogram, reverse: bool) -> Self {
        let (left, right) = if reverse {
            (ReverseFloatBucketIter::new(h, true), FloatBucketIter::new(h, false, 0.0, h.schema))
        } else {
            (ReverseFloatBucketIter::new(h, false), FloatBucketIter::new(h, true, 0.0, h.schema))
        };
        AllFloatBucketIter { h, left, right, state: -1 }
    }

    fn clamp(&self, mut b: Bucket<f64>) -> Bucket<f64> {
        let zt = self.h.zero_threshold;
        if b.upper < 0.0 && b.upper > -zt {
            b.upper = -zt;
        } else if b.lower > 0.0 && b.lower < zt {
            b.lower = zt;
        }
        b
    }
}

impl Iterator for AllFloatBucketIter<'_> {
    type Item = Bucket<f64>;

    fn next(&mut self) -> Option<Bucket<f64>> {
        loop {
            match self.state {
                -1 => match self.left.next() {
                    Some(b) => return Some(self.clamp(b)),
                    None => self.state = 0,
                },
                0 => {
                    self.state = 1;
                    if self.h.zero_count > 0.0 && !is_custom_buckets(self.h.schema) {
                        return Some(self.h.zero_bucket());
                    }
                }
                1 => match self.right.next() {
                    Some(b) => return Some(self.clamp(b)),
                    None => {
                        self.state = 42;
                        return None;
                    }
                },
                _ => return None,
            }
        }
    }
}

/// Iterates over one side of an integer [`Histogram`] from the zero bucket
/// outwards, with absolute counts.
#[derive(Debug, Clone)]
pub struct IntBucketIter<'a> {
    schema: i32,
    spans: &'a [Span],
    buckets: &'a [i64],
    positive: bool,
    custom_values: &'a [f64],
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    curr_count: i64,
    curr_idx: i32,
}

impl<'a> IntBucketIter<'a> {
    pub(crate) fn new(h: &'a Histogram, positive: bool) -> Self {
        let (spans, buckets, custom_values): (&[Span], &[i64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        IntBucketIter {
            schema: h.schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_count: 0,
            curr_idx: 0,
        }
    }
}

impl Iterator for IntBucketIter<'_> {
    type Item = Bucket<u64>;

    fn next(&mut self) -> Option<Bucket<u64>> {
        let mut span = *self.spans.get(self.spans_idx)?;
        if self.buckets_idx == 0 {
            self.curr_idx = span.offset;
        } else {
            self.curr_idx = self.curr_idx.wrapping_add(1);
        }
        while self.idx_in_span >= span.length {
            self.idx_in_span = 0;
            self.spans_idx += 1;
            span = *self.spans.get(self.spans_idx)?;
            self.curr_idx = self.curr_idx.wrapping_add(span.offset);
        }
        let delta = *self.buckets.get(self.buckets_idx)?;
        self.curr_count = self.curr_count.wrapping_add(delta);
        self.idx_in_span += 1;
        self.buckets_idx += 1;
        Some(bucket_at(self.curr_idx, self.curr_count as u64, self.schema, self.positive, self.custom_values))
    }
}

/// Iterates over the zero bucket and the positive buckets of an integer
/// [`Histogram`] as cumulative buckets (lower bound −Inf, counts including
/// all lower buckets), including the empty buckets in gaps between spans,
/// as Prometheus' `CumulativeBucketIterator`.
#[derive(Debug, Clone)]
pub struct CumulativeBucketIter<'a> {
    h: &'a Histogram,
    pos_spans_idx: isize,
    pos_buckets_idx: usize,
    idx_in_span: u32,
    initialized: bool,
    curr_idx: i32,
    curr_upper: f64,
    curr_count: i64,
    curr_cumulative: u64,
    empty_bucket_count: i32,
}

impl<'a> CumulativeBucketIter<'a> {
    pub(crate) fn new(h: &'a Histogram) -> Self {
        CumulativeBucketIter {
            h,
            pos_spans_idx: -1,
            pos_buckets_idx: 0,
            idx_in_span: 0,
            initialized: false,
            curr_idx: 0,
            curr_upper: 0.0,
            curr_count: 0,
            curr_cumulative: 0,
            empty_bucket_count: 0,
        }
    }

    fn advance(&mut self) -> bool {
        let h = self.h;
        if self.pos_spans_idx == -1 {
            self.pos_spans_idx = 0;
            if h.zero_count != 0 {
                self.curr_upper = h.zero_threshold;
                self.curr_count = h.zero_count as i64;
                self.curr_cumulative = h.zero_count;
                return true;
            }
        }
        let Some(&span) = h.positive_spans.get(self.pos_spans_idx as usize) else { return false };
        if self.empty_bucket_count > 0 {
            self.curr_upper = get_bound(self.curr_idx, h.schema, &h.custom_values);
            self.curr_idx = self.curr_idx.wrapping_add(1);
            self.empty_bucket_count -= 1;
            return true;
        }
        if self.pos_spans_idx == 0 && !self.initialized {
            self.curr_idx = span.offset;
            self.curr_count = 0;
            self.initialized = true;
        }
        let Some(&delta) = h.positive_buckets.get(self.pos_buckets_idx) else { return false };
        self.curr_count = self.curr_count.wrapping_add(delta);
        self.curr_cumulative = self.curr_cumulative.wrapping_add(self.curr_count as u64);
        self.curr_upper = get_bound(self.curr_idx, h.schema, &h.custom_values);
        self.pos_buckets_idx += 1;
        self.idx_in_span += 1;
        self.curr_idx = self.curr_idx.wrapping_add(1);
        if self.idx_in_span >= span.length {
            self.pos_spans_idx += 1;
            self.idx_in_span = 0;
            if let Some(next) = h.positive_spans.get(self.pos_spans_idx as usize) {
                self.empty_bucket_count = next.offset;
            }
        }
        true
    }
}

impl Iterator for CumulativeBucketIter<'_> {
    type Item = Bucket<u64>;

    fn next(&mut self) -> Option<Bucket<u64>> {
        if !self.advance() {
            return None;
        }
        Some(Bucket {
            lower: f64::NEG_INFINITY,
            upper: self.curr_upper,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.curr_cumulative,
            index: self.curr_idx.wrapping_sub(1),
        })
    }
}

impl FloatHistogram {
    /// Whether this histogram has custom buckets (NHCB).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets(self.schema)
    }

    /// The zero bucket: `[-zero_threshold, zero_threshold]`, both inclusive.
    /// (Custom-bucket histograms have none; this then describes an empty
    /// `[0, 0]`, where Prometheus panics.)
    pub fn zero_bucket(&self) -> Bucket<f64> {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// The positive buckets, ascending (from the zero bucket up).
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let h = FloatHistogram {
    ///     count: 3.0,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![1.0, 2.0],
    ///     ..FloatHistogram::default()
    /// };
    /// let b: Vec<_> = h.positive_buckets_iter().map(|b| (b.lower, b.upper, b.count)).collect();
    /// assert_eq!(b, vec![(0.5, 1.0, 1.0), (1.0, 2.0, 2.0)]);
    /// ```
    pub fn positive_buckets_iter(&self) -> FloatBucketIter<'_> {
        FloatBucketIter::new(self, true, 0.0, self.schema)
    }

    /// The negative buckets, descending by value (from the zero bucket down).
    pub fn negative_buckets_iter(&self) -> FloatBucketIter<'_> {
        FloatBucketIter::new(self, false, 0.0, self.schema)
    }

    /// The positive buckets, descending (from the highest down).
    pub fn positive_buckets_reverse(&self) -> ReverseFloatBucketIter<'_> {
        ReverseFloatBucketIter::new(self, true)
    }

    /// The negative buckets, ascending by value (from the lowest up).
    pub fn negative_buckets_reverse(&self) -> ReverseFloatBucketIter<'_> {
        ReverseFloatBucketIter::new(self, false)
    }

    /// All buckets in ascending order: negative, zero (if populated), positive.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let h = FloatHistogram {
    ///     count: 4.0,
    ///     zero_threshold: 0.001,
    ///     zero_count: 1.0,
    ///     positive_spans: vec![Span { offset: 0, length: 1 }],
    ///     positive_buckets: vec![2.0],
    ///     negative_spans: vec![Span { offset: 1, length: 1 }],
    ///     negative_buckets: vec![1.0],
    ///     ..FloatHistogram::default()
    /// };
    /// let b: Vec<_> = h.all_buckets().map(|b| (b.lower, b.upper)).collect();
    /// assert_eq!(b, vec![(-2.0, -1.0), (-0.001, 0.001), (0.5, 1.0)]);
    /// ```
    pub fn all_buckets(&self) -> AllFloatBucketIter<'_> {
        AllFloatBucketIter::new(self, false)
    }

    /// All buckets in descending order: positive, zero (if populated), negative.
    pub fn all_buckets_reverse(&self) -> AllFloatBucketIter<'_> {
        AllFloatBucketIter::new(self, true)
    }
}

impl Histogram {
    /// Whether this histogram has custom buckets (NHCB).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets(self.schema)
    }

    /// The zero bucket (see [`FloatHistogram::zero_bucket`]).
    pub fn zero_bucket(&self) -> Bucket<u64> {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// The positive buckets with absolute counts, ascending.
    pub fn positive_buckets_iter(&self) -> IntBucketIter<'_> {
        IntBucketIter::new(self, true)
    }

    /// The negative buckets with absolute counts, descending by value.
    pub fn negative_buckets_iter(&self) -> IntBucketIter<'_> {
        IntBucketIter::new(self, false)
    }

    /// The zero bucket (if populated) and the positive buckets as cumulative
    /// buckets, including empty buckets in the gaps between spans, as a
    /// classic histogram would expose them. Negative buckets are ignored
    /// (Prometheus panics when there are any).
    ///
    /// ```
    /// use tidemark_storage::histogram::{Histogram, Span};
    /// let h = Histogram {
    ///     count: 3,
    ///     positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 1 }],
    ///     positive_buckets: vec![1, 1],
    ///     ..Histogram::default()
    /// };
    /// let c: Vec<_> = h.cumulative_buckets().map(|b| (b.upper, b.count)).collect();
    /// assert_eq!(c, vec![(1.0, 1), (2.0, 1), (4.0, 3)]);
    /// ```
    pub fn cumulative_buckets(&self) -> CumulativeBucketIter<'_> {
        CumulativeBucketIter::new(self)
    }
}
