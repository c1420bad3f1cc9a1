//! Bucket-layout algorithms shared by integer and float histograms:
//! compaction, resolution reduction, adding bucket sets, span comparison
//! (Prometheus' `generic.go` and the helpers of `float_histogram.go`).

use super::schema::{exponential_bound, is_exponential_schema, target_idx};
use super::validate::HistogramError;
use super::Span;

/// A bucket value as stored: an absolute `f64` count or an `i64` delta.
pub(crate) trait BucketValue: Copy + PartialEq + Default {
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
    fn negated(self) -> Self;
    fn is_zero(self) -> bool;
}

impl BucketValue for i64 {
    fn plus(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    fn minus(self, o: i64) -> i64 {
        self.wrapping_sub(o)
    }
    fn negated(self) -> i64 {
        self.wrapping_neg()
    }
    fn is_zero(self) -> bool {
        self == 0
    }
}

impl BucketValue for f64 {
    fn plus(self, o: f64) -> f64 {
        self + o
    }
    fn minus(self, o: f64) -> f64 {
        self - o
    }
    fn negated(self) -> f64 {
        -self
    }
    fn is_zero(self) -> bool {
        self == 0.0
    }
}

/// One step of Kahan–Babuška (Neumaier) summation, as Prometheus'
/// `kahansum.Inc`: adds `inc` to `sum` with compensation `c`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Whether `v <= max` for an offset `v` (negative offsets always are).
fn at_most(v: i32, max: usize) -> bool {
    v < 0 || (v as u64) <= max as u64
}

/// Whether the spans describe exactly `n` buckets, with no negative offset
/// after the first span (the precondition of the layout algorithms).
pub(crate) fn layout_ok(spans: &[Span], n: usize) -> bool {
    let mut total = 0u64;
    for (i, s) in spans.iter().enumerate() {
        if i > 0 && s.offset < 0 {
            return false;
        }
        total += u64::from(s.length);
    }
    total == n as u64 && total <= u64::from(u32::MAX)
}

/// Removes empty buckets at the start and end of spans, merges spans at
/// most `max_empty` buckets apart and splits spans at runs of more than
/// `max_empty` empty buckets (Prometheus' `compactBuckets`). `delta` says
/// whether `buckets` are deltas (integer histograms). `comp` are Kahan
/// compensation values kept in step with `buckets`; a bucket counts as
/// empty only if its compensation is zero too. An inconsistent layout is
/// left as it is.
pub(crate) fn compact_buckets<T: BucketValue>(
    buckets: &mut Vec<T>,
    mut comp: Option<&mut Vec<f64>>,
    spans: &mut Vec<Span>,
    max_empty: usize,
    delta: bool,
) {
    if !layout_ok(spans, buckets.len()) || comp.as_ref().is_some_and(|c| c.len() != buckets.len()) {
        return;
    }
    // Fast path: no empty bucket, no small gap, no empty span.
    let mut nothing_to_do = true;
    let mut abs = T::default();
    for &b in buckets.iter() {
        abs = if delta { abs.plus(b) } else { b };
        if abs.is_zero() {
            nothing_to_do = false;
            break;
        }
    }
    if nothing_to_do && spans.iter().all(|s| !at_most(s.offset, max_empty) && s.length != 0) {
        return;
    }

    // Merge spans with zero offset into their predecessor.
    if spans.len() > 1 {
        let mut i_span = 0;
        for i in 1..spans.len() {
            let span = spans[i];
            if span.offset == 0 {
                spans[i_span].length += span.length;
                continue;
            }
            i_span += 1;
            if i != i_span {
                spans[i_span] = span;
            }
        }
        spans.truncate(i_span + 1);
    }
    // Drop spans of length zero, moving their offset to the next span.
    let mut i_span = 0;
    for i in 0..spans.len() {
        let span = spans[i];
        if span.length == 0 {
            if i + 1 < spans.len() {
                spans[i + 1].offset = spans[i + 1].offset.wrapping_add(span.offset);
            }
            continue;
        }
        if i != i_span {
            spans[i_span] = span;
        }
        i_span += 1;
    }
    spans.truncate(i_span);
    if spans.is_empty() {
        buckets.clear();
        if let Some(c) = comp {
            c.clear();
        }
        return;
    }

    // Cut empty buckets at span starts and ends, and runs of more than
    // max_empty inside spans.
    let (mut i_bucket, mut i_span, mut pos_in_span) = (0usize, 0usize, 0u32);
    abs = T::default();
    while i_bucket < buckets.len() && i_span < spans.len() {
        abs = if delta { abs.plus(buckets[i_bucket]) } else { buckets[i_bucket] };
        let n_empty = {
            let mut i = 0usize;
            let mut a = abs;
            let mut c = comp.as_ref().map_or(0.0, |c| c[i_bucket]);
            while (i as u64 + u64::from(pos_in_span)) < u64::from(spans[i_span].length) && a.is_zero() && c == 0.0 {
                i += 1;
                if i + i_bucket >= buckets.len() {
                    break;
                }
                a = buckets[i + i_bucket];
                if let Some(cb) = comp.as_ref() {
                    c = cb[i + i_bucket];
                }
            }
            i
        };
        if n_empty > 0 {
            let remaining = (spans[i_span].length - pos_in_span) as usize;
            if pos_in_span > 0 && n_empty < remaining && n_empty <= max_empty {
                // A short run inside a span: keep it.
                i_bucket += n_empty;
                if delta {
                    abs = T::default();
                }
                pos_in_span += n_empty as u32;
                continue;
            }
            if delta && i_bucket + n_empty < buckets.len() {
                abs = buckets[i_bucket].negated();
                buckets[i_bucket + n_empty] = buckets[i_bucket + n_empty].plus(buckets[i_bucket]);
            }
            buckets.drain(i_bucket..i_bucket + n_empty);
            if let Some(c) = comp.as_mut() {
                c.drain(i_bucket..i_bucket + n_empty);
            }
            if pos_in_span == 0 {
                if n_empty == spans[i_span].length as usize {
                    // The whole span is empty.
                    let offset = spans[i_span].offset;
                    spans.remove(i_span);
                    if spans.len() > i_span {
                        spans[i_span].offset = spans[i_span].offset.wrapping_add(offset).wrapping_add(n_empty as i32);
                    }
                    continue;
                }
                spans[i_span].length -= n_empty as u32;
                spans[i_span].offset = spans[i_span].offset.wrapping_add(n_empty as i32);
                continue;
            }
            // In the middle or at the end of the span: split it.
            let new_span = Span { offset: n_empty as i32, length: spans[i_span].length - pos_in_span - n_empty as u32 };
            spans[i_span].length = pos_in_span;
            i_span += 1;
            pos_in_span = 0;
            if new_span.length == 0 {
                if i_span < spans.len() {
                    spans[i_span].offset = spans[i_span].offset.wrapping_add(n_empty as i32);
                }
                continue;
            }
            spans.insert(i_span, new_span);
            continue;
        }
        i_bucket += 1;
        pos_in_span += 1;
        if pos_in_span >= spans[i_span].length {
            pos_in_span = 0;
            i_span += 1;
        }
    }
    if max_empty == 0 || buckets.is_empty() {
        return;
    }

    // Merge spans whose gap is at most max_empty, filling in empty buckets.
    let mut i_bucket = spans[0].length as usize;
    if delta {
        abs = buckets[..i_bucket].iter().fold(T::default(), |a, &b| a.plus(b));
    }
    let mut i_span = 1;
    while i_span < spans.len() {
        if !at_most(spans[i_span].offset, max_empty) {
            let l = spans[i_span].length as usize;
            if delta {
                abs = buckets[i_bucket..i_bucket + l].iter().fold(abs, |a, &b| a.plus(b));
            }
            i_bucket += l;
            i_span += 1;
            continue;
        }
        let offset = spans[i_span].offset as usize;
        let l = spans[i_span].length as usize;
        spans[i_span - 1].length += offset as u32 + spans[i_span].length;
        spans.remove(i_span);
        buckets.splice(i_bucket..i_bucket, std::iter::repeat_n(T::default(), offset));
        if delta {
            buckets[i_bucket] = abs.negated();
            buckets[i_bucket + offset] = buckets[i_bucket + offset].plus(abs);
        }
        if let Some(c) = comp.as_mut() {
            c.splice(i_bucket..i_bucket, std::iter::repeat_n(0.0, offset));
        }
        i_bucket += offset;
        if delta {
            abs = buckets[i_bucket..i_bucket + l].iter().fold(T::default(), |a, &b| a.plus(b));
        }
        i_bucket += l;
    }
}

/// Merges the buckets of `origin_schema` into the lower `target_schema`
/// (Prometheus' `reduceResolution`). `delta` says whether the buckets are
/// deltas. Fails if a span after the first has a negative offset or the
/// spans and buckets disagree.
pub(crate) fn reduce_resolution<T: BucketValue>(
    origin_spans: &[Span],
    origin_buckets: &[T],
    origin_schema: i32,
    target_schema: i32,
    delta: bool,
) -> Result<(Vec<Span>, Vec<T>), HistogramError> {
    let mut target_spans: Vec<Span> = Vec::new();
    let mut target_buckets: Vec<T> = Vec::with_capacity(origin_buckets.len());
    let mut bucket_idx = 0i32;
    let mut bucket_count_idx = 0usize;
    let mut last_bucket_count = T::default();
    let mut last_target_bucket_idx = 0i32;
    let mut last_target_bucket_count = T::default();
    let shift = origin_schema - target_schema;
    if !(0..=31).contains(&shift) {
        return Ok((origin_spans.to_vec(), origin_buckets.to_vec()));
    }
    for (n, span) in origin_spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset { span: n + 1, offset: span.offset });
        }
        bucket_idx = bucket_idx.wrapping_add(span.offset);
        for _ in 0..span.length {
            let Some(&b) = origin_buckets.get(bucket_count_idx) else {
                return Err(HistogramError::TooFewBuckets { have: origin_buckets.len() });
            };
            let t = target_idx(bucket_idx, origin_schema, target_schema);
            if target_spans.is_empty() {
                target_spans.push(Span { offset: t, length: 1 });
                target_buckets.push(b);
                last_target_bucket_idx = t;
                last_bucket_count = b;
                last_target_bucket_count = b;
            } else if last_target_bucket_idx == t {
                let last = target_buckets.len() - 1;
                if delta {
                    last_bucket_count = last_bucket_count.plus(b);
                    target_buckets[last] = target_buckets[last].plus(last_bucket_count);
                    last_target_bucket_count = last_target_bucket_count.plus(last_bucket_count);
                } else {
                    target_buckets[last] = target_buckets[last].plus(b);
                }
            } else {
                if last_target_bucket_idx.wrapping_add(1) == t {
                    if let Some(s) = target_spans.last_mut() {
                        s.length += 1;
                    }
                } else {
                    target_spans
                        .push(Span { offset: t.wrapping_sub(last_target_bucket_idx).wrapping_sub(1), length: 1 });
                }
                last_target_bucket_idx = t;
                if delta {
                    last_bucket_count = last_bucket_count.plus(b);
                    target_buckets.push(last_bucket_count.minus(last_target_bucket_count));
                    last_target_bucket_count = last_bucket_count;
                } else {
                    target_buckets.push(b);
                }
            }
            bucket_idx = bucket_idx.wrapping_add(1);
            bucket_count_idx += 1;
        }
    }
    if bucket_count_idx != origin_buckets.len() {
        return Err(HistogramError::SpansBucketsMismatch { spans_need: bucket_count_idx, have: origin_buckets.len() });
    }
    Ok((target_spans, target_buckets))
}

