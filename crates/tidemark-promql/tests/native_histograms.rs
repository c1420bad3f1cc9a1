//! Native histograms through the evaluator: selectors read them from a
//! source that holds floats and histograms, and answers carry them.

use std::collections::BTreeMap;

use tidemark_promql::{Engine, SelectedSeries, SeriesSource, Value};
use tidemark_storage::histogram::{FloatHistogram, HistogramSample, HistogramValue, Span};
use tidemark_storage::{stale_nan, Labels, Matcher, MixedIterator, Sample};

/// A source whose series hold floats and histograms (what `MemStorage`
/// and the database give once they store histograms; kept here so the
/// evaluator's part is tested on its own).
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

fn hist(count: f64) -> FloatHistogram {
    FloatHistogram {
        schema: 0,
        count,
        sum: count * 1.5,
        positive_spans: vec![Span { offset: 0, length: 2 }],
        positive_buckets: vec![count / 2.0, count / 2.0],
        ..FloatHistogram::default()
    }
}

fn labels(name: &str) -> Labels {
    Labels::new([("__name__", name), ("job", "api")]).unwrap()
}

fn source() -> Mixed {
    let mut s = Mixed::default();
    let h = labels("latency");
    for i in 0..10 {
        s.hist(&h, i * 60_000, hist(i as f64 * 4.0));
    }
    // A series that switches: floats, then histograms, then a stale
    // histogram, then floats again.
    let m = labels("switching");
    s.float(&m, 0, 1.0);
    s.float(&m, 60_000, 2.0);
    s.hist(&m, 120_000, hist(8.0));
    s.hist(&m, 180_000, FloatHistogram { sum: stale_nan(), ..hist(8.0) });
    s.float(&m, 240_000, 5.0);
    s
}

#[test]
fn an_instant_selector_returns_the_newest_histogram() {
    let src = source();
    let r = Engine::default().instant_query(&src, "latency", 330_000).unwrap();
    let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].t, 330_000);
    assert_eq!(v[0].h.as_deref(), Some(&hist(20.0)));
}

#[test]
fn a_series_switches_between_floats_and_histograms_and_a_stale_histogram_ends_it() {
    let src = source();
    let r = Engine::default().range_query(&src, "switching", 0, 300_000, 60_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(m.len(), 1);
    let floats: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.t, s.v)).collect();
    assert_eq!(floats, vec![(0, 1.0), (60_000, 2.0), (240_000, 5.0), (300_000, 5.0)]);
    let hists: Vec<i64> = m[0].histograms.iter().map(|h| h.t).collect();
    // 180 s is the stale marker: nothing at that step.
    assert_eq!(hists, vec![120_000]);
    assert_eq!(m[0].histograms[0].h, hist(8.0));
}

#[test]
fn a_range_selector_returns_histograms_without_staleness_markers() {
    let src = source();
    let r = Engine::default().instant_query(&src, "switching[4m]", 240_000).unwrap();
    let Value::Matrix(m) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(m[0].samples.iter().map(|s| s.t).collect::<Vec<_>>(), vec![60_000, 240_000]);
    assert_eq!(m[0].histograms.iter().map(|h| h.t).collect::<Vec<_>>(), vec![120_000]);
}

#[test]
fn timestamp_of_a_histogram_sample_is_its_time() {
    let src = source();
    let r = Engine::default().instant_query(&src, "timestamp(latency)", 330_000).unwrap();
    let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].v, 300.0);
    assert!(v[0].h.is_none());
}

#[test]
fn histogram_count_sum_and_avg_read_histograms_and_ignore_floats() {
    let src = source();
    for (q, want) in [("histogram_count", 20.0), ("histogram_sum", 30.0), ("histogram_avg", 1.5)] {
        let r = Engine::default().instant_query(&src, &format!("{q}({{job=\"api\"}})"), 330_000).unwrap();
        let Value::Vector(v) = r.value else { panic!("{:?}", r.value) };
        // `switching` holds a float at 330 s: ignored.
        assert_eq!(v.len(), 1, "{q}");
        assert_eq!(v[0].v, want, "{q}");
        assert_eq!(v[0].labels, Labels::new([("job", "api")]).unwrap(), "{q}: the name is dropped");
    }
}

