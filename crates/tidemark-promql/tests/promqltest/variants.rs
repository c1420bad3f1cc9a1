//! The extra runs upstream derives from each instant eval: the query with
//! `@ <eval time>` added to every selector, evaluated at other times
//! (upstream's `atModifierTestCases`).

use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Expr, LabelModifier, VectorMatchCardinality};

/// Functions whose result depends on the evaluation time even when their
/// arguments do not; a query using one gets no `@` variants
/// (upstream's `AtModifierUnsafeFunctions`).
const AT_UNSAFE_FUNCTIONS: [&str; 14] = [
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
];

/// `timestamp` is listed separately upstream ("uses the timestamp of the
/// argument for the result").
const TIMESTAMP_FUNCTION: &str = "timestamp";

/// An extra instant query: the rewritten query and the time to run it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtVariant {
    /// The query with `@` modifiers added.
    pub expr: String,
    /// Evaluation time in milliseconds.
    pub t: i64,
}

/// Whether an `@` modifier counts as set. `@ start()` / `@ end()` do not:
/// upstream only looks at the resolved timestamp, which the test code sees
/// unset, so it overwrites them.
fn at_is_set(at: &Option<AtModifier>) -> bool {
    matches!(at, Some(AtModifier::At(_)))
}

fn at_time(ts_ms: i64) -> AtModifier {
    let d = Duration::from_millis(ts_ms.unsigned_abs());
    let t = if ts_ms >= 0 { SystemTime::UNIX_EPOCH + d } else { SystemTime::UNIX_EPOCH - d };
    AtModifier::At(t)
}

/// Adds `@ ts` to every selector and subquery that has none, except inside
/// subqueries (which get the modifier themselves). Returns false when the
/// query calls a time-dependent function outside such subqueries.
fn add_at(expr: &mut Expr, ts: i64) -> bool {
    match expr {
        Expr::VectorSelector(vs) => {
            if !at_is_set(&vs.at) {
                vs.at = Some(at_time(ts));
            }
            true
        }
        Expr::MatrixSelector(ms) => {
            if !at_is_set(&ms.vs.at) {
                ms.vs.at = Some(at_time(ts));
            }
            true
        }
        Expr::Subquery(sq) => {
            // Everything below now sits under a subquery with a timestamp,
            // which upstream leaves untouched (and does not inspect).
            if !at_is_set(&sq.at) {
                sq.at = Some(at_time(ts));
            }
            true
        }
        Expr::Call(call) => {
            let safe = !(AT_UNSAFE_FUNCTIONS.contains(&call.func.name) || call.func.name == TIMESTAMP_FUNCTION);
            let mut all = safe;
            for a in call.args.args.iter_mut() {
                all &= add_at(a, ts);
            }
            all
        }
        Expr::Aggregate(agg) => {
            let mut ok = add_at(&mut agg.expr, ts);
            if let Some(p) = agg.param.as_mut() {
                ok &= add_at(p, ts);
            }
            ok
        }
        Expr::Unary(u) => add_at(&mut u.expr, ts),
        Expr::Binary(b) => {
            let l = add_at(&mut b.lhs, ts);
            let r = add_at(&mut b.rhs, ts);
            l && r
        }
        Expr::Paren(p) => add_at(&mut p.expr, ts),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => true,
    }
}

