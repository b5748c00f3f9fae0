//! Batched generation that records, at every step, what the evaluation needs from the model's
//! own (unwatermarked) distribution: the log-probability of the token drawn, for perplexity, and
//! the spike entropy, for the Theorem 4.2 check.
//!
//! The texts come from the model crate's generation loop; the statistics are an observer of its
//! steps. Capturing during generation rather than re-running `forward_all` on prompt +
//! completion saves a second pass over every text; the rows are the same (incremental logits
//! match `forward_all` bit for bit). Each job carries its own green list, so configurations
//! share batches.

use tracemark_model::generate::{Generator, Observer, Step};
use watermark_core::stats::spike_modulus;

use super::Result;

pub use tracemark_model::generate::{Job, Limits};

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

/// Generates every job on the model, `limits.batch_size` rows at a time, recording the
/// statistics of each token; `progress(done, total)` is called after each batch.
pub fn generate(
    generator: &Generator,
    jobs: &[Job],
    limits: Limits,
    progress: impl FnMut(usize, usize),
) -> Result<Vec<Generated>> {
    let mut stats = StatsObserver::new(generator.stop_ids(), jobs, progress);
    let outputs = generator.run(jobs, limits, &mut stats)?;
    Ok(outputs
        .into_iter()
        .zip(stats.texts)
        .map(|(output, text)| Generated {
            tokens: output.tokens,
            ..text
        })
        .collect())
}

/// Records, at every kept token, its log-probability and the spike entropy of its row.
struct StatsObserver<'a, P> {
    stop_ids: &'a [u32],
    /// Spike modulus of each job's (γ, δ); `None` for plain jobs.
    moduli: Vec<Option<f64>>,
    /// Per job: the statistics (tokens are left to the loop's output).
    texts: Vec<Generated>,
    /// exp(logit − max) of the current row, reused between steps.
    scratch: Vec<f64>,
    progress: P,
}

impl<'a, P: FnMut(usize, usize)> StatsObserver<'a, P> {
    fn new(stop_ids: &'a [u32], jobs: &[Job], progress: P) -> Self {
        let moduli = jobs
            .iter()
            .map(|j| {
                j.green.as_ref().map(|g| {
                    let s = g.scheme();
                    spike_modulus(s.effective_gamma(), f64::from(s.delta))
                })
            })
            .collect();
        StatsObserver {
            stop_ids,
            moduli,
            texts: vec![Generated::default(); jobs.len()],
            scratch: Vec::new(),
            progress,
        }
    }
}

impl<P: FnMut(usize, usize)> Observer for StatsObserver<'_, P> {
    fn step(&mut self, step: &Step<'_>) {
        if step.stopped {
            return;
        }
        let stats = row_stats(
            step.logits,
            self.stop_ids,
            step.stops_masked,
            self.moduli[step.job],
            &mut self.scratch,
        );
        let text = &mut self.texts[step.job];
        text.logprobs.push(stats.logprob(&self.scratch, step.token));
        if let Some(s) = stats.spike {
            text.spike_entropy.push(s);
        }
    }

    fn batch_done(&mut self, done: usize, total: usize) {
        (self.progress)(done, total);
    }
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
