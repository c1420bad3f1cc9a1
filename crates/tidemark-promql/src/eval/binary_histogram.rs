//! Binary operators over native histograms (Prometheus' `vectorElemBinop`
//! with histogram operands, and the parts of `VectorBinop` and
//! `VectorscalarBinop` that carry them).
//!
//! Only vectors that hold histogram points take these paths: the matching
//! operators in `binary.rs` are generic over a [`Lane`], and a vector with
//! floats only is evaluated by the float lane exactly as before. What
//! Prometheus defines for histograms:
//!
//! - `h + h`, `h - h`: the histograms are added or subtracted (schemas
//!   reduced to the lower one, custom bounds reconciled with an info, the
//!   result compacted; a difference is always a gauge). A mix of exponential
//!   and custom buckets gives no result and the warning "incompatible
//!   bucket layout"; conflicting counter-reset hints give no result and the
//!   warning "conflicting counter resets".
//! - `h * f`, `f * h`, `h / f`: every count and the sum scaled (dividing by
//!   zero leaves ±Inf/NaN counts and no buckets), compacted.
//! - `h == h`, `h != h`: filters on the histograms being identical data;
//!   with `bool`, 1 or 0.
//! - Everything else with a histogram operand gives no result and the info
//!   "incompatible sample types encountered for binary operator".
//! - The set operators pass histograms through like floats.

use std::borrow::Cow;

use promql_parser::parser::Expr;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, HistogramOpError};
use tidemark_storage::Labels;

use super::binary::{elem_binop, BinOp, Lane};
use super::series::MixedBuilder;
use super::{Evaluator, StepSeries};
use crate::error::Error;
use crate::value::HistogramPoint;

/// The value of one series at one step: a float or a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum StepValue<'a> {
    /// A float sample.
    F(f64),
    /// A histogram sample.
    H(&'a FloatHistogram),
}

impl StepValue<'_> {
    /// The type name Prometheus' annotations use for the value.
    fn type_name(self) -> &'static str {
        match self {
            StepValue::F(_) => "float",
            StepValue::H(_) => "histogram",
        }
    }
}

/// The value an operator computed: a float, or a histogram (borrowed when
/// it is an operand passed through, as `==` does).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OutValue<'a> {
    /// A float result.
    F(f64),
    /// A histogram result.
    H(Cow<'a, FloatHistogram>),
}

/// Which histogram operation an annotation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HistogramOperation {
    Addition,
    Subtraction,
}

impl HistogramOperation {
    fn as_str(self) -> &'static str {
        match self {
            HistogramOperation::Addition => "addition",
            HistogramOperation::Subtraction => "subtraction",
        }
    }
}

/// An annotation an element-wise operation produced (Prometheus reports
/// the last one of each step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Note {
    /// Info: the operator is not defined for these sample types.
    IncompatibleTypes { lhs: &'static str, op: &'static str, rhs: &'static str },
    /// Warning: one operand said counter reset, the other not.
    CounterResetCollision(HistogramOperation),
    /// Info: custom bucket bounds were reconciled.
    MismatchedCustomBuckets(HistogramOperation),
    /// Warning: exponential and custom buckets cannot be combined.
    IncompatibleBucketLayout(&'static str),
}

impl Note {
    /// Whether Prometheus reports it as a warning (else an info).
    pub(super) fn is_warning(&self) -> bool {
        matches!(self, Note::CounterResetCollision(_) | Note::IncompatibleBucketLayout(_))
    }

    /// The message, as Prometheus writes it.
    pub(super) fn message(&self) -> String {
        match self {
            Note::IncompatibleTypes { lhs, op, rhs } => {
                format!("incompatible sample types encountered for binary operator \"{op}\": {lhs} {op} {rhs}")
            }
            Note::CounterResetCollision(o) => format!("conflicting counter resets during histogram {}", o.as_str()),
            Note::MismatchedCustomBuckets(o) => {
                format!("mismatched custom buckets were reconciled during {}", o.as_str())
            }
            Note::IncompatibleBucketLayout(op) => {
                format!("incompatible bucket layout encountered for binary operator {op}")
            }
        }
    }

    /// Adds the annotation to the query's, at the binary expression `at`.
    pub(super) fn report(&self, ev: &Evaluator<'_, '_>, at: &Expr) {
        if self.is_warning() {
            ev.sh.warn(self.message(), at);
        } else {
            ev.sh.info(self.message(), at);
        }
    }
}

/// What one element-wise operation gave: a value, whether a comparison
/// held (always true for arithmetic) and an annotation that goes with the
/// kept value.
pub(super) type Combined<'a> = (OutValue<'a>, bool, Option<Note>);

