//! Cases re-expressed from Prometheus' `model/histogram/float_histogram_test.go`
//! (add, sub, detect reset, compact, string, reduce resolution).

use super::{CounterResetHint, FloatHistogram, Span};

/// The same histogram as data, with the same spans and hint (what Go's `require.Equal` checks).
fn same(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.counter_reset_hint == b.counter_reset_hint
        && a.equals(b)
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && a.custom_values == b.custom_values
}

#[test]
fn prometheus_add_cases() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, FloatHistogram, FloatHistogram, Option<FloatHistogram>, &str, bool, bool)> = vec![
        (
            "same bucket layout",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![4.0, 2.0, 9.0, 10.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "same bucket layout, defined differently",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 1, length: 2 },
                    Span { offset: 0, length: 1 },
                ],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: vec![Span { offset: 3, length: 7 }],
                negative_buckets: vec![1.0, 1.0, 0.0, 0.0, 0.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                negative_spans: vec![Span { offset: 3, length: 5 }, Span { offset: 0, length: 2 }],
                negative_buckets: vec![4.0, 2.0, 0.0, 0.0, 0.0, 9.0, 10.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "non-overlapping spans",
            FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                negative_spans: vec![Span { offset: -9, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.001,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -2, length: 4 }, Span { offset: 0, length: 6 }],
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                negative_spans: vec![
                    Span { offset: -9, length: 2 },
                    Span { offset: 3, length: 2 },
                    Span { offset: 5, length: 2 },
                    Span { offset: 3, length: 2 },
                ],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "non-overlapping spans inverted order",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                negative_spans: vec![Span { offset: -6, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 0, length: 5 },
                    Span { offset: 0, length: 3 },
                ],
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                negative_spans: vec![
                    Span { offset: -6, length: 2 },
                    Span { offset: 1, length: 2 },
                    Span { offset: 4, length: 2 },
                    Span { offset: 3, length: 2 },
                ],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "overlapping spans",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: -1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -2, length: 4 }, Span { offset: 0, length: 4 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "overlapping spans inverted order",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: -1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "schema change",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: vec![Span { offset: -4, length: 3 }, Span { offset: 5, length: 5 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: vec![Span { offset: 6, length: 3 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 19.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "larger zero bucket in first histogram",
            FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 2 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 1, length: 2 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "larger zero bucket in second histogram",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 2 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 1, length: 5 }],
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "larger zero threshold in first histogram ends up inside a populated bucket of second histogram",
            FloatHistogram {
                zero_threshold: 0.2,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 2 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -1, length: 1 }, Span { offset: 1, length: 5 }],
                positive_buckets: vec![0.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "larger zero threshold in second histogram ends up inside a populated bucket of first histogram",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.2,
                zero_count: 17.0,
                count: 21.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 2 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 29.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 1, length: 5 }],
                positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "schema change combined with larger zero bucket in second histogram",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 12.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: vec![Span { offset: -3, length: 2 }, Span { offset: 5, length: 5 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: vec![Span { offset: 6, length: 3 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 22.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -1, length: 7 }],
                positive_buckets: vec![6.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "schema change combined with larger zero bucket in first histogram",
            FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 8.0,
                count: 21.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                negative_spans: vec![Span { offset: 4, length: 2 }, Span { offset: 1, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 2.345,
                schema: 1,
                positive_spans: vec![Span { offset: -4, length: 3 }, Span { offset: 5, length: 5 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: vec![Span { offset: 6, length: 3 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.25,
                zero_count: 20.0,
                count: 51.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: -1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "same custom bucket layout",
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 11.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 26.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "same custom bucket layout, defined differently",
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 11.0,
                sum: 1.234,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 1, length: 2 },
                    Span { offset: 0, length: 1 },
                ],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 26.0,
                sum: 3.579,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "non-overlapping spans with custom buckets",
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 20.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 2, length: 2 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 35.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 0, length: 6 }],
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "non-overlapping spans inverted order with custom buckets",
            FloatHistogram {
                schema: -53,
                count: 20.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 2, length: 2 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 35.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 0, length: 6 }],
                positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "overlapping spans with custom buckets",
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 27.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 42.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 0, length: 4 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "overlapping spans inverted order with custom buckets",
            FloatHistogram {
                schema: -53,
                count: 27.0,
                sum: 1.234,
                positive_spans: vec![Span { offset: 1, length: 4 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 42.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 0, length: 4 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "custom buckets with partial intersection",
            FloatHistogram {
                schema: -53,
                count: 10.0,
                sum: 100.0,
                positive_spans: vec![Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 3.0, 5.0],
                custom_values: vec![1.0, 2.5],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 8.0,
                sum: 80.0,
                positive_spans: vec![Span { offset: 0, length: 4 }],
                positive_buckets: vec![1.0, 2.0, 3.0, 2.0],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 18.0,
                sum: 180.0,
                positive_spans: vec![Span { offset: 0, length: 2 }],
                positive_buckets: vec![3.0, 15.0],
                custom_values: vec![1.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            true,
        ),
        (
            "different custom bucket layout - intersection and rollup",
            FloatHistogram {
                schema: -53,
                count: 6.0,
                sum: 2.345,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 1 }],
                positive_buckets: vec![1.0, 5.0],
                custom_values: vec![2.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 220.0,
                sum: 1.234,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 226.0,
                sum: 3.579,
                positive_spans: vec![Span { offset: 0, length: 3 }],
                positive_buckets: vec![(1 + 10 + 20) as f64, 40.0, (5 + 50 + 100) as f64],
                custom_values: vec![2.0, 4.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            true,
        ),
        (
            "custom buckets with no common boundaries except +Inf",
            FloatHistogram {
                schema: -53,
                count: 3.0,
                sum: 50.0,
                positive_spans: vec![Span { offset: 0, length: 2 }],
                positive_buckets: vec![1.0, 2.0],
                custom_values: vec![1.5],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 30.0,
                sum: 40.0,
                positive_spans: vec![Span { offset: 0, length: 2 }],
                positive_buckets: vec![10.0, 20.0],
                custom_values: vec![2.5],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 33.0,
                sum: 90.0,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![(1 + 2 + 10 + 20) as f64],
                ..FloatHistogram::default()
            }),
            "",
            false,
            true,
        ),
        (
            "mix exponential and custom buckets histograms",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 11.0,
                sum: 12.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            None,
            "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
            false,
            false,
        ),
        (
            "warn on counter reset hint collision",
            FloatHistogram {
                schema: -53,
                counter_reset_hint: CounterResetHint::CounterReset,
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                counter_reset_hint: CounterResetHint::NotCounterReset,
                ..FloatHistogram::default()
            },
            None,
            "",
            true,
            false,
        ),
    ];
    for (name, a, b, expected, err, collision, reconciled) in cases {
        a.validate().unwrap_or_else(|e| panic!("{name}: a: {e}"));
        b.validate().unwrap_or_else(|e| panic!("{name}: b: {e}"));
        let mut res = a.clone();
        let r = res.add(&b);
        if !err.is_empty() {
            assert_eq!(r.unwrap_err().to_string(), err, "{name}");
            continue;
        }
        let outcome = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.counter_reset_collision, collision, "{name}");
        assert_eq!(outcome.nhcb_bounds_reconciled, reconciled, "{name}");
        if let Some(mut expected) = expected {
            res.compact(0);
            expected.compact(0);
            assert!(same(&res, &expected), "{name}:\n got {res:?}\nwant {expected:?}");
        }
    }
}

#[test]
fn prometheus_sub_cases() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, FloatHistogram, FloatHistogram, Option<FloatHistogram>, &str, bool, bool)> = vec![
        (
            "same bucket layout",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 11.0,
                count: 30.0,
                sum: 23.0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 21.0,
                sum: 12.0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 3.0,
                count: 9.0,
                sum: 11.0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![2.0, 0.0, 1.0, 2.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "schema change",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 2.0,
                count: 19.0,
                sum: 0.345,
                schema: 1,
                positive_spans: vec![Span { offset: -4, length: 3 }, Span { offset: 5, length: 5 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0],
                negative_spans: vec![Span { offset: 6, length: 3 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 6.0,
                count: 40.0,
                sum: 0.889,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 2.0, 2.0, 0.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![1.0, 9.0, 1.0, 4.0, 9.0, 1.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "same custom bucket layout",
            FloatHistogram {
                schema: -53,
                count: 15.0,
                sum: 23.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 11.0,
                sum: 12.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 4.0,
                sum: 11.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            }),
            "",
            false,
            false,
        ),
        (
            "different custom bucket layout - with intersection and rollup",
            FloatHistogram {
                schema: -53,
                count: 220.0,
                sum: 9.9,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 0, length: 2 },
                ],
                positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
                counter_reset_hint: CounterResetHint::Gauge,
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 6.0,
                sum: 4.4,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 1, length: 1 }],
                positive_buckets: vec![1.0, 5.0],
                custom_values: vec![2.0, 4.0],
                counter_reset_hint: CounterResetHint::Gauge,
                ..FloatHistogram::default()
            },
            Some(FloatHistogram {
                schema: -53,
                count: 214.0,
                sum: 5.5,
                positive_spans: vec![Span { offset: 0, length: 3 }],
                positive_buckets: vec![(10 + 20 - 1) as f64, 40.0, (50 + 100 - 5) as f64],
                custom_values: vec![2.0, 4.0],
                counter_reset_hint: CounterResetHint::Gauge,
                ..FloatHistogram::default()
            }),
            "",
            false,
            true,
        ),
        (
            "mix exponential and custom buckets histograms",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 8.0,
                count: 59.0,
                sum: 1.234,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 5 }, Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
                negative_spans: vec![Span { offset: 3, length: 3 }, Span { offset: 1, length: 3 }],
                negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 11.0,
                sum: 12.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            None,
            "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
            false,
            false,
        ),
        (
            "warn on counter reset hint collision",
            FloatHistogram {
                schema: -53,
                counter_reset_hint: CounterResetHint::CounterReset,
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                counter_reset_hint: CounterResetHint::NotCounterReset,
                ..FloatHistogram::default()
            },
            None,
            "",
            true,
            false,
        ),
    ];
    for (name, a, b, expected, err, collision, reconciled) in cases {
        a.validate().unwrap_or_else(|e| panic!("{name}: a: {e}"));
        b.validate().unwrap_or_else(|e| panic!("{name}: b: {e}"));
        let mut res = a.clone();
        let r = res.sub(&b);
        if !err.is_empty() {
            assert_eq!(r.unwrap_err().to_string(), err, "{name}");
            continue;
        }
        let outcome = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.counter_reset_collision, collision, "{name}");
        assert_eq!(outcome.nhcb_bounds_reconciled, reconciled, "{name}");
        if let Some(mut expected) = expected {
            res.compact(0);
            expected.compact(0);
            assert!(same(&res, &expected), "{name}:\n got {res:?}\nwant {expected:?}");
        }
    }
}

#[test]
fn prometheus_detect_reset_cases() {
    let cases: Vec<(&str, FloatHistogram, FloatHistogram, bool)> = vec![
        (
            "zero values",
            FloatHistogram { ..FloatHistogram::default() },
            FloatHistogram { ..FloatHistogram::default() },
            false,
        ),
        (
            "no buckets to some buckets",
            FloatHistogram { ..FloatHistogram::default() },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "some buckets to no buckets",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram { ..FloatHistogram::default() },
            true,
        ),
        (
            "one bucket appears, nothing else changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one bucket disappears, nothing else changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "an unpopulated bucket disappears, nothing else changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "an unpopulated bucket at the end disappears, nothing else changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.0],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 1, length: 2 }],
                positive_buckets: vec![1.0, 3.3, 4.2],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "an unpopulated bucket disappears in a histogram with nothing else",
            FloatHistogram {
                positive_spans: vec![Span { offset: 23, length: 1 }],
                positive_buckets: vec![0.0],
                ..FloatHistogram::default()
            },
            FloatHistogram { ..FloatHistogram::default() },
            false,
        ),
        (
            "zero count goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.6,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "zero count goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.4,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "count goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.4,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "count goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.2,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "sum goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349210.0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "sum goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349200.0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one positive bucket goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one positive bucket goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "one negative bucket goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.1, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one negative bucket goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 2.9, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "zero threshold decreases",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.009,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "zero threshold increases without touching any existing buckets",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.011,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "zero threshold increases enough to cover existing buckets",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 1.0,
                zero_count: 7.73,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 1, length: 3 }],
                positive_buckets: vec![3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "zero threshold increases into the middle of an existing buckets",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.3,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "schema increases without any other changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: vec![Span { offset: -5, length: 4 }, Span { offset: 2, length: 6 }],
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: vec![Span { offset: 5, length: 4 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "schema decreases without any other changes",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: vec![Span { offset: -5, length: 4 }, Span { offset: 2, length: 6 }],
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: vec![Span { offset: 5, length: 4 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "schema decreases and a bucket goes up",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: vec![Span { offset: -5, length: 4 }, Span { offset: 2, length: 6 }],
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: vec![Span { offset: 5, length: 4 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 4.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "schema decreases and a bucket goes down",
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 1,
                positive_spans: vec![Span { offset: -5, length: 4 }, Span { offset: 2, length: 6 }],
                positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
                negative_spans: vec![Span { offset: 5, length: 4 }, Span { offset: 6, length: 4 }],
                negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.01,
                zero_count: 5.5,
                count: 3493.3,
                sum: 2349209.324,
                schema: 0,
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 2.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "no buckets to some buckets with custom bounds",
            FloatHistogram { schema: -53, custom_values: vec![1.0, 2.0, 3.0], ..FloatHistogram::default() },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "some buckets to no buckets with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            FloatHistogram { schema: -53, custom_values: vec![1.0, 2.0, 3.0], ..FloatHistogram::default() },
            true,
        ),
        (
            "one bucket appears, nothing else changes with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one bucket disappears, nothing else changes with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "an unpopulated bucket disappears, nothing else changes with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one positive bucket goes up with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "one positive bucket goes down with custom bounds",
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 3493.3,
                sum: 2349209.324,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "mismatched custom bounds - no reset when all buckets increase",
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 4 }],
                positive_buckets: vec![20.0, 35.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 5 }],
                positive_buckets: vec![25.0, 15.0, 40.0, 50.0, 70.0],
                custom_values: vec![0.0, 0.5, 1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "mismatched custom bounds - reset in middle bucket",
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 4 }],
                positive_buckets: vec![10.0, 15.0, 20.0, 25.0],
                custom_values: vec![0.0, 1.0, 3.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 5 }],
                positive_buckets: vec![10.0, 16.0, 10.0, 5.0, 25.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 5.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "mismatched custom bounds - reset in last bucket",
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 3 }],
                positive_buckets: vec![10.0, 20.0, 20.0],
                custom_values: vec![0.0, 1.0, 2.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 4 }],
                positive_buckets: vec![100.0, 200.0, 8.0, 7.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "mismatched custom bounds - no common bounds",
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 3 }],
                positive_buckets: vec![10.0, 20.0, 30.0],
                custom_values: vec![4.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 100.0,
                sum: 500.0,
                positive_spans: vec![Span { offset: 1, length: 3 }],
                positive_buckets: vec![15.0, 25.0, 35.0],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "mismatched custom bounds - sparse common bounds",
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 4 }],
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0],
                custom_values: vec![0.0, 1.0, 3.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 5 }],
                positive_buckets: vec![15.0, 25.0, 70.0, 50.0, 100.0],
                custom_values: vec![0.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "reset detected with mismatched custom bounds and split bucket spans",
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 1, length: 3 }],
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 200.0,
                sum: 1000.0,
                positive_spans: vec![Span { offset: 0, length: 3 }, Span { offset: 1, length: 2 }],
                positive_buckets: vec![15.0, 25.0, 35.0, 25.0, 60.0],
                custom_values: vec![0.0, 1.0, 3.0, 4.0, 5.0, 7.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "no reset with mismatched custom bounds and split bucket spans",
            FloatHistogram {
                schema: -53,
                count: 300.0,
                sum: 1500.0,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
                custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                schema: -53,
                count: 300.0,
                sum: 1500.0,
                positive_spans: vec![Span { offset: 0, length: 3 }, Span { offset: 1, length: 2 }],
                positive_buckets: vec![12.0, 25.0, 45.0, 75.0, 95.0],
                custom_values: vec![0.0, 0.5, 1.0, 3.0, 5.0, 7.0],
                ..FloatHistogram::default()
            },
            false,
        ),
        (
            "reset when a populated bucket following an empty one disappears",
            FloatHistogram {
                zero_threshold: 0.001,
                count: 10.0,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![5.0],
                negative_spans: vec![Span { offset: 1, length: 2 }],
                negative_buckets: vec![0.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.001,
                count: 20.0,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![20.0],
                ..FloatHistogram::default()
            },
            true,
        ),
        (
            "reset when current ends before a later populated previous bucket",
            FloatHistogram {
                zero_threshold: 0.001,
                count: 7.0,
                positive_spans: vec![Span { offset: 0, length: 3 }],
                positive_buckets: vec![2.0, 0.0, 5.0],
                ..FloatHistogram::default()
            },
            FloatHistogram {
                zero_threshold: 0.001,
                count: 100.0,
                positive_spans: vec![Span { offset: 0, length: 1 }],
                positive_buckets: vec![100.0],
                ..FloatHistogram::default()
            },
            true,
        ),
    ];
    for (name, previous, current, want) in cases {
        assert_eq!(current.detect_reset(&previous), want, "{name}");
    }
}

