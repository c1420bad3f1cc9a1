//! The function table: Go's builtins and Prometheus' template functions,
//! each with the Go parameter types that decide how arguments are checked
//! and a small implementation that returns Go's result or error text.

use std::collections::BTreeMap;
use std::rc::Rc;

use tidemark_promql::go_fmt::go_g_precision;

use super::gofmt::{quote, sprint, sprintf, sprintln};
use super::value::{MapKind, Sample, Value};
use super::QueryRunner;

/// The Go type of a parameter, as far as argument checking cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// `interface{}` or `reflect.Value`: anything goes.
    Any,
    Str,
    SamplePtr,
    QueryResult,
}

impl Param {
    pub fn type_name(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::SamplePtr => "*template.sample",
            Param::QueryResult => "template.queryResult",
        }
    }
}

/// A function's signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub params: &'static [Param],
    pub variadic: Option<Param>,
}

pub(crate) const NO_FUNC: Spec = Spec { params: &[], variadic: None };

/// What a function may reach outside its arguments.
pub(crate) struct Env<'a> {
    pub query: Option<&'a dyn QueryRunner>,
    pub t_ms: i64,
    /// The external URL; `None` is Prometheus' nil URL.
    pub external_url: Option<&'a str>,
}

use Param::{Any, QueryResult, SamplePtr, Str};

const fn fixed(params: &'static [Param]) -> Spec {
    Spec { params, variadic: None }
}

const fn variadic(params: &'static [Param], rest: Param) -> Spec {
    Spec { params, variadic: Some(rest) }
}

/// The signature of a function known to Prometheus' text templates.
pub(crate) fn lookup(name: &str) -> Option<Spec> {
    Some(match name {
        // Go's builtins.
        "and" | "or" | "index" | "slice" | "eq" | "call" => variadic(&[Any], Any),
        "not" | "len" => fixed(&[Any]),
        "ne" | "lt" | "le" | "gt" | "ge" => fixed(&[Any, Any]),
        "print" | "println" | "html" | "js" | "urlquery" => variadic(&[], Any),
        "printf" => variadic(&[Str], Any),
        // Prometheus' functions (template/template.go).
        "query" => fixed(&[Str]),
        "first" => fixed(&[QueryResult]),
        "label" => fixed(&[Str, SamplePtr]),
        "value" | "strvalue" => fixed(&[SamplePtr]),
        "args" => variadic(&[], Any),
        "reReplaceAll" => fixed(&[Str, Str, Str]),
        "match" => fixed(&[Str, Str]),
        "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink" | "stripPort" | "stripDomain"
        | "parseDuration" => fixed(&[Str]),
        "sortByLabel" => fixed(&[Str, QueryResult]),
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage" | "humanizeTimestamp" | "toTime" => {
            fixed(&[Any])
        }
        "pathPrefix" | "externalURL" => fixed(&[]),
        _ => return None,
    })
}

/// The methods of `*time.Time` that templates can call.
pub(crate) fn time_method(name: &str) -> Option<Spec> {
    match name {
        "Unix" | "UnixMilli" | "UnixNano" | "String" => Some(NO_FUNC),
        _ => None,
    }
}

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

