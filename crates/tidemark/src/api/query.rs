//! `/api/v1/query` and `/api/v1/query_range`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tidemark_promql::{CancellationToken, QueryOptions, QueryResult, Value};

use super::params::{parse_duration, parse_time, Params};
use super::response::{ApiError, Reply};
use super::{blocking, json, now_ms, ApiState};

/// Cancels the query when the request goes away before it finishes (the
/// handler's future is dropped with this guard in it).
pub(crate) struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A query request as it arrives: its parameters, when it arrived (its
/// timeout counts from then), and its cancellation token, which fires when
/// the request goes away (the [`CancelOnDrop`] guard that [`Arrived::read`]
/// returns beside it is dropped with the handler's future) or the server
/// shuts down (it is a child of [`ApiState::shutdown`]).
pub(crate) struct Arrived {
    pub(crate) params: Params,
    pub(crate) at: Instant,
    pub(crate) token: CancellationToken,
}

impl Arrived {
    /// Reads the parameters; a form body must arrive within the query timeout.
    pub(crate) async fn read(st: &ApiState, req: Request) -> Result<(Arrived, CancelOnDrop), ApiError> {
        let at = Instant::now();
        let token = st.shutdown.child();
        let guard = CancelOnDrop(token.clone());
        let params = match tokio::time::timeout(st.options.query_timeout, Params::from_request(req)).await {
            Ok(read) => read?.0,
            Err(_) => {
                return Err(ApiError::bad_data(format!(
                    "error parsing form values: the request body did not arrive within the query timeout of {}",
                    promql_parser::util::display_duration(&st.options.query_timeout)
                )))
            }
        };
        Ok((Arrived { params, at, token }, guard))
    }

    /// `timeout` and `lookback_delta` as query options. The timeout is what
    /// is left of the server's (or the request's shorter) timeout.
    pub(crate) fn query_options(&self, st: &ApiState) -> Result<QueryOptions, ApiError> {
        let p = &self.params;
        let mut timeout = st.options.query_timeout;
        if let Some(s) = p.get("timeout") {
            let ns = parse_duration(s).map_err(|e| ApiError::invalid_param("timeout", e))?;
            timeout = timeout.min(Duration::from_nanos(ns.max(0) as u64));
        }
        let mut lookback_delta = None;
        if let Some(s) = p.get("lookback_delta") {
            let ns = parse_duration(s)
                .map_err(|e| ApiError::bad_data(format!("error parsing lookback delta duration: {e}")))?;
            // Zero (or less) means the engine's default, as in Prometheus.
            if ns > 0 {
                lookback_delta = Some(Duration::from_nanos(ns as u64));
            }
        }
        let left = timeout.saturating_sub(self.at.elapsed());
        Ok(QueryOptions { lookback_delta, timeout: Some(left), cancellation: Some(self.token.clone()) })
    }

    /// Options carrying only the cancellation and what is left of the
    /// server's timeout (for endpoints without `timeout` parameters).
    pub(crate) fn plain_options(&self, st: &ApiState) -> QueryOptions {
        let left = st.options.query_timeout.saturating_sub(self.at.elapsed());
        QueryOptions { lookback_delta: None, timeout: Some(left), cancellation: Some(self.token.clone()) }
    }

    /// Fails once the request was cancelled or its time is up: for the work
    /// after evaluation (serialising a large result).
    pub(crate) fn check(&self, qopts: &QueryOptions, started: Instant) -> Result<(), ApiError> {
        if self.token.is_cancelled() {
            return Err(tidemark_promql::Error::Cancelled.into());
        }
        if qopts.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(tidemark_promql::Error::Timeout.into());
        }
        Ok(())
    }
}

/// `GET|POST /api/v1/query`: `query`, `time` (default now), `timeout`,
/// `lookback_delta`, `limit`.
pub(crate) async fn instant(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let limit = a.params.limit()?;
        let t = a.params.time("time", now_ms())?;
        let started = Instant::now();
        let qopts = a.query_options(&st)?;
        let query = a.params.get("query").unwrap_or("");
        let res = st.engine.instant_query_with(&*st.db, query, t, &qopts)?;
        render(res, limit, &|| a.check(&qopts, started))
    })
    .await
    .into_response()
}

/// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step`
/// (all required), `timeout`, `lookback_delta`, `limit`.
pub(crate) async fn range(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (a, _cancel_on_drop) = match Arrived::read(&st, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    blocking(move || {
        let p = &a.params;
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
        let started = Instant::now();
        let qopts = a.query_options(&st)?;
        let query = p.get("query").unwrap_or("");
        let res = st.engine.range_query_with(&*st.db, query, start, end, step, &qopts)?;
        render(res, limit, &|| a.check(&qopts, started))
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

/// Series serialised between two interrupt checks.
const RENDER_CHECK_EVERY: usize = 256;

/// The `data` of a query answer, truncated to `limit` series (0: all).
/// `interrupt` is asked every few series whether to stop.
fn render(mut res: QueryResult, limit: usize, interrupt: &dyn Fn() -> Result<(), ApiError>) -> Result<Reply, ApiError> {
    let mut truncated = false;
    let mut out = String::with_capacity(256);
    out.push_str("{\"resultType\":\"");
    out.push_str(res.value.type_name());
    out.push_str("\",\"result\":");
    let mut reply = Reply::new(String::new()).with_annotations(&res.annotations);
    match &mut res.value {
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
                if i % RENDER_CHECK_EVERY == RENDER_CHECK_EVERY - 1 {
                    interrupt()?;
                }
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
            // Each series' points are freed once written, so the points and
            // their JSON are not both held in full at the peak.
            for (i, s) in std::mem::take(series).into_iter().take(n).enumerate() {
                if i % RENDER_CHECK_EVERY == RENDER_CHECK_EVERY - 1 {
                    interrupt()?;
                }
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
    reply.data = out;
    if truncated {
        reply.warnings.push("results truncated due to limit".into());
    }
    Ok(reply)
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
