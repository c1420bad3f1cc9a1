//! Binary operators: arithmetic, comparison (with and without `bool`), the
//! set operators, and vector matching (`on`/`ignoring`, `group_left`/`group_right`).

use std::collections::HashMap;

use promql_parser::parser::{BinaryExpr, Expr, LabelModifier, VectorMatchCardinality};
use tidemark_storage::{Labels, Sample, METRIC_NAME};

use super::binary_histogram::{any_histograms, MixedLane};
use super::series::{SeriesBuilder, StepCursor};
use super::{drop_metric_name, Evaluator, StepSeries, Val};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    fn from_token(s: &str) -> Option<BinOp> {
        Some(match s {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" => BinOp::Gt,
            "<" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "and" => BinOp::And,
            "or" => BinOp::Or,
            "unless" => BinOp::Unless,
            _ => return None,
        })
    }

    /// The operator as written in a query.
    pub(super) fn token(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    pub(super) fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// Arithmetic changes what the value means, so the metric name goes.
    fn changes_metric_schema(self) -> bool {
        matches!(self, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod | BinOp::Atan2)
    }
}

/// Go's `math.Mod`: the result has the sign of `x`.
fn go_mod(x: f64, y: f64) -> f64 {
    x % y
}

/// Applies an arithmetic or comparison operator to two floats: the value
/// and, for comparisons, whether the comparison holds.
pub(super) fn elem_binop(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Pow => (go_pow(l, r), true),
        BinOp::Mod => (go_mod(l, r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// Go's `math.Pow`, which differs from C's `pow` in a few special cases.
fn go_pow(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 1.0;
    }
    if y.is_nan() || x.is_nan() {
        return f64::NAN;
    }
    if x == -1.0 && y.is_infinite() {
        return 1.0;
    }
    x.powf(y)
}

/// How two vectors are matched.
struct Matching {
    card: Card,
    on: bool,
    names: Vec<String>,
    include: Vec<String>,
    /// `fill_left(v)` / `fill(v)`: value for a missing left-hand sample.
    fill_lhs: Option<f64>,
    /// `fill_right(v)` / `fill(v)`: value for a missing right-hand sample.
    fill_rhs: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

impl Matching {
    fn of(b: &BinaryExpr, op: BinOp) -> Matching {
        let (mut card, mut include, on, names) = match &b.modifier {
            None => (Card::OneToOne, Vec::new(), false, Vec::new()),
            Some(m) => {
                let (card, include) = match &m.card {
                    VectorMatchCardinality::OneToOne => (Card::OneToOne, Vec::new()),
                    VectorMatchCardinality::ManyToOne(l) => (Card::ManyToOne, l.labels.clone()),
                    VectorMatchCardinality::OneToMany(l) => (Card::OneToMany, l.labels.clone()),
                    VectorMatchCardinality::ManyToMany => (Card::ManyToMany, Vec::new()),
                };
                let (on, names) = match &m.matching {
                    None => (false, Vec::new()),
                    Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                    Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                };
                (card, include, on, names)
            }
        };
        if op.is_set() {
            card = Card::ManyToMany;
            include.clear();
        }
        let fills = b.modifier.as_ref().map(|m| (m.fill_values.lhs, m.fill_values.rhs)).unwrap_or_default();
        Matching { card, on, names, include, fill_lhs: fills.0, fill_rhs: fills.1 }
    }

    /// The join signature of a series.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            Labels::from_sorted(l.iter().filter(|x| self.names.iter().any(|n| n == x.name)).map(|x| (x.name, x.value)))
        } else {
            Labels::from_sorted(
                l.iter()
                    .filter(|x| x.name != METRIC_NAME && !self.names.iter().any(|n| n == x.name))
                    .map(|x| (x.name, x.value)),
            )
        }
    }
}

/// How the matching operators read and write the values of one kind of
/// vector. The float lane ([`FloatLane`]) is for vectors of floats only,
/// so their evaluation stays what it was before histograms; vectors with
/// histogram points take [`MixedLane`].
pub(super) trait Lane<'s> {
    /// A value read from an input series at one step.
    type V: Copy;
    /// A value an operator computed.
    type Out;
    /// Position of each input series in its points.
    type Cursor;

    /// A cursor over `n` series.
    fn cursor(n: usize) -> Self::Cursor;
    /// The value of series `i` at `t` (times ascending per series).
    fn read(c: &mut Self::Cursor, series: &'s [StepSeries], i: usize, t: i64) -> Option<Self::V>;
    /// A `fill` modifier's value as an operand.
    fn fill(v: f64) -> Self::V;
    /// `l op r` and whether a comparison held; `None` when there is no
    /// result (the lane remembers any annotation for [`Lane::end_step`]).
    fn combine(&mut self, op: BinOp, l: Self::V, r: Self::V) -> Option<(Self::Out, bool)>;
    /// The value of a `bool` comparison.
    fn bool_value(keep: bool) -> Self::Out;
    /// Adds a computed value to the output.
    fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: Self::Out) -> Result<(), Error>;
    /// Adds an input value, unchanged, to the output (set operators).
    fn push_input(&mut self, labels: &Labels, drop_name: bool, t: i64, v: Self::V) -> Result<(), Error>;
    /// Reports what the step's operations left to report.
    fn end_step(&mut self, ev: &Evaluator<'_, '_>, at: &Expr);
    /// The output series.
    fn finish(self) -> Vec<StepSeries>;
}

