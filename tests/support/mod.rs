//! What the model tests share: finding the default model and the human-text corpus, and the
//! rule for when their absence fails a test rather than skipping it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Whether a missing model or corpus fails the test: in CI, or when asked.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("TRACEMARK_REQUIRE_MODEL").is_ok_and(|v| v == "1")
}

/// The default model's path, or `None` (after a note) when it is missing and not required.
pub fn model_path() -> Option<PathBuf> {
    match tracemark_model::cache::locate_default_model() {
        Ok(path) => Some(path),
        Err(e) if required() => panic!("{e} (required: CI=true or TRACEMARK_REQUIRE_MODEL=1)"),
        Err(e) => {
            eprintln!("note: skipped, {e}");
            None
        }
    }
}

/// The human-written corpus: `TRACEMARK_CORPUS` (set by `make test` from
/// scripts/fetch-corpus.sh), else `../shared/corpora/human-dev.jsonl.gz` beside the checkout.
pub fn corpus_path() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TRACEMARK_CORPUS").map(PathBuf::from),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpora/human-dev.jsonl.gz"
        ))),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        let msg =
            "human-text corpus not found: run scripts/fetch-corpus.sh and set TRACEMARK_CORPUS";
        if required() {
            panic!("{msg}");
        }
        eprintln!("note: {msg}");
    }
    found
}

/// One corpus document.
pub struct HumanDoc {
    pub genre: String,
    pub text: String,
}

/// Every document of the corpus (gzip JSONL with `genre` and `text`).
pub fn read_corpus(path: &std::path::Path) -> Vec<HumanDoc> {
    let file = std::fs::File::open(path).expect("the corpus opens");
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| l.expect("the corpus decompresses"))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
            HumanDoc {
                genre: v["genre"].as_str().unwrap_or("unknown").to_string(),
                text: v["text"].as_str().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// Offset of the value of metadata `key` (after its type tag) and the type tag.
pub fn value_offset(bytes: &[u8], key: &str) -> (usize, u32) {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend(key.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("the model has no metadata key {key}"));
    let tag = at + needle.len();
    let kind = u32::from_le_bytes(bytes[tag..tag + 4].try_into().expect("four bytes"));
    (tag + 4, kind)
}

/// A copy of the model in `dir` with the 4-byte value of metadata `key` replaced (the GGUF is
/// otherwise untouched): hostile headers, or a model with a short context.
pub fn patched(model: &Path, dir: &Path, key: &str, value: [u8; 4]) -> PathBuf {
    let mut bytes = std::fs::read(model).expect("the model is readable");
    let (at, kind) = value_offset(&bytes, key);
    assert!(
        matches!(kind, 4..=6),
        "{key} has type {kind}, not a 4-byte scalar"
    );
    bytes[at..at + 4].copy_from_slice(&value);
    let path = dir.join(format!("{}.gguf", key.replace('.', "_")));
    std::fs::write(&path, bytes).expect("the copy is written");
    path
}
