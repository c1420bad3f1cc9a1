//! The small languages inside a test script: durations, numbers, label sets
//! and the series value notation (`1+2x3 _ stale {{…}}`), as Prometheus'
//! promqltest and `promtool test rules` read them.

use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use tidemark_storage::histogram::{CounterResetHint, FloatHistogram, Span};
use tidemark_storage::Labels;

use crate::histo;

/// One position of a series description.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    /// `_`: no sample at this step.
    Omitted,
    /// A float value (including a staleness marker, NaN and ±Inf).
    Float(f64),
    /// A native histogram literal `{{…}}` (or one step of an expansion).
    Histogram(Box<HistPoint>),
}

/// A native histogram of a series description, as upstream's
/// `SequenceValue` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistPoint {
    /// The histogram (float counts, one span per sign, as written).
    pub h: FloatHistogram,
    /// Whether the literal spelled out `counter_reset_hint` (for an
    /// expansion `{{a}}+{{b}}xN`, whether `b` did, for every step). An
    /// expected histogram's hint is only compared when it was spelled out.
    pub hint_set: bool,
}

/// A parsed `<selector> <values>` line.
#[derive(Debug, Clone)]
pub struct SeriesDesc {
    /// The series' labels.
    pub labels: Labels,
    /// One point per step.
    pub points: Vec<Point>,
}

/// Parses a Prometheus duration (`1h30m`, `20s500ms`, `0`) into milliseconds.
/// A plain number (`50`, as the DSL accepts for times) means seconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = s.parse().map_err(|e| format!("invalid duration {s:?}: {e}"))?;
        return secs.checked_mul(1000).ok_or_else(|| format!("duration {s:?} out of range"));
    }
    // Units must appear in this order, each at most once (model.ParseDuration).
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let n: i64 = s[start..i].parse().map_err(|_| format!("not a valid duration string: {s:?}"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(pos) = UNITS.iter().skip(next_unit).position(|(u, _)| *u == unit) else {
            return Err(format!("not a valid duration string: {s:?}"));
        };
        let idx = next_unit + pos;
        next_unit = idx + 1;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} out of range"))?;
    }
    Ok(total)
}

/// Parses a number as Go's `strconv.ParseInt(s, 0, 64)` then
/// `strconv.ParseFloat(s, 64)` do: base prefixes (`0x`, `0o`, `0b`, a
/// leading `0` meaning octal), then decimals, exponents, `Inf`, `NaN`.
pub fn parse_go_number(s: &str) -> Result<f64, String> {
    if let Some(i) = parse_go_int(s) {
        return Ok(i as f64);
    }
    parse_go_float(s).ok_or_else(|| format!("error parsing number: {s:?}"))
}

fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Go allows underscores between digits only with a base prefix.
    let digits = if prefixed { digits.replace('_', "") } else { digits };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -mag } else { mag };
    i64::try_from(v).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal notation, `Inf` and `NaN`
/// (any case, optionally signed).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let mag = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            // Rust's parser also takes "inf"/"nan" spellings we handled
            // above; refuse anything that is not plain decimal notation.
            if !lower.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-')) {
                return None;
            }
            lower.parse::<f64>().ok()?
        }
    };
    Some(if neg { -mag } else { mag })
}

/// Parses a label set written as a PromQL selector with only equality
/// matchers: `metric`, `metric{a="b"}`, `{__name__="m", a="b"}`, `{}`.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing series selector".into());
    }
    // `{}` (the empty label set, e.g. the result of `sum(x)`) is not a valid
    // PromQL selector, so the parser cannot be asked about it.
    if text.trim_start_matches('{').trim_end_matches('}').trim().is_empty() && text.starts_with('{') {
        return Ok(Labels::empty());
    }
    let expr = promql_parser::parser::parse(text).map_err(|e| format!("invalid series selector {text:?}: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("series selector {text:?} is not a plain selector"));
    };
    if vs.offset.is_some() || vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
        return Err(format!("series selector {text:?} must be a plain label set"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = &vs.name {
        pairs.push(("__name__".into(), name.clone()));
    }
    for m in &vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!("series selector {text:?} may only use `=` matchers"));
        }
        if m.name == "__name__" && vs.name.as_deref() == Some(m.value.as_str()) {
            continue;
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    Labels::new(pairs).map_err(|e| format!("invalid labels in {text:?}: {e}"))
}

/// Splits a series line into its selector and its value text. The selector
/// ends at the first whitespace outside braces and quotes.
pub fn split_series_line(line: &str) -> Result<(&str, &str), String> {
    let bytes = line.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' {
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
        } else {
            match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'{' => depth += 1,
                b'}' => depth = depth.saturating_sub(1),
                b' ' | b'\t' if depth == 0 => return Ok((&line[..i], line[i..].trim())),
                _ => {}
            }
        }
        i += 1;
    }
    if quote.is_some() || depth > 0 {
        return Err(format!("unterminated series selector in {line:?}"));
    }
    Ok((line, ""))
}

