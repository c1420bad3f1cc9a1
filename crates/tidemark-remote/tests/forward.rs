//! The forwarder against a small in-test remote-write receiver: delivery
//! bit-exact and in order (1.0 and 2.0), retries, drops, restarts, the WAL
//! hold and the lag gauge.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use tidemark_remote::forward::{Forwarder, ForwarderOptions, ForwarderStats, Protocol};
use tidemark_remote::proto::{v1, v2};
use tidemark_storage::{stale_nan, Db, Labels};

type Series = Vec<(String, String)>;
/// (timestamp, value bits) in arrival order.
type Points = Vec<(i64, u64)>;

/// What the receiver got and what it should answer next.
#[derive(Default)]
struct State {
    /// Samples by series, in arrival order: (t, value bits).
    samples: BTreeMap<Series, Vec<(i64, u64)>>,
    /// Statuses for the next requests, with a header value: `Retry-After`
    /// for errors, `X-Prometheus-Remote-Write-Samples-Written` for 2xx.
    /// Then 204.
    script: VecDeque<(u16, Option<&'static str>)>,
    /// Headers of every request (lower-cased names).
    headers: Vec<BTreeMap<String, String>>,
    requests: usize,
}

/// A minimal HTTP/1.1 remote-write receiver on 127.0.0.1.
struct Receiver {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Receiver { url: format!("http://{addr}/api/v1/write"), state, stop, addr }
    }

