//! Batched generation that records, at every step, what the evaluation needs from the model's
//! own (unwatermarked) distribution: the log-probability of the token drawn, for perplexity, and
//! the spike entropy, for the Theorem 4.2 check.
//!
//! Capturing during generation rather than re-running `forward_all` on prompt + completion saves
//! a second pass over every text; the rows are the same (incremental logits match `forward_all`
//! bit for bit). Each row of a batch may carry its own green list, so configurations share
//! batches.

use watermark_core::stats::spike_modulus;
use watermark_core::GreenList;
use watermark_core::{Sampling, WatermarkSampler};

use tracemark_model::llama::Llama;

use super::Result;

/// One text to generate.
#[derive(Debug, Clone)]
pub struct Job {
    /// The chat-formatted prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// The watermark, or `None` for a plain text.
    pub green: Option<GreenList>,
    pub sampling: Sampling,
    /// Seed of the sampler's ChaCha stream.
    pub seed: u64,
}

/// Lengths of the texts of one call.
#[derive(Debug, Clone, Copy)]
pub struct Lengths {
    /// Most tokens per text.
    pub max_tokens: usize,
    /// Stop tokens are masked out until a text has this many tokens.
    pub min_tokens: usize,
    /// Rows run through the model together.
    pub batch_size: usize,
}

/// One generated text and what the model thought of each of its tokens.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub tokens: Vec<u32>,
    /// ln p(token | context) under the model without watermark (and without the stop mask).
    pub logprobs: Vec<f64>,
    /// Spike entropy of the distribution sampled from (stop mask applied, before the
    /// watermark), with the modulus of the row's (γ, δ); empty for plain rows.
    pub spike_entropy: Vec<f64>,
}

impl Generated {
    /// exp of the mean negative log-likelihood of the text's tokens (NaN when empty).
    pub fn perplexity(&self) -> f64 {
        if self.logprobs.is_empty() {
            return f64::NAN;
        }
        (-self.logprobs.iter().sum::<f64>() / self.logprobs.len() as f64).exp()
    }
}

