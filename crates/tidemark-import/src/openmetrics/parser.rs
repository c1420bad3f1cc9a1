//! A streaming parser of OpenMetrics text as `promtool tsdb
//! create-blocks-from openmetrics` reads it (Prometheus 2.42
//! `model/textparse/openmetricsparse.go` and its lexer).
//!
//! The parser works line by line over borrowed bytes: [`Parser::next`]
//! hands out entries that point into the caller's buffer, so parsing
//! allocates nothing per line (label values with escapes are unescaped into
//! an owned string only when asked for).
//!
//! What it accepts, as Prometheus does:
//! - `# HELP name text`, `# TYPE name type` (counter, gauge, histogram,
//!   gaugehistogram, summary, info, stateset, unknown), `# UNIT name unit`
//!   (a non-empty unit must be a `_`-separated suffix of the name);
//! - samples `name{label="value",…} value [timestamp] [# {labels} value [timestamp]]`
//!   with single spaces, no trailing commas, label values quoted with `\\`,
//!   `\"`, `\n` escapes and valid UTF-8, values and timestamps as Go's
//!   `strconv.ParseFloat` reads them minus hexadecimal floats and `_`
//!   (timestamps in seconds, turned into milliseconds by truncating
//!   `seconds × 1000`), exemplars only on `_total` and `_bucket` names;
//! - a final `# EOF` line, after which nothing may follow.
//!
//! Any other line (other comments, blank lines, spaces) is an error, with
//! its 1-based line number.

use std::borrow::Cow;

/// A metric family's type as `# TYPE` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram`.
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info`.
    Info,
    /// `stateset`.
    Stateset,
    /// `unknown`.
    Unknown,
}

impl MetricType {
    fn parse(s: &[u8]) -> Option<MetricType> {
        Some(match s {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"gaugehistogram" => MetricType::GaugeHistogram,
            b"summary" => MetricType::Summary,
            b"info" => MetricType::Info,
            b"stateset" => MetricType::Stateset,
            b"unknown" => MetricType::Unknown,
            _ => return None,
        })
    }
}

/// One entry of the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text` (the text still escaped).
    Help {
        /// The metric family name.
        name: &'a str,
        /// The help text as written.
        text: &'a str,
    },
    /// `# TYPE name type`.
    Type {
        /// The metric family name.
        name: &'a str,
        /// The declared type.
        kind: MetricType,
    },
    /// `# UNIT name unit`.
    Unit {
        /// The metric family name.
        name: &'a str,
        /// The unit (may be empty).
        unit: &'a str,
    },
    /// A sample line.
    Sample(SampleLine<'a>),
}

/// A sample line: its series, value, timestamp and whether it carried an
/// exemplar (exemplars are validated, then ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLine<'a> {
    /// The series as written: `name` or `name{…}` (labels validated).
    pub series: &'a [u8],
    /// Length of the metric name at the start of `series`.
    name_len: usize,
    /// The value.
    pub value: f64,
    /// The timestamp in milliseconds, if the line had one.
    pub timestamp_ms: Option<i64>,
    /// Whether the line carried an exemplar.
    pub has_exemplar: bool,
}

impl<'a> SampleLine<'a> {
    /// The metric name.
    pub fn name(&self) -> &'a str {
        // Checked ASCII by the parser.
        std::str::from_utf8(&self.series[..self.name_len]).unwrap_or_default()
    }

    /// The labels other than the name, in written order, values unescaped.
    pub fn labels(&self) -> LabelPairs<'a> {
        let rest = &self.series[self.name_len..];
        // `{…}` when present: strip the braces.
        let inner = if rest.len() >= 2 { &rest[1..rest.len() - 1] } else { &rest[..0] };
        LabelPairs { rest: inner }
    }
}

