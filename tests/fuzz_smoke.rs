//! The stable-toolchain share of the fuzzing (issue 11): each parser an audited party can
//! reach gets a few thousand mutated inputs on every `make test`, and must answer with a value
//! or an error, never a panic. Mutations follow what broke parsers before: a length or count
//! field set to 0, 2^31, 2^32 - 1 or 2^64 - 1, flipped bytes, truncation. The long, coverage-
//! guided runs are `make fuzz` (cargo fuzz on nightly, targets in fuzz/).

use std::io::Cursor;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use proptest::prelude::*;
use tracemark_model::gguf;
use watermark_core::{Profile, SecretKey};

/// A small, valid GGUF v3 file: llama-like metadata (a string, integers, a float, an array of
/// strings) and two F32 tensors.
fn seed_gguf() -> Vec<u8> {
    let mut b = Vec::new();
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    };
    b.extend(0x4655_4747u32.to_le_bytes());
    b.extend(3u32.to_le_bytes());
    b.extend(2u64.to_le_bytes()); // tensors
    b.extend(5u64.to_le_bytes()); // metadata entries
    string(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    string(&mut b, "llama");
    string(&mut b, "llama.block_count");
    b.extend(4u32.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    string(&mut b, "llama.attention.layer_norm_rms_epsilon");
    b.extend(6u32.to_le_bytes());
    b.extend(1e-5f32.to_le_bytes());
    string(&mut b, "general.alignment");
    b.extend(4u32.to_le_bytes());
    b.extend(32u32.to_le_bytes());
    string(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    for t in ["a", "bc", "<|im_end|>"] {
        string(&mut b, t);
    }
    for (name, dims) in [
        ("token_embd.weight", [8u64, 3]),
        ("output_norm.weight", [8, 1]),
    ] {
        string(&mut b, name);
        b.extend(2u32.to_le_bytes());
        for d in dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(0u32.to_le_bytes());
        b.extend(if name.starts_with("token") { 0u64 } else { 96 }.to_le_bytes());
    }
    b.resize(b.len().div_ceil(32) * 32 + 96 + 32, 0);
    b
}

/// One mutation of `bytes`, chosen by `choice` at position `at`.
fn mutate(mut bytes: Vec<u8>, choice: u8, at: usize, value: u64) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let at = at % bytes.len();
    let extremes = [0u64, 1, 1 << 31, u64::from(u32::MAX), u64::MAX, value];
    match choice % 4 {
        0 => bytes[at] ^= (value as u8) | 1,
        1 => {
            let v = extremes[(value % 6) as usize].to_le_bytes();
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&v[..end - at]);
        }
        2 => {
            let v = extremes[(value % 6) as usize].to_le_bytes();
            let end = (at + 8).min(bytes.len());
            bytes[at..end].copy_from_slice(&v[..end - at]);
        }
        _ => bytes.truncate(at),
    }
    bytes
}

fn parse_gguf(bytes: &[u8]) {
    if gguf::check(&mut Cursor::new(bytes), bytes.len() as u64).is_ok() {
        // What the check lets through, candle must parse without panicking.
        let _ = Content::read(&mut Cursor::new(bytes));
    }
}

#[test]
fn the_seed_gguf_is_valid() {
    let bytes = seed_gguf();
    gguf::check(&mut Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let content = Content::read(&mut Cursor::new(&bytes)).unwrap();
    assert_eq!(content.tensor_infos.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gguf_headers_never_panic(
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u64>()), 1..4)
    ) {
        let mut bytes = seed_gguf();
        for (choice, at, value) in edits {
            bytes = mutate(bytes, choice, at, value);
        }
        parse_gguf(&bytes);
    }

    #[test]
    fn random_bytes_are_not_a_gguf(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_gguf(&bytes);
    }

    #[test]
    fn key_files_never_panic_nor_echo(
        choice in any::<u8>(), at in any::<usize>(), value in any::<u64>()
    ) {
        let seed = format!("tracemark-key-v1\n{}\n", "3c".repeat(32)).into_bytes();
        let bytes = mutate(seed, choice, at, value);
        if let Err(e) = SecretKey::parse(&bytes, Path::new("k.key")) {
            let message = e.to_string();
            prop_assert!(!message.contains("3c3c3c3c"), "{}", message);
        }
        let _ = SecretKey::looks_like_key_file(&bytes);
    }

    #[test]
    fn profiles_never_panic(
        json in any::<bool>(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u64>()), 1..4)
    ) {
        let (mut bytes, name) = match json {
            true => (SEED_PROFILE_JSON.as_bytes().to_vec(), "p.json"),
            false => (SEED_PROFILE_TOML.as_bytes().to_vec(), "p.toml"),
        };
        for (choice, at, value) in edits {
            bytes = mutate(bytes, choice, at, value);
        }
        if let Ok(profile) = Profile::parse(&bytes, Path::new(name)) {
            // What parses is usable: its scheme was validated, and a green list either builds
            // or is refused (the key file does not exist here).
            prop_assert!(profile.scheme.validate().is_ok());
            prop_assert!(profile.green_list().is_err());
        }
    }
}

/// A valid profile of each format, for the mutations above.
const SEED_PROFILE_TOML: &str = "spec = \"tracemark-green-v1\"\nkey_file = \"k.key\"\n\
    key_fingerprint = \"0123456789abcdef\"\nvocab_size = 49152\nfpr = 1e-6\n\
    [scheme]\nseeding = \"self-seeded\"\nwidth = 4\ngamma = 0.25\ndelta = 2.0\n";
const SEED_PROFILE_JSON: &str = r#"{"spec": "tracemark-green-v1", "key_file": "k.key",
    "key_fingerprint": "0123456789abcdef", "vocab_size": 49152, "fpr": 1e-6,
    "scheme": {"seeding": "previous", "width": 2, "gamma": 0.25, "delta": 2.0}}"#;

#[test]
fn the_seed_profiles_are_valid() {
    for (text, name) in [(SEED_PROFILE_TOML, "p.toml"), (SEED_PROFILE_JSON, "p.json")] {
        let profile = Profile::parse(text.as_bytes(), Path::new(name)).unwrap();
        assert_eq!(profile.vocab_size, 49152, "{name}");
    }
}
