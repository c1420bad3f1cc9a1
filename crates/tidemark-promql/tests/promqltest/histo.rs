//! Native histograms as the test language needs them: bucket arithmetic for
//! series expansions (`{{…}}+{{…}}x3`), upstream's `Compact`, the
//! comparison of expected and actual histograms (`compareNativeHistogram`)
//! and the `{{…}}` text of a histogram (`TestExpression`), all written for
//! the harness so that it does not depend on the engine's own histogram
//! code (which it checks).

use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Span, CUSTOM_BUCKETS_SCHEMA};

use crate::compare::{almost_equal, EPSILON};

/// Whether `h` uses custom bucket boundaries (NHCB).
pub fn is_custom(h: &FloatHistogram) -> bool {
    h.schema == CUSTOM_BUCKETS_SCHEMA
}

/// The buckets of one sign as `(index, count)`, ascending by index, every
/// bucket the spans cover (empty ones too). A layout whose spans promise
/// more buckets than there are stops at the last bucket.
pub fn entries(spans: &[Span], buckets: &[f64]) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(buckets.len());
    let mut idx: i32 = 0;
    let mut b = buckets.iter();
    for (n, s) in spans.iter().enumerate() {
        idx = if n == 0 { s.offset } else { idx.saturating_add(s.offset) };
        for _ in 0..s.length {
            let Some(c) = b.next() else { return out };
            out.push((idx, *c));
            idx = idx.saturating_add(1);
        }
    }
    out
}

/// Spans and buckets for `(index, count)` entries sorted by index, one span
/// per run of consecutive indices; gaps of at most `fill` missing buckets
/// are filled with empty buckets.
fn layout(entries: &[(i32, f64)], fill: i64) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::with_capacity(entries.len());
    let mut next: Option<i32> = None; // index after the last bucket written
    for &(i, c) in entries {
        match next {
            None => spans.push(Span { offset: i, length: 1 }),
            Some(n) => {
                let gap = i64::from(i) - i64::from(n);
                if gap <= fill {
                    let last = spans.len() - 1;
                    buckets.extend(std::iter::repeat_n(0.0, gap as usize));
                    spans[last].length += gap as u32 + 1;
                } else {
                    spans.push(Span { offset: gap as i32, length: 1 });
                }
            }
        }
        buckets.push(c);
        next = Some(i.saturating_add(1));
    }
    (spans, buckets)
}

/// Spans and buckets for entries, keeping every entry and nothing else.
pub fn from_entries(entries: &[(i32, f64)]) -> (Vec<Span>, Vec<f64>) {
    layout(entries, 0)
}

/// Upstream's `Compact(max_empty)`: empty buckets are dropped, then runs of
/// at most `max_empty` missing buckets between populated ones are filled
/// with empty buckets so that their spans merge.
pub fn compact(h: &FloatHistogram, max_empty: usize) -> FloatHistogram {
    let fill = i64::try_from(max_empty).unwrap_or(i64::MAX);
    let side = |spans: &[Span], buckets: &[f64]| {
        let kept: Vec<(i32, f64)> = entries(spans, buckets).into_iter().filter(|(_, c)| *c != 0.0).collect();
        layout(&kept, fill)
    };
    let (positive_spans, positive_buckets) = side(&h.positive_spans, &h.positive_buckets);
    let (negative_spans, negative_buckets) = side(&h.negative_spans, &h.negative_buckets);
    FloatHistogram { positive_spans, positive_buckets, negative_spans, negative_buckets, ..h.clone() }
}

/// The upper bound of exponential bucket `idx` (its absolute value for a
/// negative bucket): `2^(idx · 2^-schema)`.
fn exponential_bound(idx: i32, schema: i32) -> f64 {
    if schema <= 0 {
        let exp = i64::from(idx) << (-schema).min(62);
        if exp >= 1024 {
            return if exp == 1024 { f64::MAX } else { f64::INFINITY };
        }
        return 2f64.powi(exp as i32);
    }
    let frac = f64::from(idx) / f64::from(1u32 << schema.min(30));
    2f64.powf(frac)
}