/// Iterator over a validated label list `a="x",b="y"`.
#[derive(Debug, Clone)]
pub struct LabelPairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let eq = self.rest.iter().position(|&b| b == b'=')?;
        let name = std::str::from_utf8(&self.rest[..eq]).ok()?;
        let after = &self.rest[eq + 1..];
        let end = quoted_end(after)?;
        let raw = std::str::from_utf8(&after[1..end - 1]).ok()?;
        self.rest = after.get(end + 1..).unwrap_or(&[]);
        Some((name, unescape(raw)))
    }
}

/// `\\` → `\`, `\"` → `"`, `\n` → newline; other escapes stay as written
/// (Prometheus' `lvalReplacer`).
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A line the parser refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: u64,
    /// What was wrong.
    pub reason: String,
}

/// Parses OpenMetrics text line by line. Feed it every line of the input
/// with [`Parser::line`] (each line with its `\n` if it had one), then call
/// [`Parser::finish`].
#[derive(Debug, Default)]
pub struct Parser {
    line: u64,
    eof_seen: bool,
}

impl Parser {
    /// A parser at the start of a text.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// The number of lines seen so far.
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Parses one line: `Ok(None)` for the `# EOF` line.
    pub fn line<'a>(&mut self, line: &'a [u8]) -> Result<Option<Entry<'a>>, ParseError> {
        self.line += 1;
        let err = |reason: String| ParseError { line: self.line, reason };
        if self.eof_seen {
            return Err(err("unexpected data after # EOF".into()));
        }
        let (body, terminated) = match line.strip_suffix(b"\n") {
            Some(b) => (b, true),
            None => (line, false),
        };
        if body.contains(&b'\n') {
            return Err(err("more than one line given".into()));
        }
        if body == b"# EOF" {
            self.eof_seen = true;
            return Ok(None);
        }
        if !terminated {
            return Err(err("data does not end with # EOF".into()));
        }
        parse_line(body).map(Some).map_err(err)
    }

    /// Ends the text: an error unless `# EOF` was seen.
    pub fn finish(&self) -> Result<(), ParseError> {
        if self.eof_seen {
            Ok(())
        } else {
            Err(ParseError { line: self.line, reason: "data does not end with # EOF".into() })
        }
    }
}

/// Parses a whole text held in memory (every entry, in order).
pub fn parse_all(text: &[u8]) -> Result<Vec<Entry<'_>>, ParseError> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Some(e) = p.line(line)? {
            out.push(e);
        }
    }
    p.finish()?;
    Ok(out)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit()
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_char(b: u8) -> bool {
    is_label_start(b) || b.is_ascii_digit()
}

/// Length of the metric name at the start of `s` (0 if none).
fn metric_name_len(s: &[u8]) -> usize {
    match s.first() {
        Some(&b) if is_name_start(b) => 1 + s[1..].iter().take_while(|&&b| is_name_char(b)).count(),
        _ => 0,
    }
}

/// Given `s` starting with `"`, the index just past the closing quote of a
/// quoted value with backslash escapes.
fn quoted_end(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn text(s: &[u8]) -> &str {
    // Callers only pass ASCII-checked or UTF-8-checked bytes.
    std::str::from_utf8(s).unwrap_or_default()
}

fn parse_line(body: &[u8]) -> Result<Entry<'_>, String> {
    if let Some(rest) = body.strip_prefix(b"# ") {
        return parse_meta(rest);
    }
    if body.first() == Some(&b'#') {
        return Err("invalid comment: only # HELP, # TYPE, # UNIT and # EOF are allowed".into());
    }
    parse_sample(body).map(Entry::Sample)
}