/// Generates every job, `lengths.batch_size` rows at a time; `progress(done, total)` is called
/// after each batch.
pub fn generate(
    model: &Llama,
    stop_ids: &[u32],
    jobs: &[Job],
    lengths: Lengths,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Generated>> {
    let mut out = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(lengths.batch_size.max(1)) {
        out.extend(generate_batch(model, stop_ids, chunk, lengths)?);
        progress(out.len(), jobs.len());
    }
    Ok(out)
}

fn generate_batch(
    model: &Llama,
    stop_ids: &[u32],
    jobs: &[Job],
    lengths: Lengths,
) -> Result<Vec<Generated>> {
    let mut results = vec![Generated::default(); jobs.len()];
    if lengths.max_tokens == 0 || jobs.is_empty() {
        return Ok(results);
    }
    let moduli: Vec<Option<f64>> = jobs
        .iter()
        .map(|j| {
            j.green.as_ref().map(|g| {
                let s = g.scheme();
                spike_modulus(s.effective_gamma(), f64::from(s.delta))
            })
        })
        .collect();
    let mut samplers: Vec<WatermarkSampler> = jobs
        .iter()
        .map(|j| WatermarkSampler::new(j.green.clone(), j.sampling, j.seed))
        .collect();
    let mut contexts: Vec<Vec<u32>> = jobs.iter().map(|j| j.prompt_ids.clone()).collect();
    let prompts: Vec<Vec<u32>> = contexts.clone();
    let (mut session, mut logits) = model.prefill(&prompts)?;
    let mut live: Vec<usize> = (0..jobs.len()).collect();
    let mut scratch: Vec<f64> = Vec::new();
    for step in 0..lengths.max_tokens {
        let rows = logits
            .to_vec2::<f32>()
            .map_err(tracemark_model::Error::from)?;
        let mut next = Vec::with_capacity(live.len());
        let mut keep = Vec::with_capacity(live.len());
        for (slot, (&i, mut row)) in live.iter().zip(rows).enumerate() {
            let masked = results[i].tokens.len() < lengths.min_tokens;
            let stats = row_stats(&row, stop_ids, masked, moduli[i], &mut scratch);
            if masked {
                for &s in stop_ids {
                    if let Some(x) = row.get_mut(s as usize) {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
            let token = samplers[i].sample(&contexts[i], &mut row)?;
            if stop_ids.contains(&token) {
                continue;
            }
            let r = &mut results[i];
            r.tokens.push(token);
            r.logprobs.push(stats.logprob(&scratch, token));
            if let Some(s) = stats.spike {
                r.spike_entropy.push(s);
            }
            contexts[i].push(token);
            next.push(token);
            keep.push(slot);
        }
        if keep.is_empty() || step + 1 == lengths.max_tokens {
            break;
        }
        if keep.len() < live.len() {
            session.retain(&keep)?;
            live = keep.iter().map(|&slot| live[slot]).collect();
        }
        logits = model.step(&mut session, &next)?;
    }
    Ok(results)
}

/// What one logits row says, from one pass of exponentials kept in `scratch`.
struct RowStats {
    /// ln of the sum of exp(logit − max) over every token (no mask).
    ln_total: f64,
    /// Spike entropy of the masked distribution, when a modulus was given.
    spike: Option<f64>,
}

impl RowStats {
    /// ln p(token) without mask, from the `scratch` that `row_stats` filled. A token that was
    /// just sampled under the mask is never a masked stop token, so its entry is intact.
    fn logprob(&self, scratch: &[f64], token: u32) -> f64 {
        scratch
            .get(token as usize)
            .map_or(f64::NEG_INFINITY, |e| e.ln() - self.ln_total)
    }
}

/// Fills `scratch` with exp(logit − max) per token (stop tokens zeroed when `masked`).
fn row_stats(
    row: &[f32],
    stop_ids: &[u32],
    masked: bool,
    modulus: Option<f64>,
    scratch: &mut Vec<f64>,
) -> RowStats {
    let row_max = row
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let row_max = f64::from(row_max);
    scratch.clear();
    scratch.extend(row.iter().map(|&x| (f64::from(x) - row_max).exp()));
    let total: f64 = scratch.iter().sum();
    // The distribution sampled from: the stop tokens' mass removed while they are masked.
    let mut stop_mass = 0.0;
    if masked {
        for &s in stop_ids {
            if let Some(e) = scratch.get_mut(s as usize) {
                stop_mass += *e;
                *e = 0.0;
            }
        }
    }
    let spike = modulus.map(|z| {
        let norm = total - stop_mass;
        if norm <= 0.0 {
            return f64::NAN;
        }
        scratch
            .iter()
            .map(|e| {
                let p = e / norm;
                p / (1.0 + z * p)
            })
            .sum()
    });
    RowStats {
        ln_total: total.ln(),
        spike,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_stats_match_a_direct_softmax() {
        let row = [1.0f32, 2.0, 3.0, 0.5];
        let mut scratch = Vec::new();
        let z = 1.5;
        let s = row_stats(&row, &[3], true, Some(z), &mut scratch);
        let e: Vec<f64> = row.iter().map(|x| f64::from(*x).exp()).collect();
        let total: f64 = e.iter().sum();
        assert!((s.logprob(&scratch, 1) - (e[1] / total).ln()).abs() < 1e-12);
        let norm = total - e[3];
        let spike: f64 = e[..3]
            .iter()
            .map(|x| (x / norm) / (1.0 + z * x / norm))
            .sum();
        assert!((s.spike.unwrap() - spike).abs() < 1e-12);
    }

    #[test]
    fn perplexity_of_certain_tokens_is_one() {
        let g = Generated {
            tokens: vec![1, 2],
            logprobs: vec![0.0, 0.0],
            spike_entropy: vec![],
        };
        assert_eq!(g.perplexity(), 1.0);
        assert!(Generated::default().perplexity().is_nan());
    }
}
