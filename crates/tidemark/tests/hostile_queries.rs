//! Hostile queries against a real `tidemark serve`: every kind of deep
//! nesting, long flat chains, huge matchers, extreme ranges and steps,
//! `format_query` of all of them, slow and vanishing clients, more heavy
//! queries than slots, and SIGTERM under load. After each case the process
//! must be alive, healthy and still answer a real query correctly; no core
//! may stay busy after a request ended.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use tidemark::remote::proto::v1;
use tidemark_testkit::{url_encode, Tidemark, TidemarkConfig};

const T0: i64 = 1_700_000_000_000;
/// Evaluation time of the liveness query: the newest sample.
const T_EVAL: f64 = (T0 + 600_000) as f64 / 1000.0;
/// One series with ~260,000 one-second points, each window 86,400 long:
/// minutes of work for a single series unless stopped.
const HEAVY: &str = "max_over_time(max_over_time(max_over_time(vector(1)[1d:1s])[1d:1s])[1d:1s])";

fn start(data_dir: &Path, extra: &[&str]) -> Tidemark {
    let config = TidemarkConfig::new(env!("CARGO_BIN_EXE_tidemark"), data_dir).with_args(extra);
    Tidemark::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// `hostile{i="0".."9"}` with value `i`, every 15 s for 10 minutes.
fn write_data(base: &str) {
    let timeseries = (0..10)
        .map(|i| v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: "hostile".into() },
                v1::Label { name: "i".into(), value: i.to_string() },
            ],
            samples: (0..=40).map(|k| v1::Sample { value: i as f64, timestamp: T0 + k * 15_000 }).collect(),
            ..Default::default()
        })
        .collect();
    let req = v1::WriteRequest { timeseries, metadata: vec![] };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let status = agent()
        .post(&format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .send(&body[..])
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 204);
}

/// POSTs a raw form body; returns the status and body.
fn post_raw(base: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut r = agent()
        .post(&format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().with_config().limit(64 << 20).read_to_string().unwrap();
    (status, text)
}

fn post(base: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v))).collect();
    post_raw(base, path, body.join("&").as_bytes())
}

fn query(base: &str, q: &str) -> (u16, String) {
    post(base, "/api/v1/query", &[("query", q), ("time", &T_EVAL.to_string())])
}

