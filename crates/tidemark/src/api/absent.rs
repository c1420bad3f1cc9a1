//! Endpoints for Prometheus features Tidemark does not have — scrape
//! targets, exemplars — answered the way Prometheus answers them when none
//! are configured, so clients such as Grafana that probe them see "nothing
//! here" rather than an error.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use super::params::{Params, MAX_TIME, MIN_TIME};
use super::response::{ApiError, Reply};
use super::ApiState;

/// `GET /api/v1/targets`: no targets (Tidemark does not scrape).
pub(crate) async fn targets() -> Reply {
    Reply::new(r#"{"activeTargets":[],"droppedTargets":[]}"#.into())
}

/// `GET|POST /api/v1/query_exemplars`: the parameters are validated as
/// Prometheus does; the answer is always empty (exemplars are not stored).
pub(crate) async fn query_exemplars(State(_st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    exemplars(&p).into_response()
}

fn exemplars(p: &Params) -> Result<Reply, ApiError> {
    let start = p.time("start", MIN_TIME)?;
    let end = p.time("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data("end timestamp must not be before start timestamp"));
    }
    tidemark_promql::parse(p.get("query").unwrap_or("")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    Ok(Reply::new("[]".into()))
}