/// The lane of vectors without histograms.
#[derive(Default)]
struct FloatLane {
    out: SeriesBuilder,
}

impl<'s> Lane<'s> for FloatLane {
    type V = f64;
    type Out = f64;
    type Cursor = StepCursor;

    fn cursor(n: usize) -> StepCursor {
        StepCursor::new(n)
    }

    #[inline]
    fn read(c: &mut StepCursor, series: &'s [StepSeries], i: usize, t: i64) -> Option<f64> {
        c.value_at(series, i, t)
    }

    #[inline]
    fn fill(v: f64) -> f64 {
        v
    }

    #[inline]
    fn combine(&mut self, op: BinOp, l: f64, r: f64) -> Option<(f64, bool)> {
        Some(elem_binop(op, l, r))
    }

    #[inline]
    fn bool_value(keep: bool) -> f64 {
        if keep {
            1.0
        } else {
            0.0
        }
    }

    #[inline]
    fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: f64) -> Result<(), Error> {
        self.out.push(labels, drop_name, t, v)
    }

    #[inline]
    fn push_input(&mut self, labels: &Labels, drop_name: bool, t: i64, v: f64) -> Result<(), Error> {
        self.out.push(labels, drop_name, t, v)
    }

    #[inline]
    fn end_step(&mut self, _: &Evaluator<'_, '_>, _: &Expr) {}

    fn finish(self) -> Vec<StepSeries> {
        self.out.finish()
    }
}

