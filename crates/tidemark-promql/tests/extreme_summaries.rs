//! `max_over_time`/`min_over_time` at a single step read closed head chunks
//! that lie wholly inside the window from their stored summaries instead of
//! decoding them. The answers must be exactly those of reading every
//! sample: checked against the same data in a `MemStorage` (which has no
//! summaries), values compared bit for bit, over many windows, with NaNs,
//! staleness markers, signed zeros and infinities in the data.

use tidemark_promql::{Engine, MemStorage, Value};
use tidemark_storage::{stale_nan, Db, Labels};

mod common;
use common::Rng;

/// A value drawn mostly from a few awkward ones, so that ties, NaN runs and
/// signed zeros meet chunk boundaries often.
fn value(rng: &mut Rng, series: usize) -> f64 {
    let pool = [0.0, -0.0, 1.0, -1.0, 2.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, stale_nan()];
    match series {
        // Only NaNs and staleness markers: every extreme is NaN or absent.
        0 => {
            if rng.next().is_multiple_of(3) {
                stale_nan()
            } else {
                f64::from_bits(0x7ff8_0000_0000_0000 | (rng.next() % 4))
            }
        }
        // A plain counter-like gauge.
        1 => (rng.next() % 1000) as f64,
        _ => pool[(rng.next() % pool.len() as u64) as usize],
    }
}

/// Bits of every value of an instant vector, by series labels.
fn bits(v: &Value) -> Vec<(String, u64)> {
    let Value::Vector(v) = v else { panic!("not a vector: {v:?}") };
    let mut out: Vec<(String, u64)> = v.iter().map(|s| (format!("{:?}", s.labels), s.v.to_bits())).collect();
    out.sort();
    out
}

#[test]
fn extremes_from_chunk_summaries_match_reading_every_sample() {
    let db = Db::builder_in_memory().maintenance_interval(None).open().unwrap();
    let mem = MemStorage::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let series: Vec<Labels> =
        (0..6).map(|i| Labels::new([("__name__", "g"), ("s", &i.to_string()[..])]).unwrap()).collect();
    // 700 samples at 15 s: five closed chunks of 120 and an open one.
    let n = 700i64;
    let mut app = db.appender();
    for i in 0..n {
        let t = 1_000_000 + i * 15_000;
        for (k, l) in series.iter().enumerate() {
            // Series 3 misses some scrapes, so chunks span unequal times.
            if k == 3 && rng.next().is_multiple_of(5) {
                continue;
            }
            let v = value(&mut rng, k);
            app.append(l, t, v).unwrap();
            mem.add(l, t, v);
        }
    }
    app.commit().unwrap();
    let engine = Engine::default();
    let mut checked = 0;
    for f in ["max_over_time", "min_over_time"] {
        for range in ["1m", "30m", "1h", "2h", "3h"] {
            // Evaluation times on, just before and just after sample times.
            for step in (0..n).step_by(37) {
                for skew in [-1i64, 0, 1, 7_500] {
                    let at = 1_000_000 + step * 15_000 + skew;
                    let q = format!("{f}(g[{range}])");
                    let got = engine.instant_query(&db, &q, at).unwrap();
                    let want = engine.instant_query(&mem, &q, at).unwrap();
                    assert_eq!(bits(&got.value), bits(&want.value), "{q} at {at}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * 5 * 19 * 4);
    // With an offset and `@`, and inside an aggregation (the query of issue 13).
    for q in ["max(max_over_time(g[1h] offset 20m))", "min_over_time(g[90m] @ 9000)", "max(max_over_time(g[1h]))"] {
        for at in [4_000_000i64, 6_000_000, 11_000_000] {
            let got = engine.instant_query(&db, q, at).unwrap();
            let want = engine.instant_query(&mem, q, at).unwrap();
            assert_eq!(bits(&got.value), bits(&want.value), "{q} at {at}");
        }
    }
}

/// The samples counted as read are the same whether the closed chunks of
/// the window are read from their summaries or decoded.
#[test]
fn extremes_count_every_sample_as_read() {
    let db = Db::builder_in_memory().maintenance_interval(None).open().unwrap();
    let mem = MemStorage::new();
    let l = Labels::new([("__name__", "g")]).unwrap();
    let mut app = db.appender();
    for i in 0..500i64 {
        let v = if i % 50 == 7 { stale_nan() } else { (i % 97) as f64 };
        app.append(&l, i * 15_000, v).unwrap();
        mem.add(&l, i * 15_000, v);
    }
    app.commit().unwrap();
    let engine = Engine::default();
    let at = 499 * 15_000;
    for q in ["max_over_time(g[2h])", "min_over_time(g[1h])"] {
        let got = engine.instant_query(&db, q, at).unwrap();
        let want = engine.instant_query(&mem, q, at).unwrap();
        assert_eq!(bits(&got.value), bits(&want.value), "{q}");
        assert_eq!(got.stats.samples_read, want.stats.samples_read, "{q}");
    }
}
