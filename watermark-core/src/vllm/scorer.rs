//! What one scored token contributes, and the null distribution of the sum, for each of vLLM's
//! algorithms: `gumbel` (one key) and `dual_key_gumbel` (two derived keys, routed at random by
//! the generator and fused with weights by the detector).

use super::key::derive_watermark_key;
use super::philox;
use super::tail;
use crate::error::{Error, Result};
use crate::stats;

/// vLLM's default `alpha` of `dual_key_gumbel`: the share of tokens sampled with key B.
pub const DEFAULT_ALPHA: f64 = 0.1;

/// Per-token score of a PRF uniform, as vLLM's `GumbelWatermarkDetector._score_tokens`:
/// `-log1p(-u)` in f64 of the f32 uniform.
pub fn token_score(uniform: f32) -> f64 {
    -(-f64::from(uniform)).ln_1p()
}

/// The per-token score function and null tail of one vLLM algorithm under one key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VllmScorer {
    /// `gumbel`: the score is `-ln(1 - u)` under the key itself; Exp(1) under the null.
    Gumbel { key: u64 },
    /// `dual_key_gumbel`: keys A and B are derived from the key; the score is
    /// `(1 - alpha) * s_A + alpha * s_B`, a weighted sum of two independent Exp(1) under the null.
    DualKey { key_a: u64, key_b: u64, alpha: f64 },
}

impl VllmScorer {
    /// `dual_key_gumbel` under vLLM's key `key` (keys A and B as vLLM derives them).
    pub fn dual_key(key: u64, alpha: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::InvalidParameter(format!(
                "dual_key_gumbel alpha {alpha} must lie in [0, 1]"
            )));
        }
        Ok(VllmScorer::DualKey {
            key_a: derive_watermark_key(key, b"key_a"),
            key_b: derive_watermark_key(key, b"key_b"),
            alpha,
        })
    }

    /// The score of `token` after `context` (oldest first, vLLM's -1 for padding).
    pub fn score(&self, context: &[i64], token: i64) -> f64 {
        match *self {
            VllmScorer::Gumbel { key } => token_score(philox::uniform(key, context, token)),
            VllmScorer::DualKey {
                key_a,
                key_b,
                alpha,
            } => {
                let a = token_score(philox::uniform(key_a, context, token));
                let b = token_score(philox::uniform(key_b, context, token));
                // vLLM's `scores @ [1 - alpha, alpha]`: two products, added in this order.
                a * (1.0 - alpha) + b * alpha
            }
        }
    }

    /// The exact p-value of a sum `score` over `scored` tokens, as ln and log10.
    pub fn ln_p_value(&self, scored: u64, score: f64) -> f64 {
        match *self {
            VllmScorer::Gumbel { .. } => stats::gamma_ln_sf(scored, score),
            VllmScorer::DualKey { alpha, .. } => tail::weighted_exp_ln_sf(scored, score, alpha),
        }
    }

    /// The p-value vLLM's own detector reports, where it is not the exact one: for
    /// `dual_key_gumbel` with alpha outside {0, 1/2, 1}, a Gamma of matched mean and variance.
    pub fn vllm_p_value(&self, scored: u64, score: f64) -> Option<f64> {
        match *self {
            VllmScorer::Gumbel { .. } => None,
            VllmScorer::DualKey { alpha, .. } => {
                Some(tail::vllm_dual_key_p_value(scored, score, alpha))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_key_score_weights_the_two_keys() {
        let s = VllmScorer::dual_key(77, 0.25).unwrap();
        let VllmScorer::DualKey { key_a, key_b, .. } = s else {
            unreachable!()
        };
        let ctx = [1, 2, 3, 4];
        let a = VllmScorer::Gumbel { key: key_a }.score(&ctx, 9);
        let b = VllmScorer::Gumbel { key: key_b }.score(&ctx, 9);
        assert_eq!(s.score(&ctx, 9), a * 0.75 + b * 0.25);
        let only_a = VllmScorer::dual_key(77, 0.0).unwrap();
        assert_eq!(only_a.score(&ctx, 9), a);
        assert!(VllmScorer::dual_key(77, 1.5).is_err());
        assert!(VllmScorer::dual_key(77, f64::NAN).is_err());
    }
}