impl Evaluator<'_, '_> {
    pub(crate) fn eval_binary(&self, e: &Expr, b: &BinaryExpr) -> Result<Val, Error> {
        let tok = b.op.to_string();
        let op = BinOp::from_token(&tok).ok_or_else(|| Error::InvalidQuery(format!("unknown operator {tok:?}")))?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&a, &b)| {
                        let (v, keep) = elem_binop(op, a, b);
                        if op.is_comparison() {
                            if keep {
                                1.0
                            } else {
                                0.0
                            }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(l), Val::Scalar(r)) => self.vector_scalar(e, op, l, &r, false, return_bool).map(Val::Vector),
            (Val::Scalar(l), Val::Vector(r)) => self.vector_scalar(e, op, r, &l, true, return_bool).map(Val::Vector),
            (Val::Vector(l), Val::Vector(r)) => {
                let m = Matching::of(b, op);
                let mixed = any_histograms(&l) || any_histograms(&r);
                let out = match (op.is_set(), mixed) {
                    (true, false) => self.vector_set(op, &m, FloatLane::default(), &l, &r)?,
                    (true, true) => self.vector_set(op, &m, MixedLane::default(), &l, &r)?,
                    (false, false) => self.vector_binop(e, op, &m, return_bool, FloatLane::default(), &l, &r)?,
                    (false, true) => self.vector_binop(e, op, &m, return_bool, MixedLane::default(), &l, &r)?,
                };
                Ok(Val::Vector(out))
            }
            (l, r) => Err(Error::InvalidQuery(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    /// Vector ∘ scalar (or scalar ∘ vector when `swap`).
    fn vector_scalar(
        &self,
        e: &Expr,
        op: BinOp,
        mut series: Vec<StepSeries>,
        scalar: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Vec<StepSeries>, Error> {
        let mut note = None;
        for s in &mut series {
            if !s.histograms.is_empty() {
                if let Some(n) = self.histograms_with_scalar(op, s, scalar, swap) {
                    note = Some(n);
                }
            }
            let mut kept = 0;
            for i in 0..s.points.len() {
                let p = s.points[i];
                let sv = scalar[self.step_of(p.t)];
                let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
                let (mut v, mut keep) = elem_binop(op, l, r);
                if op.is_comparison() && swap {
                    v = r;
                }
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if keep {
                    s.points[kept] = Sample { t: p.t, v };
                    kept += 1;
                }
            }
            s.points.truncate(kept);
            if op.changes_metric_schema() || return_bool {
                self.mark_drop_name(s);
            }
        }
        // Every point dropped for the same reason: one annotation.
        if let Some(n) = note {
            n.report(self, e);
        }
        series.retain(|s| !s.points.is_empty() || !s.histograms.is_empty());
        if !self.sh.delayed_name_removal() && (op.changes_metric_schema() || return_bool) {
            series = super::series::merge_same_labels(series)?;
        }
        Ok(series)
    }

    /// Assigns every series of both sides a signature ordinal.
    fn ordinals(&self, m: &Matching, l: &[StepSeries], r: &[StepSeries]) -> (Vec<usize>, Vec<usize>, usize) {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut ord = |s: &StepSeries| {
            let sig = m.signature(&s.labels);
            let n = index.len();
            *index.entry(sig).or_insert(n)
        };
        let lo: Vec<usize> = l.iter().map(&mut ord).collect();
        let ro: Vec<usize> = r.iter().map(&mut ord).collect();
        let n = index.len();
        (lo, ro, n)
    }

    fn vector_set<'s, L: Lane<'s>>(
        &self,
        op: BinOp,
        m: &Matching,
        mut lane: L,
        l: &'s [StepSeries],
        r: &'s [StepSeries],
    ) -> Result<Vec<StepSeries>, Error> {
        let (lo, ro, nsig) = self.ordinals(m, l, r);
        let mut lc = L::cursor(l.len());
        let mut rc = L::cursor(r.len());
        let mut present = vec![false; nsig];
        let mut lhs_step: Vec<(usize, L::V)> = Vec::new();
        let mut rhs_step: Vec<(usize, L::V)> = Vec::new();
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            lhs_step.clear();
            rhs_step.clear();
            for i in 0..l.len() {
                if let Some(v) = L::read(&mut lc, l, i, t) {
                    lhs_step.push((i, v));
                }
            }
            for i in 0..r.len() {
                if let Some(v) = L::read(&mut rc, r, i, t) {
                    rhs_step.push((i, v));
                }
            }
            present.iter_mut().for_each(|p| *p = false);
            match op {
                BinOp::And => {
                    if lhs_step.is_empty() || rhs_step.is_empty() {
                        continue;
                    }
                    for &(i, _) in &rhs_step {
                        present[ro[i]] = true;
                    }
                    for &(i, v) in &lhs_step {
                        if present[lo[i]] {
                            lane.push_input(&l[i].labels, l[i].drop_name, t, v)?;
                        }
                    }
                }
                BinOp::Or => {
                    for &(i, v) in &lhs_step {
                        present[lo[i]] = true;
                        lane.push_input(&l[i].labels, l[i].drop_name, t, v)?;
                    }
                    for &(i, v) in &rhs_step {
                        if !present[ro[i]] {
                            lane.push_input(&r[i].labels, r[i].drop_name, t, v)?;
                        }
                    }
                }
                _ => {
                    for &(i, _) in &rhs_step {
                        present[ro[i]] = true;
                    }
                    for &(i, v) in &lhs_step {
                        if !present[lo[i]] {
                            lane.push_input(&l[i].labels, l[i].drop_name, t, v)?;
                        }
                    }
                }
            }
        }
        let out = lane.finish();
        self.sh.hold(super::series::total_points(&out))?;
        Ok(out)
    }

    /// Arithmetic and comparison between two vectors (Prometheus' `VectorBinop`).
    #[allow(clippy::too_many_arguments)]
    fn vector_binop<'s, L: Lane<'s>>(
        &self,
        e: &Expr,
        op: BinOp,
        m: &Matching,
        return_bool: bool,
        mut lane: L,
        l: &'s [StepSeries],
        r: &'s [StepSeries],
    ) -> Result<Vec<StepSeries>, Error> {
        let (lo, ro, nsig) = self.ordinals(m, l, r);
        // For one-to-many, swap sides and account for it when computing values.
        let swapped = m.card == Card::OneToMany;
        let (many, one, many_o, one_o) = if swapped { (r, l, &ro, &lo) } else { (l, r, &lo, &ro) };
        let mut mc = L::cursor(many.len());
        let mut oc = L::cursor(one.len());
        let mut right: Vec<Option<(usize, L::V)>> = vec![None; nsig];
        let mut state = MatchState { matched_one: vec![false; nsig], matched_many: vec![Vec::new(); nsig] };
        let mut result_labels: HashMap<(usize, usize), Labels> = HashMap::new();
        let delayed = self.sh.delayed_name_removal();
        let mut many_step: Vec<(usize, L::V)> = Vec::new();
        let mut one_step: Vec<(usize, L::V)> = Vec::new();
        for step in 0..self.nsteps() {
            self.sh.tick()?;
            let t = self.ts(step);
            right.iter_mut().for_each(|x| *x = None);
            many_step.clear();
            one_step.clear();
            for i in 0..many.len() {
                if let Some(v) = L::read(&mut mc, many, i, t) {
                    many_step.push((i, v));
                }
            }
            for i in 0..one.len() {
                if let Some(v) = L::read(&mut oc, one, i, t) {
                    one_step.push((i, v));
                }
            }
            // Nothing can match when one side is empty (unless a fill value stands in).
            let no_fill = m.fill_lhs.is_none() && m.fill_rhs.is_none();
            if (many_step.is_empty() && one_step.is_empty())
                || ((many_step.is_empty() || one_step.is_empty()) && no_fill)
            {
                continue;
            }
            for &(i, v) in &one_step {
                let sig = one_o[i];
                if let Some((j, _)) = right[sig] {
                    let side = if swapped { "left" } else { "right" };
                    let matched = match_labels(&one[i].labels, m);
                    let (mut d1, mut d2) = (one[i].labels.to_string(), one[j].labels.to_string());
                    if d1 > d2 {
                        std::mem::swap(&mut d1, &mut d2);
                    }
                    return Err(Error::Execution(format!(
                        "found duplicate series for the match group {matched} on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not allowed: matching labels must be unique on one side"
                    )));
                }
                right[sig] = Some((i, v));
            }
            state.reset(m.card);
            for &(i, lv) in &many_step {
                let sig = many_o[i];
                let (j, rv) = match right[sig] {
                    Some((j, rv)) => (Some(j), rv),
                    None => match m.fill_rhs {
                        Some(fill) => (None, L::fill(fill)),
                        None => continue,
                    },
                };
                let labels = match j {
                    Some(j) => match result_labels.get(&(i, j)) {
                        Some(l) => l.clone(),
                        None => {
                            let l = result_metric(&many[i].labels, &one[j].labels, op, m, !delayed && return_bool);
                            result_labels.insert((i, j), l.clone());
                            l
                        }
                    },
                    None => {
                        let filled = match_labels(&many[i].labels, m);
                        result_metric(&many[i].labels, &filled, op, m, !delayed && return_bool)
                    }
                };
                state.apply(&mut lane, op, m, swapped, return_bool, sig, lv, rv, labels, t)?;
            }
            if let Some(fill) = m.fill_lhs {
                for &(j, rv) in &one_step {
                    let sig = one_o[j];
                    let done = if m.card == Card::OneToOne {
                        state.matched_one[sig]
                    } else {
                        !state.matched_many[sig].is_empty()
                    };
                    if done {
                        continue;
                    }
                    let filled = match_labels(&one[j].labels, m);
                    let labels = result_metric(&filled, &one[j].labels, op, m, !delayed && return_bool);
                    state.apply(&mut lane, op, m, swapped, return_bool, sig, L::fill(fill), rv, labels, t)?;
                }
            }
            lane.end_step(self, e);
        }
        let out = lane.finish();
        self.sh.hold(super::series::total_points(&out))?;
        Ok(out)
    }
}

/// Which match groups already produced output at the current step.
struct MatchState {
    matched_one: Vec<bool>,
    matched_many: Vec<Vec<Labels>>,
}

impl MatchState {
    fn reset(&mut self, card: Card) {
        if card == Card::OneToOne {
            self.matched_one.iter_mut().for_each(|x| *x = false);
        } else {
            self.matched_many.iter_mut().for_each(|x| x.clear());
        }
    }

    /// Combines one matched pair (`lv` from the "many" side, `rv` from the
    /// "one" side) into the lane's output, enforcing the matching's
    /// uniqueness rules (Prometheus' `doBinOp`). A pair without result
    /// (histograms the operator is not defined for) is left out before
    /// those rules are checked, as Prometheus does.
    #[allow(clippy::too_many_arguments)]
    fn apply<'s, L: Lane<'s>>(
        &mut self,
        lane: &mut L,
        op: BinOp,
        m: &Matching,
        swapped: bool,
        return_bool: bool,
        sig: usize,
        lv: L::V,
        rv: L::V,
        labels: Labels,
        t: i64,
    ) -> Result<(), Error> {
        let (fl, fr) = if swapped { (rv, lv) } else { (lv, rv) };
        let Some((mut v, keep)) = lane.combine(op, fl, fr) else { return Ok(()) };
        if return_bool {
            v = L::bool_value(keep);
        }
        if m.card == Card::OneToOne {
            if self.matched_one[sig] {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            self.matched_one[sig] = true;
        } else {
            if self.matched_many[sig].contains(&labels) {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            self.matched_many[sig].push(labels.clone());
        }
        if !keep && !return_bool {
            return Ok(());
        }
        lane.push(&labels, return_bool, t, v)
    }
}

/// The labels a match group is identified by, for error messages.
fn match_labels(l: &Labels, m: &Matching) -> Labels {
    m.signature(l)
}

/// The labels of a binary operation's result (Prometheus' `resultMetric`).
fn result_metric(lhs: &Labels, rhs: &Labels, op: BinOp, m: &Matching, drop_name: bool) -> Labels {
    let mut out = lhs.clone();
    if drop_name || op.changes_metric_schema() {
        drop_metric_name(&mut out);
    }
    if m.card == Card::OneToOne {
        out = if m.on {
            Labels::from_sorted(out.iter().filter(|x| m.names.iter().any(|n| n == x.name)).map(|x| (x.name, x.value)))
        } else {
            let names: Vec<&str> = m.names.iter().map(String::as_str).collect();
            out.without(&names)
        };
    }
    for name in &m.include {
        out = match rhs.get(name) {
            Some(v) => out.with(name, v).unwrap_or(out),
            None => out.without(&[name.as_str()]),
        };
    }
    out
}
