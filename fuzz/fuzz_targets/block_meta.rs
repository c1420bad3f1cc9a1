//! Arbitrary bytes as `meta.json` must parse to an error or a valid meta,
//! never panic; a meta that parses must round-trip through its own encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_storage::block::BlockMeta;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(meta) = BlockMeta::from_json(bytes, "fuzz") {
        let again = BlockMeta::from_json(&meta.to_json(), "fuzz").expect("own encoding parses");
        assert_eq!(again, meta);
    }
});