    fn script(&self, answers: &[(u16, Option<&'static str>)]) {
        self.state.lock().unwrap().script.extend(answers.iter().copied());
    }

    fn total(&self) -> usize {
        self.state.lock().unwrap().samples.values().map(Vec::len).sum()
    }

    fn samples(&self) -> BTreeMap<Series, Vec<(i64, u64)>> {
        self.state.lock().unwrap().samples.clone()
    }

    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.total() < n {
            assert!(Instant::now() < deadline, "timed out: {} of {n} samples arrived", self.total());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // unblocks accept
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let (status, header) = {
            let mut st = state.lock().unwrap();
            st.requests += 1;
            st.headers.push(headers.clone());
            st.script.pop_front().unwrap_or((204, None))
        };
        let mut text = String::new();
        if status < 300 {
            match decode(&headers, &body) {
                Ok(series) => {
                    let mut st = state.lock().unwrap();
                    for (s, samples) in series {
                        st.samples.entry(s).or_default().extend(samples);
                    }
                }
                Err(e) => panic!("receiver could not decode a request: {e}"),
            }
        } else {
            text = format!("scripted failure {status}");
        }
        let mut resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", text.len());
        match header {
            Some(v) if status < 300 => resp.push_str(&format!("X-Prometheus-Remote-Write-Samples-Written: {v}\r\n")),
            Some(v) => resp.push_str(&format!("Retry-After: {v}\r\n")),
            None => {}
        }
        resp.push_str("\r\n");
        resp.push_str(&text);
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn decode(headers: &BTreeMap<String, String>, body: &[u8]) -> Result<Vec<(Series, Points)>, String> {
    assert_eq!(headers.get("content-encoding").map(String::as_str), Some("snappy"));
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| e.to_string())?;
    let ct = headers.get("content-type").cloned().unwrap_or_default();
    if ct == "application/x-protobuf" {
        let req = v1::WriteRequest::decode(raw.as_slice()).map_err(|e| e.to_string())?;
        Ok(req
            .timeseries
            .into_iter()
            .map(|ts| {
                let labels = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
                (labels, ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect())
            })
            .collect())
    } else if ct == "application/x-protobuf;proto=io.prometheus.write.v2.Request" {
        let req = v2::Request::decode(raw.as_slice()).map_err(|e| e.to_string())?;
        assert_eq!(req.symbols.first().map(String::as_str), Some(""));
        let sym = |r: u32| req.symbols[r as usize].clone();
        Ok(req
            .timeseries
            .iter()
            .map(|ts| {
                let labels = ts.labels_refs.chunks(2).map(|p| (sym(p[0]), sym(p[1]))).collect();
                (labels, ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect())
            })
            .collect())
    } else {
        Err(format!("unexpected content type {ct:?}"))
    }
}

fn db(dir: &Path) -> Db {
    Db::builder(dir).block_range(10_000).wal_segment_size(4096).maintenance_interval(None).open().unwrap()
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", "fwd_test".to_string()), ("i", i.to_string()), ("job", "forwarder".to_string())]).unwrap()
}

fn series_key(l: &Labels) -> Series {
    l.iter().map(|l| (l.name.to_string(), l.value.to_string())).collect()
}

/// Awkward values: staleness marker, a NaN payload, signed zero, infinities.
fn value(i: usize, t: i64) -> f64 {
    match (t / 1000 + i as i64) % 7 {
        0 => stale_nan(),
        1 => f64::from_bits(0x7ff8_0000_dead_beef),
        2 => -0.0,
        3 => f64::NEG_INFINITY,
        4 => f64::INFINITY,
        _ => t as f64 * 0.25 + i as f64,
    }
}

/// Appends samples at `from..to` (1 s apart) for `n` series, one commit per
/// timestamp; returns what was written, by series.
fn write(db: &Db, n: usize, from: i64, to: i64, expect: &mut BTreeMap<Series, Vec<(i64, u64)>>) -> usize {
    write_commits(db, n, from, to, expect, false)
}

/// Like [`write`], but every sample in one commit: the forwarder then reads
/// them as one WAL record and sends them in one request, whatever the
/// scheduling between this thread and its reader.
fn write_in_one_commit(db: &Db, n: usize, from: i64, to: i64, expect: &mut BTreeMap<Series, Vec<(i64, u64)>>) -> usize {
    write_commits(db, n, from, to, expect, true)
}

/// `n` series with a sample every second in `[from, to)`: one commit per
/// second, or a single commit.
fn write_commits(
    db: &Db,
    n: usize,
    from: i64,
    to: i64,
    expect: &mut BTreeMap<Series, Vec<(i64, u64)>>,
    one_commit: bool,
) -> usize {
    let mut count = 0;
    let mut app = db.appender();
    for t in (from..to).step_by(1000) {
        for i in 0..n {
            let v = value(i, t);
            app.append(&labels(i), t, v).unwrap();
            expect.entry(series_key(&labels(i))).or_default().push((t, v.to_bits()));
            count += 1;
        }
        if !one_commit {
            std::mem::replace(&mut app, db.appender()).commit().unwrap();
        }
    }
    if one_commit {
        app.commit().unwrap();
    }
    count
}

fn opts(name: &str, url: &str) -> ForwarderOptions {
    let mut o = ForwarderOptions::new(name, url);
    o.shards = 3;
    o.max_samples_per_send = 50;
    o.batch_send_deadline = Duration::from_millis(20);
    o.min_backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(40);
    o.poll_interval = Duration::from_millis(10);
    o.timeout = Duration::from_secs(5);
    o
}

fn wait_stats(fwd: &Forwarder, what: &str, ok: impl Fn(&ForwarderStats) -> bool) -> ForwarderStats {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = fwd.stats();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_sample_arrives_bit_exact_and_in_order_with_both_protocols() {
    for protocol in [Protocol::V1, Protocol::V2] {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let rx = Receiver::start();
        let mut expect = BTreeMap::new();
        // Some data before the forwarder starts (it ships the WAL from the
        // oldest segment), some while it runs.
        let mut n = write(&db, 7, 0, 20_000, &mut expect);
        let mut o = opts("peer", &rx.url);
        o.protocol = protocol;
        let fwd = Forwarder::start(&db, o).unwrap();
        n += write(&db, 7, 20_000, 60_000, &mut expect);
        rx.wait_for(n);
        let stats =
            wait_stats(&fwd, "everything acknowledged", |s| s.pending_samples == 0 && s.samples_sent == n as u64);
        assert_eq!(stats.lag_seconds, 0.0);
        assert_eq!(stats.newest_acked_timestamp, Some(59_000));
        let stats = fwd.stop().unwrap();
        assert_eq!(stats.samples_read, n as u64);
        assert!(stats.samples_dropped.is_empty() && stats.samples_failed.is_empty(), "{stats:?}");
        assert_eq!(rx.samples(), expect, "{protocol:?}: same series, same samples, same order, bit-exact");

        let st = rx.state.lock().unwrap();
        let h = &st.headers[0];
        let (ct, ver) = match protocol {
            Protocol::V1 => ("application/x-protobuf", "0.1.0"),
            Protocol::V2 => ("application/x-protobuf;proto=io.prometheus.write.v2.Request", "2.0.0"),
        };
        assert_eq!(h["content-type"], ct);
        assert_eq!(h["x-prometheus-remote-write-version"], ver);
        assert!(h["user-agent"].starts_with("tidemark/"), "{h:?}");
        assert!(st.requests >= n / 50, "batches of at most 50 samples");
        drop(st);
        db.close().unwrap();
    }
}

#[test]
fn server_errors_and_429_are_retried_with_retry_after_and_lag_shows() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    rx.script(&[(500, None), (503, None), (429, Some("1")), (502, None)]);
    let mut expect = BTreeMap::new();
    let n = write(&db, 2, 0, 30_000, &mut expect);
    let mut o = opts("retry", &rx.url);
    o.shards = 1;
    o.max_samples_per_send = 1000;
    let started = Instant::now();
    let fwd = Forwarder::start(&db, o).unwrap();
    let s = wait_stats(&fwd, "a failed attempt", |s| s.retries >= 1);
    assert!(s.pending_samples > 0 && s.lag_seconds > 0.0, "lag while the endpoint fails: {s:?}");
    rx.wait_for(n);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    let stats = fwd.stop().unwrap();
    assert_eq!(stats.retries, 4);
    for r in ["http_500", "http_503", "http_429", "http_502"] {
        assert_eq!(stats.samples_failed.get(r), Some(&(n as u64)), "{r}: {stats:?}");
    }
    assert_eq!(stats.requests, 5);
    assert!(stats.last_error.as_deref().is_some_and(|e| e.contains("502")), "{stats:?}");
    assert_eq!(stats.lag_seconds, 0.0);
    assert_eq!(rx.samples(), expect);
}

#[test]
fn a_non_retryable_status_drops_the_batch_counts_it_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    rx.script(&[(400, None)]);
    let mut o = opts("drop", &rx.url);
    o.shards = 1;
    o.max_samples_per_send = 1000;
    let mut lost = BTreeMap::new();
    let first = write(&db, 3, 0, 10_000, &mut lost);
    let fwd = Forwarder::start(&db, o).unwrap();
    let s = wait_stats(&fwd, "the drop", |s| !s.samples_dropped.is_empty() && s.pending_samples == 0);
    assert_eq!(s.samples_dropped.get("http_400"), Some(&(first as u64)));
    assert!(s.last_error.as_deref().is_some_and(|e| e.contains("scripted failure 400")), "body logged: {s:?}");
    let mut expect = BTreeMap::new();
    let second = write(&db, 3, 10_000, 20_000, &mut expect);
    rx.wait_for(second);
    let stats = fwd.stop().unwrap();
    assert_eq!(stats.samples_sent, second as u64);
    assert_eq!(stats.retries, 0);
    assert_eq!(rx.samples(), expect, "the rejected batch is not resent");
}

#[test]
fn a_restart_resumes_from_the_persisted_position_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    let mut expect = BTreeMap::new();
    let mut n = write(&db, 4, 0, 20_000, &mut expect);
    let fwd = Forwarder::start(&db, opts("restart", &rx.url)).unwrap();
    rx.wait_for(n);
    wait_stats(&fwd, "acknowledged", |s| s.pending_samples == 0);
    let stopped = fwd.stop().unwrap();
    let pos = std::fs::read_to_string(dir.path().join("forward/restart.position")).unwrap();
    assert_eq!(pos, format!("v1 {} {}\n", stopped.acked_position.segment, stopped.acked_position.offset));

    n += write(&db, 4, 20_000, 40_000, &mut expect);
    assert_eq!(rx.total(), n - 4 * 20, "nothing is sent while stopped");
    let fwd = Forwarder::start(&db, opts("restart", &rx.url)).unwrap();
    rx.wait_for(n);
    let stats = wait_stats(&fwd, "acknowledged", |s| s.pending_samples == 0);
    assert_eq!(stats.samples_read, 4 * 20, "only the new samples were read again");
    fwd.stop().unwrap();
    assert_eq!(rx.samples(), expect);
}

#[test]
fn the_wal_hold_keeps_unsent_data_across_a_checkpoint_while_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    let mut expect = BTreeMap::new();
    let mut n = write(&db, 3, 0, 5_000, &mut expect);
    let fwd = Forwarder::start(&db, opts("held", &rx.url)).unwrap();
    rx.wait_for(n);
    fwd.stop().unwrap();
    // While stopped: data across several block ranges, persisted to blocks;
    // the head's checkpoint would delete the unsent segments.
    n += write(&db, 3, 5_000, 60_000, &mut expect);
    assert!(db.persist_head().unwrap() >= 3);
    db.maintain().unwrap();
    let fwd = Forwarder::start(&db, opts("held", &rx.url)).unwrap();
    rx.wait_for(n);
    let stats = wait_stats(&fwd, "acknowledged", |s| s.pending_samples == 0);
    assert_eq!((stats.wal_skips, stats.wal_segments_skipped), (0, 0));
    fwd.stop().unwrap();
    assert_eq!(rx.samples(), expect);