/// Calls function `name` with checked arguments.
pub(crate) fn call(name: &str, args: Vec<Value>, env: &Env<'_>) -> Result<Value, String> {
    let s = |i: usize| -> &str { args.get(i).and_then(Value::as_str).unwrap_or("") };
    Ok(match name {
        "not" => Value::Bool(!args[0].truth()),
        "len" => builtin_len(&args[0])?,
        "index" => builtin_index(&args[0], &args[1..])?,
        "slice" => builtin_slice(&args[0], &args[1..])?,
        "eq" => Value::Bool(eq(&args[0], &args[1..])?),
        "ne" => Value::Bool(!eq(&args[0], &args[1..2])?),
        "lt" => Value::Bool(lt(&args[0], &args[1])?),
        "le" => Value::Bool(le(&args[0], &args[1])?),
        "gt" => Value::Bool(!le(&args[0], &args[1])?),
        "ge" => Value::Bool(!lt(&args[0], &args[1])?),
        "print" => Value::str(&sprint(&args)),
        "println" => Value::str(&sprintln(&args)),
        "printf" => Value::str(&sprintf(s(0), &args[1..])),
        "html" => Value::str(&html_escape(&eval_args(&args))),
        "js" => Value::str(&js_escape(&eval_args(&args))),
        "urlquery" => Value::str(&query_escape(&eval_args(&args))),
        "call" => {
            return Err(match &args[0] {
                Value::Invalid => "call of nil".into(),
                v => format!("non-function of type {}", v.type_name()),
            })
        }
        "query" => {
            let Some(q) = env.query else {
                return Err(NIL_DEREF.into());
            };
            let samples = q.query(s(0), env.t_ms)?;
            Value::vector(
                samples.into_iter().map(|x| Rc::new(Sample { labels: Rc::new(x.labels), value: x.value })).collect(),
            )
        }
        "first" => match &args[0] {
            Value::Vector(v) if !v.borrow().is_empty() => Value::Sample(v.borrow()[0].clone()),
            _ => return Err("first() called on vector with no elements".into()),
        },
        "label" => match &args[1] {
            Value::Sample(x) => Value::str(x.labels.get(s(0)).map_or("", String::as_str)),
            _ => return Err(NIL_DEREF.into()),
        },
        "value" => match &args[0] {
            Value::Sample(x) => Value::Float(x.value),
            _ => return Err(NIL_DEREF.into()),
        },
        "strvalue" => match &args[0] {
            Value::Sample(x) => Value::str(x.labels.get("__value__").map_or("", String::as_str)),
            _ => return Err(NIL_DEREF.into()),
        },
        "args" => Value::Map(
            MapKind::Any,
            Rc::new(args.iter().enumerate().map(|(i, a)| (format!("arg{i}"), a.clone())).collect::<BTreeMap<_, _>>()),
        ),
        "reReplaceAll" => {
            let re = compile(s(0)).map_err(|e| format!("regexp: Compile({}): {e}", backquote(s(0))))?;
            Value::str(&re.replace_all(s(2), s(1)))
        }
        "match" => Value::Bool(compile_unanchored(s(0))?.is_match(s(1))),
        "safeHtml" => Value::Html(Rc::from(s(0))),
        "title" => Value::str(&title(s(0))),
        "toUpper" => Value::str(&s(0).chars().map(simple_upper).collect::<String>()),
        "toLower" => Value::str(&s(0).chars().map(simple_lower).collect::<String>()),
        "graphLink" => Value::str(&format!("/graph?g0.expr={}&g0.tab=0", query_escape(s(0)))),
        "tableLink" => Value::str(&format!("/graph?g0.expr={}&g0.tab=1", query_escape(s(0)))),
        "sortByLabel" => {
            // Go sorts the argument's backing array in place and returns it.
            if let Value::Vector(v) = &args[1] {
                let key = s(0);
                v.borrow_mut().sort_by(|a, b| {
                    a.labels.get(key).map_or("", String::as_str).cmp(b.labels.get(key).map_or("", String::as_str))
                });
            }
            args[1].clone()
        }
        "stripPort" => Value::str(match split_host_port(s(0)) {
            Some((h, _)) => h,
            None => s(0),
        }),
        "stripDomain" => Value::str(&strip_domain(s(0))),
        "humanize" => Value::str(&humanize(to_float(&args[0])?)),
        "humanize1024" => Value::str(&humanize1024(to_float(&args[0])?)),
        "humanizeDuration" => Value::str(&humanize_duration(to_float(&args[0])?)),
        "humanizePercentage" => Value::str(&format!("{}%", g4(to_float(&args[0])? * 100.0))),
        "humanizeTimestamp" => {
            let v = to_float(&args[0])?;
            match float_to_time(v)? {
                None => Value::str(&g4(v)),
                Some(ns) => Value::str(&super::gotime::time_string(ns)),
            }
        }
        "toTime" => match float_to_time(to_float(&args[0])?)? {
            // Go returns a nil *time.Time with its NaN/Inf error.
            None => return Err("value is NaN or Inf".into()),
            Some(ns) => Value::Time(ns),
        },
        "pathPrefix" => match env.external_url.and_then(parse_url) {
            Some(u) => Value::str(&u.path),
            None => return Err(NIL_DEREF.into()),
        },
        "externalURL" => match env.external_url.and_then(parse_url) {
            Some(u) => Value::str(&u.text),
            None => return Err(NIL_DEREF.into()),
        },
        "parseDuration" => Value::Float(parse_duration(s(0))?),
        // Methods of *time.Time; the receiver is args[0].
        "Unix" | "UnixMilli" | "UnixNano" | "String" => {
            let Value::Time(ns) = args[0] else {
                return Err(NIL_DEREF.into());
            };
            match name {
                "Unix" => Value::Int(ns.div_euclid(1_000_000_000)),
                "UnixMilli" => Value::Int(ns.div_euclid(1_000_000)),
                "UnixNano" => Value::Int(ns),
                _ => Value::str(&super::gotime::time_string(ns)),
            }
        }
        other => return Err(format!("function {other} has no implementation")),
    })
}

