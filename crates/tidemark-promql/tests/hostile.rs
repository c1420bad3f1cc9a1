//! Queries written to hurt: nesting and chains beyond the limits are
//! refused naming the limit; at the limits they evaluate and format even
//! when the caller's stack is small; slow shapes stop at the timeout; the
//! concurrency gate queues, times out and cancels; a panic under a query is
//! an error, not an abort.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_promql::{
    CancellationToken, Engine, EngineOptions, Error, LimitKind, MemStorage, QueryLimits, QueryOptions, SelectedSeries,
    SeriesSource, Value,
};
use tidemark_storage::Matcher;

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn limit_kind(r: Result<impl std::fmt::Debug, Error>) -> LimitKind {
    match r {
        Err(Error::Limit(l)) => l.kind,
        other => panic!("expected a limit error, got {other:?}"),
    }
}

/// Runs `f` on a thread with a 256 KiB stack: far less than any query at
/// the limits needs, so it passes only if the engine uses its own thread.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 << 10).spawn(f).unwrap().join().unwrap()
}

#[test]
fn shapes_beyond_the_limits_are_refused_naming_the_limit() {
    let engine = Engine::default();
    let s = MemStorage::new();
    let cases: Vec<(String, LimitKind, &str)> = vec![
        (
            nest("abs(", "vector(1)", ")", 2_000),
            LimitKind::NestingDepth,
            "query nesting depth 2001 exceeds the limit of 256",
        ),
        (
            nest("sum(", "vector(1)", ")", 2_000),
            LimitKind::NestingDepth,
            "query nesting depth 2001 exceeds the limit of 256",
        ),
        (nest("1+(", "1", ")", 3_000), LimitKind::NestingDepth, "query nesting depth 3000 exceeds the limit of 256"),
        (nest("(", "1", ")", 30_000), LimitKind::NestingDepth, "query nesting depth 30000 exceeds the limit of 256"),
        (
            nest("max_over_time((", "vector(1)", ")[5m:1m])", 500),
            LimitKind::NestingDepth,
            "query nesting depth 1001 exceeds the limit of 256",
        ),
        (
            nest("label_replace(", "up", ", \"a\", \"b\", \"c\", \"d\")", 1_000),
            LimitKind::NestingDepth,
            "query nesting depth 1000 exceeds the limit of 256",
        ),
        (
            format!("1{}", "+1".repeat(5_000)),
            LimitKind::Operators,
            "query has 5000 operators, more than the limit of 1000",
        ),
        (
            format!("x{}", " or x".repeat(2_000)),
            LimitKind::Operators,
            "query has 2000 operators, more than the limit of 1000",
        ),
        (
            format!("{}1", "-".repeat(5_000)),
            LimitKind::Operators,
            "query has 5000 operators, more than the limit of 1000",
        ),
        (
            format!("x{{a=\"{}\"}}", "a".repeat(300 << 10)),
            LimitKind::QueryBytes,
            "query length of 307207 bytes exceeds the limit of 262144 bytes",
        ),
    ];
    for (q, kind, message) in cases {
        let t = Instant::now();
        let r = engine.instant_query(&s, &q, 0);
        assert!(t.elapsed() < Duration::from_secs(1), "{kind:?} took {:?}", t.elapsed());
        let err = r.as_ref().unwrap_err().to_string();
        assert_eq!(limit_kind(r), kind);
        assert_eq!(err, message);
        assert_eq!(limit_kind(engine.format_query(&q, &QueryOptions::default())), kind);
        assert_eq!(limit_kind(engine.range_query(&s, &q, 0, 60_000, 15_000)), kind);
    }
}

#[test]
fn shapes_at_the_limits_evaluate_and_format_on_a_small_caller_stack() {
    on_small_stack(|| {
        let engine = Engine::default();
        let s = MemStorage::new();
        let l = tidemark_storage::Labels::new([("__name__", "x"), ("a", "1")]).unwrap();
        s.add(&l, 0, 1.0);
        let cases: Vec<(String, f64)> = vec![
            (nest("abs(", "vector(1)", ")", 255), 1.0),
            (nest("sum(", "vector(1)", ")", 255), 1.0),
            (nest("1+(", "1", ")", 255), 256.0),
            (nest("(", "1", ")", 256), 1.0),
            (nest("max_over_time((", "vector(1)", ")[5m:1m])", 127), 1.0),
            (nest("label_replace(", "vector(1)", ", \"a\", \"b\", \"c\", \"d\")", 255), 1.0),
            (nest("sum(-", "x", ")", 255), -1.0),
            (format!("1{}", "+1".repeat(1_000)), 1_001.0),
            (format!("{}1", "-".repeat(1_000)), 1.0),
            (format!("{}x", "-".repeat(1_000)), 1.0),
            (format!("x{}", " or x".repeat(999)), 1.0),
            (format!("2{}", "^1".repeat(1_000)), 2.0),
        ];
        for (q, want) in cases {
            let t = Instant::now();
            let r = engine.instant_query(&s, &q, 60_000).unwrap_or_else(|e| panic!("{}…: {e}", &q[..40]));
            let got = match r.value {
                Value::Scalar { v, .. } => v,
                Value::Vector(v) => v[0].v,
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want, "{}…", &q[..40]);
            let pretty = engine.format_query(&q, &QueryOptions::default()).unwrap();
            assert!(t.elapsed() < Duration::from_secs(5), "{}… took {:?}", &q[..40], t.elapsed());
            // The same text as promql-parser's own printer (run on a big stack).
            let q2 = q.clone();
            let upstream = std::thread::Builder::new()
                .stack_size(256 << 20)
                .spawn(move || promql_parser::parser::parse(&q2).unwrap().prettify())
                .unwrap()
                .join()
                .unwrap();
            assert_eq!(pretty, upstream, "{}…", &q[..40]);
        }
    });
}

