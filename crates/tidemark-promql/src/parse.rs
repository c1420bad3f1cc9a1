//! Parsing: `promql-parser` underneath, with its string errors turned into a
//! typed [`ParseError`] that carries a position and, for common mistakes, a hint.
//!
//! `promql-parser` reports errors without positions, and for plain syntax
//! errors only says "invalid promql query". We locate them ourselves:
//! - a lexer error is found by the shortest prefix of the query that the
//!   parser's own lexer rejects with the same message (errors that are only
//!   detected at the end of the text, like an unclosed parenthesis, point at
//!   what was left open instead);
//! - a syntax error is found by a small recognizer of PromQL's grammar below,
//!   which reports the first token that cannot continue the query;
//! - a semantic error (unknown function, wrong argument type, `1 > 2` without
//!   `bool`, …) is found as the innermost subexpression that, parsed alone,
//!   fails with the same message.

use promql_parser::parser::Expr;

use crate::annotations::Position;
use crate::error::ParseError;
use crate::limits::QueryLimits;
use crate::position::{matching_closers, position_at, tokenize, Tok, TokKind};

/// Parses a PromQL expression.
///
/// ```
/// let expr = tidemark_promql::parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
/// assert_eq!(expr.to_string(), "sum by (job) (rate(http_requests_total[5m]))");
/// let err = tidemark_promql::parse("increase(errors_total[5m]) by (reason)").unwrap_err();
/// assert_eq!(err.position.map(|p| p.column), Some(28));
/// assert_eq!(err.hint.as_deref(), Some("sum by (reason) (increase(errors_total[5m]))"));
/// ```
///
/// The query must be within the default [`QueryLimits`] (length, nesting,
/// operators, tree depth), so that the tree can be printed, walked and
/// dropped on an ordinary thread's stack; a query beyond them is an error
/// that names the limit:
///
/// ```
/// let deep = format!("{}1{}", "(".repeat(5_000), ")".repeat(5_000));
/// let err = tidemark_promql::parse(&deep).unwrap_err();
/// assert_eq!(err.to_string(), "1:257: parse error: query nesting depth 5000 exceeds the limit of 256");
/// ```
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let limits = QueryLimits::default();
    let as_parse_error = |e: crate::Error| {
        let position = match &e {
            crate::Error::Limit(l) => l.position,
            _ => None,
        };
        ParseError { message: e.to_string(), position, hint: None }
    };
    limits.check_text(query).map_err(as_parse_error)?;
    let expr = parse_unlimited(query)?;
    limits.check_tree(&expr).map_err(as_parse_error)?;
    Ok(expr)
}

/// [`parse`] without the limits: for callers that checked them already
/// (with their own settings) and run on a stack sized for them.
pub(crate) fn parse_unlimited(query: &str) -> Result<Expr, ParseError> {
    // A panic inside the third-party parser must not take the caller down:
    // it becomes a parse error like any other bad input.
    check_number_durations(query)?;
    std::panic::catch_unwind(|| {
        promql_parser::parser::parse(query).map_err(|message| {
            let position = Some(locate(query, &message));
            let hint = grouping_after_call_hint(query);
            ParseError { message, position, hint }
        })
    })
    .unwrap_or_else(|_| {
        Err(ParseError { message: "the parser failed on this input".into(), position: None, hint: None })
    })
}

/// Parses a series selector as the HTTP API's `match[]` parameters carry
/// it (`up{job="api"}`, `{__name__=~"http_.+"}`) into storage matchers, one
/// set per `or` group. Anything but a plain vector selector is an error.
///
/// ```
/// let sets = tidemark_promql::parse_metric_selector(r#"up{job=~"api|db"}"#).unwrap();
/// assert_eq!(sets.len(), 1);
/// assert_eq!(sets[0].len(), 2);
/// assert!(tidemark_promql::parse_metric_selector("up[5m]").is_err());
/// ```
pub fn parse_metric_selector(input: &str) -> Result<Vec<Vec<tidemark_storage::Matcher>>, crate::Error> {
    match parse(input)? {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => crate::eval::selector::matcher_sets(&vs),
        other => Err(crate::Error::Parse(ParseError {
            message: format!("expected a series selector, got {}", describe(&other)),
            position: Some(Position { line: 1, column: 1 }),
            hint: None,
        })),
    }
}

