//! One form for both sides' answers, and the exact comparison. Values are
//! floats or native histograms (compared by count, sum and non-empty
//! buckets, as the HTTP API shows them).

use std::collections::BTreeMap;

use tidemark_promql::{Error, Value};

/// Relative tolerance for values: only float rounding may differ (for
/// example Kahan-compensated sums in 3.x against plain sums in 2.42).
const REL_TOL: f64 = 1e-9;

/// A native histogram as the HTTP API shows it: count, sum, and the
/// non-empty buckets in ascending order as `(boundaries, lower, upper,
/// count)`, `boundaries` saying which bounds are inclusive (0 upper only,
/// 1 lower only, 2 neither, 3 both).
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub count: f64,
    pub sum: f64,
    pub buckets: Vec<(u8, f64, f64, f64)>,
}

/// One value of a vector or matrix: a float or a histogram.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    F(f64),
    H(Hist),
}

impl From<f64> for V {
    fn from(v: f64) -> V {
        V::F(v)
    }
}

impl V {
    /// Whether the value is a histogram.
    pub fn is_hist(&self) -> bool {
        matches!(self, V::H(_))
    }
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V::F(v) => write!(f, "{v}"),
            V::H(h) => {
                write!(f, "{{count:{} sum:{} buckets:", h.count, h.sum)?;
                for (i, (b, lo, hi, c)) in h.buckets.iter().enumerate() {
                    if i == 12 {
                        return write!(f, " …{} more}}", h.buckets.len() - 12);
                    }
                    write!(f, " {b}[{lo},{hi}]={c}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

/// Our histogram in the API form.
pub fn hist_of(h: &tidemark_storage::histogram::FloatHistogram) -> Hist {
    let buckets = h
        .all_buckets()
        .filter(|b| b.count != 0.0)
        .map(|b| {
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => 2,
                (true, true) => 3,
            };
            (rule, b.lower, b.upper, b.count)
        })
        .collect();
    Hist { count: h.count, sum: h.sum, buckets }
}

/// A query answer. Label sets are rendered as sorted `{a="b", …}` keys.
#[derive(Debug)]
pub enum Res {
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<(String, i64, V)>),
    Matrix(Vec<(String, Vec<(i64, V)>)>),
}

impl Res {
    fn type_name(&self) -> &'static str {
        match self {
            Res::Scalar(..) => "scalar",
            Res::String(..) => "string",
            Res::Vector(_) => "vector",
            Res::Matrix(_) => "matrix",
        }
    }

    /// Whether the answer holds any data (for the "every query returns
    /// something somewhere" check).
    pub fn has_data(&self) -> bool {
        match self {
            Res::Scalar(..) | Res::String(..) => true,
            Res::Vector(v) => !v.is_empty(),
            Res::Matrix(m) => m.iter().any(|(_, p)| !p.is_empty()),
        }
    }

    /// Whether the answer holds a histogram.
    #[allow(dead_code)] // used by the histogram test only
    pub fn has_histograms(&self) -> bool {
        match self {
            Res::Scalar(..) | Res::String(..) => false,
            Res::Vector(v) => v.iter().any(|(_, _, v)| v.is_hist()),
            Res::Matrix(m) => m.iter().any(|(_, p)| p.iter().any(|(_, v)| v.is_hist())),
        }
    }
}

/// Either side's outcome for one evaluation.
#[derive(Debug)]
pub enum Outcome {
    Ok(Res),
    /// A failure; `parse` says whether it was a parse error.
    Err {
        parse: bool,
        msg: String,
    },
}

/// The canonical text of a label set.
pub fn key(mut pairs: Vec<(String, String)>) -> String {
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn labels_key(l: &tidemark_storage::Labels) -> String {
    key(l.iter().map(|p| (p.name.to_string(), p.value.to_string())).collect())
}

/// Our engine's answer in the common form.
pub fn from_ours(r: Result<tidemark_promql::QueryResult, Error>) -> Outcome {
    match r {
        Err(e) => Outcome::Err { parse: matches!(e, Error::Parse(_)), msg: e.to_string() },
        Ok(q) => Outcome::Ok(match q.value {
            Value::Scalar { t, v } => Res::Scalar(t, v),
            Value::String { t, s } => Res::String(t, s),
            Value::Vector(v) => Res::Vector(
                v.into_iter()
                    .map(|s| {
                        let v = match &s.h {
                            Some(h) => V::H(hist_of(h)),
                            None => V::F(s.v),
                        };
                        (labels_key(&s.labels), s.t, v)
                    })
                    .collect(),
            ),
            Value::Matrix(m) => Res::Matrix(
                m.into_iter()
                    .map(|s| {
                        // Floats and histograms interleaved by time, as the
                        // API would list them.
                        let mut points: Vec<(i64, V)> = s.samples.iter().map(|p| (p.t, V::F(p.v))).collect();
                        points.extend(s.histograms.iter().map(|p| (p.t, V::H(hist_of(&p.h)))));
                        points.sort_by_key(|p| p.0);
                        (labels_key(&s.labels), points)
                    })
                    .collect(),
            ),
        }),
    }
}

/// Equal up to float rounding; NaN equals NaN, infinities must match exactly.
pub fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= REL_TOL * a.abs().max(b.abs())
}

/// Equal values: floats by [`close`], histograms by count, sum and every
/// non-empty bucket's bounds, inclusiveness and count.
pub fn close_v(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::F(a), V::F(b)) => close(*a, *b),
        (V::H(a), V::H(b)) => {
            close(a.count, b.count)
                && close(a.sum, b.sum)
                && a.buckets.len() == b.buckets.len()
                && a.buckets
                    .iter()
                    .zip(&b.buckets)
                    .all(|(x, y)| x.0 == y.0 && close(x.1, y.1) && close(x.2, y.2) && close(x.3, y.3))
        }
        _ => false,
    }
}

