//! A tiny HTTP server on 127.0.0.1 that records every request it gets:
//! the webhook receiver Alertmanager notifies, or a stand-in Alertmanager
//! that captures what a notifier posts.
//!
//! It speaks just enough HTTP/1.1 for that: keep-alive, `Content-Length`
//! and chunked bodies, and an answer with a settable status and an empty
//! body. Dropping it stops the server and every connection thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::KitError;

/// Largest request accepted (head and body); a larger one closes the
/// connection with 413.
const MAX_REQUEST: usize = 16 << 20;
/// How often blocked reads and the accept loop look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The request target: path and query (`/prefix/api/v2/alerts`).
    pub path: String,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    arrived: Condvar,
    status: AtomicU16,
    /// While true, answers wait (the request is recorded first).
    held: Mutex<bool>,
    released: Condvar,
    stop: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn requests(&self) -> MutexGuard<'_, Vec<ReceivedRequest>> {
        // A panicking connection thread cannot leave the list half-written
        // (push is its only mutation), so a poisoned lock is still usable.
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A recording HTTP server on `127.0.0.1:<free port>`.
///
/// ```
/// use std::time::Duration;
/// use tidemark_testkit::{post, WebhookReceiver};
///
/// let hook = WebhookReceiver::start().unwrap();
/// post(&format!("{}/hook", hook.url()), &[("Content-Type", "application/json")], b"{\"status\":\"firing\"}").unwrap();
/// let got = hook.wait_for(|r| !r.is_empty(), Duration::from_secs(10)).unwrap();
/// assert_eq!((got[0].path.as_str(), got[0].text().as_str()), ("/hook", "{\"status\":\"firing\"}"));
/// ```
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Listens on a free loopback port and answers every request 200.
    pub fn start() -> Result<WebhookReceiver, KitError> {
        let io = |what, source| KitError::Io { what, path: "127.0.0.1:0".into(), source };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io("listen on", e))?;
        let addr = listener.local_addr().map_err(|e| io("read the address of", e))?;
        listener.set_nonblocking(true).map_err(|e| io("configure", e))?;
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            status: AtomicU16::new(200),
            held: Mutex::new(false),
            released: Condvar::new(),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("webhook-accept".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| io("start a thread for", e))?;
        Ok(WebhookReceiver { addr, shared, accept: Some(accept) })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer every following request with `status` (e.g. 500 to play a
    /// failing Alertmanager).
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// From now on, record each request but hold its answer until
    /// [`WebhookReceiver::release`] (or drop): a slow Alertmanager.
    pub fn hold(&self) {
        *self.shared.held.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Answers every held request and stops holding.
    pub fn release(&self) {
        *self.shared.held.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.shared.released.notify_all();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests().clone()
    }

    /// Waits until `done(requests so far)` holds and returns the requests;
    /// fails after `timeout` saying what did arrive.
    pub fn wait_for(
        &self,
        mut done: impl FnMut(&[ReceivedRequest]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedRequest>, KitError> {
        let deadline = Instant::now() + timeout;
        let mut reqs = self.shared.requests();
        loop {
            if done(&reqs) {
                return Ok(reqs.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                let seen: Vec<String> = reqs.iter().map(|r| format!("{} {} {}", r.method, r.path, r.text())).collect();
                return Err(KitError::Timeout {
                    what: format!("the expected requests at {}", self.url()),
                    timeout,
                    detail: format!("{} received:\n{}", reqs.len(), seen.join("\n")),
                });
            }
            reqs = self.shared.arrived.wait_timeout(reqs, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.release();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let conns = std::mem::take(&mut *self.shared.connections.lock().unwrap_or_else(|p| p.into_inner()));
        for h in conns {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                if let Ok(h) = std::thread::Builder::new().name("webhook-conn".into()).spawn(move || serve(stream, &s))
                {
                    let mut conns = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
                    conns.retain(|h| !h.is_finished());
                    conns.push(h);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Serves one connection until the peer closes it, it breaks HTTP, or the
/// receiver stops.
fn serve(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match parse_request(&buf) {
            Parse::Complete(req, used) => {
                buf.drain(..used);
                let close = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                // Record before answering: a client that has its answer may
                // look at the receiver at once.
                shared.requests().push(req);
                shared.arrived.notify_all();
                let mut held = shared.held.lock().unwrap_or_else(|p| p.into_inner());
                while *held && !shared.stop.load(Ordering::Relaxed) {
                    held = shared.released.wait(held).unwrap_or_else(|p| p.into_inner());
                }
                drop(held);
                let status = shared.status.load(Ordering::Relaxed);
                let reason = if status == 200 { "OK" } else { "Status" };
                let answer = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n");
                if stream.write_all(answer.as_bytes()).is_err() || close {
                    return;
                }
                continue;
            }
            Parse::Bad(status) => {
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status} Bad\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
                return;
            }
            Parse::Incomplete => {}
        }
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

enum Parse {
    Complete(ReceivedRequest, usize),
    Incomplete,
    Bad(u16),
}

fn parse_request(buf: &[u8]) -> Parse {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_REQUEST { Parse::Bad(431) } else { Parse::Incomplete };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(path)) = (first.next(), first.next()) else {
        return Parse::Bad(400);
    };
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Parse::Bad(400);
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let body_start = head_end + 4;
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (body, used) = if chunked {
        match dechunk(&buf[body_start..]) {
            Ok(Some((body, n))) => (body, body_start + n),
            Ok(None) => return Parse::Incomplete,
            Err(()) => return Parse::Bad(400),
        }
    } else {
        let len = match header("content-length").map(|v| v.parse::<usize>()) {
            None => 0,
            Some(Ok(n)) if n <= MAX_REQUEST => n,
            Some(Ok(_)) => return Parse::Bad(413),
            Some(Err(_)) => return Parse::Bad(400),
        };
        if buf.len() < body_start + len {
            return Parse::Incomplete;
        }
        (buf[body_start..body_start + len].to_vec(), body_start + len)
    };
    let req = ReceivedRequest { method: method.to_string(), path: path.to_string(), headers, body };
    Parse::Complete(req, used)
}

/// A chunked body: `Ok(Some((body, bytes used)))` once the last chunk and
/// the trailer's end arrived, `Ok(None)` while incomplete.
fn dechunk(mut b: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let total = b.len();
    let mut body = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| ())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| ())?;
        if body.len() + size > MAX_REQUEST {
            return Err(());
        }
        b = &b[eol + 2..];
        if size == 0 {
            // Trailer fields, each ending in CRLF, then an empty line.
            loop {
                match b.windows(2).position(|w| w == b"\r\n") {
                    None => return Ok(None),
                    Some(0) => return Ok(Some((body, total - b.len() + 2))),
                    Some(p) => b = &b[p + 2..],
                }
            }
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&b[..size]);
        if &b[size..size + 2] != b"\r\n" {
            return Err(());
        }
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\nGET";
        match parse_request(raw) {
            Parse::Complete(r, used) => {
                assert_eq!((r.path.as_str(), r.body.as_slice()), ("/x", b"abcde".as_slice()));
                assert_eq!(&raw[used..], b"GET");
            }
            _ => panic!("not parsed"),
        }
        assert!(matches!(parse_request(&raw[..raw.len() - 6]), Parse::Incomplete));
        assert!(matches!(parse_request(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), Parse::Incomplete));
        assert!(matches!(parse_request(b"POST /x HTTP/1.1\r\nContent-Length: x\r\n\r\n"), Parse::Bad(400)));
    }

    #[test]
    fn records_requests_and_answers_the_set_status() {
        let hook = WebhookReceiver::start().expect("start");
        let http = crate::Http::new(Duration::from_secs(10));
        let r = http.post(&format!("{}/a?b=1", hook.url()), &[("X-Test", "yes")], b"one").expect("post");
        assert_eq!(r.status, 200);
        hook.set_status(503);
        let r = http.post(&format!("{}/b", hook.url()), &[], b"two").expect("post");
        assert_eq!(r.status, 503);
        let got = hook.wait_for(|r| r.len() == 2, Duration::from_secs(10)).expect("two requests");
        assert_eq!(got[0].path, "/a?b=1");
        assert_eq!(got[0].header("x-test"), Some("yes"));
        assert_eq!((got[0].text(), got[1].text()), ("one".to_string(), "two".to_string()));
        let err = hook.wait_for(|r| r.len() == 3, Duration::from_millis(50)).unwrap_err().to_string();
        assert!(err.contains("2 received") && err.contains("POST /b two"), "{err}");
    }
}
