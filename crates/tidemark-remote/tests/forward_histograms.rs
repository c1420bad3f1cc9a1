//! Native histograms through the forwarder, end to end inside the crate: a
//! `Db` with float and native histogram samples (integer, float,
//! custom-bucket, staleness markers, `-0.0` sums) is forwarded over HTTP,
//! with remote write 1.0 and 2.0, to a real [`Receiver`] over another
//! `Db`, and every sample must read back there as written. Also: the
//! forwarder's histogram counters, and a 2.0 answer that reports fewer
//! histograms written than sent.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use tidemark_remote::forward::{Forwarder, ForwarderOptions, ForwarderStats, Protocol};
use tidemark_remote::histogram::to_proto;
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::histogram::{FloatHistogram, Histogram, HistogramSample, HistogramValue, Span};
use tidemark_storage::{stale_nan, Db, Labels, MatchOp, Matcher, SampleIterator};

/// A header rewrite for the next 2xx answers: (header name, value).
type Rewrite = (&'static str, &'static str);

/// An HTTP/1.1 front for a real receiver on 127.0.0.1.
struct Front {
    url: String,
    db: Arc<Db>,
    receiver: Arc<Receiver>,
    /// Rewrites of the receiver's headers for the next answers.
    script: Arc<Mutex<VecDeque<Rewrite>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Front {
    fn start() -> Front {
        let db = Arc::new(Db::in_memory().expect("db"));
        // The data is old (t near 0): no future or head-window limits.
        let opts = ReceiverOptions { max_future: None, ..ReceiverOptions::default() };
        let receiver = Arc::new(Receiver::new(db.clone(), Arc::new(MetadataStore::new()), opts));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, sp, sc) = (receiver.clone(), stop.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, sc) = (r.clone(), sc.clone());
                std::thread::spawn(move || serve(conn, &r, &sc));
            }
        });
        Front { url: format!("http://{addr}/api/v1/write"), db, receiver, script, stop, addr }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, receiver: &Receiver, script: &Mutex<VecDeque<Rewrite>>) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut w = conn.try_clone().expect("clone");
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
        let resp = receiver.handle(
            headers.get("content-type").map(String::as_str),
            headers.get("content-encoding").map(String::as_str),
            &body,
        );
        let mut hdrs: Vec<(String, String)> = resp.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        if resp.status < 300 {
            if let Some((name, value)) = script.lock().expect("script").pop_front() {
                hdrs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                if !value.is_empty() {
                    hdrs.push((name.to_string(), value.to_string()));
                }
            }
        }
        let mut out = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", resp.status, resp.body.len());
        for (k, v) in hdrs {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&resp.body);
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

fn source(dir: &std::path::Path) -> Db {
    Db::builder(dir).block_range(3_600_000).wal_segment_size(8192).maintenance_interval(None).open().expect("db")
}

fn opts(name: &str, url: &str, protocol: Protocol) -> ForwarderOptions {
    let mut o = ForwarderOptions::new(name, url);
    o.protocol = protocol;
    o.shards = 2;
    o.max_samples_per_send = 20;
    o.batch_send_deadline = Duration::from_millis(20);
    o.min_backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(40);
    o.poll_interval = Duration::from_millis(10);
    o.timeout = Duration::from_secs(5);
    o
}

