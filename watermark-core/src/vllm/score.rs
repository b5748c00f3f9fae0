//! Detection of vLLM's watermark: one score per distinct context, summed, and the exact null
//! tail of the sum ([`VllmScorer`] says what a token scores under each algorithm).
//!
//! Under the null (text not generated with the key) each PRF uniform u is uniform on (0, 1), so
//! `-ln(1 - u)` is Exp(1) and, for `gumbel`, the sum over n scored tokens is Gamma(n, 1). Gumbel-max sampling
//! picks tokens whose u is large, so watermarked text scores high. A context seen before in the
//! same text (or corpus) reuses the same keyed vector, so its tokens are not independent
//! evidence: like vLLM's detector, only the first token after each distinct context is scored.

use std::collections::HashSet;

use serde::Serialize;

use super::philox;
use super::scorer::VllmScorer;
use crate::error::{Error, Result};
use crate::stats;

/// Widest context accepted: vLLM warns above 16; far wider contexts only make detection fragile.
pub const MAX_CONTEXT_WIDTH: usize = 256;

/// The result of scoring text for vLLM's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GumbelScore {
    /// Tokens scored (one per distinct context): the Gamma shape n.
    pub scored: u64,
    /// Tokens not scored: their context was a repeat (or, with [`ContextScope::All`], partial).
    pub skipped: u64,
    /// Sum of the per-token scores (vLLM's `score`).
    pub score: f64,
    /// log10 of the exact null tail P(S >= score) (`gumbel`: Gamma(n, 1)), never clamped.
    pub log10_p_value: f64,
    /// The p-value itself; 0.0 when it underflows f64, see `log10_p_value`.
    pub p_value: f64,
    /// `dual_key_gumbel` only: the p-value vLLM's own detector reports, a moment-matched Gamma
    /// that is not exact (verdicts use `log10_p_value`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vllm_p_value: Option<f64>,
}

impl GumbelScore {
    /// Whether the p-value is at most `fpr` (in log space); nothing scored is never significant.
    pub fn is_significant(&self, fpr: f64) -> bool {
        self.scored > 0 && self.log10_p_value <= fpr.log10()
    }
}

/// Which earlier contexts make a token's context a repeat, as vLLM's
/// `WatermarkConfig.deduplicate_contexts` (the generator sampled such tokens without the
/// watermark, so the detector must not score them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextScope {
    /// Every token is scored (vLLM's `none`; its detector with `deduplicate_contexts=False`).
    None,
    /// A context already seen among the generated tokens is a repeat (vLLM's default).
    #[default]
    SingleTurn,
    /// Contexts of the prompt count too, and the first `width` generated tokens, whose context
    /// is partly padding, are not scored (vLLM's `all`).
    All,
}

/// Scores token sequences (documents) for vLLM's watermark under one key: one scanner
/// is one test, so a context is scored once across all the documents it is given. Contexts are
/// the `width` previous generated tokens, padded at the start with vLLM's `-1`, since vLLM
/// builds them from the generated tokens alone.
#[derive(Clone, Debug)]
pub struct GumbelScanner {
    scorer: VllmScorer,
    width: usize,
    scope: ContextScope,
    seen: HashSet<Vec<i64>>,
    scored: u64,
    skipped: u64,
    sum: ScoreSum,
}

impl GumbelScanner {
    /// A `gumbel` scanner for `key` (vLLM's `--watermark-config` key) at context width `width`.
    pub fn new(key: u64, width: usize, scope: ContextScope) -> Result<Self> {
        Self::with_scorer(VllmScorer::Gumbel { key }, width, scope)
    }

    /// A scanner for any of vLLM's algorithms.
    pub fn with_scorer(scorer: VllmScorer, width: usize, scope: ContextScope) -> Result<Self> {
        if width == 0 || width > MAX_CONTEXT_WIDTH {
            return Err(Error::InvalidParameter(format!(
                "vLLM context width {width} must lie in 1..={MAX_CONTEXT_WIDTH}"
            )));
        }
        Ok(GumbelScanner {
            scorer,
            width,
            scope,
            seen: HashSet::new(),
            scored: 0,
            skipped: 0,
            sum: ScoreSum::default(),
        })
    }

