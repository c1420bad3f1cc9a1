//! Instant range functions of a plain selector are evaluated inside the
//! storage's select (`EngineOptions::push_down_windows`), over each series'
//! samples where they are stored. The answers must be exactly those of the
//! general path (select the series, read them, evaluate): checked here bit
//! for bit — labels, order, timestamps, value bits, annotations and samples
//! read — on random data with counter resets, staleness markers, gaps,
//! out-of-order samples and windows on and around chunk boundaries, with
//! `offset` and `@`.

use std::time::Duration;

use proptest::prelude::*;
use tidemark_promql::{Engine, EngineOptions, QueryResult, SeriesSource, Value};
use tidemark_storage::{stale_nan, Db, Labels, Matcher, Sample};

const START: i64 = 1_796_400_000_000;
const STEP: i64 = 15_000;

/// One scrape of a series: how far after the previous one, and what value.
#[derive(Debug, Clone)]
enum Event {
    /// The counter grows by this much.
    Grow(u8),
    /// The counter restarts from this value.
    Reset(u8),
    /// A staleness marker.
    Stale,
    /// No scrape for this many intervals.
    Gap(u8),
    /// A scrape a little off the grid (jitter in ms).
    Jitter(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        12 => any::<u8>().prop_map(Event::Grow),
        1 => any::<u8>().prop_map(Event::Reset),
        1 => Just(Event::Stale),
        1 => (1u8..40).prop_map(Event::Gap),
        1 => (1u16..14_000).prop_map(Event::Jitter),
    ]
}

/// Samples of one series from its events, in time order.
fn samples(events: &[Event]) -> Vec<Sample> {
    let mut out = Vec::new();
    let (mut t, mut v) = (START, 0.0f64);
    for e in events {
        t += STEP;
        match e {
            Event::Grow(d) => {
                v += f64::from(*d) * 0.25;
                out.push(Sample { t, v });
            }
            Event::Reset(x) => {
                v = f64::from(*x);
                out.push(Sample { t, v });
            }
            Event::Stale => out.push(Sample { t, v: stale_nan() }),
            Event::Gap(n) => t += i64::from(*n) * STEP,
            Event::Jitter(j) => out.push(Sample { t: t + i64::from(*j), v }),
        }
    }
    out
}

fn engine(push_down: bool) -> Engine {
    Engine::new(EngineOptions { push_down_windows: push_down, parallelism: 2, ..EngineOptions::default() })
}

/// Everything of an answer that must not differ: the series in order with
/// their labels, timestamps and value bits; the annotations; samples read.
fn exact(r: &QueryResult) -> (Vec<(String, i64, u64)>, String, u64) {
    let points = match &r.value {
        Value::Vector(v) => v.iter().map(|s| (s.labels.to_string(), s.t, s.v.to_bits())).collect(),
        other => panic!("not a vector: {other:?}"),
    };
    (points, format!("{:?}", r.annotations), r.stats.samples_read)
}

const QUERIES: &[&str] = &[
    "rate(c_total[5m])",
    "increase(c_total[5m])",
    "irate(c_total[5m])",
    "delta(c_total[2m])",
    "idelta(c_total[1m])",
    "resets(c_total[10m])",
    "changes(c_total[5m])",
    "sum_over_time(c_total[3m])",
    "avg_over_time(c_total[5m])",
    "count_over_time(c_total[5m])",
    "last_over_time(c_total[1m])",
    "stddev_over_time(c_total[5m])",
    "rate(c_total[45m])",
    "rate(c_total[5m] offset 7m)",
    "rate(c_total[5m] @ 1796403000.123)",
    "rate(other[5m])",
    r#"rate(c_total{s=~"1|2"}[5m])"#,
    r#"rate({__name__=~"c_total|other"}[5m])"#,
    "sum by (g) (rate(c_total[5m]))",
    "topk(2, sum by (g) (rate(c_total[5m])))",
    "sum(irate(c_total[5m]))",
];

