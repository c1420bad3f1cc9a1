//! A request body that must be fully received by a deadline.
//!
//! The header-read timeout stops a client that trickles its headers; this
//! stops one that sends complete headers and then trickles the body (a
//! remote-write POST declaring a megabyte and sending a byte a second).
//! Once the deadline passes, the next read of the body fails, so the
//! handler answers (remote write: 400 "reading the request body failed")
//! and the connection is released.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error a late body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the read timeout of {0:?}")]
pub struct BodyTimeout(pub Duration);

/// `inner`, failing once `timeout` has passed since it was wrapped.
pub struct DeadlineBody<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<B> DeadlineBody<B> {
    /// Wraps `inner`; the clock starts now.
    pub fn new(inner: B, timeout: Duration) -> DeadlineBody<B> {
        DeadlineBody { inner, sleep: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)), timeout }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body whose sender never sends.
    struct Never;

    impl Body for Never {
        type Data = axum::body::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<axum::body::Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_arrives_in_time_passes_and_a_late_one_fails() {
        let quick = axum::body::Body::new(DeadlineBody::new(axum::body::Body::from("abc"), Duration::from_secs(5)));
        assert_eq!(axum::body::to_bytes(quick, 100).await.unwrap(), &b"abc"[..]);

        let started = std::time::Instant::now();
        let late = axum::body::Body::new(DeadlineBody::new(Never, Duration::from_millis(200)));
        let e = axum::body::to_bytes(late, 100).await.expect_err("the deadline fails the body");
        let chain = format!("{e} {:?}", std::error::Error::source(&e));
        assert!(chain.contains("read timeout of 200ms"), "{chain}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
