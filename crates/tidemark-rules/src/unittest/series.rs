//! The input-series notation of `promtool test rules` (Prometheus' series
//! descriptions): a metric such as `up{job="api"}` and a value sequence
//! such as `0+10x5 _x2 stale 7`.
//!
//! Value items are separated by spaces:
//! - `v` one value: a number (`1`, `-2.5`, `1e3`, `Inf`, `-Inf`, `NaN`) or
//!   `stale` (a staleness marker);
//! - `vxN` the value N+1 times;
//! - `v+dxN` / `v-dxN` N+1 values from `v`, adding `d` each time (by repeated
//!   addition, as Prometheus does, so float rounding accumulates the same);
//! - `_` no sample at this step, `_xN` none for N steps (N, not N+1).
//!
//! The tokens follow Prometheus' lexer: a number is digits with an optional
//! fraction and exponent (no hexadecimal here), an identifier is a letter
//! followed by letters, digits, `_` or `:` — so `NaNx2` is one identifier
//! and is refused, as promtool refuses it.

use std::collections::BTreeMap;

use tidemark_storage::stale_nan;

/// A series description or metric that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeriesError {
    /// The value sequence is malformed; `item` is the offending item.
    #[error("bad series values item {item:?}: {reason}")]
    Values {
        /// The space-separated item.
        item: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metric (`name{label="value", …}`) is malformed at byte `pos`.
    #[error("bad metric {text:?} at byte {pos}: {reason}")]
    Metric {
        /// The whole metric text.
        text: String,
        /// Byte offset of the problem.
        pos: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Expands a value sequence into one entry per step: `None` where the step
/// has no sample (`_`), the staleness-marker NaN for `stale`.
///
/// ```
/// use tidemark_rules::unittest::expand_values;
/// assert_eq!(expand_values("1+1x2 _ 7").unwrap(), vec![Some(1.0), Some(2.0), Some(3.0), None, Some(7.0)]);
/// ```
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, SeriesError> {
    let mut out = Vec::new();
    for item in text.split_ascii_whitespace() {
        expand_item(item, &mut out).map_err(|reason| SeriesError::Values { item: item.to_string(), reason })?;
    }
    Ok(out)
}

/// Most steps one item may expand to: a guard against `1x99999999999`
/// exhausting memory (promtool would try).
pub const MAX_STEPS_PER_ITEM: u64 = 10_000_000;

fn expand_item(item: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    let mut cur = Cursor { s: item.as_bytes(), pos: 0 };
    if cur.peek() == Some(b'_') {
        cur.pos += 1;
        let n = if cur.at_end() { 1 } else { cur.times()? };
        cur.expect_end()?;
        check_steps(n)?;
        out.extend(std::iter::repeat_n(None, n as usize));
        return Ok(());
    }
    let first = cur.value()?;
    if cur.at_end() {
        out.push(Some(first));
        return Ok(());
    }
    let delta = match cur.peek() {
        Some(b'+') | Some(b'-') => Some(cur.signed_number()?),
        _ => None,
    };
    let n = cur.times()?;
    cur.expect_end()?;
    check_steps(n.saturating_add(1))?;
    let mut v = first;
    for _ in 0..=n {
        out.push(Some(v));
        if let Some(d) = delta {
            v += d;
        }
    }
    Ok(())
}

fn check_steps(n: u64) -> Result<(), String> {
    if n > MAX_STEPS_PER_ITEM {
        return Err(format!("expands to {n} steps, more than the {MAX_STEPS_PER_ITEM} allowed"));
    }
    Ok(())
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn expect_end(&self) -> Result<(), String> {
        if self.at_end() {
            Ok(())
        } else {
            Err(format!("unexpected {:?}", String::from_utf8_lossy(&self.s[self.pos..])))
        }
    }

    /// `xN` with N an unsigned decimal integer.
    fn times(&mut self) -> Result<u64, String> {
        if self.peek() != Some(b'x') {
            return Err(match self.peek() {
                Some(_) => format!("expected \"x\", found {:?}", String::from_utf8_lossy(&self.s[self.pos..])),
                None => "expected \"x\"".to_string(),
            });
        }
        self.pos += 1;
        let tok = self.number_token()?;
        tok.parse::<u64>().map_err(|_| format!("invalid repetition in series values: {tok}"))
    }

    /// A value: a signed or unsigned number, `Inf`/`NaN`, or `stale`.
    fn value(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'+') | Some(b'-') => self.signed_number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let id = self.identifier();
                if id == "stale" {
                    Ok(stale_nan())
                } else {
                    special_number(&id)
                        .ok_or_else(|| format!("unexpected identifier {id:?}, expected number or \"stale\""))
                }
            }
            _ => self.number(),
        }
    }

    fn signed_number(&mut self) -> Result<f64, String> {
        let neg = match self.peek() {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return Err("expected \"+\" or \"-\"".to_string()),
        };
        self.pos += 1;
        let v = self.number()?;
        Ok(if neg { -v } else { v })
    }

    /// An unsigned number, including `Inf` and `NaN`.
    fn number(&mut self) -> Result<f64, String> {
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic()) {
            let id = self.identifier();
            return special_number(&id).ok_or_else(|| format!("unexpected identifier {id:?}, expected number"));
        }
        let tok = self.number_token()?;
        parse_go_number(&tok).ok_or_else(|| format!("bad number syntax: {tok:?}"))
    }

    /// Digits, an optional fraction and an optional exponent; what follows
    /// must be `x`, a sign, or the end (Prometheus' `scanNumber` in series
    /// mode).
    fn number_token(&mut self) -> Result<String, String> {
        let start = self.pos;
        let digits = |c: &mut Self| {
            while matches!(c.peek(), Some(b'0'..=b'9')) {
                c.pos += 1;
            }
        };
        digits(self);
        if self.peek() == Some(b'.') {
            self.pos += 1;
            digits(self);
        }
        let mantissa = &self.s[start..self.pos];
        if mantissa.is_empty() || mantissa == b"." {
            return Err(match self.peek() {
                Some(c) => format!("unexpected character {:?}, expected a number", c as char),
                None => "expected a number".to_string(),
            });
        }
        if matches!(self.peek(), Some(b'e') | Some(b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+') | Some(b'-')) {
                self.pos += 1;
            }
            digits(self);
        }
        let tok = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        match self.peek() {
            Some(c) if c != b'x' && (c.is_ascii_alphanumeric() || c == b'_') => {
                Err(format!("bad number syntax: {tok:?}"))
            }
            _ => Ok(tok),
        }
    }

    fn identifier(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
}