fn parse_meta(rest: &[u8]) -> Result<Entry<'_>, String> {
    let (keyword, rest) = if let Some(r) = rest.strip_prefix(b"HELP ") {
        ("HELP", r)
    } else if let Some(r) = rest.strip_prefix(b"TYPE ") {
        ("TYPE", r)
    } else if let Some(r) = rest.strip_prefix(b"UNIT ") {
        ("UNIT", r)
    } else {
        return Err("invalid comment: only # HELP, # TYPE, # UNIT and # EOF are allowed".into());
    };
    let n = metric_name_len(rest);
    if n == 0 {
        return Err(format!("expected metric name after {keyword}"));
    }
    let name = text(&rest[..n]);
    let Some(value) = rest[n..].strip_prefix(b" ") else {
        return Err(format!("expected text in {keyword}"));
    };
    match keyword {
        "HELP" => {
            let t = std::str::from_utf8(value).map_err(|_| "help text is not a valid utf8 string".to_string())?;
            Ok(Entry::Help { name, text: t })
        }
        "TYPE" => match MetricType::parse(value) {
            Some(kind) => Ok(Entry::Type { name, kind }),
            None => Err(format!("invalid metric type {:?}", String::from_utf8_lossy(value))),
        },
        _ => {
            let unit = std::str::from_utf8(value).map_err(|_| "unit is not a valid utf8 string".to_string())?;
            if !unit.is_empty() {
                let ok = name.len() > unit.len()
                    && name.ends_with(unit)
                    && name.as_bytes()[name.len() - unit.len() - 1] == b'_';
                if !ok {
                    return Err(format!("unit not a suffix of metric {name:?}"));
                }
            }
            Ok(Entry::Unit { name, unit })
        }
    }
}

/// Validates `{a="x",b="y"}` at the start of `s`; returns its length.
fn label_set_len(s: &[u8]) -> Result<usize, String> {
    debug_assert_eq!(s.first(), Some(&b'{'));
    let mut i = 1;
    if s.get(i) == Some(&b'}') {
        return Ok(i + 1);
    }
    loop {
        let start = i;
        match s.get(i) {
            Some(&b) if is_label_start(b) => i += 1,
            _ => {
                return Err(if start == 1 { "expected label name or right brace" } else { "expected label name" }.into())
            }
        }
        while s.get(i).is_some_and(|&b| is_label_char(b)) {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            return Err("expected equal".into());
        }
        i += 1;
        let end = quoted_end(&s[i..]).ok_or_else(|| "expected label value".to_string())?;
        if std::str::from_utf8(&s[i + 1..i + end - 1]).is_err() {
            return Err("invalid UTF-8 label value".into());
        }
        i += end;
        match s.get(i) {
            Some(b'}') => return Ok(i + 1),
            Some(b',') => i += 1,
            _ => return Err("expected comma or right brace".into()),
        }
    }
}

/// Go's `strconv.ParseFloat` as Prometheus calls it: no `p`, `P` or `_`.
pub fn parse_float(s: &[u8]) -> Result<f64, String> {
    if s.iter().any(|&b| matches!(b, b'p' | b'P' | b'_')) {
        return Err(format!("unsupported character in float {:?}", String::from_utf8_lossy(s)));
    }
    let t = std::str::from_utf8(s).map_err(|_| "invalid float".to_string())?;
    // Rust reads the same decimal forms and inf/infinity/nan spellings as Go;
    // Go also takes a sign before "nan", Rust as well.
    let v = t.parse::<f64>().map_err(|_| format!("strconv.ParseFloat: parsing {t:?}: invalid syntax"))?;
    // Go refuses a finite spelling beyond the f64 range (ErrRange); Rust
    // rounds it to infinity.
    if v.is_infinite() && !t.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf") {
        return Err(format!("strconv.ParseFloat: parsing {t:?}: value out of range"));
    }
    Ok(v)
}

/// Seconds as written → milliseconds, truncating `seconds × 1000` as
/// Prometheus' `int64(ts * 1000)` does; non-finite or out-of-range is an error.
pub fn parse_timestamp(s: &[u8], what: &str) -> Result<i64, String> {
    let ts = parse_float(s)?;
    let ms = ts * 1000.0;
    if !ms.is_finite() {
        return Err(format!("invalid {what}"));
    }
    if !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&ms) {
        return Err(format!("{what} out of range"));
    }
    Ok(ms as i64)
}

