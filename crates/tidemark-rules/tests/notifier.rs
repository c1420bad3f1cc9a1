//! The notifier against capture servers on 127.0.0.1: what it posts (byte
//! for byte what Prometheus 2.42 posts), batching, the bounded queue,
//! Alertmanagers that are down or hang, and the shutdown drain.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidemark_rules::notifier::Alert;
use tidemark_rules::{AlertmanagerStats, Notifier, NotifierOptions};
use tidemark_testkit::{free_port, ReceivedRequest, WebhookReceiver};

const WAIT: Duration = Duration::from_secs(20);

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn alert(name: &str, i: i64) -> Alert {
    Alert {
        labels: map(&[("alertname", name), ("i", &i.to_string())]),
        annotations: BTreeMap::new(),
        starts_at_ms: 1_700_000_000_000 + i,
        ends_at_ms: Some(1_700_000_600_000),
        generator_url: String::new(),
    }
}

/// The `i` label of every alert in every request's body, request by request.
fn indexes(reqs: &[ReceivedRequest]) -> Vec<Vec<i64>> {
    reqs.iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
            v.as_array()
                .expect("array")
                .iter()
                .map(|a| a["labels"]["i"].as_str().expect("i label").parse().expect("number"))
                .collect()
        })
        .collect()
}

fn count(reqs: &[ReceivedRequest]) -> usize {
    indexes(reqs).iter().map(Vec::len).sum()
}