/// `Inf` and `NaN`, in any case, as Prometheus' lexer reads them.
fn special_number(id: &str) -> Option<f64> {
    match id.to_ascii_lowercase().as_str() {
        "inf" => Some(f64::INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    }
}

/// Prometheus reads a number with Go's `ParseInt(s, 0, 64)` first (so `010`
/// is octal 8) and `ParseFloat` when that fails.
fn parse_go_number(tok: &str) -> Option<f64> {
    if tok.len() > 1 && tok.starts_with('0') && tok.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = i64::from_str_radix(&tok[1..], 8) {
            return Some(v as f64);
        }
    }
    if let Ok(v) = tok.parse::<i64>() {
        return Some(v as f64);
    }
    tok.parse::<f64>().ok()
}

/// Parses a metric as `promtool` reads `series` and `exp_samples.labels`:
/// `name`, `name{l="v", …}` or `{l="v", …}`, values quoted with `"`, `'` or
/// backticks and Go escapes. Returns the labels with `__name__` for the name.
///
/// ```
/// use tidemark_rules::unittest::parse_metric;
/// let m = parse_metric(r#"up{job="api", instance='a:80'}"#).unwrap();
/// assert_eq!(m["__name__"], "up");
/// assert_eq!(m["instance"], "a:80");
/// ```
pub fn parse_metric(text: &str) -> Result<BTreeMap<String, String>, SeriesError> {
    let err = |pos: usize, reason: String| SeriesError::Metric { text: text.to_string(), pos, reason };
    let s = text.as_bytes();
    let mut pos = skip_ws(s, 0);
    let mut out = BTreeMap::new();
    let name_start = pos;
    while matches!(s.get(pos), Some(c) if c.is_ascii_alphanumeric() || *c == b'_' || *c == b':') {
        pos += 1;
    }
    if pos > name_start {
        let name = &text[name_start..pos];
        if name.as_bytes()[0].is_ascii_digit() {
            return Err(err(name_start, format!("metric name {name:?} starts with a digit")));
        }
        out.insert("__name__".to_string(), name.to_string());
    }
    pos = skip_ws(s, pos);
    if pos == s.len() {
        if out.is_empty() {
            return Err(err(pos, "expected a metric name or \"{\"".to_string()));
        }
        return Ok(out);
    }
    if s[pos] != b'{' {
        return Err(err(pos, format!("unexpected {:?}", &text[pos..])));
    }
    pos += 1;
    loop {
        pos = skip_ws(s, pos);
        match s.get(pos) {
            None => return Err(err(pos, "unclosed \"{\"".to_string())),
            Some(b'}') => {
                pos += 1;
                break;
            }
            _ => {}
        }
        let start = pos;
        while matches!(s.get(pos), Some(c) if c.is_ascii_alphanumeric() || *c == b'_') {
            pos += 1;
        }
        let name = &text[start..pos];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(err(start, "expected a label name".to_string()));
        }
        pos = skip_ws(s, pos);
        if s.get(pos) != Some(&b'=') || s.get(pos + 1) == Some(&b'~') {
            return Err(err(pos, format!("expected \"=\" after label {name:?}")));
        }
        pos = skip_ws(s, pos + 1);
        let (value, next) = go_string_literal(text, pos).map_err(|(p, reason)| err(p, reason))?;
        pos = next;
        if out.insert(name.to_string(), value).is_some() {
            return Err(err(start, format!("label {name:?} given twice")));
        }
        pos = skip_ws(s, pos);
        match s.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => {}
            None => return Err(err(pos, "unclosed \"{\"".to_string())),
            Some(_) => return Err(err(pos, format!("expected \",\" or \"}}\", found {:?}", &text[pos..]))),
        }
    }
    pos = skip_ws(s, pos);
    if pos != s.len() {
        return Err(err(pos, format!("unexpected {:?} after the label set", &text[pos..])));
    }
    Ok(out)
}

