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

/// Prints a rewritten query as Prometheus' printer would.
///
/// One case needs care: Go strings are bytes, so `"\xff"` in a query is the
/// (invalid UTF-8) byte 0xFF, and Go prints it back as `"\xff"`. The Rust
/// parser decodes it to the character U+00FF and prints `"ÿ"`, a different
/// (valid) string. When the query text has `\x` escapes, string literals
/// holding U+0080..U+00FF are printed with `\x` escapes again.
fn print_like_go(original: &str, tree: &Expr) -> String {
    plus_inf_like_go(&print_bytes_like_go(original, tree))
}

/// Go prints a positive infinite number literal as `+Inf`
/// (`strconv.FormatFloat(v, 'f', -1, 64)`); the Rust printer writes
/// `Inf`. Positions in annotations depend on the text, so bare `Inf`
/// tokens outside string literals get their `+` back.
fn plus_inf_like_go(s: &str) -> String {
    let word = |x: char| x.is_ascii_alphanumeric() || x == '_';
    let mut out = String::with_capacity(s.len() + 2);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if s[i..].starts_with("Inf")
                && !prev.is_some_and(|x| word(x) || x == '+' || x == '-')
                && !s[i + 3..].chars().next().is_some_and(word) =>
            {
                out.push_str("+Inf");
                chars.next();
                chars.next();
                prev = Some('f');
                continue;
            }
            None => {}
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

fn print_bytes_like_go(original: &str, tree: &Expr) -> String {
    if !original.contains("\\x") {
        return tree.to_string();
    }
    let mut copy = tree.clone();
    let mut literals = Vec::new();
    swap_byte_strings(&mut copy, &mut literals);
    let mut out = copy.to_string();
    for (i, value) in literals.iter().enumerate() {
        out = out.replace(&format!("\"{}\"", placeholder(i)), &go_quote_bytes(value));
    }
    out
}

fn placeholder(i: usize) -> String {
    format!("promqltest_string_literal_{i}")
}

/// Replaces string literals with Latin-1 characters by placeholders,
/// collecting their values in print order.
fn swap_byte_strings(expr: &mut Expr, out: &mut Vec<String>) {
    match expr {
        Expr::StringLiteral(s) => {
            if s.val.chars().any(|c| ('\u{80}'..='\u{ff}').contains(&c)) {
                let v = std::mem::replace(&mut s.val, placeholder(out.len()));
                out.push(v);
            }
        }
        Expr::Subquery(sq) => swap_byte_strings(&mut sq.expr, out),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| swap_byte_strings(a, out)),
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_mut() {
                swap_byte_strings(p, out);
            }
            swap_byte_strings(&mut a.expr, out);
        }
        Expr::Unary(u) => swap_byte_strings(&mut u.expr, out),
        Expr::Binary(b) => {
            swap_byte_strings(&mut b.lhs, out);
            swap_byte_strings(&mut b.rhs, out);
        }
        Expr::Paren(p) => swap_byte_strings(&mut p.expr, out),
        Expr::NumberLiteral(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::Extension(_) => {}
    }
}

/// Quotes a string decoded from `\x` escapes as Go's `%q` quotes the
/// original bytes: U+0080..U+00FF stand for single bytes.
fn go_quote_bytes(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{ff}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    let new_expr = print_like_go(expr, &parsed);
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
