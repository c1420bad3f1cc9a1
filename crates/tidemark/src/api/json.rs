//! JSON encoding that produces the bytes Prometheus' Go encoder produces:
//! strings escaped like `encoding/json` (HTML-safe: `<`, `>` and `&` as
//! `\u003c`, `\u003e`, `\u0026`), sample values as quoted
//! `strconv.FormatFloat` strings, timestamps as seconds with millisecond
//! decimals.
//!
//! Responses are written into one growing buffer, never through an
//! intermediate tree, so a large result costs one pass and one allocation
//! pattern proportional to its size.

use std::fmt::Write as _;

use tidemark_storage::histogram::FloatHistogram;
use tidemark_storage::Labels;

/// Bytes at which [`string`] may have to escape something: control
/// characters, `"`, the backslash, the HTML-unsafe `<`, `>`, `&`, and 0xE2, the first
/// byte of U+2028 and U+2029 (and of other characters, which then pass).
const MAY_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xE2] = true;
    t
};

/// Appends `s` as a JSON string literal.
pub(crate) fn string(out: &mut String, s: &str) {
    // Label names and values almost never need escaping: one byte scan, one
    // copy. Anything else takes the character-by-character path.
    if !s.bytes().any(|b| MAY_ESCAPE[usize::from(b)]) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    string_escaped(out, s);
}

