//! Limits on the shape of a query, checked before any recursive code sees it.
//!
//! Parsing, evaluating, printing and dropping a query tree all recurse over
//! the tree, and `promql-parser`'s parser is quadratic in the length of an
//! operator chain (`1+1+…+1`) and in aggregation nesting. A short hostile
//! query could therefore overflow a thread's stack (which aborts the whole
//! process) or hold a core for minutes in code that cannot be interrupted.
//! Three cheap checks over the text run first, without recursion and in
//! linear time:
//!
//! - its length in bytes ([`QueryLimits::max_query_bytes`]);
//! - the deepest nesting of `(`, `[` and `{` ([`QueryLimits::max_nesting_depth`]);
//! - the number of operators outside braces: binary operators and signs
//!   ([`QueryLimits::max_operators`]), which bounds the depth of a flat chain;
//!
//! and after parsing, an iterative walk checks the depth of the tree itself
//! ([`QueryLimits::max_tree_depth`]); the engine sizes the stack of the
//! thread that evaluates a query for that depth.
//!
//! The defaults are far above real queries (dashboards and rules rarely nest
//! deeper than 10 or use more than a few dozen operators) and far below what
//! the engine handles safely; `docs/limits.md` gives the measured costs at
//! the limits.
//!
//! ```
//! use tidemark_promql::{Error, QueryLimits};
//! let limits = QueryLimits::default();
//! let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
//! let err = limits.check_text(&deep).unwrap_err();
//! assert_eq!(err.to_string(), "query nesting depth 300 exceeds the limit of 256");
//! assert!(matches!(err, Error::Limit(_)));
//! ```

use std::fmt;

use promql_parser::parser::Expr;

use crate::annotations::Position;
use crate::error::Error;
use crate::position::{position_at, tokenize, TokKind};

/// Limits on the size and shape of a query. The defaults suit any real query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest query text, in bytes (default 256 KiB). Bounds the time the
    /// third-party parser, which cannot be interrupted, may take.
    pub max_query_bytes: usize,
    /// Deepest nesting of parentheses, brackets and braces (default 256).
    pub max_nesting_depth: usize,
    /// Most binary operators and unary signs outside label matchers
    /// (default 1,000).
    pub max_operators: usize,
    /// Deepest parsed tree (default 2,048): a flat chain of operators is as
    /// deep as it is long, nesting adds one or two levels per bracket.
    /// Queries run on a thread whose stack is sized for this depth.
    pub max_tree_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_query_bytes: 256 << 10, max_nesting_depth: 256, max_operators: 1_000, max_tree_depth: 2_048 }
    }
}

/// Which limit a query exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// [`QueryLimits::max_query_bytes`].
    QueryBytes,
    /// [`QueryLimits::max_nesting_depth`].
    NestingDepth,
    /// [`QueryLimits::max_operators`].
    Operators,
    /// [`QueryLimits::max_tree_depth`].
    TreeDepth,
}

/// A query that exceeds one of the [`QueryLimits`]: which one, by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitError {
    /// The limit exceeded.
    pub kind: LimitKind,
    /// The query's value (for the tree depth: the depth at which the walk
    /// stopped, one more than the limit).
    pub value: usize,
    /// The configured limit.
    pub limit: usize,
    /// Where in the text the limit was passed: the first bracket too deep,
    /// the first operator too many (none for the length and tree depth).
    pub position: Option<Position>,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LimitError { value, limit, .. } = *self;
        match self.kind {
            LimitKind::QueryBytes => write!(f, "query length of {value} bytes exceeds the limit of {limit} bytes"),
            LimitKind::NestingDepth => write!(f, "query nesting depth {value} exceeds the limit of {limit}"),
            LimitKind::Operators => write!(f, "query has {value} operators, more than the limit of {limit}"),
            LimitKind::TreeDepth => write!(f, "query expression tree is deeper than the limit of {limit}"),
        }
    }
}

impl std::error::Error for LimitError {}

impl QueryLimits {
    /// Checks the text of a query against the length, nesting and operator
    /// limits, in time linear in its length and without recursion.
    pub fn check_text(&self, query: &str) -> Result<(), Error> {
        let exceeded = |kind, value, limit, at: Option<usize>| {
            let position = at.map(|b| position_at(query, b));
            Err(Error::Limit(LimitError { kind, value, limit, position }))
        };
        if query.len() > self.max_query_bytes {
            return exceeded(LimitKind::QueryBytes, query.len(), self.max_query_bytes, None);
        }
        let (mut depth, mut deepest, mut in_braces, mut operators) = (0usize, 0usize, 0usize, 0usize);
        let (mut too_deep_at, mut too_many_at) = (None, None);
        for t in tokenize(query) {
            match t.kind {
                TokKind::Sym => match t.text(query) {
                    "(" | "[" | "{" => {
                        depth += 1;
                        deepest = deepest.max(depth);
                        if depth > self.max_nesting_depth && too_deep_at.is_none() {
                            too_deep_at = Some(t.start);
                        }
                        if t.text(query) == "{" {
                            in_braces += 1;
                        }
                    }
                    ")" | "]" | "}" => {
                        depth = depth.saturating_sub(1);
                        if t.text(query) == "}" {
                            in_braces = in_braces.saturating_sub(1);
                        }
                    }
                    // Inside braces these are label matchers, not operators.
                    "+" | "-" | "*" | "/" | "%" | "^" | "==" | "!=" | ">" | "<" | ">=" | "<=" if in_braces == 0 => {
                        operators += 1;
                        if operators > self.max_operators && too_many_at.is_none() {
                            too_many_at = Some(t.start);
                        }
                    }
                    _ => {}
                },
                TokKind::Ident if in_braces == 0 => {
                    let w = t.text(query);
                    if ["and", "or", "unless", "atan2"].iter().any(|k| w.eq_ignore_ascii_case(k)) {
                        operators += 1;
                        if operators > self.max_operators && too_many_at.is_none() {
                            too_many_at = Some(t.start);
                        }
                    }
                }
                _ => {}
            }
        }
        if deepest > self.max_nesting_depth {
            return exceeded(LimitKind::NestingDepth, deepest, self.max_nesting_depth, too_deep_at);
        }
        if operators > self.max_operators {
            return exceeded(LimitKind::Operators, operators, self.max_operators, too_many_at);
        }
        Ok(())
    }