fn skip_ws(s: &[u8], mut pos: usize) -> usize {
    while matches!(s.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// A Go string literal starting at `pos`: `"…"` or `'…'` with escapes, or a
/// raw `` `…` ``. Returns the value and the position after the closing quote.
fn go_string_literal(text: &str, pos: usize) -> Result<(String, usize), (usize, String)> {
    let mut chars = text[pos..].char_indices();
    let quote = match chars.next() {
        Some((_, q @ ('"' | '\'' | '`'))) => q,
        _ => return Err((pos, "expected a quoted label value".to_string())),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, pos + i + c.len_utf8()));
        }
        if c == '\n' && quote != '`' {
            return Err((pos + i, "newline in string".to_string()));
        }
        if c != '\\' || quote == '`' {
            out.push(c);
            continue;
        }
        let Some((j, e)) = chars.next() else { break };
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '"' | '\'' if e == quote => Some(e),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            continue;
        }
        let digits = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            '0'..='7' => 2,
            _ => return Err((pos + j, format!("unknown escape sequence \\{e}"))),
        };
        let mut hex = String::new();
        for _ in 0..digits {
            match chars.next() {
                Some((_, h)) => hex.push(h),
                None => return Err((pos + j, "unterminated escape sequence".to_string())),
            }
        }
        let code = if e.is_ascii_digit() {
            u32::from_str_radix(&format!("{e}{hex}"), 8).ok().filter(|&v| v <= 255)
        } else {
            u32::from_str_radix(&hex, 16).ok()
        };
        match code.and_then(char::from_u32) {
            Some(c) => out.push(c),
            None => return Err((pos + j, format!("invalid escape sequence \\{e}{hex}"))),
        }
    }
    Err((text.len(), "unterminated quoted string".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_storage::is_stale_nan;

    fn vals(s: &str) -> Vec<Option<f64>> {
        expand_values(s).unwrap()
    }

    #[test]
    fn repetition_is_n_plus_one_values() {
        assert_eq!(vals("1x3"), vec![Some(1.0); 4]);
        assert_eq!(vals("5x0"), vec![Some(5.0)]);
    }

    #[test]
    fn growth_and_decline() {
        assert_eq!(vals("0+10x3"), vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]);
        assert_eq!(vals("100-10x2"), vec![Some(100.0), Some(90.0), Some(80.0)]);
        assert_eq!(vals("-2-2x2"), vec![Some(-2.0), Some(-4.0), Some(-6.0)]);
        assert_eq!(vals("0+10x1 100-10x1"), vec![Some(0.0), Some(10.0), Some(100.0), Some(90.0)]);
    }

    #[test]
    fn steps_accumulate_by_repeated_addition() {
        // 0.1 added three times is not 0.3 in float64; Prometheus adds too.
        let v = vals("0+0.1x3");
        assert_eq!(v[3], Some(0.1 + 0.1 + 0.1));
        assert_ne!(v[3], Some(0.3));
    }

    #[test]
    fn blanks_count_n_steps_not_n_plus_one() {
        assert_eq!(vals("1 _ 2"), vec![Some(1.0), None, Some(2.0)]);
        assert_eq!(vals("_x3 1"), vec![None, None, None, Some(1.0)]);
        assert_eq!(vals("_x0"), Vec::<Option<f64>>::new());
    }

    #[test]
    fn stale_and_special_numbers() {
        let v = vals("stale Inf -Inf +Inf NaN nan 1e3 .5 2.5e-1");
        assert!(is_stale_nan(v[0].unwrap()));
        assert_eq!(v[1], Some(f64::INFINITY));
        assert_eq!(v[2], Some(f64::NEG_INFINITY));
        assert_eq!(v[3], Some(f64::INFINITY));
        assert!(v[4].unwrap().is_nan() && !is_stale_nan(v[4].unwrap()));
        assert!(v[5].unwrap().is_nan());
        assert_eq!(&v[6..], &[Some(1000.0), Some(0.5), Some(0.25)]);
    }

    #[test]
    fn octal_like_promql() {
        assert_eq!(vals("010 0 007.5"), vec![Some(8.0), Some(0.0), Some(7.5)]);
    }

    #[test]
    fn empty_and_extra_spaces() {
        assert_eq!(vals(""), Vec::<Option<f64>>::new());
        assert_eq!(vals("  1   2 "), vec![Some(1.0), Some(2.0)]);
    }

    #[test]
    fn malformed_items_are_refused() {
        for bad in [
            "NaNx2", "Infx2", "foo", "1x", "1+1", "1x2.5", "1xx2", "1+x2", "_x", "_2", "1a", "x3", "1x-2", "1x3 4y",
            "0x10+1",
        ] {
            assert!(expand_values(bad).is_err(), "{bad:?} should be refused");
        }
        let e = expand_values("1 NaNx2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad series values item \"NaNx2\": unexpected identifier \"NaNx2\", expected number or \"stale\""
        );
    }

    #[test]
    fn huge_repetition_is_refused_not_allocated() {
        assert!(expand_values("1x99999999999").is_err());
        assert!(expand_values("_x99999999999").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_expanded_or_refused_without_panicking(text in "[0-9x+_. eEinfaNIstl-]{0,40}") {
            let _ = expand_values(&text);
        }

        #[test]
        fn well_formed_sequences_have_the_expected_length(
            items in proptest::collection::vec((-1000i64..1000, -50i64..50, 0u64..20, 0u8..3), 0..8)
        ) {
            let mut text = String::new();
            let mut expected = 0u64;
            for (start, step, n, kind) in &items {
                let item = match kind {
                    0 => { expected += 1; format!("{start}") }
                    1 => { expected += n + 1; format!("{start}{step:+}x{n}") }
                    _ => { expected += n; format!("_x{n}") }
                };
                text.push_str(&item);
                text.push(' ');
            }
            let v = expand_values(&text).unwrap();
            proptest::prop_assert_eq!(v.len() as u64, expected);
        }

        #[test]
        fn any_metric_text_is_parsed_or_refused_without_panicking(text in r#"[a-z_:{}="',\ é`0-9]{0,30}"#) {
            let _ = parse_metric(&text);
        }
    }

    #[test]
    fn metrics() {
        let m = parse_metric("up").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["__name__"], "up");
        let m = parse_metric(r#"job:rate5m{job="a", le="+Inf",}"#).unwrap();
        assert_eq!(m["__name__"], "job:rate5m");
        assert_eq!(m["le"], "+Inf");
        let m = parse_metric(r#"{a="x\"y\n\u00e9", b='it\'s', c=`raw\n`}"#).unwrap();
        assert_eq!(m["a"], "x\"y\né");
        assert_eq!(m["b"], "it's");
        assert_eq!(m["c"], "raw\\n");
        assert!(!m.contains_key("__name__"));
        assert!(parse_metric("{}").unwrap().is_empty());
    }

    #[test]
    fn malformed_metrics_are_refused() {
        for bad in [
            "",
            "up{",
            "up{a}",
            "up{a=b}",
            r#"up{a="b""#,
            r#"up{a=~"b"}"#,
            r#"up{a="1",a="2"}"#,
            r#"up{a="1"} x"#,
            "1up",
            r#"up{1a="x"}"#,
            r#"{a="\q"}"#,
        ] {
            assert!(parse_metric(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