/// [`reduce_resolution`] for float buckets with Kahan compensation values
/// (Prometheus' `kahanReduceResolution`); the layout must be valid.
pub(crate) fn kahan_reduce_resolution(
    origin_spans: &[Span],
    origin_buckets: &[f64],
    origin_comp: &[f64],
    origin_schema: i32,
    target_schema: i32,
) -> (Vec<Span>, Vec<f64>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(origin_buckets.len());
    let mut comp = Vec::with_capacity(origin_buckets.len());
    let mut bucket_idx = 0i32;
    let mut i = 0usize;
    let mut last_target = 0i32;
    for span in origin_spans {
        bucket_idx = bucket_idx.wrapping_add(span.offset);
        for _ in 0..span.length {
            let (Some(&b), c) = (origin_buckets.get(i), origin_comp.get(i).copied().unwrap_or(0.0)) else {
                return (spans, buckets, comp);
            };
            let t = target_idx(bucket_idx, origin_schema, target_schema);
            if spans.is_empty() {
                spans.push(Span { offset: t, length: 1 });
                buckets.push(b);
                comp.push(c);
                last_target = t;
            } else if last_target == t {
                let l = buckets.len() - 1;
                (buckets[l], comp[l]) = kahan_inc(b, buckets[l], comp[l]);
                (buckets[l], comp[l]) = kahan_inc(c, buckets[l], comp[l]);
            } else {
                if last_target.wrapping_add(1) == t {
                    if let Some(s) = spans.last_mut() {
                        s.length += 1;
                    }
                } else {
                    spans.push(Span { offset: t.wrapping_sub(last_target).wrapping_sub(1), length: 1 });
                }
                last_target = t;
                buckets.push(b);
                comp.push(c);
            }
            bucket_idx = bucket_idx.wrapping_add(1);
            i += 1;
        }
    }
    (spans, buckets, comp)
}