/// Parses a series description line: `<selector> <values>`.
pub fn parse_series_desc(line: &str) -> Result<SeriesDesc, String> {
    let (sel, values) = split_series_line(line)?;
    let labels = parse_labels(sel)?;
    let points = parse_values(values)?;
    Ok(SeriesDesc { labels, points })
}

/// Splits the value text into items at whitespace outside `{{ … }}`.
fn value_items(text: &str) -> Result<Vec<&str>, String> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{{") {
            depth += 1;
            start.get_or_insert(i);
            i += 2;
            continue;
        }
        if bytes[i..].starts_with(b"}}") && depth > 0 {
            depth -= 1;
            i += 2;
            continue;
        }
        let ws = bytes[i] == b' ' || bytes[i] == b'\t';
        if ws && depth == 0 {
            if let Some(s) = start.take() {
                items.push(&text[s..i]);
            }
        } else if !ws {
            start.get_or_insert(i);
        }
        i += 1;
    }
    if depth > 0 {
        return Err(format!("unterminated histogram literal in {text:?}"));
    }
    if let Some(s) = start {
        items.push(&text[s..]);
    }
    Ok(items)
}

/// Parses the value part of a series description.
pub fn parse_values(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    for item in value_items(text)? {
        parse_item(item, &mut out).map_err(|e| format!("invalid series value {item:?}: {e}"))?;
    }
    Ok(out)
}

/// Most points one item may expand to; guards against `1x99999999999`.
const MAX_REPEAT: u64 = 10_000_000;

fn parse_repeat(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid repetition {s:?}"));
    }
    let n: u64 = s.parse().map_err(|e| format!("invalid repetition in series values: {e}"))?;
    if n > MAX_REPEAT {
        return Err(format!("repetition {n} too large"));
    }
    Ok(n)
}

fn parse_item(item: &str, out: &mut Vec<Point>) -> Result<(), String> {
    if item == "_" {
        out.push(Point::Omitted);
        return Ok(());
    }
    if let Some(rest) = item.strip_prefix("_x") {
        // `_xN` is N omitted steps (unlike `axN`, which is N+1 values).
        let n = parse_repeat(rest)?;
        out.extend(std::iter::repeat_n(Point::Omitted, n as usize));
        return Ok(());
    }
    if item.starts_with("{{") {
        return parse_histogram_item(item, out);
    }
    let mut sc = Scanner { s: item, pos: 0 };
    let first = sc.series_value()?;
    if sc.done() {
        out.push(Point::Float(first));
        return Ok(());
    }
    let mut delta = 0.0;
    if sc.peek() == Some(b'+') || sc.peek() == Some(b'-') {
        delta = sc.signed_number()?;
        if sc.peek() != Some(b'x') {
            return Err("expected `x<count>` after the increment".into());
        }
    }
    if sc.peek() != Some(b'x') {
        return Err(format!("unexpected {:?}", &item[sc.pos..]));
    }
    let n = parse_repeat(&item[sc.pos + 1..])?;
    // Accumulate as the Go grammar does (`$1 += $2`), so rounding matches.
    let mut v = first;
    for _ in 0..=n {
        out.push(Point::Float(v));
        v += delta;
    }
    Ok(())
}