#[test]
fn prometheus_compact_cases() {
    let cases: Vec<(&str, FloatHistogram, usize, FloatHistogram)> = vec![
        (
            "empty histogram",
            FloatHistogram { ..FloatHistogram::default() },
            0,
            FloatHistogram { ..FloatHistogram::default() },
        ),
        (
            "nothing should happen",
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "eliminate zero offsets",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 1 },
                    Span { offset: 0, length: 3 },
                    Span { offset: 0, length: 1 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 0, length: 2 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 0, length: 1 },
                ],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 5 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 2, length: 2 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "eliminate zero length",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 3, length: 3 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 0, length: 0 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 1, length: 4 },
                ],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 4 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "eliminate multiple zero length spans",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 3, length: 3 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 9, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets at start or end",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 4 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 4 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets at start and end",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 4 }, Span { offset: 5, length: 6 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                negative_spans: vec![Span { offset: -2, length: 4 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![0.0, 0.0, 3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 4 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets in the middle",
            FloatHistogram {
                positive_spans: vec![Span { offset: 5, length: 4 }],
                positive_buckets: vec![1.0, 3.0, 0.0, 2.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: 5, length: 2 }, Span { offset: 1, length: 1 }],
                positive_buckets: vec![1.0, 3.0, 2.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets at start or end of spans, even in the middle",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 6 }, Span { offset: 3, length: 6 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 2, length: 6 }],
                negative_buckets: vec![3.1, 3.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 2 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 4 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets at start and end - also merge spans due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 4 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
                ..FloatHistogram::default()
            },
            10,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 10 }],
                positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 9 }],
                negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets from the middle of a span",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 6 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 1 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 3, length: 3 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 3, length: 2 },
                    Span { offset: 1, length: 2 },
                ],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut out a span containing only empty buckets",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -4, length: 3 },
                    Span { offset: 2, length: 2 },
                    Span { offset: 3, length: 4 },
                ],
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 7, length: 4 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets from the middle of a span, avoiding none due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 4 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3],
                ..FloatHistogram::default()
            },
            1,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 1 }],
                positive_buckets: vec![1.0, 3.3],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets and merge spans due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 4 }, Span { offset: 3, length: 1 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2],
                ..FloatHistogram::default()
            },
            1,
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 1 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 3, length: 1 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets from the middle of a span, avoiding some due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -4, length: 6 },
                    Span { offset: 3, length: 3 },
                    Span { offset: 10, length: 2 },
                ],
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            1,
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 1 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 3, length: 3 },
                    Span { offset: 10, length: 2 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "avoiding all cutting of empty buckets from the middle of a chunk due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 6 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            2,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 4 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "everything merged into one span due to maxEmptyBuckets",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 6 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 3, length: 5 }],
                negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            3,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 10 }],
                positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
                negative_spans: vec![Span { offset: 0, length: 10 }],
                negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "more than one span merged in the same pass",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -2, length: 2 },
                    Span { offset: 2, length: 2 },
                    Span { offset: 2, length: 2 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0],
                negative_spans: vec![
                    Span { offset: 0, length: 1 },
                    Span { offset: 1, length: 1 },
                    Span { offset: 1, length: 1 },
                ],
                negative_buckets: vec![3.1, 1000.0, 4.0],
                ..FloatHistogram::default()
            },
            3,
            FloatHistogram {
                positive_spans: vec![Span { offset: -2, length: 10 }],
                positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 0.0, 0.0, 3.3, 2.0],
                negative_spans: vec![Span { offset: 0, length: 5 }],
                negative_buckets: vec![3.1, 0.0, 1000.0, 0.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "only empty buckets and maxEmptyBuckets greater zero",
            FloatHistogram {
                positive_spans: vec![Span { offset: -4, length: 6 }, Span { offset: 3, length: 3 }],
                positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                negative_spans: vec![Span { offset: 0, length: 7 }],
                negative_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                ..FloatHistogram::default()
            },
            3,
            FloatHistogram {
                positive_spans: vec![],
                positive_buckets: vec![],
                negative_spans: vec![],
                negative_buckets: vec![],
                ..FloatHistogram::default()
            },
        ),
        (
            "multiple spans of only empty buckets",
            FloatHistogram {
                positive_spans: vec![
                    Span { offset: -10, length: 2 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 3, length: 3 },
                ],
                positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 2.0, 3.0],
                negative_spans: vec![
                    Span { offset: -10, length: 2 },
                    Span { offset: 2, length: 1 },
                    Span { offset: 3, length: 3 },
                ],
                negative_buckets: vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                positive_spans: vec![Span { offset: -1, length: 2 }],
                positive_buckets: vec![2.0, 3.0],
                negative_spans: vec![Span { offset: -10, length: 2 }],
                negative_buckets: vec![2.0, 3.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "nothing should happen with custom buckets",
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
                custom_values: vec![1.0, 2.0, 3.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "eliminate zero offsets with custom buckets",
            FloatHistogram {
                schema: -53,
                positive_spans: vec![
                    Span { offset: 0, length: 1 },
                    Span { offset: 0, length: 3 },
                    Span { offset: 0, length: 1 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 0, length: 5 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "eliminate multiple zero length spans with custom buckets",
            FloatHistogram {
                schema: -53,
                positive_spans: vec![
                    Span { offset: 0, length: 2 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 2, length: 0 },
                    Span { offset: 3, length: 3 },
                ],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 0, length: 2 }, Span { offset: 9, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0],
                ..FloatHistogram::default()
            },
        ),
        (
            "cut empty buckets at start and end with custom buckets",
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 0, length: 4 }, Span { offset: 5, length: 6 }],
                positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
            0,
            FloatHistogram {
                schema: -53,
                positive_spans: vec![Span { offset: 2, length: 2 }, Span { offset: 5, length: 3 }],
                positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
                custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ..FloatHistogram::default()
            },
        ),
    ];
    for (name, mut h, max_empty, expected) in cases {
        h.compact(max_empty);
        assert!(same(&h, &expected), "{name}:\n got {h:?}\nwant {expected:?}");
        assert_eq!(h.positive_buckets.len(), expected.positive_buckets.len(), "{name}");
        assert_eq!(h.negative_buckets.len(), expected.negative_buckets.len(), "{name}");
    }
}

