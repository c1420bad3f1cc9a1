//! The accept loop of `tidemark serve`.
//!
//! - **Connection limit**: at most [`ListenOptions::max_connections`]
//!   connections are served at once. The loop does not accept while the
//!   limit is reached, so further connections wait in the kernel's listen
//!   backlog (and are refused by the kernel when that is full), as with
//!   Prometheus' `--web.max-connections`.
//! - **TLS handshake** must finish within `read_header_timeout`.
//! - **Header-read timeout**: a request's line and headers must arrive
//!   within `read_header_timeout`, counted from the connection's start for
//!   the first request and from the first byte of each later one; a
//!   connection that trickles its headers (slowloris) is closed.
//! - **Body-read timeout**: a request's body must arrive within
//!   `read_timeout` of its headers; after that, reading it fails (see
//!   [`super::deadline`]), so a client trickling a body is cut off too.
//! - **Idle timeout**: a connection with no request in flight that sends
//!   nothing for `idle_timeout` after its previous response is closed
//!   (HTTP/2: with a GOAWAY). An answer still being sent (the client reads
//!   slowly, the socket buffer is full) is in flight: like Prometheus,
//!   Tidemark has no write timeout; slow readers are bounded by the
//!   connection limit.
//! - **HTTP/2** only over TLS, chosen by ALPN (as Go's server does); plain
//!   connections speak HTTP/1.1.
//! - **Graceful shutdown**: when `shutdown` completes the loop stops
//!   accepting, idle connections are closed at once, connections with a
//!   request in flight finish it (HTTP/1.1 without keep-alive, HTTP/2 with a
//!   GOAWAY), and whatever is still open after `drain_timeout` is dropped.
//!
//! Every request is checked against the basic auth users first (401 with
//! `WWW-Authenticate: Basic`), on every route, remote write included; the
//! configured response headers are added to every answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use super::deadline::DeadlineBody;
use super::{Loaded, WebState};

/// Limits and timeouts of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// Most connections served at once (default 512, Prometheus'
    /// `--web.max-connections` default). 0 means no limit.
    pub max_connections: usize,
    /// Longest a TLS handshake, or the arrival of a request's headers, may
    /// take (default 10 s).
    pub read_header_timeout: Duration,
    /// Longest a connection may sit without a request (default 2 min).
    pub idle_timeout: Duration,
    /// Longest a request's body may take to arrive, from the end of its
    /// headers (default 5 min, Prometheus' `--web.read-timeout`).
    pub read_timeout: Duration,
    /// Longest in-flight requests may take to finish after shutdown begins
    /// (default 2 s, so that with the database's close `tidemark serve` stops
    /// within 5 s of SIGTERM).
    pub drain_timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            max_connections: 512,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            read_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// What one connection is doing, shared by its service, its I/O and its
/// watchdog.
#[derive(Debug)]
struct Activity {
    inflight: AtomicUsize,
    served: AtomicBool,
    /// When the connection last became idle (accepted or a response done).
    idle_since: Mutex<Instant>,
    /// First byte read while idle: a request's headers are arriving.
    first_byte: Mutex<Option<Instant>>,
    /// The last write could not complete: an answer is waiting for the
    /// client to read. Not idle, whatever the request guards say (hyper
    /// takes a buffered body in one frame, long before it is sent).
    write_blocked: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            inflight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            first_byte: Mutex::new(None),
            write_blocked: AtomicBool::new(false),
        }
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        *self.first_byte.lock() = None;
        RequestGuard(self.clone())
    }

    fn bytes_read(&self) {
        if self.inflight.load(Ordering::SeqCst) == 0 {
            self.first_byte.lock().get_or_insert_with(Instant::now);
        }
    }

    /// A request is being handled or its answer is still being sent.
    fn busy(&self) -> bool {
        self.inflight.load(Ordering::SeqCst) > 0 || self.write_blocked.load(Ordering::SeqCst)
    }

    /// Whether the connection should be closed now, and why. On HTTP/2,
    /// bytes between requests are mostly control frames (PING,
    /// WINDOW_UPDATE, SETTINGS acknowledgements) rather than a request's
    /// first bytes, so only the idle rules apply there.
    fn expired(&self, opts: &ListenOptions, now: Instant, h2: bool) -> Option<&'static str> {
        if self.busy() {
            return None;
        }
        if let Some(t) = (*self.first_byte.lock()).filter(|_| !h2) {
            return (now.duration_since(t) > opts.read_header_timeout).then_some("header read timeout");
        }
        let since = now.duration_since(*self.idle_since.lock());
        if self.served.load(Ordering::SeqCst) {
            (since > opts.idle_timeout).then_some("idle timeout")
        } else {
            // Nothing sent since the connection opened: the first request's
            // headers are late.
            (since > opts.read_header_timeout).then_some("header read timeout")
        }
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        *a.idle_since.lock() = Instant::now();
        *a.first_byte.lock() = None;
        a.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`RequestGuard`].
