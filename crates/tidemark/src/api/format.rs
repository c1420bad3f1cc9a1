//! `/api/v1/format_query`: a query pretty-printed as Prometheus'
//! `promtool promql format` would (the parser's `prettify`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::params::Params;
use super::response::{ApiError, Reply};
use super::{json, ApiState};

/// `GET|POST /api/v1/format_query?query=…`: `data` is the formatted query.
pub(crate) async fn format_query(State(_st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    format(p.get("query").unwrap_or("")).into_response()
}

fn format(query: &str) -> Result<Reply, ApiError> {
    let expr = tidemark_promql::parse(query).map_err(|e| ApiError::invalid_param("query", e))?;
    // The printer is third-party code: a panic on some odd tree must not
    // take the connection down.
    let pretty = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| expr.prettify()))
        .map_err(|_| ApiError::internal("formatting the query failed"))?;
    let mut out = String::with_capacity(pretty.len() + 2);
    json::string(&mut out, &pretty);
    Ok(Reply::new(out))
}