/// The process is running, healthy, and answers a real query correctly.
fn assert_alive(server: &mut Tidemark, case: &str) {
    server.check_alive().unwrap_or_else(|e| panic!("after {case}: {e}"));
    let mut r = agent().get(&format!("{}/-/healthy", server.url())).call().unwrap();
    assert_eq!(r.status().as_u16(), 200, "after {case}");
    let _ = r.body_mut().read_to_string();
    let (status, body) = query(&server.url(), "sum(hostile)");
    assert_eq!(status, 200, "after {case}: {body}");
    assert!(body.contains(r#""value":[1700000600,"45"]"#), "after {case}: {body}");
}

fn assert_error(case: &str, (status, body): (u16, String), want_status: u16, want_type: &str, want_text: &str) {
    let short: String = body.chars().take(300).collect();
    assert_eq!(status, want_status, "{case}: {short}");
    assert!(body.contains(&format!(r#""errorType":"{want_type}""#)), "{case}: {short}");
    assert!(body.contains(want_text), "{case}: {short} lacks {want_text:?}");
}

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn cpu_seconds(server: &Tidemark) -> f64 {
    server.stats().unwrap().cpu_seconds
}

/// Waits until the process has used less than `max` CPU seconds over
/// `window` (it may need a moment to notice a departed client), failing
/// after `within`.
fn assert_goes_idle(server: &Tidemark, case: &str, window: Duration, max: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let before = cpu_seconds(server);
        std::thread::sleep(window);
        let used = cpu_seconds(server) - before;
        if used < max {
            return;
        }
        assert!(Instant::now() < deadline, "{case}: still busy ({used:.2} CPU s in {window:?})");
    }
}

/// The value of an unlabelled gauge in `/metrics`.
fn gauge(base: &str, name: &str) -> i64 {
    let text = agent().get(&format!("{base}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn hostile_queries_get_precise_errors_and_the_server_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--query.timeout", "2s", "--query.max-concurrency", "2"]);
    let base = server.url();
    write_data(&base);
    assert_alive(&mut server, "start");
    let started = Instant::now();

    // Every nesting shape, long flat chains, and text past the length limit:
    // 400 bad_data naming the limit, from /query, /query_range and /format_query.
    let chain_to_body_limit = format!("1{}", "-1".repeat(((10 << 20) - 100) / 2));
    let over: Vec<(&str, String, &str)> = vec![
        ("abs( x2000", nest("abs(", "vector(1)", ")", 2_000), "query nesting depth 2001 exceeds the limit of 256"),
        ("sum( x2000", nest("sum(", "hostile", ")", 2_000), "query nesting depth 2000 exceeds the limit of 256"),
        ("1+( x3000", nest("1+(", "1", ")", 3_000), "query nesting depth 3000 exceeds the limit of 256"),
        ("( x30000", nest("(", "1", ")", 30_000), "query nesting depth 30000 exceeds the limit of 256"),
        ("subqueries x500", nest("max_over_time((", "hostile", ")[5m:1m])", 500), "query nesting depth 1000"),
        (
            "label_replace x1000",
            nest("label_replace(", "hostile", ", \"a\", \"b\", \"c\", \"d\")", 1_000),
            "depth 1000",
        ),
        ("[ x2000", nest("[", "", "]", 2_000), "query nesting depth 2000 exceeds the limit of 256"),
        ("{ x2000", nest("{", "", "}", 2_000), "query nesting depth 2000 exceeds the limit of 256"),
        (
            "unary minus x5000",
            format!("{}1", "-".repeat(5_000)),
            "query has 5000 operators, more than the limit of 1000",
        ),
        ("1+1 x5000", format!("1{}", "+1".repeat(5_000)), "query has 5000 operators, more than the limit of 1000"),
        ("1+1 x100000", format!("1{}", "+1".repeat(100_000)), "query has 100000 operators"),
        ("or x2000", format!("hostile{}", " or hostile".repeat(2_000)), "query has 2000 operators"),
        ("1-1 to the body limit", chain_to_body_limit, "bytes exceeds the limit of 262144 bytes"),
        (
            "huge label value",
            format!("hostile{{i=\"{}\"}}", "a".repeat(300 << 10)),
            "exceeds the limit of 262144 bytes",
        ),
    ];
    for (case, q, text) in &over {
        let t = Instant::now();
        assert_error(case, query(&base, q), 400, "bad_data", text);
        let range = post(
            &base,
            "/api/v1/query_range",
            &[("query", q), ("start", "1700000000"), ("end", "1700000600"), ("step", "15")],
        );
        assert_error(case, range, 400, "bad_data", text);
        assert_error(case, post(&base, "/api/v1/format_query", &[("query", q)]), 400, "bad_data", text);
        // Endpoints that parse a query or selector without evaluating it.
        assert_error(case, post(&base, "/api/v1/query_exemplars", &[("query", q)]), 400, "bad_data", text);
        assert_error(case, post(&base, "/api/v1/series", &[("match[]", q)]), 400, "bad_data", text);
        assert!(t.elapsed() < Duration::from_secs(5), "{case} took {:?}", t.elapsed());
        assert_alive(&mut server, case);
    }

    // Modifier chains are syntax errors.
    for (case, q, text) in [
        ("offset chain", format!("hostile{}", " offset 1m".repeat(1_000)), "offset may not be set multiple times"),
        ("@ chain", format!("hostile{}", " @ 1".repeat(1_000)), "may not be set multiple times"),
    ] {
        assert_error(case, query(&base, &q), 400, "bad_data", text);
        assert_alive(&mut server, case);
    }

    // At the limits: answers, and formatting as promtool would.
    let at: Vec<(&str, String, &str)> = vec![
        ("abs( x255", nest("abs(", "vector(1)", ")", 255), r#""value":[1700000600,"1"]"#),
        ("1+( x256", nest("1+(", "1", ")", 256), r#"[1700000600,"257"]"#),
        ("( x256", nest("(", "sum(hostile)", ")", 255), r#""value":[1700000600,"45"]"#),
        ("subqueries x127", nest("max_over_time((", "sum(hostile)", ")[5m:1m])", 127), r#""value":[1700000600,"45"]"#),
        ("1+1 x1000", format!("1{}", "+1".repeat(1_000)), r#"[1700000600,"1001"]"#),
        ("or x1000", format!("sum(hostile){}", " or sum(hostile)".repeat(999)), r#""value":[1700000600,"45"]"#),
        ("unary minus x1000", format!("{}sum(hostile)", "-".repeat(1_000)), r#""value":[1700000600,"45"]"#),
    ];
    for (case, q, want) in &at {
        let t = Instant::now();
        let (status, body) = query(&base, q);
        assert_eq!(status, 200, "{case}: {}", &body[..body.len().min(300)]);
        assert!(body.contains(want), "{case}: {}", &body[..body.len().min(300)]);
        let (status, body) = post(&base, "/api/v1/format_query", &[("query", q)]);
        assert_eq!(status, 200, "{case}: {}", &body[..body.len().min(300)]);
        // Exemplars: a query without a selector has none to look up, and
        // Prometheus answers that with 204 and no body.
        let (status, body) = post(&base, "/api/v1/query_exemplars", &[("query", q)]);
        let want_status = if q.contains("hostile") { 200 } else { 204 };
        assert_eq!(status, want_status, "{case}: {}", &body[..body.len().min(300)]);
        assert!(t.elapsed() < Duration::from_secs(5), "{case} took {:?}", t.elapsed());
        assert_alive(&mut server, case);
    }

    // Syntax and type errors at the limits: locating the error walks the
    // text too (on the async worker for `query_exemplars`).
    for (case, q) in [
        ("abs( x255, trailing +", format!("{} +", nest("abs(", "vector(1)", ")", 255))),
        ("( x256, unclosed", format!("{}1{}", "(".repeat(256), ")".repeat(255))),
        ("sum( x255, bad argument", nest("sum(", "rate(hostile)", ")", 255)),
        ("1+1 x1000, trailing +", format!("1{} +", "+1".repeat(999))),
    ] {
        for path in ["/api/v1/query", "/api/v1/format_query", "/api/v1/query_exemplars"] {
            assert_error(case, post(&base, path, &[("query", &q)]), 400, "bad_data", "parse error");
        }
        assert_alive(&mut server, case);
    }

    // Huge matchers: many matchers, a huge regex, a huge label value.
    let many = format!("sum(hostile{{{}}})", vec!["i!=\"x\""; 5_000].join(","));
    let alternatives: Vec<String> = (0..15_000).map(|i| format!("v{i}")).collect();
    let regex = format!("sum(hostile{{i=~\"{}|[0-9]\"}})", alternatives.join("|"));
    let value = format!("hostile{{i=\"{}\"}}", "a".repeat(200 << 10));
    for (case, q, want) in [
        ("5,000 matchers", many, r#""value":[1700000600,"45"]"#),
        ("15,000-way regex", regex, r#""value":[1700000600,"45"]"#),
        ("200 KiB label value", value, r#""result":[]"#),
    ] {
        let (status, body) = query(&base, &q);
        assert_eq!(status, 200, "{case}: {}", &body[..body.len().min(300)]);
        assert!(body.contains(want), "{case}: {}", &body[..body.len().min(300)]);
        let (status, _) = post(&base, "/api/v1/format_query", &[("query", &q)]);
        assert_eq!(status, 200, "{case}");
        assert_alive(&mut server, case);
    }

    // Label functions that would multiply a label into terabytes.
    let doubling = nest(
        "label_join(",
        "label_replace(vector(1), \"a\", \"xxxx\", \"\", \"\")",
        ", \"a\", \"\", \"a\", \"a\")",
        40,
    );
    assert_error(
        "label_join doubling",
        query(&base, &doubling),
        422,
        "execution",
        "exceeds the limit of 1048576 bytes",
    );
    assert_goes_idle(&server, "label_join doubling", Duration::from_millis(300), 0.1, Duration::from_secs(2));
    assert_alive(&mut server, "label_join doubling");

    // Extreme ranges, steps and times.
    for (case, q, time) in [
        ("[100000y]", "count_over_time(hostile[100000y])", T_EVAL.to_string()),
        ("offset -100000y", "hostile offset -100000y", T_EVAL.to_string()),
        ("@ near i64 max", "hostile @ 9223372036854", T_EVAL.to_string()),
        ("time near the upper end", "timestamp(vector(1))", "9223372036854.775".into()),
        ("time near the lower end", "max_over_time(vector(1)[100y:1d])", "-9223372036854".into()),
    ] {
        let (status, body) = post(&base, "/api/v1/query", &[("query", q), ("time", &time)]);
        assert_eq!(status, 200, "{case}: {body}");
        assert_alive(&mut server, case);
    }
    for (case, start, end, step, text) in [
        ("step 0", "0", "100", "0", "zero or negative query resolution step"),
        ("negative step", "0", "100", "-1", "zero or negative query resolution step"),
        ("step 1e-9", "0", "100", "1e-9", "zero or negative query resolution step"),
        ("start after end", "100", "0", "1", "end timestamp must not be before start time"),
        ("11,001 points", "0", "11001", "1", "exceeded maximum resolution of 11,000 points"),
        ("start beyond i64 ms", "-9223372036854775808", "0", "1", "cannot parse"),
        ("time 1e300", "1e300", "1e301", "1e299", "cannot parse"),
    ] {
        let r =
            post(&base, "/api/v1/query_range", &[("query", "hostile"), ("start", start), ("end", end), ("step", step)]);
        assert_error(case, r, 400, "bad_data", text);
        assert_alive(&mut server, case);
    }
    let widest = post(
        &base,
        "/api/v1/query_range",
        &[("query", "sum(hostile)"), ("start", "-9223372036"), ("end", "9223372036"), ("step", "2e6")],
    );
    assert_eq!(widest.0, 200, "widest range: {}", widest.1);
    assert_alive(&mut server, "widest range");

    // A query that would run for minutes stops at the 2 s timeout, and
    // leaves no core busy.
    let t = Instant::now();
    assert_error("heavy", query(&base, HEAVY), 503, "timeout", "query timed out");
    assert!(t.elapsed() < Duration::from_secs(4), "heavy query answered after {:?}", t.elapsed());
    assert_goes_idle(&server, "heavy", Duration::from_millis(500), 0.15, Duration::from_secs(3));
    assert_alive(&mut server, "heavy");

    // A client that leaves mid-query: the work stops well before the timeout.
    let mut sock = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let body = format!("query={}", url_encode(HEAVY));
    write!(
        sock,
        "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(sock);
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_seconds(&server);
    std::thread::sleep(Duration::from_millis(1_000));
    let used = cpu_seconds(&server) - before;
    assert!(used < 0.3, "a departed client's query kept running: {used:.2} CPU s in 1 s");
    assert_alive(&mut server, "disconnect");

    // A body trickled a byte at a time: refused when the query timeout
    // passes, not held open for as long as the client likes.
    let mut sock = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(sock, "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n").unwrap();
    let mut trickler = sock.try_clone().unwrap();
    let t = Instant::now();
    let trickle = std::thread::spawn(move || {
        for _ in 0..60 {
            if trickler.write_all(b"q").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "trickled body: {answer}");
    assert!(answer.contains("did not arrive within the query timeout of 2s"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(4), "trickled body answered after {:?}", t.elapsed());
    drop(sock);
    trickle.join().unwrap();
    assert_alive(&mut server, "trickled body");

    // More heavy queries than slots: two run, two wait (visible in
    // /metrics), all four end at the timeout, the gauges return to zero.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || query(&base, HEAVY))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let (mut active, mut queued) = (0, 0);
    while Instant::now() < deadline && !(active == 2 && queued == 2) {
        active = gauge(&base, "tidemark_queries_active");
        queued = gauge(&base, "tidemark_queries_queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!((active, queued), (2, 2), "gauges while 4 heavy queries share 2 slots");
    assert_eq!(gauge(&base, "tidemark_queries_concurrent_max"), 2);
    for w in workers {
        assert_error("queued heavy", w.join().unwrap(), 503, "timeout", "query timed out");
    }
    assert_eq!((gauge(&base, "tidemark_queries_active"), gauge(&base, "tidemark_queries_queued")), (0, 0));
    assert_goes_idle(&server, "concurrent heavy", Duration::from_millis(500), 0.15, Duration::from_secs(3));
    assert_alive(&mut server, "concurrent heavy");

    assert!(started.elapsed() < Duration::from_secs(60), "the hostile run took {:?}", started.elapsed());
    let status = server.terminate(Duration::from_secs(5)).unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_under_heavy_queries_stops_within_5_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--query.timeout", "10m"]);
    let base = server.url();
    write_data(&base);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                let r = agent()
                    .post(&format!("{base}/api/v1/query"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(format!("query={}", url_encode(HEAVY)).as_bytes());
                r.map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()))
            })
        })
        .collect();
    // And a client trickling a body, which the 10-minute timeout would let
    // take its time: the shutdown must not wait for it.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    write!(slow, "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nquery=").unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..200 {
            if slow.write_all(b"1").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(&base, "tidemark_queries_active") < 4 {
        assert!(Instant::now() < deadline, "the heavy queries did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let status = server.terminate(Duration::from_secs(10)).unwrap();
    let took = t.elapsed();
    println!("SIGTERM with 4 heavy queries and a trickling client: stopped in {took:?}");
    assert!(status.success(), "{status}: {}", server.log_tail(20));
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?} to stop the server");
    trickle.join().unwrap();
    for w in workers {
        // Either the cancelled query's answer or a closed connection, never a hang.
        if let Ok((code, body)) = w.join().unwrap() {
            assert_eq!(code, 503, "{body}");
            assert!(body.contains(r#""errorType":"canceled""#), "{body}");
        }
    }
}
