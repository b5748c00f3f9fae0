//! Reading mode for the distillation audit: what a model predicts at every position of a text
//! it reads, from one forward pass (not one token at a time).

use candle_core::Tensor;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::llama::Llama;

/// A model that gives logits at every position of one sequence in a reading pass.
pub trait SequenceLogits {
    /// Logits `(T, vocab)`: row `i` predicts token `i + 1` from `tokens[..=i]`.
    fn forward_all(&self, tokens: &[u32]) -> Result<Tensor>;
}

impl SequenceLogits for Llama {
    fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        Llama::forward_all(self, tokens)
    }
}

impl SequenceLogits for Checkpoint {
    fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        Checkpoint::forward_all(self, tokens)
    }
}

/// The model's top-1 prediction for each position of `text`, read after `prompt`: entry `i` is
/// the most likely token after `prompt ++ text[..i]`. With an empty prompt the first position
/// has nothing to predict from and gets `text[0]`; no watermark window fits there, so the audit
/// never scores it.
pub fn top1_predictions(
    model: &impl SequenceLogits,
    prompt: &[u32],
    text: &[u32],
) -> Result<Vec<u32>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let sequence: Vec<u32> = prompt.iter().chain(text).copied().collect();
    // Row j predicts position j + 1; the last row predicts past the text and is not needed.
    let read = &sequence[..sequence.len() - 1];
    let mut predictions = Vec::with_capacity(text.len());
    if prompt.is_empty() {
        predictions.push(text[0]);
    }
    if !read.is_empty() {
        let rows = model.forward_all(read)?.argmax(1)?.to_vec1::<u32>()?;
        let first = prompt.len().saturating_sub(1);
        predictions.extend_from_slice(&rows[first..]);
    }
    Ok(predictions)
}