/// Applies `op` to one pair of values (Prometheus' `vectorElemBinop`):
/// `Err` is no result, with the annotation saying why (none for an invalid
/// histogram, which Prometheus never stores).
pub(super) fn combine<'a>(op: BinOp, l: StepValue<'a>, r: StepValue<'a>) -> Result<Combined<'a>, Option<Note>> {
    let incompatible = || Some(Note::IncompatibleTypes { lhs: l.type_name(), op: op.token(), rhs: r.type_name() });
    match (l, r) {
        (StepValue::F(a), StepValue::F(b)) => {
            let (v, keep) = elem_binop(op, a, b);
            Ok((OutValue::F(v), keep, None))
        }
        (StepValue::F(f), StepValue::H(h)) | (StepValue::H(h), StepValue::F(f)) => {
            let scaled = match (op, l) {
                (BinOp::Mul, _) => {
                    let mut out = h.clone();
                    out.mul(f).compact(0);
                    out
                }
                (BinOp::Div, StepValue::H(_)) => {
                    let mut out = h.clone();
                    out.div(f).compact(0);
                    out
                }
                _ => return Err(incompatible()),
            };
            Ok((OutValue::H(Cow::Owned(scaled)), true, None))
        }
        (StepValue::H(a), StepValue::H(b)) => match op {
            BinOp::Add | BinOp::Sub => {
                let (operation, sub) = if op == BinOp::Add {
                    (HistogramOperation::Addition, false)
                } else {
                    (HistogramOperation::Subtraction, true)
                };
                let mut res = a.clone();
                let outcome = if sub { res.sub(b) } else { res.add(b) };
                let outcome = match outcome {
                    Ok(o) => o,
                    Err(HistogramOpError::IncompatibleSchema) => {
                        return Err(Some(Note::IncompatibleBucketLayout(op.token())))
                    }
                    Err(_) => return Err(None),
                };
                if sub {
                    res.counter_reset_hint = CounterResetHint::Gauge;
                }
                if outcome.counter_reset_collision {
                    // Prometheus returns the warning as the operation's
                    // error, and `VectorBinop` drops the result.
                    return Err(Some(Note::CounterResetCollision(operation)));
                }
                res.compact(0);
                let note = outcome.nhcb_bounds_reconciled.then_some(Note::MismatchedCustomBuckets(operation));
                Ok((OutValue::H(Cow::Owned(res)), true, note))
            }
            BinOp::Eq => Ok((OutValue::H(Cow::Borrowed(a)), a.equals(b), None)),
            BinOp::Ne => Ok((OutValue::H(Cow::Borrowed(a)), !a.equals(b), None)),
            _ => Err(incompatible()),
        },
    }
}

/// Walks the float and histogram points of many series step by step.
pub(super) struct MixedCursor {
    floats: Vec<usize>,
    histograms: Vec<usize>,
}

impl MixedCursor {
    fn new(n: usize) -> MixedCursor {
        MixedCursor { floats: vec![0; n], histograms: vec![0; n] }
    }

    /// The value of series `i` at `t`; times must be asked in increasing
    /// order per series.
    fn value_at<'s>(&mut self, series: &'s [StepSeries], i: usize, t: i64) -> Option<StepValue<'s>> {
        let s = &series[i];
        let p = &mut self.floats[i];
        while *p < s.points.len() && s.points[*p].t < t {
            *p += 1;
        }
        if *p < s.points.len() && s.points[*p].t == t {
            return Some(StepValue::F(s.points[*p].v));
        }
        let p = &mut self.histograms[i];
        while *p < s.histograms.len() && s.histograms[*p].t < t {
            *p += 1;
        }
        if *p < s.histograms.len() && s.histograms[*p].t == t {
            return Some(StepValue::H(&s.histograms[*p].h));
        }
        None
    }
}

