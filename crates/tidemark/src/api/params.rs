//! Request parameters as Prometheus reads them: form values merged from a
//! form-encoded body and the query string (Go's `r.Form`), times in RFC 3339
//! or float seconds, durations in Prometheus' syntax or float seconds,
//! limits, and `match[]` selectors.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method, Request};
use tidemark_storage::Matcher;

use super::response::ApiError;

/// The start of an open time range, in milliseconds: Prometheus' `MinTime`
/// (`time.Unix(math.MinInt64/1000+62135596801, 0)`).
pub const MIN_TIME: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;

/// The end of an open time range, in milliseconds: Prometheus' `MaxTime`
/// (`time.Unix(math.MaxInt64/1000-62135596801, 999999999)`).
pub const MAX_TIME: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// Largest form body read, as Go's `ParseForm` (10 MB).
pub const MAX_FORM_BODY: usize = 10 << 20;

/// Form values in Go's `r.Form` order: body values first, then the query
/// string's; `get` returns the first value, as `r.FormValue` does.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// The first malformed pair, as Go's `ParseForm` reports it (the pair
    /// itself is skipped, the rest still parsed).
    pub error: Option<String>,
}

impl Params {
    /// Parses a query string (or form body) into `self`, appending.
    pub fn add_encoded(&mut self, s: &str) {
        for part in s.split('&') {
            if part.is_empty() {
                continue;
            }
            if part.contains(';') {
                self.error.get_or_insert_with(|| "invalid semicolon separator in query".into());
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match (unescape(k), unescape(v)) {
                (Ok(k), Ok(v)) => self.pairs.push((k, v)),
                (Err(e), _) | (_, Err(e)) => {
                    self.error.get_or_insert(e);
                }
            }
        }
    }

    /// Parameters from a query string only.
    pub fn from_query(query: &str) -> Params {
        let mut p = Params::default();
        p.add_encoded(query);
        p
    }

    /// The first value of `name`; missing and empty are the same, as in Go.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// Every value of `name`, body values first.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// Reads the parameters of a request: a form-encoded body (POST, PUT,
    /// PATCH with `Content-Type: application/x-www-form-urlencoded`, at most
    /// [`MAX_FORM_BODY`] bytes) followed by the query string.
    pub async fn from_request(req: Request<Body>) -> Result<(Params, Parts), ApiError> {
        let (parts, body) = req.into_parts();
        let mut p = Params::default();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if is_form && matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            let bytes = axum::body::to_bytes(body, MAX_FORM_BODY)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form values: {}", body_error(&e))))?;
            p.add_encoded(&String::from_utf8_lossy(&bytes));
        }
        if let Some(q) = parts.uri.query() {
            p.add_encoded(q);
        }
        Ok((p, parts))
    }

    /// A time parameter (`start`, `end`, `time`), `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(s) => parse_time(s)
                .map_err(|e| ApiError::invalid_param(name, format!("invalid time value for '{name}': {e}"))),
        }
    }

    /// The `limit` parameter: 0 (no limit) when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(0),
            Some(s) => {
                let n = go_atoi(s).map_err(|e| ApiError::invalid_param("limit", e))?;
                usize::try_from(n).map_err(|_| ApiError::invalid_param("limit", "limit must be non-negative"))
            }
        }
    }

    /// The `match[]` selectors, one matcher set per selector (or per `or`
    /// group of one).
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, String> {
        parse_matchers(&self.all("match[]"))
    }
}

fn body_error(e: &axum::Error) -> String {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if s.to_string().contains("length limit") {
            return "http: POST too large".into();
        }
        src = s.source();
    }
    e.to_string()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a bad escape is
/// an error naming it.
fn unescape(s: &str) -> Result<String, String> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!("invalid URL escape {bad:?}"));
                    }
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `strconv.Atoi` with its error messages.
pub(crate) fn go_atoi(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|_| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        let kind = if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        format!("strconv.Atoi: parsing {s:?}: {kind}")
    })
}

