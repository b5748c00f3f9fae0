//! Reading mode of the audit for vLLM's watermark: a suspect model reads our watermarked texts,
//! and its top-1 prediction at each position is scored with vLLM's per-token score under the
//! context taken from our text. Over the whole audit the scores are pooled into one sum, judged
//! by the exact null tail of the algorithm ([`VllmScorer`]).
//!
//! Why the rules make the p-value exact: an innocent suspect's prediction at position i is a
//! function of what it read before i, and our text there was chosen with the PRF only at the
//! contexts of earlier positions. So if the context of i is none of the contexts read before it
//! (in the prompt or earlier in the text), its keyed values are independent of the prediction,
//! and the prediction's score is a fresh null draw. Scoring each context once in the whole audit
//! keeps the draws independent across texts.
//!
//! In order, a position is not scored when:
//! - it is one of the first `width` of the text: vLLM's generator used a context padded with -1
//!   there, not the window the suspect read (`too_little_context`);
//! - the suspect's prediction maps to none of our tokens (another tokenizer: `unaligned`);
//! - its context is the context of a prompt position (`in_prompt`) or of an earlier text
//!   position (`earlier_in_text`);
//! - its context was already scored in this audit (`repeated`).

use std::collections::HashSet;

use serde::Serialize;

use super::philox::PAD_TOKEN;
use super::score::{GumbelScore, ScoreSum, MAX_CONTEXT_WIDTH};
use super::scorer::VllmScorer;
use crate::error::{Error, Result};
use crate::scan::{Skipped, TokenStatus};

/// The default bound on distinct scored contexts (the audit's memory): 2^26, a few GiB at
/// context width 4, far beyond an audit's ~10^6 scored tokens.
pub const DEFAULT_MAX_CONTEXTS: u64 = 1 << 26;

/// A running reading-mode audit under one vLLM key and algorithm.
#[derive(Clone, Debug)]
pub struct ReadingAudit {
    scorer: VllmScorer,
    width: usize,
    max_contexts: u64,
    scored_contexts: HashSet<Box<[i64]>>,
    documents: u64,
    tokens: u64,
    skipped: Skipped,
    scored: u64,
    sum: ScoreSum,
}

/// The pooled test of a reading-mode audit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadingReport {
    /// Texts read.
    pub documents: u64,
    /// Tokens of our texts (prompts excluded).
    pub tokens: u64,
    /// Positions not scored, by rule (the green-list audit's counts; `not_in_filter` is 0).
    pub skipped: Skipped,
    /// The pooled sum and its exact tail (`skipped` there is the total of the above).
    pub score: GumbelScore,
}

impl ReadingAudit {
    /// An empty audit with `scorer` at context width `width`.
    pub fn new(scorer: VllmScorer, width: usize) -> Result<Self> {
        if width == 0 || width > MAX_CONTEXT_WIDTH {
            return Err(Error::InvalidParameter(format!(
                "vLLM context width {width} must lie in 1..={MAX_CONTEXT_WIDTH}"
            )));
        }
        Ok(ReadingAudit {
            scorer,
            width,
            max_contexts: DEFAULT_MAX_CONTEXTS,
            scored_contexts: HashSet::new(),
            documents: 0,
            tokens: 0,
            skipped: Skipped::default(),
            scored: 0,
            sum: ScoreSum::default(),
        })
    }

    /// Bounds the distinct scored contexts held; a text that could cross it is refused whole.
    pub fn with_max_contexts(mut self, max_contexts: u64) -> Self {
        self.max_contexts = max_contexts;
        self
    }

    /// The suspect read `prompt` ++ `text` (our text) and `predictions[i]` is its top-1 for the
    /// position of `text[i]`, as one of our tokens, or `None` where it maps to none of them.
    pub fn add_reading(
        &mut self,
        prompt: &[u32],
        text: &[u32],
        predictions: &[Option<u32>],
    ) -> Result<()> {
        if predictions.len() != text.len() {
            return Err(Error::InvalidParameter(format!(
                "{} predictions for a text of {} tokens: reading mode needs one per position",
                predictions.len(),
                text.len()
            )));
        }
        let held = self.scored_contexts.len() as u64;
        if held + text.len() as u64 > self.max_contexts {
            let per_context = 8 * self.width as u64 + 48;
            return Err(Error::AuditTooLarge {
                limit: self.max_contexts,
                bytes: self.max_contexts.saturating_mul(per_context),
            });
        }
        self.scan(prompt, text, predictions);
        self.documents += 1;
        self.tokens += text.len() as u64;
        Ok(())
    }

