//! The subcommands, one module each: its arguments (clap), its long help and its `run`.

pub mod audit;
pub mod detect;
pub mod generate;
pub mod keygen;

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use watermark_core::Error;
use watermark_core::Profile;
use watermark_core::TextTokenizer;

/// The tokenizer for text input: `--tokenizer`, else the profile's, checked against it.
pub(crate) fn load_tokenizer(profile: &Profile, given: Option<&Path>) -> Result<TextTokenizer> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let binding = profile.tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
            let path = binding.path.as_ref().ok_or_else(|| {
                anyhow!("the profile records no tokenizer path; pass --tokenizer FILE")
            })?;
            profile.resolve(path)
        }
    };
    let tokenizer = TextTokenizer::from_file(&path)?;
    profile
        .check_tokenizer(tokenizer.fingerprint())
        .with_context(|| path.display().to_string())?;
    Ok(tokenizer)
}