#[test]
fn prometheus_string_cases() {
    assert_eq!(FloatHistogram { schema: 1, zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![Span { offset: -2, length: 1 }, Span { offset: 2, length: 3 }], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![Span { offset: 3, length: 2 }, Span { offset: 3, length: 2 }], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..FloatHistogram::default() }.to_string(), "{count:3493.3, sum:2.349209324e+06, [-22.62741699796952,-16):1000, [-16,-11.31370849898476):123400, [-4,-2.82842712474619):3, [-2.82842712474619,-2):3.1, [-0.01,0.01]:5.5, (0.35355339059327373,0.5]:1, (1,1.414213562373095]:3.3, (1.414213562373095,2]:4.2, (2,2.82842712474619]:0.1}", "exponential histogram");
    assert_eq!(
        FloatHistogram {
            schema: -53,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: vec![Span { offset: 0, length: 1 }, Span { offset: 2, length: 4 }],
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 5.0],
            custom_values: vec![1.0, 2.0, 5.0, 10.0, 15.0, 20.0],
            ..FloatHistogram::default()
        }
        .to_string(),
        "{count:3493.3, sum:2.349209324e+06, [-Inf,1]:1, (5,10]:3.3, (10,15]:4.2, (15,20]:0.1, (20,+Inf]:5}",
        "custom buckets histogram"
    );
}