    /// Scores the fresh positions and counts the others by the rule that left them out.
    fn scan(&mut self, prompt: &[u32], text: &[u32], predictions: &[Option<u32>]) {
        let w = self.width;
        let read: Vec<i64> = std::iter::repeat_n(PAD_TOKEN, w)
            .chain(prompt.iter().chain(text).map(|&t| i64::from(t)))
            .collect();
        // The context of position p of prompt ++ text is read[p..p + w].
        let context = |p: usize| &read[p..p + w];
        let in_prompt: HashSet<&[i64]> = (0..prompt.len()).map(context).collect();
        let mut earlier: HashSet<&[i64]> = HashSet::new();
        for (i, prediction) in predictions.iter().enumerate() {
            let ctx = context(prompt.len() + i);
            let skip = match prediction {
                _ if i < w => Some(TokenStatus::TooLittleContext),
                None => Some(TokenStatus::Unaligned),
                Some(_) if in_prompt.contains(ctx) => Some(TokenStatus::InPrompt),
                Some(_) if earlier.contains(ctx) => Some(TokenStatus::EarlierInText),
                Some(_) if !self.scored_contexts.insert(ctx.into()) => Some(TokenStatus::Repeated),
                Some(token) => {
                    self.sum.add(self.scorer.score(ctx, i64::from(*token)));
                    self.scored += 1;
                    None
                }
            };
            if let Some(status) = skip {
                count(&mut self.skipped, status);
            }
            earlier.insert(ctx);
        }
    }

    /// The pooled test so far.
    pub fn report(&self) -> ReadingReport {
        ReadingReport {
            documents: self.documents,
            tokens: self.tokens,
            skipped: self.skipped,
            score: GumbelScore::new(
                &self.scorer,
                self.scored,
                self.skipped.total(),
                self.sum.total(),
            ),
        }
    }
}

fn count(skipped: &mut Skipped, status: TokenStatus) {
    match status {
        TokenStatus::TooLittleContext => skipped.too_little_context += 1,
        TokenStatus::Unaligned => skipped.unaligned += 1,
        TokenStatus::InPrompt => skipped.in_prompt += 1,
        TokenStatus::EarlierInText => skipped.earlier_in_text += 1,
        TokenStatus::Repeated => skipped.repeated += 1,
        TokenStatus::NotInFilter => skipped.not_in_filter += 1,
        TokenStatus::Green | TokenStatus::Red => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(width: usize) -> ReadingAudit {
        ReadingAudit::new(VllmScorer::Gumbel { key: 5 }, width).unwrap()
    }

    #[test]
    fn each_rule_leaves_out_what_it_names() {
        let mut a = audit(2);
        // Contexts of the prompt: [-1,-1], [-1,7]. Of the text, from position 0:
        // [7,8] [8,9] | [9,7] [7,8] [8,3] [3,9] [9,7] [7,8]; the first two are too early,
        // position 3 has no prediction, 6 and 7 repeat contexts of 2 and 0.
        let prompt = [7, 8];
        let text = [9, 7, 8, 3, 9, 7, 8, 4];
        let mut predictions: Vec<Option<u32>> = text.iter().map(|&t| Some(t + 1)).collect();
        predictions[3] = None;
        a.add_reading(&prompt, &text, &predictions).unwrap();
        let r = a.report();
        assert_eq!(r.skipped.too_little_context, 2);
        assert_eq!(r.skipped.unaligned, 1);
        assert_eq!(r.skipped.earlier_in_text, 2, "{r:?}");
        assert_eq!(r.score.scored, 3, "{r:?}");
        assert_eq!(r.skipped.total() + r.score.scored, text.len() as u64);

        // The same text again: its contexts were scored, so nothing new is.
        a.add_reading(&[], &text, &predictions).unwrap();
        let again = a.report();
        assert_eq!(again.score.scored, 3);
        assert_eq!(again.skipped.repeated, 3);
        assert_eq!(again.documents, 2);
    }

    #[test]
    fn prompt_contexts_are_not_scored() {
        let mut a = audit(2);
        // The text's context [1, 2] at position 3 is the context of prompt position 2 (token 3).
        a.add_reading(&[1, 2, 3], &[5, 1, 2, 6], &[Some(1); 4])
            .unwrap();
        let r = a.report();
        assert_eq!(r.skipped.in_prompt, 1);
        assert_eq!(r.score.scored, 1);
    }

    #[test]
    fn the_score_is_the_prediction_under_our_context() {
        let scorer = VllmScorer::dual_key(11, 0.3).unwrap();
        let mut a = ReadingAudit::new(scorer, 3).unwrap();
        let text = [10, 11, 12, 13, 14];
        let predictions = [Some(1), Some(2), Some(3), Some(40), Some(50)];
        a.add_reading(&[], &text, &predictions).unwrap();
        let want = scorer.score(&[10, 11, 12], 40) + scorer.score(&[11, 12, 13], 50);
        let r = a.report();
        assert_eq!(r.score.scored, 2);
        assert!((r.score.score - want).abs() < 1e-12);
        assert!(r.score.vllm_p_value.is_some());
    }

    #[test]
    fn bad_input_and_the_bound_are_refused_whole() {
        let mut a = audit(1).with_max_contexts(3);
        assert!(a.add_reading(&[], &[1, 2], &[Some(1)]).is_err());
        a.add_reading(&[], &[1, 2, 3], &[Some(1); 3]).unwrap();
        let before = a.report();
        assert!(matches!(
            a.add_reading(&[], &[4, 5], &[Some(1); 2]),
            Err(Error::AuditTooLarge { .. })
        ));
        assert_eq!(a.report(), before);
        assert!(ReadingAudit::new(VllmScorer::Gumbel { key: 1 }, 0).is_err());
    }
}
