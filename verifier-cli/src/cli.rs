//! The command line: argument definitions only (clap derive). The work is in the subcommand
//! modules, and all of it in watermark-core.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use watermark_core::{Scheme, Seeding};

const ABOUT: &str = "tracemark: a keyed green-list watermark for language-model text";

const LONG_ABOUT: &str =
    "tracemark watermarks language-model output by nudging sampling towards a \
secret, keyed \"green list\" of tokens, and detects that watermark in text or token ids with an \
exact statistical test. Create a key and profile with `tracemark keygen`, write watermarked \
answers with `tracemark generate`, and test documents with `tracemark detect`.";

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
`id` (any JSON value, echoed back); where a line has both ids and text (as `tracemark generate \
--json` writes), the ids are scored. Any other input is one UTF-8 plain-text document. Text needs \
a tokenizer: --tokenizer FILE, else the one the profile records; it must be the tokenizer the \
profile was made with.

A document is judged watermarked when its p-value is at most the false-positive rate or, with \
--windowed, when its best window's corrected p-value is.

Exit status:
  0  every document was scored (whatever the verdict)
  1  an error: bad input, profile, key or tokenizer
  2  command-line usage error
  3  with --fail-if-watermarked: some document was judged watermarked";

const AUDIT_LONG_ABOUT: &str = "Test whether a suspect model was trained on our watermarked \
outputs (distillation), with one pooled exact test over everything it wrote or predicted.

Closed model (--suspect OUTPUTS.jsonl): the suspect's answers, one JSON object per line with \
`prompt` (string) or `prompt_tokens` (ids), and `response` (string) or `response_tokens` (ids); \
`tracemark generate --json` lines (`completion`, `tokens`) are read too. With --filter OURS.jsonl \
(our own logged outputs, same format) the audit is supervised: only tokens whose window occurs in \
our outputs are scored.

Open model, reading mode (--suspect-model MODEL.gguf --texts OURS.jsonl): the suspect reads each \
of our texts (a text `prompt` is wrapped in the chat template) in one forward pass; its top-1 \
prediction at every position is scored under the window taken from our text. The suspect's \
tokenizer must be the profile's.

Every (window, token) tuple is scored once across the whole audit, and a token is not scored \
when its window occurs in what the suspect read before it (the prompt; in reading mode also the \
earlier text): without these rules the p-value of an innocent model is not valid. Inputs are \
streamed; memory grows with the distinct tuples scored (16 bytes each).

Exit status:
  0  the audit ran (whatever the verdict)
  1  an error: bad input, profile, key, tokenizer or model
  2  command-line usage error
  3  with --fail-if-watermarked: the suspect was judged to carry the watermark";

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
    /// Test whether a suspect model was trained on our watermarked outputs (pooled test).
    #[command(long_about = AUDIT_LONG_ABOUT)]
    Audit(AuditArgs),
    /// Answer prompts with the default model (SmolLM2-135M-Instruct), watermarked unless told not to.
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
    /// Hugging Face tokenizer.json to bind the profile to (default: the default model's,
    /// rebuilt from its GGUF file and saved beside the profile).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Vocabulary size, for a profile with no tokenizer (token-id detection only).
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

/// Arguments of `tracemark audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Profile written by `tracemark keygen`.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Closed model: the suspect's outputs, JSONL (`-` reads stdin).
    #[arg(long, value_name = "FILE", required_unless_present = "suspect_model",
          conflicts_with_all = ["suspect_model", "texts"])]
    pub suspect: Option<PathBuf>,
    /// Supervised audit: our own outputs (JSONL); only windows occurring in them are scored.
    #[arg(long, value_name = "FILE")]
    pub filter: Option<PathBuf>,
    /// Open model: the suspect's GGUF weights, read in reading mode over --texts.
    #[arg(long, value_name = "FILE", requires = "texts")]
    pub suspect_model: Option<PathBuf>,
    /// Open model: our watermarked texts (JSONL) for the suspect to read.
    #[arg(long, value_name = "FILE", requires = "suspect_model")]
    pub texts: Option<PathBuf>,
    /// tokenizer.json for text input (default: the one the profile records).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// False-positive rate of the verdict, in (0, 1) (default: the profile's).
    #[arg(long, value_name = "A")]
    pub fpr: Option<f64>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write cumulative log10 p against scored tokens to PATH.csv and draw it in PATH.png.
    #[arg(long, value_name = "PATH")]
    pub curve: Option<PathBuf>,
    /// CPU threads for the suspect model (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Exit with status 3 when the suspect is judged to carry the watermark.
    #[arg(long)]
    pub fail_if_watermarked: bool,
}

/// Arguments of `tracemark generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Profile written by `tracemark keygen`.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// The user prompt to answer (the model's chat template is applied).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["prompts", "synthetic"])]
    pub prompt: Option<String>,
    /// Answer every prompt of a JSONL file (objects with a `prompt` string and optionally an
    /// `id`): one JSON object out per prompt, batched, with progress on stderr.
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub prompts: Option<PathBuf>,
    /// GGUF model file (default: the cached SmolLM2-135M-Instruct; `make model` fetches it).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Prompts run through the model together.
    #[arg(long, value_name = "B", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Print one JSON object per answer: prompt, completion, and their token ids.
    #[arg(long)]
    pub json: bool,
    /// Generate token ids from the built-in synthetic model instead (no weights needed).
    #[arg(long)]
    pub synthetic: bool,
    /// Number of documents to generate (synthetic model).
    #[arg(long, value_name = "C", default_value_t = 1, requires = "synthetic")]
    pub count: u64,
    /// Most tokens to generate per answer.
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
    /// Random seed of the sampler; answer i samples with seed + i.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Generate without the watermark, for comparison.
    #[arg(long)]
    pub no_watermark: bool,
    /// Synthetic model's logit scale: larger means lower entropy and a weaker watermark.
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "synthetic")]
    pub sharpness: f32,
    /// CPU threads for the model (default: one per core; on busy machines 1 can be faster).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}
