//! The prompts the evaluation's texts answer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Error, Result};

/// One prompt of the prompts file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EvalPrompt {
    pub kind: String,
    pub prompt: String,
}

/// The prompts shipped with the crate (varied kinds: explanations, stories, how-tos, lists,
/// opinions, letters, descriptions, comparisons).
pub fn default_prompts_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/eval-prompts.jsonl"
    ))
}

/// Reads a JSONL file of `{"kind", "prompt"}` objects.
pub fn read_prompts(path: &Path) -> Result<Vec<EvalPrompt>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: EvalPrompt = serde_json::from_str(line).map_err(|e| Error::Prompts {
            path: path.to_path_buf(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(Error::Prompts {
            path: path.to_path_buf(),
            reason: "no prompts".into(),
        });
    }
    Ok(out)
}
