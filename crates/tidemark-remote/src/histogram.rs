//! Native histograms between the remote-write message
//! ([`proto::Histogram`], the same in 1.0 and 2.0) and storage's model
//! ([`HistogramSample`]).
//!
//! A message is an integer histogram when its count is the integer
//! variant (or absent), a float histogram when it is the float variant,
//! as Prometheus decides (`IsFloatHistogram`). Bucket fields of the other
//! kind must be empty: a sample's kind is what the sender said, never
//! guessed from the numbers, and a message that says both is rejected.
//!
//! ```
//! use tidemark_remote::histogram::{from_proto, to_proto};
//! use tidemark_storage::histogram::{Histogram, HistogramSample, HistogramValue, Span};
//!
//! let s = HistogramSample {
//!     t: 1_000,
//!     h: HistogramValue::Integer(Histogram {
//!         count: 3,
//!         sum: 2.5,
//!         positive_spans: vec![Span { offset: 0, length: 2 }],
//!         positive_buckets: vec![2, -1],
//!         ..Histogram::default()
//!     }),
//! };
//! assert_eq!(from_proto(&to_proto(&s)).unwrap(), s);
//! ```

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramSample, HistogramValue, Span};

use crate::proto::{self, histogram::Count, histogram::ZeroCount, BucketSpan, ResetHint};

/// Why a histogram message cannot be read as one histogram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramProtoError {
    /// An integer histogram (integer count) with float bucket counts or a
    /// float zero count, or a float histogram with integer bucket deltas or
    /// an integer zero count.
    #[error("histogram mixes integer and float fields: {0}")]
    MixedKinds(&'static str),
    /// The reset hint is not one of the four defined values.
    #[error("unknown histogram reset hint {0}")]
    UnknownResetHint(i32),
}

fn spans(s: &[BucketSpan]) -> Vec<Span> {
    s.iter().map(|s| Span { offset: s.offset, length: s.length }).collect()
}

fn proto_spans(s: &[Span]) -> Vec<BucketSpan> {
    s.iter().map(|s| BucketSpan { offset: s.offset, length: s.length }).collect()
}

fn hint(code: i32) -> Result<CounterResetHint, HistogramProtoError> {
    u8::try_from(code).ok().and_then(CounterResetHint::from_code).ok_or(HistogramProtoError::UnknownResetHint(code))
}

fn proto_hint(h: CounterResetHint) -> i32 {
    match h {
        CounterResetHint::Unknown => ResetHint::Unknown as i32,
        CounterResetHint::CounterReset => ResetHint::Yes as i32,
        CounterResetHint::NotCounterReset => ResetHint::No as i32,
        CounterResetHint::Gauge => ResetHint::Gauge as i32,
    }
}

/// Reads a message as a timestamped histogram. Only the message's shape
/// is checked here; whether the histogram is consistent (spans against
/// buckets, counts, schema) is storage's validation.
pub fn from_proto(p: &proto::Histogram) -> Result<HistogramSample, HistogramProtoError> {
    let counter_reset_hint = hint(p.reset_hint)?;
    let h = match p.count {
        Some(Count::CountFloat(count)) => {
            if !p.positive_deltas.is_empty() || !p.negative_deltas.is_empty() {
                return Err(HistogramProtoError::MixedKinds("float count with integer bucket deltas"));
            }
            let zero_count = match p.zero_count {
                Some(ZeroCount::ZeroCountFloat(z)) => z,
                None => 0.0,
                Some(ZeroCount::ZeroCountInt(_)) => {
                    return Err(HistogramProtoError::MixedKinds("float count with an integer zero count"))
                }
            };
            HistogramValue::Float(FloatHistogram {
                counter_reset_hint,
                schema: p.schema,
                zero_threshold: p.zero_threshold,
                zero_count,
                count,
                sum: p.sum,
                positive_spans: spans(&p.positive_spans),
                negative_spans: spans(&p.negative_spans),
                positive_buckets: p.positive_counts.clone(),
                negative_buckets: p.negative_counts.clone(),
                custom_values: p.custom_values.clone(),
            })
        }
        Some(Count::CountInt(_)) | None => {
            if !p.positive_counts.is_empty() || !p.negative_counts.is_empty() {
                return Err(HistogramProtoError::MixedKinds("integer count with float bucket counts"));
            }
            let zero_count = match p.zero_count {
                Some(ZeroCount::ZeroCountInt(z)) => z,
                None => 0,
                Some(ZeroCount::ZeroCountFloat(_)) => {
                    return Err(HistogramProtoError::MixedKinds("integer count with a float zero count"))
                }
            };
            let count = match p.count {
                Some(Count::CountInt(c)) => c,
                _ => 0,
            };
            HistogramValue::Integer(Histogram {
                counter_reset_hint,
                schema: p.schema,
                zero_threshold: p.zero_threshold,
                zero_count,
                count,
                sum: p.sum,
                positive_spans: spans(&p.positive_spans),
                negative_spans: spans(&p.negative_spans),
                positive_buckets: p.positive_deltas.clone(),
                negative_buckets: p.negative_deltas.clone(),
                custom_values: p.custom_values.clone(),
            })
        }
    };
    Ok(HistogramSample { t: p.timestamp, h })
}

/// The message for a timestamped histogram (what a sender puts on the
/// wire; integer histograms stay integer).
pub fn to_proto(s: &HistogramSample) -> proto::Histogram {
    value_to_proto(s.t, &s.h)
}

