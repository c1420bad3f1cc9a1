//! `/api/v1/format_query`: a query pretty-printed as Prometheus'
//! `promtool promql format` would (the parser's `prettify`, reimplemented
//! in `tidemark-promql` to run in linear time), under the query limits,
//! timeout and cancellation.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::query::Arrived;
use super::{blocking, json, ApiState};
use crate::api::response::Reply;

/// `GET|POST /api/v1/format_query?query=…`: `data` is the formatted query.
pub(crate) async fn format_query(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let qopts = a.plain_options(&st);
        let pretty = st.engine.format_query(a.params.get("query").unwrap_or(""), &qopts)?;
        let mut out = String::with_capacity(pretty.len() + 2);
        json::string(&mut out, &pretty);
        Ok(Reply::new(out))
    })
    .await
    .into_response()
}
