//! A streaming reader of the real capture in `../shared/data`: zstd-compressed
//! OpenMetrics text, one `name{labels} value timestamp` line per sample,
//! sorted by series then time.
//!
//! Values are parsed with Rust's correctly rounded float parser (the text
//! holds Go's shortest round-trip form, so this is exact); timestamps are
//! parsed as decimal strings straight to integer milliseconds, never
//! through `f64`.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use tidemark_storage::{Labels, Sample, METRIC_NAME};

/// Environment variable that overrides [`default_capture_path`].
pub const CAPTURE_ENV: &str = "TIDEMARK_CAPTURE";

/// Where the capture lives: `$TIDEMARK_CAPTURE` if set, else
/// `shared/data/node-and-prometheus-5s.om.zst` next to the workspace (or,
/// for a workspace checked out deeper, e.g. as a git worktree, next to the
/// nearest ancestor directory that has it).
pub fn default_capture_path() -> PathBuf {
    if let Some(p) = std::env::var_os(CAPTURE_ENV) {
        return PathBuf::from(p);
    }
    let default =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/node-and-prometheus-5s.om.zst"));
    if default.exists() {
        return default;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared/data/node-and-prometheus-5s.om.zst"))
        .find(|p| p.exists())
        .unwrap_or(default)
}

/// Loads every series of a zstd-compressed OpenMetrics capture, in the order
/// they first appear. Samples of a series keep file order (time order in
/// the capture). Malformed lines are an `InvalidData` error naming the line.
pub fn load_capture(path: &Path) -> io::Result<Vec<(Labels, Vec<Sample>)>> {
    let file = std::fs::File::open(path)?;
    let reader = BufReader::with_capacity(1 << 16, zstd::stream::read::Decoder::new(file)?);
    parse_openmetrics(reader)
}

/// Parses uncompressed OpenMetrics text (see [`load_capture`]).
pub fn parse_openmetrics(reader: impl BufRead) -> io::Result<Vec<(Labels, Vec<Sample>)>> {
    let mut series: Vec<(Labels, Vec<Sample>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // The series key (text before the value) of the previous line, to skip
    // the hash lookup on the common run of one series' samples.
    let mut last_key = String::new();
    let mut last_idx = usize::MAX;
    for (lineno, line) in reader.lines().enumerate() {
        let line = line?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {what}", lineno + 1));
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value, ts) = split_sample_line(&line).ok_or_else(|| bad("malformed sample line"))?;
        let v = parse_value(value).ok_or_else(|| bad("bad value"))?;
        let t = parse_timestamp_ms(ts).ok_or_else(|| bad("bad timestamp"))?;
        let idx = if last_idx != usize::MAX && key == last_key {
            last_idx
        } else {
            let idx = match index.get(key) {
                Some(&i) => i,
                None => {
                    let labels = parse_series(key).ok_or_else(|| bad("bad series"))?;
                    series.push((labels, Vec::new()));
                    index.insert(key.to_string(), series.len() - 1);
                    series.len() - 1
                }
            };
            last_key.clear();
            last_key.push_str(key);
            last_idx = idx;
            idx
        };
        series[idx].1.push(Sample::new(t, v));
    }
    Ok(series)
}

/// Splits `name{labels} value timestamp` into its three parts. The label
/// block may contain spaces inside quoted values.
fn split_sample_line(line: &str) -> Option<(&str, &str, &str)> {
    let key_end = match line.find('{') {
        Some(open) if line[..open].find(' ').is_none() => open + closing_brace(&line[open..])? + 1,
        _ => line.find(' ')?,
    };
    let key = &line[..key_end];
    let mut rest = line[key_end..].split_ascii_whitespace();
    let value = rest.next()?;
    let ts = rest.next()?;
    if rest.next().is_some() {
        return None;
    }
    Some((key, value, ts))
}

/// Offset of the `}` closing a label block that starts at `s[0] == '{'`,
/// skipping quoted strings with escapes.
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
        } else if c == '}' {
            return Some(i);
        }
    }
    None
}

/// Parses `name{a="x",b="y\"z"}` (or a bare name) into labels.
fn parse_series(key: &str) -> Option<Labels> {
    let (name, block) = match key.find('{') {
        Some(open) => (&key[..open], &key[open + 1..key.len() - 1]),
        None => (key, ""),
    };
    let mut pairs: Vec<(String, String)> = vec![(METRIC_NAME.to_string(), name.to_string())];
    let mut rest = block;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let lname = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        pairs.push((lname, value));
        rest = &rest[end + 1..];
    }
    Labels::new(pairs).ok()
}

/// Parses a sample value: a float, `NaN`, `+Inf`/`Inf`, `-Inf`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Parses a timestamp in seconds with up to three decimals into exact
/// milliseconds (`"1795257283.731"` → `1795257283731`).
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty()
        || frac.len() > 3
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ms: i64 = int.parse::<i64>().ok()?.checked_mul(1000)?;
    let mut scale = 100;
    for b in frac.bytes() {
        ms = ms.checked_add((b - b'0') as i64 * scale)?;
        scale /= 10;
    }
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_exact_milliseconds() {
        assert_eq!(parse_timestamp_ms("1795257283.731"), Some(1_795_257_283_731));
        assert_eq!(parse_timestamp_ms("1795257283.7"), Some(1_795_257_283_700));
        assert_eq!(parse_timestamp_ms("1795257283"), Some(1_795_257_283_000));
        assert_eq!(parse_timestamp_ms("-1.5"), Some(-1500));
        assert_eq!(parse_timestamp_ms("1.2345"), None);
        assert_eq!(parse_timestamp_ms("1e9"), None);
    }

    #[test]
    fn lines_with_escapes_and_special_values_parse() {
        let text = "# TYPE x unknown\n\
            x{a=\"q\\\"uo te\",b=\"back\\\\slash\\n\"} NaN 1.001\n\
            x{a=\"q\\\"uo te\",b=\"back\\\\slash\\n\"} +Inf 2\n\
            y -Inf 3.5\n\
            y 0.25 4\n\
            # EOF\n";
        let s = parse_openmetrics(text.as_bytes()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0.get("a"), Some("q\"uo te"));
        assert_eq!(s[0].0.get("b"), Some("back\\slash\n"));
        assert_eq!(s[0].0.metric_name(), Some("x"));
        assert!(s[0].1[0].v.is_nan());
        assert_eq!(s[0].1[0].t, 1001);
        assert_eq!(s[0].1[1], Sample::new(2000, f64::INFINITY));
        assert_eq!(s[1].1, vec![Sample::new(3500, f64::NEG_INFINITY), Sample::new(4000, 0.25)]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_openmetrics("x{a=\"1\" 1 2\n".as_bytes()).is_err());
        assert!(parse_openmetrics("x 1\n".as_bytes()).is_err());
        assert!(parse_openmetrics("x abc 1\n".as_bytes()).is_err());
    }
}

#[cfg(test)]
mod real_capture {
    use super::*;

    /// The counts documented in `shared/data/README.md` (the suite runs in
    /// release, where loading takes well under a second).
    #[test]
    fn real_capture_has_the_documented_counts() {
        let series = load_capture(&default_capture_path()).expect("capture present");
        assert_eq!(series.len(), 941);
        assert_eq!(series.iter().map(|s| s.1.len()).sum::<usize>(), 1_297_784);
        for (labels, samples) in &series {
            assert!(samples.windows(2).all(|w| w[0].t < w[1].t), "{labels} not strictly increasing");
        }
    }
}