/// Builds a head holding `series` (every third with out-of-order samples
/// appended later when `ooo` is set) and checks every query at every
/// evaluation time both ways.
fn check(series: &[Vec<Event>], ooo: &[(usize, u16, u8)], times: &[i64]) {
    let db = Db::builder_in_memory()
        .maintenance_interval(None)
        .out_of_order_window(Duration::from_secs(3 * 3600))
        .open()
        .unwrap();
    let labels: Vec<Labels> = (0..series.len())
        .map(|i| {
            let (s, g) = (i.to_string(), (i % 2).to_string());
            Labels::new([("__name__", "c_total"), ("s", &s[..]), ("g", &g[..])]).unwrap()
        })
        .collect();
    let mut app = db.appender();
    for (l, events) in labels.iter().zip(series) {
        for s in samples(events) {
            app.append(l, s.t, s.v).unwrap();
        }
    }
    // A gauge-named series for the "might not be a counter" annotation.
    let other = Labels::new([("__name__", "other")]).unwrap();
    for i in 0..50 {
        app.append(&other, START + i * STEP, i as f64).unwrap();
    }
    app.commit().unwrap();
    // Out-of-order samples: older than the series' newest, on or off the
    // grid (an existing timestamp is a duplicate: rejected or identical).
    let mut app = db.appender();
    for &(i, at, v) in ooo {
        let l = &labels[i % labels.len()];
        let _ = app.append(l, START + i64::from(at) * 997, f64::from(v));
    }
    app.commit().unwrap();
    let (pushed, general) = (engine(true), engine(false));
    for q in QUERIES {
        for &t in times {
            let a = pushed.instant_query(&db, q, t);
            let b = general.instant_query(&db, q, t);
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(exact(&a), exact(&b), "{q} at {t}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{q} at {t}"),
                (a, b) => panic!("{q} at {t}: {a:?} vs {b:?}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pushed_down_windows_answer_as_the_general_path(
        series in prop::collection::vec(prop::collection::vec(event(), 1..420), 1..5),
        ooo in prop::collection::vec((0usize..8, 0u16..6000, any::<u8>()), 0..30),
        offsets in prop::collection::vec(0i64..7_000_000, 6),
    ) {
        // Times near the data's end (the usual instant query), on and just
        // beside sample times and chunk boundaries (every 120 samples), and
        // anywhere in the data.
        let mut times: Vec<i64> = offsets.iter().map(|o| START + o).collect();
        for k in [1i64, 120, 121, 240, 360] {
            for skew in [-1, 0, 1] {
                times.push(START + k * STEP + skew);
            }
        }
        times.push(START + 420 * STEP);
        check(&series, &ooo, &times);
    }
}

/// The pushed-down path is taken: the head answers `select_windows` with
/// every series' samples in the range, exactly those the select gives.
#[test]
fn the_head_reads_windows_in_place_and_blocks_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder(dir.path()).maintenance_interval(None).open().unwrap();
    let l = Labels::new([("__name__", "c_total")]).unwrap();
    let mut app = db.appender();
    for i in 0..300 {
        app.append(&l, START + i * STEP, i as f64).unwrap();
    }
    app.commit().unwrap();
    let m = [Matcher::equal("__name__", "c_total")];
    let (mint, maxt) = (START + 100 * STEP, START + 250 * STEP);
    let all = |s: &[Sample]| Some(Sample { t: s.len() as i64, v: s.iter().map(|p| p.v).sum() });
    let sel = db.select_windows(mint, maxt, &m, &all).expect("the head has the path").unwrap();
    let selected = db.select(mint, maxt, &m).unwrap();
    let mut want = Vec::new();
    let mut it = selected.into_iter().next().unwrap().samples;
    it.drain_into(&mut want);
    assert_eq!(sel.points.len(), 1);
    assert_eq!(sel.points[0].0, l);
    assert_eq!(sel.points[0].1, Sample { t: want.len() as i64, v: want.iter().map(|p| p.v).sum() });
    assert_eq!(sel.samples_read, 151);
    assert!(sel.warnings.is_empty());
    let before = engine(true).instant_query(&db, "rate(c_total[5m])", maxt).unwrap();
    // Once blocks hold the range, the path is not offered and the engine
    // selects the series as before.
    assert!(db.flush_head().unwrap() > 0);
    assert!(db.select_windows(mint, maxt, &m, &all).is_none());
    let after = engine(true).instant_query(&db, "rate(c_total[5m])", maxt).unwrap();
    let general = engine(false).instant_query(&db, "rate(c_total[5m])", maxt).unwrap();
    assert_eq!(exact(&after), exact(&general));
    assert_eq!(exact(&before).0, exact(&after).0);
}