/// `{{…}}`, `{{…}}xN`, `{{…}}+{{…}}xN`, `{{…}}-{{…}}xN`.
fn parse_histogram_item(item: &str, out: &mut Vec<Point>) -> Result<(), String> {
    let close = item.find("}}").ok_or("unterminated histogram literal")?;
    let base = parse_histogram_literal(&item[2..close])?;
    let rest = &item[close + 2..];
    if rest.is_empty() {
        out.push(Point::Histogram(Box::new(base)));
        return Ok(());
    }
    if let Some(r) = rest.strip_prefix('x') {
        let n = parse_repeat(r)?;
        out.extend(std::iter::repeat_n(Point::Histogram(Box::new(base)), n as usize + 1));
        return Ok(());
    }
    let subtract = match rest.as_bytes()[0] {
        b'+' => false,
        b'-' => true,
        _ => return Err(format!("unexpected {rest:?} after histogram literal")),
    };
    let inc_text =
        rest[1..].strip_prefix("{{").ok_or_else(|| format!("unexpected {rest:?} after histogram literal"))?;
    let c2 = inc_text.find("}}").ok_or("unterminated histogram literal")?;
    let inc = parse_histogram_literal(&inc_text[..c2])?;
    let n =
        parse_repeat(inc_text[c2 + 2..].strip_prefix('x').ok_or("expected `x<count>` after the histogram increment")?)?;
    // Every step carries the increment's "hint spelled out" flag, the base
    // included, as upstream's `histogramsSeries` does.
    let hint_set = inc.hint_set;
    let mut cur = base.h;
    out.push(Point::Histogram(Box::new(HistPoint { h: cur.clone(), hint_set })));
    for _ in 0..n {
        if cur.schema > inc.h.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                inc.h.schema, cur.schema
            ));
        }
        cur = histo::add(&cur, &inc.h, subtract).map_err(|e| format!("error combining histograms: {e}"))?;
        out.push(Point::Histogram(Box::new(HistPoint { h: cur.clone(), hint_set })));
    }
    Ok(())
}

/// A cursor over the inside of a `{{…}}` literal.
struct HistLexer<'a> {
    s: &'a str,
    pos: usize,
}

impl HistLexer<'_> {
    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while self.s.as_bytes().get(self.pos).is_some_and(|b| *b == b' ' || *b == b'\t') {
            self.pos += 1;
        }
        self.pos > start
    }

    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// A word of letters and underscores.
    fn word(&mut self) -> &str {
        let start = self.pos;
        while self.s.as_bytes().get(self.pos).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// The text up to the next space, `]` or the end.
    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.s.as_bytes().get(self.pos).is_some_and(|b| !matches!(b, b' ' | b'\t' | b']' | b'[')) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// `signed_or_unsigned_number` (`signed` false: `number`): an optional
    /// `-`, then a number as Go parses it, `Inf` or `NaN`.
    fn number(&mut self, signed: bool) -> Result<f64, String> {
        let t = self.token();
        let (neg, body) = match t.strip_prefix('-') {
            Some(b) if signed => (true, b),
            _ => (false, t),
        };
        if body.is_empty() || body.starts_with(['-', '+']) {
            return Err(format!("expected a number, got {t:?}"));
        }
        let v = match body.to_ascii_lowercase().as_str() {
            "inf" => f64::INFINITY,
            "nan" => f64::NAN,
            _ => parse_go_number(body)?,
        };
        Ok(if neg { -v } else { v })
    }

    /// `int`: an optional `-` and decimal digits.
    fn int(&mut self) -> Result<i64, String> {
        let t = self.token();
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected an integer, got {t:?}"));
        }
        t.parse().map_err(|e| format!("invalid integer {t:?}: {e}"))
    }

    /// `[n n …]`: at least one number, single spaces between them (a space
    /// before `]` is allowed).
    fn bucket_set(&mut self) -> Result<Vec<f64>, String> {
        if !self.s[self.pos..].starts_with('[') {
            return Err("expected `[` to start a bucket list".into());
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            if self.s[self.pos..].starts_with(']') {
                if out.is_empty() {
                    return Err("empty bucket list".into());
                }
                self.pos += 1;
                return Ok(out);
            }
            if self.done() {
                return Err("unterminated bucket list".into());
            }
            if !out.is_empty() && !self.skip_spaces() {
                return Err("expected a space between buckets".into());
            }
            if self.s[self.pos..].starts_with(']') {
                continue;
            }
            out.push(self.number(true)?);
        }
    }
}

