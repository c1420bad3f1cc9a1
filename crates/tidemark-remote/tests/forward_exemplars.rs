//! Exemplars through the forwarder, end to end inside the crate: a `Db`
//! with samples and exemplars is forwarded over HTTP, with remote write 1.0
//! and 2.0, to a real [`Receiver`] over another `Db`, and every exemplar
//! must be stored there as written; the forwarder counts them apart from
//! samples. With `send_exemplars` off, none is sent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_remote::forward::{Forwarder, ForwarderOptions, ForwarderStats, Protocol};
use tidemark_remote::{MetadataStore, Receiver, ReceiverOptions};
use tidemark_storage::exemplar::Exemplar;
use tidemark_storage::{Db, Labels, MatchOp, Matcher};

/// A real receiver behind a minimal HTTP/1.1 server on 127.0.0.1 (the
/// listener thread ends with the process).
fn front() -> (String, Arc<Db>, Arc<Receiver>) {
    let db = Arc::new(Db::in_memory().expect("db"));
    let opts = ReceiverOptions { max_future: None, ..ReceiverOptions::default() };
    let receiver = Arc::new(Receiver::new(db.clone(), Arc::new(MetadataStore::new()), opts));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let r = receiver.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || serve(conn, &r));
        }
    });
    (format!("http://{addr}/api/v1/write"), db, receiver)
}

fn serve(conn: TcpStream, receiver: &Receiver) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = conn.try_clone() else { return };
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
        let mut out = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", resp.status, resp.body.len());
        for (k, v) in &resp.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&resp.body);
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

fn opts(url: &str, protocol: Protocol) -> ForwarderOptions {
    let mut o = ForwarderOptions::new("ex", url);
    o.protocol = protocol;
    o.max_samples_per_send = 7;
    o.batch_send_deadline = Duration::from_millis(20);
    o.min_backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(40);
    o.poll_interval = Duration::from_millis(10);
    o
}

fn wait_stats(fwd: &Forwarder, ok: impl Fn(&ForwarderStats) -> bool) -> ForwarderStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = fwd.stats();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn series(i: u64) -> Labels {
    Labels::new([("__name__", "fwd_ex_total".to_string()), ("i", i.to_string())]).expect("labels")
}

/// 3 series × 10 commits, an exemplar per series every commit (the value
/// bits, -0.0 and NaN payloads included, must arrive as written).
fn write(db: &Db) -> Vec<(Labels, Exemplar)> {
    let mut want = Vec::new();
    for step in 0..10i64 {
        let mut app = db.appender();
        for i in 0..3u64 {
            let t = 1_000_000 + step * 1000;
            let r = app.append(&series(i), t, step as f64).expect("append");
            let value = match step % 3 {
                0 => -0.0,
                1 => f64::from_bits(0x7ff8_0000_dead_beef),
                _ => step as f64 * 0.125,
            };
            let labels = if step == 4 {
                Labels::empty()
            } else {
                Labels::new([("trace_id", format!("{i}-{step}")), ("span", "é".into())]).expect("labels")
            };
            let e = Exemplar { labels, value, t: t - 1 };
            app.append_exemplar(r, e.clone()).expect("exemplar");
            want.push((series(i), e));
        }
        app.commit().expect("commit");
    }
    want
}

fn stored(db: &Db) -> Vec<(Labels, Exemplar)> {
    let all = [vec![Matcher::new(MatchOp::Regex, "__name__", "fwd_ex_.*").expect("matcher")]];
    let mut out = Vec::new();
    for s in db.exemplars(&all, i64::MIN, i64::MAX) {
        out.extend(s.exemplars.into_iter().map(|e| (s.series_labels.clone(), e)));
    }
    out
}

fn same(a: &[(Labels, Exemplar)], b: &[(Labels, Exemplar)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((la, ea), (lb, eb))| la == lb && ea.same(eb))
}

#[test]
fn exemplars_arrive_as_written_with_both_protocols() {
    for protocol in [Protocol::V1, Protocol::V2] {
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::builder(dir.path()).maintenance_interval(None).open().expect("db");
        let (url, dest, receiver) = front();
        let mut want = write(&db);
        want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.t.cmp(&b.1.t)));
        let fwd = Forwarder::start(&db, opts(&url, protocol)).expect("start");
        let stats = wait_stats(&fwd, |s| s.samples_sent == 30 && s.exemplars_sent == 30 && s.pending_samples == 0);
        assert_eq!((stats.samples_read, stats.exemplars_read), (30, 30), "{protocol:?}");
        assert!(stats.samples_dropped.is_empty() && stats.samples_failed.is_empty(), "{stats:?}");
        fwd.stop().expect("stop");
        let got = stored(&dest);
        assert!(same(&got, &want), "{protocol:?}\n got: {got:?}\nwant: {want:?}");
        assert_eq!(receiver.stats().exemplars_appended, 30, "{protocol:?}");
        db.close().expect("close");
    }
}

#[test]
fn with_send_exemplars_off_none_is_sent() {
    let dir = tempfile::tempdir().expect("dir");
    let db = Db::builder(dir.path()).maintenance_interval(None).open().expect("db");
    let (url, dest, _receiver) = front();
    write(&db);
    let mut o = opts(&url, Protocol::V1);
    o.send_exemplars = false;
    let fwd = Forwarder::start(&db, o).expect("start");
    let stats = wait_stats(&fwd, |s| s.samples_sent == 30 && s.pending_samples == 0);
    assert_eq!((stats.exemplars_read, stats.exemplars_sent), (0, 0));
    fwd.stop().expect("stop");
    assert!(stored(&dest).is_empty());
    db.close().expect("close");
}