/// Adds an operator's output value to `out`.
fn push_out(out: &mut MixedBuilder, labels: &Labels, drop_name: bool, t: i64, v: OutValue<'_>) -> Result<(), Error> {
    match v {
        OutValue::F(v) => out.push(labels, drop_name, t, v),
        OutValue::H(h) => out.push_histogram(labels, drop_name, t, h.into_owned()),
    }
}

/// The lane of vectors with histogram points: values are floats or
/// histograms, and each step reports the last annotation its operations
/// produced (Prometheus keeps one error per step).
#[derive(Default)]
pub(super) struct MixedLane {
    out: MixedBuilder,
    note: Option<Note>,
}

impl<'s> Lane<'s> for MixedLane {
    type V = StepValue<'s>;
    type Out = OutValue<'s>;
    type Cursor = MixedCursor;

    fn cursor(n: usize) -> MixedCursor {
        MixedCursor::new(n)
    }

    #[inline]
    fn read(c: &mut MixedCursor, series: &'s [StepSeries], i: usize, t: i64) -> Option<StepValue<'s>> {
        c.value_at(series, i, t)
    }

    fn fill(v: f64) -> StepValue<'s> {
        StepValue::F(v)
    }

    fn combine(&mut self, op: BinOp, l: StepValue<'s>, r: StepValue<'s>) -> Option<(OutValue<'s>, bool)> {
        match combine(op, l, r) {
            Ok((v, keep, note)) => {
                if note.is_some() {
                    self.note = note;
                }
                Some((v, keep))
            }
            Err(note) => {
                if note.is_some() {
                    self.note = note;
                }
                None
            }
        }
    }

    fn bool_value(keep: bool) -> OutValue<'s> {
        OutValue::F(if keep { 1.0 } else { 0.0 })
    }

    fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: OutValue<'s>) -> Result<(), Error> {
        push_out(&mut self.out, labels, drop_name, t, v)
    }

    fn push_input(&mut self, labels: &Labels, drop_name: bool, t: i64, v: StepValue<'s>) -> Result<(), Error> {
        let v = match v {
            StepValue::F(f) => OutValue::F(f),
            StepValue::H(h) => OutValue::H(Cow::Borrowed(h)),
        };
        push_out(&mut self.out, labels, drop_name, t, v)
    }

    fn end_step(&mut self, ev: &Evaluator<'_, '_>, at: &Expr) {
        if let Some(note) = self.note.take() {
            note.report(ev, at);
        }
    }

    fn finish(self) -> Vec<StepSeries> {
        self.out.finish()
    }
}

/// Whether any of the series has a histogram point.
pub(super) fn any_histograms(series: &[StepSeries]) -> bool {
    series.iter().any(|s| !s.histograms.is_empty())
}

/// Unary minus on histogram points (Prometheus multiplies each by −1,
/// which makes it a gauge).
pub(super) fn negate_histograms(points: &mut [HistogramPoint]) {
    for p in points {
        p.h.mul(-1.0);
    }
}

/// What a vector ∘ scalar operation does to a histogram point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarRule {
    /// Multiplies it by the scalar (`h * f`, `f * h`).
    Mul,
    /// Divides it by the scalar (`h / f`).
    Div,
}

impl ScalarRule {
    /// The rule for `op` (`swap`: the scalar is the left operand), or the
    /// info a histogram point is dropped with: the only cases [`combine`]
    /// defines for a histogram and a float, comparisons (with `bool` too)
    /// being undefined.
    fn of(op: BinOp, swap: bool) -> Result<ScalarRule, Note> {
        match (op, swap) {
            (BinOp::Mul, _) => Ok(ScalarRule::Mul),
            (BinOp::Div, false) => Ok(ScalarRule::Div),
            _ => {
                let (lhs, rhs) = if swap { ("float", "histogram") } else { ("histogram", "float") };
                Err(Note::IncompatibleTypes { lhs, op: op.token(), rhs })
            }
        }
    }

