//! Arithmetic on [`FloatHistogram`]s as Prometheus' `FloatHistogram`
//! methods: scaling, adding and subtracting (with schema reduction,
//! zero-bucket widening and custom-bound reconciliation), Kahan-compensated
//! adding, compaction, resolution reduction, counter-reset detection,
//! equality and size.

use super::buckets::FloatBucketIter;
use super::generic::{
    add_buckets, compact_buckets, kahan_inc, kahan_reduce_resolution, reduce_resolution, spans_match,
};
use super::schema::{custom_bucket_bounds_match, is_exponential_schema};
use super::validate::{check_spans, HistogramError};
use super::{is_custom_buckets, is_valid_schema, CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

/// Why an operation on histograms could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramOpError {
    /// One histogram has exponential buckets, the other custom buckets
    /// (Prometheus' `ErrHistogramsIncompatibleSchema`; PromQL turns it into
    /// the "mix of exponential and custom buckets" warning).
    #[error("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas")]
    IncompatibleSchema,
    /// An operand is not a valid histogram (its schema, or its spans and
    /// buckets disagree). Prometheus never sees these (it validates on
    /// ingestion) and would panic.
    #[error(transparent)]
    Invalid(#[from] HistogramError),
    /// Resolution reduction of a custom-bucket histogram.
    #[error("cannot reduce resolution when there are custom buckets")]
    ReduceCustomBuckets,
    /// Resolution reduction to the custom-bucket schema.
    #[error("cannot reduce resolution to custom buckets schema")]
    ReduceToCustomBuckets,
    /// Resolution "reduction" to a schema that is not lower.
    #[error("cannot reduce resolution from schema {from} to {to}")]
    NotLowerSchema {
        /// The histogram's schema.
        from: i32,
        /// The requested schema.
        to: i32,
    },
    /// [`FloatHistogram::copy_to_schema`] to a higher schema.
    #[error("cannot copy from schema {from} to {to}")]
    CopyToHigherSchema {
        /// The histogram's schema.
        from: i32,
        /// The requested schema.
        to: i32,
    },
}

/// What [`FloatHistogram::add`], [`FloatHistogram::sub`] and
/// [`FloatHistogram::kahan_add`] report besides the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddOutcome {
    /// One operand said `CounterReset` and the other `NotCounterReset`; the
    /// result's hint became `Unknown`. (Prometheus' aggregation reports
    /// this through its own bookkeeping of hints.)
    pub counter_reset_collision: bool,
    /// Both had custom buckets with different bounds: the result has the
    /// bounds both have in common, each bucket merged into the next common
    /// bound above it. PromQL reports this as the info annotation
    /// "mismatched custom buckets were reconciled".
    pub nhcb_bounds_reconciled: bool,
}