struct GuardedBody {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// I/O that tells the watchdog when bytes arrive.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<T> Tracked<T> {
    fn note_write<R>(&self, r: Poll<R>) -> Poll<R> {
        self.activity.write_blocked.store(r.is_pending(), Ordering::SeqCst);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `router` on `listener` with the web configuration of `web` until
/// `shutdown` completes, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    web: Arc<WebState>,
    opts: ListenOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limit = if opts.max_connections == 0 { Semaphore::MAX_PERMITS } else { opts.max_connections };
    let permits = Arc::new(Semaphore::new(limit));
    let (stop_tx, stop_rx) = watch::channel(false);
    let opts = Arc::new(opts);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let loaded = web.current();
        let router = router.clone();
        let opts = opts.clone();
        let stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let activity = Arc::new(Activity::new());
            match &loaded.tls {
                None => {
                    let io = Tracked { inner: tcp, activity: activity.clone() };
                    serve_connection(io, false, router, loaded.clone(), activity, &opts, stop).await;
                }
                Some(acceptor) => match tokio::time::timeout(opts.read_header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let h2 = loaded.config.http2 && tls.get_ref().1.alpn_protocol() == Some(b"h2");
                        let io = Tracked { inner: tls, activity: activity.clone() };
                        serve_connection(io, h2, router, loaded.clone(), activity, &opts, stop).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    // Idle connections close now; busy ones finish their request.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.drain_timeout, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            drain = ?opts.drain_timeout,
            "connections still busy after the drain timeout; closing them"
        );
        conns.abort_all();
    }
    Ok(())
}

async fn serve_connection<I>(
    io: I,
    h2: bool,
    router: axum::Router,
    loaded: Arc<Loaded>,
    activity: Arc<Activity>,
    opts: &ListenOptions,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
    let act = activity.clone();
    let read_timeout = opts.read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let loaded = loaded.clone();
        let guard = act.begin();
        async move {
            let mut resp = match loaded.auth.authorize(req.headers()).await {
                Err(r) => r,
                Ok(()) => {
                    match router.oneshot(req.map(|b| axum::body::Body::new(DeadlineBody::new(b, read_timeout)))).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                }
            };
            for (k, v) in &loaded.headers {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
            // The request stays "in flight" until its answer is fully sent
            // (hyper drops the body then), so a large answer to a slow
            // reader is not cut off as an idle connection.
            Ok::<_, Infallible>(resp.map(|body| GuardedBody { inner: body, _guard: guard }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let check_every =
        (opts.read_header_timeout.min(opts.idle_timeout) / 4).clamp(Duration::from_millis(25), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check_every);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if !activity.busy() {
                    return; // idle: close at once
                }
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                if let Some(why) = activity.expired(opts, Instant::now(), h2) {
                    tracing::debug!(reason = why, h2, "closing connection");
                    if h2 && !stopping {
                        // GOAWAY, then hyper closes the connection itself.
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    } else {
                        return;
                    }
                }
            }
        }
    }
}
