//! The JSON envelope every API answer uses, and the API's errors.
//!
//! Success: `{"status":"success","data":…,"warnings":[…],"infos":[…]}`
//! (`warnings` and `infos` only when not empty). Failure:
//! `{"status":"error","errorType":"bad_data","error":"…"}` with the HTTP
//! status Prometheus uses for that error type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::json;

/// At most this many warnings (and, separately, infos) are listed; the
/// rest are summarised in one line, as Prometheus does.
const MAX_ANNOTATIONS: usize = 10;

/// Prometheus' error types (`errorType` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `bad_data` (400): the request is malformed.
    BadData,
    /// `timeout` (503): the query ran out of time.
    Timeout,
    /// `canceled` (503): the query was cancelled.
    Canceled,
    /// `execution` (422): the query failed while being evaluated.
    Execution,
    /// `internal` (500): the server failed.
    Internal,
    /// `not_found` (404): no such endpoint.
    NotFound,
    /// `unavailable` (500, as Prometheus answers it): the feature is off or
    /// cannot work in this configuration.
    Unavailable,
}

impl ErrorType {
    /// The `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Execution => "execution",
            ErrorType::Internal => "internal",
            ErrorType::NotFound => "not_found",
            ErrorType::Unavailable => "unavailable",
        }
    }

    /// The HTTP status Prometheus 2.x answers with. (Prometheus 3 answers
    /// `canceled` with 499; we keep 503, which clients treat as retryable.)
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::Internal | ErrorType::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API failure: its type and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct ApiError {
    /// The error type.
    pub kind: ErrorType,
    /// The message (`error` in the JSON).
    pub message: String,
}

impl ApiError {
    /// An error of type `kind`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }

    /// A `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::BadData, message)
    }

    /// `bad_data` for one parameter: `invalid parameter "<name>": <reason>`.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    /// An `internal` error.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Internal, message)
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let mut out = String::with_capacity(64 + self.message.len());
        out.push_str("{\"status\":\"error\",\"errorType\":");
        json::string(&mut out, self.kind.as_str());
        out.push_str(",\"error\":");
        json::string(&mut out, &self.message);
        out.push('}');
        out
    }
}

impl From<tidemark_promql::Error> for ApiError {
    /// Maps query failures to Prometheus' error types and messages.
    fn from(e: tidemark_promql::Error) -> ApiError {
        use tidemark_promql::Error as E;
        match e {
            E::Parse(p) => ApiError::invalid_param("query", p),
            // Mostly what Prometheus' type checker rejects at parse time
            // (disabled functions, wrong argument types).
            E::InvalidQuery(m) => ApiError::invalid_param("query", m),
            E::Execution(m) => ApiError::new(ErrorType::Execution, m),
            E::TooManySamples { .. } => ApiError::new(
                ErrorType::Execution,
                "query processing would load too many samples into memory in query execution",
            ),
            E::Timeout => ApiError::new(ErrorType::Timeout, "query timed out in query execution"),
            E::Cancelled => ApiError::new(ErrorType::Canceled, "query was canceled in query execution"),
            E::Storage(m) => ApiError::internal(m),
            E::Limit(l) => ApiError::invalid_param("query", l),
            E::Internal(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.kind.status(), self.body()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// A successful answer: the `data` member as raw JSON, plus annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The JSON of `data`.
    pub data: String,
    /// `warnings` strings.
    pub warnings: Vec<String>,
    /// `infos` strings.
    pub infos: Vec<String>,
}

impl Reply {
    /// A reply whose data is the JSON `data`, without annotations.
    pub fn new(data: String) -> Reply {
        Reply { data, warnings: Vec::new(), infos: Vec::new() }
    }

    /// Adds the query's annotations (rendered as Prometheus renders them).
    pub fn with_annotations(mut self, a: &tidemark_promql::Annotations) -> Reply {
        self.warnings.extend(a.warnings().map(|w| w.to_string()));
        self.infos.extend(a.infos().map(|i| i.to_string()));
        self
    }

    /// The whole JSON body.
    pub fn body(&self) -> String {
        self.clone().into_body()
    }

    /// The whole JSON body, built around `data` in place: a large result
    /// is moved within its own buffer, never copied into a second one.
    /// (A large query answer is written after the opening to begin with,
    /// see [`Body`].)
    pub fn into_body(mut self) -> String {
        let mut out = std::mem::take(&mut self.data);
        let mut suffix = String::new();
        self.push_body_end(&mut suffix);
        out.reserve(BODY_START.len() + suffix.len());
        out.insert_str(0, BODY_START);
        out.push_str(&suffix);
        out
    }

    /// Appends what follows `data` in the body: the annotations (at most
    /// [`MAX_ANNOTATIONS`] of each kind) and the closing brace.
    pub(crate) fn push_body_end(&self, out: &mut String) {
        for (key, list, what) in [("warnings", &self.warnings, "warning"), ("infos", &self.infos, "info")] {
            if list.is_empty() {
                continue;
            }
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            let shown = list.iter().take(MAX_ANNOTATIONS).map(String::as_str);
            let more = list.len().saturating_sub(MAX_ANNOTATIONS);
            let summary = (more > 0).then(|| format!("{more} more {what} annotations omitted"));
            json::string_array(out, shown.chain(summary.as_deref()));
        }
        out.push('}');
    }
}

/// The opening of a success body, up to its `data`.
pub(crate) const BODY_START: &str = "{\"status\":\"success\",\"data\":";

/// A whole success body written in one buffer from its opening on
/// ([`BODY_START`], then `data`, then [`Reply::push_body_end`]): a query
/// answer of many megabytes is not moved behind its opening afterwards,
/// serial work after the answer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Body(pub(crate) String);

impl IntoResponse for Body {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, self.0)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, self.into_body())
    }
}

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// What an API handler returns.
pub type ApiResult = Result<Reply, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_omits_empty_annotations_and_caps_long_lists() {
        assert_eq!(Reply::new("[]".into()).body(), r#"{"status":"success","data":[]}"#);
        let r = Reply { data: "1".into(), warnings: (0..12).map(|i| i.to_string()).collect(), infos: vec!["i".into()] };
        assert_eq!(
            r.body(),
            r#"{"status":"success","data":1,"warnings":["0","1","2","3","4","5","6","7","8","9","2 more warning annotations omitted"],"infos":["i"]}"#
        );
        let e = ApiError::invalid_param("step", "cannot parse \"x\" to a valid duration");
        assert_eq!(
            e.body(),
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": cannot parse \"x\" to a valid duration"}"#
        );
        assert_eq!(e.kind.status(), StatusCode::BAD_REQUEST);
    }
}