/// The bucket index that bucket `idx` of `from` falls into at the coarser
/// schema `to` (upstream's `targetIdx`).
fn target_index(idx: i32, from: i32, to: i32) -> i32 {
    ((idx - 1) >> (from - to).clamp(0, 31)) + 1
}

/// Entries merged into the coarser schema `to`.
fn reduce(e: &[(i32, f64)], from: i32, to: i32) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(e.len());
    for &(i, c) in e {
        let t = target_index(i, from, to);
        match out.last_mut() {
            Some((li, lc)) if *li == t => *lc += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// The zero count `h` would have with a zero bucket at least
/// `threshold` wide, and the threshold that takes (widened to the upper
/// bound of a populated bucket it would cut); upstream's
/// `zeroCountForLargerThreshold`.
fn zero_count_for_threshold(h: &FloatHistogram, mut threshold: f64) -> (f64, f64) {
    if threshold == h.zero_threshold {
        return (h.zero_count, threshold);
    }
    'outer: loop {
        let mut zc = h.zero_count;
        for (i, c) in entries(&h.positive_spans, &h.positive_buckets) {
            let (lower, upper) = (exponential_bound(i - 1, h.schema), exponential_bound(i, h.schema));
            if lower >= threshold {
                break;
            }
            zc += c;
            if upper > threshold {
                if c != 0.0 {
                    threshold = upper;
                }
                break;
            }
        }
        for (i, c) in entries(&h.negative_spans, &h.negative_buckets) {
            let (lower_abs, upper_abs) = (exponential_bound(i - 1, h.schema), exponential_bound(i, h.schema));
            if lower_abs >= threshold {
                break;
            }
            zc += c;
            if upper_abs > threshold {
                if c != 0.0 {
                    threshold = upper_abs;
                    continue 'outer;
                }
                break;
            }
        }
        return (zc, threshold);
    }
}

/// Drops the buckets of `h` that now lie inside its zero bucket.
fn trim_into_zero_bucket(h: &mut FloatHistogram) {
    let t = h.zero_threshold;
    let schema = h.schema;
    let keep = |e: Vec<(i32, f64)>| -> Vec<(i32, f64)> {
        e.into_iter().filter(|(i, _)| exponential_bound(*i - 1, schema) >= t).collect()
    };
    let (ps, pb) = from_entries(&keep(entries(&h.positive_spans, &h.positive_buckets)));
    let (ns, nb) = from_entries(&keep(entries(&h.negative_spans, &h.negative_buckets)));
    h.positive_spans = ps;
    h.positive_buckets = pb;
    h.negative_spans = ns;
    h.negative_buckets = nb;
}

/// Upstream's `adjustCounterReset` for `a ± b`: the hint of the result.
fn combined_hint(a: CounterResetHint, b: CounterResetHint) -> CounterResetHint {
    use CounterResetHint::*;
    match (a, b) {
        _ if a == b => a,
        (Gauge, _) | (_, Gauge) => Gauge,
        _ => Unknown,
    }
}

/// Adds `b` to `a` per bucket (`b` first restricted to buckets above
/// `threshold`); missing buckets are inserted, existing layouts kept.
fn add_entries(a: &[(i32, f64)], b: &[(i32, f64)], threshold: Option<(f64, i32)>, sign: f64) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(a.len() + b.len());
    let mut skipping = true;
    let mut bi = b.iter().filter(move |(i, _)| {
        if let Some((t, schema)) = threshold {
            if skipping && exponential_bound(*i, schema) <= t {
                return false;
            }
        }
        skipping = false;
        true
    });
    let mut ai = a.iter();
    let (mut x, mut y) = (ai.next(), bi.next());
    loop {
        match (x, y) {
            (None, None) => break,
            (Some(&(i, c)), None) => {
                out.push((i, c));
                x = ai.next();
            }
            (None, Some(&(j, d))) => {
                out.push((j, sign * d));
                y = bi.next();
            }
            (Some(&(i, c)), Some(&(j, d))) => {
                if i == j {
                    out.push((i, c + sign * d));
                    x = ai.next();
                    y = bi.next();
                } else if i < j {
                    out.push((i, c));
                    x = ai.next();
                } else {
                    out.push((j, sign * d));
                    y = bi.next();
                }
            }
        }
    }
    out
}