/// [`string`]'s general path: escapes like Go's `encoding/json`.
fn string_escaped(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' => Some("\\u003c"),
            '>' => Some("\\u003e"),
            '&' => Some("\\u0026"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a millisecond timestamp as Prometheus writes it: seconds, and a
/// three-digit fraction only when the milliseconds are not zero
/// (`1700000000`, `1700000000.120`, `-1.500`).
pub(crate) fn timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let a = t.unsigned_abs();
    // Without `fmt`: a large answer writes one timestamp per point.
    out.push_str(itoa::Buffer::new().format(a / 1000));
    let frac = a % 1000;
    if frac != 0 {
        // Three digits, zero-padded: `.005`, `.120`.
        let digits = [b'.', b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    }
}

/// Appends a millisecond timestamp as Go's encoding/json writes the float
/// `t / 1000`: the shortest decimal (`1700000000.12`).
pub(crate) fn float_seconds(out: &mut String, t: i64) {
    let _ = write!(out, "{}", t as f64 / 1000.0);
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: never an exponent; `NaN`,
/// `+Inf`, `-Inf`.
pub(crate) fn push_go_f(out: &mut String, v: f64) {
    if v.is_finite() {
        push_shortest_fixed(out, v);
    } else {
        push_go_float(out, v);
    }
}

/// Appends a finite `v` as the shortest decimal that reads back as `v`,
/// without an exponent: what Rust's `Display` for f64 and Go's
/// `FormatFloat(v, 'f', -1, 64)` write (`0.000001`, `1234.5`, `-0`,
/// `100000000000000000000`).
///
/// The digits come from `ryu` (the same shortest, closest digits, several
/// times faster than `fmt`), which writes some magnitudes with an exponent
/// or a trailing `.0`; they are laid out again here. A range answer writes
/// one value per point, so this is the hot path of a large JSON response.
pub(crate) fn push_shortest_fixed(out: &mut String, v: f64) {
    match exactness(v) {
        Exactness::SmallInteger => {
            if v == 0.0 && v.is_sign_negative() {
                out.push('-');
            }
            out.push_str(itoa::Buffer::new().format(v as i64));
            return;
        }
        // Two shortest decimals may be equally close to `v` (a tie):
        // `ryu` picks the even one where `fmt` rounds up, so leave those
        // (and anything else unusual) to `fmt`.
        Exactness::MayTie => {
            let _ = write!(out, "{v}");
            return;
        }
        Exactness::NoTie => {}
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits (at most 17) and where the decimal point goes
    // after `point` of them (negative: that many zeros come first).
    let mut digits = [0u8; 40];
    let mut n = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        if n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    let mut point = int_part.len() as i32 + exp;
    let lead = digits[..n].iter().take_while(|&&b| b == b'0').count();
    let digits_all = &digits[lead..n];
    point -= lead as i32;
    let keep = digits_all.len() - digits_all.iter().rev().take_while(|&&b| b == b'0').count();
    let digits = &digits_all[..keep];
    if negative {
        out.push('-');
    }
    if digits.is_empty() {
        out.push('0');
        return;
    }
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(ascii(digits));
    } else if point as usize >= digits.len() {
        out.push_str(ascii(digits));
        for _ in digits.len()..point as usize {
            out.push('0');
        }
    } else {
        let (a, b) = digits.split_at(point as usize);
        out.push_str(ascii(a));
        out.push('.');
        out.push_str(ascii(b));
    }
}

/// What [`push_shortest_fixed`] needs to know of a finite value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exactness {
    /// An integer below 2^53 in magnitude: written exactly, digit for digit.
    SmallInteger,
    /// The exact binary value has a decimal expansion of at most 18
    /// significant digits, so it may lie exactly halfway between two
    /// shortest candidates (of at most 17 digits); or a large integer.
    MayTie,
    /// Its exact decimal expansion is longer than 18 significant digits:
    /// the closest shortest decimal is unique.
    NoTie,
}

/// Classifies a finite `v` for [`push_shortest_fixed`]. A value `m·2^-k`
/// (`m` odd) equals `m·5^k / 10^k`: its exact expansion has as many
/// significant digits as the integer `m·5^k`, which has at least `0.69·k`.
fn exactness(v: f64) -> Exactness {
    let bits = v.to_bits();
    let field = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if field == 0 { (fraction, -1074) } else { (fraction | (1u64 << 52), field - 1075) };
    if m == 0 {
        return Exactness::SmallInteger;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    if e >= 0 {
        return if v.abs() < 9_007_199_254_740_992.0 { Exactness::SmallInteger } else { Exactness::MayTie };
    }
    let k = (-e) as u32;
    if k >= 27 {
        // m·5^k ≥ 5^27 > 10^18: 19 digits or more.
        return Exactness::NoTie;
    }
    let exact = u128::from(m) * 5u128.pow(k);
    if exact >= 1_000_000_000_000_000_000 {
        Exactness::NoTie
    } else {
        Exactness::MayTie
    }
}

/// ASCII digits as text.
fn ascii(d: &[u8]) -> &str {
    std::str::from_utf8(d).unwrap_or_default()
}

/// Appends a sample value as a quoted string, formatted as Prometheus'
/// `jsonutil.MarshalFloat`: `strconv.FormatFloat(v, 'f', -1, 64)`, switching
/// to the exponent form below 1e-6 and from 1e21 on; `NaN`, `+Inf`, `-Inf`.
pub(crate) fn value(out: &mut String, v: f64) {
    out.push('"');
    push_go_float(out, v);
    out.push('"');
}

/// Appends a native histogram as Prometheus' `jsonutil.MarshalHistogram`:
/// `{"count":"…","sum":"…","buckets":[[b,"lower","upper","count"],…]}`,
/// buckets ascending (negative, zero, positive), empty ones left out (and
/// the `buckets` key with them when all are), `b` saying which bounds are
/// inclusive: 0 upper only, 1 lower only, 2 neither, 3 both.
pub(crate) fn histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":");
    value(out, h.count);
    out.push_str(",\"sum\":");
    value(out, h.sum);
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[[" } else { ",[" });
        first = false;
        let boundaries = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => '0',
            (true, false) => '1',
            (false, false) => '2',
            (true, true) => '3',
        };
        out.push(boundaries);
        out.push(',');
        value(out, b.lower);
        out.push(',');
        value(out, b.upper);
        out.push(',');
        value(out, b.count);
        out.push(']');
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

/// The unquoted form of [`value`].
pub(crate) fn push_go_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let a = v.abs();
        if a != 0.0 && !(1e-6..1e21).contains(&a) {
            push_go_exp(out, v);
        } else {
            // The shortest round-tripping decimal without an exponent,
            // exactly Go's 'f' with precision -1.
            push_shortest_fixed(out, v);
        }
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)` for a finite `v`: shortest
/// digits, an exponent with a sign and at least two digits (`1e-07`,
/// `1.5e+21`).
pub(crate) fn push_go_exp(out: &mut String, v: f64) {
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            out.push_str(mantissa);
            out.push('e');
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            out.push(sign);
            if digits.len() < 2 {
                out.push('0');
            }
            out.push_str(digits);
        }
        None => out.push_str(&s),
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, as the text exposition
/// format writes values: shortest digits, in exponent form when the decimal
/// exponent is below -4 or at least 6 (`1e+06`, `1.234567e+06`, `1e-05`).
pub(crate) fn push_go_g(out: &mut String, v: f64) {
    if !v.is_finite() {
        push_go_float(out, v);
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let e = format!("{v:e}");
    let exp: i32 = e.split_once('e').and_then(|(_, x)| x.parse().ok()).unwrap_or(0);
    if !(-4..6).contains(&exp) {
        push_go_exp(out, v);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Appends a label set as a JSON object in label order (Go marshals the
/// label map with sorted keys, which is the same order).
pub(crate) fn labels(out: &mut String, l: &Labels) {
    string_object(out, l.iter().map(|lbl| (lbl.name, lbl.value)));
}

/// Appends name → string pairs as a JSON object, in the order given (label
/// and annotation maps, build info fields).
pub(crate) fn string_object<'a>(out: &mut String, fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push('{');
    for (i, (k, v)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        string(out, v);
    }
    out.push('}');
}

/// Appends a JSON array of strings.
pub(crate) fn string_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, s);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use tidemark_storage::histogram::Span;

    use super::*;

    #[test]
    fn histograms_are_written_as_prometheus_writes_them() {
        // {{schema:0 count:20 sum:10 z_bucket:2 z_bucket_w:0.001
        //   buckets:[1 2 0] n_buckets:[1 2]}}, an empty bucket included.
        let h = FloatHistogram {
            schema: 0,
            count: 20.0,
            sum: 10.0,
            zero_threshold: 0.001,
            zero_count: 2.0,
            positive_spans: vec![Span { offset: 0, length: 3 }],
            positive_buckets: vec![1.0, 2.0, 0.0],
            negative_spans: vec![Span { offset: 0, length: 2 }],
            negative_buckets: vec![1.0, 2.0],
            ..FloatHistogram::default()
        };
        let mut out = String::new();
        histogram(&mut out, &h);
        assert_eq!(
            out,
            r#"{"count":"20","sum":"10","buckets":[[1,"-2","-1","2"],[1,"-1","-0.5","1"],[3,"-0.001","0.001","2"],[0,"0.5","1","1"],[0,"1","2","2"]]}"#
        );
        // No populated bucket: no `buckets` key.
        let mut out = String::new();
        histogram(&mut out, &FloatHistogram { count: 0.0, sum: f64::NAN, ..FloatHistogram::default() });
        assert_eq!(out, r#"{"count":"0","sum":"NaN"}"#);
    }

    fn v(x: f64) -> String {
        let mut s = String::new();
        value(&mut s, x);
        s
    }

    fn ts(t: i64) -> String {
        let mut s = String::new();
        timestamp(&mut s, t);
        s
    }

    #[test]
    fn values_match_go() {
        assert_eq!(v(1.5), "\"1.5\"");
        assert_eq!(v(0.0), "\"0\"");
        assert_eq!(v(-0.0), "\"-0\"");
        assert_eq!(v(1e20), "\"100000000000000000000\"");
        assert_eq!(v(1e21), "\"1e+21\"");
        assert_eq!(v(1.5e300), "\"1.5e+300\"");
        assert_eq!(v(0.000001), "\"0.000001\"");
        assert_eq!(v(1e-7), "\"1e-07\"");
        assert_eq!(v(-2.5e-10), "\"-2.5e-10\"");
        assert_eq!(v(0.1 + 0.2), "\"0.30000000000000004\"");
        assert_eq!(v(f64::NAN), "\"NaN\"");
        assert_eq!(v(f64::INFINITY), "\"+Inf\"");
        assert_eq!(v(f64::NEG_INFINITY), "\"-Inf\"");
    }

    #[test]
    fn scalar_forms_match_go_encoding_json() {
        let mut s = String::new();
        float_seconds(&mut s, 1_700_000_000_120);
        s.push(' ');
        push_go_f(&mut s, 1e21);
        s.push(' ');
        push_go_f(&mut s, 1e-7);
        s.push(' ');
        float_seconds(&mut s, -1_500);
        assert_eq!(s, "1700000000.12 1000000000000000000000 0.0000001 -1.5");
    }

    #[test]
    fn timestamps_match_prometheus() {
        assert_eq!(ts(1_700_000_000_000), "1700000000");
        assert_eq!(ts(1_700_000_000_123), "1700000000.123");
        assert_eq!(ts(1_700_000_000_120), "1700000000.120");
        assert_eq!(ts(1_700_000_000_005), "1700000000.005");
        assert_eq!(ts(-1_500), "-1.500");
        assert_eq!(ts(0), "0");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn g_format_matches_go() {
        let g = |x: f64| {
            let mut s = String::new();
            push_go_g(&mut s, x);
            s
        };
        assert_eq!(g(1.0), "1");
        assert_eq!(g(123456.0), "123456");
        assert_eq!(g(1_000_000.0), "1e+06");
        assert_eq!(g(1_234_567.0), "1.234567e+06");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(f64::NAN), "NaN");
        assert_eq!(g(-0.5), "-0.5");
    }

    /// The fast paths write what the general ones write.
    #[test]
    fn fast_paths_equal_the_general_ones() {
        let samples = [
            "",
            "plain",
            "a\"b",
            "tab\there",
            "<>&",
            "\u{2028}x\u{2029}",
            "é€ — ✓",
            "\u{7f}\u{1f}",
            "\\",
            "job:api/v1",
            "\u{e000}\u{2027}\u{202a}",
        ];
        let mut all: Vec<String> = samples.iter().map(|x| x.to_string()).collect();
        // Every character up to U+2FFF (all of those from U+2000 start with
        // the byte 0xE2), alone and between others.
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            all.push(c.to_string());
            all.push(format!("ab{c}cd{c}"));
        }
        for x in &all {
            let (mut fast, mut slow) = (String::new(), String::new());
            string(&mut fast, x);
            string_escaped(&mut slow, x);
            assert_eq!(fast, slow, "{x:?}");
        }
        for t in [0i64, 1, 999, 1000, 1001, 1_700_000_000_120, -1, -1000, -1_500, i64::MAX, i64::MIN, 1_796_472_000_000]
        {
            let want = {
                let a = t.unsigned_abs();
                let frac = a % 1000;
                let sign = if t < 0 { "-" } else { "" };
                if frac != 0 {
                    format!("{sign}{}.{frac:03}", a / 1000)
                } else {
                    format!("{sign}{}", a / 1000)
                }
            };
            assert_eq!(ts(t), want);
        }
    }

    /// The fast fixed-point form writes exactly what `Display` writes (the
    /// shortest round-tripping decimal without an exponent), over edge
    /// cases and 400,000 bit patterns spread over every exponent.
    #[test]
    fn shortest_fixed_is_display() {
        let check = |v: f64| {
            if !v.is_finite() {
                return;
            }
            let mut fast = String::new();
            push_shortest_fixed(&mut fast, v);
            assert_eq!(fast, format!("{v}"), "bits {:#x}", v.to_bits());
        };
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.30000000000000004,
            1e-6,
            1e-7,
            123456789.0,
            1e15,
            1e16,
            1e17,
            1.5e20,
            1e21,
            1e22,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            9007199254740993.0,
            0.000123,
            12.3456,
            4.35,
            f64::from_bits(0x4317_9085_685d_83c9),
            0.5,
            0.25,
            123.75,
            2.5e-5,
            9007199254740991.0,
            9007199254740992.0,
            1.0000000000000002,
        ] {
            check(v);
            check(-v);
        }
        // A fixed xorshift sequence: any bit pattern, so every exponent.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(f64::from_bits(x));
            // Values shaped like metrics: integers and few decimals, and
            // ones with few significant bits (ties are possible there).
            check((x % 100_000_000) as f64 / 1000.0);
            check((x >> 11) as f64 / 1024.0);
            check(((x >> 30) as f64) * 0.25);
        }
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\n<&>\u{1}\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\n\u003c\u0026\u003e\u0001\u2028é""#);
    }
}
