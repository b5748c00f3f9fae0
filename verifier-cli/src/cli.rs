//! The command line: argument definitions only (clap derive). The work is in the subcommand
//! modules, and all of it in watermark-core.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use watermark_core::{Scheme, Seeding};

const ABOUT: &str = "tracemark: a keyed green-list watermark for language-model text";

const LONG_ABOUT: &str =
    "tracemark watermarks language-model output by nudging sampling towards a \
secret, keyed \"green list\" of tokens, and detects that watermark in text or token ids with an \
exact statistical test. Create a key and profile with `tracemark keygen`, test documents with \
`tracemark detect`, and try both end to end with `tracemark generate --synthetic`.";

/// Exit codes of `detect`; also stated in its long help below.
///
/// 0: every document was scored, whatever the verdict.
/// 1: an error (bad input, profile, key or tokenizer); one `error:` line on stderr.
/// 2: a command-line usage error (clap's own exit code).
/// 3: with `--fail-if-watermarked`, at least one document was judged watermarked.
pub const EXIT_WATERMARKED: u8 = 3;

const DETECT_LONG_ABOUT: &str = "Test documents for the watermark and report, for each, its \
green-token count, z-score, exact p-value and verdict at the false-positive rate.

Inputs: a file path, or `-` for stdin (no INPUT reads stdin). A file whose name ends in .jsonl \
holds one document per non-empty line: a JSON object with `text` (a string) or `tokens` (an \
array of token ids), optionally `prompt` (a string) or `prompt_tokens` (an array), and optionally \
`id` (any JSON value, echoed back). Any other input is one UTF-8 plain-text document. Text needs \
a tokenizer: --tokenizer FILE, else the one the profile records; it must be the tokenizer the \
profile was made with.

A document is judged watermarked when its p-value is at most the false-positive rate or, with \
--windowed, when its best window's corrected p-value is.

Exit status:
  0  every document was scored (whatever the verdict)
  1  an error: bad input, profile, key or tokenizer
  2  command-line usage error
  3  with --fail-if-watermarked: some document was judged watermarked";

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
    #[command(long_about = DETECT_LONG_ABOUT)]
    Detect(DetectArgs),
    /// Generate documents (JSONL token ids) from the synthetic model, for trying detect.
    Generate(GenerateArgs),
}

/// Green-list seeding, as spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SeedingArg {
    /// The tokens just before each candidate seed its green list.
    Previous,
    /// The window includes the candidate itself; survives more edits.
    SelfSeeded,
}

impl From<SeedingArg> for Seeding {
    fn from(s: SeedingArg) -> Self {
        match s {
            SeedingArg::Previous => Seeding::Previous,
            SeedingArg::SelfSeeded => Seeding::SelfSeeded,
        }
    }
}

impl From<Seeding> for SeedingArg {
    fn from(s: Seeding) -> Self {
        match s {
            Seeding::Previous => SeedingArg::Previous,
            Seeding::SelfSeeded => SeedingArg::SelfSeeded,
        }
    }
}

/// Arguments of `tracemark keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write tracemark.key and the profile into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Hugging Face tokenizer.json to bind the profile to (needed to detect text).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size of the model (taken from --tokenizer when that is given).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<u32>,
    /// How each token's green list is seeded.
    #[arg(long, value_enum, default_value_t = SeedingArg::from(Scheme::default().seeding))]
    pub seeding: SeedingArg,
    /// Tokens in the seeding window (1 to 8; 2 to 8 when self-seeded).
    #[arg(long, value_name = "H", default_value_t = Scheme::default().width)]
    pub width: usize,
    /// Fraction of the vocabulary that is green, in (0, 1).
    #[arg(long, value_name = "G", default_value_t = Scheme::default().gamma)]
    pub gamma: f64,
    /// Logit bias added to green tokens at generation: the watermark's strength.
    #[arg(long, value_name = "D", default_value_t = Scheme::default().delta)]
    pub delta: f32,
    /// Write the profile as profile.json instead of profile.toml.
    #[arg(long)]
    pub json_profile: bool,
}

/// Arguments of `tracemark detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Profile written by `tracemark keygen` (profile.toml or profile.json).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// tokenizer.json for text input (default: the one the profile records).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Files to test: plain text, or .jsonl with one document per line; `-` or none reads stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Read every input as JSONL, stdin included (default: only files ending in .jsonl).
    #[arg(long)]
    pub jsonl: bool,
    /// Print one JSON object per document (JSONL) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// False-positive rate of the verdict, in (0, 1) (default: the profile's).
    #[arg(long, value_name = "A")]
    pub fpr: Option<f64>,
    /// Also search windows of each document for a watermarked passage (corrected p-value).
    #[arg(long)]
    pub windowed: bool,
    /// Show each token: green as [+piece], red as piece, not scored as (piece).
    #[arg(long)]
    pub tokens: bool,
    /// Exit with status 3 when any document is judged watermarked.
    #[arg(long)]
    pub fail_if_watermarked: bool,
}

/// Arguments of `tracemark generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Profile written by `tracemark keygen`.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Generate from the built-in synthetic model (required until a real model is supported).
    #[arg(long)]
    pub synthetic: bool,
    /// Number of documents to generate.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub count: u64,
    /// Tokens to generate per document.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Sampling temperature; 0 picks the most likely token.
    #[arg(long, value_name = "T", default_value_t = 1.0)]
    pub temperature: f32,
    /// Sample only among the K most likely tokens.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens whose probabilities add up to P, in (0, 1].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Random seed of the model and sampler; document i samples with seed + i.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Generate without the watermark, for comparison.
    #[arg(long)]
    pub no_watermark: bool,
    /// Synthetic model's logit scale: larger means lower entropy and a weaker watermark.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub sharpness: f32,
}