    // Once caught up, the deferred checkpoint happens.
    let wal = db.wal_dir().unwrap();
    db.maintain().unwrap();
    assert!(std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint.")));
}

#[test]
fn without_the_hold_a_checkpoint_loses_data_and_the_loss_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    let mut expect = BTreeMap::new();
    let n = write(&db, 3, 0, 5_000, &mut expect);
    let fwd = Forwarder::start(&db, opts("released", &rx.url)).unwrap();
    rx.wait_for(n);
    fwd.stop().unwrap();
    assert!(db.release_wal_hold("forward.released").unwrap());
    write(&db, 3, 5_000, 60_000, &mut expect);
    db.persist_head().unwrap();
    let fwd = Forwarder::start(&db, opts("released", &rx.url)).unwrap();
    let stats = wait_stats(&fwd, "the skip", |s| s.wal_skips > 0 && s.pending_samples == 0);
    assert!(stats.wal_segments_skipped > 0);
    assert!(stats.last_error.as_deref().is_some_and(|e| e.contains("lost")), "{stats:?}");
    fwd.stop().unwrap();
    assert!(rx.total() < expect.values().map(Vec::len).sum::<usize>());
}

#[test]
fn invalid_options_and_in_memory_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    for (name, url) in
        [("ok", "ftp://x/"), ("ok", "not a url"), ("bad/name", "http://127.0.0.1:1/"), ("", "http://127.0.0.1:1/")]
    {
        assert!(Forwarder::start(&db, ForwarderOptions::new(name, url)).is_err(), "{name} {url}");
    }
    let mut o = ForwarderOptions::new("ok", "http://127.0.0.1:1/");
    o.shards = 0;
    assert!(Forwarder::start(&db, o).is_err());
    let mem = Db::in_memory().unwrap();
    assert!(Forwarder::start(&mem, ForwarderOptions::new("ok", "http://127.0.0.1:1/")).is_err());
}