/// Adds (or with `negative` subtracts) the buckets `spans_b`/`buckets_b`
/// into `spans_a`/`buckets_a`, inserting missing buckets (Prometheus'
/// `addBuckets` and `kahanAddBuckets`). Buckets of B whose upper bound is at
/// most `threshold` (exponential schemas) are skipped: they are in the zero
/// bucket. With `comp_a`, sums are Kahan sums with compensation `comp_a`,
/// and `comp_b` (if any) is B's compensation, added as well. Layouts must be
/// valid.
#[allow(clippy::too_many_arguments)]
pub(crate) fn add_buckets(
    schema: i32,
    threshold: f64,
    negative: bool,
    spans_a: &mut Vec<Span>,
    buckets_a: &mut Vec<f64>,
    mut comp_a: Option<&mut Vec<f64>>,
    spans_b: &[Span],
    buckets_b: &[f64],
    comp_b: Option<&[f64]>,
) {
    let mut i_span: isize = -1;
    let mut i_bucket: isize = -1;
    let mut i_in_span: i32 = 0;
    let mut index_a: i32 = 0;
    let mut index_b: i32 = 0;
    let mut b_idx = 0usize;
    let mut lower_than_threshold = true;
    let exponential = is_exponential_schema(schema);

    // Adds `v` (and its compensation `vc`) into A's bucket `i`.
    let add_into =
        |buckets_a: &mut Vec<f64>, comp_a: &mut Option<&mut Vec<f64>>, i: usize, v: f64, vc: f64| match comp_a {
            Some(c) => {
                (buckets_a[i], c[i]) = kahan_inc(v, buckets_a[i], c[i]);
                if vc != 0.0 {
                    (buckets_a[i], c[i]) = kahan_inc(vc, buckets_a[i], c[i]);
                }
            }
            None => buckets_a[i] += v,
        };
    let insert_at = |buckets_a: &mut Vec<f64>, comp_a: &mut Option<&mut Vec<f64>>, i: usize, v: f64, vc: f64| {
        buckets_a.insert(i, v);
        if let Some(c) = comp_a {
            c.insert(i, vc);
        }
    };

    for span_b in spans_b {
        index_b = index_b.wrapping_add(span_b.offset);
        for _ in 0..span_b.length {
            'next: {
                if lower_than_threshold && exponential && exponential_bound(index_b, schema) <= threshold {
                    break 'next;
                }
                lower_than_threshold = false;
                let Some(&raw) = buckets_b.get(b_idx) else { return };
                let raw_c = comp_b.and_then(|c| c.get(b_idx).copied()).unwrap_or(0.0);
                let (bucket_b, comp_bucket_b) = if negative { (-raw, -raw_c) } else { (raw, raw_c) };

                if i_span == -1 {
                    if spans_a.is_empty() || spans_a[0].offset > index_b {
                        // Before all of A's buckets.
                        insert_at(buckets_a, &mut comp_a, 0, bucket_b, comp_bucket_b);
                        if !spans_a.is_empty() && spans_a[0].offset == index_b.wrapping_add(1) {
                            spans_a[0].length += 1;
                            spans_a[0].offset -= 1;
                            break 'next;
                        }
                        spans_a.insert(0, Span { offset: index_b, length: 1 });
                        if spans_a.len() > 1 {
                            spans_a[1].offset = spans_a[1].offset.wrapping_sub(index_b.wrapping_add(1));
                        }
                        break 'next;
                    } else if spans_a[0].offset == index_b {
                        add_into(buckets_a, &mut comp_a, 0, bucket_b, comp_bucket_b);
                        break 'next;
                    }
                    i_span = 0;
                    i_bucket = 0;
                    i_in_span = 0;
                    index_a = spans_a[0].offset;
                }
                let mut delta_index = index_b.wrapping_sub(index_a);
                loop {
                    let remaining = spans_a[i_span as usize].length as i32 - i_in_span;
                    if delta_index < remaining {
                        // In the current span.
                        i_bucket += delta_index as isize;
                        i_in_span += delta_index;
                        add_into(buckets_a, &mut comp_a, i_bucket as usize, bucket_b, comp_bucket_b);
                        break;
                    }
                    delta_index -= remaining;
                    i_bucket += remaining as isize;
                    i_span += 1;
                    let n = spans_a.len() as isize;
                    if i_span == n || delta_index < spans_a[i_span as usize].offset {
                        // In the gap before the next span (or after the last).
                        insert_at(buckets_a, &mut comp_a, i_bucket as usize, bucket_b, comp_bucket_b);
                        if delta_index == 0 {
                            // Right after the previous span: extend it.
                            if i_span < n {
                                spans_a[i_span as usize].offset -= 1;
                            }
                            i_span -= 1;
                            i_in_span = spans_a[i_span as usize].length as i32;
                            spans_a[i_span as usize].length += 1;
                        } else if i_span < n && delta_index == spans_a[i_span as usize].offset - 1 {
                            // Right before the next span: extend it.
                            i_in_span = 0;
                            spans_a[i_span as usize].offset -= 1;
                            spans_a[i_span as usize].length += 1;
                        } else {
                            // A new span in between.
                            i_in_span = 0;
                            if i_span < n {
                                spans_a[i_span as usize].offset -= delta_index + 1;
                            }
                            spans_a.insert(i_span as usize, Span { offset: delta_index, length: 1 });
                        }
                        break 'next;
                    }
                    // Try the start of the next span.
                    delta_index -= spans_a[i_span as usize].offset;
                    i_in_span = 0;
                }
            }
            index_a = index_b;
            index_b = index_b.wrapping_add(1);
            b_idx += 1;
        }
    }
}