/// The matcher sets of every vector selector in `expr` (those inside range
/// selectors and subqueries too), in the order they appear, as Prometheus'
/// `parser.ExtractSelectors`: one set per selector (several for a selector
/// with `or` groups). The exemplar API selects with them.
///
/// ```
/// let e = tidemark_promql::parse(r#"rate(a{job="x"}[5m]) / on() b"#).unwrap();
/// let sets = tidemark_promql::extract_selectors(&e).unwrap();
/// assert_eq!(sets.len(), 2);
/// assert_eq!(sets[0].len(), 2, "the name matcher and job");
/// assert!(tidemark_promql::extract_selectors(&tidemark_promql::parse("1 + 2").unwrap()).unwrap().is_empty());
/// ```
pub fn extract_selectors(expr: &Expr) -> Result<Vec<Vec<tidemark_storage::Matcher>>, crate::Error> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::VectorSelector(vs) => out.extend(crate::eval::selector::matcher_sets(vs)?),
            Expr::MatrixSelector(ms) => out.extend(crate::eval::selector::matcher_sets(&ms.vs)?),
            _ => {
                // Children pushed in reverse: popped in the order they appear.
                let mut c = crate::limits::children(e);
                c.reverse();
                stack.extend(c);
            }
        }
    }
    Ok(out)
}

/// Names the kind of an expression for error messages.
fn describe(e: &Expr) -> &'static str {
    match e {
        Expr::VectorSelector(_) => "a selector with a modifier",
        Expr::MatrixSelector(_) => "a range selector",
        Expr::Call(_) => "a function call",
        Expr::Aggregate(_) => "an aggregation",
        Expr::Binary(_) => "a binary expression",
        Expr::NumberLiteral(_) => "a number",
        Expr::StringLiteral(_) => "a string",
        Expr::Subquery(_) => "a subquery",
        _ => "an expression",
    }
}

/// Rejects a plain number used as a duration (`x[NaN]`, `x offset 1e30`)
/// that is not a finite, non-negative number of seconds an `i64` of
/// nanoseconds can hold, as Prometheus does. `promql-parser` would panic on
/// these (`Duration::from_secs_f64`), and a panicking build cannot be
/// caught when it aborts on panic.
fn check_number_durations(query: &str) -> Result<(), ParseError> {
    let toks = crate::position::tokenize(query);
    for (i, t) in toks.iter().enumerate() {
        let before = |k: usize| i.checked_sub(k).map(|j| &toks[j]);
        let after_offset_sign = before(1).is_some_and(|p| p.is_sym(query, "-") || p.is_sym(query, "+"))
            && before(2).is_some_and(|p| p.is_kw(query, "offset"));
        let in_duration = before(1)
            .is_some_and(|p| p.is_sym(query, "[") || p.is_sym(query, ":") || p.is_kw(query, "offset"))
            || after_offset_sign;
        if !in_duration {
            continue;
        }
        let text = t.text(query);
        let lower = text.to_ascii_lowercase();
        let value = match t.kind {
            TokKind::Ident if lower == "nan" => Some(f64::NAN),
            TokKind::Ident if lower == "inf" => Some(f64::INFINITY),
            TokKind::Number => match lower.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok().map(|v| v as f64),
                None => lower.parse::<f64>().ok(),
            },
            _ => None,
        };
        if let Some(v) = value {
            // Go's time.Duration holds at most ~292 years.
            if !v.is_finite() || !(0.0..=9.2e9).contains(&v) {
                return Err(ParseError {
                    message: format!("duration out of range: {text}"),
                    position: Some(position_at(query, t.start)),
                    hint: None,
                });
            }
        }
    }
    Ok(())
}

/// The message `promql-parser` gives for every plain syntax error.
const SYNTAX_ERROR: &str = "invalid promql query";

