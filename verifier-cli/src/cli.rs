//! The command line: `tracemark` and its subcommands. Each subcommand's arguments and long
//! help live beside its code, in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands::audit::{self, AuditArgs};
use crate::commands::detect::{self, DetectArgs};
use crate::commands::generate::GenerateArgs;
use crate::commands::keygen::KeygenArgs;
use crate::commands::vllm_keygen::VllmKeygenArgs;
use crate::commands::{commit, verify_commitment, verify_report};

const ABOUT: &str = "tracemark: a keyed green-list watermark for language-model text";

const LONG_ABOUT: &str =
    "tracemark watermarks language-model output by nudging sampling towards a \
secret, keyed \"green list\" of tokens, and detects that watermark in text or token ids with an \
exact statistical test. Create a key and profile with `tracemark keygen`, write watermarked \
answers with `tracemark generate`, and test documents with `tracemark detect`.";

/// The `tracemark` command line.
#[derive(Debug, Parser)]
#[command(name = "tracemark", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a secret key and a profile binding it to a scheme, a vocabulary and a tokenizer.
    Keygen(KeygenArgs),
    /// Test text or token ids for the watermark and print a verdict per document.
    #[command(long_about = detect::LONG_ABOUT)]
    Detect(DetectArgs),
    /// Test whether a suspect model was trained on our watermarked outputs (pooled test).
    #[command(long_about = audit::LONG_ABOUT)]
    Audit(AuditArgs),
    /// Answer prompts with the default model (SmolLM2-135M-Instruct), watermarked unless told not to.
    Generate(GenerateArgs),
    /// Create a key and profile for vLLM's own watermark (`vllm serve --watermark-config`).
    VllmKeygen(VllmKeygenArgs),
    /// Write a public commitment to the key, to publish before any audit.
    #[command(long_about = commit::LONG_ABOUT)]
    Commit(commit::CommitArgs),
    /// Check a revealed key and profile against a published commitment.
    #[command(long_about = verify_commitment::LONG_ABOUT)]
    VerifyCommitment(verify_commitment::VerifyCommitmentArgs),
    /// Recompute a `--report` directory from its inputs and confirm it, or name the first difference.
    #[command(long_about = verify_report::LONG_ABOUT)]
    VerifyReport(verify_report::VerifyReportArgs),
}
