//! Text in, token ids out, through a Hugging Face `tokenizer.json` (pure Rust: the `tokenizers`
//! crate without its default features, so no C, no network).

use std::path::Path;

use crate::error::{Error, Result};

/// A tokenizer and the fingerprint a profile binds.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    fingerprint: String,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("fingerprint", &self.fingerprint)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// Largest `tokenizer.json` read: the largest vocabularies in use take about 20 MB.
const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

impl TextTokenizer {
    /// Loads a `tokenizer.json`; the fingerprint is that of the file's bytes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_limited(path, MAX_TOKENIZER_BYTES, "tokenizer file")?;
        Self::from_bytes(&bytes).map_err(|reason| Error::Tokenizer {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json`.
    ///
    /// The file may come from the audited party. `tokenizers` panics on some malformed files
    /// (found by `make fuzz`: the 14 bytes `{"decoder":` with carriage returns), so the JSON
    /// is checked first, and a panic that still escapes the library becomes an error.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
            .map_err(|e| format!("not a JSON document: {e}"))?;
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes));
        let inner = match parsed {
            Ok(result) => result.map_err(|e| e.to_string())?,
            Err(_) => return Err("the tokenizer library could not read this file".into()),
        };
        Ok(TextTokenizer {
            inner,
            fingerprint: file_fingerprint(bytes),
        })
    }

    /// The fingerprint profiles record.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The vocabulary's size for green lists: one past the largest id (added tokens included), not the number of tokens: a
    /// tokenizer whose ids have gaps still gives every one of its ids a place.
    pub fn vocab_size(&self) -> u32 {
        let largest = self.inner.get_vocab(true).into_values().max();
        largest.map_or(0, |id| id.saturating_add(1))
    }

    /// Token ids of `text`, without special tokens added. Empty text is an error: there is
    /// nothing to score and a score of nothing would read as "not watermarked".
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.trim().is_empty() {
            return Err(Error::EmptyInput("the text is empty".into()));
        }
        self.encode_fragment(text)
    }

    /// Token ids of any piece of text, empty or blank included: a piece to map onto this
    /// vocabulary (a token another tokenizer predicted), not a document to score.
    pub fn encode_fragment(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: "<tokenizer>".into(),
                reason: e.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of token ids (for highlighting and round-trip checks).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| Error::Tokenizer {
            path: "<tokenizer>".into(),
            reason: e.to_string(),
        })
    }
}

/// Fingerprint of a file's exact bytes, as profiles record a tokenizer's: the first 16 hex
/// digits of its SHA-256.
pub fn file_fingerprint(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    #[test]
    fn malformed_tokenizer_files_are_errors_not_panics() {
        // The first is the crash `make fuzz` found in tokenizers' own parser.
        for bytes in [
            &b"\r{\r\"decoder\":\r"[..],
            b"",
            b"{\"model\": 3}",
            b"[1, 2",
        ] {
            assert!(
                super::TextTokenizer::from_bytes(bytes).is_err(),
                "{bytes:?}"
            );
        }
    }
}
