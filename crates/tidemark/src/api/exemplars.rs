//! `GET|POST /api/v1/query_exemplars`: the exemplars of the series a PromQL
//! query selects, as Prometheus answers it (`web/api/v1/api.go`,
//! `queryExemplars`).
//!
//! Parameters `query` (required), `start` and `end` (default: all time).
//! The query is parsed, and every vector selector in it (inside functions,
//! aggregations and range selectors too: Prometheus'
//! `parser.ExtractSelectors`) selects series; their exemplars with
//! `start <= t <= end` are returned, per series sorted by labels:
//!
//! ```json
//! [{"seriesLabels":{"__name__":"rpc_seconds_bucket","le":"0.5"},
//!   "exemplars":[{"labels":{"trace_id":"abc123"},"value":"0.67","timestamp":1700000000.123}]}]
//! ```
//!
//! A query without selectors (`1 + 1`) answers `204 No Content` with an
//! empty body, as Prometheus does (its API answers 204 for a handler that
//! returns no data); a bad query or time, or `end` before `start`, is
//! `400 bad_data`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tidemark_storage::exemplar::SeriesExemplars;

use super::params::{Params, MAX_TIME, MIN_TIME};
use super::response::{ApiError, Reply};
use super::{blocking, json, ApiState};

/// `GET|POST /api/v1/query_exemplars`.
pub(crate) async fn query_exemplars(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match blocking(move || answer(&st, &p)).await {
        Ok(Some(reply)) => reply.into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The answer; `None` for a query without selectors.
fn answer(st: &ApiState, p: &Params) -> Result<Option<Reply>, ApiError> {
    if let Some(e) = &p.error {
        return Err(ApiError::bad_data(format!("error parsing form values: {e}")));
    }
    let start = p.time("start", MIN_TIME)?;
    let end = p.time("end", MAX_TIME)?;
    if end < start {
        return Err(ApiError::bad_data("end timestamp must not be before start timestamp"));
    }
    let expr = tidemark_promql::parse(p.get("query").unwrap_or("")).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let sets = tidemark_promql::extract_selectors(&expr).map_err(|e| ApiError::bad_data(e.to_string()))?;
    if sets.is_empty() {
        return Ok(None);
    }
    Ok(Some(Reply::new(render(&st.db.exemplars(&sets, start, end)))))
}

/// The `data` array: Prometheus' `exemplar.QueryResult` list as its
/// marshaller writes it (values as quoted Go floats, timestamps as
/// seconds with the milliseconds as a fraction).
fn render(result: &[SeriesExemplars]) -> String {
    let n: usize = result.iter().map(|s| 64 + s.exemplars.len() * 96).sum();
    let mut out = String::with_capacity(n + 2);
    out.push('[');
    for (i, s) in result.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        json::labels(&mut out, &s.series_labels);
        out.push_str(",\"exemplars\":[");
        for (j, e) in s.exemplars.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            json::labels(&mut out, &e.labels);
            out.push_str(",\"value\":");
            json::value(&mut out, e.value);
            out.push_str(",\"timestamp\":");
            json::timestamp(&mut out, e.t);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use tidemark_storage::exemplar::Exemplar;
    use tidemark_storage::Labels;

    use super::*;

    #[test]
    fn renders_as_prometheus_marshals() {
        let s = SeriesExemplars {
            series_labels: Labels::new([("__name__", "rpc_seconds_bucket"), ("le", "0.5")]).unwrap(),
            exemplars: vec![
                Exemplar { labels: Labels::new([("trace_id", "abc123")]).unwrap(), value: 0.67, t: 1_700_000_000_123 },
                Exemplar { labels: Labels::empty(), value: 1e-7, t: 1_700_000_001_000 },
                Exemplar { labels: Labels::new([("q", "\"\n")]).unwrap(), value: f64::NAN, t: -1_500 },
            ],
        };
        assert_eq!(
            render(&[s]),
            concat!(
                r#"[{"seriesLabels":{"__name__":"rpc_seconds_bucket","le":"0.5"},"exemplars":["#,
                r#"{"labels":{"trace_id":"abc123"},"value":"0.67","timestamp":1700000000.123},"#,
                r#"{"labels":{},"value":"1e-07","timestamp":1700000001},"#,
                r#"{"labels":{"q":"\"\n"},"value":"NaN","timestamp":-1.500}]}]"#
            )
        );
        assert_eq!(render(&[]), "[]");
    }
}