    /// Scores one document: the generated token ids, after `prompt` (read only with
    /// [`ContextScope::All`]).
    pub fn add_document(&mut self, prompt: &[u32], tokens: &[u32]) {
        if self.scope == ContextScope::All {
            self.add_with_prompt_history(prompt, tokens);
            return;
        }
        let mut context = vec![philox::PAD_TOKEN; self.width];
        for &token in tokens {
            let fresh = self.scope == ContextScope::None || self.seen.insert(context.clone());
            self.score_or_skip(fresh, &context, token);
            context.remove(0);
            context.push(i64::from(token));
        }
    }

    /// [`ContextScope::All`], as vLLM's generator applies it: the history is every window of
    /// prompt and answer (padded at the prompt's start) before the current position, and the
    /// first `width` answer tokens, whose vLLM context is partly padding, are not scored.
    fn add_with_prompt_history(&mut self, prompt: &[u32], tokens: &[u32]) {
        let padded: Vec<i64> = std::iter::repeat_n(philox::PAD_TOKEN, self.width)
            .chain(prompt.iter().chain(tokens).map(|&t| i64::from(t)))
            .collect();
        for (position, window) in padded.windows(self.width).enumerate() {
            let Some(answer_index) = position.checked_sub(prompt.len()) else {
                self.seen.insert(window.to_vec());
                continue;
            };
            let Some(&token) = tokens.get(answer_index) else {
                break;
            };
            let fresh = self.seen.insert(window.to_vec()) && answer_index >= self.width;
            self.score_or_skip(fresh, window, token);
        }
    }

    fn score_or_skip(&mut self, fresh: bool, context: &[i64], token: u32) {
        if fresh {
            self.add_score(self.scorer.score(context, i64::from(token)));
        } else {
            self.skipped += 1;
        }
    }

    fn add_score(&mut self, score: f64) {
        self.sum.add(score);
        self.scored += 1;
    }

    /// The score and exact p-value of everything added so far.
    pub fn finish(&self) -> GumbelScore {
        GumbelScore::new(&self.scorer, self.scored, self.skipped, self.sum.total())
    }
}

impl GumbelScore {
    /// The test of `scored` tokens whose scores under `scorer` add up to `score`.
    pub fn new(scorer: &VllmScorer, scored: u64, skipped: u64, score: f64) -> Self {
        let log10_p_value = scorer.ln_p_value(scored, score) / std::f64::consts::LN_10;
        GumbelScore {
            scored,
            skipped,
            score,
            log10_p_value,
            p_value: stats::p_from_log10(log10_p_value),
            vllm_p_value: scorer.vllm_p_value(scored, score),
        }
    }
}

/// A Neumaier-compensated running sum: audits add millions of scores.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ScoreSum {
    sum: f64,
    compensation: f64,
}

impl ScoreSum {
    pub fn add(&mut self, score: f64) {
        let total = self.sum + score;
        self.compensation += if self.sum.abs() >= score.abs() {
            (self.sum - total) + score
        } else {
            (score - total) + self.sum
        };
        self.sum = total;
    }

