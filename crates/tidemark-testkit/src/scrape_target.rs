//! A scrape target on 127.0.0.1 for end-to-end tests: every request is a
//! scrape, answered with the body of scrape `n` (1-based) when the
//! scraper's `Accept` asks for the target's format, and with a 406 that
//! says why otherwise (so a Prometheus started without the needed feature
//! flag fails the test with a reason instead of scraping nothing).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running scrape target; stopped when dropped.
pub struct ScrapeTarget {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Scrapes answered with a body so far.
    pub scrapes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl ScrapeTarget {
    /// Starts a target that answers scrapers whose `Accept` contains
    /// `accept` with `body(n)` as `content_type`.
    pub fn start(
        accept: &'static str,
        content_type: &'static str,
        body: impl Fn(u64) -> Vec<u8> + Send + 'static,
    ) -> std::io::Result<ScrapeTarget> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let scrapes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sc, sp) = (scrapes.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                serve(conn, accept, content_type, &body, &sc);
            }
        });
        Ok(ScrapeTarget { addr, scrapes, stop })
    }

    /// Scrapes answered so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // unblocks accept
    }
}

fn serve(conn: TcpStream, want: &str, content_type: &str, body: &dyn Fn(u64) -> Vec<u8>, scrapes: &AtomicU64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    let mut accept = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("accept") {
                accept = v.trim().to_string();
            }
        }
    }
    if !accept.contains(want) {
        let msg = format!("this target only speaks {want}; Accept was {accept:?}");
        let _ =
            write!(w, "HTTP/1.1 406 Not Acceptable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len());
        return;
    }
    let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
    let b = body(n);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        b.len()
    );
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(&b);
}
