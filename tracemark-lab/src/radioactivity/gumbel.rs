//! The radioactivity experiment with vLLM's native watermark (`vllm-gumbel-philox-v1`) instead
//! of tracemark's green list: a teacher that samples by keyed Gumbel-max, as `vllm serve
//! --watermark-config` does, and the closed-model audit of a student under that key.
//!
//! Gumbel-max picks `argmax_i u_i^(1/p_i)` (equivalently `argmax_i ln(p_i) + g_i` with the
//! Gumbel variate `g_i = -ln(-ln u_i)`), where `u_i` is vLLM's PRF uniform for token `i` after the
//! context (the last `width` generated tokens, padded with vLLM's `-1`). Over random keys the
//! pick follows `p` exactly, so the watermark costs no quality, but a given context always picks
//! the same token: like vLLM with `deduplicate_contexts = single_turn` (its default), a context
//! seen earlier in the same answer is sampled without the watermark.

use std::collections::HashSet;

use watermark_core::vllm::{self, ContextScope, GumbelScanner, GumbelScore, PAD_TOKEN};

use super::{Result, Sample};

/// Keyed Gumbel-max over `probabilities` after `context` (oldest first, vLLM's padding
/// included): the token maximizing `ln(u) / p`, i.e. `u^(1/p)`. Tokens of probability 0 are
/// never picked; `None` when every probability is 0 (or the row is empty).
pub fn gumbel_max_token(key: u64, context: &[i64], probabilities: &[f64]) -> Option<u32> {
    let state = vllm::context_state(key, context);
    let mut best: Option<(u32, f64)> = None;
    for (token, &p) in (0u32..).zip(probabilities) {
        if p.is_nan() || p <= 0.0 {
            continue;
        }
        let u = vllm::word_to_uniform(vllm::token_word(key, state, i64::from(token)));
        // ln u < 0, so the largest ln(u) / p is the largest u^(1/p).
        let value = f64::from(u).ln() / p;
        if best.is_none_or(|(_, b)| value > b) {
            best = Some((token, value));
        }
    }
    best.map(|(token, _)| token)
}

/// Inverse-CDF sampling from `probabilities` (not necessarily normalized) with the uniform `r`
/// in [0, 1): the unwatermarked draw of a repeated context. `None` for an empty or all-zero row.
pub fn sample_plain(probabilities: &[f64], r: f64) -> Option<u32> {
    let total: f64 = probabilities.iter().filter(|p| **p > 0.0).sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let target = r.clamp(0.0, 1.0) * total;
    let mut acc = 0.0;
    let mut last = None;
    for (token, &p) in (0u32..).zip(probabilities) {
        if p.is_nan() || p <= 0.0 {
            continue;
        }
        acc += p;
        last = Some(token);
        if acc > target {
            return last;
        }
    }
    last
}

/// One answer sampled as vLLM's watermarking sampler does with `single_turn` deduplication:
/// keyed Gumbel-max after a fresh context, a plain draw after one already seen in this answer.
#[derive(Clone, Debug)]
pub struct GumbelAnswer {
    key: u64,
    context: Vec<i64>,
    seen: HashSet<Vec<i64>>,
    watermarked: usize,
}

impl GumbelAnswer {
    /// A new answer under `key` with context width `width` (1..=[`vllm::MAX_CONTEXT_WIDTH`]).
    pub fn new(key: u64, width: usize) -> Result<Self> {
        if width == 0 || width > vllm::MAX_CONTEXT_WIDTH {
            return Err(watermark_core::Error::InvalidParameter(format!(
                "vLLM context width {width} must lie in 1..={}",
                vllm::MAX_CONTEXT_WIDTH
            ))
            .into());
        }
        Ok(GumbelAnswer {
            key,
            context: vec![PAD_TOKEN; width],
            seen: HashSet::new(),
            watermarked: 0,
        })
    }

    /// The next token from the model's `probabilities`; `r` (uniform in [0, 1)) is used only
    /// when the context is a repeat. `None` when the row has no positive probability.
    pub fn next(&mut self, probabilities: &[f64], r: f64) -> Option<u32> {
        let token = if self.seen.insert(self.context.clone()) {
            self.watermarked += 1;
            gumbel_max_token(self.key, &self.context, probabilities)?
        } else {
            sample_plain(probabilities, r)?
        };
        self.context.remove(0);
        self.context.push(i64::from(token));
        Some(token)
    }

