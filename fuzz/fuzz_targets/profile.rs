//! Profiles (TOML and JSON): arbitrary bytes give a profile or an error, never a panic; what
//! parses has a valid scheme.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format, the rest is the file.
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    let name = if format & 1 == 0 { "p.toml" } else { "p.json" };
    if let Ok(profile) = watermark_core::Profile::parse(text, std::path::Path::new(name)) {
        assert!(profile.scheme.validate().is_ok());
    }
});