#[test]
fn the_tree_depth_limit_holds_when_the_text_limits_are_raised() {
    let limits = QueryLimits {
        max_nesting_depth: 100_000,
        max_operators: 100_000,
        max_tree_depth: 500,
        ..QueryLimits::default()
    };
    let engine = Engine::new(EngineOptions { limits, ..EngineOptions::default() });
    let s = MemStorage::new();
    let q = nest("abs(", "vector(1)", ")", 600);
    assert_eq!(limit_kind(engine.instant_query(&s, &q, 0)), LimitKind::TreeDepth);
    assert_eq!(limit_kind(engine.format_query(&q, &QueryOptions::default())), LimitKind::TreeDepth);
    assert!(engine.instant_query(&s, &nest("abs(", "vector(1)", ")", 400), 0).is_ok());
}

#[test]
fn a_subquery_over_a_subquery_stops_at_the_timeout() {
    // One series, but 172,800 windows of 86,400 points each: minutes of
    // work inside a single series, where no between-series check helps.
    let q = "max_over_time(max_over_time(max_over_time(vector(1)[1d:1s])[1d:1s])[1d:1s])";
    let engine = Engine::default();
    let s = MemStorage::new();
    let opts = QueryOptions { timeout: Some(Duration::from_millis(300)), ..QueryOptions::default() };
    let t = Instant::now();
    let r = engine.instant_query_with(&s, q, 0, &opts);
    assert_eq!(r.unwrap_err(), Error::Timeout);
    assert!(t.elapsed() < Duration::from_secs(2), "stopped after {:?}", t.elapsed());

    let token = CancellationToken::new();
    let opts = QueryOptions { cancellation: Some(token.clone()), ..QueryOptions::default() };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        token.cancel();
    });
    let t = Instant::now();
    assert_eq!(engine.instant_query_with(&s, q, 0, &opts).unwrap_err(), Error::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(2), "stopped after {:?}", t.elapsed());
    canceller.join().unwrap();
}

/// A source whose `select` blocks until released (or panics, if asked).
struct Gatekeeper {
    open: AtomicBool,
    panic: bool,
}

impl SeriesSource for Gatekeeper {
    fn select(&self, _: i64, _: i64, _: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        if self.panic {
            panic!("storage bug");
        }
        while !self.open.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Vec::new())
    }
}

#[test]
fn queries_beyond_max_concurrency_queue_within_their_timeout() {
    let engine = Engine::new(EngineOptions { max_concurrency: 1, ..EngineOptions::default() });
    let source = Arc::new(Gatekeeper { open: AtomicBool::new(false), panic: false });
    let (e1, s1) = (engine.clone(), source.clone());
    let first = std::thread::spawn(move || e1.instant_query(&*s1, "up", 0));
    let wait_for = |active, queued| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.concurrency().active != active || engine.concurrency().queued != queued {
            assert!(Instant::now() < deadline, "{:?}", engine.concurrency());
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(1, 0);

    // A second query waits, and times out while waiting.
    let t = Instant::now();
    let opts = QueryOptions { timeout: Some(Duration::from_millis(200)), ..QueryOptions::default() };
    assert_eq!(engine.instant_query_with(&*source, "vector(1)", 0, &opts).unwrap_err(), Error::Timeout);
    assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(2));

    // A third is cancelled while queued, and leaves the queue.
    let token = CancellationToken::new();
    let (e3, s3, tok) = (engine.clone(), source.clone(), token.clone());
    let third = std::thread::spawn(move || {
        e3.instant_query_with(
            &*s3,
            "vector(1)",
            0,
            &QueryOptions { cancellation: Some(tok), ..QueryOptions::default() },
        )
    });
    wait_for(1, 1);
    token.cancel();
    assert_eq!(third.join().unwrap().unwrap_err(), Error::Cancelled);
    wait_for(1, 0);

    // A fourth runs as soon as the first finishes.
    let (e4, s4) = (engine.clone(), source.clone());
    let fourth = std::thread::spawn(move || e4.instant_query(&*s4, "vector(1)", 0));
    wait_for(1, 1);
    source.open.store(true, Ordering::Relaxed);
    assert!(first.join().unwrap().is_ok());
    assert!(fourth.join().unwrap().is_ok());
    wait_for(0, 0);
    assert_eq!(engine.concurrency().max, 1);
}