/// [`to_proto`] for a histogram and its timestamp held apart.
pub fn value_to_proto(t: i64, h: &HistogramValue) -> proto::Histogram {
    match h {
        HistogramValue::Integer(h) => proto::Histogram {
            count: Some(Count::CountInt(h.count)),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: Some(ZeroCount::ZeroCountInt(h.zero_count)),
            negative_spans: proto_spans(&h.negative_spans),
            negative_deltas: h.negative_buckets.clone(),
            negative_counts: Vec::new(),
            positive_spans: proto_spans(&h.positive_spans),
            positive_deltas: h.positive_buckets.clone(),
            positive_counts: Vec::new(),
            reset_hint: proto_hint(h.counter_reset_hint),
            timestamp: t,
            custom_values: h.custom_values.clone(),
        },
        HistogramValue::Float(h) => proto::Histogram {
            count: Some(Count::CountFloat(h.count)),
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: Some(ZeroCount::ZeroCountFloat(h.zero_count)),
            negative_spans: proto_spans(&h.negative_spans),
            negative_deltas: Vec::new(),
            negative_counts: h.negative_buckets.clone(),
            positive_spans: proto_spans(&h.positive_spans),
            positive_deltas: Vec::new(),
            positive_counts: h.positive_buckets.clone(),
            reset_hint: proto_hint(h.counter_reset_hint),
            timestamp: t,
            custom_values: h.custom_values.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn arb_spans() -> impl Strategy<Value = Vec<Span>> {
        prop::collection::vec((-5i32..5, 0u32..4), 0..4)
            .prop_map(|v| v.into_iter().map(|(offset, length)| Span { offset, length }).collect())
    }

    fn arb_hint() -> impl Strategy<Value = CounterResetHint> {
        (0u8..4).prop_map(|c| CounterResetHint::from_code(c).unwrap())
    }

    fn arb_sample() -> impl Strategy<Value = HistogramSample> {
        let int = (
            arb_hint(),
            -4i32..9,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            arb_spans(),
            prop::collection::vec(any::<i64>(), 0..6),
        )
            .prop_map(
                |(counter_reset_hint, schema, zero_count, count, sum_bits, positive_spans, positive_buckets)| {
                    HistogramValue::Integer(Histogram {
                        counter_reset_hint,
                        schema,
                        zero_threshold: 0.001,
                        zero_count,
                        count,
                        sum: f64::from_bits(sum_bits),
                        negative_spans: positive_spans.clone(),
                        negative_buckets: positive_buckets.iter().map(|b| b.wrapping_neg()).collect(),
                        positive_spans,
                        positive_buckets,
                        custom_values: Vec::new(),
                    })
                },
            );
        let float = (arb_hint(), any::<f64>(), any::<f64>(), arb_spans(), prop::collection::vec(any::<f64>(), 0..6))
            .prop_map(|(counter_reset_hint, count, sum, positive_spans, positive_buckets)| {
                HistogramValue::Float(FloatHistogram {
                    counter_reset_hint,
                    schema: -53,
                    count,
                    sum,
                    positive_spans,
                    positive_buckets,
                    custom_values: vec![0.5, 1.0, 2.5],
                    ..FloatHistogram::default()
                })
            });
        (any::<i64>(), prop_oneof![int, float]).prop_map(|(t, h)| HistogramSample { t, h })
    }

    fn same(a: &HistogramSample, b: &HistogramSample) -> bool {
        // Compare through the wire form: NaN sums compare by bits there.
        to_proto(a).encode_to_vec() == to_proto(b).encode_to_vec()
    }

    proptest! {
        #[test]
        fn round_trips_through_the_wire(s in arb_sample()) {
            let bytes = to_proto(&s).encode_to_vec();
            let back = from_proto(&proto::Histogram::decode(bytes.as_slice()).unwrap()).unwrap();
            prop_assert!(same(&back, &s), "{back:?} != {s:?}");
        }
    }

    #[test]
    fn an_absent_count_is_an_empty_integer_histogram() {
        let p = proto::Histogram { schema: 3, timestamp: 5, ..Default::default() };
        let s = from_proto(&p).unwrap();
        assert_eq!(s.t, 5);
        assert_eq!(s.h, HistogramValue::Integer(Histogram { schema: 3, ..Histogram::default() }));
    }

    #[test]
    fn mixed_kinds_and_unknown_hints_are_rejected() {
        let p = proto::Histogram { count: Some(Count::CountInt(3)), positive_counts: vec![1.0], ..Default::default() };
        assert!(matches!(from_proto(&p), Err(HistogramProtoError::MixedKinds(_))));
        let p =
            proto::Histogram { count: Some(Count::CountFloat(3.0)), positive_deltas: vec![1], ..Default::default() };
        assert!(matches!(from_proto(&p), Err(HistogramProtoError::MixedKinds(_))));
        let p = proto::Histogram {
            count: Some(Count::CountFloat(3.0)),
            zero_count: Some(ZeroCount::ZeroCountInt(1)),
            ..Default::default()
        };
        assert!(matches!(from_proto(&p), Err(HistogramProtoError::MixedKinds(_))));
        let p = proto::Histogram { reset_hint: 7, ..Default::default() };
        assert_eq!(from_proto(&p), Err(HistogramProtoError::UnknownResetHint(7)));
    }

    #[test]
    fn the_staleness_marker_keeps_its_bits() {
        let s = HistogramSample {
            t: 1,
            h: HistogramValue::Float(FloatHistogram {
                sum: tidemark_storage::stale_nan(),
                ..FloatHistogram::default()
            }),
        };
        let back = from_proto(&to_proto(&s)).unwrap();
        assert!(back.h.is_stale());
    }
}