    /// Applies the rule to `h` in place, compacting it after.
    fn apply(self, h: &mut FloatHistogram, f: f64) {
        match self {
            ScalarRule::Mul => h.mul(f),
            ScalarRule::Div => h.div(f),
        }
        .compact(0);
    }
}

impl Evaluator<'_, '_> {
    /// The histogram points of `s` combined with a scalar (`swap`: the
    /// scalar is the left operand), as Prometheus' `VectorscalarBinop`
    /// does: scaled in place (the points are this node's own), or all
    /// dropped with the info returned.
    pub(super) fn histograms_with_scalar(
        &self,
        op: BinOp,
        s: &mut StepSeries,
        scalar: &[f64],
        swap: bool,
    ) -> Option<Note> {
        match ScalarRule::of(op, swap) {
            Ok(rule) => {
                for p in &mut s.histograms {
                    rule.apply(&mut p.h, scalar[self.step_of(p.t)]);
                }
                None
            }
            Err(note) => {
                s.histograms = Vec::new();
                Some(note)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tidemark_storage::histogram::Span;
    use tidemark_storage::Sample;

    use super::*;

    fn h(schema: i32, count: f64, sum: f64, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count,
            sum,
            positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    fn nhcb(bounds: &[f64], buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema: tidemark_storage::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: buckets.iter().sum(),
            sum: 1.0,
            positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
            positive_buckets: buckets.to_vec(),
            custom_values: bounds.to_vec(),
            ..FloatHistogram::default()
        }
    }

    fn hist(r: Result<Combined<'_>, Option<Note>>) -> FloatHistogram {
        match r {
            Ok((OutValue::H(h), true, None)) => h.into_owned(),
            other => panic!("expected a histogram, got {other:?}"),
        }
    }

    #[test]
    fn scaling_by_a_scalar_on_either_side() {
        let a = h(0, 4.0, 6.0, &[1.0, 3.0]);
        let doubled = hist(combine(BinOp::Mul, StepValue::H(&a), StepValue::F(2.0)));
        assert_eq!((doubled.count, doubled.sum, doubled.positive_buckets.clone()), (8.0, 12.0, vec![2.0, 6.0]));
        assert_eq!(hist(combine(BinOp::Mul, StepValue::F(2.0), StepValue::H(&a))), doubled);
        let halved = hist(combine(BinOp::Div, StepValue::H(&a), StepValue::F(2.0)));
        assert_eq!(halved.positive_buckets, vec![0.5, 1.5]);
        // A negative factor makes a gauge.
        let neg = hist(combine(BinOp::Mul, StepValue::H(&a), StepValue::F(-1.0)));
        assert_eq!(neg.counter_reset_hint, CounterResetHint::Gauge);
        // Multiplying by zero keeps the (now empty) buckets; compaction at
        // zero tolerance drops them only when spans allow.
        let zero = hist(combine(BinOp::Mul, StepValue::H(&a), StepValue::F(0.0)));
        assert_eq!(zero.count, 0.0);
        // Division by zero: infinite counts, no buckets.
        let inf = hist(combine(BinOp::Div, StepValue::H(&a), StepValue::F(0.0)));
        assert!(inf.count.is_infinite() && inf.positive_buckets.is_empty() && inf.positive_spans.is_empty());
    }

    #[test]
    fn undefined_operations_give_the_incompatible_types_info() {
        let a = h(0, 4.0, 6.0, &[1.0, 3.0]);
        let cases = [
            (BinOp::Div, StepValue::F(1.0), StepValue::H(&a), "float / histogram"),
            (BinOp::Add, StepValue::H(&a), StepValue::F(1.0), "histogram + float"),
            (BinOp::Sub, StepValue::F(1.0), StepValue::H(&a), "float - histogram"),
            (BinOp::Mul, StepValue::H(&a), StepValue::H(&a), "histogram * histogram"),
            (BinOp::Div, StepValue::H(&a), StepValue::H(&a), "histogram / histogram"),
            (BinOp::Gt, StepValue::H(&a), StepValue::H(&a), "histogram > histogram"),
            (BinOp::Eq, StepValue::H(&a), StepValue::F(3.0), "histogram == float"),
            (BinOp::Le, StepValue::F(3.0), StepValue::H(&a), "float <= histogram"),
            (BinOp::Pow, StepValue::H(&a), StepValue::F(3.0), "histogram ^ float"),
            (BinOp::Mod, StepValue::H(&a), StepValue::F(3.0), "histogram % float"),
            (BinOp::Atan2, StepValue::H(&a), StepValue::H(&a), "histogram atan2 histogram"),
        ];
        for (op, l, r, text) in cases {
            let Err(Some(note)) = combine(op, l, r) else { panic!("{text}: expected no result") };
            assert!(!note.is_warning(), "{text}");
            let op = op.token();
            assert_eq!(
                note.message(),
                format!("incompatible sample types encountered for binary operator \"{op}\": {text}")
            );
        }
    }

    #[test]
    fn addition_and_subtraction_of_histograms() {
        let a = h(1, 4.0, 6.0, &[1.0, 1.0, 2.0]);
        let b = h(0, 2.0, 1.0, &[2.0]);
        // Schema 1 is reduced to 0: its buckets (1,1.41] and (1.41,2]
        // join into (1,2].
        let sum = hist(combine(BinOp::Add, StepValue::H(&a), StepValue::H(&b)));
        assert_eq!((sum.schema, sum.count, sum.sum), (0, 6.0, 7.0));
        assert_eq!(sum.positive_buckets, vec![3.0, 3.0]);
        let diff = hist(combine(BinOp::Sub, StepValue::H(&a), StepValue::H(&b)));
        assert_eq!((diff.count, diff.sum), (2.0, 5.0));
        assert_eq!(diff.counter_reset_hint, CounterResetHint::Gauge, "a difference is always a gauge");
        assert_eq!(sum.counter_reset_hint, CounterResetHint::Unknown);
    }

    #[test]
    fn counter_reset_collision_drops_the_result_with_a_warning() {
        let mut a = h(0, 4.0, 6.0, &[1.0, 3.0]);
        a.counter_reset_hint = CounterResetHint::CounterReset;
        let mut b = a.clone();
        b.counter_reset_hint = CounterResetHint::NotCounterReset;
        let Err(Some(note)) = combine(BinOp::Add, StepValue::H(&a), StepValue::H(&b)) else { panic!() };
        assert!(note.is_warning());
        assert_eq!(note.message(), "conflicting counter resets during histogram addition");
        let Err(Some(note)) = combine(BinOp::Sub, StepValue::H(&a), StepValue::H(&b)) else { panic!() };
        assert_eq!(note.message(), "conflicting counter resets during histogram subtraction");
    }

    #[test]
    fn custom_buckets_reconciled_or_incompatible() {
        let a = nhcb(&[5.0, 10.0], &[1.0, 1.0, 1.0]);
        let b = nhcb(&[10.0], &[1.0, 1.0]);
        let Ok((OutValue::H(sum), true, Some(note))) = combine(BinOp::Add, StepValue::H(&a), StepValue::H(&b)) else {
            panic!()
        };
        assert_eq!(sum.custom_values, vec![10.0]);
        assert_eq!(sum.positive_buckets, vec![3.0, 2.0]);
        assert!(!note.is_warning());
        assert_eq!(note.message(), "mismatched custom buckets were reconciled during addition");
        let exp = h(0, 4.0, 6.0, &[1.0, 3.0]);
        let Err(Some(note)) = combine(BinOp::Sub, StepValue::H(&exp), StepValue::H(&b)) else { panic!() };
        assert!(note.is_warning());
        assert_eq!(note.message(), "incompatible bucket layout encountered for binary operator -");
    }

    #[test]
    fn equality_compares_histogram_data() {
        let a = h(0, 4.0, 6.0, &[1.0, 3.0]);
        let mut b = a.clone();
        b.counter_reset_hint = CounterResetHint::Gauge;
        let Ok((OutValue::H(v), keep, None)) = combine(BinOp::Eq, StepValue::H(&a), StepValue::H(&b)) else { panic!() };
        assert!(keep, "the hint is not compared");
        assert!(matches!(v, Cow::Borrowed(x) if std::ptr::eq(x, &a)), "the left operand is the value");
        let c = h(0, 4.0, 6.0, &[2.0, 2.0]);
        assert!(matches!(combine(BinOp::Eq, StepValue::H(&a), StepValue::H(&c)), Ok((_, false, None))));
        assert!(matches!(combine(BinOp::Ne, StepValue::H(&a), StepValue::H(&c)), Ok((_, true, None))));
    }

    /// The in-place vector ∘ scalar path gives what [`combine`] gives.
    #[test]
    fn histograms_with_scalar_agrees_with_combine() {
        let x = h(0, 4.0, 6.0, &[1.0, 0.0, 3.0]);
        let ops = [
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Mod,
            BinOp::Pow,
            BinOp::Atan2,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Gt,
            BinOp::Lt,
            BinOp::Ge,
            BinOp::Le,
        ];
        for op in ops {
            for swap in [false, true] {
                for f in [2.0, -0.5, 0.0, f64::NAN] {
                    let (l, r) =
                        if swap { (StepValue::F(f), StepValue::H(&x)) } else { (StepValue::H(&x), StepValue::F(f)) };
                    let expected = combine(op, l, r);
                    let got = ScalarRule::of(op, swap).map(|rule| {
                        let mut g = x.clone();
                        rule.apply(&mut g, f);
                        g
                    });
                    match (expected, got) {
                        (Ok((OutValue::H(e), true, None)), Ok(g)) => {
                            assert!(e.equals(&g) && e.counter_reset_hint == g.counter_reset_hint, "{op:?} {swap} {f}")
                        }
                        (Err(Some(e)), Err(g)) => assert_eq!(e, g, "{op:?} {swap} {f}"),
                        (e, g) => panic!("{op:?} swap={swap} {f}: combine {e:?}, in place {g:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn floats_combine_as_before() {
        assert_eq!(combine(BinOp::Add, StepValue::F(1.0), StepValue::F(2.0)), Ok((OutValue::F(3.0), true, None)));
        assert_eq!(combine(BinOp::Gt, StepValue::F(1.0), StepValue::F(2.0)), Ok((OutValue::F(1.0), false, None)));
    }

    #[test]
    fn builder_rejects_two_values_at_one_step() {
        let mut b = MixedBuilder::default();
        let l = Labels::from_sorted([("a", "b")]);
        let x = h(0, 1.0, 1.0, &[1.0]);
        push_out(&mut b, &l, false, 10, OutValue::F(1.0)).unwrap();
        assert!(push_out(&mut b, &l, false, 10, OutValue::H(Cow::Borrowed(&x))).is_err());
        push_out(&mut b, &l, true, 20, OutValue::H(Cow::Borrowed(&x))).unwrap();
        assert!(push_out(&mut b, &l, false, 20, OutValue::F(2.0)).is_err());
        let out = b.finish();
        assert_eq!(out.len(), 1);
        assert!(out[0].drop_name);
        assert_eq!((out[0].points.len(), out[0].histograms.len()), (1, 1));
    }

    #[test]
    fn cursor_reads_floats_and_histograms() {
        let x = h(0, 1.0, 1.0, &[1.0]);
        let s = StepSeries {
            labels: Labels::empty(),
            drop_name: false,
            points: vec![Sample { t: 10, v: 1.0 }, Sample { t: 30, v: 3.0 }],
            histograms: vec![HistogramPoint { t: 20, h: x.clone() }],
        };
        let series = [s];
        let mut c = MixedCursor::new(1);
        assert_eq!(c.value_at(&series, 0, 0), None);
        assert_eq!(c.value_at(&series, 0, 10), Some(StepValue::F(1.0)));
        assert_eq!(c.value_at(&series, 0, 20), Some(StepValue::H(&x)));
        assert_eq!(c.value_at(&series, 0, 25), None);
        assert_eq!(c.value_at(&series, 0, 30), Some(StepValue::F(3.0)));
        assert_eq!(c.value_at(&series, 0, 40), None);
    }
}