/// Where the error `message` that parsing `query` produced is.
fn locate(query: &str, message: &str) -> Position {
    if let Err(lex_message) = promql_parser::parser::lexer(query) {
        if lex_message == message {
            return locate_lex_error(query, message);
        }
    }
    let toks = tokenize(query);
    let mut rec = Recognizer { query, toks: &toks, pos: 0, spans: Vec::new(), depth: 0 };
    let syntax = rec.recognize();
    if message == SYNTAX_ERROR {
        if let Err(at) = syntax {
            return position_at(query, toks.get(at).map_or(query.len(), |t| t.start));
        }
    }
    if let Some(start) = innermost_reproducing(query, &rec.spans, message) {
        let arg = mistyped_argument(query, &toks, start, message);
        return position_at(query, arg.unwrap_or(start));
    }
    // A syntax error the recognizer did not see, or a semantic one no single
    // subexpression shows: the recognizer's stopping point is the best guess,
    // else the query as a whole.
    match syntax {
        Err(at) => position_at(query, toks.get(at).map_or(query.len(), |t| t.start)),
        Ok(()) => toks.first().map_or(Position { line: 1, column: 1 }, |t| position_at(query, t.start)),
    }
}

/// Locates an error of the parser's lexer.
fn locate_lex_error(query: &str, message: &str) -> Position {
    let toks = tokenize(query);
    let start_of = |t: Option<&Tok>| t.map(|t| t.start);
    // Errors the lexer only notices at the end of the text point at what was left open.
    let opened = match message {
        "unclosed left parenthesis" => start_of(unclosed(query, &toks, "(").last().copied()),
        "unexpected end of input inside braces" => start_of(unclosed(query, &toks, "{").last().copied()),
        "unexpected end of input inside brackets" => start_of(unclosed(query, &toks, "[").last().copied()),
        m if m.starts_with("unterminated quoted string") || m == "escape sequence not terminated" => {
            start_of(toks.iter().find(|t| t.kind == TokKind::UnterminatedStr))
        }
        m if m.starts_with("no expression found") => Some(0),
        _ => None,
    };
    if let Some(byte) = opened {
        return position_at(query, byte);
    }
    // Otherwise the lexer stops at the offending character, so every prefix
    // from that character on fails the same way and shorter ones do not:
    // binary-search the shortest failing prefix (in characters).
    let bounds: Vec<usize> = query.char_indices().map(|(b, c)| b + c.len_utf8()).collect();
    let fails = |n: usize| {
        let prefix = &query[..bounds[n - 1]];
        promql_parser::parser::lexer(prefix).err().as_deref() == Some(message)
    };
    let (mut lo, mut hi) = (1, bounds.len());
    if hi == 0 || !fails(hi) {
        return position_at(query, query.len());
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    // The shortest failing prefix ends with the offending character; a
    // malformed number is reported where the number starts.
    let byte = query.char_indices().nth(lo - 1).map_or(query.len(), |(b, _)| b);
    let number = toks.iter().find(|t| t.kind == TokKind::Number && t.start <= byte && byte < t.end);
    match number {
        Some(t) if message.starts_with("bad number or duration") => position_at(query, t.start),
        _ => position_at(query, byte),
    }
}

/// The opening `open` tokens that have no closer, outermost first.
fn unclosed<'t>(query: &str, toks: &'t [Tok], open: &str) -> Vec<&'t Tok> {
    let closers = matching_closers(query, toks);
    toks.iter().enumerate().filter(|(i, t)| t.is_sym(query, open) && !closers.contains_key(i)).map(|(_, t)| t).collect()
}

/// Most subexpressions tried when locating a semantic error; each try is a
/// full parse, so this bounds the work on very large queries.
const MAX_REPRODUCTIONS: usize = 256;

/// Most bytes of subexpressions re-parsed when locating a semantic error:
/// with [`MAX_REPRODUCTIONS`] alone, a long query of long subexpressions
/// would be parsed hundreds of times over (the parser cannot be
/// interrupted, so its total input is what bounds the time).
const MAX_REPRODUCED_BYTES: usize = 512 << 10;

/// Longest query for which a "did you mean" rewrite is tried (each try
/// re-parses the whole query).
const MAX_HINT_QUERY_BYTES: usize = 16 << 10;