    /// Tokens drawn by Gumbel-max so far (the others repeated a context).
    pub fn watermarked(&self) -> usize {
        self.watermarked
    }
}

/// Closed-model audit of a suspect's outputs under vLLM key `key` and context width `width`, as
/// `tracemark audit --suspect` pools them: one test, each context scored once across all the
/// outputs, windows of the prompt (what the suspect read) and partly padded contexts not scored
/// ([`ContextScope::All`]).
pub fn audit_outputs_gumbel(key: u64, width: usize, outputs: &[Sample]) -> Result<GumbelScore> {
    let mut scanner = GumbelScanner::new(key, width, ContextScope::All)?;
    for s in outputs {
        scanner.add_document(&s.prompt_ids, &s.response_ids);
    }
    Ok(scanner.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use watermark_core::vllm::detect_gumbel;

    /// Over 20,000 keys the Gumbel-max pick follows p: each count is Binomial(20000, p_i), and
    /// a 5-sigma band around its mean fails by chance with probability below 1e-5.
    #[test]
    fn gumbel_max_follows_the_distribution_over_keys() {
        let p = [0.5, 0.3, 0.15, 0.05, 0.0];
        let n = 20_000u64;
        let mut counts = [0u64; 5];
        for key in 0..n {
            let t = gumbel_max_token(key.wrapping_mul(0x9E37_79B9_7F4A_7C15), &[3, 1], &p);
            counts[t.unwrap() as usize] += 1;
        }
        for (i, &pi) in p.iter().enumerate() {
            let mean = n as f64 * pi;
            let sd = (n as f64 * pi * (1.0 - pi)).sqrt();
            let c = counts[i] as f64;
            assert!((c - mean).abs() <= 5.0 * sd, "token {i}: {counts:?}");
        }
        assert_eq!(counts[4], 0);
        assert_eq!(gumbel_max_token(1, &[0], &[0.0, 0.0]), None);
    }

    #[test]
    fn plain_sampling_inverts_the_cdf() {
        let p = [0.0, 0.25, 0.0, 0.75];
        assert_eq!(sample_plain(&p, 0.0), Some(1));
        assert_eq!(sample_plain(&p, 0.2), Some(1));
        assert_eq!(sample_plain(&p, 0.3), Some(3));
        assert_eq!(sample_plain(&p, 0.999_999), Some(3));
        assert_eq!(sample_plain(&[], 0.5), None);
    }

    /// A repeated context is drawn plainly: with a flat two-token row and width 1, the context
    /// [t] repeats from the third token on at the latest.
    #[test]
    fn repeated_contexts_are_not_watermarked() {
        let mut answer = GumbelAnswer::new(11, 1).unwrap();
        let flat = [0.5, 0.5];
        for i in 0..20 {
            answer.next(&flat, f64::from(i % 7) / 7.0).unwrap();
        }
        // Contexts: [-1], [0], [1] at most are fresh.
        assert!(answer.watermarked() <= 3, "{}", answer.watermarked());
        assert!(GumbelAnswer::new(1, 0).is_err());
    }

    /// Gumbel-max text from a flat row over 500 tokens is detected by vLLM's detector under its
    /// key (expected score about n·H_500 ≈ 6.8 n against n under the null) and not under another;
    /// the pooled audit agrees and does not score the partly padded first tokens.
    #[test]
    fn gumbel_text_is_detected_under_its_key_only() {
        let row = vec![1.0 / 500.0; 500];
        let mut answer = GumbelAnswer::new(77, 2).unwrap();
        let tokens: Vec<u32> = (0..80).map(|_| answer.next(&row, 0.5).unwrap()).collect();
        let own = detect_gumbel(77, 2, &tokens, true).unwrap();
        assert!(own.log10_p_value < -20.0, "{own:?}");
        let other = detect_gumbel(78, 2, &tokens, true).unwrap();
        assert!(other.log10_p_value > -3.0, "{other:?}");
        let sample = Sample {
            prompt_ids: vec![900, 901, 902],
            response_ids: tokens,
        };
        let pooled = audit_outputs_gumbel(77, 2, &[sample]).unwrap();
        assert!(pooled.log10_p_value < -20.0, "{pooled:?}");
        assert_eq!(pooled.scored + pooled.skipped, 80);
        assert!(pooled.skipped >= 2);
    }
}
