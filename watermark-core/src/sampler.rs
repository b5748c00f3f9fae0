//! A watermarking sampler: the hook followed by greedy, temperature, top-k or top-p sampling,
//! drawn from a seeded ChaCha stream so that a run can be reproduced token for token.
//!
//! ChaCha with an explicit seed, never `thread_rng`/`StdRng`: `StdRng`'s algorithm may change
//! between `rand` releases, which would make logged generations impossible to recompute.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::account::choose_by_exponential_minimum;
use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::hook::apply_watermark;

/// How the next token is drawn from (biased) logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token (ties go to the lowest id).
    Greedy,
    /// Softmax at `temperature`, optionally restricted to the `top_k` most likely tokens, then
    /// to the smallest set whose probability reaches `top_p`.
    Random {
        /// Divides the logits; > 0.
        temperature: f32,
        /// Keep only this many most likely tokens.
        top_k: Option<usize>,
        /// Keep the smallest most-likely set with at least this probability, in (0, 1].
        top_p: Option<f32>,
    },
}

impl Sampling {
    /// Validated constructor: temperature 0 means greedy.
    pub fn new(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Result<Self> {
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(Error::InvalidParameter(format!(
                "temperature {temperature} must be finite and >= 0"
            )));
        }
        if top_k == Some(0) {
            return Err(Error::InvalidParameter("top-k must be at least 1".into()));
        }
        if let Some(p) = top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::InvalidParameter(format!(
                    "top-p {p} must lie in (0, 1]"
                )));
            }
        }
        Ok(if temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Random {
                temperature,
                top_k,
                top_p,
            }
        })
    }
}

/// Applies the watermark (when it has a green list) and draws the next token.
#[derive(Debug, Clone)]
pub struct WatermarkSampler {
    green: Option<GreenList>,
    sampling: Sampling,
    rng: ChaCha8Rng,
}

impl WatermarkSampler {
    /// A sampler; `green: None` samples without watermark (for comparisons).
    pub fn new(green: Option<GreenList>, sampling: Sampling, seed: u64) -> Self {
        WatermarkSampler {
            green,
            sampling,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The green list in use, if any.
    pub fn green_list(&self) -> Option<&GreenList> {
        self.green.as_ref()
    }

    /// Biases `logits` in place (when watermarking) and draws a token id. `context` is the
    /// prompt and everything generated so far.
    pub fn sample(&mut self, context: &[u32], logits: &mut [f32]) -> Result<u32> {
        if let Some(green) = &self.green {
            apply_watermark(green, context, logits)?;
        }
        match self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
            } => {
                let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                let (ids, weights) = kept_candidates(logits, temperature, top_k, top_p)?;
                // With an account (see `GreenList::with_account`), its exponential-minimum draw
                // replaces the inverse CDF: same distribution, the account's uniforms, and so a
                // function of the context (identical contexts give identical tokens).
                if let Some((green, account)) = self
                    .green
                    .as_ref()
                    .and_then(|g| g.account().map(|a| (g, a)))
                {
                    let drawn =
                        choose_by_exponential_minimum(account, green, context, &ids, &weights)?;
                    if let Some(t) = drawn {
                        return Ok(t);
                    }
                }
                Ok(draw_inverse_cdf(&ids, &weights, u))
            }
        }
    }
}

/// Index of the largest logit; NaN or an empty row is an error.
pub fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in logits.iter().enumerate() {
        if x.is_nan() {
            return Err(Error::BadLogits("logits contain NaN"));
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i as u32)
        .ok_or(Error::BadLogits("empty logits row"))
}

/// Draws from softmax(logits / temperature) truncated by top-k and top-p, using the uniform
/// number `u` in [0, 1): inverse-CDF over the kept tokens in decreasing probability order.
#[cfg(test)]
fn sample_random(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    u: f64,
) -> Result<u32> {
    let (ids, weights) = kept_candidates(logits, temperature, top_k, top_p)?;
    Ok(draw_inverse_cdf(&ids, &weights, u))
}