/// Compares Prometheus' answer (`want`) with ours (`got`); `None` when they
/// agree, else a description of the first difference. `ordered` also
/// compares the order of vector elements (by value, so ties may swap).
pub fn compare(want: &Outcome, got: &Outcome, ordered: bool) -> Option<String> {
    match (want, got) {
        (Outcome::Err { .. }, Outcome::Err { .. }) => None,
        (Outcome::Err { msg, .. }, Outcome::Ok(r)) => {
            Some(format!("Prometheus fails ({msg}) but we return a {} {}", r.type_name(), brief(r)))
        }
        (Outcome::Ok(r), Outcome::Err { msg, .. }) => {
            Some(format!("we fail ({msg}) but Prometheus returns a {} {}", r.type_name(), brief(r)))
        }
        (Outcome::Ok(w), Outcome::Ok(g)) => compare_res(w, g, ordered),
    }
}

/// A short rendering of an answer for messages.
fn brief(r: &Res) -> String {
    let s = match r {
        Res::Scalar(t, v) => format!("{v} @{t}"),
        Res::String(t, s) => format!("{s:?} @{t}"),
        Res::Vector(v) => format!("of {} samples, first {:?}", v.len(), v.first()),
        Res::Matrix(m) => format!("of {} series, first {:?}", m.len(), m.first().map(|(k, p)| (k, p.first()))),
    };
    s.chars().take(300).collect()
}

fn compare_res(want: &Res, got: &Res, ordered: bool) -> Option<String> {
    match (want, got) {
        (Res::Scalar(wt, wv), Res::Scalar(gt, gv)) => {
            (wt != gt || !close(*wv, *gv)).then(|| format!("scalar: want {wv} @{wt}, got {gv} @{gt}"))
        }
        (Res::String(wt, ws), Res::String(gt, gs)) => {
            (wt != gt || ws != gs).then(|| format!("string: want {ws:?} @{wt}, got {gs:?} @{gt}"))
        }
        (Res::Vector(w), Res::Vector(g)) => compare_vectors(w, g, ordered),
        (Res::Matrix(w), Res::Matrix(g)) => compare_matrices(w, g),
        (w, g) => Some(format!("type: want {} {}, got {} {}", w.type_name(), brief(w), g.type_name(), brief(g))),
    }
}