/// Puts a tree in a canonical form for comparison: matchers sorted, an
/// empty `by ()` dropped (the printer omits it; both mean "no grouping").
fn normalize(expr: &mut Expr) {
    fn sort_matchers(m: &mut promql_parser::label::Matchers) {
        let key = |m: &promql_parser::label::Matcher| (m.name.clone(), m.op.to_string(), m.value.clone());
        m.matchers.sort_by_key(key);
        for g in m.or_matchers.iter_mut() {
            g.sort_by_key(key);
        }
    }
    match expr {
        Expr::VectorSelector(vs) => sort_matchers(&mut vs.matchers),
        Expr::MatrixSelector(ms) => sort_matchers(&mut ms.vs.matchers),
        Expr::Subquery(sq) => normalize(&mut sq.expr),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| normalize(a)),
        Expr::Aggregate(a) => {
            if matches!(&a.modifier, Some(LabelModifier::Include(l)) if l.labels.is_empty()) {
                a.modifier = None;
            }
            normalize(&mut a.expr);
            if let Some(p) = a.param.as_mut() {
                normalize(p);
            }
        }
        Expr::Unary(u) => normalize(&mut u.expr),
        Expr::Binary(b) => {
            // `ignoring()` is the default matching; the printer omits it.
            if let Some(m) = b.modifier.as_mut() {
                if matches!(&m.matching, Some(LabelModifier::Exclude(l)) if l.labels.is_empty()) {
                    m.matching = None;
                }
                let plain = m.matching.is_none()
                    && !m.return_bool
                    && matches!(m.card, VectorMatchCardinality::OneToOne)
                    && m.fill_values.lhs.is_none()
                    && m.fill_values.rhs.is_none();
                if plain {
                    b.modifier = None;
                }
            }
            normalize(&mut b.lhs);
            normalize(&mut b.rhs);
        }
        Expr::Paren(p) => normalize(&mut p.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Whether the parser can print `expr` faithfully: its printer writes `@`
/// times before 1970 as `@ 0.000`, so such queries cannot be rewritten.
fn printable(expr: &Expr) -> bool {
    fn at_ok(at: &Option<AtModifier>) -> bool {
        match at {
            Some(AtModifier::At(t)) => *t >= SystemTime::UNIX_EPOCH,
            _ => true,
        }
    }
    match expr {
        Expr::VectorSelector(vs) => at_ok(&vs.at),
        Expr::MatrixSelector(ms) => at_ok(&ms.vs.at),
        Expr::Subquery(sq) => at_ok(&sq.at) && printable(&sq.expr),
        Expr::Call(c) => c.args.args.iter().all(|a| printable(a)),
        Expr::Aggregate(a) => printable(&a.expr) && a.param.as_deref().is_none_or(printable),
        Expr::Unary(u) => printable(&u.expr),
        Expr::Binary(b) => printable(&b.lhs) && printable(&b.rhs),
        Expr::Paren(p) => printable(&p.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => true,
    }
}

/// The `@` variants of an instant eval of `expr` at `ts` (ms): none when the
/// query uses a time-dependent function. `Err` when the query cannot be
/// rewritten (it does not parse, or cannot be printed back faithfully).
pub fn at_modifier_variants(expr: &str, ts: i64) -> Result<Vec<AtVariant>, String> {
    let mut parsed = promql_parser::parser::parse(expr)?;
    if !add_at(&mut parsed, ts) {
        return Ok(Vec::new());
    }
    if !printable(&parsed) {
        return Err(format!("cannot add @ modifiers to {expr:?}: the parser prints @ times before 1970 as 0"));
    }
    let new_expr = parsed.to_string();
    // The variant must be the rewritten tree, not whatever the printer made
    // of it: re-parse and compare, ignoring differences without meaning
    // (matcher order, an empty `by ()`).
    match promql_parser::parser::parse(&new_expr) {
        Ok(mut back) => {
            normalize(&mut back);
            normalize(&mut parsed);
            if format!("{back:?}") != format!("{parsed:?}") {
                return Err(format!(
                    "the rewritten query {new_expr:?} does not parse back to the rewritten tree: {back:?} vs {parsed:?}"
                ));
            }
        }
        Err(e) => return Err(format!("the rewritten query {new_expr:?} does not parse: {e}")),
    }
    let times: Vec<i64> =
        if ts == 0 { vec![-1000, 0, 1000] } else { vec![ts.saturating_mul(-10), 0, ts / 5, ts, ts.saturating_mul(10)] };
    Ok(times.into_iter().map(|t| AtVariant { expr: new_expr.clone(), t }).collect())
}

/// Whether the query text mentions `start()`, `end()`, `range()` or
/// `step()`; upstream then skips the range-mode re-run.
pub fn uses_query_context_functions(expr: &str) -> bool {
    ["start()", "end()", "range()", "step()"].iter().any(|f| expr.contains(f))
}
