//! Key files: parsing arbitrary bytes returns a key or an error, never panics, and a parse error
//! never quotes the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = watermark_core::SecretKey::parse(data, std::path::Path::new("k")) {
        let message = e.to_string();
        assert!(message.len() < 200, "{message}");
    }
});