/// The start of the shortest recognized subexpression that, parsed on its
/// own, fails with `message`.
fn innermost_reproducing(query: &str, spans: &[(usize, usize)], message: &str) -> Option<usize> {
    let mut spans: Vec<(usize, usize)> = spans.to_vec();
    spans.sort_by_key(|&(s, e)| (e - s, s));
    spans.dedup();
    let mut budget = MAX_REPRODUCED_BYTES;
    spans
        .iter()
        .take(MAX_REPRODUCTIONS)
        .take_while(|&&(s, e)| {
            let fits = e - s <= budget;
            budget = budget.saturating_sub(e - s);
            fits
        })
        .find(|&&(s, e)| {
            query.get(s..e).is_some_and(|sub| promql_parser::parser::parse(sub).err().as_deref() == Some(message))
        })
        .map(|&(s, _)| s)
}

/// For "expected type X in call to function 'f', got Y" (and the same for
/// aggregation parameters), Prometheus points at the offending argument, not
/// the call: the first argument of the call starting at byte `start` whose
/// own type is `Y`.
fn mistyped_argument(query: &str, toks: &[Tok], start: usize, message: &str) -> Option<usize> {
    let rest = message.strip_prefix("expected type ")?;
    let got = &rest[rest.rfind(", got ")? + ", got ".len()..];
    let first = toks.iter().position(|t| t.start == start)?;
    if toks.get(first)?.kind != TokKind::Ident {
        return None;
    }
    let closers = matching_closers(query, toks);
    let mut open = first + 1;
    // `sum by (x) (…)`: the arguments follow the grouping.
    if toks.get(open).is_some_and(|t| t.is_kw(query, "by") || t.is_kw(query, "without")) {
        open = closers.get(&(open + 1)).map(|&c| c + 1)?;
    }
    if !toks.get(open)?.is_sym(query, "(") {
        return None;
    }
    let close = *closers.get(&open)?;
    let mut arg_start = open + 1;
    let mut i = open + 1;
    while i <= close {
        if i == close || toks[i].is_sym(query, ",") {
            if i > arg_start {
                let text = &query[toks[arg_start].start..toks[i - 1].end];
                if promql_parser::parser::parse(text).is_ok_and(|e| e.value_type().to_string() == got) {
                    return Some(toks[arg_start].start);
                }
            }
            arg_start = i + 1;
            i += 1;
        } else {
            i = closers.get(&i).map_or(i + 1, |&c| c + 1);
        }
    }
    None
}

/// Aggregation operators: the only calls a `by`/`without` clause may follow.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn is_aggregation(name: &str) -> bool {
    AGGREGATIONS.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Recognises `f(args) by (labels)` / `f(args) without (labels)` where `f` is
/// a function, not an aggregation — grouping only exists on aggregations — and
/// returns the query rewritten to aggregate the call with `sum`, e.g.
/// `increase(x[5m]) by (reason)` → `sum by (reason) (increase(x[5m]))`.
/// A `histogram_quantile` call keeps its φ argument outside, and its buckets
/// are summed keeping `le`: `histogram_quantile(0.95, rate(x[5m])) by (route)`
/// → `histogram_quantile(0.95, sum by (le, route) (rate(x[5m])))`.
/// Several such mistakes in one query are all rewritten; the hint is only
/// given if the rewritten query parses.
fn grouping_after_call_hint(query: &str) -> Option<String> {
    if query.len() > MAX_HINT_QUERY_BYTES {
        return None;
    }
    let mut text = rewrite_first_grouping_after_call(query)?;
    // Each rewrite removes one misplaced clause; the bound only guards
    // against a rewrite that would not.
    for _ in 0..16 {
        if promql_parser::parser::parse(&text).is_ok() {
            return Some(text);
        }
        text = rewrite_first_grouping_after_call(&text)?;
    }
    None
}

