//! `/api/v1/query` and `/api/v1/query_range`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tidemark_promql::{CancellationToken, QueryOptions, QueryResult, Value};

use super::params::{parse_duration, parse_time, Params};
use super::response::{ApiError, Reply};
use super::{blocking, json, now_ms, ApiState};

/// Cancels the query when the request goes away before it finishes (the
/// handler's future is dropped with this guard in it).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// `timeout` and `lookback_delta`, shared by both query endpoints.
fn query_options(st: &ApiState, p: &Params, token: CancellationToken) -> Result<QueryOptions, ApiError> {
    let mut timeout = st.options.query_timeout;
    if let Some(s) = p.get("timeout") {
        let ns = parse_duration(s).map_err(|e| ApiError::invalid_param("timeout", e))?;
        timeout = timeout.min(Duration::from_nanos(ns.max(0) as u64));
    }
    let mut lookback_delta = None;
    if let Some(s) = p.get("lookback_delta") {
        let ns =
            parse_duration(s).map_err(|e| ApiError::bad_data(format!("error parsing lookback delta duration: {e}")))?;
        // Zero (or less) means the engine's default, as in Prometheus.
        if ns > 0 {
            lookback_delta = Some(Duration::from_nanos(ns as u64));
        }
    }
    Ok(QueryOptions { lookback_delta, timeout: Some(timeout), cancellation: Some(token) })
}

/// `GET|POST /api/v1/query`: `query`, `time` (default now), `timeout`,
/// `lookback_delta`, `limit`.
pub(crate) async fn instant(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let token = CancellationToken::new();
    let _guard = CancelOnDrop(token.clone());
    blocking(move || {
        let limit = p.limit()?;
        let t = p.time("time", now_ms())?;
        let qopts = query_options(&st, &p, token)?;
        let query = p.get("query").unwrap_or("");
        let res = st.engine.instant_query_with(&*st.db, query, t, &qopts)?;
        Ok(render(res, limit))
    })
    .await
    .into_response()
}

/// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step`
/// (all required), `timeout`, `lookback_delta`, `limit`.
pub(crate) async fn range(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (p, _) = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let token = CancellationToken::new();
    let _guard = CancelOnDrop(token.clone());
    blocking(move || {
        let limit = p.limit()?;
        let start = parse_time(p.get("start").unwrap_or("")).map_err(|e| ApiError::invalid_param("start", e))?;
        let end = parse_time(p.get("end").unwrap_or("")).map_err(|e| ApiError::invalid_param("end", e))?;
        if end < start {
            return Err(ApiError::invalid_param("end", "end timestamp must not be before start time"));
        }
        let step_ns = parse_duration(p.get("step").unwrap_or("")).map_err(|e| ApiError::invalid_param("step", e))?;
        // Steps are evaluated in whole milliseconds: a positive step under
        // 1 ms would be a zero step, so it is refused the same way.
        let step = step_ns / 1_000_000;
        if step <= 0 {
            return Err(ApiError::invalid_param(
                "step",
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let max = st.options.max_points_per_series;
        let span_ns = (i128::from(end) - i128::from(start)) * 1_000_000;
        if span_ns / i128::from(step_ns) > max as i128 {
            return Err(ApiError::bad_data(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX)",
                thousands(max)
            )));
        }
        let qopts = query_options(&st, &p, token)?;
        let query = p.get("query").unwrap_or("");
        let res = st.engine.range_query_with(&*st.db, query, start, end, step, &qopts)?;
        Ok(render(res, limit))
    })
    .await
    .into_response()
}

/// `11000` → `11,000`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `data` of a query answer, truncated to `limit` series (0: all).
fn render(res: QueryResult, limit: usize) -> Reply {
    let mut truncated = false;
    let mut out = String::with_capacity(256);
    out.push_str("{\"resultType\":\"");
    out.push_str(res.value.type_name());
    out.push_str("\",\"result\":");
    match &res.value {
        // Prometheus marshals scalars and strings through Go's
        // encoding/json: the time as the float `t/1000` (shortest form, so
        // `…0.12`, not `…0.120`) and a scalar as `FormatFloat(v, 'f', -1)`
        // (never an exponent).
        Value::Scalar { t, v } => {
            out.push('[');
            json::float_seconds(&mut out, *t);
            out.push_str(",\"");
            json::push_go_f(&mut out, *v);
            out.push_str("\"]");
        }
        Value::String { t, s } => {
            out.push('[');
            json::float_seconds(&mut out, *t);
            out.push(',');
            json::string(&mut out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            let n = if limit > 0 && samples.len() > limit { limit } else { samples.len() };
            truncated = n < samples.len();
            out.reserve(n * 64);
            out.push('[');
            for (i, s) in samples[..n].iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                json::labels(&mut out, &s.labels);
                out.push_str(",\"value\":[");
                json::timestamp(&mut out, s.t);
                out.push(',');
                json::value(&mut out, s.v);
                out.push_str("]}");
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            let n = if limit > 0 && series.len() > limit { limit } else { series.len() };
            truncated = n < series.len();
            out.push('[');
            for (i, s) in series[..n].iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.reserve(64 + s.samples.len() * 24);
                out.push_str("{\"metric\":");
                json::labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    json::timestamp(&mut out, p.t);
                    out.push(',');
                    json::value(&mut out, p.v);
                    out.push(']');
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    let mut reply = Reply::new(out).with_annotations(&res.annotations);
    if truncated {
        reply.warnings.push("results truncated due to limit".into());
    }
    reply
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(11_000), "11,000");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
