//! Evaluation of a parsed expression over a time range.

use promql_parser::parser::Expr;

use crate::engine::{QueryContext, QueryResult};
use crate::error::Error;

/// Evaluates `expr` at every `step` in `[start, end]` (`instant` = one step).
pub(crate) fn evaluate(
    ctx: &QueryContext<'_>,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
) -> Result<QueryResult, Error> {
    let _ = (ctx, expr, start, end, step, instant);
    Err(Error::InvalidQuery("evaluation not implemented yet".into()))
}
