//! Aggregations over native histograms: the streamed path (an aggregation
//! folding a selector series by series) must give exactly the answer and
//! the annotations of the materialised path, checked against the same
//! query with its argument written `limitk(1000, x)` (which keeps every
//! sample, histograms included, in the same order, but cannot be
//! streamed). The data mix everything the histogram side of an
//! aggregation has to reconcile: different exponential schemas and zero
//! thresholds, custom buckets with different bounds, custom and
//! exponential buckets in one group, floats and histograms in one group
//! and in one series, conflicting counter-reset hints, and sums that
//! overflow (so `avg` goes over to its incremental mean).
//!
//! A few hand-checked answers and annotations follow.

use std::collections::BTreeMap;

use tidemark_promql::{Engine, EngineOptions, QueryResult, SelectedSeries, SeriesSource, Value};
use tidemark_storage::histogram::{
    CounterResetHint, FloatHistogram, HistogramSample, HistogramValue, Span, CUSTOM_BUCKETS_SCHEMA,
};
use tidemark_storage::{Labels, Matcher, MixedIterator, Sample};

mod common;
use common::Rng;

/// A source whose series hold floats and histograms.
#[derive(Default)]
struct Mixed {
    series: BTreeMap<Labels, (Vec<Sample>, Vec<HistogramSample>)>,
}

impl Mixed {
    fn float(&mut self, l: &Labels, t: i64, v: f64) {
        self.series.entry(l.clone()).or_default().0.push(Sample::new(t, v));
    }
    fn hist(&mut self, l: &Labels, t: i64, h: FloatHistogram) {
        self.series.entry(l.clone()).or_default().1.push(HistogramSample { t, h: HistogramValue::Float(h) });
    }
}