/// A token `[^ \n]+` after one space at the start of `s`: (token, rest).
fn spaced_token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.strip_prefix(b" ")?;
    let n = s.iter().take_while(|&&b| b != b' ').count();
    if n == 0 {
        return None;
    }
    Some((&s[..n], &s[n..]))
}

fn parse_sample(body: &[u8]) -> Result<SampleLine<'_>, String> {
    let name_len = metric_name_len(body);
    if name_len == 0 {
        let shown: String = String::from_utf8_lossy(&body[..body.len().min(20)]).into_owned();
        return Err(format!("{shown:?} is not a valid start token"));
    }
    let mut series_len = name_len;
    if body.get(name_len) == Some(&b'{') {
        series_len += label_set_len(&body[name_len..])?;
    }
    let series = &body[..series_len];
    let rest = &body[series_len..];
    let (value, rest) = spaced_token(rest).ok_or_else(|| "expected value after metric".to_string())?;
    let value = parse_float(value)?;
    let (timestamp_ms, rest) = match rest {
        [] => (None, rest),
        _ if rest.starts_with(b" # {") => (None, rest),
        _ => {
            let (ts, rest) = spaced_token(rest).ok_or_else(|| "expected timestamp or # symbol".to_string())?;
            (Some(parse_timestamp(ts, "timestamp")?), rest)
        }
    };
    let has_exemplar = match rest {
        [] => false,
        _ => {
            let Some(ex) = rest.strip_prefix(b" # ") else {
                return Err("expected next entry after timestamp".into());
            };
            parse_exemplar(&body[..name_len], ex)?;
            true
        }
    };
    Ok(SampleLine { series, name_len, value, timestamp_ms, has_exemplar })
}