fn compare_vectors(want: &[(String, i64, V)], got: &[(String, i64, V)], ordered: bool) -> Option<String> {
    let mut w: BTreeMap<&str, (i64, &V)> = BTreeMap::new();
    for (k, t, v) in want {
        w.insert(k, (*t, v));
    }
    let mut g: BTreeMap<&str, (i64, &V)> = BTreeMap::new();
    for (k, t, v) in got {
        if g.insert(k, (*t, v)).is_some() {
            return Some(format!("we return the label set {k} twice"));
        }
    }
    if let Some(k) = w.keys().find(|k| !g.contains_key(*k)) {
        return Some(format!(
            "series missing: {k} (want {:?}); want {} series, got {}; first extra: {:?}",
            w[k],
            w.len(),
            g.len(),
            g.keys().find(|k| !w.contains_key(*k))
        ));
    }
    if let Some(k) = g.keys().find(|k| !w.contains_key(*k)) {
        return Some(format!("extra series: {k} = {:?}; want {} series, got {}", g[k], w.len(), g.len()));
    }
    for (k, (wt, wv)) in &w {
        let (gt, gv) = g[k];
        if *wt != gt || !close_v(wv, gv) {
            return Some(format!("{k}: want {wv} @{wt}, got {gv} @{gt}"));
        }
    }
    if ordered {
        for (i, ((wk, _, wv), (gk, _, gv))) in want.iter().zip(got).enumerate() {
            if !close_v(wv, gv) {
                return Some(format!("order differs at position {i}: want {wk} = {wv}, got {gk} = {gv}"));
            }
        }
    }
    None
}

fn compare_matrices(want: &[(String, Vec<(i64, V)>)], got: &[(String, Vec<(i64, V)>)]) -> Option<String> {
    let w: BTreeMap<&str, &Vec<(i64, V)>> = want.iter().map(|(k, p)| (k.as_str(), p)).collect();
    let mut g: BTreeMap<&str, &Vec<(i64, V)>> = BTreeMap::new();
    for (k, p) in got {
        if g.insert(k, p).is_some() {
            return Some(format!("we return the label set {k} twice"));
        }
    }
    if let Some(k) = w.keys().find(|k| !g.contains_key(*k)) {
        return Some(format!(
            "series missing: {k} ({} points); want {} series, got {}; first extra: {:?}",
            w[k].len(),
            w.len(),
            g.len(),
            g.keys().find(|k| !w.contains_key(*k))
        ));
    }
    if let Some(k) = g.keys().find(|k| !w.contains_key(*k)) {
        return Some(format!("extra series: {k} ({} points); want {} series, got {}", g[k].len(), w.len(), g.len()));
    }
    for (k, wp) in &w {
        let gp = g[k];
        for (i, pair) in wp.iter().zip(gp.iter()).enumerate() {
            let ((wt, wv), (gt, gv)) = pair;
            if wt != gt || !close_v(wv, gv) {
                return Some(format!("{k} point {i}: want {wv} @{wt}, got {gv} @{gt}"));
            }
        }
        if wp.len() != gp.len() {
            let n = wp.len().min(gp.len());
            return Some(format!(
                "{k}: want {} points, got {}; first unmatched: want {:?}, got {:?}",
                wp.len(),
                gp.len(),
                wp.get(n),
                gp.get(n)
            ));
        }
    }
    None
}

/// Runs our engine, turning a panic into a failure outcome so one bad query
/// does not hide the others.
pub fn ours(f: impl FnOnce() -> Result<tidemark_promql::QueryResult, Error>) -> Outcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => from_ours(r),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Err { parse: false, msg: format!("OUR ENGINE PANICKED: {msg}") }
        }
    }
}

/// One disagreement between our answer and Prometheus'.
pub struct Mismatch {
    pub query: String,
    pub at: String,
    pub detail: String,
}