/// Go's `%.4g`.
fn g4(v: f64) -> String {
    go_g_precision(v, 4)
}

/// Prometheus' `convertToFloat`: floats, Go ints, and strings through
/// `strconv.ParseFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` with its error text.
pub(crate) fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity") {
        return s.parse::<f64>().map_err(|_| syntax());
    }
    if lower == "nan" {
        // Go takes no sign on NaN.
        return if s.len() == 3 { Ok(f64::NAN) } else { Err(syntax()) };
    }
    if s.contains('_') && !underscore_ok(s) {
        return Err(syntax());
    }
    let v = if lower.starts_with("0x") {
        parse_hex_float(s).ok_or_else(syntax)?
    } else {
        let digits: String = s.chars().filter(|c| *c != '_').collect();
        let body = digits.strip_prefix(['+', '-']).unwrap_or(&digits);
        if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Err(syntax());
        }
        digits.parse::<f64>().map_err(|_| syntax())?
    };
    if v.is_infinite() {
        return Err(format!("strconv.ParseFloat: parsing {}: value out of range", quote(s)));
    }
    Ok(v)
}

/// Go's `underscoreOK`: underscores only between digits (a base prefix
/// counting as a digit).
fn underscore_ok(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go's hexadecimal float syntax: `0x1.8p3` (the exponent is required).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let body = body.get(2..)?.replace('_', "");
    let (mant, exp) = body.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// Go's `int64(f)` on amd64: out of range and NaN give the minimum.
fn go_int64(f: f64) -> i64 {
    if f.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", g4(v));
    }
    let (v, prefix) = small_si(v);
    format!("{}{prefix}", g4(v))
}

/// Scales a magnitude below 1 up by thousands with its SI prefix (`m`, `u`,
/// … `y`), as Prometheus' `humanize` and `humanizeDuration` both do.
fn small_si(mut v: f64) -> (f64, &'static str) {
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    (v, prefix)
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let d = go_int64(v);
        let seconds = d % 60;
        let minutes = (d / 60) % 60;
        let hours = (d / 60 / 60) % 24;
        let days = d / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let (v, prefix) = small_si(v);
    format!("{}{prefix}s", g4(v))
}

/// Prometheus' `floatToTime`, truncated to milliseconds as
/// `model.TimeFromUnixNano` does; `None` for NaN and infinities.
fn float_to_time(v: f64) -> Result<Option<i64>, String> {
    if !v.is_finite() {
        return Ok(None);
    }
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            tidemark_promql::go_fmt::go_g(v)
        ));
    }
    let ms = go_int64(ts) / 1_000_000;
    Ok(Some(ms * 1_000_000))
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    let translated = tidemark_promql::regex_compat::ascii_perl_classes(pattern);
    regex::Regex::new(&translated).map_err(|e| go_regex_error(pattern, &e))
}

fn compile_unanchored(pattern: &str) -> Result<regex::Regex, String> {
    compile(pattern)
}

/// Go's `regexp` error text for the common mistakes; others keep the
/// Rust parser's description after Go's prefix.
fn go_regex_error(pattern: &str, e: &regex::Error) -> String {
    let text = e.to_string();
    let code = if text.contains("unclosed group") {
        format!("missing closing ): `{pattern}`")
    } else if text.contains("unopened group") {
        format!("unexpected ): `{pattern}`")
    } else if text.contains("unclosed character class") {
        let at = pattern.rfind('[').unwrap_or(0);
        format!("missing closing ]: `{}`", &pattern[at..])
    } else if text.contains("repetition operator missing expression") {
        let op = pattern.chars().find(|c| matches!(c, '*' | '+' | '?' | '{')).unwrap_or('*');
        format!("missing argument to repetition operator: `{op}`")
    } else {
        let last = text.lines().rev().find(|l| l.starts_with("error:")).unwrap_or(&text);
        last.trim_start_matches("error: ").to_string()
    };
    format!("error parsing regexp: {code}")
}