/// Rewrites the first `f(args) by|without (labels)` of `query`, if any.
fn rewrite_first_grouping_after_call(query: &str) -> Option<String> {
    let toks = tokenize(query);
    let closers = matching_closers(query, &toks);
    for (g, t) in toks.iter().enumerate() {
        let without = t.is_kw(query, "without");
        if !(t.is_kw(query, "by") || without) || g < 3 || !toks[g - 1].is_sym(query, ")") {
            continue;
        }
        let Some(open) = closers.iter().find(|&(_, &c)| c == g - 1).map(|(&o, _)| o) else { continue };
        if open == 0 || !toks[open].is_sym(query, "(") {
            continue;
        }
        let name_tok = toks[open - 1];
        let name = name_tok.text(query);
        if name_tok.kind != TokKind::Ident
            || is_aggregation(name)
            || name.eq_ignore_ascii_case("by")
            || name.eq_ignore_ascii_case("without")
        {
            continue;
        }
        let labels_open = g + 1;
        let Some(&labels_close) = closers.get(&labels_open) else { continue };
        if !toks[labels_open].is_sym(query, "(") {
            continue;
        }
        let labels = query[toks[labels_open].start + 1..toks[labels_close].start].trim();
        let grouping = if without { "without" } else { "by" };
        let call = &query[name_tok.start..toks[g - 1].end];
        let replacement = if name.eq_ignore_ascii_case("histogram_quantile") {
            histogram_quantile_hint(query, &toks, &closers, open, grouping, labels)?
        } else {
            format!("sum {grouping} ({labels}) ({call})")
        };
        let mut fixed = String::with_capacity(query.len() + 16);
        fixed.push_str(&query[..name_tok.start]);
        fixed.push_str(&replacement);
        fixed.push_str(&query[toks[labels_close].end..]);
        return Some(fixed);
    }
    None
}

/// `histogram_quantile(φ, inner)` grouped by `labels`: the buckets must be
/// aggregated inside the call, keeping `le` (with `without`, `le` must not be
/// dropped, so it is removed from the list).
fn histogram_quantile_hint(
    query: &str,
    toks: &[Tok],
    closers: &std::collections::HashMap<usize, usize>,
    open: usize,
    grouping: &str,
    labels: &str,
) -> Option<String> {
    let close = *closers.get(&open)?;
    // The top-level comma separating φ from the buckets expression.
    let mut i = open + 1;
    let mut comma = None;
    while i < close {
        if toks[i].is_sym(query, ",") {
            comma = Some(i);
            break;
        }
        i = closers.get(&i).map_or(i + 1, |&c| c + 1);
    }
    let comma = comma?;
    let phi = query[toks[open + 1].start..toks[comma].start].trim();
    let inner = query[toks[comma].end..toks[close].start].trim();
    let names: Vec<&str> = labels.split(',').map(str::trim).filter(|l| !l.is_empty()).collect();
    let grouped = if grouping == "by" {
        let mut all = vec!["le"];
        all.extend(names.iter().filter(|l| **l != "le"));
        all.join(", ")
    } else {
        names.iter().filter(|l| **l != "le").copied().collect::<Vec<_>>().join(", ")
    };
    let name = toks[open - 1].text(query);
    Some(format!("{name}({phi}, sum {grouping} ({grouped}) ({inner}))"))
}

/// Binary operators with their precedence (higher binds tighter), as in
/// Prometheus: `or` < `and`/`unless` < comparisons < `+ -` < `* / % atan2` < `^`.
fn binary_precedence(query: &str, t: &Tok) -> Option<u8> {
    let text = t.text(query);
    match t.kind {
        TokKind::Sym => match text {
            "==" | "!=" | ">" | "<" | ">=" | "<=" => Some(3),
            "+" | "-" => Some(4),
            "*" | "/" | "%" => Some(5),
            "^" => Some(6),
            _ => None,
        },
        TokKind::Ident => match text.to_ascii_lowercase().as_str() {
            "or" => Some(1),
            "and" | "unless" => Some(2),
            "atan2" => Some(5),
            _ => None,
        },
        _ => None,
    }
}

/// Words that cannot start an expression.
const NOT_A_SELECTOR: &[&str] = &["bool", "on", "ignoring", "group_left", "group_right"];

/// Deepest nesting the recognizer follows before giving up (at that token).
const MAX_NESTING: usize = 1_000;