/// The database and `MemStorage` answer histogram queries alike (the
/// database's in-place window path must not read histograms as missing).
#[test]
fn the_database_answers_histogram_queries_like_mem_storage() {
    use tidemark_promql::MemStorage;
    use tidemark_storage::histogram::Histogram;
    use tidemark_storage::Db;

    let db = Db::in_memory().unwrap();
    let mem = MemStorage::new();
    let l = labels("requests_seconds");
    let mut app = db.appender();
    for i in 0..40i64 {
        // A counter with a reset at 20 and a bucket appearing at 10.
        let n = (if i >= 20 { i - 20 } else { i }) as u64;
        let (spans, buckets) = if n >= 10 {
            (vec![Span { offset: 0, length: 3 }], vec![n as i64, 0, 1 - n as i64])
        } else {
            (vec![Span { offset: 0, length: 2 }], vec![n as i64, 0])
        };
        let count = if n >= 10 { 2 * n + 1 } else { 2 * n };
        let h = HistogramValue::Integer(Histogram {
            schema: 1,
            count,
            sum: n as f64 * 1.25,
            positive_spans: spans,
            positive_buckets: buckets,
            ..Histogram::default()
        });
        app.append_histogram(&l, i * 15_000, h.clone()).unwrap();
        mem.add_histogram(&l, i * 15_000, h);
    }
    app.commit().unwrap();
    let engine = Engine::default();
    // Two differences are by design, as in Prometheus' TSDB: the database
    // reads back the hints a TSDB gives (the first sample of a chunk
    // unknown, later ones "not a reset"), `MemStorage` the ones appended;
    // and a sample read from a chunk has the empty buckets later samples
    // added to the chunk. Both are normalised away.
    let no_hints = |v: Value| match v {
        Value::Vector(mut v) => {
            for s in &mut v {
                if let Some(h) = s.h.as_mut() {
                    h.counter_reset_hint = Default::default();
                    h.compact(0);
                }
            }
            Value::Vector(v)
        }
        Value::Matrix(mut m) => {
            for s in &mut m {
                for h in &mut s.histograms {
                    h.h.counter_reset_hint = Default::default();
                    h.h.compact(0);
                }
            }
            Value::Matrix(m)
        }
        other => other,
    };
    for q in [
        "rate(requests_seconds[2m])",
        "increase(requests_seconds[5m])",
        "histogram_count(rate(requests_seconds[1m]))",
        "histogram_quantile(0.9, rate(requests_seconds[3m]))",
        "sum_over_time(requests_seconds[1m])",
        "requests_seconds",
        "resets(requests_seconds[10m])",
    ] {
        for t in [150_000, 300_000, 450_000, 585_000] {
            let a = no_hints(engine.instant_query(&db, q, t).unwrap().value);
            let b = no_hints(engine.instant_query(&mem, q, t).unwrap().value);
            assert_eq!(a, b, "{q} at {t}");
            assert!(matches!(&a, Value::Vector(v) if !v.is_empty()), "{q} at {t}: {a:?}");
        }
        let a = no_hints(engine.range_query(&db, q, 0, 585_000, 15_000).unwrap().value);
        let b = no_hints(engine.range_query(&mem, q, 0, 585_000, 15_000).unwrap().value);
        assert_eq!(a, b, "{q} as a range query");
    }
}

/// The sample limit weighs a histogram by its size, as Prometheus does
/// (`HPoint.size`: (168 + 8 per span, bucket and bound + 8) / 16), so wide
/// histograms cannot hold far more memory than the limit means.
#[test]
fn the_sample_limit_counts_a_histogram_by_its_size() {
    use tidemark_promql::{EngineOptions, Error};
    let mut s = Mixed::default();
    let wide = FloatHistogram {
        schema: 3,
        count: 100.0,
        sum: 1.0,
        positive_spans: vec![Span { offset: 0, length: 100 }],
        positive_buckets: vec![1.0; 100],
        ..FloatHistogram::default()
    };
    // (168 + 8 * 101 + 8) / 16 = 61 samples each.
    for i in 0..10 {
        s.hist(&labels("wide"), i * 60_000, wide.clone());
        s.float(&labels("flat"), i * 60_000, 1.0);
    }
    let engine = Engine::new(EngineOptions { max_samples: 100, ..EngineOptions::default() });
    // One wide histogram fits (61), ten raw ones do not (610); ten floats do.
    assert!(engine.instant_query(&s, "wide", 60_000).is_ok());
    assert_eq!(engine.instant_query(&s, "wide[10m]", 540_000).unwrap_err(), Error::TooManySamples { limit: 100 });
    assert!(engine.instant_query(&s, "flat[10m]", 540_000).is_ok());
    // Over a range: two steps of one wide histogram hold 122.
    assert_eq!(engine.range_query(&s, "wide", 0, 60_000, 60_000).unwrap_err(), Error::TooManySamples { limit: 100 });
    assert!(engine.range_query(&s, "wide", 0, 0, 60_000).is_ok());
}
