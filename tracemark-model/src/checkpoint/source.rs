//! Closed-mode generation from a checkpoint: [`LogitsSource`] over candle-transformers' KV
//! caches.
//!
//! candle-transformers' caches hold one sequence each (no padding mask for rows of different
//! lengths), so a batch is a list of sequences stepped one after the other: each keeps its own
//! cache (the weights are shared), nothing is recomputed, but rows are not fused into one
//! matrix product as in the GGUF model's batched session.

use candle_core::{Device, Tensor};
use candle_nn::Module;
use candle_transformers::models::{llama, qwen2};

use super::{last_row, llama_step, Checkpoint, Network};
use crate::error::{Error, Result};
use crate::generate::LogitsSource;

/// One sequence's cache and length.
#[derive(Debug)]
enum Row {
    Llama { cache: llama::Cache, len: usize },
    Qwen2 { model: qwen2::Model, len: usize },
}

/// The sequences of a generation batch from a [`Checkpoint`], each with its KV cache.
#[derive(Debug)]
pub struct CheckpointSession {
    rows: Vec<Row>,
}

impl CheckpointSession {
    /// Number of sequences still in the batch.
    pub fn batch_size(&self) -> usize {
        self.rows.len()
    }
}

impl Checkpoint {
    /// Runs `context` into a fresh cache: the row and the logits after its last token.
    fn start_row(&self, context: &[u32]) -> Result<(Row, Vec<f32>)> {
        self.check_tokens(context)?;
        match &self.network {
            Network::Llama { model, fresh_cache } => {
                let mut cache = fresh_cache.clone();
                let logits = llama_step(model, &mut cache, context, 0)?;
                let row = Row::Llama {
                    cache,
                    len: context.len(),
                };
                Ok((row, last_row(&logits)?))
            }
            Network::Qwen2 { model, lm_head } => {
                let mut model = model.clone();
                let logits = qwen2_step(&mut model, lm_head, context, 0)?;
                let row = Row::Qwen2 {
                    model,
                    len: context.len(),
                };
                Ok((row, last_row(&logits)?))
            }
        }
    }

    /// Appends `token` to `row`: the logits after it.
    fn step_row(&self, row: &mut Row, token: u32) -> Result<Vec<f32>> {
        let len = match row {
            Row::Llama { len, .. } | Row::Qwen2 { len, .. } => *len,
        };
        if len >= self.config.max_positions {
            return Err(Error::Input(format!(
                "the sequence reached the checkpoint's context of {}",
                self.config.max_positions
            )));
        }
        self.check_tokens(&[token])?;
        let logits = match (row, &self.network) {
            (Row::Llama { cache, len }, Network::Llama { model, .. }) => {
                let logits = llama_step(model, cache, &[token], *len)?;
                *len += 1;
                logits
            }
            (Row::Qwen2 { model, len }, Network::Qwen2 { lm_head, .. }) => {
                let logits = qwen2_step(model, lm_head, &[token], *len)?;
                *len += 1;
                logits
            }
            _ => return Err(Error::Input("a session row of another model".into())),
        };
        last_row(&logits)
    }
}

/// One Qwen2 forward of `tokens` at position `pos` through the model's own cache: the logits
/// `(1, vocab)` after the last of them.
fn qwen2_step(
    model: &mut qwen2::Model,
    lm_head: &candle_nn::Linear,
    tokens: &[u32],
    pos: usize,
) -> Result<Tensor> {
    let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
    let hidden = model.forward(&input, pos, None)?;
    let last = hidden.narrow(1, tokens.len() - 1, 1)?.squeeze(0)?;
    Ok(lm_head.forward(&last)?.to_dtype(candle_core::DType::F32)?)
}

impl LogitsSource for Checkpoint {
    type Session = CheckpointSession;

    fn prefill(&self, contexts: &[Vec<u32>]) -> Result<(CheckpointSession, Vec<Vec<f32>>)> {
        let (rows, logits) = contexts
            .iter()
            .map(|c| self.start_row(c))
            .collect::<Result<(Vec<_>, Vec<_>)>>()?;
        Ok((CheckpointSession { rows }, logits))
    }

    fn step(&self, session: &mut CheckpointSession, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        if tokens.len() != session.rows.len() {
            return Err(Error::Input(format!(
                "step: {} tokens for a batch of {}",
                tokens.len(),
                session.rows.len()
            )));
        }
        session
            .rows
            .iter_mut()
            .zip(tokens)
            .map(|(row, &token)| self.step_row(row, token))
            .collect()
    }

    fn retain(&self, session: &mut CheckpointSession, keep: &[usize]) -> Result<()> {
        let mut seen = vec![false; session.rows.len()];
        for &i in keep {
            if i >= seen.len() || std::mem::replace(&mut seen[i], true) {
                return Err(Error::Input(format!(
                    "retain: index {i} outside a batch of {} or given twice",
                    seen.len()
                )));
            }
        }
        let mut all: Vec<Option<Row>> = session.rows.drain(..).map(Some).collect();
        let kept = keep.iter().filter_map(|&i| all[i].take()).collect();
        session.rows = kept;
        Ok(())
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.config.max_positions)
    }
}
