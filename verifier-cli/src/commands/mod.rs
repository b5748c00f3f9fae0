//! The subcommands, one module each: its arguments (clap), its long help and its `run`.

pub mod accounts;
pub mod audit;
pub mod commit;
pub mod detect;
pub mod generate;
pub mod keygen;
pub(crate) mod reading;
pub mod verify_commitment;
pub mod verify_report;
pub mod vllm_keygen;
pub mod vllm_scheme;

use anyhow::{anyhow, Result};
use watermark_core::{Error, ProfileSession, TextTokenizer};

/// The session's tokenizer for text input (`--tokenizer`, else the profile's, checked against
/// it), with the core's refusal reworded for the command line.
pub(crate) fn tokenizer(session: &ProfileSession) -> Result<&TextTokenizer> {
    session.tokenizer().map_err(|e| match e {
        Error::NoTokenizerPath => {
            anyhow!("the profile records no tokenizer path; pass --tokenizer FILE")
        }
        other => other.into(),
    })
}
