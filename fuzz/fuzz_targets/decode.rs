//! Fuzzes the image decoder with arbitrary bytes: it must return a result or an error, never
//! panic, hang or exceed its memory limits.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = imgmeta_metadata::decode(data, &Default::default());
});
