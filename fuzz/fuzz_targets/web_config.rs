//! Arbitrary text as a `--web.config.file` (Prometheus' web configuration
//! YAML) must parse to a configuration or a typed error, never panic or
//! hang. File names it mentions resolve against an empty directory, so TLS
//! material is never found: what is exercised is the YAML and field
//! validation (versions, cipher suites, curves, client-auth policies,
//! headers, bcrypt hashes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark::web::WebConfig;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let dir = std::env::temp_dir().join("tidemark-fuzz-web-config-empty");
    let _ = WebConfig::parse(text, &dir);
});
