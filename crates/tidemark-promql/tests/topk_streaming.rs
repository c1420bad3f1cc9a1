//! `topk`/`bottomk` over a selector or a range function are folded series
//! by series (streamed) instead of materialising every input point. The
//! answers must be exactly those of the materialising path: checked here
//! against the same query with its argument written `x * 1`, which gives
//! the same values of the same series in the same order (without the
//! metric name, which the comparison leaves out) but cannot be streamed.
//! Ties are broken by that order, so it is checked too: values are
//! compared bit for bit and in answer order (ties and NaNs included), for
//! instant and range queries, a `k` that changes from step to step (zero at
//! some steps), a `k` larger than the number of series, and steps that do
//! and do not fall on sample times.

use tidemark_promql::{Engine, MemStorage, QueryResult, Value};
use tidemark_storage::{stale_nan, Labels};

mod common;
use common::Rng;

const START: i64 = 1_000_000;
const SAMPLES: i64 = 240;

/// 30 counters (with resets and repeated values, so rates tie often), 30
/// gauges drawn from awkward values (NaN, ±Inf, ±0, staleness markers),
/// some series missing scrapes, and a `k` series that varies from 0 to 4.
fn data() -> MemStorage {
    let mem = MemStorage::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let pool = [0.0, -0.0, 1.0, 1.0, 2.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, stale_nan()];
    for s in 0..30 {
        let counter = Labels::new([("__name__", "c_total"), ("s", &format!("{s:02}")[..])]).unwrap();
        let gauge = Labels::new([("__name__", "g"), ("s", &format!("{s:02}")[..])]).unwrap();
        let mut total = 0.0;
        for i in 0..SAMPLES {
            let t = START + i * 15_000;
            if s % 7 == 3 && rng.next().is_multiple_of(4) {
                continue;
            }
            // Steps of 0, 1 or 2: many series share a rate.
            total += (rng.next() % 3) as f64;
            if rng.next().is_multiple_of(60) {
                total = 0.0;
            }
            mem.add(&counter, t, total);
            mem.add(&gauge, t, pool[(rng.next() % pool.len() as u64) as usize]);
        }
    }
    let k = Labels::new([("__name__", "k")]).unwrap();
    for i in 0..SAMPLES {
        mem.add(&k, START + i * 15_000, (i % 5) as f64);
    }
    mem
}

/// Labels (less the metric name), timestamps and value bits of an answer,
/// in answer order.
fn bits(r: &QueryResult) -> Vec<(String, i64, u64)> {
    let unnamed = |l: &Labels| format!("{:?}", l.without(&["__name__"]));
    match &r.value {
        Value::Vector(v) => v.iter().map(|s| (unnamed(&s.labels), s.t, s.v.to_bits())).collect(),
        Value::Matrix(m) => {
            m.iter().flat_map(|s| s.samples.iter().map(move |p| (unnamed(&s.labels), p.t, p.v.to_bits()))).collect()
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

const QUERIES: [(&str, &str); 10] = [
    ("topk(3, {})", "rate(c_total[1m])"),
    ("bottomk(3, {})", "rate(c_total[2m])"),
    ("topk(1, {})", "irate(c_total[1m])"),
    ("topk(50, {})", "increase(c_total[5m])"),
    ("topk(scalar(k), {})", "rate(c_total[1m])"),
    ("bottomk(2.7, {})", "max_over_time(g[2m])"),
    ("topk(4, {})", "min_over_time(g[1m])"),
    ("topk by () (2, {})", "last_over_time(g[45s])"),
    ("topk(3, {})", "g"),
    ("bottomk(5, {})", "g offset 1m"),
];

/// Runs every query of [`QUERIES`] streamed and materialised with `run` and
/// compares the answers; returns how many were compared and in how many the
/// streamed evaluation held fewer points.
fn check(run: impl Fn(&str) -> QueryResult) -> (usize, usize) {
    let mut checked = (0, 0);
    for (outer, inner) in QUERIES {
        let streamed = outer.replace("{}", inner);
        let materialised = outer.replace("{}", &format!("{inner} * 1"));
        let (got, want) = (run(&streamed), run(&materialised));
        assert_eq!(bits(&got), bits(&want), "{streamed}");
        assert_eq!(format!("{:?}", got.annotations), format!("{:?}", want.annotations), "{streamed}");
        assert_eq!(got.stats.samples_read, want.stats.samples_read, "{streamed}");
        // Streaming never holds more; where it held fewer, it did stream
        // (a `k` below 1 at every step is left to the materialising path).
        assert!(got.stats.peak_samples <= want.stats.peak_samples, "{streamed}: {:?} vs {:?}", got.stats, want.stats);
        checked.0 += 1;
        checked.1 += usize::from(got.stats.peak_samples < want.stats.peak_samples);
    }
    checked
}

#[test]
fn streamed_topk_answers_like_the_materialised_one() {
    let mem = data();
    let engine = Engine::default();
    let end = START + (SAMPLES - 1) * 15_000;
    let (mut checked, mut streamed) = (0, 0);
    // Instant queries, on and between sample times.
    for at in [START + 600_000, START + 1_207_500, end, end + 1] {
        let (c, s) = check(|q| engine.instant_query(&mem, q, at).unwrap());
        (checked, streamed) = (checked + c, streamed + s);
    }
    // Range queries at the scrape interval, coarser, and off the sample times.
    for (start, step) in [(START, 15_000), (START + 3_000, 60_000), (START + 1, 7_000)] {
        let (c, s) = check(|q| engine.range_query(&mem, q, start, end, step).unwrap());
        (checked, streamed) = (checked + c, streamed + s);
    }
    assert_eq!(checked, 7 * QUERIES.len());
    assert!(streamed >= checked - 4, "{streamed} of {checked} streamed");
}

/// A parameter that makes `topk` fail or answer nothing behaves as before
/// (those cases are left to the materialising path).
#[test]
fn topk_parameter_edge_cases_keep_their_answers() {
    let mem = data();
    let engine = Engine::default();
    let end = START + (SAMPLES - 1) * 15_000;
    assert!(engine.range_query(&mem, "topk(scalar(nope), rate(c_total[1m]))", START, end, 15_000).is_err());
    let r = engine.range_query(&mem, "topk(0.5, rate(c_total[1m]))", START, end, 15_000).unwrap();
    assert!(bits(&r).is_empty());
    assert!(engine.instant_query(&mem, "topk(1e300, rate(c_total[1m]))", end).is_err());
}
