//! A suspect's GGUF file: the bounded header walk must never panic, and a header it accepts
//! must not make candle's parser panic or allocate past the file either.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cursor = Cursor::new(data);
    if tracemark_model::gguf::check(&mut cursor, data.len() as u64).is_ok() {
        let mut cursor = Cursor::new(data);
        let _ = candle_core::quantized::gguf_file::Content::read(&mut cursor);
    }
});
