//! `/api/v1/write`: remote write, handed to [`tidemark_remote::Receiver`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ApiState;

fn plain(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `POST /api/v1/write`: refuses cross-origin browser requests (403, see
/// `origin.rs`), reads at most `max_remote_write_body` bytes (413
/// beyond), then lets the receiver decode, validate and append on the
/// blocking pool (appends wait for the WAL) and relays its answer.
pub(crate) async fn write(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    if let Some(refused) = super::origin::check(req.headers(), req.uri()) {
        return refused;
    }
    let (parts, body) = req.into_parts();
    let header_str =
        |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let limit = st.options.max_remote_write_body;
    let too_large = || plain(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {limit} bytes\n"));
    // A declared length over the limit is refused before reading anything.
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(Body::new(body), limit).await {
        Ok(b) => b,
        Err(e) => {
            // axum reports the limit as an error whose text names it.
            let over = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if over {
                too_large()
            } else {
                plain(StatusCode::BAD_REQUEST, format!("reading the request body failed: {e}\n"))
            };
        }
    };
    let receiver = st.receiver.clone();
    let handle = move || receiver.handle(content_type.as_deref(), content_encoding.as_deref(), &bytes);
    // On the multi-threaded runtime the request is handled on this worker
    // thread (its other tasks move to another thread meanwhile): one
    // thread hand-off less each way than the blocking pool. A
    // current-thread runtime (tests) cannot block in place.
    let answer = if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        Ok(tokio::task::block_in_place(handle))
    } else {
        tokio::task::spawn_blocking(handle).await
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("remote write handler failed: {e}\n")),
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = plain(status, answer.body);
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            r.headers_mut().insert(n, v);
        }
    }
    r
}