impl SeriesSource for Mixed {
    fn select(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> Result<Vec<SelectedSeries>, String> {
        let mut out = Vec::new();
        for (labels, (f, h)) in &self.series {
            if !matchers.iter().all(|m| m.matches(labels.get(&m.name).unwrap_or(""))) {
                continue;
            }
            let f: Vec<Sample> = f.iter().filter(|s| s.t >= mint && s.t <= maxt).copied().collect();
            let h: Vec<HistogramSample> = h.iter().filter(|s| s.t >= mint && s.t <= maxt).cloned().collect();
            if f.is_empty() && h.is_empty() {
                continue;
            }
            out.push(SelectedSeries { labels: labels.clone(), samples: Box::new(MixedIterator::new(f, h)) });
        }
        Ok(out)
    }
}

const START: i64 = 600_000;
const SAMPLES: i64 = 40;
const STEP: i64 = 15_000;

const HINTS: [CounterResetHint; 4] = [
    CounterResetHint::Unknown,
    CounterResetHint::CounterReset,
    CounterResetHint::NotCounterReset,
    CounterResetHint::Gauge,
];

/// An exponential histogram with random schema, zero threshold, hint and
/// buckets on both sides (count = zero count + buckets).
fn exponential(rng: &mut Rng, scale: f64) -> FloatHistogram {
    let side = |rng: &mut Rng| {
        let n = (rng.next() % 4) as usize;
        let spans =
            if n == 0 { Vec::new() } else { vec![Span { offset: (rng.next() % 5) as i32 - 2, length: n as u32 }] };
        let buckets: Vec<f64> = (0..n).map(|_| (rng.next() % 7) as f64 * scale).collect();
        (spans, buckets)
    };
    let (positive_spans, positive_buckets) = side(rng);
    let (negative_spans, negative_buckets) = side(rng);
    let zero_count = (rng.next() % 3) as f64 * scale;
    let count = zero_count + positive_buckets.iter().sum::<f64>() + negative_buckets.iter().sum::<f64>();
    FloatHistogram {
        counter_reset_hint: HINTS[(rng.next() % 4) as usize],
        schema: (rng.next() % 4) as i32,
        zero_threshold: [0.001, 0.5, 1.0][(rng.next() % 3) as usize],
        zero_count,
        count,
        sum: (rng.next() % 100) as f64 * 0.1 * scale,
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: Vec::new(),
    }
}

/// A custom-bucket histogram over one of a few sets of bounds.
fn custom(rng: &mut Rng) -> FloatHistogram {
    let bounds = [vec![1.0, 5.0, 10.0], vec![5.0, 10.0], vec![1.0, 10.0, 20.0]][(rng.next() % 3) as usize].clone();
    let buckets: Vec<f64> = (0..=bounds.len()).map(|_| (rng.next() % 5) as f64).collect();
    FloatHistogram {
        counter_reset_hint: HINTS[(rng.next() % 3) as usize],
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: buckets.iter().sum(),
        sum: (rng.next() % 50) as f64,
        positive_spans: vec![Span { offset: 0, length: buckets.len() as u32 }],
        positive_buckets: buckets,
        custom_values: bounds,
        ..FloatHistogram::default()
    }
}

/// Five groups of five series, every series with a sample at the first
/// time (so `limitk` lists them in selection order at every step):
/// `exp` (exponential histograms, now and then of huge counts), `mixed`
/// (series switching between floats and histograms), `nhcb` (custom
/// buckets, now and then an exponential histogram), `float` (floats
/// only) and `gauge` (histograms that overflow `avg`'s sum).
fn data() -> Mixed {
    let mut src = Mixed::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for g in ["exp", "mixed", "nhcb", "float", "gauge"] {
        for s in 0..5 {
            let l = Labels::new([("__name__", "m"), ("g", g), ("s", &s.to_string()[..])]).unwrap();
            for i in 0..SAMPLES {
                let t = START + i * STEP;
                // Gaps, but never at the first time.
                if i > 0 && rng.next().is_multiple_of(9) {
                    continue;
                }
                match g {
                    "exp" => {
                        let scale = if rng.next().is_multiple_of(15) { 1e300 } else { 1.0 };
                        let h = exponential(&mut rng, scale);
                        src.hist(&l, t, h);
                    }
                    "mixed" if rng.next().is_multiple_of(3) => src.float(&l, t, (rng.next() % 10) as f64),
                    "mixed" => {
                        let h = exponential(&mut rng, 1.0);
                        src.hist(&l, t, h);
                    }
                    "nhcb" if rng.next().is_multiple_of(12) => {
                        let h = exponential(&mut rng, 1.0);
                        src.hist(&l, t, h);
                    }
                    "nhcb" => {
                        let h = custom(&mut rng);
                        src.hist(&l, t, h);
                    }
                    "float" => src.float(&l, t, (rng.next() % 1000) as f64 * 0.01),
                    _ => {
                        let mut h = exponential(&mut rng, 1.7e308 / 8.0);
                        h.counter_reset_hint = CounterResetHint::Gauge;
                        src.hist(&l, t, h);
                    }
                }
            }
        }
    }
    src
}

/// The answer and its annotations, with every float written by `{:?}` (so
/// NaNs compare equal and -0 differs from 0).
fn render(r: &QueryResult) -> (String, Vec<String>) {
    let mut annotations: Vec<String> = r.annotations.iter().map(|a| a.to_string()).collect();
    annotations.sort();
    (format!("{:?}", r.value), annotations)
}

/// An engine with `limitk` (experimental) enabled.
fn engine() -> Engine {
    Engine::new(EngineOptions { enable_experimental_functions: true, ..EngineOptions::default() })
}

#[test]
fn streamed_and_materialised_aggregations_agree_on_histograms() {
    let src = data();
    let engine = engine();
    let end = START + (SAMPLES - 1) * STEP;
    let mut histograms_seen = 0;
    for op in ["sum", "avg", "count", "group", "min", "max", "stddev", "stdvar"] {
        for grouping in ["", " by (g)", " without (s)", " by (s)"] {
            for sel in ["m", "m{g=~\"exp|gauge\"}", "m{g=~\"nhcb|float\"}", "m{g=\"mixed\"}"] {
                let streamed = format!("{op}{grouping} ({sel})");
                let materialised = format!("{op}{grouping} (limitk(1000, {sel}))");
                for step in [STEP, 2 * STEP, 7_000] {
                    let a = engine.range_query(&src, &streamed, START, end, step).unwrap();
                    let b = engine.range_query(&src, &materialised, START, end, step).unwrap();
                    assert_eq!(render(&a), render(&b), "{streamed} step {step}");
                    if let Value::Matrix(m) = &a.value {
                        histograms_seen += m.iter().map(|s| s.histograms.len()).sum::<usize>();
                    }
                }
                for t in [START, START + 7 * STEP, end] {
                    let a = engine.instant_query(&src, &streamed, t).unwrap();
                    let b = engine.instant_query(&src, &materialised, t).unwrap();
                    assert_eq!(render(&a), render(&b), "{streamed} at {t}");
                }
            }
        }
    }
    assert!(histograms_seen > 500, "{histograms_seen}");
}

fn instant(src: &Mixed, q: &str, t: i64) -> QueryResult {
    engine().instant_query(src, q, t).unwrap()
}

fn messages(r: &QueryResult) -> Vec<String> {
    r.annotations.iter().map(|a| a.to_string()).collect()
}

fn h(count: f64, hint: CounterResetHint) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: hint,
        count,
        sum: count,
        positive_spans: vec![Span { offset: 0, length: 1 }],
        positive_buckets: vec![count],
        ..FloatHistogram::default()
    }
}