#[test]
fn series_that_died_are_forgotten_after_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    let mut expect = BTreeMap::new();
    let fwd = Forwarder::start(&db, opts("gc", &rx.url)).unwrap();
    let mut n = write(&db, 4, 0, 5_000, &mut expect); // series 0..4
    n += write(&db, 1, 5_000, 60_000, &mut expect); // only series 0 goes on
    rx.wait_for(n);
    assert_eq!(wait_stats(&fwd, "acknowledged", |s| s.pending_samples == 0).series_tracked, 4);
    db.persist_head().unwrap();
    // The checkpoint waits for the forwarder's hold to move (the position
    // is persisted once a second); maintenance retries it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let wal = db.wal_dir().unwrap();
    while !std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint."))
    {
        assert!(Instant::now() < deadline, "no checkpoint after the forwarder caught up");
        std::thread::sleep(Duration::from_millis(50));
        db.maintain().unwrap();
    }
    // Something new to read makes the reader notice the checkpoint.
    n += write(&db, 1, 60_000, 61_000, &mut expect);
    rx.wait_for(n);
    let s = wait_stats(&fwd, "the dead series forgotten", |s| s.series_tracked == 1);
    assert_eq!(s.wal_skips, 0);
    fwd.stop().unwrap();
    assert_eq!(rx.samples(), expect);
}

