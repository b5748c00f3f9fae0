//! A profile's tokenizer.json, which the audited party may supply: loading must return a
//! tokenizer or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tokenizer) = watermark_core::TextTokenizer::from_bytes(data) {
        let _ = tokenizer.encode("The quick brown fox, 12345 times.");
    }
});