/// Polls `stats()` until `done` holds for the Alertmanager at `i`.
fn wait_stats(n: &Notifier, i: usize, done: impl Fn(&AlertmanagerStats) -> bool) -> AlertmanagerStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = n.stats().alertmanagers[i].clone();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "stats never reached the expected state: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts connections and never answers (nor reads): a hung Alertmanager.
struct Hanging {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Hanging { port, stop, thread: Some(thread) }
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What Prometheus 2.42 posted (captured from `prometheus --rules.alert.resend-delay=1s`
/// with external labels `cluster: c1, zone: z1`, an Alertmanager at
/// `/prefix` with basic auth `u`/`p`, and rules `NoAnn` (`vector(1)`) and
/// `EmptyAnn` (label `weird: "a\nb\tc\u0008\u000c\u2028\u0001/"`, label
/// `zone: ""`, annotations `empty: ""`, `x: ""`)).
const PROMETHEUS_BODY: &str = r#"[{"endsAt":"2026-12-05T13:39:52.922Z","startsAt":"2026-12-05T13:39:42.922Z","generatorURL":"http://vm:39090/graph?g0.expr=vector%281%29\u0026g0.tab=1","labels":{"alertname":"NoAnn","cluster":"c1","zone":"z1"}},{"annotations":{"empty":"","x":""},"endsAt":"2026-12-05T13:39:52.922Z","startsAt":"2026-12-05T13:39:42.922Z","generatorURL":"http://vm:39090/graph?g0.expr=vector%281%29\u0026g0.tab=1","labels":{"alertname":"EmptyAnn","cluster":"c1","weird":"a\nb\tc\u0008\u000c\u2028\u0001/","zone":"z1"}}]"#;
/// A second capture: HTML-sensitive characters and non-ASCII in an
/// annotation.
const PROMETHEUS_BODY_2: &str = r#"[{"annotations":{"summary":"value 1 \u003c\u0026\u003e \"q\" é"},"endsAt":"2026-12-05T13:39:31.922Z","startsAt":"2026-12-05T13:39:21.922Z","generatorURL":"http://vm:39090/graph?g0.expr=vector%281%29\u0026g0.tab=1","labels":{"alertname":"AlwaysOn","cluster":"c1","severity":"page","zone":"z1"}}]"#;

#[test]
fn body_is_byte_for_byte_what_prometheus_sends() {
    let hook = WebhookReceiver::start().expect("capture server");
    let mut opts = NotifierOptions::new([format!("http://u:p@127.0.0.1:{}/prefix/", hook.port())]);
    opts.external_labels = map(&[("cluster", "c1"), ("zone", "z1")]);
    let n = Notifier::start(opts).expect("start");
    let gen = "http://vm:39090/graph?g0.expr=vector%281%29&g0.tab=1".to_string();
    let no_ann = Alert {
        labels: map(&[("alertname", "NoAnn")]),
        annotations: BTreeMap::new(),
        starts_at_ms: 1_796_477_982_922,
        ends_at_ms: Some(1_796_477_992_922),
        generator_url: gen.clone(),
    };
    let empty_ann = Alert {
        labels: map(&[("alertname", "EmptyAnn"), ("weird", "a\nb\tc\u{8}\u{c}\u{2028}\u{1}/"), ("zone", "")]),
        annotations: map(&[("empty", ""), ("x", "")]),
        ..no_ann.clone()
    };
    let always_on = Alert {
        labels: map(&[("alertname", "AlwaysOn"), ("severity", "page")]),
        annotations: map(&[("summary", "value 1 <&> \"q\" é")]),
        starts_at_ms: 1_796_477_961_922,
        ends_at_ms: Some(1_796_477_971_922),
        generator_url: gen,
    };
    n.send(vec![no_ann, empty_ann]);
    let reqs = hook.wait_for(|r| r.len() == 1, WAIT).expect("first request");
    n.send(vec![always_on]);
    let reqs2 = hook.wait_for(|r| r.len() == 2, WAIT).expect("second request");
    assert_eq!(reqs[0].text(), PROMETHEUS_BODY);
    assert_eq!(reqs2[1].text(), PROMETHEUS_BODY_2);
    for r in &reqs2 {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/prefix/api/v2/alerts"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("authorization"), Some("Basic dTpw"), "URL credentials become basic auth");
        let ua = r.header("user-agent").unwrap_or("");
        assert!(ua.starts_with("tidemark/"), "{ua}");
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    }
    let s = wait_stats(&n, 0, |s| s.sent_total == 3);
    assert_eq!(s.alertmanager, format!("http://127.0.0.1:{}/prefix/api/v2/alerts", hook.port()));
    assert_eq!((s.errors_total, s.dropped_total, s.requests_total), (0, 0, 2));
    assert!(s.last_latency.is_some() && s.latency_sum >= s.last_latency.unwrap_or_default());
}

#[test]
fn batches_are_cut_at_max_batch() {
    let hook = WebhookReceiver::start().expect("capture server");
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.max_batch = 3;
    let n = Notifier::start(opts).expect("start");
    n.send((0..7).map(|i| alert("Batch", i)).collect());
    let reqs = hook.wait_for(|r| count(r) == 7, WAIT).expect("7 alerts");
    assert_eq!(indexes(&reqs), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    assert_eq!(wait_stats(&n, 0, |s| s.sent_total == 7).requests_total, 3);
}

#[test]
fn queue_overflow_drops_the_oldest_and_counts() {
    let hook = WebhookReceiver::start().expect("capture server");
    hook.hold();
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.queue_capacity = 5;
    opts.timeout = Duration::from_secs(60);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Q", 0)]);
    // The sender is now inside the held request: everything else queues.
    hook.wait_for(|r| r.len() == 1, WAIT).expect("first request");
    n.send((1..=4).map(|i| alert("Q", i)).collect());
    n.send((5..=10).map(|i| alert("Q", i)).collect());
    let s = n.stats();
    assert_eq!((s.queue_length, s.queue_capacity, s.dropped_total), (5, 5, 5), "{s:?}");
    assert_eq!(s.alertmanagers[0].dropped_total, 5);
    hook.release();
    let reqs = hook.wait_for(|r| count(r) == 6, WAIT).expect("the kept alerts");
    assert_eq!(indexes(&reqs), vec![vec![0], vec![6, 7, 8, 9, 10]]);
    let s = wait_stats(&n, 0, |s| s.sent_total == 6);
    assert_eq!((s.errors_total, s.dropped_total, s.queue_length), (0, 5, 0));
}

#[test]
fn external_labels_are_added_unless_the_alert_has_them() {
    let hook = WebhookReceiver::start().expect("capture server");
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.external_labels = map(&[("cluster", "eu1"), ("replica", "a"), ("alertname", "never")]);
    let n = Notifier::start(opts).expect("start");
    let mut a = alert("Ext", 0);
    a.labels.insert("replica".into(), "own".into());
    n.send(vec![a]);
    let reqs = hook.wait_for(|r| r.len() == 1, WAIT).expect("request");
    let v: serde_json::Value = serde_json::from_slice(&reqs[0].body).expect("JSON");
    assert_eq!(v[0]["labels"], serde_json::json!({"alertname": "Ext", "cluster": "eu1", "i": "0", "replica": "own"}));
}

#[test]
fn bearer_token_from_options_and_query_kept() {
    let hook = WebhookReceiver::start().expect("capture server");
    let mut opts = NotifierOptions::new([format!("{}/am/?tenant=t1", hook.url())]);
    opts.auth = Some(tidemark_rules::AlertmanagerAuth::Bearer("tok123".into()));
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Bearer", 0)]);
    let reqs = hook.wait_for(|r| r.len() == 1, WAIT).expect("request");
    assert_eq!(reqs[0].path, "/am/api/v2/alerts?tenant=t1");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tok123"));
}

#[test]
fn down_and_hanging_alertmanagers_block_neither_send_nor_the_healthy_one() {
    let hook = WebhookReceiver::start().expect("capture server");
    let hanging = Hanging::start();
    let down = free_port(); // nothing listens there
    let mut opts = NotifierOptions::new([
        format!("http://127.0.0.1:{down}"),
        format!("http://127.0.0.1:{}", hanging.port),
        hook.url(),
    ]);
    opts.timeout = Duration::from_secs(3);
    opts.drain_timeout = Duration::from_secs(1);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Multi", 0)]);
    let got = hook.wait_for(|r| r.len() == 1, WAIT).expect("the healthy one gets the alert");
    assert_eq!(indexes(&got), vec![vec![0]]);
    n.send(vec![alert("Multi", 1)]);
    let got = hook.wait_for(|r| r.len() == 2, WAIT).expect("the healthy one gets the second alert");
    assert_eq!(indexes(&got), vec![vec![0], vec![1]]);

    let down_stats = wait_stats(&n, 0, |s| s.failed_requests_total >= 1);
    assert!(down_stats.errors_total >= 1 && down_stats.sent_total == 0, "{down_stats:?}");
    assert_eq!(down_stats.errors_total, down_stats.dropped_total, "{down_stats:?}");
    assert!(down_stats.last_error.is_some(), "{down_stats:?}");
    let hung = wait_stats(&n, 1, |s| s.failed_requests_total >= 1);
    assert!(hung.last_error.as_deref().unwrap_or("").contains("timed out"), "{hung:?}");
    assert!(hung.errors_total >= 1 && hung.sent_total == 0, "{hung:?}");
    assert_eq!(hung.errors_total, hung.dropped_total, "{hung:?}");
    let ok = n.stats().alertmanagers[2].clone();
    assert_eq!((ok.sent_total, ok.errors_total, ok.dropped_total), (2, 0, 0), "{ok:?}");
    assert_eq!(n.stats().alertmanagers.len(), 3);
}

#[test]
fn send_returns_while_a_request_is_in_flight() {
    let hook = WebhookReceiver::start().expect("capture server");
    hook.hold();
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.timeout = Duration::from_secs(60);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Busy", 0)]);
    hook.wait_for(|r| r.len() == 1, WAIT).expect("first request");
    for i in 1..=3 {
        n.send(vec![alert("Busy", i)]);
    }
    // The only request made is still unanswered (held; its timeout is a
    // minute away), yet every send() returned.
    let s = n.stats().alertmanagers[0].clone();
    assert_eq!((s.requests_total, s.sent_total, s.failed_requests_total, s.queue_length), (1, 0, 0, 3), "{s:?}");
    hook.release();
    let reqs = hook.wait_for(|r| count(r) == 4, WAIT).expect("all four");
    assert_eq!(indexes(&reqs), vec![vec![0], vec![1, 2, 3]]);
}

#[test]
fn a_failing_status_is_an_error_and_is_not_retried() {
    let hook = WebhookReceiver::start().expect("capture server");
    hook.set_status(500);
    let n = Notifier::start(NotifierOptions::new([hook.url()])).expect("start");
    n.send(vec![alert("Fail", 0), alert("Fail", 1)]);
    let s = wait_stats(&n, 0, |s| s.failed_requests_total == 1);
    assert_eq!((s.errors_total, s.dropped_total, s.sent_total), (2, 2, 0));
    assert!(s.last_error.as_deref().unwrap_or("").contains("500"), "{s:?}");
    hook.set_status(200);
    n.send(vec![alert("Fail", 2)]);
    let reqs = hook.wait_for(|r| r.len() == 2, WAIT).expect("the next alert");
    // The failed batch was not sent again: the next request holds only the new alert.
    assert_eq!(indexes(&reqs), vec![vec![0, 1], vec![2]]);
    n.stop();
    assert_eq!(hook.requests().len(), 2);
}

#[test]
fn stop_flushes_what_is_queued() {
    let hook = WebhookReceiver::start().expect("capture server");
    hook.hold();
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.max_batch = 4;
    opts.timeout = Duration::from_secs(60);
    opts.drain_timeout = Duration::from_secs(30);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Flush", 0)]);
    hook.wait_for(|r| r.len() == 1, WAIT).expect("first request");
    n.send((1..10).map(|i| alert("Flush", i)).collect());
    std::thread::scope(|scope| {
        let stopper = scope.spawn(|| n.stop());
        // Release the held request only once stop() has begun: a send is
        // counted as dropped from then on.
        let deadline = Instant::now() + WAIT;
        let mut probes = 0;
        while n.stats().dropped_total == 0 {
            assert!(Instant::now() < deadline, "stop() never began");
            n.send(vec![alert("Probe", 100 + probes)]);
            probes += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        hook.release();
        stopper.join().expect("stop");
    });
    // stop() has returned: everything queued before it has arrived.
    let reqs = hook.requests();
    let sent: Vec<i64> = indexes(&reqs).concat();
    assert_eq!(sent.iter().filter(|&&i| i < 100).copied().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    let s = n.stats();
    assert_eq!(s.alertmanagers[0].sent_total as usize, sent.len());
    assert_eq!((s.queue_length, s.alertmanagers[0].dropped_total, s.dropped_total), (0, 0, 1));
}

#[test]
fn stop_is_bounded_by_the_drain_timeout_and_counts_what_is_left() {
    let hook = WebhookReceiver::start().expect("capture server");
    hook.hold();
    let mut opts = NotifierOptions::new([hook.url()]);
    opts.timeout = Duration::from_secs(120);
    opts.drain_timeout = Duration::from_millis(500);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Stuck", 0)]);
    hook.wait_for(|r| r.len() == 1, WAIT).expect("first request");
    n.send((1..5).map(|i| alert("Stuck", i)).collect());
    let begin = Instant::now();
    n.stop();
    // Neither the held request nor its 120 s timeout holds stop() up.
    assert!(begin.elapsed() < Duration::from_secs(60), "stop() took {:?}", begin.elapsed());
    let s = n.stats();
    assert_eq!((s.queue_length, s.dropped_total), (0, 4), "the queued alerts are dropped and counted: {s:?}");
    // The request in flight when stop() was called is counted when it ends.
    hook.release();
    let s = wait_stats(&n, 0, |s| s.sent_total == 1);
    assert_eq!((s.errors_total, s.dropped_total, s.requests_total), (0, 4, 1), "{s:?}");
    assert_eq!(indexes(&hook.requests()), vec![vec![0]]);
}

#[test]
fn an_https_url_speaks_tls() {
    // A plain-HTTP server behind an https:// URL: the TLS handshake fails,
    // which is counted, and the server never sees a readable request.
    let hook = WebhookReceiver::start().expect("capture server");
    let mut opts = NotifierOptions::new([format!("https://127.0.0.1:{}", hook.port())]);
    // The server waits for an HTTP head that never comes; the timeout ends it.
    opts.timeout = Duration::from_secs(2);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Tls", 0)]);
    let s = wait_stats(&n, 0, |s| s.failed_requests_total == 1);
    assert_eq!(s.errors_total, 1);
    assert!(hook.requests().iter().all(|r| r.method != "POST"), "{:?}", hook.requests());
}

#[test]
fn a_missing_ca_file_is_an_error_naming_it() {
    let mut opts = NotifierOptions::new(["https://127.0.0.1:1"]);
    opts.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = Notifier::start(opts).unwrap_err().to_string();
    assert!(err.contains("ca_file") && err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn one_plain_http_request_per_batch() {
    // A raw read of what the notifier writes, to check it sends exactly one
    // HTTP/1.1 request per batch (no Expect: 100-continue handshake).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut opts = NotifierOptions::new([format!("http://127.0.0.1:{port}")]);
    opts.timeout = Duration::from_secs(5);
    opts.drain_timeout = Duration::from_secs(1);
    let n = Notifier::start(opts).expect("start");
    n.send(vec![alert("Raw", 0)]);
    let (mut c, _) = listener.accept().expect("accept");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\"labels\"") {
        let k = c.read(&mut chunk).expect("read");
        assert!(k > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..k]);
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("POST /api/v2/alerts HTTP/1.1\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("expect:"), "{text}");
}
