//! A Hugging Face checkpoint directory (`config.json`, `*.safetensors`, `tokenizer.json`) of the
//! llama or Qwen2 family, run with candle-transformers' models on the CPU in f32.
//!
//! This is how a suspect published in the Hugging Face format is audited without converting it
//! to GGUF: reading mode needs logits at every position ([`Checkpoint::forward_all`]), closed
//! mode generates through the one generation loop ([`crate::generate::LogitsSource`]).
//!
//! candle-transformers' llama returns the logits of the last position only, so its reading pass
//! feeds the text one token at a time through its KV cache (one forward per position); Qwen2's
//! base model returns every position's hidden state, so its reading pass is one forward.

mod config;
mod source;
mod weights;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{Linear, Module};
use candle_transformers::models::{llama, qwen2};
use watermark_core::TextTokenizer;

use crate::error::{Error, Result};
pub use config::{CheckpointConfig, Family};
pub use source::CheckpointSession;

/// The configuration file of a checkpoint.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file of a checkpoint.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Largest `config.json` read (real ones are a few kilobytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The network of one family, loaded.
#[derive(Debug, Clone)]
enum Network {
    /// The llama model, with a fresh (empty) cache holding its RoPE tables, cloned per sequence.
    Llama {
        model: llama::Llama,
        fresh_cache: llama::Cache,
    },
    /// The Qwen2 base model (its KV cache lives inside; cloned per sequence, the weights are
    /// shared) and the output projection.
    Qwen2 {
        model: qwen2::Model,
        lm_head: Linear,
    },
}

/// A checkpoint loaded for reading and generation.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
    config: CheckpointConfig,
    network: Network,
}