/// Maps custom buckets onto the coarser boundaries `to` (a subset of the
/// buckets' own boundaries), summing the buckets that merge.
fn map_custom(e: &[(i32, f64)], from: &[f64], to: &[f64]) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(e.len());
    for &(i, c) in e {
        let upper = usize::try_from(i).ok().and_then(|i| from.get(i)).copied().unwrap_or(f64::INFINITY);
        let t = to.partition_point(|b| *b < upper) as i32;
        match out.last_mut() {
            Some((li, lc)) if *li == t => *lc += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// `a + b` (`a - b` when `subtract`), as upstream's `FloatHistogram.Add`
/// and `Sub`: the coarser schema and the wider zero bucket win, custom
/// boundaries that differ are reduced to the ones both have, and the
/// counter-reset hints combine as in `adjustCounterReset`.
pub fn add(a: &FloatHistogram, b: &FloatHistogram, subtract: bool) -> Result<FloatHistogram, String> {
    if is_custom(a) != is_custom(b) {
        return Err("cannot combine a histogram with custom buckets and an exponential histogram".into());
    }
    let sign = if subtract { -1.0 } else { 1.0 };
    let mut h = a.clone();
    h.counter_reset_hint = combined_hint(a.counter_reset_hint, b.counter_reset_hint);
    h.count += sign * b.count;
    h.sum += sign * b.sum;
    if is_custom(&h) {
        let ae = entries(&a.positive_spans, &a.positive_buckets);
        let be = entries(&b.positive_spans, &b.positive_buckets);
        let sum = if a.custom_values == b.custom_values {
            add_entries(&ae, &be, None, sign)
        } else {
            let common: Vec<f64> = a.custom_values.iter().copied().filter(|v| b.custom_values.contains(v)).collect();
            let ae = map_custom(&ae, &a.custom_values, &common);
            let be = map_custom(&be, &b.custom_values, &common);
            h.custom_values = common;
            add_entries(&ae, &be, None, sign)
        };
        let (s, bk) = from_entries(&sum);
        h.positive_spans = s;
        h.positive_buckets = bk;
        return Ok(h);
    }
    // The zero buckets: both become as wide as the wider one.
    let mut b_zero = b.zero_count;
    let mut b_threshold = b.zero_threshold;
    while b_threshold != h.zero_threshold {
        if h.zero_threshold > b_threshold {
            (b_zero, b_threshold) = zero_count_for_threshold(b, h.zero_threshold);
        }
        if b_threshold > h.zero_threshold {
            let (zc, t) = zero_count_for_threshold(&h, b_threshold);
            h.zero_count = zc;
            h.zero_threshold = t;
            trim_into_zero_bucket(&mut h);
        }
    }
    h.zero_count += sign * b_zero;
    let schema = h.schema.min(b.schema);
    let side = |hs: &[Span], hb: &[f64], bs: &[Span], bb: &[f64]| {
        let he = reduce(&entries(hs, hb), h.schema, schema);
        let be = reduce(&entries(bs, bb), b.schema, schema);
        from_entries(&add_entries(&he, &be, Some((h.zero_threshold, schema)), sign))
    };
    let (ps, pb) = side(&h.positive_spans, &h.positive_buckets, &b.positive_spans, &b.positive_buckets);
    let (ns, nb) = side(&h.negative_spans, &h.negative_buckets, &b.negative_spans, &b.negative_buckets);
    h.positive_spans = ps;
    h.positive_buckets = pb;
    h.negative_spans = ns;
    h.negative_buckets = nb;
    h.schema = schema;
    Ok(h)
}

/// Upstream's `compareNativeHistogram` on both histograms compacted
/// (`Compact(0)`): schema, count, sum, zero threshold and count, custom
/// boundaries (for custom buckets), and the populated buckets must agree,
/// floats within [`EPSILON`]; the counter-reset hint only when the
/// expected histogram spelled one out (`hint_set`).
pub fn histograms_match(exp: &FloatHistogram, cur: &FloatHistogram, hint_set: bool) -> bool {
    if exp.schema != cur.schema
        || !almost_equal(exp.count, cur.count, EPSILON)
        || !almost_equal(exp.sum, cur.sum, EPSILON)
    {
        return false;
    }
    if is_custom(exp) && exp.custom_values != cur.custom_values {
        return false;
    }
    if exp.zero_threshold != cur.zero_threshold || !almost_equal(exp.zero_count, cur.zero_count, EPSILON) {
        return false;
    }
    let side_matches = |es: &[Span], eb: &[f64], cs: &[Span], cb: &[f64]| {
        let populated = |s: &[Span], b: &[f64]| -> Vec<(i32, f64)> {
            entries(s, b).into_iter().filter(|(_, c)| *c != 0.0).collect()
        };
        let (e, c) = (populated(es, eb), populated(cs, cb));
        e.len() == c.len() && e.iter().zip(&c).all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1, EPSILON))
    };
    if !side_matches(&exp.negative_spans, &exp.negative_buckets, &cur.negative_spans, &cur.negative_buckets)
        || !side_matches(&exp.positive_spans, &exp.positive_buckets, &cur.positive_spans, &cur.positive_buckets)
    {
        return false;
    }
    !hint_set || exp.counter_reset_hint == cur.counter_reset_hint
}

