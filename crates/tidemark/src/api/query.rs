//! `/api/v1/query` and `/api/v1/query_range`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tidemark_promql::{CancellationToken, QueryOptions, QueryResult, Value, VectorSample};

use super::params::{parse_duration, parse_time, Params};
use super::response::{ApiError, Body, Reply, BODY_START};
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

/// Asked every few series whether to stop serialising; shared by the
/// threads that write one answer's parts.
type Interrupt<'a> = &'a (dyn Fn() -> Result<(), ApiError> + Sync);

/// Below this many samples a vector answer is written on one thread.
const PARALLEL_RENDER_MIN: usize = 8192;

/// At most this many threads write one vector answer.
const PARALLEL_RENDER_MAX: usize = 4;

/// Appends the samples of a vector answer, comma-separated, to `out`. A
/// large answer (64 k series, 10 MB of JSON for a `rate` over every
/// target) is cut into contiguous parts written at once on several threads
/// and joined in order, each part's label sets freed by the thread that
/// wrote them: the same bytes as one thread writing them all, in a fraction
/// of the time the request otherwise waits after the evaluation. The parts
/// are slices of the one list (no part is copied out of it).
fn vector_parts(out: &mut String, mut samples: Vec<VectorSample>, interrupt: Interrupt<'_>) -> Result<(), ApiError> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = cores.min(PARALLEL_RENDER_MAX).min(samples.len() / (PARALLEL_RENDER_MIN / 2)).max(1);
    if threads <= 1 {
        return vector_part(out, true, &mut samples, interrupt);
    }
    let per = samples.len().div_ceil(threads);
    let written: Vec<Result<String, ApiError>> = std::thread::scope(|scope| {
        let mut parts = samples.chunks_mut(per);
        let first = parts.next().unwrap_or_default();
        let handles: Vec<_> = parts
            .map(|part| {
                scope.spawn(move || {
                    let mut s = String::new();
                    vector_part(&mut s, false, part, interrupt).map(|()| s)
                })
            })
            .collect();
        let head = vector_part(out, true, first, interrupt);
        let mut written = vec![head.map(|()| String::new())];
        for h in handles {
            written.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        written
    });
    let mut parts = written.into_iter();
    parts.next().transpose()?;
    for part in parts {
        out.push_str(&part?);
    }
    Ok(())
}

/// Appends `samples` as JSON objects to `out`, each after a comma unless it
/// is the answer's first (`first` for the part that starts the answer).
/// Each label set is freed once written (left empty in the list), on the
/// thread that wrote it.
fn vector_part(
    out: &mut String,
    first: bool,
    samples: &mut [VectorSample],
    interrupt: Interrupt<'_>,
) -> Result<(), ApiError> {
    out.reserve(samples.len() * 64);
    for (i, s) in samples.iter_mut().enumerate() {
        if i % RENDER_CHECK_EVERY == RENDER_CHECK_EVERY - 1 {
            interrupt()?;
        }
        if i > 0 || !first {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json::labels(out, &std::mem::take(&mut s.labels));
        match &s.h {
            Some(h) => {
                out.push_str(",\"histogram\":[");
                json::timestamp(out, s.t);
                out.push(',');
                json::histogram(out, h);
            }
            None => {
                out.push_str(",\"value\":[");
                json::timestamp(out, s.t);
                out.push(',');
                json::value(out, s.v);
            }
        }
        out.push_str("]}");
    }
    Ok(())
}

/// The body of a query answer, its `data` truncated to `limit` series (0:
/// all), written after the body's opening in the same buffer. `interrupt`
/// is asked every few series whether to stop.
fn render(mut res: QueryResult, limit: usize, interrupt: Interrupt<'_>) -> Result<Body, ApiError> {
    let mut truncated = false;
    let mut out = String::with_capacity(256);
    out.push_str(BODY_START);
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
            let mut samples = std::mem::take(samples);
            samples.truncate(n);
            out.push('[');
            vector_parts(&mut out, samples, interrupt)?;
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
                // As Prometheus: each key only when the series has points
                // of that kind.
                if !s.samples.is_empty() {
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
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, p) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        json::timestamp(&mut out, p.t);
                        out.push(',');
                        json::histogram(&mut out, &p.h);
                        out.push(']');
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
    if truncated {
        reply.warnings.push("results truncated due to limit".into());
    }
    reply.push_body_end(&mut out);
    Ok(Body(out))
}

#[cfg(test)]
mod tests {
    use tidemark_promql::VectorSample;
    use tidemark_storage::Labels;

    fn samples(n: usize) -> Vec<VectorSample> {
        (0..n)
            .map(|i| VectorSample {
                labels: Labels::new([("instance", format!("host-{i}").as_str()), ("job", "a\"b")]).unwrap(),
                t: 1_700_000_000_000 + i as i64,
                v: i as f64 / 7.0,
                h: None,
            })
            .collect()
    }

    #[test]
    fn a_vector_written_in_parts_is_the_same_bytes() {
        let never = || Ok(());
        for n in
            [0, 1, 2, super::PARALLEL_RENDER_MIN - 1, super::PARALLEL_RENDER_MIN, 3 * super::PARALLEL_RENDER_MIN + 5]
        {
            let mut one = String::new();
            super::vector_part(&mut one, true, &mut samples(n), &never).unwrap();
            let mut parts = String::new();
            super::vector_parts(&mut parts, samples(n), &never).unwrap();
            assert_eq!(parts, one, "{n} samples");
            assert_eq!(one.matches("{\"metric\":").count(), n);
        }
    }

    #[test]
    fn a_vector_written_in_parts_stops_when_interrupted() {
        let stop = || Err(super::ApiError::internal("stop"));
        let mut out = String::new();
        let err = super::vector_parts(&mut out, samples(3 * super::PARALLEL_RENDER_MIN), &stop).unwrap_err();
        assert_eq!(err.message, "stop");
    }

    /// The body written from its opening on is the envelope `Reply` puts
    /// around the same data and annotations: a vector (in parts or not),
    /// with the limit's warning and the query's own annotations (more than
    /// are listed), and a matrix.
    #[test]
    fn a_body_written_in_place_is_the_reply_body() {
        use tidemark_promql::{Annotation, Annotations, QueryResult, QueryStats, RangeSeries, Value};
        use tidemark_storage::Sample;
        let never = || Ok(());
        let mut many = Annotations::default();
        for i in 0..12 {
            many.add(Annotation::warning(format!("w{i}"), None));
        }
        many.add(Annotation::info("i", None));
        let vector_data = |n: usize| {
            let mut one = String::from(r#"{"resultType":"vector","result":["#);
            super::vector_part(&mut one, true, &mut samples(n), &never).unwrap();
            one.push_str("]}");
            one
        };
        let big = 3 * super::PARALLEL_RENDER_MIN;
        let matrix = Value::Matrix(vec![RangeSeries {
            labels: Labels::new([("job", "x")]).unwrap(),
            samples: vec![Sample { t: 1_000, v: 0.5 }, Sample { t: 2_500, v: f64::NAN }],
            histograms: Vec::new(),
        }]);
        let matrix_data =
            r#"{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[1,"0.5"],[2.500,"NaN"]]}]}"#;
        let cases = [
            (Value::Vector(samples(3)), 0, Annotations::default(), vector_data(3), false),
            (Value::Vector(samples(big)), 0, many.clone(), vector_data(big), false),
            (Value::Vector(samples(10)), 4, many, vector_data(4), true),
            (matrix, 0, Annotations::default(), matrix_data.to_string(), false),
        ];
        for (value, limit, annotations, data, truncated) in cases {
            let res = QueryResult { value, annotations, stats: QueryStats::default() };
            let mut want = super::Reply::new(data).with_annotations(&res.annotations);
            if truncated {
                want.warnings.push("results truncated due to limit".into());
            }
            let body = super::render(res, limit, &never).unwrap().0;
            assert_eq!(body, want.into_body());
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(11_000), "11,000");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