/// Go's `strconv.Quote` flavour used by `regexp.MustCompile`'s panic:
/// backquoted when possible.
fn backquote(s: &str) -> String {
    if !s.contains('`') && !s.chars().any(|c| c.is_control() && c != '\t') {
        format!("`{s}`")
    } else {
        quote(s)
    }
}

fn simple_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn simple_lower(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn simple_title(c: char) -> char {
    match c {
        'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
        'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
        'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
        'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
        c => simple_upper(c),
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of every
/// word, words being separated by anything but letters, digits and `_`.
fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphabetic() || c.is_numeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_sep(prev) { simple_title(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || super::gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `evalArgs` for `html`, `js` and `urlquery`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let shown: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Invalid => Value::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    sprint(&shown)
}

/// Go's `net.SplitHostPort`, `None` where Go returns an error.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k);
    if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        host = &hp[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        j = 0;
        k = 0;
    }
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

struct Url {
    text: String,
    path: String,
}

/// Enough of Go's `url.Parse` for `pathPrefix`: the unescaped path.
fn parse_url(s: &str) -> Option<Url> {
    if s.is_empty() {
        return None;
    }
    let rest = s.split(['?', '#']).next().unwrap_or("");
    let after_scheme = match rest.find("://") {
        Some(i) => &rest[i + 3..],
        None => return Some(Url { text: s.to_string(), path: percent_decode(rest) }),
    };
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    Some(Url { text: s.to_string(), path: percent_decode(path) })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Prometheus' `model.ParseDuration`, in seconds.
fn parse_duration(s: &str) -> Result<f64, String> {
    match s {
        "0" => return Ok(0.0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", quote(s));
    const UNITS: [(&str, i64); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365),
        ("w", 1000 * 60 * 60 * 24 * 7),
        ("d", 1000 * 60 * 60 * 24),
        ("h", 1000 * 60 * 60),
        ("m", 1000 * 60),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    let mut overflow = false;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = if after.starts_with("ms") { 2 } else { after.chars().next().map_or(0, char::len_utf8) };
        let unit = &after[..unit_len.min(after.len())];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        if idx < next_unit {
            return Err(invalid());
        }
        next_unit = idx + 1;
        let mult = UNITS[idx].1;
        // Go's Atoi saturates to an error it ignores, leaving 0.
        let n: i64 = num.parse().unwrap_or(0);
        if n > i64::MAX / mult / 1_000_000 {
            overflow = true;
        }
        let d = n.wrapping_mul(1_000_000).wrapping_mul(mult);
        total = total.wrapping_add(d);
        if total < 0 {
            overflow = true;
        }
        rest = &after[unit.len()..];
    }
    if overflow {
        return Err("duration out of range".into());
    }
    Ok(total as f64 / 1e9)
}

fn basic_kind(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(_) => Some(1),
        Value::Int(_) => Some(2),
        Value::Byte(_) => Some(3),
        Value::Float(_) => Some(4),
        Value::Str(_) | Value::Html(_) => Some(5),
        _ => None,
    }
}

fn comparable(v: &Value) -> bool {
    !matches!(v, Value::Map(..) | Value::Vector(_) | Value::Data(_))
}

fn int_of(v: &Value) -> i128 {
    match v {
        Value::Int(i) => *i as i128,
        Value::Byte(b) => *b as i128,
        _ => 0,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

/// Go's `eq` builtin.
fn eq(a: &Value, rest: &[Value]) -> Result<bool, String> {
    if !matches!(a, Value::Invalid) && !comparable(a) {
        return Err(format!("uncomparable type {}: {}", a.type_name(), a.to_v()));
    }
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in rest {
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Some(2), Some(3)) | (Some(3), Some(2)) => int_of(a) == int_of(b),
                _ => {
                    if !matches!(a, Value::Invalid) && !matches!(b, Value::Invalid) {
                        return Err(BAD_COMPARISON.into());
                    }
                    false
                }
            }
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(_) | Value::Byte(_), _) => int_of(a) == int_of(b),
                (Value::Float(x), Value::Float(y)) => x == y,
                _ if k1 == Some(5) => a.as_str() == b.as_str(),
                (Value::Invalid, _) | (_, Value::Invalid) => matches!(a, Value::Invalid) && matches!(b, Value::Invalid),
                _ => {
                    if !comparable(b) {
                        return Err(format!("uncomparable type {}: {}", b.type_name(), b.to_v()));
                    }
                    match (a, b) {
                        (Value::Sample(x), Value::Sample(y)) => Rc::ptr_eq(x, y),
                        (Value::NilSample, Value::NilSample) => true,
                        (Value::Time(_), Value::Time(_)) => false,
                        _ => false,
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt` builtin.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let k1 = basic_kind(a).ok_or(BAD_COMPARISON_TYPE)?;
    let k2 = basic_kind(b).ok_or(BAD_COMPARISON_TYPE)?;
    if k1 != k2 {
        return match (k1, k2) {
            (2, 3) | (3, 2) => Ok(int_of(a) < int_of(b)),
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    match (a, b) {
        (Value::Bool(_), _) => Err(BAD_COMPARISON_TYPE.into()),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Int(_) | Value::Byte(_), _) => Ok(int_of(a) < int_of(b)),
        _ => Ok(a.as_str() < b.as_str()),
    }
}

fn le(a: &Value, b: &Value) -> Result<bool, String> {
    if lt(a, b)? {
        return Ok(true);
    }
    eq(a, std::slice::from_ref(b))
}

fn builtin_len(v: &Value) -> Result<Value, String> {
    Ok(Value::Int(match v {
        Value::NilSample => return Err("len of nil pointer".into()),
        Value::Str(s) | Value::Html(s) => s.len() as i64,
        Value::Map(_, m) => m.len() as i64,
        Value::Vector(x) => x.borrow().len() as i64,
        Value::Invalid => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        other => return Err(format!("len of type {}", indirect_type(other))),
    }))
}

/// The type name after following a pointer, as Go's `indirect` does.
fn indirect_type(v: &Value) -> &'static str {
    match v {
        Value::Sample(_) => "template.sample",
        Value::Time(_) => "time.Time",
        other => other.type_name(),
    }
}

fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x = match index {
        Value::Int(i) => *i as i128,
        Value::Byte(b) => *b as i128,
        Value::Invalid => return Err("cannot index slice/array with nil".into()),
        other => return Err(format!("cannot index slice/array with type {}", other.type_name())),
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn builtin_index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if let Value::Invalid = item {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for index in indexes {
        item = match &item {
            Value::NilSample => return Err("index of nil pointer".into()),
            Value::Str(s) | Value::Html(s) => {
                let x = index_arg(index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Byte(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Vector(v) => {
                let v = v.borrow();
                let x = index_arg(index, v.len())?;
                match v.get(x) {
                    Some(smp) => Value::Sample(smp.clone()),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::Map(kind, m) => {
                let key = match index {
                    Value::Str(k) => k,
                    Value::Invalid => return Err("value is nil; should be of type string".into()),
                    other => return Err(format!("value has type {}; should be string", other.type_name())),
                };
                match m.get(key.as_ref()) {
                    Some(v) => v.clone(),
                    None if *kind == MapKind::Strings => Value::str(""),
                    None => Value::Invalid,
                }
            }
            Value::Invalid => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", indirect_type(other))),
        };
    }
    Ok(item)
}

fn builtin_slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if let Value::Invalid = item {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::Str(s) | Value::Html(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Vector(v) => v.borrow().len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => Value::str(&String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        Value::Html(s) => Value::Html(Rc::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).as_ref())),
        Value::Vector(v) => Value::vector(v.borrow()[idx[0]..idx[1]].to_vec()),
        _ => Value::Invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_family() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(f64::NAN), "NaN");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(0.0015), "1.5ms");
        assert_eq!(humanize_duration(-90.0), "-1m 30s");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.b:9090"), Some(("a.b", "9090")));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(strip_domain("foo.example.com:9090"), "foo:9090");
        assert_eq!(strip_domain("10.0.0.1:9090"), "10.0.0.1:9090");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1m1h"), Err("not a valid duration string: \"1m1h\"".into()));
        assert_eq!(parse_duration("250ms"), Ok(0.25));
    }
}