    /// Checks the depth of a parsed tree with an explicit stack (no
    /// recursion), stopping as soon as the limit is passed.
    pub fn check_tree(&self, expr: &Expr) -> Result<(), Error> {
        let mut stack: Vec<(&Expr, usize)> = vec![(expr, 1)];
        while let Some((e, depth)) = stack.pop() {
            if depth > self.max_tree_depth {
                return Err(Error::Limit(LimitError {
                    kind: LimitKind::TreeDepth,
                    value: depth,
                    limit: self.max_tree_depth,
                    position: None,
                }));
            }
            for child in children(e) {
                stack.push((child, depth + 1));
            }
        }
        Ok(())
    }
}

/// The direct sub-expressions of `e`.
pub(crate) fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Aggregate(a) => a.param.iter().map(|p| &**p).chain(std::iter::once(&*a.expr)).collect(),
        Expr::Unary(u) => vec![&*u.expr],
        Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
        Expr::Paren(p) => vec![&*p.expr],
        Expr::Subquery(s) => vec![&*s.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
        Expr::Extension(x) => x.expr.children().iter().collect(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(r: Result<(), Error>) -> Option<LimitKind> {
        match r {
            Err(Error::Limit(l)) => Some(l.kind),
            _ => None,
        }
    }

    #[test]
    fn nesting_counts_every_bracket_kind() {
        let l = QueryLimits { max_nesting_depth: 3, ..QueryLimits::default() };
        assert!(l.check_text("sum(rate(x[5m]))").is_ok());
        assert!(l.check_text("sum(rate(x{a=\"(((((\"}[5m]))").is_ok(), "brackets inside strings do not count");
        assert_eq!(kind(l.check_text("sum(abs(rate(x[5m])))")), Some(LimitKind::NestingDepth));
        assert_eq!(kind(l.check_text("((((1))))")), Some(LimitKind::NestingDepth));
        let err = l.check_text("abs(abs(abs(abs(x))))").unwrap_err();
        assert_eq!(err.to_string(), "query nesting depth 4 exceeds the limit of 3");
        let Error::Limit(e) = err else { unreachable!() };
        assert_eq!(e.position, Some(Position { line: 1, column: 16 }), "the first bracket too deep");
    }

    #[test]
    fn operators_outside_braces_are_counted() {
        let l = QueryLimits { max_operators: 3, ..QueryLimits::default() };
        assert!(l.check_text("a + b - c * d").is_ok());
        assert!(l.check_text(r#"x{a!="1",b=~"2",c!~"3",d="4",e!="5"} + 1"#).is_ok(), "matchers are not operators");
        assert_eq!(kind(l.check_text("a + b - c * d / e")), Some(LimitKind::Operators));
        assert_eq!(kind(l.check_text("a or b and c unless d or e")), Some(LimitKind::Operators));
        assert_eq!(kind(l.check_text("----1")), Some(LimitKind::Operators));
        assert_eq!(
            l.check_text("1 == 1 != 1 >= 1 <= 1").unwrap_err().to_string(),
            "query has 4 operators, more than the limit of 3"
        );
    }

    #[test]
    fn length_is_checked_first() {
        let l = QueryLimits { max_query_bytes: 10, ..QueryLimits::default() };
        assert!(l.check_text("0123456789").is_ok());
        assert_eq!(
            l.check_text("01234567890").unwrap_err().to_string(),
            "query length of 11 bytes exceeds the limit of 10 bytes"
        );
    }

    #[test]
    fn tree_depth_is_measured_without_recursion() {
        let l = QueryLimits { max_tree_depth: 5, ..QueryLimits::default() };
        let ok = promql_parser::parser::parse("1 + 1 + 1 + 1").unwrap(); // depth 4
        assert!(l.check_tree(&ok).is_ok());
        let deep = promql_parser::parser::parse("1 + 1 + 1 + 1 + 1 + 1").unwrap(); // depth 6
        assert_eq!(kind(l.check_tree(&deep)), Some(LimitKind::TreeDepth));
        let nested = promql_parser::parser::parse("sum(abs(abs(abs(abs(x)))))").unwrap(); // depth 6
        assert_eq!(
            l.check_tree(&nested).unwrap_err().to_string(),
            "query expression tree is deeper than the limit of 5"
        );
    }

    #[test]
    fn defaults_accept_real_queries() {
        let l = QueryLimits::default();
        for q in [
            r#"histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job=~"api|web"}[5m])))"#,
            "max_over_time((sum(rate(x[1m])) / sum(rate(y[1m])))[1h:1m] offset 1d) > 0.5 and on() vector(1)",
        ] {
            l.check_text(q).unwrap();
            l.check_tree(&promql_parser::parser::parse(q).unwrap()).unwrap();
        }
    }
}
