//! Decoding arbitrary bytes as a canonical label encoding must never panic,
//! and whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_storage::Labels;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(l) = Labels::from_encoded(bytes) {
        assert_eq!(l.encoded(), bytes);
        let _ = l.to_string();
        let rebuilt = Labels::new(l.iter().map(|x| (x.name, x.value))).expect("decoded labels are valid");
        assert_eq!(rebuilt, l);
    }
});