fn wait_stats(fwd: &Forwarder, what: &str, ok: impl Fn(&ForwarderStats) -> bool) -> ForwarderStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = fwd.stats();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The histogram of series `i` at `t` (seconds): a growing integer
/// histogram, a float one, a custom-bucket one, with a staleness marker
/// and a `-0.0` sum among them.
fn histogram(i: usize, step: i64) -> HistogramValue {
    let n = step as u64 + 1;
    match (i % 3, step % 9) {
        (_, 8) => HistogramValue::Float(FloatHistogram { sum: stale_nan(), ..FloatHistogram::default() }),
        (0, s) => HistogramValue::Integer(Histogram {
            schema: (s % 4) as i32 - 1,
            zero_threshold: 0.001,
            zero_count: n,
            count: 4 * n,
            sum: if s == 3 { -0.0 } else { 1.5 * n as f64 },
            positive_spans: vec![Span { offset: -1, length: 2 }],
            positive_buckets: vec![n as i64, 0],
            negative_spans: vec![Span { offset: 2, length: 1 }],
            negative_buckets: vec![n as i64],
            ..Histogram::default()
        }),
        (1, _) => HistogramValue::Float(FloatHistogram {
            schema: 8,
            count: 2.5 * n as f64,
            sum: -3.25 * n as f64,
            positive_spans: vec![Span { offset: 100, length: 2 }],
            positive_buckets: vec![0.5 * n as f64, 2.0 * n as f64],
            ..FloatHistogram::default()
        }),
        _ => HistogramValue::Integer(Histogram {
            schema: -53,
            count: 3 * n,
            sum: 0.25 * n as f64,
            positive_spans: vec![Span { offset: 0, length: 3 }],
            positive_buckets: vec![n as i64, 0, 0],
            custom_values: vec![0.1, 1.0],
            ..Histogram::default()
        }),
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([("__name__", format!("fwd_hist_{}", i % 3)), ("i", i.to_string())]).expect("labels")
}

/// What each series should hold: floats (t, bits) then histograms as wire
/// bytes (bit-exact sums, kind, every field but the hint: the receiving
/// store reports hints as its chunks do).
type Expect = BTreeMap<String, (Vec<(i64, u64)>, Vec<Vec<u8>>)>;

fn wire(t: i64, h: &HistogramValue) -> Vec<u8> {
    let mut h = h.clone();
    // Empty buckets dropped: storage may give a sample its chunk's layout.
    match &mut h {
        HistogramValue::Integer(h) => drop(h.compact(0)),
        HistogramValue::Float(h) => drop(h.compact(0)),
    }
    let mut p = to_proto(&HistogramSample { t, h });
    p.reset_hint = 0;
    let mut b = p.encode_to_vec();
    // prost leaves a -0.0 sum out: keep its sign in the comparison.
    b.push(u8::from(p.sum.is_sign_negative()));
    b
}

/// Writes `steps` seconds from `from` (one commit per second): each series
/// a float sample at t and a histogram at t + 500 ms.
fn write(db: &Db, series: usize, from: i64, steps: i64, expect: &mut Expect) -> (u64, u64) {
    let (mut floats, mut hists) = (0, 0);
    for step in from..from + steps {
        let mut app = db.appender();
        for i in 0..series {
            let (t, l) = (step * 1000, labels(i));
            let v = if step % 5 == 0 { stale_nan() } else { step as f64 * 0.5 };
            app.append(&l, t, v).expect("float");
            let h = histogram(i, step);
            let e = expect.entry(l.to_string()).or_default();
            e.0.push((t, v.to_bits()));
            e.1.push(wire(t + 500, &h));
            app.append_histogram(&l, t + 500, h).expect("histogram");
            floats += 1;
            hists += 1;
        }
        app.commit().expect("commit");
    }
    (floats, hists)
}

fn stored(db: &Db) -> Expect {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2);
    let mut out = Expect::new();
    for s in q.select(&[Matcher::new(MatchOp::Regex, "__name__", "fwd_hist_.*").expect("matcher")]).expect("select") {
        let (mut floats, mut hists) = (Vec::new(), Vec::new());
        s.iter().drain_mixed_into(&mut floats, &mut hists);
        out.insert(
            s.labels().to_string(),
            (floats.iter().map(|f| (f.t, f.v.to_bits())).collect(), hists.iter().map(|h| wire(h.t, &h.h)).collect()),
        );
    }
    out
}

#[test]
fn histograms_and_floats_arrive_equal_with_both_protocols() {
    for protocol in [Protocol::V1, Protocol::V2] {
        let dir = tempfile::tempdir().expect("dir");
        let db = source(dir.path());
        let front = Front::start();
        let mut expect = Expect::new();
        let (mut floats, mut hists) = write(&db, 6, 0, 10, &mut expect);
        let fwd = Forwarder::start(&db, opts("hist", &front.url, protocol)).expect("start");
        let (f, h) = write(&db, 6, 10, 20, &mut expect);
        (floats, hists) = (floats + f, hists + h);
        let n = floats + hists;
        let stats = wait_stats(&fwd, "everything acknowledged", |s| s.samples_sent == n && s.pending_samples == 0);
        assert_eq!((stats.histograms_read, stats.histograms_sent), (hists, hists), "{protocol:?}");
        assert!(stats.samples_dropped.is_empty() && stats.samples_failed.is_empty(), "{stats:?}");
        fwd.stop().expect("stop");
        let got = stored(&front.db);
        assert_eq!(got.len(), expect.len());
        for (series, want) in &expect {
            assert_eq!(got.get(series), Some(want), "{protocol:?} {series}");
        }
        let rs = front.receiver.stats();
        assert_eq!((rs.samples_appended, rs.histograms_appended), (floats, hists), "{protocol:?}");
        db.close().expect("close");
    }
}

/// A 2.0 endpoint that answers 2xx without `-Histograms-Written` (but
/// with `-Samples-Written`) wrote no histograms: they count as dropped.
#[test]
fn histograms_a_v2_endpoint_does_not_report_written_are_counted_as_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let db = source(dir.path());
    let front = Front::start();
    front.script.lock().expect("script").push_back(("X-Prometheus-Remote-Write-Histograms-Written", ""));
    let mut expect = Expect::new();
    // One commit, few enough samples for one request.
    let (floats, hists) = write(&db, 2, 1, 1, &mut expect);
    let mut o = opts("partial", &front.url, Protocol::V2);
    o.shards = 1;
    let fwd = Forwarder::start(&db, o).expect("start");
    let stats = wait_stats(&fwd, "the batch finished", |s| s.pending_samples == 0 && s.samples_read == 4);
    assert_eq!((stats.samples_sent, stats.histograms_sent), (floats, 0), "{stats:?}");
    assert_eq!(stats.samples_dropped.get("v2_partially_written"), Some(&hists), "{stats:?}");
    assert!(stats.last_error.as_deref().unwrap_or("").contains("0 of 2 histograms"), "{stats:?}");
    fwd.stop().expect("stop");
}