#[test]
fn prometheus_reduce_resolution_cases() {
    {
        let mut h = FloatHistogram {
            schema: 0,
            positive_spans: vec![
                Span { offset: -2, length: 4 },
                Span { offset: 0, length: 0 },
                Span { offset: 3, length: 2 },
            ],
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            negative_spans: vec![
                Span { offset: 0, length: 4 },
                Span { offset: 0, length: 0 },
                Span { offset: 3, length: 2 },
            ],
            negative_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            ..FloatHistogram::default()
        };
        let r = h.reduce_resolution(-1);
        r.unwrap();
        assert!(
            same(
                &h,
                &FloatHistogram {
                    schema: -1,
                    positive_spans: vec![Span { offset: -1, length: 3 }, Span { offset: 1, length: 1 }],
                    positive_buckets: vec![1.0, 4.0, 2.0, 2.0],
                    negative_spans: vec![Span { offset: 0, length: 3 }, Span { offset: 1, length: 1 }],
                    negative_buckets: vec![1.0, 4.0, 2.0, 2.0],
                    ..FloatHistogram::default()
                }
            ),
            "valid float histogram"
        );
    }
    {
        let mut h = FloatHistogram {
            schema: 0,
            positive_spans: vec![
                Span { offset: -2, length: 4 },
                Span { offset: 0, length: 0 },
                Span { offset: 3, length: 2 },
            ],
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0],
            ..FloatHistogram::default()
        };
        let r = h.reduce_resolution(-1);
        assert_eq!(
            r.unwrap_err().to_string(),
            "have 5 buckets but spans need more: histogram spans specify different number of buckets than provided",
            "not enough buckets"
        );
    }
    {
        let mut h = FloatHistogram {
            schema: 0,
            positive_spans: vec![
                Span { offset: -2, length: 4 },
                Span { offset: 0, length: 0 },
                Span { offset: 3, length: 2 },
            ],
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0, 5.0],
            ..FloatHistogram::default()
        };
        let r = h.reduce_resolution(-1);
        assert_eq!(
            r.unwrap_err().to_string(),
            "spans need 6 buckets, have 7 buckets: histogram spans specify different number of buckets than provided",
            "too many buckets"
        );
    }
    {
        let mut h = FloatHistogram {
            schema: 0,
            positive_spans: vec![
                Span { offset: -2, length: 4 },
                Span { offset: -1, length: 0 },
                Span { offset: 3, length: 2 },
            ],
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            ..FloatHistogram::default()
        };
        let r = h.reduce_resolution(-1);
        assert_eq!(
            r.unwrap_err().to_string(),
            "span number 2 with offset -1: histogram has a span whose offset is negative",
            "negative offset"
        );
    }
}
