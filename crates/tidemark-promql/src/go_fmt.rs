//! Floats printed the way Go prints them, for messages and labels that must
//! read exactly like Prometheus' (`%f`, `%g`, `%.Ng`, `strconv.FormatFloat`
//! and `labels.FormatOpenMetricsFloat`). Go spells the non-finite values
//! `NaN`, `+Inf` and `-Inf` in all of them.

/// Go's spelling of a non-finite value, or `None` for a finite one.
fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("+Inf")
    } else if v == f64::NEG_INFINITY {
        Some("-Inf")
    } else {
        None
    }
}

/// Go's `%f`: six decimals.
pub fn go_format_f(v: f64) -> String {
    non_finite(v).map_or_else(|| format!("{v:.6}"), str::to_string)
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that
/// reads back exactly, never with an exponent.
pub fn format_float_f(v: f64) -> String {
    non_finite(v).map_or_else(|| format!("{v}"), str::to_string)
}

/// Formats a float as Go's `%g` does for the values annotations print.
pub fn go_g(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        s.into()
    } else {
        let a = v.abs();
        // Shortest `%g` switches to an exponent below 1e-4 and from 1e6 on.
        if a != 0.0 && !(1e-4..1e6).contains(&a) {
            let s = format!("{v:e}");
            // Rust prints 1e21 / 1e-5; Go prints 1e+21 / 1e-05.
            match s.split_once('e') {
                Some((m, e)) => {
                    let (sign, digits) = match e.strip_prefix('-') {
                        Some(d) => ('-', d),
                        None => ('+', e),
                    };
                    format!("{m}e{sign}{digits:0>2}")
                }
                None => s,
            }
        } else {
            format!("{v}")
        }
    }
}

/// Formats a float as Go's `%.<p>g`.
pub fn go_g_precision(v: f64, p: usize) -> String {
    if !v.is_finite() || v == 0.0 {
        return go_g(v);
    }
    let exp = v.abs().log10().floor() as i32;
    // Round to p significant digits first; rounding can bump the exponent.
    let s = format!("{:.*e}", p.saturating_sub(1), v);
    let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(exp);
    if e < -4 || e >= p as i32 {
        let mant = if mant.contains('.') { mant.trim_end_matches('0').trim_end_matches('.') } else { mant };
        let sign = if e < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", e.abs())
    } else {
        let decimals = (p as i32 - 1 - e).max(0) as usize;
        let f = format!("{:.*}", decimals, v);
        if f.contains('.') {
            f.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            f
        }
    }
}

/// Go's `labels.FormatOpenMetricsFloat`: shortest form, always with a
/// decimal point or exponent (`1.0`, `0.25`, `1e-05`, `+Inf`).
pub fn format_openmetrics_float(v: f64) -> String {
    let s = go_g(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Go's `strconv.Quote` of a byte string, which need not be UTF-8 (`%q`):
/// `"` and `\\` escaped, the C escapes, `\xNN` for other non-printable
/// ASCII and for every byte that is not part of valid UTF-8, `\u`/`\U` for
/// other non-printable characters. Prometheus prints label names this way
/// in its messages; templates and promtool's reports print strings so.
///
/// ```
/// assert_eq!(tidemark_promql::go_fmt::quote_bytes(b"a\xc5z\n\"\xc3\xa9"), r#""a\xc5z\n\"é""#);
/// ```
pub fn quote_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if is_print(c) => out.push(c),
                c if (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: no controls, no format
/// characters, no separators other than the ASCII space.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xAD | 0x600..=0x605 | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xFFFE | 0xFFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_bytes_is_go_strconv_quote() {
        assert_eq!(quote_bytes(b"job"), "\"job\"");
        assert_eq!(quote_bytes(b"a\xc5z"), r#""a\xc5z""#);
        assert_eq!(quote_bytes(b"\xff\xfe"), r#""\xff\xfe""#);
        assert_eq!(quote_bytes("tab\there\u{1}\u{7f}\\".as_bytes()), r#""tab\there\x01\x7f\\""#);
        assert_eq!(quote_bytes("\u{85}".as_bytes()), r#""\u0085""#);
    }

    #[test]
    fn go_g_formats_like_go() {
        assert_eq!(go_g(1.5), "1.5");
        assert_eq!(go_g(f64::NAN), "NaN");
        assert_eq!(go_g(-0.5), "-0.5");
        assert_eq!(go_g(1e21), "1e+21");
        assert_eq!(go_g(1e6), "1e+06");
        assert_eq!(go_g(999_999.5), "999999.5");
        assert_eq!(format_openmetrics_float(1.0), "1.0");
        assert_eq!(format_openmetrics_float(0.25), "0.25");
        assert_eq!(format_openmetrics_float(1e6), "1e+06");
        assert_eq!(go_g(1e-5), "1e-05");
    }

    #[test]
    fn go_g_precision_matches_go() {
        assert_eq!(go_g_precision(0.5, 2), "0.5");
        assert_eq!(go_g_precision(12.34, 2), "12");
        assert_eq!(go_g_precision(1234.0, 2), "1.2e+03");
        assert_eq!(go_g_precision(0.000123, 2), "0.00012");
        assert_eq!(go_g_precision(0.0000123, 2), "1.2e-05");
        assert_eq!(go_g_precision(99.9, 2), "1e+02");
    }

    #[test]
    fn f_formats_like_go() {
        assert_eq!(go_format_f(1234.5678901), "1234.567890");
        assert_eq!(go_format_f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(0.1), "0.1");
        assert_eq!(format_float_f(f64::INFINITY), "+Inf");
    }
}