/// Whether two span lists describe the same buckets, ignoring empty spans
/// and how runs are split (Prometheus' `spansMatch`).
pub(crate) fn spans_match(s1: &[Span], s2: &[Span]) -> bool {
    if s1.is_empty() && s2.is_empty() {
        return true;
    }
    let all_empty = |s: &[Span]| s.iter().all(|x| x.length == 0);
    let (mut i1, mut i2) = (0usize, 0usize);
    loop {
        if i1 >= s1.len() {
            return all_empty(&s2[i2..]);
        }
        if i2 >= s2.len() {
            return all_empty(&s1[i1..]);
        }
        let (mut c1, mut c2) = (s1[i1], s2[i2]);
        i1 += 1;
        i2 += 1;
        for (s, i, c) in [(s1, &mut i1, &mut c1), (s2, &mut i2, &mut c2)] {
            if c.length == 0 {
                while *i < s.len() && s[*i].length == 0 {
                    c.offset = c.offset.wrapping_add(s[*i].offset);
                    *i += 1;
                }
                if *i < s.len() {
                    c.offset = c.offset.wrapping_add(s[*i].offset);
                    c.length = s[*i].length;
                    *i += 1;
                }
            }
        }
        if c1.length == 0 && c2.length == 0 {
            return true;
        }
        if c1.offset != c2.offset || c1.length != c2.length {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(v: &[(i32, u32)]) -> Vec<Span> {
        v.iter().map(|&(offset, length)| Span { offset, length }).collect()
    }

    #[test]
    fn spans_match_ignores_empty_spans() {
        assert!(spans_match(&sp(&[(0, 2), (0, 0), (3, 1)]), &sp(&[(0, 2), (3, 1)])));
        assert!(spans_match(&sp(&[(1, 0), (2, 1)]), &sp(&[(3, 1)])));
        assert!(!spans_match(&sp(&[(0, 2)]), &sp(&[(0, 3)])));
        assert!(spans_match(&sp(&[(0, 0)]), &[]));
        assert!(!spans_match(&sp(&[(0, 1), (0, 1)]), &sp(&[(0, 2)])));
    }

    #[test]
    fn kahan_inc_compensates() {
        let (mut s, mut c) = (0.0, 0.0);
        for v in [1.0, 1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(v, s, c);
        }
        assert_eq!(s + c, 2.0);
    }
}