/// Parses a time as Prometheus does: float Unix seconds (the fraction
/// rounded to milliseconds) or RFC 3339 with optional fractional seconds
/// and a `Z` or `±hh:mm` offset. Returns milliseconds (truncating finer
/// RFC 3339 fractions). Non-finite or out-of-range floats are refused (Go
/// would silently wrap them).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid timestamp");
    if let Some(f) = go_parse_float(s) {
        if !f.is_finite() || f.abs() >= 9.2e15 {
            return Err(bad());
        }
        // Go: s, ns := math.Modf(t); ns = math.Round(ns*1000)/1000;
        // time.Unix(int64(s), int64(ns*1e9)), then milliseconds by flooring.
        let whole = f.trunc();
        let frac = ((f - whole) * 1000.0).round() / 1000.0;
        let nanos = (whole as i128) * 1_000_000_000 + (frac * 1e9) as i128;
        return Ok(nanos.div_euclid(1_000_000) as i64);
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    if s == format_rfc3339(MIN_TIME) {
        return Ok(MIN_TIME);
    }
    if s == format_rfc3339_nanos(MAX_TIME.div_euclid(1000), 999_999_999) {
        return Ok(MAX_TIME);
    }
    Err(bad())
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms (and `Inf`,
/// `NaN`); hexadecimal floats are not accepted.
fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    // Rust also accepts "infinity"/"inf"/"nan" in any case, like Go; it
    // rejects underscores, which Go allows only with a base prefix.
    if body.is_empty() || body.starts_with("0x") || body.starts_with("0X") {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Strict RFC 3339 (`2023-11-14T22:13:20.123Z`, `…+02:00`) to milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs * 1000 + nanos / 1_000_000)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A millisecond timestamp as Go's `Format(time.RFC3339Nano)` in UTC
/// (trailing zeros of the fraction dropped).
pub fn format_rfc3339(ms: i64) -> String {
    format_rfc3339_nanos(ms.div_euclid(1000), (ms.rem_euclid(1000) * 1_000_000) as u32)
}

/// Seconds and nanoseconds as Go's `Format(time.RFC3339Nano)` in UTC.
pub fn format_rfc3339_nanos(secs: i64, nanos: u32) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let year = if y < 0 { format!("-{:04}", -y) } else { format!("{y:04}") };
    let mut s = format!("{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// The snapshot name's time part: Go's `20060102T150405Z0700` in UTC.
pub(crate) fn format_compact_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Parses a duration as Prometheus' API does: float seconds, or the
/// PromQL syntax (`1h30m`, `15s`, `500ms`). Returns nanoseconds (negative
/// allowed for floats, as Go's `time.Duration`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(f) = go_parse_float(s) {
        let ns = f * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok(ns as i64);
    }
    prom_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// Prometheus' `model.ParseDuration`: units y w d h m s ms, each at most
/// once and from largest to smallest; `0` alone is allowed.
fn prom_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000_000_000),
        ("w", 7 * 86_400_000_000_000),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let v: u64 = s.get(start..i)?.parse().ok()?;
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        let unit = s.get(ustart..i)?;
        let pos = UNITS.iter().position(|(u, _)| *u == unit)?;
        if pos < next_unit {
            return None;
        }
        next_unit = pos + 1;
        let mult = UNITS[pos].1;
        total = total.checked_add(v.checked_mul(mult)?)?;
        if total > i64::MAX as u64 {
            return None;
        }
    }
    Some(total as i64)
}

const EMPTY_MATCHERS: &str = "match[] must contain at least one non-empty matcher";