/// Go's `%g` (and `%v`) for a float: the shortest representation, in
/// exponent form (`1e+06`, `1.5e-07`) when the decimal exponent is below -4
/// or at least 6, as `strconv.FormatFloat(v, 'g', -1, 64)` decides.
pub fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits.
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

/// The histogram as the test language writes it (upstream's
/// `TestExpression`): fields that are zero are left out, buckets are shown
/// as one span each side (`Compact` with unlimited empty buckets).
pub fn test_expression(h: &FloatHistogram) -> String {
    let m = compact(h, usize::MAX);
    let mut parts: Vec<String> = Vec::new();
    if m.schema != 0 {
        parts.push(format!("schema:{}", m.schema));
    }
    if m.count != 0.0 {
        parts.push(format!("count:{}", go_g(m.count)));
    }
    if m.sum != 0.0 {
        parts.push(format!("sum:{}", go_g(m.sum)));
    }
    if m.zero_count != 0.0 {
        parts.push(format!("z_bucket:{}", go_g(m.zero_count)));
    }
    if m.zero_threshold != 0.0 {
        parts.push(format!("z_bucket_w:{}", go_g(m.zero_threshold)));
    }
    if is_custom(&m) {
        let v: Vec<String> = m.custom_values.iter().map(|v| go_g(*v)).collect();
        parts.push(format!("custom_values:[{}]", v.join(" ")));
    }
    match m.counter_reset_hint {
        CounterResetHint::Unknown => {}
        CounterResetHint::CounterReset => parts.push("counter_reset_hint:reset".into()),
        CounterResetHint::NotCounterReset => parts.push("counter_reset_hint:not_reset".into()),
        CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
    }
    for (spans, buckets, offset_key, key) in [
        (&m.positive_spans, &m.positive_buckets, "offset", "buckets"),
        (&m.negative_spans, &m.negative_buckets, "n_offset", "n_buckets"),
    ] {
        if let Some(first) = spans.first() {
            if first.offset != 0 {
                parts.push(format!("{offset_key}:{}", first.offset));
            }
        }
        if !buckets.is_empty() {
            let b: Vec<String> = buckets.iter().map(|v| go_g(*v)).collect();
            parts.push(format!("{key}:[{}]", b.join(" ")));
        }
    }
    format!("{{{{{}}}}}", parts.join(" "))
}