/// A recursive-descent recognizer of PromQL expressions over [`tokenize`]'s
/// tokens. It builds nothing but the byte spans of the subexpressions it saw,
/// and on a syntax error returns the index of the first token that cannot
/// continue the query.
struct Recognizer<'a> {
    query: &'a str,
    toks: &'a [Tok],
    pos: usize,
    spans: Vec<(usize, usize)>,
    depth: usize,
}

type Rec = Result<(), usize>;

impl Recognizer<'_> {
    fn recognize(&mut self) -> Rec {
        if self.toks.is_empty() {
            return Err(0);
        }
        self.expr(0)?;
        if self.pos < self.toks.len() {
            return Err(self.pos);
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn at_sym(&self, s: &str) -> bool {
        self.peek().is_some_and(|t| t.is_sym(self.query, s))
    }

    fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(self.query, kw))
    }

    fn at_kind(&self, kind: TokKind) -> bool {
        self.peek().is_some_and(|t| t.kind == kind)
    }

    fn expect_sym(&mut self, s: &str) -> Rec {
        if self.at_sym(s) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.pos)
        }
    }

    /// Records the subexpression from token `from` to the last consumed token.
    fn span(&mut self, from: usize) {
        if let (Some(a), Some(b)) = (self.toks.get(from), self.toks.get(self.pos.wrapping_sub(1))) {
            if b.end > a.start {
                self.spans.push((a.start, b.end));
            }
        }
    }

    /// An expression whose binary operators all bind tighter than `min_prec`.
    fn expr(&mut self, min_prec: u8) -> Rec {
        if self.depth >= MAX_NESTING {
            return Err(self.pos);
        }
        self.depth += 1;
        let r = self.expr_inner(min_prec);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_prec: u8) -> Rec {
        let start = self.pos;
        self.unary()?;
        while let Some(prec) = self.peek().and_then(|t| binary_precedence(self.query, t)) {
            if prec < min_prec {
                break;
            }
            self.pos += 1;
            self.binary_modifiers()?;
            // `^` is right-associative; the others are left-associative.
            let next = if prec == 6 { prec } else { prec + 1 };
            self.expr(next)?;
            self.span(start);
        }
        Ok(())
    }

    /// `bool`, `on`/`ignoring (…)`, `group_left`/`group_right [(…)]`, `fill…(n)`.
    fn binary_modifiers(&mut self) -> Rec {
        if self.at_kw("bool") {
            self.pos += 1;
        }
        if self.at_kw("on") || self.at_kw("ignoring") {
            self.pos += 1;
            self.labels()?;
            if self.at_kw("group_left") || self.at_kw("group_right") {
                self.pos += 1;
                if self.at_sym("(") {
                    self.labels()?;
                }
            }
        }
        while self.at_kw("fill") || self.at_kw("fill_left") || self.at_kw("fill_right") {
            self.pos += 1;
            self.expect_sym("(")?;
            if self.at_sym("+") || self.at_sym("-") {
                self.pos += 1;
            }
            if !self.at_kind(TokKind::Number) {
                return Err(self.pos);
            }
            self.pos += 1;
            self.expect_sym(")")?;
        }
        Ok(())
    }

    /// Unary signs, then a primary expression with its postfix parts. Signs
    /// bind looser than `^` (`-2^2` is `-(2^2)`).
    fn unary(&mut self) -> Rec {
        let start = self.pos;
        if self.at_sym("-") || self.at_sym("+") {
            self.pos += 1;
            self.expr(6)?;
            self.span(start);
            return Ok(());
        }
        self.primary()?;
        self.span(start);
        self.postfix(start)
    }

    /// Range/subquery brackets, `offset` and `@`, after a primary expression.
    fn postfix(&mut self, start: usize) -> Rec {
        loop {
            if self.at_sym("[") {
                self.pos += 1;
                self.duration()?;
                if self.at_sym(":") {
                    self.pos += 1;
                    if self.at_kind(TokKind::Number) {
                        self.pos += 1;
                    }
                }
                self.expect_sym("]")?;
            } else if self.at_kw("offset") {
                self.pos += 1;
                if self.at_sym("+") || self.at_sym("-") {
                    self.pos += 1;
                }
                self.duration()?;
            } else if self.at_sym("@") {
                self.pos += 1;
                if self.at_kw("start") || self.at_kw("end") {
                    self.pos += 1;
                    self.expect_sym("(")?;
                    self.expect_sym(")")?;
                } else {
                    if self.at_sym("+") || self.at_sym("-") {
                        self.pos += 1;
                    }
                    if !self.at_kind(TokKind::Number) && !self.at_kw("inf") && !self.at_kw("nan") {
                        return Err(self.pos);
                    }
                    self.pos += 1;
                }
            } else {
                return Ok(());
            }
            self.span(start);
        }
    }

    fn duration(&mut self) -> Rec {
        if self.at_kind(TokKind::Number) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.pos)
        }
    }

    fn primary(&mut self) -> Rec {
        let Some(&t) = self.peek() else { return Err(self.pos) };
        match t.kind {
            TokKind::Number | TokKind::Str => {
                self.pos += 1;
                Ok(())
            }
            TokKind::Sym if t.is_sym(self.query, "(") => {
                self.pos += 1;
                self.expr(0)?;
                self.expect_sym(")")
            }
            TokKind::Sym if t.is_sym(self.query, "{") => self.matchers(),
            TokKind::Ident => {
                let text = t.text(self.query);
                if NOT_A_SELECTOR.iter().any(|w| w.eq_ignore_ascii_case(text)) {
                    return Err(self.pos);
                }
                self.pos += 1;
                let grouped = self.at_kw("by") || self.at_kw("without");
                if is_aggregation(text) && (self.at_sym("(") || grouped) {
                    return self.aggregation();
                }
                if self.at_sym("(") {
                    return self.call_args();
                }
                if self.at_sym("{") {
                    self.matchers()?;
                }
                Ok(())
            }
            _ => Err(self.pos),
        }
    }

    /// After an aggregation operator: `[by|without (…)] (args) [by|without (…)]`.
    fn aggregation(&mut self) -> Rec {
        let mut grouped = false;
        if self.at_kw("by") || self.at_kw("without") {
            self.pos += 1;
            self.labels()?;
            grouped = true;
        }
        self.call_args()?;
        if !grouped && (self.at_kw("by") || self.at_kw("without")) {
            self.pos += 1;
            self.labels()?;
        }
        Ok(())
    }

    /// `( [expr {, expr}] )`.
    fn call_args(&mut self) -> Rec {
        self.expect_sym("(")?;
        if self.at_sym(")") {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.expr(0)?;
            if self.at_sym(",") {
                self.pos += 1;
                continue;
            }
            return self.expect_sym(")");
        }
    }

    /// `( [label {, label} [,]] )`, a label being a name or a quoted string.
    fn labels(&mut self) -> Rec {
        self.expect_sym("(")?;
        loop {
            if self.at_sym(")") {
                self.pos += 1;
                return Ok(());
            }
            if !(self.at_kind(TokKind::Ident) || self.at_kind(TokKind::Str)) {
                return Err(self.pos);
            }
            self.pos += 1;
            if self.at_sym(",") {
                self.pos += 1;
            } else if !self.at_sym(")") {
                return Err(self.pos);
            }
        }
    }

    /// `{ [matcher {,|or matcher} [,]] }`, a matcher being `name op "value"`
    /// or a lone quoted metric name.
    fn matchers(&mut self) -> Rec {
        self.expect_sym("{")?;
        loop {
            if self.at_sym("}") {
                self.pos += 1;
                return Ok(());
            }
            let quoted = self.at_kind(TokKind::Str);
            if !(self.at_kind(TokKind::Ident) || quoted) {
                return Err(self.pos);
            }
            self.pos += 1;
            let is_op = |t: &Tok| t.kind == TokKind::Sym && matches!(t.text(self.query), "=" | "!=" | "=~" | "!~");
            if self.peek().is_some_and(is_op) {
                self.pos += 1;
                if !self.at_kind(TokKind::Str) {
                    return Err(self.pos);
                }
                self.pos += 1;
            } else if !quoted {
                return Err(self.pos);
            }
            if self.at_sym(",") || self.at_kw("or") {
                self.pos += 1;
            } else if !self.at_sym("}") {
                return Err(self.pos);
            }
        }
    }
}