    pub fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Scores one token sequence, as vLLM's `GumbelWatermarkDetector(key, width,
/// deduplicate_contexts=deduplicate).detect(tokens)`.
pub fn detect_gumbel(
    key: u64,
    width: usize,
    tokens: &[u32],
    deduplicate: bool,
) -> Result<GumbelScore> {
    detect(VllmScorer::Gumbel { key }, width, tokens, deduplicate)
}

/// Scores one token sequence, as vLLM's `DualKeyGumbelWatermarkDetector(key, width,
/// deduplicate_contexts=deduplicate, alpha=alpha).detect(tokens)` (its p-value is
/// `vllm_p_value`; `log10_p_value` is the exact tail).
pub fn detect_dual_key(
    key: u64,
    alpha: f64,
    width: usize,
    tokens: &[u32],
    deduplicate: bool,
) -> Result<GumbelScore> {
    detect(
        VllmScorer::dual_key(key, alpha)?,
        width,
        tokens,
        deduplicate,
    )
}

fn detect(
    scorer: VllmScorer,
    width: usize,
    tokens: &[u32],
    deduplicate: bool,
) -> Result<GumbelScore> {
    let scope = if deduplicate {
        ContextScope::SingleTurn
    } else {
        ContextScope::None
    };
    let mut scanner = GumbelScanner::with_scorer(scorer, width, scope)?;
    scanner.add_document(&[], tokens);
    Ok(scanner.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn bad_widths_are_refused() {
        assert!(GumbelScanner::new(1, 0, ContextScope::SingleTurn).is_err());
        assert!(GumbelScanner::new(1, MAX_CONTEXT_WIDTH + 1, ContextScope::None).is_err());
    }

    #[test]
    fn repeated_contexts_are_scored_once() {
        let tokens = [5u32, 5, 5, 5, 5, 5, 5, 5];
        let s = detect_gumbel(9, 2, &tokens, true).unwrap();
        // contexts: [-1,-1], [-1,5], then [5,5] six times.
        assert_eq!((s.scored, s.skipped), (3, 5));
        let all = detect_gumbel(9, 2, &tokens, false).unwrap();
        assert_eq!((all.scored, all.skipped), (8, 0));
        let empty = detect_gumbel(9, 2, &[], true).unwrap();
        assert_eq!(empty.log10_p_value, 0.0);
        assert!(!empty.is_significant(0.5));
    }

    #[test]
    fn scope_all_skips_partial_contexts_and_prompt_contexts() {
        let mut scanner = GumbelScanner::new(3, 2, ContextScope::All).unwrap();
        // Tokens 0 and 1 have partial contexts. Token 2's context [7, 8] is a prompt window,
        // token 3's [8, 9] the window before answer token 0; token 4's [9, 1] is new.
        scanner.add_document(&[7, 8, 9], &[7, 8, 9, 1, 2]);
        let first = scanner.finish();
        assert_eq!((first.scored, first.skipped), (1, 4));
        // The same answer again in the same test: every full context is now history.
        scanner.add_document(&[], &[7, 8, 9, 1, 2]);
        let second = scanner.finish();
        assert_eq!((second.scored, second.skipped), (1, 9));
    }

    /// Under the null the p-value is uniform: with 2000 random texts of 50 tokens, the share
    /// below 0.05 is Binomial(2000, 0.05) (mean 100, sd 9.7); a 5-sigma band cannot pass by chance.
    #[test]
    fn null_p_values_are_calibrated() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let mut below = 0;
        for _ in 0..2000 {
            let tokens: Vec<u32> = (0..50).map(|_| rng.next_u32() % 50_000).collect();
            let s = detect_gumbel(0xDEAD_BEEF, 4, &tokens, true).unwrap();
            if s.p_value < 0.05 {
                below += 1;
            }
        }
        assert!((52..=148).contains(&below), "{below} of 2000 below 0.05");
    }

    /// Gumbel-max sampling from a flat distribution picks the token with the largest uniform:
    /// 60 such tokens must give p < 1e-10 (the expected score is about n * H_V, far above n).
    #[test]
    fn gumbel_max_text_is_detected() {
        let key = 0x1234_5678_9ABC_DEF0;
        let mut tokens: Vec<u32> = Vec::new();
        let mut context = vec![philox::PAD_TOKEN; 4];
        for _ in 0..60 {
            let best = (0..200u32)
                .max_by(|&a, &b| {
                    let ua = philox::uniform(key, &context, i64::from(a));
                    let ub = philox::uniform(key, &context, i64::from(b));
                    ua.total_cmp(&ub)
                })
                .unwrap_or(0);
            tokens.push(best);
            context.remove(0);
            context.push(i64::from(best));
        }
        let s = detect_gumbel(key, 4, &tokens, true).unwrap();
        assert!(s.log10_p_value < -10.0, "{s:?}");
        let other = detect_gumbel(key ^ 1, 4, &tokens, true).unwrap();
        assert!(other.log10_p_value > -3.0, "{other:?}");
    }
}