/// The inside of a `{{…}}` literal: `key:value` items separated by
/// spaces, each key at most once, as upstream's series-description
/// grammar (`histogram_desc_map`) takes them.
pub fn parse_histogram_literal(body: &str) -> Result<HistPoint, String> {
    let mut lx = HistLexer { s: body, pos: 0 };
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let (mut buckets, mut offset, mut n_buckets, mut n_offset) = (None, 0i64, None, 0i64);
    let mut seen: Vec<String> = Vec::new();
    let leading_space = lx.skip_spaces();
    if leading_space && !lx.done() {
        return Err(format!("unexpected space at the start of histogram description {body:?}"));
    }
    while !lx.done() {
        let key = lx.word().to_ascii_lowercase();
        if key.is_empty() {
            return Err(format!("histogram description incomplete at {:?}", &body[lx.pos..]));
        }
        if !lx.s[lx.pos..].starts_with(':') {
            return Err(format!("missing `:` after histogram descriptor {key:?}"));
        }
        lx.pos += 1;
        if seen.contains(&key) {
            return Err(format!("duplicate key \"{key}\" in histogram"));
        }
        match key.as_str() {
            "schema" => h.schema = i32::try_from(lx.int()?).map_err(|_| "schema out of range")?,
            "sum" => h.sum = lx.number(true)?,
            "count" => h.count = lx.number(true)?,
            "z_bucket" => h.zero_count = lx.number(true)?,
            "z_bucket_w" => h.zero_threshold = lx.number(false)?,
            "custom_values" => h.custom_values = lx.bucket_set()?,
            "buckets" => buckets = Some(lx.bucket_set()?),
            "n_buckets" => n_buckets = Some(lx.bucket_set()?),
            "offset" => offset = lx.int()?,
            "n_offset" => n_offset = lx.int()?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match lx.word().to_ascii_lowercase().as_str() {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("unknown counter_reset_hint {other:?}")),
                };
            }
            other => return Err(format!("bad histogram descriptor found: {other:?}")),
        }
        seen.push(key);
        if !lx.done() && !lx.skip_spaces() {
            return Err(format!("unexpected {:?} in histogram description", &body[lx.pos..]));
        }
    }
    let side = |b: Option<Vec<f64>>, off: i64| -> Result<(Vec<Span>, Vec<f64>), String> {
        let off = i32::try_from(off).map_err(|_| format!("offset {off} out of range"))?;
        Ok(match b {
            Some(b) if !b.is_empty() => (vec![Span { offset: off, length: b.len() as u32 }], b),
            _ => (Vec::new(), Vec::new()),
        })
    };
    (h.positive_spans, h.positive_buckets) = side(buckets, offset)?;
    (h.negative_spans, h.negative_buckets) = side(n_buckets, n_offset)?;
    Ok(HistPoint { h, hint_set })
}

/// A cursor over one value item.
struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// `stale`, or a possibly signed number.
    fn series_value(&mut self) -> Result<f64, String> {
        if self.s[self.pos..].starts_with("stale") {
            self.pos += "stale".len();
            return Ok(tidemark_storage::stale_nan());
        }
        match self.peek() {
            Some(b'+') | Some(b'-') => self.signed_number(),
            _ => self.number(),
        }
    }

    fn signed_number(&mut self) -> Result<f64, String> {
        let neg = match self.peek() {
            Some(b'-') => true,
            Some(b'+') => false,
            _ => return Err("expected a sign".into()),
        };
        self.pos += 1;
        let v = self.number()?;
        Ok(if neg { -v } else { v })
    }

    /// An unsigned number: decimal (with exponent), `Inf`, `NaN`, or a
    /// duration (`1m` = 60), as the series grammar's `number` rule allows.
    fn number(&mut self) -> Result<f64, String> {
        let rest = &self.s[self.pos..];
        let lower = rest.to_ascii_lowercase();
        for word in ["infinity", "inf", "nan"] {
            if lower.starts_with(word) {
                self.pos += word.len();
                return Ok(if word == "nan" { f64::NAN } else { f64::INFINITY });
            }
        }
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        // Exponent, only when digits follow (`1e3`, `2.5e-4`).
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let ds = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > ds {
                i = j;
            }
        }
        // A duration unit directly after the digits (never `x`, the
        // repetition marker).
        let mut u = i;
        while u < b.len() && b[u].is_ascii_alphabetic() && b[u] != b'x' {
            u += 1;
        }
        let v = if u > i {
            parse_duration_ms(&rest[..u])? as f64 / 1000.0
        } else {
            parse_go_float(&rest[..i]).ok_or_else(|| format!("invalid number {:?}", &rest[..i]))?
        };
        self.pos += u;
        Ok(v)
    }
}

/// Go's `strconv.Unquote` for the string forms scripts use: `"…"` with
/// escapes, `'…'` and `` `…` ``.
pub fn go_unquote(s: &str) -> Result<String, String> {
    let bad = || format!("invalid quoted string {s:?}");
    if s.len() < 2 {
        return Err(bad());
    }
    let q = s.as_bytes()[0];
    if s.as_bytes()[s.len() - 1] != q || !matches!(q, b'"' | b'\'' | b'`') {
        return Err(bad());
    }
    let body = &s[1..s.len() - 1];
    if q == b'`' {
        return if body.contains('`') { Err(bad()) } else { Ok(body.to_string()) };
    }
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c as u32 == q as u32 || c == '\n' {
            return Err(bad());
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' | '\'' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                let v = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
                if hex.len() != n {
                    return Err(bad());
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}
