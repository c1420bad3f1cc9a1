//! Arbitrary bytes as the retention floor file (`deleted_before`) must
//! decode to an error or a timestamp, never panic; a file that decodes must
//! be exactly the encoding of its timestamp (the format has one spelling).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark_storage::floor;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(t) = floor::decode(bytes) {
        assert_eq!(&floor::encode(t)[..], bytes, "a floor file that decodes is its own timestamp's encoding");
    }
});
