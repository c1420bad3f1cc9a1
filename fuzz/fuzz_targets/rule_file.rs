//! Arbitrary text as a Prometheus rule file must load to rule groups or to
//! typed errors with positions, never panic or hang: YAML structure,
//! durations, names, PromQL expressions and label/annotation templates
//! (parsed, as `tidemark check rules` does) are all checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let _ = tidemark_rules::parse_rule_text("fuzz.yml", text, &tidemark::rules::check_template);
});