#[test]
fn remote_write_2_written_counts_below_the_batch_are_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    let rx = Receiver::start();
    rx.script(&[(204, Some("0")), (204, Some("3"))]);
    let mut o = opts("written", &rx.url);
    o.protocol = Protocol::V2;
    o.shards = 1;
    o.max_samples_per_send = 1000;
    let mut expect = BTreeMap::new();
    let first = write(&db, 3, 0, 5_000, &mut expect) as u64;
    let fwd = Forwarder::start(&db, o).unwrap();
    let s = wait_stats(&fwd, "nothing written", |s| s.pending_samples == 0 && !s.samples_dropped.is_empty());
    assert_eq!(s.samples_dropped.get("v2_nothing_written"), Some(&first), "{s:?}");
    // One commit, so that the scripted partial answer meets the whole batch
    // (several commits could be read, and sent, in two requests under load).
    let second = write_in_one_commit(&db, 3, 5_000, 10_000, &mut expect) as u64;
    let s = wait_stats(&fwd, "partial write", |s| s.samples_dropped.len() == 2 && s.pending_samples == 0);
    assert_eq!(s.samples_dropped.get("v2_partially_written"), Some(&(second - 3)));
    assert_eq!(s.samples_sent, 3);
    assert_eq!(s.retries, 0, "a 2xx is never retried");
    let third = write(&db, 3, 10_000, 15_000, &mut expect) as u64;
    let s = wait_stats(&fwd, "a full write without the header", |s| s.samples_sent == 3 + third);
    assert_eq!(s.samples_read, first + second + third);
    fwd.stop().unwrap();
}

#[test]
fn stop_is_bounded_when_the_endpoint_is_down_and_unacknowledged_data_is_sent_later() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path());
    // A port nobody listens on: every attempt is a network error.
    let dead = format!(
        "http://127.0.0.1:{}/api/v1/write",
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let mut expect = BTreeMap::new();
    let n = write(&db, 3, 0, 10_000, &mut expect);
    let mut o = opts("down", &dead);
    o.flush_deadline = Duration::from_millis(300);
    let fwd = Forwarder::start(&db, o).unwrap();
    let s = wait_stats(&fwd, "network failures", |s| s.retries >= 3);
    assert!(s.samples_failed.contains_key("network"), "{s:?}");
    assert_eq!(s.pending_samples, n as u64);
    let t = Instant::now();
    let stopped = fwd.stop().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "stop took {:?}", t.elapsed());
    assert_eq!(stopped.samples_sent, 0);
    assert_eq!(stopped.acked_position.offset, 0, "nothing acknowledged, nothing skipped: {stopped:?}");

    // The same forwarder, now pointed at a working endpoint, sends it all.
    let rx = Receiver::start();
    let fwd = Forwarder::start(&db, opts("down", &rx.url)).unwrap();
    rx.wait_for(n);
    fwd.stop().unwrap();
    assert_eq!(rx.samples(), expect);
}
