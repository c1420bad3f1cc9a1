//! Parsing arbitrary bytes as OpenMetrics text (what `tidemark import
//! openmetrics` reads) must never panic; every sample line the parser
//! accepts, written back in canonical form, parses to the same sample
//! (its timestamp possibly 1 ms closer to zero: seconds × 1000 is truncated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_import::openmetrics::parser::{parse_all, Entry, Parser};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(entries) = parse_all(bytes) else { return };
    for e in entries {
        let Entry::Sample(s) = e else { continue };
        let labels: Vec<(String, String)> = s.labels().map(|(n, v)| (n.to_string(), v.into_owned())).collect();
        let mut line = s.name().to_string();
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
            line.push('{');
            line.push_str(&inner.join(","));
            line.push('}');
        }
        // `{:?}` prints the shortest string that reads back as the same f64.
        let value = if s.value.is_nan() { "NaN".to_string() } else { format!("{:?}", s.value) };
        line.push(' ');
        line.push_str(&value);
        if let Some(t) = s.timestamp_ms {
            // Sign and magnitude: `-1.269` is -1269 ms.
            let (sign, a) = (if t < 0 { "-" } else { "" }, t.unsigned_abs());
            line.push_str(&format!(" {sign}{}.{:03}", a / 1000, a % 1000));
        }
        line.push('\n');
        let mut p = Parser::new();
        let again = match p.line(line.as_bytes()) {
            Ok(Some(Entry::Sample(a))) => a,
            other => panic!("canonical line {line:?} does not parse back: {other:?}"),
        };
        assert_eq!(again.name(), s.name());
        let labels_again: Vec<(String, String)> =
            again.labels().map(|(n, v)| (n.to_string(), v.into_owned())).collect();
        assert_eq!(labels_again, labels);
        assert!(again.value.to_bits() == s.value.to_bits() || (again.value.is_nan() && s.value.is_nan()));
        // Seconds × 1000 is truncated toward zero as Prometheus does, so
        // `s.mmm` written back may read 1 ms closer to zero.
        match (again.timestamp_ms, s.timestamp_ms) {
            (Some(a), Some(b)) => assert!(a == b || a == b - b.signum(), "{line:?}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{line:?}"),
        }
    }
});