/// Validates `{labels} value [timestamp]` after ` # `.
fn parse_exemplar(name: &[u8], ex: &[u8]) -> Result<(), String> {
    if !(name.ends_with(b"_total") || name.ends_with(b"_bucket")) {
        return Err(format!("metric name {} does not support exemplars", String::from_utf8_lossy(name)));
    }
    if ex.first() != Some(&b'{') {
        return Err("expected label name or right brace in exemplar".into());
    }
    let n = label_set_len(ex)?;
    let rest = &ex[n..];
    let (value, rest) = spaced_token(rest).ok_or_else(|| "expected value after exemplar labels".to_string())?;
    parse_float(value)?;
    match rest {
        [] => Ok(()),
        _ => {
            let (ts, rest) = spaced_token(rest).ok_or_else(|| "expected timestamp or comment".to_string())?;
            parse_timestamp(ts, "exemplar timestamp")?;
            if rest.is_empty() {
                Ok(())
            } else {
                Err("expected next entry after exemplar timestamp".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Entry<'_>, String> {
        parse_line(line.as_bytes())
    }

    fn sample(line: &str) -> SampleLine<'_> {
        match one(line) {
            Ok(Entry::Sample(s)) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn samples_with_labels_timestamps_and_exemplars() {
        let s = sample(r#"http_requests_total{code="200",path="/a\"b\\c\nd"} 1027 1395066363.000"#);
        assert_eq!(s.name(), "http_requests_total");
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.timestamp_ms, Some(1_395_066_363_000));
        let labels: Vec<(&str, String)> = s.labels().map(|(n, v)| (n, v.into_owned())).collect();
        assert_eq!(labels, vec![("code", "200".to_string()), ("path", "/a\"b\\c\nd".to_string())]);
        let s = sample(r#"foo_total 17.0 1520879607.789 # {id="counter-test"} 5 123"#);
        assert_eq!(s.timestamp_ms, Some(1_520_879_607_789));
        assert!(s.has_exemplar);
        // Before the epoch: seconds × 1000 truncated toward zero, as Go's
        // `int64(ts * 1000)` (the fuzz target once wrote -1269 ms back as
        // `-2.731`; the parser was right).
        assert_eq!(sample("up 1 -1.269").timestamp_ms, Some(-1269));
        assert_eq!(sample("up 1 -0.5").timestamp_ms, Some(-500));
        let s = sample("up{} 1");
        assert_eq!(s.timestamp_ms, None);
        assert_eq!(s.labels().count(), 0);
        let s = sample("x NaN 1");
        assert!(s.value.is_nan());
        assert_eq!(sample("x +Inf 1.5").value, f64::INFINITY);
        assert_eq!(sample("x -inf 1.5").timestamp_ms, Some(1500));
        assert_eq!(sample("x -Infinity 1").value, f64::NEG_INFINITY);
        assert_eq!(sample("x 1e-400 1").value, 0.0, "underflow is not an error in Go either");
        // Truncation of seconds × 1000 toward zero, as int64(ts*1000).
        assert_eq!(sample("x 1 -0.0015").timestamp_ms, Some(-1));
        assert_eq!(sample("x 1 0.0019").timestamp_ms, Some(1));
    }

    #[test]
    fn metadata_lines() {
        assert_eq!(one("# TYPE foo counter").unwrap(), Entry::Type { name: "foo", kind: MetricType::Counter });
        assert_eq!(one("# HELP foo Some \\n text").unwrap(), Entry::Help { name: "foo", text: "Some \\n text" });
        assert_eq!(one("# UNIT foo_seconds seconds").unwrap(), Entry::Unit { name: "foo_seconds", unit: "seconds" });
        assert_eq!(one("# UNIT foo ").unwrap(), Entry::Unit { name: "foo", unit: "" });
        assert!(one("# UNIT fooseconds seconds").unwrap_err().contains("unit not a suffix"));
        assert!(one("# TYPE foo bar").unwrap_err().contains("invalid metric type"));
        assert!(one("# TYPE foo").is_err());
        assert!(one("# random comment").is_err());
        assert!(one("#TYPE foo counter").is_err());
    }

    #[test]
    fn refusals_as_prometheus_refuses() {
        for bad in [
            "",
            " up 1 1",
            "up  1 1",
            "up 1  1",
            "up 1 1 ",
            "up{a=\"1\",} 1 1",
            "up{,a=\"1\"} 1 1",
            "up{a=\"1\" b=\"2\"} 1 1",
            "up{a=1} 1 1",
            "up{a=\"1\"",
            "up{1a=\"x\"} 1 1",
            "up 0x10 1",
            "up 1_000 1",
            "up 1 1e1000",
            "up 1e400 1",
            "up -1e400 1",
            "up 1 NaN",
            "up 1 1 2",
            "up abc 1",
            "up",
            "up 1 1 # {a=\"b\"} 1",
            "foo_total 1 1 # {a=\"b\"}",
            "foo_total 1 1 # {a=\"b\"} 1 NaN",
            "foo_total 1 1 #{a=\"b\"} 1",
            "9up 1 1",
        ] {
            assert!(one(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn eof_rules_and_line_numbers() {
        assert_eq!(parse_all(b"up 1 1\n# EOF\n").unwrap().len(), 1);
        assert_eq!(parse_all(b"up 1 1\n# EOF").unwrap().len(), 1);
        let e = parse_all(b"up 1 1\n").unwrap_err();
        assert!(e.reason.contains("does not end with # EOF"), "{e}");
        let e = parse_all(b"up 1 1\n# EOF\nup 1 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("after # EOF"));
        let e = parse_all(b"# EOF\n\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_all(b"up 1 1\nup{a=\"b\" 1 1\n# EOF\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_all(b"up 1 1").unwrap_err();
        assert!(e.reason.contains("does not end with # EOF"), "{e}");
        assert!(parse_all(b"").is_err());
    }

    #[test]
    fn invalid_utf8_in_label_values_is_refused() {
        assert!(parse_line(b"up{a=\"\xff\"} 1 1").unwrap_err().contains("UTF-8"));
        assert!(parse_line(b"# HELP up \xff").unwrap_err().contains("utf8"));
    }
}
