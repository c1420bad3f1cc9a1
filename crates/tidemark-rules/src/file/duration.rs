//! Prometheus' duration syntax (`1h30m`, `5m`, `0`, `1y2w3d4h5m6s7ms`), as
//! rule files write `interval`, `for`, `keep_firing_for` and `query_offset`.
//!
//! Units must appear at most once and from the largest down; a year is 365
//! days; a bare number is an error except `0`; the total must fit in a
//! signed 64-bit count of nanoseconds, as Go's `time.Duration` must.

use std::time::Duration;

/// A text that is not a Prometheus duration; the texts are Prometheus'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The empty string.
    #[error("empty duration string")]
    Empty,
    /// Anything the syntax does not allow.
    #[error("not a valid duration string: {}", super::error::go_quote(.0))]
    Invalid(String),
    /// More than about 292 years.
    #[error("duration out of range")]
    OutOfRange,
}

/// Units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration.
///
/// ```
/// use std::time::Duration;
/// use tidemark_rules::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
/// assert_eq!(parse_duration("90").unwrap_err().to_string(), "not a valid duration string: \"90\"");
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    match text {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(DurationError::Empty),
        _ => {}
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let bytes = text.as_bytes();
    let mut i = 0;
    // Index into UNITS of the next unit allowed: each may appear once, in order.
    let mut next_unit = 0;
    let mut total_ns: i64 = 0;
    let mut out_of_range = false;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let digits = &text[start..i];
        let rest = &text[i..];
        // `ms` before `m`: the longer unit wins where both match.
        let found = UNITS[next_unit..]
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))
            .map(|(k, u)| (next_unit + k, *u))
            .next();
        let Some((unit_index, (unit, ms))) = found else {
            return Err(invalid());
        };
        i += unit.len();
        next_unit = unit_index + 1;
        // A count too large for any unit still has to be syntactically
        // valid text first, so overflow is reported after the whole scan.
        let part = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(ms as i64))
            .and_then(|n| n.checked_mul(1_000_000))
            .and_then(|n| total_ns.checked_add(n));
        match part {
            Some(t) => total_ns = t,
            None => out_of_range = true,
        }
    }
    if out_of_range {
        return Err(DurationError::OutOfRange);
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_prometheus_accepts() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(secs("5m"), Ok(300_000));
        assert_eq!(secs("1h30m"), Ok(5_400_000));
        assert_eq!(secs("0s"), Ok(0));
        assert_eq!(secs("1d2h"), Ok(93_600_000));
        assert_eq!(secs("1y"), Ok(365 * 86_400_000));
        assert_eq!(secs("1w2d"), Ok(9 * 86_400_000));
        assert_eq!(secs("5m10s"), Ok(310_000));
        assert_eq!(secs("1ms"), Ok(1));
        assert_eq!(secs("1m1ms"), Ok(60_001));
        assert_eq!(secs("1s500ms"), Ok(1_500));
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        // Each checked against promtool 2.42 (`for:` of an alerting rule).
        for bad in ["90", "5M", "1.5h", "1h1h", "1m1h", "-5m", "5m ", " 5m", "h", "5", "1ms1s", "5mm", "+5m"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Invalid(bad.to_string())), "{bad}");
        }
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("9999999999999y"), Err(DurationError::OutOfRange));
        assert_eq!(parse_duration("99999999999999999999999s"), Err(DurationError::OutOfRange));
        assert_eq!(parse_duration("292y"), Ok(Duration::from_secs(292 * 365 * 86_400)));
        assert_eq!(parse_duration("293y"), Err(DurationError::OutOfRange));
    }
}