impl Checkpoint {
    /// Loads the checkpoint in `dir`: checks `config.json` against limits, every tensor's
    /// presence, dtype and shape, then loads the weights as f32. Errors are one line, naming
    /// the directory. Returns the model with its `tokenizer.json`, loaded (its fingerprint is
    /// that file's), for the caller to compare with the profile's.
    pub fn load(dir: &Path) -> Result<(Self, TextTokenizer)> {
        let fail = |reason: String| Error::checkpoint(dir, reason);
        if !dir.is_dir() {
            return Err(fail("not a checkpoint directory".into()));
        }
        let config = config::parse(&read_config(dir)?).map_err(fail)?;
        let tokenizer = Self::tokenizer(dir)?;
        if tokenizer.vocab_size() as usize > config.vocab_size {
            return Err(fail(format!(
                "the tokenizer has {} tokens, more than vocab_size {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let files = weights::files(dir).map_err(fail)?;
        let vb = weights::open(&files, &config.expected_tensors()).map_err(fail)?;
        let network =
            Network::load(&config, vb).map_err(|e| fail(crate::error::candle_message(&e)))?;
        let checkpoint = Self {
            dir: dir.to_path_buf(),
            config,
            network,
        };
        Ok((checkpoint, tokenizer))
    }

    /// The checkpoint's `tokenizer.json` alone, without the weights: enough to refuse a suspect
    /// whose tokenizer is not the profile's before loading anything else.
    pub fn tokenizer(dir: &Path) -> Result<TextTokenizer> {
        let fail = |reason: String| Error::checkpoint(dir, reason);
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        if !tokenizer_path.is_file() {
            return Err(fail(format!("no {TOKENIZER_FILE}")));
        }
        TextTokenizer::from_file(&tokenizer_path)
            .map_err(|e| fail(format!("{TOKENIZER_FILE}: {e}")))
    }

    /// The hyper-parameters read from `config.json`.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Logits `(T, vocab)` f32 at every position of one token sequence: row `i` predicts token
    /// `i + 1` from `tokens[..=i]` (reading mode). No BOS is added.
    pub fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        self.check_tokens(tokens)?;
        match &self.network {
            Network::Llama { model, fresh_cache } => {
                let mut cache = fresh_cache.clone();
                let rows = tokens
                    .iter()
                    .enumerate()
                    .map(|(pos, &token)| llama_step(model, &mut cache, &[token], pos))
                    .collect::<Result<Vec<_>>>()?;
                finite(Tensor::cat(&rows, 0)?)
            }
            Network::Qwen2 { model, lm_head } => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                let hidden = model.clone().forward(&input, 0, None)?;
                finite(lm_head.forward(&hidden.squeeze(0)?)?.to_dtype(DType::F32)?)
            }
        }
    }

    /// Refuses an empty sequence, one past the context, or a token outside the vocabulary.
    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::Input("empty token sequence".into()));
        }
        if tokens.len() > self.config.max_positions {
            return Err(Error::Input(format!(
                "{} tokens, more than the checkpoint's context of {}",
                tokens.len(),
                self.config.max_positions
            )));
        }
        if let Some(&bad) = tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab_size)
        {
            return Err(Error::Input(format!(
                "token id {bad} outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        Ok(())
    }
}

impl Network {
    /// Builds the family's candle model. Every tensor was checked beforehand, so
    /// candle-transformers' llama loader (which panics on a missing tensor) cannot fail here.
    fn load(
        config: &CheckpointConfig,
        vb: candle_nn::VarBuilder<'static>,
    ) -> candle_core::Result<Self> {
        match &config.family {
            Family::Llama(cfg) => Ok(Network::Llama {
                model: llama::Llama::load(vb, cfg)?,
                fresh_cache: llama::Cache::new(true, DType::F32, cfg, &Device::Cpu)?,
            }),
            Family::Qwen2(cfg) => {
                let embedding = vb
                    .pp("model.embed_tokens")
                    .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
                let lm_head = if cfg.tie_word_embeddings {
                    Linear::new(embedding, None)
                } else {
                    Linear::new(
                        vb.pp("lm_head")
                            .get((cfg.vocab_size, cfg.hidden_size), "weight")?,
                        None,
                    )
                };
                Ok(Network::Qwen2 {
                    model: qwen2::Model::new(cfg, vb)?,
                    lm_head,
                })
            }
        }
    }
}

/// One llama forward of `tokens` at position `pos` through `cache`: the logits `(1, vocab)`
/// after the last of them.
fn llama_step(
    model: &llama::Llama,
    cache: &mut llama::Cache,
    tokens: &[u32],
    pos: usize,
) -> Result<Tensor> {
    let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
    Ok(model.forward(&input, pos, cache)?.to_dtype(DType::F32)?)
}

/// The last row of a `(1, T, vocab)` or `(T, vocab)` logits tensor, as a vector; refused
/// when not finite.
fn last_row(logits: &Tensor) -> Result<Vec<f32>> {
    let rows = logits.flatten_to(logits.rank().saturating_sub(2))?;
    let (t, _) = rows.dims2()?;
    Ok(finite(rows.i(t - 1)?)?.to_vec1::<f32>()?)
}

/// `logits`, unless one is NaN or infinite (broken weights): the same refusal as the GGUF
/// model's, since a NaN row would silently become a prediction of token 0.
fn finite(logits: Tensor) -> Result<Tensor> {
    if logits.sum_all()?.to_scalar::<f32>()?.is_finite() {
        Ok(logits)
    } else {
        Err(Error::Input(
            "the checkpoint computed non-finite logits (NaN or infinity): its weights or \
             hyper-parameters are broken"
                .into(),
        ))
    }
}

/// `config.json`, read with a size bound.
fn read_config(dir: &Path) -> Result<Vec<u8>> {
    let path = dir.join(CONFIG_FILE);
    let meta = std::fs::metadata(&path)
        .map_err(|_| Error::checkpoint(dir, format!("no {CONFIG_FILE}")))?;
    if !meta.is_file() {
        return Err(Error::checkpoint(
            dir,
            format!("{CONFIG_FILE} is not a regular file"),
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(Error::checkpoint(
            dir,
            format!(
                "{CONFIG_FILE} is {} bytes (at most {MAX_CONFIG_BYTES})",
                meta.len()
            ),
        ));
    }
    std::fs::read(&path).map_err(|e| Error::io(path, e))
}