impl FloatHistogram {
    /// Multiplies all counts and the sum by `factor` in place. A negative
    /// factor makes the histogram a gauge.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let mut h = FloatHistogram {
    ///     count: 2.0,
    ///     sum: 3.0,
    ///     positive_spans: vec![Span { offset: 0, length: 1 }],
    ///     positive_buckets: vec![2.0],
    ///     ..FloatHistogram::default()
    /// };
    /// h.mul(1.5);
    /// assert_eq!((h.count, h.sum, h.positive_buckets[0]), (3.0, 4.5, 3.0));
    /// ```
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides all counts and the sum by `scalar` in place. Dividing by zero
    /// makes count, zero count and sum ±Inf or NaN and removes all buckets
    /// (as Prometheus does); a negative scalar makes the histogram a gauge.
    pub fn div(&mut self, scalar: f64) -> &mut Self {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= scalar);
        self.negative_buckets.iter_mut().for_each(|b| *b /= scalar);
        if scalar < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Adds `other` into `self` (Prometheus' `Add`): counts, sum and buckets,
    /// inserting buckets `self` lacks. Differing schemas are reconciled to
    /// the lower one, differing zero thresholds to one at a bucket boundary
    /// that covers both (buckets inside move into the zero bucket). Custom
    /// buckets with different bounds are reconciled to the common bounds.
    /// The counter-reset hint is combined as Prometheus does (see
    /// [`AddOutcome::counter_reset_collision`]). The result may have empty
    /// buckets and adjacent spans: call [`FloatHistogram::compact`].
    ///
    /// Fails, leaving `self` unchanged, if one histogram has custom buckets
    /// and the other does not, or if either is invalid.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let mut a = FloatHistogram {
    ///     schema: 1,
    ///     count: 2.0,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![1.0, 1.0],
    ///     ..FloatHistogram::default()
    /// };
    /// let b = FloatHistogram {
    ///     schema: 0,
    ///     count: 1.0,
    ///     positive_spans: vec![Span { offset: 1, length: 1 }],
    ///     positive_buckets: vec![1.0],
    ///     ..FloatHistogram::default()
    /// };
    /// a.add(&b).unwrap();
    /// // Schema 1 buckets 0 (0.71,1] and 1 (1,1.41] become schema 0 buckets 0 and 1.
    /// assert_eq!(a.schema, 0);
    /// assert_eq!(a.positive_buckets, vec![1.0, 2.0]);
    /// ```
    pub fn add(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramOpError> {
        self.add_or_sub(other, false)
    }

    /// Subtracts `other` from `self` like [`FloatHistogram::add`] (Prometheus'
    /// `Sub`). The hint is combined as for adding; PromQL's `-` operator
    /// then sets it to gauge itself.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramOpError> {
        self.add_or_sub(other, true)
    }

    fn add_or_sub(&mut self, other: &FloatHistogram, negative: bool) -> Result<AddOutcome, HistogramOpError> {
        self.check_operands(other)?;
        let mut outcome =
            AddOutcome { counter_reset_collision: self.adjust_counter_reset(other), nhcb_bounds_reconciled: false };
        if !self.uses_custom_buckets() {
            let (other_zero, _) = self.reconcile_zero_buckets(other, None);
            if negative {
                self.zero_count -= other_zero;
            } else {
                self.zero_count += other_zero;
            }
        }
        if negative {
            self.count -= other.count;
            self.sum -= other.sum;
        } else {
            self.count += other.count;
            self.sum += other.sum;
        }

        if self.uses_custom_buckets() {
            if custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
                add_buckets(
                    self.schema,
                    self.zero_threshold,
                    negative,
                    &mut self.positive_spans,
                    &mut self.positive_buckets,
                    None,
                    &other.positive_spans,
                    &other.positive_buckets,
                    None,
                );
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let bounds = intersect_custom_bucket_bounds(&self.custom_values, &other.custom_values);
                let (spans, buckets, _) = add_custom_buckets_with_mismatches(
                    negative,
                    (&self.positive_spans, &self.positive_buckets, &self.custom_values),
                    (&other.positive_spans, &other.positive_buckets, &other.custom_values),
                    None,
                    &bounds,
                );
                self.positive_spans = spans;
                self.positive_buckets = buckets;
                self.custom_values = bounds;
            }
            return Ok(outcome);
        }

        let reduced_other;
        let (mut o_pos_spans, mut o_pos_buckets, mut o_neg_spans, mut o_neg_buckets): (
            &[Span],
            &[f64],
            &[Span],
            &[f64],
        ) = (&other.positive_spans, &other.positive_buckets, &other.negative_spans, &other.negative_buckets);
        if other.schema < self.schema {
            self.reduce_in_place(other.schema)?;
        } else if other.schema > self.schema {
            let p = reduce_resolution(o_pos_spans, o_pos_buckets, other.schema, self.schema, false)?;
            let n = reduce_resolution(o_neg_spans, o_neg_buckets, other.schema, self.schema, false)?;
            reduced_other = (p, n);
            o_pos_spans = &reduced_other.0 .0;
            o_pos_buckets = &reduced_other.0 .1;
            o_neg_spans = &reduced_other.1 .0;
            o_neg_buckets = &reduced_other.1 .1;
        }
        add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            &mut self.positive_spans,
            &mut self.positive_buckets,
            None,
            o_pos_spans,
            o_pos_buckets,
            None,
        );
        add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            &mut self.negative_spans,
            &mut self.negative_buckets,
            None,
            o_neg_spans,
            o_neg_buckets,
            None,
        );
        Ok(outcome)
    }

    /// Adds `other` into `self` with Kahan–Babuška compensation (Prometheus'
    /// `KahanAdd`, used by PromQL's `sum`, `avg` and `sum_over_time`,
    /// `avg_over_time`). `comp` holds the compensation histogram: pass
    /// `&mut None` on the first call and the same `comp` on every later call
    /// for the same sum; it is created with `self`'s layout and kept in step
    /// with it. At the end add the compensation: `self.add(comp)`.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let h = |v: f64| FloatHistogram {
    ///     count: v,
    ///     sum: v,
    ///     positive_spans: vec![Span { offset: 0, length: 1 }],
    ///     positive_buckets: vec![v],
    ///     ..FloatHistogram::default()
    /// };
    /// let mut sum = h(1.0);
    /// let mut comp = None;
    /// for v in [1e100, 1.0, -1e100] {
    ///     sum.kahan_add(&h(v), &mut comp).unwrap();
    /// }
    /// sum.add(comp.as_ref().unwrap()).unwrap();
    /// assert_eq!((sum.count, sum.sum, sum.positive_buckets[0]), (2.0, 2.0, 2.0));
    /// ```
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        comp: &mut Option<FloatHistogram>,
    ) -> Result<AddOutcome, HistogramOpError> {
        self.check_operands(other)?;
        let mut outcome =
            AddOutcome { counter_reset_collision: self.adjust_counter_reset(other), nhcb_bounds_reconciled: false };
        let c = comp.get_or_insert_with(|| self.new_compensation_histogram());
        c.positive_buckets.resize(self.positive_buckets.len(), 0.0);
        c.negative_buckets.resize(self.negative_buckets.len(), 0.0);
        if !self.uses_custom_buckets() {
            let (other_zero, other_c_zero) = self.reconcile_zero_buckets(other, Some(c));
            (self.zero_count, c.zero_count) = kahan_inc(other_zero, self.zero_count, c.zero_count);
            (self.zero_count, c.zero_count) = kahan_inc(other_c_zero, self.zero_count, c.zero_count);
        }
        (self.count, c.count) = kahan_inc(other.count, self.count, c.count);
        (self.sum, c.sum) = kahan_inc(other.sum, self.sum, c.sum);

        if self.uses_custom_buckets() {
            if custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
                add_buckets(
                    self.schema,
                    self.zero_threshold,
                    false,
                    &mut self.positive_spans,
                    &mut self.positive_buckets,
                    Some(&mut c.positive_buckets),
                    &other.positive_spans,
                    &other.positive_buckets,
                    None,
                );
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let bounds = intersect_custom_bucket_bounds(&self.custom_values, &other.custom_values);
                let (spans, buckets, cbuckets) = add_custom_buckets_with_mismatches(
                    false,
                    (&self.positive_spans, &self.positive_buckets, &self.custom_values),
                    (&other.positive_spans, &other.positive_buckets, &other.custom_values),
                    Some(&c.positive_buckets),
                    &bounds,
                );
                self.positive_spans = spans;
                self.positive_buckets = buckets;
                c.positive_buckets = cbuckets;
                self.custom_values = bounds.clone();
                c.custom_values = bounds;
            }
            c.positive_spans = self.positive_spans.clone();
            return Ok(outcome);
        }

        let mut o_pos = (other.positive_spans.clone(), other.positive_buckets.clone(), None::<Vec<f64>>);
        let mut o_neg = (other.negative_spans.clone(), other.negative_buckets.clone(), None::<Vec<f64>>);
        if other.schema < self.schema {
            let (s, b, cb) = kahan_reduce_resolution(
                &self.positive_spans,
                &self.positive_buckets,
                &c.positive_buckets,
                self.schema,
                other.schema,
            );
            (self.positive_spans, self.positive_buckets, c.positive_buckets) = (s, b, cb);
            let (s, b, cb) = kahan_reduce_resolution(
                &self.negative_spans,
                &self.negative_buckets,
                &c.negative_buckets,
                self.schema,
                other.schema,
            );
            (self.negative_spans, self.negative_buckets, c.negative_buckets) = (s, b, cb);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            for side in [&mut o_pos, &mut o_neg] {
                if !side.1.is_empty() {
                    let zeros = vec![0.0; side.1.len()];
                    let (s, b, cb) = kahan_reduce_resolution(&side.0, &side.1, &zeros, other.schema, self.schema);
                    *side = (s, b, Some(cb));
                }
            }
        }
        add_buckets(
            self.schema,
            self.zero_threshold,
            false,
            &mut self.positive_spans,
            &mut self.positive_buckets,
            Some(&mut c.positive_buckets),
            &o_pos.0,
            &o_pos.1,
            o_pos.2.as_deref(),
        );
        add_buckets(
            self.schema,
            self.zero_threshold,
            false,
            &mut self.negative_spans,
            &mut self.negative_buckets,
            Some(&mut c.negative_buckets),
            &o_neg.0,
            &o_neg.1,
            o_neg.2.as_deref(),
        );
        c.schema = self.schema;
        c.zero_threshold = self.zero_threshold;
        c.positive_spans = self.positive_spans.clone();
        c.negative_spans = self.negative_spans.clone();
        Ok(outcome)
    }

    /// A histogram with `self`'s layout and all values zero, to hold Kahan
    /// compensation terms.
    fn new_compensation_histogram(&self) -> FloatHistogram {
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: vec![0.0; self.positive_buckets.len()],
            negative_buckets: if self.uses_custom_buckets() {
                Vec::new()
            } else {
                vec![0.0; self.negative_buckets.len()]
            },
            ..FloatHistogram::default()
        }
    }

    /// Errors for operands that cannot be combined: a mix of exponential and
    /// custom buckets, or an invalid layout (where Prometheus would panic).
    fn check_operands(&self, other: &FloatHistogram) -> Result<(), HistogramOpError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramOpError::IncompatibleSchema);
        }
        self.check_layout()?;
        other.check_layout()?;
        Ok(())
    }

    /// The structural checks the layout algorithms need.
    fn check_layout(&self) -> Result<(), HistogramError> {
        if !is_valid_schema(self.schema) {
            return Err(HistogramError::InvalidSchema { schema: self.schema });
        }
        check_spans(&self.positive_spans, self.positive_buckets.len())?;
        check_spans(&self.negative_spans, self.negative_buckets.len())?;
        if self.uses_custom_buckets() {
            if let Some(s) = self.positive_spans.first().filter(|s| s.offset < 0) {
                return Err(HistogramError::SpanNegativeOffset { span: 1, offset: s.offset });
            }
        }
        Ok(())
    }

    /// Combines the counter-reset hints for adding or subtracting `other`
    /// (Prometheus' `adjustCounterReset`); true on a collision of
    /// `CounterReset` with `NotCounterReset`.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (h, o) = (self.counter_reset_hint, other.counter_reset_hint);
        if o == h || h == Gauge {
            return false;
        }
        if o == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if h == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        // Unknown in `other` is no collision; CounterReset vs NotCounterReset is.
        o != Unknown
    }

    /// The zero count `self` would have with the (larger or equal) zero
    /// threshold `larger`, the threshold actually needed (moved up to the
    /// upper bound of a populated bucket it would cut), and the Kahan
    /// compensation of that zero count (including `c`'s, if given).
    fn zero_count_for_larger_threshold(&self, mut larger: f64, c: Option<&FloatHistogram>) -> (f64, f64, f64) {
        let mut cz = c.map_or(0.0, |c| c.zero_count);
        if larger <= self.zero_threshold {
            return (self.zero_count, larger.max(self.zero_threshold), cz);
        }
        'outer: loop {
            let mut hz = self.zero_count;
            for (i, b) in self.positive_buckets_iter().enumerate() {
                if b.lower >= larger {
                    break;
                }
                (hz, cz) = kahan_inc(b.count, hz, cz);
                if let Some(c) = c {
                    (hz, cz) = kahan_inc(c.positive_buckets.get(i).copied().unwrap_or(0.0), hz, cz);
                }
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for (i, b) in self.negative_buckets_iter().enumerate() {
                if b.upper <= -larger {
                    break;
                }
                (hz, cz) = kahan_inc(b.count, hz, cz);
                if let Some(c) = c {
                    (hz, cz) = kahan_inc(c.negative_buckets.get(i).copied().unwrap_or(0.0), hz, cz);
                }
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (hz, larger, cz);
        }
    }

    /// Zeroes the buckets inside the zero bucket (their counts are already
    /// in the zero count) and compacts them away.
    fn trim_buckets_in_zero_bucket(&mut self, mut c: Option<&mut FloatHistogram>) {
        let zt = self.zero_threshold;
        let n_pos = self.positive_buckets_iter().take_while(|b| b.lower < zt).count();
        let n_neg = self.negative_buckets_iter().take_while(|b| b.upper > -zt).count();
        self.positive_buckets[..n_pos].iter_mut().for_each(|b| *b = 0.0);
        self.negative_buckets[..n_neg].iter_mut().for_each(|b| *b = 0.0);
        if let Some(c) = c.as_deref_mut() {
            c.positive_buckets.iter_mut().take(n_pos).for_each(|b| *b = 0.0);
            c.negative_buckets.iter_mut().take(n_neg).for_each(|b| *b = 0.0);
        }
        match c {
            Some(c) => self.kahan_compact(0, c),
            None => {
                self.compact(0);
            }
        }
    }

    /// Widens the zero buckets of `self` and (virtually) `other` until both
    /// have the same threshold at a bucket boundary of both. Changes `self`
    /// (and `c`); returns the zero count `other` would have, and its Kahan
    /// compensation.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram, mut c: Option<&mut FloatHistogram>) -> (f64, f64) {
        let mut other_zero = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        let mut other_c_zero = 0.0;
        while other_threshold != self.zero_threshold {
            if other_threshold.is_nan() || self.zero_threshold.is_nan() {
                // No threshold covers a NaN one; Prometheus would loop forever.
                break;
            }
            if self.zero_threshold > other_threshold {
                (other_zero, other_threshold, other_c_zero) =
                    other.zero_count_for_larger_threshold(self.zero_threshold, None);
            }
            if other_threshold > self.zero_threshold {
                let (z, t, cz) = self.zero_count_for_larger_threshold(other_threshold, c.as_deref());
                self.zero_count = z;
                self.zero_threshold = t;
                if let Some(c) = c.as_deref_mut() {
                    c.zero_count = cz;
                }
                self.trim_buckets_in_zero_bucket(c.as_deref_mut());
            }
        }
        (other_zero, other_c_zero)
    }

    /// Reduces the resolution of `self` (valid layout) in place.
    fn reduce_in_place(&mut self, target: i32) -> Result<(), HistogramError> {
        let (ps, pb) = reduce_resolution(&self.positive_spans, &self.positive_buckets, self.schema, target, false)?;
        let (ns, nb) = reduce_resolution(&self.negative_spans, &self.negative_buckets, self.schema, target, false)?;
        (self.positive_spans, self.positive_buckets, self.negative_spans, self.negative_buckets) = (ps, pb, ns, nb);
        self.schema = target;
        Ok(())
    }

    /// Merges buckets into the lower exponential schema `target`
    /// (Prometheus' `ReduceResolution`). Fails for custom buckets, a custom
    /// target, a target not below the current schema, or spans that
    /// disagree with the buckets (then `self` is unchanged).
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let mut h = FloatHistogram {
    ///     schema: 2,
    ///     count: 10.0,
    ///     positive_spans: vec![Span { offset: 0, length: 5 }],
    ///     positive_buckets: vec![1.0, 2.0, 3.0, 2.0, 2.0],
    ///     ..FloatHistogram::default()
    /// };
    /// h.reduce_resolution(0).unwrap();
    /// assert_eq!(h.positive_spans, vec![Span { offset: 0, length: 2 }]);
    /// assert_eq!(h.positive_buckets, vec![1.0, 9.0]);
    /// ```
    pub fn reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramOpError> {
        if self.uses_custom_buckets() {
            return Err(HistogramOpError::ReduceCustomBuckets);
        }
        if is_custom_buckets(target_schema) {
            return Err(HistogramOpError::ReduceToCustomBuckets);
        }
        if target_schema >= self.schema {
            return Err(HistogramOpError::NotLowerSchema { from: self.schema, to: target_schema });
        }
        Ok(self.reduce_in_place(target_schema)?)
    }

    /// A copy in the lower or equal schema `target_schema` (Prometheus'
    /// `CopyToSchema`). The copy's counter-reset hint is `Unknown`, as in
    /// Prometheus, except for an unchanged schema (a plain copy).
    pub fn copy_to_schema(&self, target_schema: i32) -> Result<FloatHistogram, HistogramOpError> {
        if target_schema == self.schema {
            return Ok(self.clone());
        }
        if self.uses_custom_buckets() {
            return Err(HistogramOpError::ReduceCustomBuckets);
        }
        if is_custom_buckets(target_schema) {
            return Err(HistogramOpError::ReduceToCustomBuckets);
        }
        if target_schema > self.schema {
            return Err(HistogramOpError::CopyToHigherSchema { from: self.schema, to: target_schema });
        }
        let (ps, pb) =
            reduce_resolution(&self.positive_spans, &self.positive_buckets, self.schema, target_schema, false)?;
        let (ns, nb) =
            reduce_resolution(&self.negative_spans, &self.negative_buckets, self.schema, target_schema, false)?;
        Ok(FloatHistogram {
            counter_reset_hint: CounterResetHint::Unknown,
            schema: target_schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive_spans: ps,
            negative_spans: ns,
            positive_buckets: pb,
            negative_buckets: nb,
            custom_values: Vec::new(),
        })
    }

    /// Removes empty buckets at the start and end of spans, merges spans at
    /// most `max_empty_buckets` apart (filling the gap with empty buckets)
    /// and splits spans at longer runs of empty buckets (Prometheus'
    /// `Compact`). A histogram whose spans disagree with its buckets is left
    /// unchanged.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let mut h = FloatHistogram {
    ///     positive_spans: vec![Span { offset: -1, length: 5 }],
    ///     positive_buckets: vec![0.0, 1.0, 0.0, 2.0, 0.0],
    ///     ..FloatHistogram::default()
    /// };
    /// h.compact(0);
    /// assert_eq!(h.positive_spans, vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 1 }]);
    /// assert_eq!(h.positive_buckets, vec![1.0, 2.0]);
    /// h.compact(1);
    /// assert_eq!(h.positive_spans, vec![Span { offset: 0, length: 3 }]);
    /// assert_eq!(h.positive_buckets, vec![1.0, 0.0, 2.0]);
    /// ```
    pub fn compact(&mut self, max_empty_buckets: usize) -> &mut Self {
        compact_buckets(&mut self.positive_buckets, None, &mut self.positive_spans, max_empty_buckets, false);
        compact_buckets(&mut self.negative_buckets, None, &mut self.negative_spans, max_empty_buckets, false);
        self
    }

    /// [`FloatHistogram::compact`] keeping the compensation buckets of `c`
    /// in step.
    fn kahan_compact(&mut self, max_empty_buckets: usize, c: &mut FloatHistogram) {
        compact_buckets(
            &mut self.positive_buckets,
            Some(&mut c.positive_buckets),
            &mut self.positive_spans,
            max_empty_buckets,
            false,
        );
        compact_buckets(
            &mut self.negative_buckets,
            Some(&mut c.negative_buckets),
            &mut self.negative_spans,
            max_empty_buckets,
            false,
        );
    }

    /// Whether `self` follows `previous` only after a counter reset
    /// (Prometheus' `DetectReset`). The hint decides if it is
    /// `CounterReset` (true) or `NotCounterReset` (false); otherwise (also
    /// for gauges) a reset is: a lower count; a switch from exponential to
    /// custom buckets; custom bounds that changed and a reconciled bucket
    /// that decreased; a higher schema; a lower zero threshold; a zero
    /// threshold that would cut a populated bucket of `previous`; a lower
    /// zero count (with `previous`' buckets inside the zero bucket added);
    /// or any bucket lower than in `previous` (with `previous` merged into
    /// the current schema). The sum is not looked at.
    ///
    /// ```
    /// use tidemark_storage::histogram::{FloatHistogram, Span};
    /// let prev = FloatHistogram {
    ///     count: 3.0,
    ///     positive_spans: vec![Span { offset: 0, length: 2 }],
    ///     positive_buckets: vec![1.0, 2.0],
    ///     ..FloatHistogram::default()
    /// };
    /// let mut curr = prev.clone();
    /// assert!(!curr.detect_reset(&prev));
    /// curr.positive_buckets = vec![2.0, 1.0];
    /// assert!(curr.detect_reset(&prev));
    /// ```
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bucket_bounds_match(&self.custom_values, &previous.custom_values) {
                return self.detect_reset_with_mismatched_custom_bounds(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero, new_threshold, _) = previous.zero_count_for_larger_threshold(self.zero_threshold, None);
        if new_threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < previous_zero {
            return true;
        }
        if !is_exponential_schema(self.schema) && !self.uses_custom_buckets() {
            // No bucket geometry to compare with (invalid schema).
            return false;
        }
        for positive in [true, false] {
            let curr = FloatBucketIter::new(self, positive, self.zero_threshold, self.schema);
            let prev = FloatBucketIter::new(previous, positive, self.zero_threshold, self.schema);
            if detect_reset_in_buckets(curr, prev) {
                return true;
            }
        }
        false
    }

    /// [`FloatHistogram::detect_reset`] for custom buckets with different
    /// bounds: compares cumulative counts at the bounds both have.
    fn detect_reset_with_mismatched_custom_bounds(&self, previous: &FloatHistogram) -> bool {
        if self.schema != CUSTOM_BUCKETS_SCHEMA || previous.schema != CUSTOM_BUCKETS_SCHEMA {
            return true;
        }
        struct Rollup<'a> {
            it: FloatBucketIter<'a>,
            started: bool,
            has_more: bool,
            bucket: Option<super::Bucket<f64>>,
        }
        impl Rollup<'_> {
            /// Sums the not yet counted buckets with upper bound ≤ `bound`.
            fn sum_to(&mut self, bound: f64) -> f64 {
                if self.started && !self.has_more {
                    return 0.0;
                }
                if !self.started {
                    self.started = true;
                    self.bucket = self.it.next();
                }
                let mut sum = 0.0;
                loop {
                    match self.bucket {
                        Some(b) if b.upper <= bound => {
                            sum += b.count;
                            self.bucket = self.it.next();
                        }
                        Some(_) => {
                            self.has_more = true;
                            return sum;
                        }
                        None => {
                            self.has_more = false;
                            return sum;
                        }
                    }
                }
            }
        }
        let new_rollup = |h| Rollup {
            it: FloatBucketIter::new(h, true, 0.0, CUSTOM_BUCKETS_SCHEMA),
            started: false,
            has_more: false,
            bucket: None,
        };
        let (mut curr, mut prev) = (new_rollup(self), new_rollup(previous));
        let (cb, pb) = (&self.custom_values, &previous.custom_values);
        let (mut ci, mut pi) = (0usize, 0usize);
        while ci <= cb.len() && pi <= pb.len() {
            let c_bound = cb.get(ci).copied().unwrap_or(f64::INFINITY);
            let p_bound = pb.get(pi).copied().unwrap_or(f64::INFINITY);
            if c_bound == p_bound {
                if curr.sum_to(c_bound) < prev.sum_to(c_bound) {
                    return true;
                }
                ci += 1;
                pi += 1;
            } else if c_bound < p_bound {
                ci += 1;
            } else {
                pi += 1;
            }
        }
        false
    }

    /// Whether `self` and `other` are the same histogram as data
    /// (Prometheus' `Equals`): schema, counts, sum, zero bucket and buckets
    /// equal, floats compared by bits (so NaN sums are equal, 0 and −0 are
    /// not), the same buckets even if spans split them differently, custom
    /// bounds compared for custom schemas. The hint is not compared.
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let same_bits =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        if self.schema != other.schema
            || self.count.to_bits() != other.count.to_bits()
            || self.sum.to_bits() != other.sum.to_bits()
        {
            return false;
        }
        if self.uses_custom_buckets() && !custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
            return false;
        }
        self.zero_threshold == other.zero_threshold
            && self.zero_count.to_bits() == other.zero_count.to_bits()
            && spans_match(&self.negative_spans, &other.negative_spans)
            && same_bits(&self.negative_buckets, &other.negative_buckets)
            && spans_match(&self.positive_spans, &other.positive_spans)
            && same_bits(&self.positive_buckets, &other.positive_buckets)
    }

    /// The memory Prometheus accounts for this histogram in query limits
    /// (`FloatHistogram.Size()`, 64-bit): 168 bytes plus 8 per span, bucket
    /// and custom bound. PromQL counts a histogram point as
    /// `(size + 8) / 16` samples.
    ///
    /// ```
    /// use tidemark_storage::histogram::FloatHistogram;
    /// assert_eq!(FloatHistogram::default().size(), 168);
    /// ```
    pub fn size(&self) -> usize {
        168 + 8
            * (self.positive_spans.len()
                + self.negative_spans.len()
                + self.positive_buckets.len()
                + self.negative_buckets.len()
                + self.custom_values.len())
    }

    /// Whether a count, the sum, a bucket or a custom bound is infinite
    /// (Prometheus' `HasOverflow`, checked after Kahan sums).
    pub fn has_overflow(&self) -> bool {
        self.zero_count.is_infinite()
            || self.count.is_infinite()
            || self.sum.is_infinite()
            || self.positive_buckets.iter().any(|v| v.is_infinite())
            || self.negative_buckets.iter().any(|v| v.is_infinite())
            || self.custom_values.iter().any(|v| v.is_infinite())
    }
}