/// The tokens softmax(logits / temperature) keeps after top-k and top-p, in decreasing
/// probability order, with their unnormalised probabilities (also the account's draw from a
/// row, `account::draw_from_logits`, so that both truncate alike).
pub(crate) fn kept_candidates(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
) -> Result<(Vec<u32>, Vec<f64>)> {
    let top = argmax(logits)? as usize;
    let max = logits[top];
    if max == f32::NEG_INFINITY {
        return Err(Error::BadLogits("every logit is -inf"));
    }
    let inv_t = 1.0 / f64::from(temperature);
    let weight = |x: f32| ((f64::from(x) - f64::from(max)) * inv_t).exp();
    // Candidates in decreasing order, found by partial selection rather than sorting the whole
    // row: top-p over a 128k vocabulary usually needs a few dozen tokens. Top-p applies to the
    // distribution renormalised after top-k, as in Hugging Face's warpers.
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit_desc = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let p = f64::from(top_p.unwrap_or(1.0));
    let (mut k, limit, target_mass) = match top_k {
        Some(k) => {
            let k = k.min(ids.len());
            if k < ids.len() {
                ids.select_nth_unstable_by(k - 1, by_logit_desc);
            }
            let head_mass: f64 = ids[..k].iter().map(|&t| weight(logits[t as usize])).sum();
            (k, k, p * head_mass)
        }
        None => {
            let total: f64 = logits.iter().map(|&x| weight(x)).sum();
            (ids.len().min(64), ids.len(), p * total)
        }
    };
    let kept = loop {
        if k < ids.len() {
            ids[..limit.max(k)].select_nth_unstable_by(k - 1, by_logit_desc);
        }
        let head = &mut ids[..k];
        head.sort_unstable_by(by_logit_desc);
        let mut mass = 0.0;
        let mut cut = None;
        for (j, &t) in head.iter().enumerate() {
            mass += weight(logits[t as usize]);
            if mass >= target_mass {
                cut = Some(j + 1);
                break;
            }
        }
        match cut {
            Some(c) => break c,
            None if k >= limit => break k,
            None => k = (k * 4).min(limit),
        }
    };
    ids.truncate(kept);
    let weights = ids.iter().map(|&t| weight(logits[t as usize])).collect();
    Ok((ids, weights))
}

/// Inverse-CDF draw with the uniform `u` in [0, 1) over candidates in the given order.
fn draw_inverse_cdf(ids: &[u32], weights: &[f64], u: f64) -> u32 {
    let mass: f64 = weights.iter().sum();
    let mut r = u * mass;
    for (&t, &w) in ids.iter().zip(weights) {
        r -= w;
        if r < 0.0 {
            return t;
        }
    }
    // Rounding left r a hair above zero: the last kept token.
    ids[ids.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scheme, SecretKey};

    fn green() -> GreenList {
        GreenList::new(&SecretKey::from_bytes([9; 32]), Scheme::default(), 100).unwrap()
    }

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37 % 100) as f32) / 25.0).collect()
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let run = |seed| {
            let mut s =
                WatermarkSampler::new(Some(green()), Sampling::new(1.0, None, None).unwrap(), seed);
            let mut ctx = vec![1u32, 2];
            for _ in 0..50 {
                let mut row = logits();
                let t = s.sample(&ctx, &mut row).unwrap();
                ctx.push(t);
            }
            ctx
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn truncation_keeps_only_allowed_tokens() {
        let row = logits();
        let mut order: Vec<usize> = (0..100).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        for i in 0..200 {
            let u = i as f64 / 200.0;
            let t = sample_random(&row, 1.0, Some(3), None, u).unwrap() as usize;
            assert!(order[..3].contains(&t));
            let t = sample_random(&row, 0.5, None, Some(0.01), u).unwrap() as usize;
            assert_eq!(t, order[0]);
        }
    }

    #[test]
    fn frequencies_match_the_softmax() {
        // 3 tokens with probabilities 0.5, 0.3, 0.2; 30000 evenly spaced u's.
        let row = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            let u = (i as f64 + 0.5) / 30_000.0;
            counts[sample_random(&row, 1.0, None, None, u).unwrap() as usize] += 1;
        }
        assert!((counts[0] as i64 - 15_000).abs() <= 2, "{counts:?}");
        assert!((counts[1] as i64 - 9_000).abs() <= 2, "{counts:?}");
    }

    #[test]
    fn bad_rows_and_parameters_are_errors() {
        assert!(argmax(&[]).is_err());
        assert!(argmax(&[0.0, f32::NAN]).is_err());
        assert!(sample_random(&[f32::NEG_INFINITY; 3], 1.0, None, None, 0.5).is_err());
        assert!(Sampling::new(-1.0, None, None).is_err());
        assert!(Sampling::new(1.0, Some(0), None).is_err());
        assert!(Sampling::new(1.0, None, Some(1.5)).is_err());
        assert_eq!(Sampling::new(0.0, Some(5), None).unwrap(), Sampling::Greedy);
    }
}
