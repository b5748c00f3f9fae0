//! Hostile model files (issue 11): in an audit the suspect supplies the GGUF, so each header
//! field it controls is set to what once aborted the process or yielded NaN logits, and loading
//! must end in one clear error instead. The files are the default model with one field patched.

// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{model_path, patched, value_offset};
use tracemark_model::llama::{Llama, LoadOptions};
use tracemark_model::{Error, GgufTokenizer};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tm-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The load's error message; a success is a failure of the test.
fn refusal(path: &Path) -> String {
    match Llama::load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => {
            assert!(matches!(e, Error::Gguf { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn header_fields_out_of_bounds_are_refused_before_allocating() {
    let Some(model) = model_path() else { return };
    let dir = temp_dir("fields");
    let cases: [(&str, [u8; 4], &str); 7] = [
        ("llama.context_length", u32::MAX.to_le_bytes(), "outside"),
        ("llama.block_count", u32::MAX.to_le_bytes(), "outside"),
        ("llama.block_count", 0u32.to_le_bytes(), "outside"),
        ("llama.block_count", 31u32.to_le_bytes(), "no tensor"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            f32::NAN.to_le_bytes(),
            "(0, 1)",
        ),
        (
            "llama.rope.freq_base",
            (-10_000f32).to_le_bytes(),
            "above 1",
        ),
        (
            "llama.attention.head_count",
            u32::MAX.to_le_bytes(),
            "outside",
        ),
    ];
    for (key, value, expected) in cases {
        let path = patched(&model, &dir, key, value);
        let message = refusal(&path);
        assert!(
            message.contains(key) || message.contains(expected),
            "{key}: {message}"
        );
        assert!(message.contains(expected), "{key}: {message}");
        assert!(!message.contains('\n'), "{key}: one line: {message}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_zero_alignment_or_a_truncated_file_is_a_gguf_error_not_a_panic() {
    let Some(model) = model_path() else { return };
    let dir = temp_dir("layout");
    let mut bytes = std::fs::read(&model).unwrap();
    // The model has no `general.alignment`; rename another u32 key to it and set it to 0.
    let (at, kind) = value_offset(&bytes, "llama.block_count");
    assert_eq!(kind, 4);
    let key_at = at - 4 - "llama.block_count".len();
    bytes[key_at..key_at + 17].copy_from_slice(b"general.alignment");
    bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let zero = dir.join("align0.gguf");
    std::fs::write(&zero, &bytes).unwrap();
    assert!(refusal(&zero).contains("alignment"));
    assert!(GgufTokenizer::from_file(&zero).is_err());

    let whole = std::fs::read(&model).unwrap();
    for keep in [3, 1000, whole.len() / 2, whole.len() - 1] {
        let cut = dir.join("cut.gguf");
        std::fs::write(&cut, &whole[..keep]).unwrap();
        let message = refusal(&cut);
        assert!(!message.is_empty(), "cut at {keep}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn devices_and_directories_are_not_read_as_models() {
    for path in ["/dev/zero", "/tmp"] {
        let path = Path::new(path);
        if !path.exists() {
            continue;
        }
        assert!(refusal(path).contains("not a regular file"), "{path:?}");
        assert!(GgufTokenizer::from_file(path).is_err());
    }
}