fn l(name: &str, s: &str) -> Labels {
    Labels::new([("__name__", name), ("s", s)]).unwrap()
}

#[test]
fn sum_and_avg_add_histograms_and_report_what_prometheus_reports() {
    let mut src = Mixed::default();
    src.hist(&l("a", "1"), 0, h(2.0, CounterResetHint::CounterReset));
    src.hist(&l("a", "2"), 0, h(4.0, CounterResetHint::NotCounterReset));
    src.hist(&l("b", "1"), 0, h(2.0, CounterResetHint::Unknown));
    src.float(&l("b", "2"), 0, 1.0);
    src.hist(&l("c", "1"), 0, h(2.0, CounterResetHint::Unknown));
    src.hist(
        &l("c", "2"),
        0,
        FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, custom_values: vec![1.0], ..h(2.0, CounterResetHint::Unknown) },
    );

    let r = instant(&src, "sum(a)", 0);
    let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1);
    let got = v[0].h.as_deref().unwrap();
    assert_eq!((got.count, got.sum, got.positive_buckets.clone()), (6.0, 6.0, vec![6.0]));
    assert_eq!(messages(&r), vec!["PromQL warning: conflicting counter resets during histogram aggregation (1:5)"]);

    let r = instant(&src, "avg(a)", 0);
    let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(v[0].h.as_deref().map(|h| h.count), Some(3.0));

    let r = instant(&src, "sum(b)", 0);
    assert_eq!(r.value, Value::Vector(Vec::new()));
    assert_eq!(messages(&r), vec!["PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"]);

    let r = instant(&src, "avg(c)", 0);
    assert_eq!(r.value, Value::Vector(Vec::new()));
    assert_eq!(
        messages(&r),
        vec![
            "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name \"c\" (1:5)"
        ]
    );

    // `count` and `group` count histograms; the other aggregations ignore them.
    let r = instant(&src, "count({__name__=~\"a|b\"})", 0);
    let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(v[0].v, 4.0);
    assert!(r.annotations.is_empty());
    for op in ["min", "max", "stddev", "stdvar"] {
        let r = instant(&src, &format!("{op}(b)"), 0);
        let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
        assert_eq!(v.len(), 1, "{op}");
        assert!(v[0].h.is_none(), "{op}");
        assert_eq!(
            messages(&r),
            vec![format!("PromQL info: ignored histogram in {op} aggregation (1:{})", op.len() + 2)]
        );
    }
    let r = instant(&src, "quantile(0.5, b)", 0);
    assert_eq!(messages(&r), vec!["PromQL info: ignored histogram in quantile aggregation (1:15)"]);
    // topk/bottomk point at the aggregation itself.
    let r = instant(&src, "topk(5, b)", 0);
    let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1);
    assert_eq!(messages(&r), vec!["PromQL info: ignored histogram in topk aggregation (1:1)"]);
    // limitk keeps histograms.
    let r = instant(&src, "limitk(5, b)", 0);
    let Value::Vector(v) = &r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.iter().filter(|s| s.h.is_some()).count(), 1);
    assert_eq!(v.len(), 2);
}

#[test]
fn count_values_counts_histograms_by_their_string_form() {
    let mut src = Mixed::default();
    src.hist(&l("v", "1"), 0, h(2.0, CounterResetHint::Unknown));
    src.hist(&l("v", "2"), 0, h(2.0, CounterResetHint::Unknown));
    src.float(&l("v", "3"), 0, 2.0);
    let r = instant(&src, "count_values(\"x\", v)", 0);
    let Value::Vector(mut v) = r.value else { panic!("{:?}", r.value) };
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    let got: Vec<(String, f64)> = v.iter().map(|s| (s.labels.get("x").unwrap().to_string(), s.v)).collect();
    assert_eq!(got, vec![("2".to_string(), 1.0), ("{count:2, sum:2, (0.5,1]:2}".to_string(), 2.0)]);
}
