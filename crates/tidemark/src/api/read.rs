//! `/api/v1/read`: remote read, answered by [`tidemark_remote::read::Reader`].
//!
//! A `SAMPLES` answer is sent whole; a `STREAMED_XOR_CHUNKS` answer is
//! written frame by frame as a blocking task reads storage, through a
//! channel of [`FRAMES_IN_FLIGHT`] frames, so the memory a stream holds is
//! a few frames whatever its length, and a client that stops reading (or
//! goes away) stops the reading of storage.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tidemark_remote::read::{ReadBody, Reader};

use super::ApiState;

/// Frames buffered between the task reading storage and the connection.
pub(crate) const FRAMES_IN_FLIGHT: usize = 4;

fn plain(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `POST /api/v1/read`: reads at most the reader's body limit (413
/// beyond), lets the reader decode and run the queries on the blocking
/// pool, and relays its answer, streaming a streamed one.
pub(crate) async fn read(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let reader = st.reader.clone();
    let limit = reader.options().max_body_bytes;
    let too_large = || plain(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {limit} bytes\n"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => {
            let over = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if over {
                too_large()
            } else {
                plain(StatusCode::BAD_REQUEST, format!("reading the request body failed: {e}\n"))
            };
        }
    };
    let answer = match tokio::task::spawn_blocking(move || reader.handle(&bytes)).await {
        Ok(a) => a,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("remote read handler failed: {e}\n")),
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match answer.body {
        ReadBody::Bytes(b) => Body::from(b),
        ReadBody::Stream(frames) => {
            let (tx, rx) = tokio::sync::mpsc::channel(FRAMES_IN_FLIGHT);
            tokio::task::spawn_blocking(move || {
                for frame in *frames {
                    let item = frame.map(Bytes::from).map_err(std::io::Error::other);
                    let failed = item.is_err();
                    // The receiver is gone when the client went away: stop reading.
                    if tx.blocking_send(item).is_err() || failed {
                        break;
                    }
                }
            });
            Body::new(FrameBody(rx))
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            r.headers_mut().insert(n, v);
        }
    }
    r
}

/// A response body fed frame by frame through a channel; an error item
/// aborts the response (the client sees it cut short).
struct FrameBody(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for FrameBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// `/metrics` families of remote read.
#[derive(Debug)]
pub(crate) struct ReadCollector(pub(crate) Reader);

impl prometheus_client::collector::Collector for ReadCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        crate::metrics::labelled_counter(
            &mut enc,
            "tidemark_remote_read_requests",
            "Remote read requests answered, by response type; 'failed' were refused with an error status.",
            "response_type",
            &[
                ("samples", s.samples_requests),
                ("streamed_xor_chunks", s.streamed_requests),
                ("failed", s.failed_requests),
            ],
        )?;
        let counters = [
            (
                "tidemark_remote_read_samples_sent",
                "Samples (floats and histograms) sent by remote read.",
                s.samples_sent,
            ),
            ("tidemark_remote_read_chunks_sent", "Chunks sent in streamed remote read answers.", s.chunks_sent),
            ("tidemark_remote_read_bytes_sent", "Body bytes sent by remote read.", s.bytes_sent),
        ];
        for (name, help, v) in counters {
            let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)?;
        }
        let m = enc.encode_descriptor(
            "tidemark_remote_read_queries",
            "Remote read requests running now (a stream until its last frame is written).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(s.in_flight).unwrap_or(i64::MAX)).encode(m)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use hyper::body::Body as _;
    use prost::Message;
    use tidemark_remote::proto::read::{LabelMatcher, MatcherType, Query, ReadRequest, ResponseType};
    use tidemark_remote::read::ReadOptions;
    use tidemark_storage::{Db, Labels};
    use tower::ServiceExt;

    use crate::api::{router, ApiOptions, ApiState};

    fn streamed_request() -> Request<Body> {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: 0,
                end_timestamp_ms: i64::MAX,
                matchers: vec![LabelMatcher {
                    r#type: MatcherType::Eq as i32,
                    name: "__name__".into(),
                    value: "m".into(),
                }],
                hints: None,
            }],
            accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
        };
        let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
        Request::post("/api/v1/read").body(Body::from(body)).unwrap()
    }

    #[test]
    fn a_client_that_goes_away_gives_its_slot_back() {
        let db = Arc::new(Db::in_memory().unwrap());
        let mut app = db.appender();
        for i in 0..200 {
            let l = Labels::new([("__name__", "m"), ("i", &i.to_string())]).unwrap();
            app.append(&l, 1000, 1.0).unwrap();
        }
        app.commit().unwrap();
        let remote_read = ReadOptions { max_concurrent: 1, queue_timeout: Duration::ZERO, ..ReadOptions::default() };
        let state = Arc::new(ApiState::new(db, ApiOptions { remote_read, ..ApiOptions::default() }));
        let reader = state.reader.clone();
        let app = router(state);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            // 200 frames, more than the channel holds: the writer blocks.
            let resp = app.clone().oneshot(streamed_request()).await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut body = resp.into_body();
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await.unwrap().unwrap();
            // The slot is taken: a second read is refused at once.
            let second = app.clone().oneshot(streamed_request()).await.unwrap();
            assert_eq!(second.status(), 503);
            drop(body);
            // The writer notices at its next frame and gives the slot back.
            let mut waited = 0;
            while reader.stats().in_flight > 0 {
                assert!(waited < 500, "the slot was never given back");
                tokio::time::sleep(Duration::from_millis(10)).await;
                waited += 1;
            }
            let third = app.clone().oneshot(streamed_request()).await.unwrap();
            assert_eq!(third.status(), 200);
            let all = axum::body::to_bytes(third.into_body(), usize::MAX).await.unwrap();
            assert!(all.len() > 200 * 10, "the whole answer: {} bytes", all.len());
        });
        assert!(reader.stats().samples_sent < 2 * 200, "the first stream stopped early");
    }
}
