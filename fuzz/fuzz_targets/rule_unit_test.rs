//! Arbitrary text as a `promtool test rules` file, and arbitrary series
//! notation (`1+2x10 _ stale`), must parse or give a typed error, never
//! panic, hang or expand to an unbounded number of values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = tidemark_rules::unittest::parse_test_file(text);
    let _ = tidemark_rules::unittest::expand_values(text);
    let _ = tidemark_rules::unittest::parse_metric(text);
});