/// Parses `match[]` selectors into matcher sets; every set must contain a
/// matcher that does not match the empty string.
pub fn parse_matchers(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, String> {
    let mut sets = Vec::new();
    for s in selectors {
        let groups = tidemark_promql::parse_metric_selector(s).map_err(|e| {
            // Prometheus' selector parser leaves this check to the API,
            // which words it its own way.
            let msg = e.to_string();
            if msg.ends_with("vector selector must contain at least one non-empty matcher") {
                EMPTY_MATCHERS.to_string()
            } else {
                msg
            }
        })?;
        sets.extend(groups);
    }
    if sets.iter().any(|set| set.iter().all(|m| m.matches_empty())) {
        return Err(EMPTY_MATCHERS.into());
    }
    Ok(sets)
}

/// Undoes Prometheus' `U__` value-encoding escape of a label name in a URL
/// path (`U__http_2e_method` → `http.method`, `__` → `_`); a name that is
/// not validly escaped is returned unchanged, as Prometheus does.
pub fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else { return name.to_string() };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let mut code = 0u32;
        let mut digits = 0;
        loop {
            match chars.next() {
                Some('_') if digits == 0 => {
                    out.push('_');
                    break;
                }
                Some('_') => match char::from_u32(code) {
                    Some(ch) => {
                        out.push(ch);
                        break;
                    }
                    None => return name.to_string(),
                },
                Some(h) if h.is_ascii_hexdigit() && digits < 6 => {
                    code = code * 16 + h.to_digit(16).unwrap_or(0);
                    digits += 1;
                }
                _ => return name.to_string(),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1700000000.1236"), Ok(1_700_000_000_124));
        assert_eq!(parse_time("-1.5"), Ok(-1_500));
        assert_eq!(parse_time("1e9"), Ok(1_000_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.123456789Z"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-15T00:13:20.5+02:00"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T20:13:20-02:00"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1969-12-31T23:59:59.999Z"), Ok(-1));
        for bad in [
            "",
            "abc",
            "NaN",
            "Inf",
            "2023-02-29T00:00:00Z",
            "2023-11-14 22:13:20Z",
            "2023-11-14T22:13:20",
            "0x10",
            "1e300",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time(&format_rfc3339(MIN_TIME)), Ok(MIN_TIME));
        assert_eq!(parse_time(&format_rfc3339_nanos(MAX_TIME.div_euclid(1000), 999_999_999)), Ok(MAX_TIME));
    }

    #[test]
    fn formats_rfc3339_like_go() {
        assert_eq!(format_rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_compact_utc(1_700_000_000_999), "20231114T221320Z");
        for days in [-800_000i64, -1, 0, 59, 365 * 400, 3_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15s"), Ok(15_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1h30m500ms"), Ok(5_400_500_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("2.5"), Ok(2_500_000_000));
        assert_eq!(parse_duration("-1"), Ok(-1_000_000_000));
        assert_eq!(parse_duration("1e9"), Ok(1_000_000_000_000_000_000));
        for bad in ["", "s", "1x", "30s1m", "1m1m", "1.5m", "-1m"] {
            assert_eq!(parse_duration(bad), Err(format!("cannot parse {bad:?} to a valid duration")), "{bad}");
        }
        assert!(parse_duration("1e20").unwrap_err().ends_with("It overflows int64"));
        assert!(parse_duration("300000y").is_err());
    }

    #[test]
    fn forms_decode_like_go() {
        let p = Params::from_query("query=up%7Bjob%3D%22a%22%7D&match[]=a&match%5B%5D=b+c&x=%zz&&empty=");
        assert_eq!(p.get("query"), Some("up{job=\"a\"}"));
        assert_eq!(p.all("match[]"), vec!["a", "b c"]);
        assert_eq!(p.get("empty"), None);
        assert_eq!(p.error.as_deref(), Some("invalid URL escape \"%zz\""));
        assert_eq!(go_atoi("12"), Ok(12));
        assert_eq!(go_atoi("x").unwrap_err(), "strconv.Atoi: parsing \"x\": invalid syntax");
        assert_eq!(
            go_atoi("99999999999999999999").unwrap_err(),
            "strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn label_names_unescape() {
        assert_eq!(unescape_label_name("U__http_2e_method"), "http.method");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_label_name("job"), "job");
    }
}
