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