/// Compares corresponding buckets of two iterators (same schema, same
/// side): a reset if `prev` has a populated bucket `curr` lacks or one with
/// a higher count.
fn detect_reset_in_buckets(mut curr: FloatBucketIter<'_>, mut prev: FloatBucketIter<'_>) -> bool {
    let Some(mut p) = prev.next_stripped() else { return false };
    let rest_populated = |mut p: (f64, i32), prev: &mut FloatBucketIter<'_>| loop {
        if p.0 != 0.0 {
            return true;
        }
        match prev.next_stripped() {
            Some(n) => p = n,
            None => return false,
        }
    };
    let Some(mut c) = curr.next_stripped() else { return rest_populated(p, &mut prev) };
    loop {
        while c.1 < p.1 {
            match curr.next_stripped() {
                Some(n) => c = n,
                None => return rest_populated(p, &mut prev),
            }
        }
        if c.1 > p.1 {
            if p.0 != 0.0 {
                return true;
            }
        } else if c.0 < p.0 {
            return true;
        }
        match prev.next_stripped() {
            Some(n) => p = n,
            None => return false,
        }
    }
}

/// The bounds both lists have, in order.
fn intersect_custom_bucket_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Adds (or subtracts) two custom-bucket layouts with different bounds by
/// mapping every bucket of both onto `bounds` (each bucket goes to the
/// first common bound at or above its upper bound; +Inf for the rest), with
/// Kahan sums. `comp_a` is A's compensation (for [`FloatHistogram::kahan_add`]).
/// Returns the spans, buckets and compensation of the result, without
/// empty buckets.
fn add_custom_buckets_with_mismatches(
    negative: bool,
    a: (&[Span], &[f64], &[f64]),
    b: (&[Span], &[f64], &[f64]),
    comp_a: Option<&[f64]>,
    bounds: &[f64],
) -> (Vec<Span>, Vec<f64>, Vec<f64>) {
    let n = bounds.len() + 1;
    let mut target = vec![0.0; n];
    let mut target_c = vec![0.0; n];
    let mut map = |spans: &[Span], buckets: &[f64], src_bounds: &[f64], negative: bool, comp: Option<&[f64]>| {
        let mut src_idx: i64 = 0;
        let mut bucket_idx = 0usize;
        let mut intersect_idx = 0usize;
        for span in spans {
            src_idx += i64::from(span.offset);
            for _ in 0..span.length {
                if let Some(&value) = buckets.get(bucket_idx) {
                    let mut t = n - 1;
                    if src_idx >= 0 && (src_idx as usize) < src_bounds.len() {
                        let src_bound = src_bounds[src_idx as usize];
                        while intersect_idx < bounds.len() {
                            if bounds[intersect_idx] >= src_bound {
                                t = intersect_idx;
                                break;
                            }
                            intersect_idx += 1;
                        }
                    }
                    if negative {
                        (target[t], target_c[t]) = kahan_inc(-value, target[t], target_c[t]);
                    } else {
                        (target[t], target_c[t]) = kahan_inc(value, target[t], target_c[t]);
                        if let Some(cv) = comp.and_then(|c| c.get(bucket_idx)) {
                            (target[t], target_c[t]) = kahan_inc(*cv, target[t], target_c[t]);
                        }
                    }
                }
                src_idx += 1;
                bucket_idx += 1;
            }
        }
    };
    map(a.0, a.1, a.2, false, comp_a);
    map(b.0, b.1, b.2, negative, None);

    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut comp = Vec::new();
    let mut last_idx: i32 = -1;
    for i in 0..n {
        if target[i] == 0.0 && target_c[i] == 0.0 {
            continue;
        }
        buckets.push(target[i]);
        comp.push(target_c[i]);
        let idx = i as i32;
        match spans.last_mut() {
            Some(s) if idx == last_idx + 1 => s.length += 1,
            Some(_) => spans.push(Span { offset: idx - last_idx - 1, length: 1 }),
            None => spans.push(Span { offset: idx, length: 1 }),
        }
        last_idx = idx;
    }
    (spans, buckets, comp)
}
