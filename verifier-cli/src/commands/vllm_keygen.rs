//! `tracemark vllm-keygen`: a key and profile for vLLM's native watermark
//! (`vllm-gumbel-philox-v1`), which `vllm serve --watermark-config` writes and `tracemark
//! detect` / `audit` verify.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use watermark_core::vllm::{
    ContextScope, VllmAlgorithm, VllmProfile, VllmSettings, DEFAULT_CONTEXT_WIDTH, VLLM_SCHEME,
};

/// Arguments of `tracemark vllm-keygen`.
#[derive(Debug, Args)]
pub struct VllmKeygenArgs {
    /// Directory for the key (vllm.key, mode 600) and the profile.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// vLLM's `algorithm`.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Gumbel)]
    pub algorithm: AlgorithmArg,
    /// vLLM's `alpha` for `dual_key_gumbel`, in [0, 1] (default: vLLM's, 0.1).
    #[arg(long, value_name = "A")]
    pub alpha: Option<f64>,
    /// vLLM's `context_width`.
    #[arg(long, value_name = "W", default_value_t = DEFAULT_CONTEXT_WIDTH)]
    pub context_width: usize,
    /// vLLM's `deduplicate_contexts`.
    #[arg(long, value_enum, default_value_t = ScopeArg::SingleTurn)]
    pub deduplicate_contexts: ScopeArg,
    /// The served model's tokenizer.json, for detecting text (not only token ids).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Write profile.json instead of profile.toml.
    #[arg(long)]
    pub json_profile: bool,
}

/// `--algorithm` values, as vLLM spells them.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AlgorithmArg {
    Gumbel,
    DualKeyGumbel,
}

impl From<AlgorithmArg> for VllmAlgorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Gumbel => VllmAlgorithm::Gumbel,
            AlgorithmArg::DualKeyGumbel => VllmAlgorithm::DualKeyGumbel,
        }
    }
}

/// `--deduplicate-contexts` values, as vLLM spells them.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ScopeArg {
    None,
    SingleTurn,
    All,
}

impl From<ScopeArg> for ContextScope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::None => ContextScope::None,
            ScopeArg::SingleTurn => ContextScope::SingleTurn,
            ScopeArg::All => ContextScope::All,
        }
    }
}

pub fn run(args: &VllmKeygenArgs, out: &mut impl Write) -> Result<()> {
    let settings = VllmSettings {
        algorithm: args.algorithm.into(),
        alpha: args.alpha,
        context_width: args.context_width,
        deduplicate_contexts: args.deduplicate_contexts.into(),
    };
    let (profile, path) = VllmProfile::create(
        &args.out,
        &settings,
        args.tokenizer.as_deref(),
        args.json_profile,
    )?;
    let key_path = profile.resolve(&profile.key_file);
    let scope = serde_json::to_value(profile.deduplicate_contexts)?;
    let scope = scope.as_str().unwrap_or("single_turn");
    writeln!(
        out,
        "key:         {} (secret: keep it private)",
        key_path.display()
    )?;
    writeln!(out, "profile:     {}", path.display())?;
    writeln!(out, "fingerprint: {}", profile.key_fingerprint)?;
    let (algorithm, extra) = match profile.algorithm {
        VllmAlgorithm::Gumbel => ("gumbel".to_string(), String::new()),
        VllmAlgorithm::DualKeyGumbel => {
            let alpha = profile.alpha.unwrap_or(watermark_core::vllm::DEFAULT_ALPHA);
            (
                format!("dual_key_gumbel (alpha {alpha})"),
                format!(", \\\"algorithm\\\": \\\"dual_key_gumbel\\\", \\\"alpha\\\": {alpha}"),
            )
        }
    };
    writeln!(
        out,
        "scheme:      {VLLM_SCHEME}, {algorithm}, context width {}, deduplicate_contexts {scope}",
        profile.context_width
    )?;
    if let Some(t) = &profile.tokenizer {
        writeln!(out, "tokenizer:   {}", t.fingerprint)?;
    }
    writeln!(
        out,
        "serve with:  vllm serve MODEL --watermark-config \"{{\\\"key\\\": $(cat {}){extra}, \\\"context_width\\\": {}, \\\"deduplicate_contexts\\\": \\\"{scope}\\\"}}\"",
        key_path.display(),
        profile.context_width,
    )?;
    Ok(())
}