#[test]
fn a_panic_under_a_query_is_an_internal_error() {
    let engine = Engine::default();
    let source = Gatekeeper { open: AtomicBool::new(true), panic: true };
    match engine.instant_query(&source, "up", 0) {
        Err(Error::Internal(m)) => assert!(m.contains("storage bug"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The slot was given back.
    assert_eq!(engine.concurrency().active, 0);
    assert!(engine.instant_query(&MemStorage::new(), "vector(1)", 0).is_ok());
}

/// A source that blocks until opened and records which metric each query asked for.
struct Recorder {
    open: AtomicBool,
    order: parking_lot::Mutex<Vec<String>>,
}

impl SeriesSource for Recorder {
    fn select(&self, _: i64, _: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        while !self.open.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.order.lock().push(format!("{matchers:?}"));
        Ok(Vec::new())
    }
}

#[test]
fn queued_queries_get_slots_first_come_first_served() {
    let engine = Engine::new(EngineOptions { max_concurrency: 1, ..EngineOptions::default() });
    let source = Arc::new(Recorder { open: AtomicBool::new(false), order: parking_lot::Mutex::new(Vec::new()) });
    let mut threads = Vec::new();
    for (i, name) in ["first", "second", "third", "fourth", "fifth"].into_iter().enumerate() {
        let (e, s) = (engine.clone(), source.clone());
        threads.push(std::thread::spawn(move || e.instant_query(&*s, name, 0)));
        // Each query is running or queued before the next one asks.
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.concurrency().active + engine.concurrency().queued < i + 1 {
            assert!(Instant::now() < deadline, "{:?}", engine.concurrency());
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    source.open.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let order = source.order.lock().clone();
    let at = |n: &str| order.iter().position(|o| o.contains(&format!("\"{n}\""))).unwrap();
    let positions: Vec<usize> = ["first", "second", "third", "fourth", "fifth"].into_iter().map(at).collect();
    assert_eq!(positions, [0, 1, 2, 3, 4], "{order:?}");
}

#[test]
fn label_functions_cannot_multiply_a_label_into_gigabytes() {
    let engine = Engine::default();
    let s = MemStorage::new();
    // Each label_join doubles `a`: 40 levels would be 4 TiB.
    let doubling = nest(
        "label_join(",
        "label_replace(vector(1), \"a\", \"xxxx\", \"\", \"\")",
        ", \"a\", \"\", \"a\", \"a\")",
        40,
    );
    // 60,000 copies of a 100,000-byte capture: 6 GB.
    let copies = format!(
        "label_replace(label_replace(vector(1), \"a\", \"{}\", \"\", \"\"), \"a\", \"{}\", \"a\", \"(.*)\")",
        "x".repeat(100_000),
        "$1".repeat(60_000)
    );
    for (q, func) in [(doubling, "label_join"), (copies, "label_replace")] {
        let t = Instant::now();
        match engine.instant_query(&s, &q, 0) {
            Err(Error::Execution(m)) => {
                assert!(m.starts_with(func) && m.ends_with("exceeds the limit of 1048576 bytes"), "{m}")
            }
            other => panic!("{func}: {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{func} took {:?}", t.elapsed());
    }
    // Up to the limit they work...
    let join = nest(
        "label_join(",
        "label_replace(vector(1), \"a\", \"xxxx\", \"\", \"\")",
        ", \"a\", \"\", \"a\", \"a\")",
        18,
    );
    let r = engine.instant_query(&s, &join, 0).unwrap();
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].labels.get("a").map(str::len), Some(4 << 18));
    // ...and the bytes they make count against the sample limit.
    let small = Engine::new(EngineOptions { max_samples: 1_000, ..EngineOptions::default() });
    let q = format!("label_replace(vector(1), \"a\", \"{}\", \"\", \"\")", "x".repeat(100_000));
    assert_eq!(small.instant_query(&s, &q, 0).unwrap_err(), Error::TooManySamples { limit: 1_000 });
}

#[test]
fn a_tree_from_parse_at_the_limits_is_safe_on_a_2_mib_stack() {
    let shapes = [
        nest("abs(", "vector(1)", ")", 255),
        nest("sum(", "x", ")", 255),
        nest("max_over_time((", "x", ")[5m:1m])", 127),
        nest("1+(", "1", ")", 255),
        format!("1{}", "+1".repeat(1_000)),
        format!("2{}", "^2".repeat(1_000)),
        format!("{}x", "-".repeat(1_000)),
    ];
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for q in shapes {
                let e = tidemark_promql::parse(&q).unwrap();
                assert!(!e.to_string().is_empty());
                assert!(!e.prettify().is_empty());
                let _ = e.value_type();
                drop(e);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
