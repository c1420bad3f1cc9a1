//! What upstream's test storage (a TSDB head) gives back for the samples a
//! script loads, so that our `MemStorage` can hold exactly that.
//!
//! Floats come back as written. Histograms are appended as float histograms
//! and come back with the counter-reset hint their place in a chunk gives
//! them (`counterResetHint` in `tsdb/chunkenc`), not the one written:
//!
//! - in a gauge chunk (started by a sample whose hint is `gauge`): `gauge`;
//! - the first sample of any other chunk: `unknown` (even when the chunk
//!   was cut for a counter reset, upstream issue 15346);
//! - every later sample of the chunk: `not_reset`.
//!
//! A new chunk starts at the series' first histogram, after a float, when
//! the sample switches between gauge and counter, at a 2 h chunk-range
//! boundary, and for a counter sample that cannot continue the chunk: an
//! explicit `reset` hint, a non-stale sample after a stale one, a smaller
//! count or zero count, a changed schema, zero threshold or custom
//! boundaries, or a bucket that shrank or vanished while populated. (Head
//! chunks are also cut by size, about 1 KiB; that is not modelled, so a very
//! long histogram series may read `not_reset` where upstream reads
//! `unknown` at such a cut, which changes nothing but the hint.)
//!
//! A `stale` float right after a histogram sample becomes a histogram
//! staleness marker (a float histogram whose sum is the stale NaN), as the
//! head's appender turns it into one; it reads back with hint `unknown`.

use std::collections::BTreeMap;

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram};
use tidemark_storage::is_stale_nan;

use crate::histo::{entries, is_custom};

/// One loaded sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// A float (staleness markers included).
    Float(f64),
    /// A native histogram with float counts.
    Histogram(FloatHistogram),
}

/// The head's chunk range in upstream's test storage (the default block
/// duration).
const CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// The head chunk the previous histogram sample went into.
struct Chunk {
    gauge: bool,
    /// The chunk range ends here: a sample at or after it starts a new chunk.
    next_at: i64,
    last: FloatHistogram,
}

/// Whether counter histogram `cur` cannot be appended to a chunk whose last
/// sample is `prev` (upstream's `FloatHistogramAppender.appendable`).
fn counter_breaks(prev: &FloatHistogram, cur: &FloatHistogram) -> bool {
    if cur.counter_reset_hint == CounterResetHint::CounterReset {
        return true;
    }
    if is_stale_nan(cur.sum) {
        return false;
    }
    if is_stale_nan(prev.sum)
        || cur.count < prev.count
        || cur.schema != prev.schema
        || cur.zero_threshold != prev.zero_threshold
        || (is_custom(cur) && cur.custom_values != prev.custom_values)
        || cur.zero_count < prev.zero_count
    {
        return true;
    }
    let shrank = |ps, pb, cs, cb| {
        let c = entries(cs, cb);
        entries(ps, pb).into_iter().any(|(i, was)| match c.binary_search_by_key(&i, |e| e.0) {
            Ok(k) => c[k].1 < was,
            Err(_) => was != 0.0,
        })
    };
    shrank(&prev.positive_spans, &prev.positive_buckets, &cur.positive_spans, &cur.positive_buckets)
        || shrank(&prev.negative_spans, &prev.negative_buckets, &cur.negative_spans, &cur.negative_buckets)
}

/// Whether gauge histogram `cur` cannot be appended to a gauge chunk whose
/// last sample is `prev` (upstream's `appendableGauge`).
fn gauge_breaks(prev: &FloatHistogram, cur: &FloatHistogram) -> bool {
    if is_stale_nan(cur.sum) {
        return false;
    }
    is_stale_nan(prev.sum)
        || cur.schema != prev.schema
        || cur.zero_threshold != prev.zero_threshold
        || (is_custom(cur) && cur.custom_values != prev.custom_values)
}

/// One series' samples, in time order, as the head reads them back.
pub fn read_back(samples: &BTreeMap<i64, Loaded>) -> Vec<(i64, Loaded)> {
    let mut out = Vec::with_capacity(samples.len());
    let mut chunk: Option<Chunk> = None;
    let mut after_histogram = false;
    for (&t, v) in samples {
        let h = match v {
            Loaded::Float(f) if is_stale_nan(*f) && after_histogram => {
                FloatHistogram { sum: *f, ..FloatHistogram::default() }
            }
            Loaded::Float(f) => {
                out.push((t, Loaded::Float(*f)));
                chunk = None;
                after_histogram = false;
                continue;
            }
            Loaded::Histogram(h) => h.clone(),
        };
        after_histogram = true;
        let gauge = h.counter_reset_hint == CounterResetHint::Gauge;
        let new_chunk = match &chunk {
            None => true,
            Some(c) if t >= c.next_at || c.gauge != gauge => true,
            Some(c) if gauge => gauge_breaks(&c.last, &h),
            Some(c) => counter_breaks(&c.last, &h),
        };
        match (&mut chunk, new_chunk) {
            (Some(c), false) => c.last = h.clone(),
            _ => {
                let start = t.div_euclid(CHUNK_RANGE_MS) * CHUNK_RANGE_MS;
                chunk = Some(Chunk { gauge, next_at: start.saturating_add(CHUNK_RANGE_MS), last: h.clone() })
            }
        }
        let read = if is_stale_nan(h.sum) {
            FloatHistogram { sum: h.sum, ..FloatHistogram::default() }
        } else {
            let hint = if gauge {
                CounterResetHint::Gauge
            } else if new_chunk {
                CounterResetHint::Unknown
            } else {
                CounterResetHint::NotCounterReset
            };
            FloatHistogram { counter_reset_hint: hint, ..h }
        };
        out.push((t, Loaded::Histogram(read)));
    }
    out
}
